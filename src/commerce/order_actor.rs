//! One actor per live order: every write to an order passes through it, one
//! at a time (`AtomicResponse` keeps the mailbox closed until the database
//! answered). Idle actors stop; the next message rebuilds one from the
//! database. The database update is also conditional on the status the actor
//! saw, so even a second node could not apply a transition twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler,
    Message, WrapFuture,
};
use dashmap::DashMap;
use diesel::prelude::*;

use super::inventory::InventoryRegistry;
use super::model::{decide, Caller, Command, Effect, OrderView, PaymentView, Rejection, Status};
use super::store::{self, OrderItemRow, OrderRow, PaymentRow};
use crate::accounts::domain::{has_role, Role};
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::relay::{Nudge, Relay};
use crate::social::notifier::{self, Stored};
use crate::storage::group::GroupCommit;
use crate::storage::outbox;
use crate::storage::schema::{orders, payments};
use crate::storage::{Db, DbConn, DbExecutor};

/// An order actor with no message for this long stops.
const IDLE: Duration = Duration::from_secs(30);
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
    /// The order's payment once this actor created or read it. Payments are
    /// only created through the order's actor and their id and amount never
    /// change, so a provider notice can be checked without a read.
    pub payment: Option<PaymentRow>,
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
    Review(super::reviews::ReviewView),
    Applied,
}

pub struct OrderMsg(pub Request);

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
        let ctx = self.ctx.clone();
        let applied = self
            .commit
            .run(move |c| apply_transition(c, &ctx, t.clone()))
            .await?;
        notifier::push_all(&self.registry, &applied.notifications);
        Ok((applied.loaded, applied.released))
    }

    async fn review(
        &self,
        r: super::reviews::NewReview,
    ) -> Result<super::reviews::ReviewView, ApiError> {
        let ctx = self.ctx.clone();
        self.commit
            .run(move |c| super::reviews::insert_review(c, &ctx.ids, r.clone()))
            .await
    }

    async fn ensure_payment(&self, m: EnsurePayment) -> Result<PaymentRow, ApiError> {
        let ctx = self.ctx.clone();
        self.commit
            .run(move |c| ensure_payment(c, &ctx, m.clone()))
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
        ctx.run_interval(IDLE, |this, ctx| {
            if this.last_active.elapsed() >= IDLE
                && this.registry.retire(this.order_id, &ctx.address())
            {
                ctx.stop();
            }
        });
    }
}

fn reject(r: Rejection) -> ApiError {
    match r {
        Rejection::NotVisible => ApiError::not_found("no such order"),
        Rejection::Forbidden => ApiError::forbidden("you may not do this to this order"),
        Rejection::InvalidState => ApiError::conflict(
            "invalid_state",
            "the order is not in a state that allows this",
        ),
        Rejection::RefundAlreadyRequested => {
            ApiError::conflict("invalid_state", "a refund is already requested")
        }
    }
}

