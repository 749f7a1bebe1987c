//! Periodic housekeeping: forgets long-expired sessions and idempotency keys.

use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, WrapFuture};

use crate::core::error::ApiError;
use crate::storage::{Db, DbExecutor};

const INTERVAL: Duration = Duration::from_secs(600);

pub struct Housekeeper {
    pub db: Db,
    /// Only the cluster's leader purges (see `runtime::cluster`).
    pub leader: crate::runtime::cluster::Leadership,
}

impl Actor for Housekeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(INTERVAL, |this, ctx| {
            if !this.leader.is_leader() {
                return;
            }
            let db = this.db.clone();
            ctx.spawn(
                async move {
                    match db.call(Purge).await {
                        Ok((sessions, keys)) if sessions + keys > 0 => {
                            tracing::info!(
                                sessions,
                                idempotency_keys = keys,
                                "housekeeping purged rows"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
                    }
                }
                .into_actor(this),
            );
        });
    }
}

/// Deletes expired sessions and idempotency keys past retention.
pub struct Purge;

impl Message for Purge {
    type Result = Result<(usize, usize), ApiError>;
}

impl Handler<Purge> for DbExecutor {
    type Result = Result<(usize, usize), ApiError>;

    fn handle(&mut self, _: Purge, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let now = crate::core::ids::now_ms();
        let sessions = crate::accounts::store::purge_expired_sessions(&mut conn, now)?;
        let keys = crate::storage::idempotency::purge(&mut conn, now)?;
        Ok((sessions, keys))
    }
}
