//! Commerce's in-transaction API: what other domains read or change of
//! merchants, products and orders inside their own executor call or
//! group-commit job. The SQL stays in commerce's store; this is its
//! published face (order transitions reach other domains the other way,
//! through [`super::hooks::OrderHook`]).

use super::store;
use crate::core::error::ApiError;
use crate::storage::DbConn;

pub use super::store::{MerchantRow, ProductRow};

/// The merchant, if `owner` owns it and it is approved; else 403/404.
pub fn owned_approved_merchant(
    conn: &mut DbConn,
    owner: crate::core::ids::UserId,
    merchant_id: i64,
) -> Result<MerchantRow, ApiError> {
    store::catalog::owned_approved_merchant(conn, owner, merchant_id)
}

/// The merchant's owner, 404 if there is no such merchant.
pub fn merchant_owner(conn: &mut DbConn, merchant_id: i64) -> Result<i64, ApiError> {
    store::find_merchant(conn, merchant_id)?
        .map(|m| m.owner_id)
        .ok_or_else(|| ApiError::not_found("no such merchant"))
}

/// Adds a product another domain manages (an animal's one-unit claim product).
pub fn insert_product(conn: &mut DbConn, row: &ProductRow) -> Result<(), ApiError> {
    Ok(store::insert_product(conn, row)?)
}

/// Gives `delta` units back to a product's stock; returns the new stock
/// version, which the caller hands to `Commerce::stock_returned` after its
/// commit so the inventory actor's memory follows.
pub fn add_stock(conn: &mut DbConn, product_id: i64, delta: i64) -> Result<i64, ApiError> {
    Ok(store::add_stock(conn, product_id, delta)?)
}

/// What the rebate engine needs to know of an order, as stored.
pub struct OrderFacts {
    pub updated_at_ms: i64,
    pub buyer_id: i64,
    pub merchant_id: i64,
    pub status: super::model::Status,
    pub total_cents: i64,
    pub paid_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
}

pub fn order_facts(conn: &mut DbConn, order_id: i64) -> Result<Option<OrderFacts>, ApiError> {
    let Some((
        updated_at_ms,
        buyer_id,
        merchant_id,
        status,
        total_cents,
        paid_at_ms,
        completed_at_ms,
    )) = store::order_facts(conn, order_id)?
    else {
        return Ok(None);
    };
    let status = super::model::Status::parse(&status).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "order {order_id} has unknown status {status:?}"
        ))
    })?;
    Ok(Some(OrderFacts {
        updated_at_ms,
        buyer_id,
        merchant_id,
        status,
        total_cents,
        paid_at_ms,
        completed_at_ms,
    }))
}

/// The categories of an order's items (rebate rules match on them).
pub fn order_categories(conn: &mut DbConn, order_id: i64) -> Result<Vec<String>, ApiError> {
    Ok(store::order_categories(conn, order_id)?)
}

/// Which of `ids` are completed or refunded (rebates settle on either).
pub fn settled_among(conn: &mut DbConn, ids: &[i64]) -> Result<Vec<i64>, ApiError> {
    Ok(store::settled_among(conn, ids)?)
}

pub fn count_paid_orders(conn: &mut DbConn, buyer_id: i64) -> Result<i64, ApiError> {
    Ok(store::count_paid_orders(conn, buyer_id)?)
}

/// Orders created since `since_ms` (admin figures).
pub fn count_orders_since(conn: &mut DbConn, since_ms: i64) -> Result<i64, ApiError> {
    Ok(store::count_orders_since(conn, since_ms)?)
}

/// Paid GMV since `since_ms`, of one merchant or of all.
pub fn paid_gmv(
    conn: &mut DbConn,
    merchant_id: Option<i64>,
    since_ms: i64,
) -> Result<i64, ApiError> {
    Ok(store::reviews::paid_gmv(conn, merchant_id, since_ms)?)
}

pub use super::store::reviews::day_start_ms;

/// Orders created and paid GMV (not refunded) of one day `[from_ms, until_ms)`.
pub fn day_figures(conn: &mut DbConn, from_ms: i64, until_ms: i64) -> Result<(i64, i64), ApiError> {
    let orders = store::count_orders_between(conn, from_ms, until_ms)?;
    let gmv = store::reviews::paid_gmv_between(conn, from_ms, until_ms)?;
    Ok((orders, gmv))
}
