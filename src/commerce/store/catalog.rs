//! Merchants and products on the database executor.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use super::{self as store, MerchantRow, ProductRow};
use crate::accounts::domain::Role;
use crate::accounts::tx as accounts;
use crate::accounts::tx::require_role;
use crate::commerce::model::MerchantStatus;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::schema::{merchants, products};
use crate::storage::DbExecutor;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MerchantView {
    pub merchant_id: i64,
    pub owner_id: i64,
    pub name: String,
    #[schema(value_type = crate::commerce::model::MerchantStatus, inline)]
    pub status: String,
    /// Average review rating, null before the first review.
    pub rating_avg: Option<f64>,
    pub review_count: i64,
    pub created_at: String,
}

impl From<MerchantRow> for MerchantView {
    fn from(m: MerchantRow) -> Self {
        MerchantView {
            merchant_id: m.id,
            owner_id: m.owner_id,
            name: m.name,
            status: m.status,
            // A display figure, not money: the only float in the API, as the contract asks.
            rating_avg: (m.review_count > 0).then(|| m.rating_sum as f64 / m.review_count as f64),
            review_count: m.review_count,
            created_at: rfc3339(m.created_at_ms),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    pub product_id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    /// What can still be ordered.
    pub stock: i64,
    pub active: bool,
    /// Its picture (`image_media_id`), if it has one.
    pub image: Option<crate::core::urls::PictureRef>,
}

impl From<ProductRow> for ProductView {
    fn from(p: ProductRow) -> Self {
        ProductView {
            product_id: p.id,
            merchant_id: p.merchant_id,
            name: p.name,
            category: p.category,
            price_cents: p.price_cents,
            stock: p.stock,
            active: p.active,
            image: p.image_media_id.map(crate::core::urls::PictureRef::of),
        }
    }
}

pub struct ApplyMerchant {
    pub owner: crate::core::ids::UserId,
    pub name: String,
}

impl Message for ApplyMerchant {
    type Result = Result<MerchantView, ApiError>;
}

impl Handler<ApplyMerchant> for DbExecutor {
    type Result = Result<MerchantView, ApiError>;
    fn handle(&mut self, msg: ApplyMerchant, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let row = MerchantRow {
            id: self.ids.next_id(),
            owner_id: msg.owner.get(),
            name: msg.name,
            status: MerchantStatus::Pending.as_str().into(),
            rating_sum: 0,
            review_count: 0,
            created_at_ms: now_ms(),
        };
        diesel::insert_into(merchants::table)
            .values(&row)
            .execute(&mut conn)?;
        Ok(row.into())
    }
}

pub struct DecideMerchant {
    pub admin: crate::core::ids::UserId,
    pub merchant_id: i64,
    pub approve: bool,
}

impl Message for DecideMerchant {
    type Result = Result<MerchantView, ApiError>;
}

impl Handler<DecideMerchant> for DbExecutor {
    type Result = Result<MerchantView, ApiError>;
    fn handle(&mut self, msg: DecideMerchant, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        crate::storage::transaction(&mut conn, |c| -> Result<MerchantView, ApiError> {
            let m = store::find_merchant(c, msg.merchant_id)?
                .ok_or_else(|| ApiError::not_found("no such merchant"))?;
            let to = if msg.approve {
                MerchantStatus::Approved
            } else {
                MerchantStatus::Rejected
            }
            .as_str();
            if m.status != MerchantStatus::Pending.as_str() && m.status != to {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::InvalidState,
                    format!("merchant is already {}", m.status),
                ));
            }
            diesel::update(merchants::table.find(m.id))
                .set(merchants::status.eq(to))
                .execute(c)?;
            if msg.approve {
                accounts::grant_role(c, m.owner_id, Role::Merchant)?;
            }
            Ok(MerchantRow {
                status: to.into(),
                ..m
            }
            .into())
        })
    }
}

