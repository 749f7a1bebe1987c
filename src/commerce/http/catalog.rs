//! Merchants and products over HTTP.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::accounts::auth::AuthUser;
use crate::commerce::inventory::{Available, Edit};
use crate::commerce::store::catalog::{
    ApplyMerchant, CreateProduct, DecideMerchant, GetMerchant, ListMerchants, ListProducts,
    LoadProduct, MerchantView, OwnedProduct, ProductView, UpdateProduct,
};
use crate::commerce::Commerce;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{cursor_id, parse_limit};
use crate::core::text::{check_line, Id};

pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

// ---- merchants -------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// Apply to become a merchant (status `pending` until an admin decides).
#[utoipa::path(post, path = "/api/v1/merchants", tag = "commerce", security(("bearer" = [])), request_body = MerchantRequest,
    responses((status = 201, body = MerchantView), (status = 400, body = Problem)))]
pub async fn apply_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    body: crate::core::extract::Json<MerchantRequest>,
) -> ApiResult<HttpResponse> {
    check_line(&body.name, "name", 100)?;
    let m = state
        .db
        .call(ApplyMerchant {
            owner: user.user_id,
            name: body.into_inner().name,
        })
        .await?;
    Ok(HttpResponse::Created().json(m))
}

/// A merchant's profile: approved merchants for anyone; a pending or
/// rejected application only for its applicant and admins (404 for others).
#[utoipa::path(get, path = "/api/v1/merchants/{id}", tag = "commerce", params(("id" = i64, Path)),
    responses((status = 200, body = MerchantView), (status = 404, body = Problem)))]
pub async fn get_merchant(
    state: web::Data<Commerce>,
    user: Option<AuthUser>,
    path: web::Path<(crate::core::ids::MerchantId,)>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(GetMerchant {
                merchant_id: path.into_inner().0.get(),
                viewer: user.map(|u| u.user_id.get()),
            })
            .await?,
    ))
}

async fn decide_merchant(
    state: &Commerce,
    admin: AuthUser,
    id: crate::core::ids::MerchantId,
    approve: bool,
) -> ApiResult<HttpResponse> {
    let m = state
        .db
        .call(DecideMerchant {
            admin: admin.user_id,
            merchant_id: id.get(),
            approve,
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// Approve a merchant application (admin); the owner gains the `merchant` role.
#[utoipa::path(post, path = "/api/v1/admin/merchants/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = MerchantView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::MerchantId,)>,
) -> ApiResult<HttpResponse> {
    decide_merchant(&state, user, path.into_inner().0, true).await
}

/// Reject a merchant application (admin).
#[utoipa::path(post, path = "/api/v1/admin/merchants/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = MerchantView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::MerchantId,)>,
) -> ApiResult<HttpResponse> {
    decide_merchant(&state, user, path.into_inner().0, false).await
}

#[derive(Deserialize)]
pub struct StatusQuery {
    pub(super) status: Option<String>,
    pub(super) limit: Option<String>,
    pub(super) cursor: Option<String>,
}

/// Merchant applications by status (admin).
#[utoipa::path(get, path = "/api/v1/admin/merchants", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::store::catalog::MerchantView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = Problem)))]
pub async fn list_merchants(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    merchants_page(&state, user, q.into_inner(), false).await
}

/// The caller's own merchant applications, any status (the merchant console
/// starts here).
#[utoipa::path(get, path = "/api/v1/me/merchants", tag = "commerce", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::store::catalog::MerchantView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn my_merchants(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    merchants_page(&state, user, q.into_inner(), true).await
}

