//! Batching of new orders: many orders, their items, their stock decrements,
//! their idempotency records and their `order.created` events written by one
//! job of the group commit (`db::group`), so they commit in the same
//! transaction as the payments and transitions queued beside them. Stock was
//! already reserved by the inventory actors; the 201 goes out only after this
//! commit.
//!
//! Why one job in the shared group commit, not a writer of its own: on SQLite
//! there is one writer anyway. With two writing connections (this batcher's
//! and the group committer's) each batch waited for the other's commit and
//! fsync, and began with its page cache discarded, because the other
//! connection had written meanwhile (the `orders` profile showed 6 % of the
//! committer in `pread` and 12 % of its time waiting for the lock).

use std::sync::Arc;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use tokio::sync::oneshot;

use super::inventory::Reservation;
use super::model::OrderView;
use super::store::order_inserts::write;
use super::store::{OrderItemRow, OrderRow};
use crate::core::error::ApiError;
use crate::runtime::context::Ctx;
use crate::storage::group::GroupCommit;
use crate::storage::DbConn;

/// Most orders in one transaction.
pub const MAX_BATCH: usize = 256;
/// Orders waiting for a batch before new ones get 503.
pub const MAX_QUEUED: usize = 8_192;

pub struct NewOrder {
    pub order: OrderRow,
    pub items: Vec<OrderItemRow>,
    /// (scope key, request hash) when the request carried an Idempotency-Key.
    pub idempotency: Option<(String, String)>,
}

/// What became of one new order.
pub enum Created {
    Stored(Box<OrderView>),
    /// Another request with the same key won the race: replay its response.
    Replay {
        status_code: u16,
        body: String,
    },
}

pub struct Submit {
    pub order: NewOrder,
    /// The order's stock, owned by the writer until the outcome is known:
    /// kept if the order committed, released (dropped) otherwise, whether or
    /// not the request that placed it is still waiting.
    pub reservations: Vec<Reservation>,
    pub reply: oneshot::Sender<Result<Created, ApiError>>,
}

impl Message for Submit {
    type Result = ();
}

#[derive(Clone)]
pub struct OrderWriter {
    addr: Addr<OrderBatcher>,
}

impl OrderWriter {
    pub fn start(commit: GroupCommit, shared: Arc<Ctx>) -> OrderWriter {
        let shared_gauge = shared.metrics.queue("order_writer", MAX_QUEUED);
        let batcher = OrderBatcher {
            commit,
            shared,
            pending: Vec::new(),
            flushing: false,
            in_flight: 0,
            gauge: shared_gauge,
        };
        // The bound `try_send` honours, set before the address exists.
        let addr = OrderBatcher::create(|ctx| {
            ctx.set_mailbox_capacity(MAX_QUEUED);
            batcher
        });
        OrderWriter { addr }
    }

    /// Stores the order; resolves after the commit. The writer takes over the
    /// reservations (see [`Submit::reservations`]): dropping this future
    /// after submission changes nothing about the order or its stock.
    pub async fn create(
        &self,
        order: NewOrder,
        reservations: Vec<Reservation>,
    ) -> Result<Created, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.addr
            .try_send(Submit {
                order,
                reservations,
                reply: tx,
            })
            .map_err(|_| ApiError::unavailable("too many orders in flight; retry shortly"))?;
        rx.await
            .map_err(|_| ApiError::unavailable("the order writer stopped"))?
    }
}

pub struct OrderBatcher {
    commit: GroupCommit,
    shared: Arc<Ctx>,
    pending: Vec<Submit>,
    flushing: bool,
    /// Orders in the batch being committed.
    in_flight: usize,
    gauge: crate::core::metrics::QueueGauge,
}

impl Actor for OrderBatcher {
    type Context = Context<Self>;
}

impl Handler<Submit> for OrderBatcher {
    type Result = ();
    fn handle(&mut self, msg: Submit, ctx: &mut Self::Context) {
        if self.pending.len() >= MAX_QUEUED {
            let _ = msg.reply.send(Err(ApiError::unavailable(
                "too many orders in flight; retry shortly",
            )));
            return;
        }
        self.pending.push(msg);
        self.gauge.set(self.pending.len() + self.in_flight);
        if !self.flushing {
            self.flush(ctx);
        }
    }
}

impl OrderBatcher {
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<Submit> = self.pending.drain(..take).collect();
        self.in_flight = take;
        let mut orders = Vec::with_capacity(take);
        let mut owners = Vec::with_capacity(take);
        for s in batch {
            orders.push(s.order);
            owners.push((s.reservations, s.reply));
        }
        let (commit, shared) = (self.commit.clone(), self.shared.clone());
        let fut = async move {
            let orders = Arc::new(orders);
            let job = {
                let (orders, shared) = (orders.clone(), shared.clone());
                move |c: &mut DbConn| write(c, &shared, &orders)
            };
            match commit.run(job).await {
                Ok(results) => results,
                Err(e) if orders.len() > 1 => {
                    // One bad order must not sink the others: retry one by
                    // one (each its own job, all in the next batches).
                    tracing::warn!(error = %e, "order batch failed; retrying orders one by one");
                    let singles = (0..orders.len()).map(|i| {
                        let (orders, shared) = (orders.clone(), shared.clone());
                        let commit = commit.clone();
                        async move {
                            let job = move |c: &mut DbConn| write(c, &shared, &orders[i..=i]);
                            match commit.run(job).await {
                                Ok(mut r) => r.pop().unwrap_or_else(|| {
                                    Err(ApiError::internal(anyhow::anyhow!("empty result")))
                                }),
                                Err(e) => Err(e),
                            }
                        }
                    });
                    futures_util::future::join_all(singles).await
                }
                Err(e) => vec![Err(e)],
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |results, this, ctx| {
            for ((reservations, reply), r) in owners.into_iter().zip(results) {
                settle(reservations, &r);
                let _ = reply.send(r);
            }
            this.flushing = false;
            this.in_flight = 0;
            this.gauge.set(this.pending.len());
            this.flush(ctx);
        }));
    }
}

/// The outcome of an order is known: a stored order keeps its units (the
/// database took them); any other outcome gives them back in memory.
fn settle(reservations: Vec<Reservation>, outcome: &Result<Created, ApiError>) {
    if matches!(outcome, Ok(Created::Stored(_))) {
        reservations.into_iter().for_each(Reservation::keep);
    }
    // Otherwise dropped here: released.
}