pub struct ListMerchants {
    pub caller: crate::core::ids::UserId,
    /// The caller's own applications (any user) instead of all (admins).
    pub only_own: bool,
    pub status: Option<String>,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListMerchants {
    type Result = Result<Page<MerchantView>, ApiError>;
}

impl Handler<ListMerchants> for DbExecutor {
    type Result = Result<Page<MerchantView>, ApiError>;
    fn handle(&mut self, msg: ListMerchants, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = merchants::table.into_boxed();
        if msg.only_own {
            q = q.filter(merchants::owner_id.eq(msg.caller.get()));
        } else {
            require_role(&mut conn, msg.caller, Role::Admin)?;
        }
        if let Some(s) = &msg.status {
            q = q.filter(merchants::status.eq(s.clone()));
        }
        if let Some(a) = msg.after_id {
            q = q.filter(merchants::id.gt(a));
        }
        let mut rows: Vec<MerchantRow> = q
            .order(merchants::id.asc())
            .limit(msg.limit + 1)
            .select(MerchantRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}

/// A merchant as `viewer` may see it: approved ones for anyone, others for
/// their applicant and admins only (404 for the rest).
pub struct GetMerchant {
    pub merchant_id: i64,
    pub viewer: Option<i64>,
}

impl Message for GetMerchant {
    type Result = Result<MerchantView, ApiError>;
}

impl Handler<GetMerchant> for DbExecutor {
    type Result = Result<MerchantView, ApiError>;
    fn handle(&mut self, msg: GetMerchant, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let gone = || ApiError::not_found("no such merchant");
        let m = store::find_merchant(&mut conn, msg.merchant_id)?.ok_or_else(gone)?;
        let public = m.status == MerchantStatus::Approved.as_str();
        let allowed = public
            || msg.viewer == Some(m.owner_id)
            || match msg.viewer {
                Some(v) => crate::accounts::tx::is_admin(&mut conn, v)?,
                None => false,
            };
        if !allowed {
            return Err(gone());
        }
        Ok(m.into())
    }
}

/// The owner of an approved merchant, or 403/404.
pub fn owned_approved_merchant(
    conn: &mut crate::storage::DbConn,
    owner: crate::core::ids::UserId,
    merchant_id: i64,
) -> Result<MerchantRow, ApiError> {
    let m = store::find_merchant(conn, merchant_id)?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    if m.owner_id != owner.get() {
        return Err(ApiError::forbidden("only the merchant's owner may do this"));
    }
    if m.status != MerchantStatus::Approved.as_str() {
        return Err(ApiError::forbidden("the merchant is not approved"));
    }
    Ok(m)
}

pub struct CreateProduct {
    pub owner: crate::core::ids::UserId,
    pub merchant_id: i64,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
    /// A picture the merchant's owner uploaded.
    pub image_media_id: Option<i64>,
}

impl Message for CreateProduct {
    type Result = Result<ProductView, ApiError>;
}

impl Handler<CreateProduct> for DbExecutor {
    type Result = Result<ProductView, ApiError>;
    fn handle(&mut self, msg: CreateProduct, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        owned_approved_merchant(&mut conn, msg.owner, msg.merchant_id)?;
        let row = ProductRow {
            id: self.ids.next_id(),
            merchant_id: msg.merchant_id,
            name: msg.name,
            category: msg.category,
            price_cents: msg.price_cents,
            stock: msg.stock,
            active: true,
            created_at_ms: now_ms(),
            stock_version: 0,
            image_media_id: msg.image_media_id,
        };
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            let pictures: Vec<i64> = row.image_media_id.into_iter().collect();
            crate::media::tx::attach(c, &pictures, msg.owner.get(), row.created_at_ms)?;
            diesel::insert_into(products::table)
                .values(&row)
                .execute(c)?;
            Ok(())
        })?;
        Ok(row.into())
    }
}

/// Checks ownership of a product; returns its row.
pub struct OwnedProduct {
    pub owner: crate::core::ids::UserId,
    pub product_id: i64,
}

impl Message for OwnedProduct {
    type Result = Result<ProductRow, ApiError>;
}

impl Handler<OwnedProduct> for DbExecutor {
    type Result = Result<ProductRow, ApiError>;
    fn handle(&mut self, msg: OwnedProduct, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let p = store::find_product(&mut conn, msg.product_id)?
            .ok_or_else(|| ApiError::not_found("no such product"))?;
        owned_approved_merchant(&mut conn, msg.owner, p.merchant_id)?;
        Ok(p)
    }
}

/// Writes a product edit (stock as a relative change, already applied in memory).
pub struct UpdateProduct {
    pub product_id: i64,
    pub name: Option<String>,
    pub price_cents: Option<i64>,
    pub active: Option<bool>,
    pub stock_delta: i64,
    /// (picture, its uploader who owns the merchant).
    pub image: Option<(i64, i64)>,
}

impl Message for UpdateProduct {
    type Result = Result<ProductView, ApiError>;
}

impl Handler<UpdateProduct> for DbExecutor {
    type Result = Result<ProductView, ApiError>;
    fn handle(&mut self, msg: UpdateProduct, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<ProductView, ApiError> {
            if let Some(n) = &msg.name {
                diesel::update(products::table.find(msg.product_id))
                    .set(products::name.eq(n))
                    .execute(c)?;
            }
            if let Some(p) = msg.price_cents {
                diesel::update(products::table.find(msg.product_id))
                    .set(products::price_cents.eq(p))
                    .execute(c)?;
            }
            if let Some(a) = msg.active {
                diesel::update(products::table.find(msg.product_id))
                    .set(products::active.eq(a))
                    .execute(c)?;
            }
            if msg.stock_delta != 0 {
                store::add_stock(c, msg.product_id, msg.stock_delta)?;
            }
            if let Some((media, owner)) = msg.image {
                crate::media::tx::attach(c, &[media], owner, now_ms())?;
                diesel::update(products::table.find(msg.product_id))
                    .set(products::image_media_id.eq(Some(media)))
                    .execute(c)?;
            }
            store::find_product(c, msg.product_id)?
                .map(Into::into)
                .ok_or_else(|| ApiError::not_found("no such product"))
        })
    }
}

