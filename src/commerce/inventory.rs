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
//!
//! An actor is registered *before* it reads the product, and handles no
//! message until the read is done (`AsyncContext::wait`): a release that
//! commits while the load runs finds the actor, waits in its mailbox and is
//! then counted or not by its version. Registering after the read would let
//! such a release find no actor and be lost.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler,
    Message, WrapFuture,
};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::store::catalog::{LoadProduct, ProductView, UpdateProduct};
use super::store::ProductRow;
use crate::core::error::ApiError;
use crate::storage::Db;

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
    /// Decides the rebate rules of an order and whether it claims an animal.
    pub category: String,
}

pub struct Inventory {
    product_id: i64,
    db: Db,
    registry: Arc<InventoryRegistry>,
    state: Load,
}

enum Load {
    /// Registered, reading the product (no message is handled meanwhile).
    Pending,
    Ready(Stock),
    /// The read failed: every message gets this, and the registry forgot the
    /// actor so the next request loads afresh.
    Failed(Failure),
}

struct Stock {
    info: ProductInfo,
    available: i64,
    /// `products.stock_version` as loaded: committed releases at or below it
    /// are already in `available`.
    loaded_version: i64,
}

#[derive(Clone)]
enum Failure {
    NotFound,
    Unavailable(String),
}

impl Inventory {
    fn stock(&mut self) -> Result<&mut Stock, ApiError> {
        match &mut self.state {
            Load::Ready(s) => Ok(s),
            Load::Failed(Failure::NotFound) => Err(ApiError::not_found(format!(
                "no product {}",
                self.product_id
            ))),
            Load::Failed(Failure::Unavailable(why)) => Err(ApiError::unavailable(format!(
                "product {} could not be loaded: {why}",
                self.product_id
            ))),
            Load::Pending => Err(ApiError::unavailable("the product is still loading")),
        }
    }

    fn loaded(&mut self, row: Result<Option<ProductRow>, ApiError>, ctx: &mut Context<Self>) {
        self.state = match row {
            Ok(Some(row)) => Load::Ready(Stock {
                info: ProductInfo {
                    product_id: self.product_id,
                    merchant_id: row.merchant_id,
                    price_cents: row.price_cents,
                    active: row.active,
                    category: row.category,
                },
                available: row.stock,
                loaded_version: row.stock_version,
            }),
            Ok(None) => Load::Failed(Failure::NotFound),
            Err(e) => Load::Failed(Failure::Unavailable(e.detail().to_owned())),
        };
        if matches!(self.state, Load::Failed(_)) {
            self.registry.forget(self.product_id, &ctx.address());
            // Answer whoever already queued behind the load, then go.
            ctx.run_later(FAILED_LINGER, |_, ctx| ctx.stop());
        }
    }
}

/// How long an actor whose load failed keeps answering with the failure.
const FAILED_LINGER: Duration = Duration::from_secs(1);

impl Actor for Inventory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (db, product_id) = (self.db.clone(), self.product_id);
        let delay = self.registry.fault_load_delay;
        let load = async move {
            let row = db.call(LoadProduct { product_id }).await;
            if !delay.is_zero() {
                // Test-only fault: widen the window between the read and the
                // actor taking messages (TANDEM_FAULT_INVENTORY_LOAD_DELAY_MS).
                tokio::time::sleep(delay).await;
            }
            row
        };
        // `wait`: nothing else is handled until the load is done.
        ctx.wait(
            load.into_actor(self)
                .map(|row, this, ctx| this.loaded(row, ctx)),
        );
    }
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
        self.stock()?.reserve(msg.quantity)
    }
}

impl Stock {
    fn reserve(&mut self, quantity: i64) -> Result<ProductInfo, ApiError> {
        if !self.info.active {
            return Err(ApiError::conflict(
                crate::core::error::ErrorKind::ProductInactive,
                format!("product {} is not for sale", self.info.product_id),
            ));
        }
        if quantity <= 0 || self.available < quantity {
            return Err(ApiError::conflict(
                crate::core::error::ErrorKind::OutOfStock,
                format!("not enough stock of product {}", self.info.product_id),
            ));
        }
        self.available -= quantity;
        Ok(self.info.clone())
    }

    fn release(&mut self, quantity: i64, version: Option<i64>) {
        // A release committed before this actor read the stock is in it
        // already. Counting it again would let the unit be sold twice.
        if version.is_some_and(|v| v <= self.loaded_version) {
            return;
        }
        self.available += quantity.max(0);
    }

    fn adjust(&mut self, delta: i64) -> Result<(), ApiError> {
        let next = self
            .available
            .checked_add(delta)
            .ok_or_else(|| ApiError::invalid_input("stock_delta too large"))?;
        if next < 0 {
            return Err(ApiError::conflict(
                crate::core::error::ErrorKind::OutOfStock,
                "stock cannot go below zero (some may be reserved by orders)",
            ));
        }
        self.available = next;
        Ok(())
    }
}

