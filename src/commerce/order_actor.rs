//! One actor per live order: every write to an order passes through it, one
//! at a time (`AtomicResponse` keeps the mailbox closed until the database
//! answered). Idle actors stop; the next message rebuilds one from the
//! database. The database update is also conditional on the status the actor
//! saw, so even a second node could not apply a transition twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AtomicResponse, Context, Handler, Message, WrapFuture};

use super::inventory::InventoryRegistry;
use super::model::{
    decide, Caller, Command, Effect, Facts, OrderView, PaymentView, Rejection, Status,
};
use super::store::order_writes::{
    apply_transition, ensure_payment, EnsurePayment, IsAdmin, LoadOrder, LoadPayment,
    MarkRefundNeeded, PaymentFailed, Transition,
};
use super::store::{OrderItemRow, OrderRow, PaymentRow};
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::keyed::{retire_when_idle, Keyed, KeyedActor, StartBy};
use crate::runtime::relay::{Nudge, Relay};
use crate::social::notifier::{self};
use crate::storage::group::GroupCommit;
use crate::storage::Db;

/// An order actor with no message for this long stops.
const IDLE: Duration = Duration::from_secs(30);
/// How long a request may wait behind others for its order's actor.
const START_WITHIN: Duration = Duration::from_secs(10);
/// Live order actors at most; past it new ones are refused with 503.
pub const MAX_ORDER_ACTORS: usize = 500_000;

/// Stock a committed transition gave back: (product, quantity, the product's
/// `stock_version` after that commit), for memory to follow exactly once.
pub type Released = (i64, i64, i64);

/// What the actor knows of its order.
#[derive(Clone)]
pub struct Loaded {
    pub order: OrderRow,
    pub items: Vec<OrderItemRow>,
    pub owner_id: i64,
    /// (product, category) of each item. A product's category decides its
    /// rebate rules and whether it is an animal's claim; it is read once with
    /// the order, so the transition's hooks need not read it again.
    pub categories: Vec<(i64, String)>,
    /// The order's payment once this actor created or read it. Payments are
    /// only created through the order's actor and their id and amount never
    /// change, so a provider notice can be checked without a read.
    pub payment: Option<PaymentRow>,
    /// Known to have no payment yet (the state came from the order's
    /// creation), so `pay` can insert one without first finding out.
    pub unpaid_fresh: bool,
}

pub enum Request {
    /// A user action or a timer.
    Command { caller: Option<i64>, cmd: Command },
    /// Read the order (visibility checked).
    View { caller: i64 },
    /// The buyer reviews the completed order (once).
    Review {
        caller: i64,
        rating: i64,
        body: String,
    },
    /// The provider says a payment succeeded or failed.
    PaymentNotice {
        payment_id: i64,
        amount_cents: i64,
        succeeded: bool,
    },
}

pub enum Reply {
    Order(OrderView),
    Payment(PaymentView),
    Review(super::store::reviews::ReviewView),
    Applied,
}

pub struct OrderMsg {
    pub req: Request,
    pub start_by: StartBy,
}

impl Message for OrderMsg {
    type Result = Result<Reply, ApiError>;
}

/// What an order actor works with: reads on the executor, writes by group commit.
#[derive(Clone)]
pub struct OrderCtx {
    pub db: Db,
    pub commit: GroupCommit,
    pub ctx: Arc<Ctx>,
    /// Sockets, for the notifications a transition stored.
    pub registry: Arc<Registry>,
    /// What other domains do inside each transition.
    pub hooks: super::hooks::OrderHooks,
}