async fn merchants_page(
    state: &Commerce,
    user: AuthUser,
    q: StatusQuery,
    only_own: bool,
) -> ApiResult<HttpResponse> {
    if let Some(s) = &q.status {
        if crate::commerce::model::MerchantStatus::parse(s).is_none() {
            return Err(ApiError::invalid_input(
                "status must be pending, approved or rejected",
            ));
        }
    }
    let page = state
        .db
        .call(ListMerchants {
            caller: user.user_id,
            only_own,
            status: q.status.clone(),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

// ---- products --------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    #[schema(value_type = i64)]
    merchant_id: Id,
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(min_length = 1, max_length = 50)]
    category: String,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    price_cents: i64,
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    stock: i64,
    /// A picture the caller uploaded (`POST /api/v1/media`).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991_i64)]
    image_media_id: Option<crate::core::ids::MediaId>,
}

/// List a product (owner of an approved merchant).
#[utoipa::path(post, path = "/api/v1/products", tag = "commerce", security(("bearer" = [])), request_body = ProductRequest,
    responses((status = 201, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_product(
    state: web::Data<Commerce>,
    user: AuthUser,
    body: crate::core::extract::Json<ProductRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_line(&b.name, "name", 100)?;
    check_line(&b.category, "category", 50)?;
    if b.category == crate::commerce::model::ANIMAL_CLAIM_CATEGORY {
        return Err(ApiError::invalid_input(
            "that category is reserved for animal claims: POST /api/v1/animals",
        ));
    }
    if !(0..=MAX_PRICE_CENTS).contains(&b.price_cents) {
        return Err(ApiError::invalid_input("price_cents must be 0 to 10^12"));
    }
    if !(0..=MAX_STOCK).contains(&b.stock) {
        return Err(ApiError::invalid_input("stock must be 0 to 10^9"));
    }
    let p = state
        .db
        .call(CreateProduct {
            owner: user.user_id,
            merchant_id: b.merchant_id.get(),
            name: b.name,
            category: b.category,
            price_cents: b.price_cents,
            stock: b.stock,
            image_media_id: b.image_media_id.map(|m| m.get()),
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

/// The stock the inventory actor holds, if loaded (it includes reservations in flight).
async fn live_stock(state: &Commerce, mut p: ProductView) -> ProductView {
    if let Some(inv) = state.inventory.get(p.product_id) {
        if let Ok(Some(n)) = inv.send(Available).await {
            p.stock = n;
        }
    }
    p
}

/// A product; `stock` is what can still be ordered.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "commerce", params(("id" = i64, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
pub async fn get_product(
    state: web::Data<Commerce>,
    path: web::Path<(crate::core::ids::ProductId,)>,
) -> ApiResult<HttpResponse> {
    let row = state
        .db
        .call(LoadProduct {
            product_id: path.into_inner().0.get(),
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok(HttpResponse::Ok().json(live_stock(&state, row.into()).await))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    name: Option<String>,
    price_cents: Option<i64>,
    stock_delta: Option<i64>,
    active: Option<bool>,
    /// A picture the caller uploaded, replacing the product's.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991_i64)]
    image_media_id: Option<crate::core::ids::MediaId>,
}

/// Edit a product (owner): name, price, stock adjustment, active, picture.
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "commerce", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ProductPatch, responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn update_product(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ProductId,)>,
    body: crate::core::extract::Json<ProductPatch>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner().0.get();
    let b = body.into_inner();
    if let Some(n) = &b.name {
        check_line(n, "name", 100)?;
    }
    if b.price_cents
        .is_some_and(|p| !(0..=MAX_PRICE_CENTS).contains(&p))
    {
        return Err(ApiError::invalid_input("price_cents must be 0 to 10^12"));
    }
    let delta = b.stock_delta.unwrap_or(0);
    // A range, not `abs()`: `i64::MIN.abs()` overflows (a panic in debug, MIN again in release).
    if !(-MAX_STOCK..=MAX_STOCK).contains(&delta) {
        return Err(ApiError::invalid_input("stock_delta must be within ±10^9"));
    }
    let current = state
        .db
        .call(OwnedProduct {
            owner: user.user_id,
            product_id: id,
        })
        .await?;
    // An animal's unit is its claim: only claims and their timers move it.
    if current.category == crate::commerce::model::ANIMAL_CLAIM_CATEGORY
        && (delta != 0 || b.price_cents.is_some() || b.active.is_some())
    {
        return Err(ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            "this product sells an animal's claims; its stock, price and availability follow the animal",
        ));
    }
    // Every edit goes through the SKU's actor, which owns the stock: memory
    // first (never below zero, counting reservations in flight), then the
    // database, and memory follows the outcome (see `inventory::Edit`).
    let inv = state.inventory.get_or_load(&state.db, id).await?;
    let updated = inv
        .send(Edit(UpdateProduct {
            product_id: id,
            name: b.name,
            price_cents: b.price_cents,
            active: b.active,
            stock_delta: delta,
            image: b.image_media_id.map(|m| (m.get(), user.user_id.get())),
        }))
        .await
        .map_err(ApiError::unavailable_because)??;
    Ok(HttpResponse::Ok().json(live_stock(&state, updated).await))
}

#[derive(Deserialize)]
pub struct ProductQuery {
    category: Option<String>,
    merchant_id: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Active products, filtered by category, merchant or text in the name.
#[utoipa::path(get, path = "/api/v1/products", tag = "commerce",
    params(("category" = Option<String>, Query), ("merchant_id" = Option<i64>, Query), ("q" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::store::catalog::ProductView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn list_products(
    state: web::Data<Commerce>,
    q: web::Query<ProductQuery>,
) -> ApiResult<HttpResponse> {
    let merchant_id = crate::core::text::id_param::<crate::core::ids::kind::Merchant>(
        q.merchant_id.as_deref(),
        "merchant_id",
    )?
    .map(Id::get);
    if q.q.as_deref().is_some_and(|t| t.chars().count() > 100) {
        return Err(ApiError::invalid_input("q must be at most 100 characters"));
    }
    let page = state
        .db
        .call(ListProducts {
            category: q.category.clone(),
            merchant_id,
            text: q.q.clone().filter(|t| !t.is_empty()),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

// ---- orders ----------------------------------------------------------------
