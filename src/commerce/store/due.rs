//! What the order scheduler asks: orders whose payment deadline or
//! auto-complete time has passed.

use actix::{Handler, Message};
use diesel::prelude::*;

use crate::commerce::model::Command;
use crate::core::error::ApiError;
use crate::storage::schema::orders;
use crate::storage::{partial_index, DbExecutor};

/// Due orders read per tick.
const DUE_BATCH: i64 = 1_000;

/// The conditions of the partial indexes `orders_deadline_idx` and
/// `orders_autocomplete_idx` (migration 000016), as written there (see
/// `storage::partial_index`).
const AWAITING_PAYMENT: &str = "status = 'pending_payment'";
const SHIPPED: &str = "status = 'shipped'";

/// Orders whose pay deadline or auto-complete time has passed.
pub struct DueOrders {
    pub now_ms: i64,
}

impl Message for DueOrders {
    type Result = Result<Vec<(i64, Command)>, ApiError>;
}

impl Handler<DueOrders> for DbExecutor {
    type Result = Result<Vec<(i64, Command)>, ApiError>;
    fn handle(&mut self, msg: DueOrders, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let expired: Vec<i64> = orders::table
            .filter(partial_index::condition(AWAITING_PAYMENT))
            .filter(orders::pay_deadline_ms.le(msg.now_ms))
            .order(orders::pay_deadline_ms.asc())
            .limit(DUE_BATCH)
            .select(orders::id)
            .load(&mut conn)?;
        let complete: Vec<i64> = orders::table
            .filter(partial_index::condition(SHIPPED))
            .filter(orders::auto_complete_at_ms.le(msg.now_ms))
            .order(orders::auto_complete_at_ms.asc())
            .limit(DUE_BATCH)
            .select(orders::id)
            .load(&mut conn)?;
        Ok(expired
            .into_iter()
            .map(|id| (id, Command::Expire))
            .chain(complete.into_iter().map(|id| (id, Command::AutoComplete)))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::commerce::model::Status;

    use crate::storage::partial_index::{migrated_sqlite, sqlite_plan};

    #[test]
    fn the_timers_read_their_partial_indexes() {
        let mut c = migrated_sqlite();
        let expired = sqlite_plan(
            &mut c,
            &format!(
                "SELECT id FROM orders WHERE {AWAITING_PAYMENT} AND pay_deadline_ms <= 1 \
             ORDER BY pay_deadline_ms LIMIT 10"
            ),
        );
        assert!(expired.contains("orders_deadline_idx"), "{expired}");
        let complete = sqlite_plan(
            &mut c,
            &format!(
                "SELECT id FROM orders WHERE {SHIPPED} AND auto_complete_at_ms <= 1 \
             ORDER BY auto_complete_at_ms LIMIT 10"
            ),
        );
        assert!(complete.contains("orders_autocomplete_idx"), "{complete}");
    }

    /// Migration 000016 rebuilt the tables with foreign keys off: they are
    /// back on for the connection that ran it, and the rebuilt tables still
    /// enforce theirs.
    #[test]
    fn foreign_keys_hold_after_the_rebuild() {
        let mut c = migrated_sqlite();
        let orphan = diesel::sql_query(
            "INSERT INTO payments (id, order_id, provider, amount_cents, status, created_at_ms) \
             VALUES (1, 999, 'mockpay', 1, 'created', 0)",
        )
        .execute(&mut c);
        assert!(orphan.is_err(), "a payment of no order was stored");
    }

    #[test]
    fn the_index_conditions_name_the_statuses() {
        let condition = |s: Status| format!("status = '{}'", s.as_str());
        assert_eq!(AWAITING_PAYMENT, condition(Status::PendingPayment));
        assert_eq!(SHIPPED, condition(Status::Shipped));
    }
}
