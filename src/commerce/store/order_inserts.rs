//! The order writer's group-commit job: a batch of new orders, their items,
//! stock decrements, idempotency records and `order.created` events in the
//! caller's transaction.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::commerce::model::OrderEvent;
use crate::commerce::order_writer::{Created, NewOrder};
use crate::commerce::store::{OrderItemRow, OrderRow};
use crate::core::error::ApiError;
use crate::runtime::context::Ctx;
use crate::storage::idempotency::{self, StoredResponse};
use crate::storage::schema::{order_items, orders};
use crate::storage::DbConn;

/// The batch's new orders as one set (see `storage::direct::insert_set`).
fn insert_orders(c: &mut DbConn, rows: &[OrderRow]) -> QueryResult<usize> {
    crate::storage::direct::insert_set(
        c,
        "INSERT INTO orders (id, buyer_id, merchant_id, status, total_cents, created_at_ms, \
         pay_deadline_ms, paid_at_ms, shipped_at_ms, completed_at_ms, auto_complete_at_ms, \
         refund_requested, refund_reason, gift_to_user_id, gift_message, shipping_address, \
         carrier, tracking_no, updated_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use crate::storage::direct::Val::{Bool, Int, NullInt, NullText, Text};
            vec![
                Int(r.id),
                Int(r.buyer_id),
                Int(r.merchant_id),
                Text(&r.status),
                Int(r.total_cents),
                Int(r.created_at_ms),
                Int(r.pay_deadline_ms),
                NullInt(r.paid_at_ms),
                NullInt(r.shipped_at_ms),
                NullInt(r.completed_at_ms),
                NullInt(r.auto_complete_at_ms),
                Bool(r.refund_requested),
                NullText(r.refund_reason.as_deref()),
                NullInt(r.gift_to_user_id),
                NullText(r.gift_message.as_deref()),
                NullText(r.shipping_address.as_deref()),
                NullText(r.carrier.as_deref()),
                NullText(r.tracking_no.as_deref()),
                Int(r.updated_at_ms),
            ]
        },
        |b, chunk| diesel::insert_into(orders::table).values(chunk).execute(b),
    )
}

/// The batch's order items as one set.
fn insert_items(c: &mut DbConn, rows: &[OrderItemRow]) -> QueryResult<usize> {
    crate::storage::direct::insert_set(
        c,
        "INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES ",
        "",
        rows,
        |r| {
            use crate::storage::direct::Val::Int;
            vec![
                Int(r.order_id),
                Int(r.product_id),
                Int(r.quantity),
                Int(r.price_cents),
            ]
        },
        |b, chunk| {
            diesel::insert_into(order_items::table)
                .values(chunk)
                .execute(b)
        },
    )
}

enum Outcome {
    Insert,
    Replay { status_code: u16, body: String },
    Reject(ApiError),
}

/// Writes a batch of orders in the caller's transaction (a group-commit
/// job). Orders that cannot be stored on their own merits (a vanished gift
/// recipient, a lost idempotency race) are answered individually; the rest
/// commit together.
pub fn write(
    conn: &mut DbConn,
    shared: &Ctx,
    batch: &[NewOrder],
) -> Result<Vec<Result<Created, ApiError>>, ApiError> {
    let now = crate::core::ids::now_ms();
    crate::storage::transaction(
        conn,
        |c| -> Result<Vec<Result<Created, ApiError>>, ApiError> {
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut keys_in_batch: HashMap<(i64, &str), usize> = HashMap::new();
            for (i, o) in batch.iter().enumerate() {
                if let Some(g) = o.order.gift_to_user_id {
                    if !crate::accounts::tx::user_exists(c, g)? {
                        outcomes.push(Outcome::Reject(ApiError::not_found(
                            "gift_to_user_id names no user",
                        )));
                        continue;
                    }
                }
                if let Some((key, hash)) = &o.idempotency {
                    if let Some(&first) = keys_in_batch.get(&(o.order.buyer_id, key.as_str())) {
                        let same = batch[first]
                            .idempotency
                            .as_ref()
                            .is_some_and(|(_, h)| h == hash);
                        outcomes.push(if same {
                            Outcome::Replay {
                                status_code: 201,
                                body: view_json(&batch[first]),
                            }
                        } else {
                            Outcome::Reject(ApiError::idempotency_key_reused())
                        });
                        continue;
                    }
                    let k = idempotency::IdempotencyKey::parse(key)?;
                    match idempotency::check(c, o.order.buyer_id, "orders", &k, hash, now)? {
                        idempotency::Decision::Replay { status_code, body } => {
                            outcomes.push(Outcome::Replay { status_code, body });
                            continue;
                        }
                        idempotency::Decision::Proceed => {}
                    }
                    keys_in_batch.insert((o.order.buyer_id, key.as_str()), i);
                }
                outcomes.push(Outcome::Insert);
            }
            let inserts: Vec<&NewOrder> = batch
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Outcome::Insert))
                .map(|(n, _)| n)
                .collect();
            let order_rows: Vec<OrderRow> = inserts.iter().map(|n| n.order.clone()).collect();
            let item_rows: Vec<OrderItemRow> = inserts
                .iter()
                .flat_map(|n| n.items.iter().cloned())
                .collect();
            insert_orders(c, &order_rows)?;
            insert_items(c, &item_rows)?;
            // Written with the batch's other stock changes, one update per
            // product in product id order (see `stock_sets`).
            for i in &item_rows {
                super::stock_sets::take(c, i.product_id, i.quantity)?;
            }
            for n in &inserts {
                if let Some((key, hash)) = &n.idempotency {
                    let row = StoredResponse {
                        user_id: n.order.buyer_id,
                        scope: "orders".into(),
                        idem_key: key.clone(),
                        request_hash: hash.clone(),
                        status_code: 201,
                        response_body: view_json(n),
                        created_at_ms: now,
                    };
                    idempotency::record(c, &row).map_err(|e| match e {
                        idempotency::RecordError::Db(e) => ApiError::from(e),
                        // Checked above inside this transaction; a concurrent node raced us.
                        idempotency::RecordError::Conflict => ApiError::conflict(
                            crate::core::error::ErrorKind::IdempotencyConflict,
                            "retry the request",
                        ),
                    })?;
                }
            }
            // The batch's events in one multi-row insert, not one per order.
            let events: Vec<(&str, serde_json::Value)> = inserts
                .iter()
                .map(|n| {
                    (
                        OrderEvent::Created.as_str(),
                        serde_json::json!({"order_id": n.order.id, "buyer_id": n.order.buyer_id, "merchant_id": n.order.merchant_id, "total_cents": n.order.total_cents}),
                    )
                })
                .collect();
            crate::storage::outbox::enqueue_many(c, &shared.ids, &events)?;
            Ok(batch
                .iter()
                .zip(outcomes)
                .map(|(n, o)| match o {
                    Outcome::Insert => Ok(Created::Stored(Box::new(n.order.view(&n.items)))),
                    Outcome::Replay { status_code, body } => {
                        Ok(Created::Replay { status_code, body })
                    }
                    Outcome::Reject(e) => Err(e),
                })
                .collect())
        },
    )
}

fn view_json(n: &NewOrder) -> String {
    serde_json::to_string(&n.order.view(&n.items)).unwrap_or_default()
}
