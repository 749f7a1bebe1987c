//! Stock changes as a set: every change of `products.stock` made inside a
//! group-commit batch (the new orders' decrements, the releases of cancelled
//! and refunded orders) goes out at the batch's end, one `UPDATE` per product
//! in product id order (`storage::appends`, rank `Stock`).
//!
//! Why: several committers run at once on PostgreSQL, and any of them may
//! change any product's stock. Written mid-job, two batches could lock two
//! products in opposite orders and deadlock; written at the end in one order,
//! they only wait. Nothing in a batch reads a product's stock back: the
//! inventory actors decide from memory, and the `CHECK (stock >= 0)` is the
//! database's last word (a refusal is 409 `out_of_stock` for the job whose
//! change it was, found by the batch's careful run).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use diesel::QueryResult;

use crate::core::error::ErrorKind;
use crate::storage::appends::{append_ranked, refused, LockRank};
use crate::storage::DbConn;

/// The `products.stock_version` a release's commit produced, known once its
/// batch wrote the stock set (before the commit, so always by the time the
/// job's caller hears of the commit).
#[derive(Debug, Clone, Default)]
pub struct StockVersion(Arc<OnceLock<i64>>);

impl StockVersion {
    pub fn get(&self) -> Option<i64> {
        self.0.get().copied()
    }
}

pub struct StockChange {
    product_id: i64,
    delta: i64,
    version: Option<StockVersion>,
}

/// Takes `quantity` units of a product for a new order.
pub fn take(c: &mut DbConn, product_id: i64, quantity: i64) -> QueryResult<()> {
    let row = StockChange {
        product_id,
        delta: -quantity,
        version: None,
    };
    append_ranked(c, row, write_stock, LockRank::Stock)
}

/// Gives `quantity` units back; the version tells the SKU's inventory actor
/// whether the stock it loaded already counted them.
pub fn give_back(c: &mut DbConn, product_id: i64, quantity: i64) -> QueryResult<StockVersion> {
    let version = StockVersion::default();
    let row = StockChange {
        product_id,
        delta: quantity,
        version: Some(version.clone()),
    };
    append_ranked(c, row, write_stock, LockRank::Stock)?;
    Ok(version)
}

/// One product's changes in a batch: their sum, and the version slots of
/// those that want one, in the order the changes were made.
#[derive(Default)]
struct PerProduct<'a> {
    delta: i64,
    changes: i64,
    versions: Vec<(i64, &'a StockVersion)>,
}

fn write_stock(c: &mut DbConn, rows: &[StockChange]) -> QueryResult<()> {
    let mut products: BTreeMap<i64, PerProduct<'_>> = BTreeMap::new();
    for r in rows {
        let p = products.entry(r.product_id).or_default();
        p.delta = p.delta.saturating_add(r.delta);
        if let Some(v) = &r.version {
            p.versions.push((p.changes, v));
        }
        p.changes += 1;
    }
    // Product id order: the one lock order of every committer (see above).
    for (product_id, p) in products {
        let last = super::add_stock_changes(c, product_id, p.delta, p.changes).map_err(|e| {
            if is_check_violation(&e) {
                refused(
                    ErrorKind::OutOfStock,
                    format!("not enough stock of product {product_id}"),
                )
            } else {
                e
            }
        })?;
        // Each change bumps the version by one, as if written one by one:
        // the k-th of n left `last - n + 1 + k`.
        for (k, v) in p.versions {
            let _ = v.0.set(last - p.changes + 1 + k);
        }
    }
    Ok(())
}

/// The stock CHECK refused a decrement: the units were sold elsewhere
/// (another node, whose sales this node's inventory actor has not seen).
fn is_check_violation(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        e,
        Error::DatabaseError(DatabaseErrorKind::CheckViolation, _)
    )
}
