//! Commerce rows and queries, portable across both backends.

pub mod catalog;
pub mod due;
pub mod order_inserts;
pub mod order_sets;
pub mod order_writes;
pub mod queries;
pub mod reviews;
pub mod stock_sets;

use diesel::prelude::*;

use crate::storage::direct;

use super::model::{OrderItemView, OrderView, Status, TrackingView};
use crate::core::ids::rfc3339;
use crate::storage::schema::{merchants, order_items, orders, payments, products};
use crate::storage::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = merchants)]
pub struct MerchantRow {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub status: String,
    pub rating_sum: i64,
    pub review_count: i64,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
    pub active: bool,
    pub created_at_ms: i64,
    /// Bumped by every stock change (see [`add_stock`]).
    pub stock_version: i64,
    pub image_media_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: i64,
    pub buyer_id: i64,
    pub merchant_id: i64,
    pub status: String,
    pub total_cents: i64,
    pub created_at_ms: i64,
    pub pay_deadline_ms: i64,
    pub paid_at_ms: Option<i64>,
    pub shipped_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub auto_complete_at_ms: Option<i64>,
    pub refund_requested: bool,
    pub refund_reason: Option<String>,
    pub gift_to_user_id: Option<i64>,
    pub gift_message: Option<String>,
    pub shipping_address: Option<String>,
    pub carrier: Option<String>,
    pub tracking_no: Option<String>,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_items)]
pub struct OrderItemRow {
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = payments)]
pub struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub provider: String,
    pub amount_cents: i64,
    pub status: String,
    pub created_at_ms: i64,
    pub notified_at_ms: Option<i64>,
}

impl OrderRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Cancelled)
    }

    pub fn view(&self, items: &[OrderItemRow]) -> OrderView {
        OrderView {
            order_id: self.id,
            buyer_id: self.buyer_id,
            merchant_id: self.merchant_id,
            status: self.status().as_str(),
            total_cents: self.total_cents,
            items: items
                .iter()
                .map(|i| OrderItemView {
                    product_id: i.product_id,
                    quantity: i.quantity,
                    price_cents: i.price_cents,
                })
                .collect(),
            created_at: rfc3339(self.created_at_ms),
            pay_deadline: rfc3339(self.pay_deadline_ms),
            refund_requested: self.refund_requested,
            refund_reason: self.refund_reason.clone().filter(|_| self.refund_requested),
            gift_to_user_id: self.gift_to_user_id,
            gift_message: self.gift_message.clone(),
            shipping_address: self.shipping_address.clone(),
            tracking: (self.carrier.is_some() || self.tracking_no.is_some()).then(|| {
                TrackingView {
                    carrier: self.carrier.clone(),
                    tracking_no: self.tracking_no.clone(),
                }
            }),
        }
    }
}

pub fn find_merchant(conn: &mut DbConn, id: i64) -> QueryResult<Option<MerchantRow>> {
    direct::first(
        conn,
        merchants::table
            .find(id)
            .select(direct::columns::<MerchantRow>()),
    )
}