impl std::ops::Deref for OrderCtx {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

impl OrderCtx {
    /// Applies a transition; returns the new state and the stock the database
    /// gave back (for memory to follow). Pushes the notifications the
    /// transition stored once it has committed.
    async fn transition(&self, t: Transition) -> Result<(Loaded, Vec<Released>), ApiError> {
        let (ctx, hooks) = (self.ctx.clone(), self.hooks.clone());
        let order_id = t.before.order.id;
        let applied = self
            .commit
            .run_for(order_id, move |c| {
                apply_transition(c, &ctx, &hooks, t.clone())
            })
            .await?;
        notifier::push_all(&self.registry, &applied.notifications);
        let released = applied
            .released
            .into_iter()
            .map(|(product, qty, version)| {
                // Set when the batch wrote its stock, before the commit. Were it
                // missing, version 0 makes a loaded actor ignore the release:
                // it undercounts until it reloads, and never oversells.
                let v = version.get().unwrap_or_else(|| {
                    tracing::error!(product, "a committed stock release has no version");
                    0
                });
                (product, qty, v)
            })
            .collect();
        Ok((applied.loaded, released))
    }

    async fn review(
        &self,
        r: super::store::reviews::NewReview,
    ) -> Result<super::store::reviews::ReviewView, ApiError> {
        let ctx = self.ctx.clone();
        self.commit
            .run_for(r.order_id, move |c| {
                super::store::reviews::insert_review(c, &ctx.ids, r.clone())
            })
            .await
    }

    async fn ensure_payment(&self, m: EnsurePayment) -> Result<PaymentRow, ApiError> {
        let ctx = self.ctx.clone();
        self.commit
            .run_for(m.order_id, move |c| ensure_payment(c, &ctx, m.clone()))
            .await
    }
}

pub struct OrderActor {
    order_id: i64,
    db: OrderCtx,
    inventory: Arc<InventoryRegistry>,
    relay: Addr<Relay>,
    registry: Arc<OrderRegistry>,
    state: Option<Loaded>,
    last_active: Instant,
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        retire_when_idle(ctx, IDLE);
    }
}

impl KeyedActor for OrderActor {
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

fn reject(r: Rejection) -> ApiError {
    match r {
        Rejection::NotVisible => ApiError::not_found("no such order"),
        Rejection::Forbidden => ApiError::forbidden("you may not do this to this order"),
        Rejection::InvalidState => ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            "the order is not in a state that allows this",
        ),
        Rejection::RefundAlreadyRequested => ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            "a refund is already requested",
        ),
        Rejection::AwaitingAddress => ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            "the gift's recipient has not given a delivery address yet",
        ),
    }
}

/// What the transition rules need of the order.
fn facts(o: &OrderRow) -> Facts {
    Facts {
        status: o.status(),
        refund_requested: o.refund_requested,
        awaiting_address: o.gift_to_user_id.is_some() && o.shipping_address.is_none(),
    }
}

async fn caller_of(
    db: &OrderCtx,
    loaded: &Loaded,
    caller: Option<i64>,
) -> Result<Caller, ApiError> {
    let Some(uid) = caller else {
        return Ok(Caller::SYSTEM);
    };
    let is_buyer = uid == loaded.order.buyer_id;
    let is_owner = uid == loaded.owner_id;
    let is_recipient = loaded.order.gift_to_user_id == Some(uid);
    let is_admin = if is_buyer || is_owner || is_recipient {
        false
    } else {
        db.call(IsAdmin { user_id: uid }).await?
    };
    Ok(Caller {
        is_buyer,
        is_owner,
        is_admin,
        is_recipient,
    })
}

/// Runs one request against a (possibly freshly loaded) order.
async fn serve(
    db: OrderCtx,
    order_id: i64,
    state: Option<Loaded>,
    req: Request,
) -> (Option<Loaded>, Result<(Reply, Vec<Released>), ApiError>) {
    let loaded = match state {
        Some(s) => s,
        None => match db.call(LoadOrder { order_id }).await {
            Ok(Some(s)) => s,
            Ok(None) => return (None, Err(ApiError::not_found("no such order"))),
            Err(e) => return (None, Err(e)),
        },
    };
    let result = run(&db, &loaded, req).await;
    match result {
        Ok((reply, new_state, released)) => {
            (Some(new_state.unwrap_or(loaded)), Ok((reply, released)))
        }
        // After any failure reload next time: the database is the truth.
        Err(e) => (None, Err(e)),
    }
}

type Outcome = (Reply, Option<Loaded>, Vec<Released>);

