//! The database side of the order actor: loading an order, payments, and
//! applying a transition (its guarded update, stock, payment, the rebate
//! reconcile, the event and its notifications) as one group-commit job.

use actix::{Handler, Message};
use diesel::prelude::*;

use super::{self as store, PaymentRow};
use crate::commerce::hooks::{OrderChange, OrderHooks};
use crate::commerce::model::{Command, OrderEvent, PaymentStatus, Status};
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::runtime::context::Ctx;
use crate::social::notifier::{self, Stored};
use crate::storage::outbox;
use crate::storage::schema::payments;
use crate::storage::{DbConn, DbExecutor};

use crate::commerce::order_actor::Loaded;
use crate::commerce::store::stock_sets::StockVersion;

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
        let categories = store::item_categories(&mut conn, msg.order_id)?;
        Ok(Some(Loaded {
            order,
            items,
            owner_id,
            categories,
            payment: None,
            unpaid_fresh: false,
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
        crate::accounts::tx::is_admin(&mut conn, msg.user_id)
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
    /// The actor knows the order has no payment yet (see `Loaded::unpaid_fresh`).
    pub fresh: bool,
}

/// The order's payment, created on the first call (a group-commit job).
/// Insert first (one statement in the usual case, a first `pay`); only if
/// the order has a payment already (`UNIQUE (order_id)`) is it read.
pub fn ensure_payment(
    conn: &mut DbConn,
    shared: &Ctx,
    msg: EnsurePayment,
) -> Result<PaymentRow, ApiError> {
    let row = PaymentRow {
        id: shared.ids.next_id(),
        order_id: msg.order_id,
        provider: "mockpay".into(),
        amount_cents: msg.amount_cents,
        status: PaymentStatus::Created.as_str().into(),
        created_at_ms: now_ms(),
        notified_at_ms: None,
    };
    if msg.fresh {
        // Joins the batch's one insert of payments (see `order_sets`).
        super::order_sets::insert_payment(conn, row.clone())?;
        return Ok(row);
    }
    // `ON CONFLICT DO NOTHING`, not a caught unique violation: on PostgreSQL
    // a failed statement would abort the whole group-commit batch.
    let inserted = crate::per_backend!(&mut *conn, |b| diesel::insert_into(payments::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(b))?;
    if inserted == 1 {
        return Ok(row);
    }
    store::find_payment_by_order(conn, msg.order_id)?.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "payment of order {} vanished",
            msg.order_id
        ))
    })
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
            payments::status.eq(PaymentStatus::Failed.as_str()),
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
    pub fn new(
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

    fn event_kind(&self) -> OrderEvent {
        match (&self.cmd, self.to) {
            (Command::RequestRefund { .. }, _) => OrderEvent::RefundRequested,
            (Command::RejectRefund, _) => OrderEvent::RefundRejected,
            (Command::GiveAddress { .. }, _) => OrderEvent::AddressGiven,
            (_, Status::Paid) => OrderEvent::Paid,
            (_, Status::Shipped) => OrderEvent::Shipped,
            (_, Status::Completed) => OrderEvent::Completed,
            (Command::Expire, Status::Cancelled) => OrderEvent::Expired,
            (_, Status::Cancelled) => OrderEvent::Cancelled,
            (_, Status::Refunded) => OrderEvent::Refunded,
            (_, Status::PendingPayment) => OrderEvent::Updated,
        }
    }
}

/// Stock given back: product, quantity, and the version its set left.
pub type Returned = (i64, i64, StockVersion);

/// What a committed transition leaves for the actor.
pub struct Applied {
    pub loaded: Loaded,
    pub released: Vec<Returned>,
    pub notifications: Stored,
}