pub struct LoadProduct {
    pub product_id: i64,
}

impl Message for LoadProduct {
    type Result = Result<Option<ProductRow>, ApiError>;
}

impl Handler<LoadProduct> for DbExecutor {
    type Result = Result<Option<ProductRow>, ApiError>;
    fn handle(&mut self, msg: LoadProduct, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(store::find_product(&mut conn, msg.product_id)?)
    }
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

pub struct ListProducts {
    pub category: Option<String>,
    pub merchant_id: Option<i64>,
    pub text: Option<String>,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListProducts {
    type Result = Result<Page<ProductView>, ApiError>;
}

impl Handler<ListProducts> for DbExecutor {
    type Result = Result<Page<ProductView>, ApiError>;
    fn handle(&mut self, msg: ListProducts, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = products::table
            .filter(products::active.eq(true))
            .into_boxed();
        match &msg.category {
            Some(c) => q = q.filter(products::category.eq(c.clone())),
            // Animals' claim products are listed with their animals, not in the shop.
            None => {
                q = q.filter(products::category.ne(crate::commerce::model::ANIMAL_CLAIM_CATEGORY));
            }
        }
        if let Some(m) = msg.merchant_id {
            q = q.filter(products::merchant_id.eq(m));
        }
        if let Some(t) = &msg.text {
            // Escape LIKE wildcards so the text matches literally.
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.filter(
                lower(products::name)
                    .like(format!("%{}%", escaped.to_lowercase()))
                    .escape('\\'),
            );
        }
        if let Some(a) = msg.after_id {
            q = q.filter(products::id.gt(a));
        }
        let mut rows: Vec<ProductRow> = q
            .order(products::id.asc())
            .limit(msg.limit + 1)
            .select(ProductRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}
