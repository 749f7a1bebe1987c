//! Reviews of completed orders, and the merchant dashboard.
//!
//! A review is written by the order's actor (one at a time per order, so
//! "once" holds without relying on the race of two inserts; the unique
//! `order_id` is the last guard) in the same transaction that moves the
//! merchant's rating sum and count.

use actix::{Handler, Message};
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde::Serialize;

use crate::commerce::store;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::schema::{merchants, order_items, orders, products, reviews};
use crate::storage::{DbConn, DbExecutor};

/// Products listed on the dashboard.
pub const TOP_PRODUCTS: i64 = 10;
/// Statuses whose orders count as paid GMV (refunded and unpaid ones do not).
pub const PAID_STATUSES: [&str; 3] = ["paid", "shipped", "completed"];
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewView {
    pub review_id: i64,
    pub order_id: i64,
    pub merchant_id: i64,
    pub buyer_id: i64,
    pub rating: i64,
    pub body: String,
    pub created_at: String,
}

#[derive(Clone)]
pub struct NewReview {
    pub order_id: i64,
    pub merchant_id: i64,
    pub buyer_id: i64,
    pub rating: i64,
    pub body: String,
}

/// Stores a review and moves the merchant's rating (a group-commit job).
pub fn insert_review(
    c: &mut DbConn,
    ids: &crate::core::ids::IdGenerator,
    r: NewReview,
) -> Result<ReviewView, ApiError> {
    let now = now_ms();
    crate::storage::transaction(c, |c| -> Result<ReviewView, ApiError> {
        // Looked up rather than caught as a failed insert, which would abort
        // a PostgreSQL transaction (and with it the whole group-commit batch).
        let existing: Option<i64> = reviews::table
            .filter(reviews::order_id.eq(r.order_id))
            .select(reviews::id)
            .first(c)
            .optional()?;
        if existing.is_some() {
            return Err(ApiError::conflict(
                crate::core::error::ErrorKind::AlreadyReviewed,
                "this order has been reviewed already",
            ));
        }
        let id = ids.next_id();
        diesel::insert_into(reviews::table)
            .values((
                reviews::id.eq(id),
                reviews::order_id.eq(r.order_id),
                reviews::merchant_id.eq(r.merchant_id),
                reviews::buyer_id.eq(r.buyer_id),
                reviews::rating.eq(r.rating),
                reviews::body.eq(&r.body),
                reviews::created_at_ms.eq(now),
            ))
            .execute(c)?;
        // Any committer's batch may review any merchant: the counters are
        // written at the batch's end, in merchant id order (see
        // `storage::appends::LockRank`).
        crate::storage::appends::append_ranked(
            c,
            Rated {
                merchant_id: r.merchant_id,
                rating: r.rating,
                count: 1,
            },
            write_ratings,
            crate::storage::appends::LockRank::Merchants,
        )?;
        Ok(ReviewView {
            review_id: id,
            order_id: r.order_id,
            merchant_id: r.merchant_id,
            buyer_id: r.buyer_id,
            rating: r.rating,
            body: r.body.clone(),
            created_at: rfc3339(now),
        })
    })
}

/// One review's share of its merchant's rating (taken back: negative).
pub struct Rated {
    merchant_id: i64,
    rating: i64,
    count: i64,
}

/// A refunded order's review no longer speaks for the shop: it is removed,
/// and taken out of the merchant's rating with the batch's other counters.
/// In the refund's own transaction (its order's partition owns the row).
pub fn withdraw(c: &mut DbConn, order_id: i64) -> Result<(), ApiError> {
    let found: Option<(i64, i64)> = reviews::table
        .filter(reviews::order_id.eq(order_id))
        .select((reviews::merchant_id, reviews::rating))
        .first(c)
        .optional()?;
    let Some((merchant_id, rating)) = found else {
        return Ok(());
    };
    diesel::delete(reviews::table.filter(reviews::order_id.eq(order_id))).execute(c)?;
    crate::storage::appends::append_ranked(
        c,
        Rated {
            merchant_id,
            rating: -rating,
            count: -1,
        },
        write_ratings,
        crate::storage::appends::LockRank::Merchants,
    )?;
    Ok(())
}

