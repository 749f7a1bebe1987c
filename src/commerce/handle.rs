//! `Commerce`: what routes and other domains (animals) use of merchants,
//! products, orders and payments.

use std::sync::Arc;

use actix::Addr;

use super::inventory::{InventoryRegistry, ProductInfo, Reservation};
use super::model::{OrderView, Status};
use super::order_actor::OrderRegistry;
use super::order_request::{validate_order, CheckIdempotency, CreateOrderRequest};
use super::order_writer::OrderWriter;
use super::order_writer::{Created, NewOrder};
use super::payments::PaymentProvider;
use super::store::{OrderItemRow, OrderRow};
use crate::core::error::{ApiError, ApiResult};
use crate::core::text::Id;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::idempotency::{fingerprint, Decision, MaybeIdempotencyKey};
use crate::storage::Db;

#[derive(Clone)]
pub struct Commerce {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    pub inventory: Arc<InventoryRegistry>,
    pub orders: Arc<OrderRegistry>,
    pub order_writer: OrderWriter,
    pub payments: Arc<dyn PaymentProvider>,
}

/// What became of an order request.
pub enum Placed {
    /// Stored now: 201 with the order.
    Created(Box<OrderView>),
    /// The same Idempotency-Key was answered before: the stored response.
    Replay { status_code: u16, body: String },
}

/// The notice that a product's stock changed on some node.
const STOCK_NOTICE: &str = "commerce.stock";

impl Commerce {
    /// In a cluster: this node's stock counts follow the others' changes
    /// (see `InventoryRegistry::tell_others`).
    pub fn follow_cluster(&self, registry: &Arc<crate::realtime::registry::Registry>) {
        let inventory = self.inventory.clone();
        registry.on_notice(
            STOCK_NOTICE,
            Arc::new(move |product| inventory.changed_elsewhere(product)),
        );
        let registry = registry.clone();
        self.inventory.tell_others(Arc::new(move |product| {
            registry.notice_others(STOCK_NOTICE, product)
        }));
    }

    /// One page of orders in `q.scope` (a buyer's, a merchant's for its
    /// owner or an admin, or an admin's search), newest first.
    pub async fn list_orders(
        &self,
        q: super::store::queries::ListOrders,
    ) -> ApiResult<crate::core::paging::Page<OrderView>> {
        self.db.call(q).await
    }

    /// Another domain gave `quantity` units of `product_id` back in its own
    /// committed transaction (through `tx::add_stock`, which returned
    /// `version`): the SKU's inventory actor follows.
    pub fn stock_returned(&self, product_id: i64, quantity: i64, version: i64) {
        self.inventory
            .release_committed(product_id, quantity, version);
    }

    /// Creates an order for `user`: reserve every item (all or none) on the SKUs'
    /// inventory actors, then make it durable through the order writer.
    pub async fn place_order(
        &self,
        user: crate::core::ids::UserId,
        mut b: CreateOrderRequest,
        key: MaybeIdempotencyKey,
    ) -> ApiResult<Placed> {
        let state = self;
        validate_order(user, &b)?;
        let buyer = user.get();
        let idempotency = match key.0 {
            Some(k) => {
                let hash = fingerprint(
                    "orders",
                    &serde_json::to_value(&b).map_err(ApiError::internal)?,
                );
                if let Decision::Replay { status_code, body } = state
                    .db
                    .call(CheckIdempotency {
                        user_id: buyer,
                        key: k.as_str().to_owned(),
                        hash: hash.clone(),
                    })
                    .await?
                {
                    return Ok(Placed::Replay { status_code, body });
                }
                Some((k.as_str().to_owned(), hash))
            }
            None => None,
        };
        // Reserve in product-id order, so two multi-item orders never wait on each other in a cycle.
        b.items.sort_by_key(|i| i.product_id);
        // Every reservation releases itself when dropped: each early return below,
        // and this future being dropped (the client went away), give the units
        // back. Once submitted, the order writer owns them until the outcome.
        let mut reserved: Vec<(Reservation, ProductInfo)> = Vec::with_capacity(b.items.len());
        for item in &b.items {
            let pid = item.product_id.get();
            let inventory = state.inventory.get_or_load(&state.db, pid).await?;
            reserved
                .push(Reservation::take(&state.inventory, inventory, pid, item.quantity).await?);
        }
        let merchant_id = reserved[0].1.merchant_id;
        if reserved
            .iter()
            .any(|(_, info)| info.merchant_id != merchant_id)
        {
            return Err(ApiError::invalid_input(
                "all items of an order must belong to one merchant",
            ));
        }
        let total = reserved.iter().try_fold(0_i64, |acc, (r, info)| {
            info.price_cents
                .checked_mul(r.quantity)
                .and_then(|v| acc.checked_add(v))
        });
        let Some(total_cents) = total else {
            return Err(ApiError::invalid_input("the order total is too large"));
        };
        let now = crate::core::ids::now_ms();
        let id = state.ctx.ids.next_id();
        let pay_timeout_ms = i64::try_from(state.ctx.config.pay_timeout_secs)
            .unwrap_or(i64::MAX / 2_000)
            .saturating_mul(1000);
        let order = OrderRow {
            id,
            buyer_id: buyer,
            merchant_id,
            status: Status::PendingPayment.as_str().to_owned(),
            total_cents,
            created_at_ms: now,
            pay_deadline_ms: now.saturating_add(pay_timeout_ms),
            paid_at_ms: None,
            shipped_at_ms: None,
            completed_at_ms: None,
            auto_complete_at_ms: None,
            refund_requested: false,
            refund_reason: None,
            gift_to_user_id: b.gift_to_user_id.map(Id::get),
            gift_message: b.gift_message.clone(),
            shipping_address: b.shipping_address.clone(),
            carrier: None,
            tracking_no: None,
            updated_at_ms: now,
        };
        let items = reserved
            .iter()
            .map(|(r, info)| OrderItemRow {
                order_id: id,
                product_id: r.product_id,
                quantity: r.quantity,
                price_cents: info.price_cents,
            })
            .collect();
        let categories: Vec<(i64, String)> = reserved
            .iter()
            .map(|(r, info)| (r.product_id, info.category.clone()))
            .collect();
        let reservations = reserved.into_iter().map(|(r, _)| r).collect();
        let new_order = NewOrder {
            order,
            items,
            idempotency,
        };
        let seed = (new_order.order.clone(), new_order.items.clone());
        match state.order_writer.create(new_order, reservations).await? {
            Created::Stored(view) => {
                // Committed as written: its actor need not read it back.
                state.orders.seeds.plant(seed.0, seed.1, categories);
                state.relay.do_send(crate::runtime::relay::Nudge);
                Ok(Placed::Created(view))
            }
            Created::Replay { status_code, body } => Ok(Placed::Replay { status_code, body }),
        }
    }
}
