//! Orders just created, kept for their actor's first start.
//!
//! The request that creates an order knows all an order actor loads (the
//! order and items it wrote, each product's category from its SKU's
//! inventory actor, the shop's owner), and the order is paid moments later
//! by the same client. Without this the actor that takes the payment read it
//! all back: four reads per order (about half the statements of an order's
//! life on PostgreSQL). A seed is taken once, by the actor that starts for its
//! order; the state in it is what the creating transaction committed, and an
//! order changes only through its actor, so it cannot be stale when taken.
//! A seed never taken (an order never paid) is evicted oldest first.

use std::collections::{HashMap, VecDeque};

use dashmap::DashMap;
use parking_lot::Mutex;

use super::order_actor::Loaded;
use super::store::{OrderItemRow, OrderRow};

/// Most seeds kept (about 1 KB each); the oldest goes first. Orders are paid
/// within moments of their creation, so only those in flight need one.
pub const MAX_SEEDS: usize = 16_384;
/// Most shops whose owner is remembered; past it, orders of other shops are
/// not seeded (their actor loads them).
pub const MAX_OWNERS: usize = 100_000;

#[derive(Default)]
pub struct Seeds {
    planted: Mutex<Planted>,
    /// merchant -> owner. A shop's owner never changes.
    owners: DashMap<i64, i64>,
}

#[derive(Default)]
struct Planted {
    by_order: HashMap<i64, Loaded>,
    /// Planting order, for eviction; may name seeds already taken.
    oldest_first: VecDeque<i64>,
}

impl Seeds {
    /// Learns a shop's owner (from an order actor's load).
    pub fn remember_owner(&self, merchant_id: i64, owner_id: i64) {
        if self.owners.len() < MAX_OWNERS || self.owners.contains_key(&merchant_id) {
            self.owners.insert(merchant_id, owner_id);
        }
    }

    /// Keeps a committed new order for its actor. Skipped when the shop's
    /// owner is not known yet: the actor then loads the order.
    pub fn plant(&self, order: OrderRow, items: Vec<OrderItemRow>, categories: Vec<(i64, String)>) {
        let Some(owner_id) = self.owners.get(&order.merchant_id).map(|o| *o) else {
            return;
        };
        let id = order.id;
        let loaded = Loaded {
            order,
            items,
            owner_id,
            categories,
            payment: None,
            unpaid_fresh: true,
        };
        // Held only to insert or remove one entry (and evict at most a few).
        let mut p = self.planted.lock();
        while p.oldest_first.len() >= MAX_SEEDS {
            if let Some(old) = p.oldest_first.pop_front() {
                p.by_order.remove(&old);
            }
        }
        p.oldest_first.push_back(id);
        p.by_order.insert(id, loaded);
    }

    /// The seed of `order_id`, once.
    pub fn take(&self, order_id: i64) -> Option<Loaded> {
        self.planted.lock().by_order.remove(&order_id)
    }

    pub fn len(&self) -> usize {
        self.planted.lock().by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn order(id: i64, merchant_id: i64) -> OrderRow {
        OrderRow {
            id,
            buyer_id: 1,
            merchant_id,
            status: "pending_payment".into(),
            total_cents: 100,
            created_at_ms: 0,
            pay_deadline_ms: 0,
            paid_at_ms: None,
            shipped_at_ms: None,
            completed_at_ms: None,
            auto_complete_at_ms: None,
            refund_requested: false,
            refund_reason: None,
            gift_to_user_id: None,
            gift_message: None,
            shipping_address: None,
            carrier: None,
            tracking_no: None,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_seed_is_taken_once_needs_its_owner_and_the_oldest_is_evicted() {
        let seeds = Seeds::default();
        seeds.plant(order(1, 7), Vec::new(), Vec::new());
        assert!(seeds.take(1).is_none(), "owner unknown: not planted");
        seeds.remember_owner(7, 70);
        seeds.plant(order(2, 7), Vec::new(), vec![(5, "fruit".into())]);
        let taken = seeds.take(2).unwrap();
        assert_eq!((taken.owner_id, taken.categories.len()), (70, 1));
        assert!(seeds.take(2).is_none(), "taken once");
        for id in 10..(10 + MAX_SEEDS as i64 + 1) {
            seeds.plant(order(id, 7), Vec::new(), Vec::new());
        }
        assert_eq!(seeds.len(), MAX_SEEDS);
        assert!(seeds.take(10).is_none(), "the oldest went first");
        assert!(seeds.take(11).is_some());
    }
}
