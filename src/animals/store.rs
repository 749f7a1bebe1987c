//! Animals on the database executor, and the claim hooks the order
//! transition runs inside its own transaction.
//!
//! An animal is sold through a product of stock 1 (category
//! [`ANIMAL_CATEGORY`]). Its inventory actor makes claims exclusive: a pending
//! or paid claim holds the one unit, so a second claim finds no stock.
//! - paid: [`hold_for_claim`] records the claimer and `claimed_until_ms`;
//! - cancelled or expired unpaid: the order gives the unit back as any order does;
//! - the claim period ends: the scheduler's [`EndClaim`] gives it back;
//! - refunded while the claim holds the animal: [`release_claim`] lets the
//!   order give it back; refunded after the period: the unit was given back
//!   already and is not given twice.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::commerce::tx as commerce;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::outbox;
use crate::storage::schema::{animal_updates, animals};
use crate::storage::{DbConn, DbExecutor};

/// The category of the products behind animals (reserved: not for ordinary products).
pub use crate::commerce::model::ANIMAL_CLAIM_CATEGORY as ANIMAL_CATEGORY;
/// Claim-end timers handled per scheduler tick.
pub const DUE_BATCH: i64 = 500;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = animals)]
pub struct AnimalRow {
    pub id: i64,
    pub merchant_id: i64,
    pub product_id: i64,
    pub name: String,
    pub species: String,
    pub description: String,
    pub claim_price_cents: i64,
    pub claim_days: i64,
    pub claim_order_id: Option<i64>,
    pub claimed_by: Option<i64>,
    pub claimed_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub image_media_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnimalView {
    pub animal_id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub species: String,
    pub description: String,
    pub claim_price_cents: i64,
    pub claim_days: i64,
    /// Whether a paid claim holds the animal now.
    pub claimed: bool,
    /// The user whose paid claim holds it: shown to that user only (null
    /// for everyone else, and when unclaimed).
    pub claimed_by: Option<i64>,
    /// When that claim ends (RFC 3339), or null.
    pub claimed_until: Option<String>,
    pub created_at: String,
    /// Its picture (`image_media_id`), if it has one.
    pub image: Option<crate::core::urls::PictureRef>,
}

impl AnimalRow {
    /// The claim shows only while it runs (the timer frees it within a tick after).
    pub fn view(self, now: i64) -> AnimalView {
        let running = self.claimed_until_ms.is_some_and(|u| u > now);
        AnimalView {
            animal_id: self.id,
            merchant_id: self.merchant_id,
            name: self.name,
            species: self.species,
            description: self.description,
            claim_price_cents: self.claim_price_cents,
            claim_days: self.claim_days,
            claimed: running && self.claimed_by.is_some(),
            claimed_by: self.claimed_by.filter(|_| running),
            claimed_until: self.claimed_until_ms.filter(|_| running).map(rfc3339),
            created_at: rfc3339(self.created_at_ms),
            image: self.image_media_id.map(crate::core::urls::PictureRef::of),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnimalUpdateView {
    pub update_id: i64,
    pub animal_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: String,
}

pub fn is_animal_product(c: &mut DbConn, product_id: i64) -> QueryResult<bool> {
    let found: Option<i64> = crate::storage::direct::first(
        c,
        animals::table
            .filter(animals::product_id.eq(product_id))
            .select(animals::id),
    )?;
    Ok(found.is_some())
}

/// A claim order was paid: it holds the animal for `claim_days` from now.
/// Touches no row when the product is not an animal's.
pub fn hold_for_claim(
    c: &mut DbConn,
    product_id: i64,
    order_id: i64,
    buyer_id: i64,
    now: i64,
    claim_day_ms: i64,
) -> QueryResult<usize> {
    crate::storage::direct::execute(
        c,
        diesel::update(animals::table.filter(animals::product_id.eq(product_id))).set((
            animals::claim_order_id.eq(Some(order_id)),
            animals::claimed_by.eq(Some(buyer_id)),
            animals::claimed_until_ms.eq((animals::claim_days * claim_day_ms + now).nullable()),
        )),
    )
}

/// Ends the claim of `order_id` on the animal if it still holds it. True: the
/// caller gives the unit back; false: the claim had ended already.
pub fn release_claim(c: &mut DbConn, product_id: i64, order_id: i64) -> QueryResult<bool> {
    let n = diesel::update(
        animals::table
            .filter(animals::product_id.eq(product_id))
            .filter(animals::claim_order_id.eq(order_id)),
    )
    .set((
        animals::claim_order_id.eq(None::<i64>),
        animals::claimed_by.eq(None::<i64>),
        animals::claimed_until_ms.eq(None::<i64>),
    ))
    .execute(c)?;
    Ok(n == 1)
}

fn find(c: &mut DbConn, id: i64) -> Result<AnimalRow, ApiError> {
    animals::table
        .find(id)
        .select(AnimalRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such animal"))
}

/// A new animal and the one-unit product that sells its claims.
pub struct CreateAnimal {
    pub owner: crate::core::ids::UserId,
    pub merchant_id: i64,
    pub name: String,
    pub species: String,
    pub description: String,
    pub claim_price_cents: i64,
    pub claim_days: i64,
    /// A picture the merchant's owner uploaded.
    pub image_media_id: Option<i64>,
}

impl Message for CreateAnimal {
    type Result = Result<AnimalView, ApiError>;
}

impl Handler<CreateAnimal> for DbExecutor {
    type Result = Result<AnimalView, ApiError>;
    fn handle(&mut self, msg: CreateAnimal, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        commerce::owned_approved_merchant(&mut conn, msg.owner, msg.merchant_id)?;
        let now = now_ms();
        let product = commerce::ProductRow {
            id: self.ids.next_id(),
            merchant_id: msg.merchant_id,
            name: format!("认领 {}", msg.name),
            category: ANIMAL_CATEGORY.into(),
            price_cents: msg.claim_price_cents,
            stock: 1,
            active: true,
            created_at_ms: now,
            stock_version: 0,
            image_media_id: msg.image_media_id,
        };
        let row = AnimalRow {
            id: self.ids.next_id(),
            merchant_id: msg.merchant_id,
            product_id: product.id,
            name: msg.name,
            species: msg.species,
            description: msg.description,
            claim_price_cents: msg.claim_price_cents,
            claim_days: msg.claim_days,
            claim_order_id: None,
            claimed_by: None,
            claimed_until_ms: None,
            created_at_ms: now,
            image_media_id: msg.image_media_id,
        };
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            let pictures: Vec<i64> = msg.image_media_id.into_iter().collect();
            crate::media::tx::attach(c, &pictures, msg.owner.get(), now)?;
            commerce::insert_product(c, &product)?;
            diesel::insert_into(animals::table)
                .values(&row)
                .execute(c)?;
            Ok(())
        })?;
        Ok(row.view(now))
    }
}

pub struct GetAnimal {
    pub animal_id: i64,
}

impl Message for GetAnimal {
    type Result = Result<AnimalRow, ApiError>;
}

impl Handler<GetAnimal> for DbExecutor {
    type Result = Result<AnimalRow, ApiError>;
    fn handle(&mut self, msg: GetAnimal, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        find(&mut conn, msg.animal_id)
    }
}

pub struct ListAnimals {
    pub merchant_id: Option<i64>,
    pub species: Option<String>,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListAnimals {
    type Result = Result<Page<AnimalView>, ApiError>;
}

impl Handler<ListAnimals> for DbExecutor {
    type Result = Result<Page<AnimalView>, ApiError>;
    fn handle(&mut self, msg: ListAnimals, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = animals::table.into_boxed();
        if let Some(m) = msg.merchant_id {
            q = q.filter(animals::merchant_id.eq(m));
        }
        if let Some(s) = &msg.species {
            q = q.filter(animals::species.eq(s.clone()));
        }
        if let Some(a) = msg.after_id {
            q = q.filter(animals::id.gt(a));
        }
        let mut rows: Vec<AnimalRow> = q
            .order(animals::id.asc())
            .limit(msg.limit + 1)
            .select(AnimalRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        let now = now_ms();
        Ok(Page {
            items: rows.into_iter().map(|r| r.view(now)).collect(),
            next_cursor,
        })
    }
}

/// The merchant posts news of an animal; its current claimer is notified.
pub struct PostUpdate {
    pub owner: i64,
    pub animal_id: i64,
    pub body: String,
}

impl Message for PostUpdate {
    type Result = Result<AnimalUpdateView, ApiError>;
}

impl Handler<PostUpdate> for DbExecutor {
    type Result = Result<AnimalUpdateView, ApiError>;
    fn handle(&mut self, msg: PostUpdate, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let animal = find(&mut conn, msg.animal_id)?;
        let owner = commerce::merchant_owner(&mut conn, animal.merchant_id)?;
        if owner != msg.owner {
            return Err(ApiError::forbidden(
                "only the animal's merchant posts updates",
            ));
        }
        let now = now_ms();
        let id = self.ids.next_id();
        let ids = &self.ids;
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            diesel::insert_into(animal_updates::table)
                .values((
                    animal_updates::id.eq(id),
                    animal_updates::animal_id.eq(animal.id),
                    animal_updates::author_id.eq(msg.owner),
                    animal_updates::body.eq(&msg.body),
                    animal_updates::created_at_ms.eq(now),
                ))
                .execute(c)?;
            // Read inside the transaction: the claimer as of this update.
            let current = find(c, animal.id)?;
            if let (Some(claimer), Some(until)) = (current.claimed_by, current.claimed_until_ms) {
                if until > now {
                    let data = serde_json::json!({"animal_id": animal.id, "update_id": id,
                        "name": animal.name, "body": msg.body});
                    outbox::enqueue(
                        c,
                        ids,
                        "animal.update",
                        &serde_json::json!({"animal_id": animal.id, "notify": [
                            {"user_id": claimer, "kind": "animal.update", "data": data}]}),
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(AnimalUpdateView {
            update_id: id,
            animal_id: animal.id,
            author_id: msg.owner,
            body: msg.body,
            created_at: rfc3339(now),
        })
    }
}

pub struct ListUpdates {
    pub animal_id: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for ListUpdates {
    type Result = Result<Page<AnimalUpdateView>, ApiError>;
}

impl Handler<ListUpdates> for DbExecutor {
    type Result = Result<Page<AnimalUpdateView>, ApiError>;
    fn handle(&mut self, msg: ListUpdates, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        find(&mut conn, msg.animal_id)?;
        let mut q = animal_updates::table
            .filter(animal_updates::animal_id.eq(msg.animal_id))
            .into_boxed();
        if let Some(b) = msg.before_id {
            q = q.filter(animal_updates::id.lt(b));
        }
        let mut rows: Vec<(i64, i64, i64, String, i64)> = q
            .order(animal_updates::id.desc())
            .limit(msg.limit + 1)
            .select((
                animal_updates::id,
                animal_updates::animal_id,
                animal_updates::author_id,
                animal_updates::body,
                animal_updates::created_at_ms,
            ))
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|(id, animal_id, author_id, body, at)| AnimalUpdateView {
                    update_id: id,
                    animal_id,
                    author_id,
                    body,
                    created_at: rfc3339(at),
                })
                .collect(),
            next_cursor,
        })
    }
}

/// Claims whose period has ended: (animal, order holding it, product).
pub struct DueClaims {
    pub now_ms: i64,
}

impl Message for DueClaims {
    type Result = Result<Vec<(i64, i64, i64)>, ApiError>;
}

impl Handler<DueClaims> for DbExecutor {
    type Result = Result<Vec<(i64, i64, i64)>, ApiError>;
    fn handle(&mut self, msg: DueClaims, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let rows: Vec<(i64, Option<i64>, i64)> = animals::table
            .filter(animals::claimed_until_ms.le(msg.now_ms))
            .order(animals::claimed_until_ms.asc())
            .limit(DUE_BATCH)
            .select((animals::id, animals::claim_order_id, animals::product_id))
            .load(&mut conn)?;
        Ok(rows
            .into_iter()
            .filter_map(|(a, o, p)| o.map(|o| (a, o, p)))
            .collect())
    }
}

/// Frees an animal whose claim period ended, if that claim still holds it.
/// Returns the product whose unit was given back and its `stock_version`
/// after that (for memory to follow).
pub struct EndClaim {
    pub animal_id: i64,
    pub order_id: i64,
}

impl Message for EndClaim {
    type Result = Result<Option<(i64, i64)>, ApiError>;
}

impl Handler<EndClaim> for DbExecutor {
    type Result = Result<Option<(i64, i64)>, ApiError>;
    fn handle(&mut self, msg: EndClaim, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let ids = &self.ids;
        let now = now_ms();
        crate::storage::transaction(&mut conn, |c| -> Result<Option<(i64, i64)>, ApiError> {
            let a = find(c, msg.animal_id)?;
            if a.claim_order_id != Some(msg.order_id) || a.claimed_until_ms.is_none_or(|u| u > now)
            {
                return Ok(None);
            }
            if !release_claim(c, a.product_id, msg.order_id)? {
                return Ok(None);
            }
            let version = commerce::add_stock(c, a.product_id, 1)?;
            if let Some(claimer) = a.claimed_by {
                let data = serde_json::json!({"animal_id": a.id, "name": a.name, "order_id": msg.order_id});
                outbox::enqueue(
                    c,
                    ids,
                    "animal.claim_ended",
                    &serde_json::json!({"animal_id": a.id, "notify": [
                        {"user_id": claimer, "kind": "animal.claim_ended", "data": data}]}),
                )?;
            }
            Ok(Some((a.product_id, version)))
        })
    }
}
