//! One rebate actor per order: every rebate write for that order passes
//! through it, one at a time. It is fed by order events (at least once, in any
//! order) and by the settlement timer; each time it reconciles the order's
//! records with the stored order (see `engine::reconcile`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler, Message,
    WrapFuture,
};
use futures_util::StreamExt;

use super::store::engine;
use crate::commerce::model::OrderEvent;
use crate::core::error::ApiError;
use crate::realtime::registry::Registry;
use crate::runtime::bus::Event;
use crate::runtime::context::Ctx;
use crate::runtime::dead_letter::{Apply, Consumer};
use crate::runtime::keyed::{retire_when_idle, Keyed, KeyedActor, StartBy};
use crate::runtime::relay::{Nudge, Relay};
use crate::storage::group::GroupCommit;
use crate::storage::{Db, DbExecutor};

const IDLE: Duration = Duration::from_secs(30);
/// How long a reconcile may wait behind others for its order's actor.
const START_WITHIN: Duration = Duration::from_secs(10);
const SETTLE_TICK: Duration = Duration::from_millis(500);
const SETTLE_BATCH: i64 = 500;
pub const MAX_REBATE_ACTORS: usize = 200_000;
pub const CONSUMER: &str = "rebates";
/// Events reconciled at once.
const CONCURRENCY: usize = 256;
pub const PATTERNS: &[&str] = &[
    OrderEvent::Paid.as_str(),
    OrderEvent::Completed.as_str(),
    OrderEvent::Refunded.as_str(),
];

pub struct RebateActor {
    order_id: i64,
    commit: GroupCommit,
    shared: Arc<Ctx>,
    sockets: Arc<Registry>,
    relay: Addr<Relay>,
    registry: Arc<RebateRegistry>,
    last_active: Instant,
}

impl Actor for RebateActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        retire_when_idle(ctx, IDLE);
    }
}

impl KeyedActor for RebateActor {
    fn key(&self) -> i64 {
        self.order_id
    }
    fn last_active(&self) -> Instant {
        self.last_active
    }
    fn registry(&self) -> &Keyed<Self> {
        &self.registry.actors
    }
}

pub struct Run {
    pub start_by: StartBy,
}

impl Message for Run {
    type Result = Result<usize, ApiError>;
}

impl Handler<Run> for RebateActor {
    type Result = AtomicResponse<Self, Result<usize, ApiError>>;
    fn handle(&mut self, run: Run, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(e) = run.start_by.check("order's rebates") {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))));
        }
        let (commit, shared, order_id) = (self.commit.clone(), self.shared.clone(), self.order_id);
        // The reconcile runs as a group-commit job: many orders share one commit.
        let job = move |c: &mut crate::storage::DbConn| {
            engine::reconcile(c, &shared.ids, order_id, crate::core::ids::now_ms())
        };
        AtomicResponse::new(Box::pin(
            async move { commit.run_for(order_id, job).await }
                .into_actor(self)
                .map(|res, this, _| {
                    this.last_active = Instant::now();
                    let done = res?;
                    // Committed: now the stored notifications may go out.
                    crate::social::notifier::push_all(&this.sockets, &done.notifications);
                    if done.changed > 0 {
                        this.relay.do_send(Nudge);
                    }
                    Ok(done.changed)
                }),
        ))
    }
}

pub struct RebateRegistry {
    actors: Keyed<RebateActor>,
    commit: GroupCommit,
    shared: Arc<Ctx>,
    sockets: Arc<Registry>,
    relay: Addr<Relay>,
}

impl RebateRegistry {
    pub fn new(
        commit: GroupCommit,
        shared: Arc<Ctx>,
        sockets: Arc<Registry>,
        relay: Addr<Relay>,
    ) -> Arc<Self> {
        Arc::new(RebateRegistry {
            actors: Keyed::new("rebate reconciles", MAX_REBATE_ACTORS, START_WITHIN),
            commit,
            shared,
            sockets,
            relay,
        })
    }

