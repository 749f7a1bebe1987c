//! Commerce over HTTP: merchants, products, orders, payments.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::inventory::{Available, Edit, ProductInfo, Reservation};
use super::merchants::{
    ApplyMerchant, CreateProduct, DecideMerchant, GetMerchant, ListMerchants, ListProducts,
    LoadProduct, MerchantView, OwnedProduct, ProductView, UpdateProduct,
};
use super::model::{Command, OrderView, PaymentView, Status};
use super::order_actor::{Reply, Request};
use super::order_writer::{Created, NewOrder};
use super::queries::{ListOrders, OrderScope};
use super::store::{OrderItemRow, OrderRow};
use super::Commerce;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{cursor_id, parse_limit};
use crate::core::text::{check_line, has_control_chars, Id};
use crate::storage::idempotency::{fingerprint, Decision, MaybeIdempotencyKey};

pub const MAX_ITEMS: usize = 50;
pub const MAX_QUANTITY: i64 = 1_000;
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

// ---- merchants -------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    name: String,
}

/// Apply to become a merchant (status `pending` until an admin decides).
#[utoipa::path(post, path = "/api/v1/merchants", tag = "commerce", security(("bearer" = [])), request_body = MerchantRequest,
    responses((status = 201, body = MerchantView), (status = 400, body = Problem)))]
pub async fn apply_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    body: web::Json<MerchantRequest>,
) -> ApiResult<HttpResponse> {
    check_line(&body.name, "name", 100)?;
    let m = state
        .db
        .call(ApplyMerchant {
            owner: user.user_id,
            name: body.into_inner().name,
        })
        .await?;
    Ok(HttpResponse::Created().json(m))
}

/// A merchant's public profile.
#[utoipa::path(get, path = "/api/v1/merchants/{id}", tag = "commerce", params(("id" = i64, Path)),
    responses((status = 200, body = MerchantView), (status = 404, body = Problem)))]
pub async fn get_merchant(
    state: web::Data<Commerce>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(GetMerchant {
                merchant_id: path.into_inner().0.get(),
            })
            .await?,
    ))
}