/// Applies one transition in the caller's transaction (a group-commit job,
/// whose savepoint rolls all of it back on any error).
pub fn apply_transition(
    conn: &mut DbConn,
    shared: &Ctx,
    hooks: &OrderHooks,
    t: Transition,
) -> Result<Applied, ApiError> {
    let now = now_ms();
    let before = &t.before.order;
    let mut after = before.clone();
    after.status = t.to.as_str().to_owned();
    after.refund_requested = t.refund_requested;
    after.updated_at_ms = now;
    // By command first: a refund request or an address keeps the status,
    // and must not pass for the move into it (it restamped `paid_at_ms`).
    match (&t.cmd, t.to) {
        (Command::RequestRefund { reason }, _) => after.refund_reason = Some(reason.clone()),
        (Command::GiveAddress { address }, _) => after.shipping_address = Some(address.clone()),
        (Command::PaymentSucceeded, Status::Paid) => after.paid_at_ms = Some(now),
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
        (Command::Confirm | Command::AutoComplete, Status::Completed) => {
            after.completed_at_ms = Some(now)
        }
        (_, Status::Refunded) => after.refund_requested = false,
        _ => {}
    }
    let event = t.event_kind();
    let kind = event.as_str();
    let ids = &shared.ids;
    let items = t.before.items.clone();
    let owner = t.before.owner_id;
    // No savepoint of its own: it runs as a group-commit job, whose savepoint
    // already makes it all or nothing (on SQLite each savepoint level costs
    // sub-journal writes of every page it touches).
    let apply = |c: &mut DbConn| -> Result<(Vec<Returned>, Stored), ApiError> {
        // The WHERE keeps the actor's view honest: the update misses if the
        // row is not what the actor loaded. Written with the batch's other
        // orders as one statement (see `order_sets`).
        super::order_sets::change_status(c, before, &after)?;
        let change = OrderChange {
            order_id: before.id,
            buyer_id: before.buyer_id,
            from: before.status(),
            to: t.to,
            event,
            items: &items,
            categories: &t.before.categories,
            after: &after,
            now_ms: now,
        };
        let mut released = Vec::new();
        if t.release_stock {
            for i in &items {
                if hooks.keeps_released_unit(c, &change, i.product_id)? {
                    continue;
                }
                let version = super::stock_sets::give_back(c, i.product_id, i.quantity)?;
                released.push((i.product_id, i.quantity, version));
            }
        }
        if let Some(pid) = t.payment_id {
            super::order_sets::payment_succeeded(c, pid, now)?;
        }
        // Only a completed order can have been reviewed.
        if t.to == Status::Refunded && before.status() == Status::Completed {
            super::reviews::withdraw(c, before.id)?;
        }
        // Whom to tell: stored below with the event, in this transaction, and
        // pushed by the actor after the commit (the notifier has nothing left
        // to store for order events).
        let data = serde_json::json!({"order_id": after.id, "status": after.status, "total_cents": after.total_cents});
        let mut notify: Vec<(i64, &str, serde_json::Value)> = Vec::with_capacity(3);
        match event {
            OrderEvent::Paid => {
                notify.push((after.buyer_id, kind, data.clone()));
                notify.push((owner, kind, data));
                if let Some(g) = after.gift_to_user_id {
                    notify.push((g, "gift.received", serde_json::json!({
                        "order_id": after.id, "from_user_id": after.buyer_id, "message": after.gift_message})));
                }
            }
            OrderEvent::RefundRequested => notify.push((owner, kind, data)),
            // The shop can ship now; the giver learns the gift was accepted.
            OrderEvent::AddressGiven => {
                notify.push((owner, kind, data.clone()));
                notify.push((after.buyer_id, kind, data));
            }
            _ => notify.push((after.buyer_id, kind, data)),
        }
        // The buyer may own the shop (or be given their own shop's gift):
        // one person in two roles is told once per kind.
        notifier::dedupe(&mut notify);
        // Other domains follow the order in this transaction (claims,
        // rebates): see `commerce::hooks`.
        let (mut notifications, hooks_followed) = hooks.follow(c, shared, &change)?;
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
                "hooks_followed": hooks_followed,
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
            categories: t.before.categories,
            payment: t.before.payment,
            unpaid_fresh: t.before.unpaid_fresh,
        },
        released,
        notifications,
    })
}