    pub async fn reconcile(self: &Arc<Self>, order_id: i64) -> Result<usize, ApiError> {
        let addr = self.actors.get_or_start(order_id, || RebateActor {
            order_id,
            commit: self.commit.clone(),
            shared: self.shared.clone(),
            sockets: self.sockets.clone(),
            relay: self.relay.clone(),
            registry: self.clone(),
            last_active: Instant::now(),
        })?;
        addr.send(Run {
            start_by: self.actors.start_by(),
        })
        .await
        .map_err(|e| ApiError::unavailable_because(anyhow::anyhow!("rebate actor: {e}")))?
    }
}

/// The rebate engine as a bus consumer of order events (run by
/// `infra::dead_letter::consume`). Reconcile reads the stored order, so
/// events may be handled in any order and at once (each order's actor still
/// serializes its own).
pub fn consumer(registry: Arc<RebateRegistry>) -> Consumer {
    let apply: Apply = Arc::new(move |event: Event| {
        let registry = registry.clone();
        Box::pin(async move {
            let Some(order_id) = event
                .payload
                .get("order_id")
                .and_then(serde_json::Value::as_i64)
            else {
                return Ok(());
            };
            // The usual case: the order's hooks (rebates among them, see
            // `rebates::hooks`) followed in the transition's own transaction,
            // so the records are already durable. Events without the flag
            // (or with it false) are reconciled here. `rebates_reconciled`
            // is the flag's name in events stored before the hooks.
            let reconciled = ["hooks_followed", "rebates_reconciled"]
                .iter()
                .find_map(|k| event.payload.get(*k))
                .and_then(serde_json::Value::as_bool);
            if reconciled == Some(true) {
                return Ok(());
            }
            registry.reconcile(order_id).await.map(|_| ())
        })
    });
    Consumer {
        name: CONSUMER,
        patterns: PATTERNS,
        retired: &[],
        concurrency: CONCURRENCY,
        apply,
    }
}

/// Due orders and the undated scan's next cursor (see `engine::due_orders`).
pub struct DueRebates {
    pub undated_after: i64,
}

impl Message for DueRebates {
    type Result = Result<(Vec<i64>, i64), ApiError>;
}

impl Handler<DueRebates> for DbExecutor {
    type Result = Result<(Vec<i64>, i64), ApiError>;
    fn handle(&mut self, msg: DueRebates, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        engine::due_orders(
            &mut conn,
            crate::core::ids::now_ms(),
            SETTLE_BATCH,
            msg.undated_after,
        )
    }
}

/// The settlement timer: holds that ended (also while the server was down).
pub struct Settler {
    pub db: Db,
    pub registry: Arc<RebateRegistry>,
    busy: bool,
    /// Where the walk over undated pending rebates goes on next tick.
    undated_after: i64,
}

impl Settler {
    pub fn new(db: Db, registry: Arc<RebateRegistry>) -> Self {
        Settler {
            db,
            registry,
            busy: false,
            undated_after: 0,
        }
    }
}

impl Actor for Settler {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SETTLE_TICK, |this, ctx| {
            // One node settles: the cluster's leader (see `runtime::cluster`).
            if this.busy || !this.registry.shared.leader.is_leader() {
                return;
            }
            this.busy = true;
            let (db, registry) = (this.db.clone(), this.registry.clone());
            let undated_after = this.undated_after;
            ctx.spawn(
                async move {
                    let (due, next) = match db.call(DueRebates { undated_after }).await {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "settlement could not read due rebates");
                            return undated_after;
                        }
                    };
                    futures_util::stream::iter(due)
                        .for_each_concurrent(16, |order_id| {
                            let registry = registry.clone();
                            async move {
                                if let Err(e) = registry.reconcile(order_id).await {
                                    tracing::debug!(order_id, error = %e, "settlement deferred");
                                }
                            }
                        })
                        .await;
                    next
                }
                .into_actor(this)
                .map(|next, this, _| {
                    this.undated_after = next;
                    this.busy = false;
                }),
            );
        });
    }
}
