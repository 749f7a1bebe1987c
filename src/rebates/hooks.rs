//! How rebates follow their orders ([`OrderHook`], registered by the server):
//! a paid, completed or refunded order reconciles its rebates in the
//! transition's own transaction, inside a savepoint of its own. If that
//! fails only the rebate writes roll back, the transition commits, and its
//! event says the hooks did not all follow, so the rebate consumer retries.

use crate::accounts::tx::Inviters;
use crate::commerce::hooks::{Followed, OrderChange, OrderHook};
use crate::commerce::model::{OrderEvent, Status};
use crate::core::error::ApiError;
use crate::runtime::context::Ctx;
use crate::storage::DbConn;

use super::store::engine;

#[derive(Default)]
pub struct RebateHook {
    /// Referral bindings read so far (they never change).
    inviters: Inviters,
}

impl OrderHook for RebateHook {
    fn follow(
        &self,
        conn: &mut DbConn,
        ctx: &Ctx,
        change: &OrderChange<'_>,
    ) -> Result<Followed, ApiError> {
        if !matches!(
            change.event,
            OrderEvent::Paid | OrderEvent::Completed | OrderEvent::Refunded
        ) {
            return Ok(Followed::Done(Vec::new()));
        }
        // The order as the transition leaves it and its categories are in
        // memory: the engine need not read them back.
        let known = engine::Known {
            facts: change.facts(),
            categories: change.item_categories(),
            inviters: &self.inviters,
            first_payment: change.from == Status::PendingPayment && change.to == Status::Paid,
        };
        match engine::reconcile_known(conn, &ctx.ids, change.order_id, known, change.now_ms) {
            Ok(r) => Ok(Followed::Done(r.notifications)),
            Err(e) => {
                tracing::warn!(order_id = change.order_id, error = %e, "rebates deferred to the rebate consumer");
                Ok(Followed::Deferred)
            }
        }
    }
}