pub fn find_product(conn: &mut DbConn, id: i64) -> QueryResult<Option<ProductRow>> {
    products::table
        .find(id)
        .select(ProductRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_order(
    conn: &mut DbConn,
    id: i64,
) -> QueryResult<Option<(OrderRow, Vec<OrderItemRow>)>> {
    let Some(order) = direct::first(
        conn,
        orders::table.find(id).select(direct::columns::<OrderRow>()),
    )?
    else {
        return Ok(None);
    };
    let items = direct::load(
        conn,
        order_items::table
            .filter(order_items::order_id.eq(id))
            .order(order_items::product_id.asc())
            .select(direct::columns::<OrderItemRow>()),
    )?;
    Ok(Some((order, items)))
}

/// Items of many orders at once, grouped by order.
pub fn items_of(
    conn: &mut DbConn,
    order_ids: &[i64],
) -> QueryResult<std::collections::HashMap<i64, Vec<OrderItemRow>>> {
    let rows: Vec<OrderItemRow> = order_items::table
        .filter(order_items::order_id.eq_any(order_ids))
        .order((order_items::order_id, order_items::product_id))
        .select(OrderItemRow::as_select())
        .load(conn)?;
    let mut map: std::collections::HashMap<i64, Vec<OrderItemRow>> =
        std::collections::HashMap::new();
    for r in rows {
        map.entry(r.order_id).or_default().push(r);
    }
    Ok(map)
}

pub fn find_payment_by_order(conn: &mut DbConn, order_id: i64) -> QueryResult<Option<PaymentRow>> {
    direct::first(
        conn,
        payments::table
            .filter(payments::order_id.eq(order_id))
            .select(direct::columns::<PaymentRow>()),
    )
}

/// Adds `delta` to a product's sellable stock; returns the product's new
/// `stock_version` (every stock change bumps it, so an inventory actor can
/// tell whether the stock it loaded already included a given change).
pub fn add_stock(conn: &mut DbConn, product_id: i64, delta: i64) -> QueryResult<i64> {
    add_stock_changes(conn, product_id, delta, 1)
}

/// `changes` stock changes of one product summing to `delta`, in one
/// statement; returns the `stock_version` after the last.
fn add_stock_changes(
    conn: &mut DbConn,
    product_id: i64,
    delta: i64,
    changes: i64,
) -> QueryResult<i64> {
    let versions: Vec<i64> = direct::load(
        conn,
        diesel::update(products::table.find(product_id))
            .set((
                products::stock.eq(products::stock + delta),
                products::stock_version.eq(products::stock_version + changes),
            ))
            .returning(products::stock_version),
    )?;
    versions
        .into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

pub fn insert_product(conn: &mut DbConn, row: &ProductRow) -> QueryResult<()> {
    diesel::insert_into(products::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The categories of an order's items (a cached statement: it runs in every
/// rebate reconcile the order actor did not do itself).
pub fn order_categories(conn: &mut DbConn, order_id: i64) -> QueryResult<Vec<String>> {
    direct::load(
        conn,
        order_items::table
            .inner_join(products::table)
            .filter(order_items::order_id.eq(order_id))
            .select(products::category),
    )
}

/// (product, category) of each of an order's items, for the order actor.
pub fn item_categories(conn: &mut DbConn, order_id: i64) -> QueryResult<Vec<(i64, String)>> {
    direct::load(
        conn,
        order_items::table
            .inner_join(products::table)
            .filter(order_items::order_id.eq(order_id))
            .select((order_items::product_id, products::category)),
    )
}

/// (updated, buyer, merchant, status, total, paid at, completed at) of an order.
pub type OrderFactsRow = (i64, i64, i64, String, i64, Option<i64>, Option<i64>);

pub fn order_facts(conn: &mut DbConn, order_id: i64) -> QueryResult<Option<OrderFactsRow>> {
    direct::first(
        conn,
        orders::table.find(order_id).select((
            orders::updated_at_ms,
            orders::buyer_id,
            orders::merchant_id,
            orders::status,
            orders::total_cents,
            orders::paid_at_ms,
            orders::completed_at_ms,
        )),
    )
}

/// How many of the buyer's orders were paid (whatever became of them since).
pub fn count_paid_orders(conn: &mut DbConn, buyer_id: i64) -> QueryResult<i64> {
    orders::table
        .filter(orders::buyer_id.eq(buyer_id))
        .filter(orders::paid_at_ms.is_not_null())
        .count()
        .get_result(conn)
}

/// Which of `ids` (at most a settlement batch) are completed or refunded.
pub fn settled_among(conn: &mut DbConn, ids: &[i64]) -> QueryResult<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    orders::table
        .filter(orders::id.eq_any(ids))
        .filter(
            orders::completed_at_ms
                .is_not_null()
                .or(orders::status.eq(super::model::Status::Refunded.as_str())),
        )
        .select(orders::id)
        .load(conn)
}

/// Orders created at or after `since_ms` (ids are time-ordered: the primary
/// key answers it).
/// Orders created in `[from_ms, until_ms)` (ids are time-ordered).
pub fn count_orders_between(conn: &mut DbConn, from_ms: i64, until_ms: i64) -> QueryResult<i64> {
    orders::table
        .filter(orders::id.ge(crate::core::ids::first_id_at(from_ms)))
        .filter(orders::id.lt(crate::core::ids::first_id_at(until_ms)))
        .count()
        .get_result(conn)
}

pub fn count_orders_since(conn: &mut DbConn, since_ms: i64) -> QueryResult<i64> {
    orders::table
        .filter(orders::id.ge(crate::core::ids::first_id_at(since_ms)))
        .count()
        .get_result(conn)
}
