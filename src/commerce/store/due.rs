//! What the order scheduler asks: orders whose payment deadline or
//! auto-complete time has passed.

use actix::{Handler, Message};
use diesel::prelude::*;

use crate::commerce::model::Command;
use crate::core::error::ApiError;
use crate::storage::schema::orders;
use crate::storage::DbExecutor;

/// Due orders read per tick.
const DUE_BATCH: i64 = 1_000;

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
            .filter(orders::status.eq("pending_payment"))
            .filter(orders::pay_deadline_ms.le(msg.now_ms))
            .order(orders::pay_deadline_ms.asc())
            .limit(DUE_BATCH)
            .select(orders::id)
            .load(&mut conn)?;
        let complete: Vec<i64> = orders::table
            .filter(orders::status.eq("shipped"))
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