fn write_ratings(c: &mut DbConn, rows: &[Rated]) -> QueryResult<()> {
    let mut sums: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for r in rows {
        let (sum, count) = sums.entry(r.merchant_id).or_default();
        *sum += r.rating;
        *count += r.count;
    }
    // Merchant id order: one lock order for every committer.
    for (merchant, (sum, count)) in sums {
        diesel::update(merchants::table.find(merchant))
            .set((
                merchants::rating_sum.eq(merchants::rating_sum + sum),
                merchants::review_count.eq(merchants::review_count + count),
            ))
            .execute(c)?;
    }
    Ok(())
}

pub struct ListReviews {
    pub merchant_id: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

/// A review as a shop's visitors see it: who wrote it only as a masked
/// name, never the buyer's id or the order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicReviewView {
    pub review_id: i64,
    pub merchant_id: i64,
    /// The reviewer's display name masked as shops show it (`张**三`), or
    /// `*` for a name of one character.
    pub reviewer: String,
    pub rating: i64,
    pub body: String,
    pub created_at: String,
}

/// `张三丰` -> `张**丰`, `ab` -> `a*`, `a` -> `*`.
pub fn masked_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.as_slice() {
        [] | [_] => "*".into(),
        [first, _] => format!("{first}*"),
        [first, .., last] => format!("{first}**{last}"),
    }
}

impl Message for ListReviews {
    type Result = Result<Page<PublicReviewView>, ApiError>;
}

type ReviewTuple = (i64, i64, i64, i64, i64, String, i64);

