//! Durable timers: deadlines are columns of `orders` (pay deadline,
//! auto-complete); one scheduler asks the database what fell due (including
//! while the server was down) and acts through the owning order actors.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, WrapFuture};
use futures_util::StreamExt;

use super::order_actor::{OrderRegistry, Request};
use super::store::due::DueOrders;
use crate::storage::Db;

const TICK: Duration = Duration::from_millis(500);
/// Due orders handled at once.
const CONCURRENCY: usize = 32;

pub struct Scheduler {
    pub db: Db,
    pub orders: Arc<OrderRegistry>,
    leader: crate::runtime::cluster::Leadership,
    busy: bool,
}

impl Scheduler {
    pub fn new(
        db: Db,
        orders: Arc<OrderRegistry>,
        leader: crate::runtime::cluster::Leadership,
    ) -> Self {
        Scheduler {
            db,
            orders,
            leader,
            busy: false,
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The first tick comes at once: catch up with what fell due while down.
        ctx.run_interval(TICK, |this, ctx| {
            // One node acts on due orders: the cluster's leader (see
            // `runtime::cluster`); each action is guarded by the order's status.
            if this.busy || !this.leader.is_leader() {
                return;
            }
            this.busy = true;
            let (db, orders) = (this.db.clone(), this.orders.clone());
            ctx.spawn(
                async move {
                    let due = match db.call(DueOrders { now_ms: crate::core::ids::now_ms() }).await {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "scheduler could not read due orders");
                            return;
                        }
                    };
                    futures_util::stream::iter(due)
                        .for_each_concurrent(CONCURRENCY, |(id, cmd)| {
                            let orders = orders.clone();
                            async move {
                                if let Err(e) = orders.call(id, Request::Command { caller: None, cmd }).await {
                                    tracing::debug!(order_id = id, error = %e, "timer action deferred");
                                }
                            }
                        })
                        .await;
                }
                .into_actor(this)
                .map(|(), this, _| this.busy = false),
            );
        });
    }
}

use actix::ActorFutureExt as _;