/// Units taken from one SKU's actor for an order not stored yet. It has one
/// owner at a time (the request placing the order, then the order writer
/// once the order is submitted), and whoever holds it when the outcome is
/// known settles it: [`Reservation::keep`] once the order committed (the
/// database took the units), or drop, which gives the units back in memory.
/// Because release is in `Drop`, a request dropped half-way (the client went
/// away, a shutdown cut it off) still gives back what it took.
#[must_use = "dropping a reservation releases it"]
pub struct Reservation {
    inventory: Addr<Inventory>,
    /// Told when the units are kept (other nodes' counts are stale then).
    registry: Arc<InventoryRegistry>,
    pub product_id: i64,
    pub quantity: i64,
    kept: bool,
}

impl Reservation {
    /// Takes `quantity` of the SKU, or nothing.
    pub async fn take(
        registry: &Arc<InventoryRegistry>,
        inventory: Addr<Inventory>,
        product_id: i64,
        quantity: i64,
    ) -> Result<(Reservation, ProductInfo), ApiError> {
        let info = inventory
            .send(Reserve { quantity })
            .await
            .map_err(ApiError::unavailable_because)??;
        let reservation = Reservation {
            inventory,
            registry: registry.clone(),
            product_id,
            quantity,
            kept: false,
        };
        Ok((reservation, info))
    }

    /// The order holding these units committed: they are the database's now.
    pub fn keep(mut self) {
        self.kept = true;
        self.registry.kept(self.product_id, &self.inventory);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            // `do_send`: Drop cannot wait; the actor's mailbox is bounded
            // only for `try_send`, and a release must never be lost.
            self.inventory.do_send(Release {
                quantity: self.quantity,
                version: None,
            });
        }
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
        // Failed to load: nothing in memory; the database is the truth.
        if let Ok(stock) = self.stock() {
            stock.release(msg.quantity, msg.version);
        }
    }
}

/// A product edit (`PATCH /products/{id}`) with its stock adjustment: memory
/// first (refusing to go below zero, counting reservations in flight), then
/// the database, then memory follows the outcome. The actor runs the write
/// itself, so the outcome is handled even if the requester went away.
pub struct Edit(pub UpdateProduct);

impl Message for Edit {
    type Result = Result<ProductView, ApiError>;
}

impl Handler<Edit> for Inventory {
    type Result = AtomicResponse<Self, Result<ProductView, ApiError>>;

    fn handle(&mut self, Edit(update): Edit, _: &mut Self::Context) -> Self::Result {
        let delta = update.stock_delta;
        if let Err(e) = self.stock().and_then(|s| s.adjust(delta)) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))));
        }
        let db = self.db.clone();
        // Atomic: no reservation runs between the adjustment and its outcome,
        // so a failed write is undone against the count it changed.
        AtomicResponse::new(Box::pin(
            async move { db.call(update).await }
                .into_actor(self)
                .map(move |res, this, _| {
                    let (registry, product_id) = (this.registry.clone(), this.product_id);
                    let Ok(stock) = this.stock() else { return res };
                    match &res {
                        Ok(view) => {
                            registry.changed(product_id);
                            stock.info.price_cents = view.price_cents;
                            stock.info.active = view.active;
                            stock.info.category.clone_from(&view.category);
                        }
                        // `Db::call` fails only when the write did not happen.
                        Err(_) => stock.available -= delta,
                    }
                    res
                }),
        ))
    }
}

/// What can be ordered now (reservations in flight taken off); `None` if
/// the product could not be loaded.
pub struct Available;

impl Message for Available {
    type Result = Option<i64>;
}

impl Handler<Available> for Inventory {
    type Result = Option<i64>;
    fn handle(&mut self, _: Available, _: &mut Self::Context) -> Option<i64> {
        self.stock().ok().map(|s| s.available)
    }
}

/// Finds a product's inventory actor, loading it from the database once.
#[derive(Default)]
pub struct InventoryRegistry {
    actors: DashMap<i64, Addr<Inventory>>,
    /// Test-only fault: a pause between a load's read and its first message.
    fault_load_delay: Duration,
    /// In a cluster: products whose stock this node changed since the last
    /// notice to the others (see [`InventoryRegistry::tell_others`]).
    dirty: parking_lot::Mutex<std::collections::HashSet<i64>>,
    clustered: std::sync::atomic::AtomicBool,
}

/// How often a node tells the others which products' stock it changed.
const NOTICE_EVERY: Duration = Duration::from_millis(20);
/// Most products one notice round names (the rest wait a round).
const NOTICE_MAX: usize = 10_000;