async fn caller_of(
    db: &OrderCtx,
    loaded: &Loaded,
    caller: Option<i64>,
) -> Result<Caller, ApiError> {
    let Some(uid) = caller else {
        return Ok(Caller {
            is_buyer: false,
            is_owner: false,
            is_admin: false,
        });
    };
    let is_buyer = uid == loaded.order.buyer_id;
    let is_owner = uid == loaded.owner_id;
    let is_admin = if is_buyer || is_owner {
        false
    } else {
        db.call(IsAdmin { user_id: uid }).await?
    };
    Ok(Caller {
        is_buyer,
        is_owner,
        is_admin,
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
            if !(c.is_buyer || c.is_owner || c.is_admin) {
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
                return Err(if c.is_owner || c.is_admin {
                    ApiError::forbidden("only the buyer reviews an order")
                } else {
                    ApiError::not_found("no such order")
                });
            }
            if status != Status::Completed {
                return Err(ApiError::conflict(
                    "invalid_state",
                    "only a completed order can be reviewed",
                ));
            }
            let view = db
                .review(super::reviews::NewReview {
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
            let system = Caller {
                is_buyer: false,
                is_owner: false,
                is_admin: false,
            };
            match decide(
                status,
                loaded.order.refund_requested,
                system,
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
            let effect = decide(status, loaded.order.refund_requested, c, &cmd).map_err(reject)?;
            match (effect, &cmd) {
                (Effect::Nothing, Command::Pay) => {
                    let p = db
                        .ensure_payment(EnsurePayment {
                            order_id: loaded.order.id,
                            amount_cents: loaded.order.total_cents,
                        })
                        .await?;
                    let view = PaymentView {
                        payment_id: p.id,
                        order_id: p.order_id,
                        amount_cents: p.amount_cents,
                        provider: "mockpay",
                    };
                    let mut next = loaded.clone();
                    next.payment = Some(p);
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
        let fut = serve(self.db.clone(), self.order_id, self.state.take(), msg.0);
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(
            |(state, result), this, _| {
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
    actors: DashMap<i64, Addr<OrderActor>>,
    db: OrderCtx,
    inventory: Arc<InventoryRegistry>,
    relay: Addr<Relay>,
}

impl OrderRegistry {
    pub fn new(db: OrderCtx, inventory: Arc<InventoryRegistry>, relay: Addr<Relay>) -> Arc<Self> {
        Arc::new(OrderRegistry {
            actors: DashMap::new(),
            db,
            inventory,
            relay,
        })
    }

    fn addr(self: &Arc<Self>, order_id: i64) -> Result<Addr<OrderActor>, ApiError> {
        if let Some(a) = self.actors.get(&order_id) {
            return Ok(a.clone());
        }
        if self.actors.len() >= MAX_ORDER_ACTORS {
            return Err(ApiError::unavailable(
                "too many orders in flight; retry shortly",
            ));
        }
        Ok(self
            .actors
            .entry(order_id)
            .or_insert_with(|| {
                OrderActor {
                    order_id,
                    db: self.db.clone(),
                    inventory: self.inventory.clone(),
                    relay: self.relay.clone(),
                    registry: self.clone(),
                    state: None,
                    last_active: Instant::now(),
                }
                .start()
            })
            .clone())
    }

    fn retire(&self, order_id: i64, addr: &Addr<OrderActor>) -> bool {
        self.actors.remove_if(&order_id, |_, a| a == addr).is_some()
    }

    pub fn live(&self) -> usize {
        self.actors.len()
    }

    /// Sends a request to the order's actor, starting one if needed.
    pub async fn call(self: &Arc<Self>, order_id: i64, req: Request) -> Result<Reply, ApiError> {
        let addr = self.addr(order_id)?;
        match addr.send(OrderMsg(req)).await {
            Ok(r) => r,
            // It retired between lookup and send; the request never ran.
            Err(actix::MailboxError::Closed) => {
                Err(ApiError::unavailable("the order was busy; retry"))
            }
            Err(actix::MailboxError::Timeout) => {
                Err(ApiError::unavailable("the order did not answer in time"))
            }
        }
    }
}

// ---- database side -------------------------------------------------------

pub struct LoadOrder {
    pub order_id: i64,
}

impl Message for LoadOrder {
    type Result = Result<Option<Loaded>, ApiError>;
}

impl Handler<LoadOrder> for DbExecutor {
    type Result = Result<Option<Loaded>, ApiError>;
    fn handle(&mut self, msg: LoadOrder, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let Some((order, items)) = store::find_order(&mut conn, msg.order_id)? else {
            return Ok(None);
        };
        let owner_id =
            store::find_merchant(&mut conn, order.merchant_id)?.map_or(0, |m| m.owner_id);
        Ok(Some(Loaded {
            order,
            items,
            owner_id,
            payment: None,
        }))
    }
}

pub struct IsAdmin {
    pub user_id: i64,
}

impl Message for IsAdmin {
    type Result = Result<bool, ApiError>;
}

impl Handler<IsAdmin> for DbExecutor {
    type Result = Result<bool, ApiError>;
    fn handle(&mut self, msg: IsAdmin, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(crate::accounts::store::find_user(&mut conn, msg.user_id)?
            .is_some_and(|u| has_role(&u.roles, Role::Admin)))
    }
}

pub struct LoadPayment {
    pub order_id: i64,
}

impl Message for LoadPayment {
    type Result = Result<Option<PaymentRow>, ApiError>;
}

impl Handler<LoadPayment> for DbExecutor {
    type Result = Result<Option<PaymentRow>, ApiError>;
    fn handle(&mut self, msg: LoadPayment, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(store::find_payment_by_order(&mut conn, msg.order_id)?)
    }
}

/// The order's payment, created on the first call (`pay` is idempotent).
#[derive(Clone)]
pub struct EnsurePayment {
    pub order_id: i64,
    pub amount_cents: i64,
}

/// The order's payment, created on the first call (a group-commit job).
pub fn ensure_payment(
    conn: &mut DbConn,
    shared: &Ctx,
    msg: EnsurePayment,
) -> Result<PaymentRow, ApiError> {
    let p = match store::find_payment_by_order(conn, msg.order_id)? {
        Some(p) => p,
        None => {
            let row = PaymentRow {
                id: shared.ids.next_id(),
                order_id: msg.order_id,
                provider: "mockpay".into(),
                amount_cents: msg.amount_cents,
                status: "created".into(),
                created_at_ms: now_ms(),
                notified_at_ms: None,
            };
            crate::storage::direct::execute(
                conn,
                diesel::insert_into(payments::table).values(&row),
            )?;
            row
        }
    };
    Ok(p)
}

pub struct PaymentFailed {
    pub payment_id: i64,
}

impl Message for PaymentFailed {
    type Result = Result<(), ApiError>;
}

impl Handler<PaymentFailed> for DbExecutor {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: PaymentFailed, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let failed = diesel::update(
            payments::table
                .find(msg.payment_id)
                .filter(payments::status.eq("created")),
        )
        .set((
            payments::status.eq("failed"),
            payments::notified_at_ms.eq(Some(now_ms())),
        ));
        crate::storage::transaction(&mut conn, |c| failed.clone().execute(c))?;
        Ok(())
    }
}

/// A success that arrived for an order that can no longer be paid.
pub struct MarkRefundNeeded {
    pub payment_id: i64,
}

impl Message for MarkRefundNeeded {
    type Result = Result<(), ApiError>;
}

impl Handler<MarkRefundNeeded> for DbExecutor {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: MarkRefundNeeded, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| {
            diesel::update(payments::table.find(msg.payment_id))
                .set((
                    payments::status.eq("refund_needed"),
                    payments::notified_at_ms.eq(Some(now_ms())),
                ))
                .execute(c)
        })?;
        Ok(())
    }
}

/// One state change, its stock release, its payment update and its event,
/// in one transaction, applied only if the order is still as the actor saw it.
#[derive(Clone)]
pub struct Transition {
    pub before: Loaded,
    pub cmd: Command,
    pub to: Status,
    pub release_stock: bool,
    pub refund_requested: bool,
    pub payment_id: Option<i64>,
}

impl Transition {
    fn new(
        before: &Loaded,
        cmd: Command,
        to: Status,
        release_stock: bool,
        payment_id: Option<i64>,
    ) -> Self {
        Transition {
            refund_requested: before.order.refund_requested,
            before: before.clone(),
            cmd,
            to,
            release_stock,
            payment_id,
        }
    }

    fn event_kind(&self) -> &'static str {
        match (&self.cmd, self.to) {
            (Command::RequestRefund { .. }, _) => "order.refund_requested",
            (Command::RejectRefund, _) => "order.refund_rejected",
            (_, Status::Paid) => "order.paid",
            (_, Status::Shipped) => "order.shipped",
            (_, Status::Completed) => "order.completed",
            (Command::Expire, Status::Cancelled) => "order.expired",
            (_, Status::Cancelled) => "order.cancelled",
            (_, Status::Refunded) => "order.refunded",
            (_, Status::PendingPayment) => "order.updated",
        }
    }
}

/// What a committed transition leaves for the actor.
pub struct Applied {
    pub loaded: Loaded,
    pub released: Vec<Released>,
    pub notifications: Stored,
}

/// Applies one transition in the caller's transaction (a group-commit job,
/// whose savepoint rolls all of it back on any error).
pub fn apply_transition(
    conn: &mut DbConn,
    shared: &Ctx,
    t: Transition,
) -> Result<Applied, ApiError> {
    let now = now_ms();
    let before = &t.before.order;
    let mut after = before.clone();
    after.status = t.to.as_str().to_owned();
    after.refund_requested = t.refund_requested;
    after.updated_at_ms = now;
    match (&t.cmd, t.to) {
        (_, Status::Paid) => after.paid_at_ms = Some(now),
        (
            Command::Ship {
                carrier,
                tracking_no,
            },
            Status::Shipped,
        ) => {
            after.shipped_at_ms = Some(now);
            after.carrier = carrier.clone();
            after.tracking_no = tracking_no.clone();
            let secs = i64::try_from(shared.config.auto_complete_secs).unwrap_or(i64::MAX / 2_000);
            after.auto_complete_at_ms = Some(now.saturating_add(secs.saturating_mul(1000)));
        }
        (_, Status::Completed) => after.completed_at_ms = Some(now),
        (Command::RequestRefund { reason }, _) => after.refund_reason = Some(reason.clone()),
        (_, Status::Refunded) => after.refund_requested = false,
        _ => {}
    }
    let kind = t.event_kind();
    let ids = &shared.ids;
    let items = t.before.items.clone();
    let owner = t.before.owner_id;
    // No savepoint of its own: it runs as a group-commit job, whose savepoint
    // already makes it all or nothing (on SQLite each savepoint level costs
    // sub-journal writes of every page it touches).
    let apply = |c: &mut DbConn| -> Result<(Vec<Released>, Stored), ApiError> {
        // A cached statement (see `RowUpdate`); the WHERE keeps the actor's
        // view honest: it fails if the row is not what the actor loaded.
        let n = {
            use crate::storage::direct::{Assign::To, RowUpdate, Val};
            use diesel::Column;
            crate::storage::direct::execute(
                c,
                RowUpdate {
                    table: "orders",
                    set: vec![
                        (orders::status::NAME, To(Val::Text(&after.status))),
                        (
                            orders::refund_requested::NAME,
                            To(Val::Bool(after.refund_requested)),
                        ),
                        (
                            orders::refund_reason::NAME,
                            To(Val::NullText(after.refund_reason.as_deref())),
                        ),
                        (orders::paid_at_ms::NAME, To(Val::NullInt(after.paid_at_ms))),
                        (
                            orders::shipped_at_ms::NAME,
                            To(Val::NullInt(after.shipped_at_ms)),
                        ),
                        (
                            orders::completed_at_ms::NAME,
                            To(Val::NullInt(after.completed_at_ms)),
                        ),
                        (
                            orders::auto_complete_at_ms::NAME,
                            To(Val::NullInt(after.auto_complete_at_ms)),
                        ),
                        (
                            orders::carrier::NAME,
                            To(Val::NullText(after.carrier.as_deref())),
                        ),
                        (
                            orders::tracking_no::NAME,
                            To(Val::NullText(after.tracking_no.as_deref())),
                        ),
                        (orders::updated_at_ms::NAME, To(Val::Int(now))),
                    ],
                    filter: vec![
                        (orders::id::NAME, Val::Int(before.id)),
                        (orders::status::NAME, Val::Text(&before.status)),
                        (
                            orders::refund_requested::NAME,
                            Val::Bool(before.refund_requested),
                        ),
                    ],
                },
            )?
        };
        if n != 1 {
            return Err(ApiError::conflict(
                "invalid_state",
                "the order changed meanwhile; retry",
            ));
        }
        let mut released = Vec::new();
        if t.release_stock {
            let was_paid = before.status() != Status::PendingPayment;
            for i in &items {
                // A paid animal claim gives its animal back only if the claim
                // still holds it: once the claim period ended the animal was
                // freed already (and may be claimed again).
                if was_paid
                    && crate::animals::store::is_animal_product(c, i.product_id)?
                    && !crate::animals::store::release_claim(c, i.product_id, before.id)?
                {
                    continue;
                }
                let version = store::add_stock(c, i.product_id, i.quantity)?;
                released.push((i.product_id, i.quantity, version));
            }
        }
        // The payment itself, not a later change that leaves the order paid
        // (a refund request keeps the status): that would restart the period.
        if t.to == Status::Paid && before.status() == Status::PendingPayment {
            // A paid claim holds its animal for the claim period (no-op for other products).
            let claim_day_ms = i64::try_from(shared.config.claim_day_secs)
                .unwrap_or(86_400)
                .saturating_mul(1000);
            for i in &items {
                // A cached SELECT first: diesel never caches an UPDATE's
                // prepared statement, and almost no product is an animal's.
                if !crate::animals::store::is_animal_product(c, i.product_id)? {
                    continue;
                }
                crate::animals::store::hold_for_claim(
                    c,
                    i.product_id,
                    before.id,
                    before.buyer_id,
                    now,
                    claim_day_ms,
                )?;
            }
        }
        if let Some(pid) = t.payment_id {
            use crate::storage::direct::{Assign::To, RowUpdate, Val};
            use diesel::Column;
            crate::storage::direct::execute(
                c,
                RowUpdate {
                    table: "payments",
                    set: vec![
                        (payments::status::NAME, To(Val::Text("succeeded"))),
                        (payments::notified_at_ms::NAME, To(Val::NullInt(Some(now)))),
                    ],
                    filter: vec![(payments::id::NAME, Val::Int(pid))],
                },
            )?;
        }
        // Whom to tell: stored below with the event, in this transaction, and
        // pushed by the actor after the commit (the notifier has nothing left
        // to store for order events).
        let data = serde_json::json!({"order_id": after.id, "status": after.status, "total_cents": after.total_cents});
        let mut notify: Vec<(i64, &str, serde_json::Value)> = Vec::with_capacity(3);
        match kind {
            "order.paid" => {
                notify.push((after.buyer_id, kind, data.clone()));
                notify.push((owner, kind, data));
                if let Some(g) = after.gift_to_user_id {
                    notify.push((g, "gift.received", serde_json::json!({
                        "order_id": after.id, "from_user_id": after.buyer_id, "message": after.gift_message})));
                }
            }
            "order.refund_requested" => notify.push((owner, kind, data)),
            _ => notify.push((after.buyer_id, kind, data)),
        }
        // The buyer may own the shop (or be given their own shop's gift):
        // one person in two roles is told once per kind.
        notifier::dedupe(&mut notify);
        let mut notifications = Vec::with_capacity(notify.len() + 4);
        // The order's rebates follow the order in the same transaction (one
        // commit instead of an event round trip and a second job). The rebate
        // engine reconciles from the stored order, inside its own savepoint:
        // if it fails, only its writes roll back, the transition still
        // commits, and the event says so, so the rebate consumer retries it.
        let rebates_reconciled = if matches!(
            kind,
            "order.paid" | "order.completed" | "order.refunded"
        ) {
            match crate::rebates::engine::reconcile(c, ids, before.id, now) {
                Ok(r) => {
                    notifications.extend(r.notifications);
                    true
                }
                Err(e) => {
                    tracing::warn!(order_id = before.id, error = %e, "rebates deferred to the rebate consumer");
                    false
                }
            }
        } else {
            false
        };
        let event_id = outbox::enqueue(
            c,
            ids,
            kind,
            &serde_json::json!({
                "order_id": after.id,
                "buyer_id": after.buyer_id,
                "merchant_id": after.merchant_id,
                "merchant_owner_id": owner,
                "status": after.status,
                "total_cents": after.total_cents,
                "items": items.iter().map(|i| serde_json::json!({"product_id": i.product_id, "quantity": i.quantity, "price_cents": i.price_cents})).collect::<Vec<_>>(),
                "at_ms": now,
                "rebates_reconciled": rebates_reconciled,
            }),
        )?;
        for (user, kind, data) in &notify {
            let view = notifier::store(c, ids, event_id, *user, kind, data, now)?;
            notifications.push((*user, view));
        }
        Ok((released, notifications))
    };
    apply(conn).map(|(released, notifications)| Applied {
        loaded: Loaded {
            order: after,
            items: t.before.items,
            owner_id: t.before.owner_id,
            payment: t.before.payment,
        },
        released,
        notifications,
    })
}
