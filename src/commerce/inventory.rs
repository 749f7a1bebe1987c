//! One inventory actor per SKU: the only writer of that product's sellable
//! stock. It keeps the count in memory (loaded from the database on first
//! use) and never lets it go below zero.
//!
//! Invariant: the in-memory count is never above the database's `stock`.
//! Reservations take from memory first and reach the database with the
//! order's commit; releases (cancel, expiry, refund) reach memory only after
//! the database gave the stock back. So a crash loses at most reservations
//! that were never acknowledged, and a restart reloads the truth. A release
//! carries the `products.stock_version` its commit produced, so an actor
//! loaded after that commit (which read the unit already) ignores it.

use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::db::Db;
use crate::error::ApiError;

/// Most SKUs kept in memory; beyond, new ones are refused with 503 (an operator
/// should raise it: SKUs are small).
pub const MAX_SKUS: usize = 1_000_000;

/// What an order needs to know of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInfo {
    pub product_id: i64,
    pub merchant_id: i64,
    pub price_cents: i64,
    pub active: bool,
}

pub struct Inventory {
    info: ProductInfo,
    available: i64,
    /// `products.stock_version` as loaded: committed releases at or below it
    /// are already in `available`.
    loaded_version: i64,
}

impl Actor for Inventory {
    type Context = Context<Self>;
}

/// Takes `quantity` from the sellable stock, or nothing.
pub struct Reserve {
    pub quantity: i64,
}

impl Message for Reserve {
    type Result = Result<ProductInfo, ApiError>;
}

impl Handler<Reserve> for Inventory {
    type Result = Result<ProductInfo, ApiError>;

    fn handle(&mut self, msg: Reserve, _: &mut Self::Context) -> Self::Result {
        if !self.info.active {
            return Err(ApiError::conflict(
                "product_inactive",
                format!("product {} is not for sale", self.info.product_id),
            ));
        }
        if msg.quantity <= 0 || self.available < msg.quantity {
            return Err(ApiError::conflict(
                "out_of_stock",
                format!("not enough stock of product {}", self.info.product_id),
            ));
        }
        self.available -= msg.quantity;
        Ok(self.info.clone())
    }
}

/// Gives stock back: after the database did (`version`: the product's
/// `stock_version` that commit produced), or when a reservation that never
/// reached the database is abandoned (`version: None`).
pub struct Release {
    pub quantity: i64,
    pub version: Option<i64>,
}

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for Inventory {
    type Result = ();
    fn handle(&mut self, msg: Release, _: &mut Self::Context) {
        // A release committed before this actor read the stock is in it
        // already: the actor may have been loaded between that commit and
        // this message. Counting it again would let the unit be sold twice.
        if msg.version.is_some_and(|v| v <= self.loaded_version) {
            return;
        }
        self.available += msg.quantity.max(0);
    }
}

/// Applies a stock adjustment in memory first (refusing to go below zero);
/// the caller writes it to the database and calls [`Revert`] if that fails.
pub struct Adjust {
    pub delta: i64,
}

impl Message for Adjust {
    type Result = Result<i64, ApiError>;
}

impl Handler<Adjust> for Inventory {
    type Result = Result<i64, ApiError>;
    fn handle(&mut self, msg: Adjust, _: &mut Self::Context) -> Self::Result {
        let next = self
            .available
            .checked_add(msg.delta)
            .ok_or_else(|| ApiError::invalid_input("stock_delta too large"))?;
        if next < 0 {
            return Err(ApiError::conflict(
                "out_of_stock",
                "stock cannot go below zero (some may be reserved by orders)",
            ));
        }
        self.available = next;
        Ok(next)
    }
}

/// Undoes an [`Adjust`] whose database write failed.
pub struct Revert {
    pub delta: i64,
}

impl Message for Revert {
    type Result = ();
}

impl Handler<Revert> for Inventory {
    type Result = ();
    fn handle(&mut self, msg: Revert, _: &mut Self::Context) {
        self.available -= msg.delta;
    }
}