impl Handler<ListReviews> for DbExecutor {
    type Result = Result<Page<PublicReviewView>, ApiError>;
    fn handle(&mut self, msg: ListReviews, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        // Only an approved merchant is public (its application is not).
        store::find_merchant(&mut conn, msg.merchant_id)?
            .filter(|m| m.status == crate::commerce::model::MerchantStatus::Approved.as_str())
            .ok_or_else(|| ApiError::not_found("no such merchant"))?;
        let mut q = reviews::table
            .filter(reviews::merchant_id.eq(msg.merchant_id))
            .into_boxed();
        if let Some(b) = msg.before_id {
            q = q.filter(reviews::id.lt(b));
        }
        let mut rows: Vec<ReviewTuple> = q
            .order(reviews::id.desc())
            .limit(msg.limit + 1)
            .select((
                reviews::id,
                reviews::order_id,
                reviews::merchant_id,
                reviews::buyer_id,
                reviews::rating,
                reviews::body,
                reviews::created_at_ms,
            ))
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        let buyers: Vec<i64> = rows.iter().map(|r| r.3).collect();
        let names: std::collections::HashMap<i64, String> =
            crate::accounts::tx::user_summaries(&mut conn, &buyers)?
                .into_iter()
                .map(|u| (u.id, u.display_name))
                .collect();
        Ok(Page {
            items: rows
                .into_iter()
                .map(
                    |(id, _order, merchant_id, buyer_id, rating, body, at)| PublicReviewView {
                        review_id: id,
                        merchant_id,
                        reviewer: masked_name(names.get(&buyer_id).map_or("", |n| n.as_str())),
                        rating,
                        body,
                        created_at: rfc3339(at),
                    },
                )
                .collect(),
            next_cursor,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopProduct {
    pub product_id: i64,
    pub name: String,
    pub quantity: i64,
    pub gmv_cents: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DashboardView {
    pub merchant_id: i64,
    /// Every order status with its count (zero included).
    pub orders_by_status: std::collections::BTreeMap<String, i64>,
    /// Total of orders paid since 00:00 UTC today and not refunded.
    pub paid_gmv_today_cents: i64,
    /// The same over the last 7 days (rolling, from now).
    pub paid_gmv_7d_cents: i64,
    /// Best sellers of the last 7 days by quantity (paid, not refunded).
    pub top_products: Vec<TopProduct>,
    pub rating_avg: Option<f64>,
    pub review_count: i64,
    pub generated_at: String,
}

/// Midnight UTC of the day `now` falls in.
pub fn day_start_ms(now: i64) -> i64 {
    now - now.rem_euclid(DAY_MS)
}

/// Sum of `total_cents` over orders paid since `since_ms` (optionally of one
/// merchant) that count as paid GMV. `CAST(SUM ...)`: PostgreSQL sums a BIGINT
/// as NUMERIC, which the portable schema does not carry.
pub fn paid_gmv(c: &mut DbConn, merchant_id: Option<i64>, since_ms: i64) -> QueryResult<i64> {
    let mut q = orders::table
        .filter(orders::paid_at_ms.ge(since_ms))
        .filter(orders::status.eq_any(PAID_STATUSES))
        .into_boxed();
    if let Some(m) = merchant_id {
        q = q.filter(orders::merchant_id.eq(m));
    }
    q.select(sql::<BigInt>(
        "CAST(COALESCE(SUM(total_cents), 0) AS BIGINT)",
    ))
    .first(c)
}

/// Paid GMV (not refunded) of orders paid in `[from_ms, until_ms)`, over all merchants.
pub fn paid_gmv_between(c: &mut DbConn, from_ms: i64, until_ms: i64) -> QueryResult<i64> {
    orders::table
        .filter(orders::paid_at_ms.ge(from_ms))
        .filter(orders::paid_at_ms.lt(until_ms))
        .filter(orders::status.eq_any(PAID_STATUSES))
        .select(sql::<BigInt>(
            "CAST(COALESCE(SUM(total_cents), 0) AS BIGINT)",
        ))
        .first(c)
}

pub struct Dashboard {
    pub merchant_id: i64,
    pub caller: i64,
}

impl Message for Dashboard {
    type Result = Result<DashboardView, ApiError>;
}

impl Handler<Dashboard> for DbExecutor {
    type Result = Result<DashboardView, ApiError>;
    fn handle(&mut self, msg: Dashboard, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let m = store::find_merchant(&mut conn, msg.merchant_id)?
            .ok_or_else(|| ApiError::not_found("no such merchant"))?;
        if m.owner_id != msg.caller {
            let is_admin = crate::accounts::tx::is_admin(&mut conn, msg.caller)?;
            if !is_admin {
                return Err(ApiError::forbidden(
                    "only the merchant's owner (or an admin) sees its dashboard",
                ));
            }
        }
        let now = now_ms();
        let counts: Vec<(String, i64)> = orders::table
            .filter(orders::merchant_id.eq(m.id))
            .group_by(orders::status)
            .select((orders::status, count_star()))
            .load(&mut conn)?;
        let mut orders_by_status: std::collections::BTreeMap<String, i64> =
            crate::commerce::model::Status::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), 0))
                .collect();
        orders_by_status.extend(counts);
        let today = paid_gmv(&mut conn, Some(m.id), day_start_ms(now))?;
        let week_start = now - 7 * DAY_MS;
        let week = paid_gmv(&mut conn, Some(m.id), week_start)?;
        let top: Vec<(i64, i64, i64)> = order_items::table
            .inner_join(orders::table)
            .filter(orders::merchant_id.eq(m.id))
            .filter(orders::paid_at_ms.ge(week_start))
            .filter(orders::status.eq_any(PAID_STATUSES))
            .group_by(order_items::product_id)
            .select((
                order_items::product_id,
                sql::<BigInt>("CAST(SUM(order_items.quantity) AS BIGINT)"),
                sql::<BigInt>(
                    "CAST(SUM(order_items.quantity * order_items.price_cents) AS BIGINT)",
                ),
            ))
            .order(sql::<BigInt>("2").desc())
            .limit(TOP_PRODUCTS)
            .load(&mut conn)?;
        let ids: Vec<i64> = top.iter().map(|t| t.0).collect();
        let names: std::collections::HashMap<i64, String> = products::table
            .filter(products::id.eq_any(&ids))
            .select((products::id, products::name))
            .load::<(i64, String)>(&mut conn)?
            .into_iter()
            .collect();
        let merchant = super::catalog::MerchantView::from(m);
        Ok(DashboardView {
            merchant_id: merchant.merchant_id,
            orders_by_status,
            paid_gmv_today_cents: today,
            paid_gmv_7d_cents: week,
            top_products: top
                .into_iter()
                .map(|(product_id, quantity, gmv_cents)| TopProduct {
                    product_id,
                    name: names.get(&product_id).cloned().unwrap_or_default(),
                    quantity,
                    gmv_cents,
                })
                .collect(),
            rating_avg: merchant.rating_avg,
            review_count: merchant.review_count,
            generated_at: rfc3339(now),
        })
    }
}
