//! A new order as a client asks for it, and its validation (before anything
//! is reserved).

use serde::{Deserialize, Serialize};

use crate::core::error::{ApiError, ApiResult};
use crate::core::text::{check_line, check_text, Lines};
use crate::storage::idempotency::Decision;

/// Most items in one order.
pub const MAX_ITEMS: usize = 50;
/// Most units of one item.
pub const MAX_QUANTITY: i64 = 1_000;

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(value_type = i64)]
    pub(crate) product_id: crate::core::ids::ProductId,
    #[schema(minimum = 1, maximum = 1000)]
    pub(crate) quantity: i64,
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[schema(min_items = 1, max_items = 50)]
    pub(crate) items: Vec<ItemRequest>,
    #[schema(min_length = 1, max_length = 500)]
    pub(crate) shipping_address: Option<String>,
    #[schema(value_type = Option<i64>)]
    pub(crate) gift_to_user_id: Option<crate::core::ids::UserId>,
    #[schema(max_length = 200)]
    pub(crate) gift_message: Option<String>,
}

pub(crate) fn validate_order(
    user: crate::core::ids::UserId,
    b: &CreateOrderRequest,
) -> ApiResult<()> {
    if b.items.is_empty() || b.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_input(format!(
            "an order has 1 to {MAX_ITEMS} items"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for i in &b.items {
        if !(1..=MAX_QUANTITY).contains(&i.quantity) {
            return Err(ApiError::invalid_input("quantity must be 1 to 1000"));
        }
        if !seen.insert(i.product_id) {
            return Err(ApiError::invalid_input(
                "each product may appear once; add up the quantity",
            ));
        }
    }
    if let Some(a) = &b.shipping_address {
        check_line(a, "shipping_address", 500)?;
    }
    if let Some(m) = &b.gift_message {
        check_text(m, "gift_message", 200, Lines::One, false)?;
        if b.gift_to_user_id.is_none() {
            return Err(ApiError::invalid_input(
                "gift_message needs gift_to_user_id",
            ));
        }
    }
    if b.gift_to_user_id == Some(user) {
        return Err(ApiError::invalid_input("a gift goes to someone else"));
    }
    Ok(())
}

impl CreateOrderRequest {
    /// One unit of one product: an animal claim.
    pub fn single(product_id: crate::core::ids::ProductId) -> Self {
        CreateOrderRequest {
            items: vec![ItemRequest {
                product_id,
                quantity: 1,
            }],
            shipping_address: None,
            gift_to_user_id: None,
            gift_message: None,
        }
    }
}

/// Idempotency lookup before any reservation.
pub struct CheckIdempotency {
    pub user_id: i64,
    pub key: String,
    pub hash: String,
}

impl actix::Message for CheckIdempotency {
    type Result = Result<Decision, ApiError>;
}

impl actix::Handler<CheckIdempotency> for crate::storage::DbExecutor {
    type Result = Result<Decision, ApiError>;
    fn handle(&mut self, msg: CheckIdempotency, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let key = crate::storage::idempotency::IdempotencyKey::parse(&msg.key)?;
        crate::storage::idempotency::check(
            &mut conn,
            msg.user_id,
            "orders",
            &key,
            &msg.hash,
            crate::core::ids::now_ms(),
        )
    }
}
