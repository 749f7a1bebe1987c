//! The order actor's writes to `orders` and `payments` as sets: inside a
//! group-commit batch every transition's guarded update joins one
//! `UPDATE ... FROM (VALUES ...)` per table at the batch's end (on
//! PostgreSQL the list is one array per column, `storage::unnest`)
//! (`storage::appends`), instead of a statement (a round trip on PostgreSQL)
//! per order. Outside a batch each is written at once.
//!
//! Why deferring is safe: an order is written only by its actor, which waits
//! for one transition to commit before it starts the next, so a batch holds
//! at most one change per order; nothing in the transition's transaction reads
//! the order row back (the hooks decide from the order in memory). A guard
//! that misses (the row is no longer as the actor loaded it) fails the batch's
//! fast attempt; in the careful rerun each job writes its own rows in its own
//! savepoint, so the miss fails only that order's transition, with 409.

use diesel::QueryResult;

use super::{OrderRow, PaymentRow};
use crate::commerce::model::PaymentStatus;
use crate::storage::appends::{append, guard_missed};
use crate::storage::direct::{self, Val};
use crate::storage::DbConn;

/// An order's state change, applied only if the row still has the status and
/// refund flag the actor saw.
pub struct StatusChange {
    old_status: String,
    old_refund_requested: bool,
    after: OrderRow,
}

/// Moves `before` to `after` (guarded by `before`'s status and refund flag).
pub fn change_status(c: &mut DbConn, before: &OrderRow, after: &OrderRow) -> QueryResult<()> {
    let row = StatusChange {
        old_status: before.status.clone(),
        old_refund_requested: before.refund_requested,
        after: after.clone(),
    };
    append(c, row, write_status_changes)
}

/// The column order of `STATUS_HEAD`'s `v`; keep the two in step.
const STATUS_HEAD: &str = "WITH v (id, old_status, old_refund_requested, status, \
     refund_requested, refund_reason, paid_at_ms, shipped_at_ms, completed_at_ms, \
     auto_complete_at_ms, carrier, tracking_no, shipping_address, updated_at_ms) AS (VALUES ";
const STATUS_TAIL: &str = ") UPDATE orders SET status = v.status, \
     refund_requested = v.refund_requested, refund_reason = v.refund_reason, \
     paid_at_ms = v.paid_at_ms, shipped_at_ms = v.shipped_at_ms, \
     completed_at_ms = v.completed_at_ms, auto_complete_at_ms = v.auto_complete_at_ms, \
     carrier = v.carrier, tracking_no = v.tracking_no, \
     shipping_address = v.shipping_address, updated_at_ms = v.updated_at_ms \
     FROM v WHERE orders.id = v.id AND orders.status = v.old_status \
     AND orders.refund_requested = v.old_refund_requested";

fn write_status_changes(c: &mut DbConn, rows: &[StatusChange]) -> QueryResult<()> {
    let values: Vec<Vec<Val<'_>>> = rows
        .iter()
        .map(|r| {
            let a = &r.after;
            vec![
                Val::Int(a.id),
                Val::Text(&r.old_status),
                Val::Bool(r.old_refund_requested),
                Val::Text(&a.status),
                Val::Bool(a.refund_requested),
                Val::NullText(a.refund_reason.as_deref()),
                Val::NullInt(a.paid_at_ms),
                Val::NullInt(a.shipped_at_ms),
                Val::NullInt(a.completed_at_ms),
                Val::NullInt(a.auto_complete_at_ms),
                Val::NullText(a.carrier.as_deref()),
                Val::NullText(a.tracking_no.as_deref()),
                Val::NullText(a.shipping_address.as_deref()),
                Val::Int(a.updated_at_ms),
            ]
        })
        .collect();
    let n = direct::execute_values(c, STATUS_HEAD, STATUS_TAIL, &values)?;
    if n != rows.len() {
        return Err(guard_missed("the order changed meanwhile; retry"));
    }
    Ok(())
}

/// A payment the provider confirmed.
pub struct PaymentSucceeded {
    payment_id: i64,
    at_ms: i64,
}

pub fn payment_succeeded(c: &mut DbConn, payment_id: i64, at_ms: i64) -> QueryResult<()> {
    append(c, PaymentSucceeded { payment_id, at_ms }, write_payments)
}

const PAYMENT_HEAD: &str = "WITH v (id, status, notified_at_ms) AS (VALUES ";
const PAYMENT_TAIL: &str = ") UPDATE payments SET status = v.status, \
     notified_at_ms = v.notified_at_ms FROM v WHERE payments.id = v.id";

fn write_payments(c: &mut DbConn, rows: &[PaymentSucceeded]) -> QueryResult<()> {
    let succeeded = PaymentStatus::Succeeded.as_str();
    let values: Vec<Vec<Val<'_>>> = rows
        .iter()
        .map(|r| {
            vec![
                Val::Int(r.payment_id),
                Val::Text(succeeded),
                Val::NullInt(Some(r.at_ms)),
            ]
        })
        .collect();
    let n = direct::execute_values(c, PAYMENT_HEAD, PAYMENT_TAIL, &values)?;
    if n != rows.len() {
        return Err(guard_missed("the order's payment is missing"));
    }
    Ok(())
}

/// A new order's first payment, inserted with the batch's others. Only for
/// an order its actor knows has none: a payment found there anyway (another
/// node's actor made it) misses the guard, and the `pay` is answered 409 and
/// retried against the order as stored.
pub fn insert_payment(c: &mut DbConn, row: PaymentRow) -> QueryResult<()> {
    append(c, row, write_new_payments)
}

const NEW_PAYMENT_HEAD: &str = "INSERT INTO payments (id, order_id, provider, amount_cents, \
     status, created_at_ms, notified_at_ms) VALUES ";
// `ON CONFLICT DO NOTHING`: on PostgreSQL a unique violation would abort the
// whole batch; a short count says the same without that.
const NEW_PAYMENT_TAIL: &str = " ON CONFLICT DO NOTHING";

fn write_new_payments(c: &mut DbConn, rows: &[PaymentRow]) -> QueryResult<()> {
    let values: Vec<Vec<Val<'_>>> = rows
        .iter()
        .map(|p| {
            vec![
                Val::Int(p.id),
                Val::Int(p.order_id),
                Val::Text(&p.provider),
                Val::Int(p.amount_cents),
                Val::Text(&p.status),
                Val::Int(p.created_at_ms),
                Val::NullInt(p.notified_at_ms),
            ]
        })
        .collect();
    let inserted = direct::execute_values(c, NEW_PAYMENT_HEAD, NEW_PAYMENT_TAIL, &values)?;
    if inserted != rows.len() {
        return Err(guard_missed("the order has a payment already; retry"));
    }
    Ok(())
}