async fn run(db: &OrderCtx, loaded: &Loaded, req: Request) -> Result<Outcome, ApiError> {
    let status = loaded.order.status();
    match req {
        Request::View { caller } => {
            let c = caller_of(db, loaded, Some(caller)).await?;
            if !c.sees() {
                return Err(ApiError::not_found("no such order"));
            }
            Ok((
                Reply::Order(loaded.order.view(&loaded.items)),
                None,
                Vec::new(),
            ))
        }
        Request::Review {
            caller,
            rating,
            body,
        } => {
            let c = caller_of(db, loaded, Some(caller)).await?;
            if !c.is_buyer {
                return Err(if c.sees() {
                    ApiError::forbidden("only the buyer reviews an order")
                } else {
                    ApiError::not_found("no such order")
                });
            }
            if status != Status::Completed {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::InvalidState,
                    "only a completed order can be reviewed",
                ));
            }
            let view = db
                .review(super::store::reviews::NewReview {
                    order_id: loaded.order.id,
                    merchant_id: loaded.order.merchant_id,
                    buyer_id: loaded.order.buyer_id,
                    rating,
                    body,
                })
                .await?;
            Ok((Reply::Review(view), None, Vec::new()))
        }
        Request::PaymentNotice {
            payment_id,
            amount_cents,
            succeeded,
        } => {
            let payment = match &loaded.payment {
                Some(p) if p.id == payment_id => p.clone(),
                // Not seen by this actor (or a stale id): the database decides.
                _ => db
                    .call(LoadPayment {
                        order_id: loaded.order.id,
                    })
                    .await?
                    .filter(|p| p.id == payment_id)
                    .ok_or_else(|| ApiError::invalid_input("no such payment for this order"))?,
            };
            if amount_cents != payment.amount_cents || amount_cents != loaded.order.total_cents {
                return Err(ApiError::invalid_input("amount does not match the order"));
            }
            if !succeeded {
                db.call(PaymentFailed { payment_id }).await?;
                return Ok((Reply::Applied, None, Vec::new()));
            }
            match decide(
                facts(&loaded.order),
                Caller::SYSTEM,
                &Command::PaymentSucceeded,
            )
            .map_err(reject)?
            {
                Effect::Move { to, .. } => {
                    let (new, _) = db
                        .transition(Transition::new(
                            loaded,
                            Command::PaymentSucceeded,
                            to,
                            false,
                            Some(payment_id),
                        ))
                        .await?;
                    Ok((Reply::Applied, Some(new), Vec::new()))
                }
                Effect::RecordForRefund => {
                    db.call(MarkRefundNeeded { payment_id }).await?;
                    Ok((Reply::Applied, None, Vec::new()))
                }
                _ => Ok((Reply::Applied, None, Vec::new())),
            }
        }
        Request::Command { caller, cmd } => {
            let c = caller_of(db, loaded, caller).await?;
            let now = now_ms();
            // Timers only act once due.
            match &cmd {
                Command::Expire if now < loaded.order.pay_deadline_ms => {
                    return Ok((Reply::Applied, None, Vec::new()));
                }
                Command::AutoComplete
                    if loaded.order.auto_complete_at_ms.is_none_or(|t| now < t) =>
                {
                    return Ok((Reply::Applied, None, Vec::new()));
                }
                _ => {}
            }
            let effect = decide(facts(&loaded.order), c, &cmd).map_err(reject)?;
            match (effect, &cmd) {
                (Effect::Nothing, Command::Pay) => {
                    // Known already (its id and amount never change): no write.
                    let p = match &loaded.payment {
                        Some(p) => p.clone(),
                        None => {
                            db.ensure_payment(EnsurePayment {
                                order_id: loaded.order.id,
                                amount_cents: loaded.order.total_cents,
                                fresh: loaded.unpaid_fresh,
                            })
                            .await?
                        }
                    };
                    let view = PaymentView {
                        payment_id: p.id,
                        order_id: p.order_id,
                        amount_cents: p.amount_cents,
                        provider: "mockpay",
                    };
                    let mut next = loaded.clone();
                    next.payment = Some(p);
                    next.unpaid_fresh = false;
                    Ok((Reply::Payment(view), Some(next), Vec::new()))
                }
                (Effect::Nothing | Effect::RecordForRefund, _) => Ok((
                    Reply::Order(loaded.order.view(&loaded.items)),
                    None,
                    Vec::new(),
                )),
                (Effect::Move { to, release_stock }, _) => {
                    let (new, released) = db
                        .transition(Transition::new(
                            loaded,
                            cmd.clone(),
                            to,
                            release_stock,
                            None,
                        ))
                        .await?;
                    Ok((
                        Reply::Order(new.order.view(&new.items)),
                        Some(new),
                        released,
                    ))
                }
                (Effect::SetAddress, _) => {
                    let t = Transition::new(loaded, cmd.clone(), status, false, None);
                    let (new, _) = db.transition(t).await?;
                    Ok((
                        Reply::Order(new.order.view(&new.items)),
                        Some(new),
                        Vec::new(),
                    ))
                }
                (Effect::SetRefundRequested(on), _) => {
                    let to = loaded.order.status();
                    let mut t = Transition::new(loaded, cmd.clone(), to, false, None);
                    t.refund_requested = on;
                    let (new, _) = db.transition(t).await?;
                    Ok((
                        Reply::Order(new.order.view(&new.items)),
                        Some(new),
                        Vec::new(),
                    ))
                }
            }
        }
    }
}

