//! What other domains do inside an order's transition, without commerce
//! knowing them: commerce defines [`OrderHook`], animals (claims) and rebates
//! implement it, and the server hands the hooks to commerce at start.
//!
//! Hooks run in the transition's own transaction, after the order row
//! changed, so their writes commit or roll back with it: a paid claim holds
//! its animal exactly when the order is paid; rebates follow the order in
//! one commit instead of an event round trip.

use std::sync::Arc;

use super::model::{OrderEvent, Status};
use super::store::{OrderItemRow, OrderRow};
use crate::core::error::ApiError;
use crate::runtime::context::Ctx;
use crate::social::notifier::Stored;
use crate::storage::DbConn;

/// One committed-to-be order change, as a hook sees it.
pub struct OrderChange<'a> {
    pub order_id: i64,
    pub buyer_id: i64,
    pub from: Status,
    pub to: Status,
    /// The event the transition stores.
    pub event: OrderEvent,
    pub items: &'a [OrderItemRow],
    /// (product, category) of each item, as the order actor loaded them.
    pub categories: &'a [(i64, String)],
    /// The order as this transition leaves it (what the database will hold).
    pub after: &'a OrderRow,
    pub now_ms: i64,
}

impl OrderChange<'_> {
    /// The category of an item's product, if the order actor knows it.
    pub fn category_of(&self, product_id: i64) -> Option<&str> {
        self.categories
            .iter()
            .find(|(p, _)| *p == product_id)
            .map(|(_, c)| c.as_str())
    }

    /// The categories of the order's items.
    pub fn item_categories(&self) -> Vec<String> {
        self.categories.iter().map(|(_, c)| c.clone()).collect()
    }

    /// What the order is after this transition, as `tx::order_facts` would
    /// read it back inside the same transaction.
    pub fn facts(&self) -> super::tx::OrderFacts {
        super::tx::OrderFacts {
            updated_at_ms: self.after.updated_at_ms,
            buyer_id: self.after.buyer_id,
            merchant_id: self.after.merchant_id,
            status: self.to,
            total_cents: self.after.total_cents,
            paid_at_ms: self.after.paid_at_ms,
            completed_at_ms: self.after.completed_at_ms,
        }
    }
}

/// What a hook did in the transition.
pub enum Followed {
    /// Its writes are in the transaction; push these notifications after the commit.
    Done(Stored),
    /// It could not follow now (its own savepoint rolled back, the transition
    /// still commits); the event's consumer catches up.
    Deferred,
}

pub trait OrderHook: Send + Sync + 'static {
    /// Whether a released unit of `product_id` stays out of stock because
    /// the hook's domain took it back already (an animal whose claim period
    /// ended was freed by its own timer). Default: no.
    fn keeps_released_unit(
        &self,
        _conn: &mut DbConn,
        _change: &OrderChange<'_>,
        _product_id: i64,
    ) -> Result<bool, ApiError> {
        Ok(false)
    }

    /// Runs after the order row changed. An error rolls the whole
    /// transition back; [`Followed::Deferred`] lets it commit without this hook.
    fn follow(
        &self,
        conn: &mut DbConn,
        ctx: &Ctx,
        change: &OrderChange<'_>,
    ) -> Result<Followed, ApiError>;
}

/// The hooks the server registered, run in registration order.
#[derive(Clone, Default)]
pub struct OrderHooks(Arc<[Arc<dyn OrderHook>]>);

impl OrderHooks {
    pub fn new(hooks: Vec<Arc<dyn OrderHook>>) -> Self {
        OrderHooks(hooks.into())
    }

    pub fn keeps_released_unit(
        &self,
        conn: &mut DbConn,
        change: &OrderChange<'_>,
        product_id: i64,
    ) -> Result<bool, ApiError> {
        for h in self.0.iter() {
            if h.keeps_released_unit(conn, change, product_id)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs every hook; returns the notifications to push and whether every
    /// hook followed (the event records it so its consumers can skip).
    pub fn follow(
        &self,
        conn: &mut DbConn,
        ctx: &Ctx,
        change: &OrderChange<'_>,
    ) -> Result<(Stored, bool), ApiError> {
        let mut stored = Stored::new();
        let mut all = true;
        for h in self.0.iter() {
            match h.follow(conn, ctx, change)? {
                Followed::Done(s) => stored.extend(s),
                Followed::Deferred => all = false,
            }
        }
        Ok((stored, all))
    }
}