impl InventoryRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// With the test-only load delay (`TANDEM_FAULT_INVENTORY_LOAD_DELAY_MS`).
    pub fn with_fault_load_delay(delay: Duration) -> Arc<Self> {
        Arc::new(InventoryRegistry {
            fault_load_delay: delay,
            ..Default::default()
        })
    }

    /// In a cluster, each node counts stock in its own memory. Every
    /// `NOTICE_EVERY` this node names the products whose stock it changed to
    /// `tell` (which reaches the other nodes); a node told so forgets its
    /// actor ([`InventoryRegistry::changed_elsewhere`]) and the next request
    /// reads the database again. Between a change and the notice another
    /// node may still accept against its old count: the database's
    /// `stock >= 0` refuses what does not fit, with 409 `out_of_stock`, so
    /// nothing is oversold; a notice lost on the way leaves a count low
    /// until the next one for that product.
    pub fn tell_others(self: &Arc<Self>, tell: Arc<dyn Fn(i64) + Send + Sync>) {
        self.clustered
            .store(true, std::sync::atomic::Ordering::Release);
        let this = self.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(NOTICE_EVERY);
            loop {
                tick.tick().await;
                let changed: Vec<i64> = {
                    let mut d = this.dirty.lock();
                    let take: Vec<i64> = d.iter().copied().take(NOTICE_MAX).collect();
                    for p in &take {
                        d.remove(p);
                    }
                    take
                };
                changed.into_iter().for_each(|p| tell(p));
            }
        });
    }

    /// This node committed a change to the product's stock (or price).
    pub fn changed(&self, product_id: i64) {
        if self.clustered.load(std::sync::atomic::Ordering::Acquire) {
            self.dirty.lock().insert(product_id);
        }
    }

    /// A reservation taken from `from` committed. In a cluster the others
    /// hear of it; and if another node's change has since replaced `from`
    /// (see [`InventoryRegistry::tell_others`]), the new actor may have read
    /// the stock before this commit and still count these units: the next
    /// request reads the database again, which holds this commit now.
    pub fn kept(&self, product_id: i64, from: &Addr<Inventory>) {
        if !self.clustered.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.changed(product_id);
        if self.get(product_id).is_some_and(|current| current != *from) {
            self.changed_elsewhere(product_id);
        }
    }

    /// Another node changed the product: the count here is stale.
    pub fn changed_elsewhere(&self, product_id: i64) {
        self.actors.remove(&product_id);
    }

    pub fn get(&self, product_id: i64) -> Option<Addr<Inventory>> {
        self.actors.get(&product_id).map(|a| a.clone())
    }

    /// The SKU's actor, registered at once and loading itself if new (see the
    /// module docs). A product that does not exist answers 404 to whatever
    /// is sent to it.
    pub async fn get_or_load(
        self: &Arc<Self>,
        db: &Db,
        product_id: i64,
    ) -> Result<Addr<Inventory>, ApiError> {
        if let Some(a) = self.get(product_id) {
            return Ok(a);
        }
        if self.actors.len() >= MAX_SKUS {
            return Err(ApiError::unavailable("too many products in memory"));
        }
        // The entry lock makes the check and the start one step: two first
        // requests for a SKU share one actor and one load.
        Ok(match self.actors.entry(product_id) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(v) => {
                let addr = Inventory {
                    product_id,
                    db: db.clone(),
                    registry: self.clone(),
                    state: Load::Pending,
                }
                .start();
                v.insert(addr.clone());
                addr
            }
        })
    }

    /// Drops a failed actor from the map (only that actor, not a newer one).
    fn forget(&self, product_id: i64, addr: &Addr<Inventory>) {
        self.actors.remove_if(&product_id, |_, a| a == addr);
    }

    /// Memory follows a committed stock release, if the actor is registered
    /// (loaded or loading; else the database is the truth and the next load
    /// reads it).
    pub fn release_committed(&self, product_id: i64, quantity: i64, version: i64) {
        self.changed(product_id);
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

    fn sku(available: i64, loaded_version: i64) -> Stock {
        Stock {
            info: ProductInfo {
                product_id: 1,
                merchant_id: 1,
                price_cents: 100,
                active: true,
                category: "fruit".into(),
            },
            available,
            loaded_version,
        }
    }

    #[test]
    fn a_committed_release_counts_once_even_if_the_load_saw_it() {
        // Loaded at stock_version 5 with 1 unit: a release committed as
        // version 5 (or earlier) is already in that unit.
        let mut s = sku(1, 5);
        s.release(1, Some(5));
        assert_eq!(s.available, 1);
        // One committed after the load counts.
        s.release(1, Some(6));
        assert_eq!(s.available, 2);
        // Never below zero, and an abandoned reservation always comes back.
        s.reserve(2).unwrap();
        assert!(s.reserve(1).is_err());
        s.release(2, None);
        assert_eq!(s.available, 2);
    }

    #[test]
    fn adjustments_never_take_stock_below_zero() {
        let mut s = sku(3, 0);
        s.reserve(2).unwrap();
        assert!(s.adjust(-2).is_err(), "two of three are reserved");
        assert_eq!(s.available, 1);
        s.adjust(-1).unwrap();
        assert_eq!(s.available, 0);
        assert!(s.adjust(i64::MAX).is_ok());
        assert!(s.adjust(1).is_err(), "overflow is refused");
    }
}