impl Handler<OrderMsg> for OrderActor {
    type Result = AtomicResponse<Self, Result<Reply, ApiError>>;

    fn handle(&mut self, msg: OrderMsg, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(e) = msg.start_by.check("order") {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))));
        }
        let fut = serve(self.db.clone(), self.order_id, self.state.take(), msg.req);
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(
            |(state, result), this, _| {
                if let Some(s) = &state {
                    let registry = &this.registry;
                    registry
                        .seeds
                        .remember_owner(s.order.merchant_id, s.owner_id);
                }
                this.state = state;
                this.last_active = Instant::now();
                let (reply, released) = result?;
                // The database gave the stock back; now memory may too.
                for (product, qty, version) in released {
                    this.inventory.release_committed(product, qty, version);
                }
                this.relay.do_send(Nudge);
                Ok(reply)
            },
        )))
    }
}

/// Finds or starts order actors.
pub struct OrderRegistry {
    actors: Keyed<OrderActor>,
    /// New orders' state, for their actors' first start.
    pub seeds: super::seeds::Seeds,
    db: OrderCtx,
    inventory: Arc<InventoryRegistry>,
    relay: Addr<Relay>,
}

impl OrderRegistry {
    pub fn new(db: OrderCtx, inventory: Arc<InventoryRegistry>, relay: Addr<Relay>) -> Arc<Self> {
        Arc::new(OrderRegistry {
            actors: Keyed::new("orders", MAX_ORDER_ACTORS, START_WITHIN),
            seeds: Default::default(),
            db,
            inventory,
            relay,
        })
    }

    fn addr(self: &Arc<Self>, order_id: i64) -> Result<Addr<OrderActor>, ApiError> {
        self.actors.get_or_start(order_id, || OrderActor {
            order_id,
            db: self.db.clone(),
            inventory: self.inventory.clone(),
            relay: self.relay.clone(),
            registry: self.clone(),
            state: self.seeds.take(order_id),
            last_active: Instant::now(),
        })
    }

    pub fn live(&self) -> usize {
        self.actors.len()
    }

    /// Sends a request to the order's actor, starting one if needed.
    pub async fn call(self: &Arc<Self>, order_id: i64, req: Request) -> Result<Reply, ApiError> {
        let addr = self.addr(order_id)?;
        let msg = OrderMsg {
            req,
            start_by: self.actors.start_by(),
        };
        match addr.send(msg).await {
            Ok(r) => r,
            // `send` has no timeout (the start deadline is the only one), so
            // this is `Closed`: it retired between lookup and send, and the
            // request never ran.
            Err(_) => Err(ApiError::unavailable("the order was busy; retry")),
        }
    }
}
