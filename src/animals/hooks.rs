//! How claims follow their orders ([`OrderHook`], registered by the server):
//! a paid claim holds its animal for the claim period; a refunded or
//! cancelled claim gives the animal back only if the claim still holds it.

use crate::commerce::hooks::{Followed, OrderChange, OrderHook};
use crate::commerce::model::{Status, ANIMAL_CLAIM_CATEGORY};
use crate::core::error::ApiError;
use crate::runtime::context::Ctx;
use crate::storage::DbConn;

use super::store;

pub struct ClaimHook;

/// Whether an item is an animal's claim: its product's category says so
/// (claim products are made by this domain and never change category); the
/// database answers only for an item the order actor did not load.
fn is_claim(
    conn: &mut DbConn,
    change: &OrderChange<'_>,
    product_id: i64,
) -> Result<bool, ApiError> {
    match change.category_of(product_id) {
        Some(category) => Ok(category == ANIMAL_CLAIM_CATEGORY),
        None => Ok(store::is_animal_product(conn, product_id)?),
    }
}

impl OrderHook for ClaimHook {
    fn keeps_released_unit(
        &self,
        conn: &mut DbConn,
        change: &OrderChange<'_>,
        product_id: i64,
    ) -> Result<bool, ApiError> {
        // Only a paid claim ever held its animal; once the claim period ended
        // the animal was freed already (and may be claimed again), so the
        // order must not give the unit back a second time.
        let was_paid = change.from != Status::PendingPayment;
        Ok(was_paid
            && is_claim(conn, change, product_id)?
            && !store::release_claim(conn, product_id, change.order_id)?)
    }

    fn follow(
        &self,
        conn: &mut DbConn,
        ctx: &Ctx,
        change: &OrderChange<'_>,
    ) -> Result<Followed, ApiError> {
        // The payment itself, not a later change that leaves the order paid
        // (a refund request keeps the status): that would restart the period.
        if change.to != Status::Paid || change.from != Status::PendingPayment {
            return Ok(Followed::Done(Vec::new()));
        }
        let claim_day_ms = i64::try_from(ctx.config.claim_day_secs)
            .unwrap_or(86_400)
            .saturating_mul(1000);
        for i in change.items {
            if !is_claim(conn, change, i.product_id)? {
                continue;
            }
            store::hold_for_claim(
                conn,
                i.product_id,
                change.order_id,
                change.buyer_id,
                change.now_ms,
                claim_day_ms,
            )?;
        }
        Ok(Followed::Done(Vec::new()))
    }
}
