//! Durable timers: deadlines are columns of `orders` (pay deadline,
//! auto-complete); one scheduler asks the database what fell due (including
//! while the server was down) and acts through the owning order actors.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, WrapFuture};
use futures_util::StreamExt;

use super::inventory::InventoryRegistry;
use super::order_actor::{OrderRegistry, Request};
use super::store::due::DueOrders;
use crate::animals::store::{DueClaims, EndClaim};
use crate::storage::Db;

const TICK: Duration = Duration::from_millis(500);
/// Due orders handled at once.
const CONCURRENCY: usize = 32;

pub struct Scheduler {
    pub db: Db,
    pub orders: Arc<OrderRegistry>,
    pub inventory: Arc<InventoryRegistry>,
    busy: bool,
}

impl Scheduler {
    pub fn new(db: Db, orders: Arc<OrderRegistry>, inventory: Arc<InventoryRegistry>) -> Self {
        Scheduler {
            db,
            orders,
            inventory,
            busy: false,
        }
    }
}

/// Frees the animals whose claim period ended; memory follows the database.
async fn end_claims(db: &Db, inventory: &InventoryRegistry) {
    let due = match db
        .call(DueClaims {
            now_ms: crate::core::ids::now_ms(),
        })
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler could not read ended claims");
            return;
        }
    };
    for (animal_id, order_id, _) in due {
        match db
            .call(EndClaim {
                animal_id,
                order_id,
            })
            .await
        {
            Ok(Some((product, version))) => inventory.release_committed(product, 1, version),
            Ok(None) => {}
            Err(e) => tracing::debug!(animal_id, error = %e, "claim end deferred"),
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The first tick comes at once: catch up with what fell due while down.
        ctx.run_interval(TICK, |this, ctx| {
            if this.busy {
                return;
            }
            this.busy = true;
            let (db, orders, inventory) =
                (this.db.clone(), this.orders.clone(), this.inventory.clone());
            ctx.spawn(
                async move {
                    // Claim ends run whatever happens to the order timers.
                    end_claims(&db, &inventory).await;
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