/// New price / active flag after the database took them.
pub struct SetInfo {
    pub price_cents: i64,
    pub active: bool,
}

impl Message for SetInfo {
    type Result = ();
}

impl Handler<SetInfo> for Inventory {
    type Result = ();
    fn handle(&mut self, msg: SetInfo, _: &mut Self::Context) {
        self.info.price_cents = msg.price_cents;
        self.info.active = msg.active;
    }
}

pub struct Available;

impl Message for Available {
    type Result = i64;
}

impl Handler<Available> for Inventory {
    type Result = i64;
    fn handle(&mut self, _: Available, _: &mut Self::Context) -> i64 {
        self.available
    }
}

/// Finds a product's inventory actor, loading it from the database once.
#[derive(Default)]
pub struct InventoryRegistry {
    actors: DashMap<i64, Addr<Inventory>>,
}

impl InventoryRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn get(&self, product_id: i64) -> Option<Addr<Inventory>> {
        self.actors.get(&product_id).map(|a| a.clone())
    }

    pub async fn get_or_load(&self, db: &Db, product_id: i64) -> Result<Addr<Inventory>, ApiError> {
        if let Some(a) = self.get(product_id) {
            return Ok(a);
        }
        if self.actors.len() >= MAX_SKUS {
            return Err(ApiError::unavailable("too many products in memory"));
        }
        let row = db
            .call(super::merchants::LoadProduct { product_id })
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no product {product_id}")))?;
        // Two requests may load at once: the first insert wins and both use it.
        // Loading never races a write: only this actor writes stock, and it does
        // not exist yet.
        Ok(match self.actors.entry(product_id) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(v) => {
                let addr = Inventory {
                    info: ProductInfo {
                        product_id,
                        merchant_id: row.merchant_id,
                        price_cents: row.price_cents,
                        active: row.active,
                    },
                    available: row.stock,
                    loaded_version: row.stock_version,
                }
                .start();
                v.insert(addr.clone());
                addr
            }
        })
    }

    /// Gives back, in memory, a reservation that never reached the database.
    pub fn release(&self, product_id: i64, quantity: i64) {
        if let Some(a) = self.get(product_id) {
            a.do_send(Release {
                quantity,
                version: None,
            });
        }
    }

    /// Memory follows a committed stock release, if the actor is loaded (else
    /// the database is the truth and the next load reads it).
    pub fn release_committed(&self, product_id: i64, quantity: i64, version: i64) {
        if let Some(a) = self.get(product_id) {
            a.do_send(Release {
                quantity,
                version: Some(version),
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sku(available: i64, loaded_version: i64) -> Addr<Inventory> {
        Inventory {
            info: ProductInfo {
                product_id: 1,
                merchant_id: 1,
                price_cents: 100,
                active: true,
            },
            available,
            loaded_version,
        }
        .start()
    }

    #[test]
    fn a_committed_release_counts_once_even_if_the_load_saw_it() {
        actix_web::rt::System::new().block_on(async {
            // Loaded at stock_version 5 with 1 unit: a release committed as
            // version 5 (or earlier) is already in that unit.
            let inv = sku(1, 5);
            inv.send(Release {
                quantity: 1,
                version: Some(5),
            })
            .await
            .unwrap();
            assert_eq!(inv.send(Available).await.unwrap(), 1);
            // One committed after the load counts.
            inv.send(Release {
                quantity: 1,
                version: Some(6),
            })
            .await
            .unwrap();
            assert_eq!(inv.send(Available).await.unwrap(), 2);
            // Never below zero, and an abandoned reservation always comes back.
            inv.send(Reserve { quantity: 2 }).await.unwrap().unwrap();
            assert!(inv.send(Reserve { quantity: 1 }).await.unwrap().is_err());
            inv.send(Release {
                quantity: 2,
                version: None,
            })
            .await
            .unwrap();
            assert_eq!(inv.send(Available).await.unwrap(), 2);
        });
    }
}