async fn decide_merchant(
    state: &Commerce,
    admin: AuthUser,
    id: Id,
    approve: bool,
) -> ApiResult<HttpResponse> {
    let m = state
        .db
        .call(DecideMerchant {
            admin: admin.user_id,
            merchant_id: id.get(),
            approve,
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// Approve a merchant application (admin); the owner gains the `merchant` role.
#[utoipa::path(post, path = "/api/v1/admin/merchants/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = MerchantView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    decide_merchant(&state, user, path.into_inner().0, true).await
}

/// Reject a merchant application (admin).
#[utoipa::path(post, path = "/api/v1/admin/merchants/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = MerchantView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_merchant(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    decide_merchant(&state, user, path.into_inner().0, false).await
}

#[derive(Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Merchant applications by status (admin).
#[utoipa::path(get, path = "/api/v1/admin/merchants", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Merchant], next_cursor}"), (status = 403, body = Problem)))]
pub async fn list_merchants(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    if let Some(s) = &q.status {
        if !["pending", "approved", "rejected"].contains(&s.as_str()) {
            return Err(ApiError::invalid_input(
                "status must be pending, approved or rejected",
            ));
        }
    }
    let page = state
        .db
        .call(ListMerchants {
            admin: user.user_id,
            status: q.status.clone(),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

// ---- products --------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    #[schema(value_type = i64)]
    merchant_id: Id,
    name: String,
    category: String,
    price_cents: i64,
    stock: i64,
}

/// List a product (owner of an approved merchant).
#[utoipa::path(post, path = "/api/v1/products", tag = "commerce", security(("bearer" = [])), request_body = ProductRequest,
    responses((status = 201, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_product(
    state: web::Data<Commerce>,
    user: AuthUser,
    body: web::Json<ProductRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_line(&b.name, "name", 100)?;
    check_line(&b.category, "category", 50)?;
    if b.category == crate::animals::store::ANIMAL_CATEGORY {
        return Err(ApiError::invalid_input(
            "that category is reserved for animal claims: POST /api/v1/animals",
        ));
    }
    if !(0..=MAX_PRICE_CENTS).contains(&b.price_cents) {
        return Err(ApiError::invalid_input("price_cents must be 0 to 10^12"));
    }
    if !(0..=MAX_STOCK).contains(&b.stock) {
        return Err(ApiError::invalid_input("stock must be 0 to 10^9"));
    }
    let p = state
        .db
        .call(CreateProduct {
            owner: user.user_id,
            merchant_id: b.merchant_id.get(),
            name: b.name,
            category: b.category,
            price_cents: b.price_cents,
            stock: b.stock,
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

/// The stock the inventory actor holds, if loaded (it includes reservations in flight).
async fn live_stock(state: &Commerce, mut p: ProductView) -> ProductView {
    if let Some(inv) = state.inventory.get(p.product_id) {
        if let Ok(Some(n)) = inv.send(Available).await {
            p.stock = n;
        }
    }
    p
}

/// A product; `stock` is what can still be ordered.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "commerce", params(("id" = i64, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
pub async fn get_product(
    state: web::Data<Commerce>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    let row = state
        .db
        .call(LoadProduct {
            product_id: path.into_inner().0.get(),
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok(HttpResponse::Ok().json(live_stock(&state, row.into()).await))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    name: Option<String>,
    price_cents: Option<i64>,
    stock_delta: Option<i64>,
    active: Option<bool>,
}

/// Edit a product (owner): name, price, stock adjustment, active.
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "commerce", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ProductPatch, responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn update_product(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    body: web::Json<ProductPatch>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner().0.get();
    let b = body.into_inner();
    if let Some(n) = &b.name {
        check_line(n, "name", 100)?;
    }
    if b.price_cents
        .is_some_and(|p| !(0..=MAX_PRICE_CENTS).contains(&p))
    {
        return Err(ApiError::invalid_input("price_cents must be 0 to 10^12"));
    }
    let delta = b.stock_delta.unwrap_or(0);
    if delta.abs() > MAX_STOCK {
        return Err(ApiError::invalid_input("stock_delta must be within ±10^9"));
    }
    let current = state
        .db
        .call(OwnedProduct {
            owner: user.user_id,
            product_id: id,
        })
        .await?;
    // An animal's unit is its claim: only claims and their timers move it.
    if current.category == crate::animals::store::ANIMAL_CATEGORY
        && (delta != 0 || b.price_cents.is_some() || b.active.is_some())
    {
        return Err(ApiError::conflict(
            "invalid_state",
            "this product sells an animal's claims; its stock, price and availability follow the animal",
        ));
    }
    // Every edit goes through the SKU's actor, which owns the stock: memory
    // first (never below zero, counting reservations in flight), then the
    // database, and memory follows the outcome (see `inventory::Edit`).
    let inv = state.inventory.get_or_load(&state.db, id).await?;
    let updated = inv
        .send(Edit(UpdateProduct {
            product_id: id,
            name: b.name,
            price_cents: b.price_cents,
            active: b.active,
            stock_delta: delta,
        }))
        .await
        .map_err(ApiError::unavailable_because)??;
    Ok(HttpResponse::Ok().json(live_stock(&state, updated).await))
}

#[derive(Deserialize)]
pub struct ProductQuery {
    category: Option<String>,
    merchant_id: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Active products, filtered by category, merchant or text in the name.
#[utoipa::path(get, path = "/api/v1/products", tag = "commerce",
    params(("category" = Option<String>, Query), ("merchant_id" = Option<i64>, Query), ("q" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Product], next_cursor}"), (status = 400, body = Problem)))]
pub async fn list_products(
    state: web::Data<Commerce>,
    q: web::Query<ProductQuery>,
) -> ApiResult<HttpResponse> {
    let merchant_id = q
        .merchant_id
        .as_deref()
        .map(|m| {
            m.parse::<i64>()
                .ok()
                .and_then(Id::new)
                .map(Id::get)
                .ok_or_else(|| ApiError::invalid_input("merchant_id must be an id"))
        })
        .transpose()?;
    if q.q.as_deref().is_some_and(|t| t.chars().count() > 100) {
        return Err(ApiError::invalid_input("q must be at most 100 characters"));
    }
    let page = state
        .db
        .call(ListProducts {
            category: q.category.clone(),
            merchant_id,
            text: q.q.clone().filter(|t| !t.is_empty()),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

// ---- orders ----------------------------------------------------------------

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(value_type = i64)]
    product_id: Id,
    quantity: i64,
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    items: Vec<ItemRequest>,
    shipping_address: Option<String>,
    #[schema(value_type = Option<i64>)]
    gift_to_user_id: Option<Id>,
    gift_message: Option<String>,
}

fn validate_order(user: Id, b: &CreateOrderRequest) -> ApiResult<()> {
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
        if m.chars().count() > 200 || has_control_chars(m) {
            return Err(ApiError::invalid_input(
                "gift_message must be at most 200 characters, no control characters",
            ));
        }
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

fn replay(status_code: u16, body: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status_code)
        .unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

/// Create an order. Stock is reserved (all items or none) and durable before the 201.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = OrderView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "out_of_stock", body = Problem), (status = 422, description = "idempotency_key_reused", body = Problem)))]
pub async fn create_order(
    state: web::Data<Commerce>,
    user: AuthUser,
    key: MaybeIdempotencyKey,
    body: web::Json<CreateOrderRequest>,
) -> ApiResult<HttpResponse> {
    place_order(&state, user.user_id, body.into_inner(), key).await
}

impl CreateOrderRequest {
    /// One unit of one product: an animal claim.
    pub fn single(product_id: Id) -> Self {
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

/// Creates an order for `user`: reserve every item (all or none) on the SKUs'
/// inventory actors, then make it durable through the order writer.
pub async fn place_order(
    state: &Commerce,
    user: Id,
    mut b: CreateOrderRequest,
    key: MaybeIdempotencyKey,
) -> ApiResult<HttpResponse> {
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
                return Ok(replay(status_code, body));
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
        reserved.push(Reservation::take(inventory, pid, item.quantity).await?);
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
    let reservations = reserved.into_iter().map(|(r, _)| r).collect();
    let new_order = NewOrder {
        order,
        items,
        idempotency,
    };
    match state.order_writer.create(new_order, reservations).await? {
        Created::Stored(view) => {
            state.relay.do_send(crate::runtime::relay::Nudge);
            Ok(HttpResponse::Created().json(view))
        }
        Created::Replay { status_code, body } => Ok(replay(status_code, body)),
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

fn order_reply(r: Reply) -> ApiResult<HttpResponse> {
    match r {
        Reply::Order(o) => Ok(HttpResponse::Ok().json(o)),
        Reply::Payment(p) => Ok(HttpResponse::Ok().json(p)),
        Reply::Review(r) => Ok(HttpResponse::Created().json(r)),
        Reply::Applied => Ok(HttpResponse::Ok().finish()),
    }
}

/// An order: its buyer, its merchant's owner and admins see it; others get 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub async fn get_order(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    order_reply(
        state
            .orders
            .call(
                path.into_inner().0.get(),
                Request::View {
                    caller: user.user_id.get(),
                },
            )
            .await?,
    )
}

async fn command(
    state: &Commerce,
    user: AuthUser,
    id: Id,
    cmd: Command,
) -> ApiResult<HttpResponse> {
    order_reply(
        state
            .orders
            .call(
                id.get(),
                Request::Command {
                    caller: Some(user.user_id.get()),
                    cmd,
                },
            )
            .await?,
    )
}

/// Cancel an unpaid order (buyer); its stock is given back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::Cancel).await
}

/// Start paying (buyer); calling it again returns the same payment.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn pay(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::Pay).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    carrier: Option<String>,
    tracking_no: Option<String>,
}

/// Ship a paid order (merchant owner), with carrier and tracking number.
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ShipRequest, responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn ship(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    body: crate::core::extract::ActionBody<ShipRequest>,
) -> ApiResult<HttpResponse> {
    let ShipRequest {
        carrier,
        tracking_no,
    } = body.0;
    for (v, what) in [(&carrier, "carrier"), (&tracking_no, "tracking_no")] {
        if let Some(v) = v {
            check_line(v, what, 100)?;
        }
    }
    command(
        &state,
        user,
        path.into_inner().0,
        Command::Ship {
            carrier,
            tracking_no,
        },
    )
    .await
}

/// Confirm receipt (buyer): `completed`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/confirm", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 409, body = Problem)))]
pub async fn confirm(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::Confirm).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    reason: String,
}

/// Request a refund (buyer).
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = RefundRequest, responses((status = 200, body = OrderView), (status = 409, body = Problem)))]
pub async fn refund(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    body: web::Json<RefundRequest>,
) -> ApiResult<HttpResponse> {
    check_line(&body.reason, "reason", 500)?;
    command(
        &state,
        user,
        path.into_inner().0,
        Command::RequestRefund {
            reason: body.into_inner().reason,
        },
    )
    .await
}

/// Approve a requested refund (merchant owner or admin): `refunded`, stock back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund/approve", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_refund(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::ApproveRefund).await
}

/// Reject a requested refund (merchant owner or admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund/reject", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_refund(
    state: web::Data<Commerce>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::RejectRefund).await
}

fn status_filter(s: &Option<String>) -> ApiResult<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if Status::parse(s).is_some() => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_input("unknown status")),
    }
}

/// Orders the caller bought, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Order], next_cursor}"), (status = 400, body = Problem)))]
pub async fn my_orders(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(ListOrders {
            scope: OrderScope::Buyer(user.user_id.get()),
            status: status_filter(&q.status)?,
            limit: parse_limit(q.limit.as_deref())?,
            before_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A merchant's orders (its owner, admins), newest first.
#[utoipa::path(get, path = "/api/v1/merchants/{id}/orders", tag = "orders", security(("bearer" = [])),
    params(("id" = i64, Path), ("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Order], next_cursor}"), (status = 403, body = Problem)))]
pub async fn merchant_orders(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    let scope = OrderScope::Merchant {
        merchant_id: path.into_inner().0.get(),
        caller: user.user_id.get(),
    };
    let page = state
        .db
        .call(ListOrders {
            scope,
            status: status_filter(&q.status)?,
            limit: parse_limit(q.limit.as_deref())?,
            before_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The payment provider's callback: signed, applied exactly once, `success` once durable.
#[utoipa::path(post, path = "/api/v1/payments/mockpay/notify", tag = "orders",
    request_body(content = String, content_type = "application/json",
        description = "{payment_id, order_id, amount_cents, status: succeeded|failed}; extra fields tolerated"),
    params(("X-Mockpay-Signature" = String, Header, description = "lowercase hex HMAC-SHA256 of the raw body")),
    responses((status = 200, description = "success", content_type = "text/plain"), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn mockpay_notify(
    state: web::Data<Commerce>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let provider = &state.payments;
    let n = provider.verify(req.headers(), &body)?;
    let order_id = Id::new(n.order_id).ok_or_else(|| ApiError::not_found("no such order"))?;
    state
        .orders
        .call(
            order_id.get(),
            Request::PaymentNotice {
                payment_id: n.payment_id,
                amount_cents: n.amount_cents,
                succeeded: n.succeeded,
            },
        )
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body(provider.ack_body()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1-5
    rating: i64,
    body: String,
}

/// Review a completed order (its buyer, once): the merchant's average and count move.
#[utoipa::path(post, path = "/api/v1/orders/{id}/review", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReviewRequest, responses((status = 201, body = super::reviews::ReviewView), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "invalid_state (not completed), already_reviewed", body = Problem)))]
pub async fn review(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    body: web::Json<ReviewRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if !(1..=5).contains(&b.rating) {
        return Err(ApiError::invalid_input("rating must be 1 to 5"));
    }
    crate::core::text::check_free_text(&b.body, "body", 2_000)?;
    order_reply(
        state
            .orders
            .call(
                path.into_inner().0.get(),
                Request::Review {
                    caller: user.user_id.get(),
                    rating: b.rating,
                    body: b.body,
                },
            )
            .await?,
    )
}

/// A merchant's reviews, newest first.
#[utoipa::path(get, path = "/api/v1/merchants/{id}/reviews", tag = "commerce",
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Review], next_cursor}"), (status = 404, body = Problem)))]
pub async fn merchant_reviews(
    state: web::Data<Commerce>,
    path: web::Path<(Id,)>,
    q: web::Query<crate::core::paging::PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(super::reviews::ListReviews {
            merchant_id: path.into_inner().0.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A merchant's figures (its owner, or an admin): orders by status, paid GMV
/// today and over 7 days, best sellers, rating.
#[utoipa::path(get, path = "/api/v1/merchants/{id}/dashboard", tag = "commerce", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = super::reviews::DashboardView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn dashboard(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    let view = state
        .db
        .call(super::reviews::Dashboard {
            merchant_id: path.into_inner().0.get(),
            caller: user.user_id.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
