//! Orders, payments, refunds, reviews and the merchant dashboard over HTTP.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::catalog::StatusQuery;
use crate::accounts::auth::AuthUser;
use crate::commerce::model::{Command, OrderView, PaymentView, Status};
use crate::commerce::order_actor::{Reply, Request};
use crate::commerce::order_request::CreateOrderRequest;
use crate::commerce::store::queries::{ListOrders, OrderScope};
use crate::commerce::{Commerce, Placed};
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::ids::{kind, OrderId};
use crate::core::paging::{cursor_id, parse_limit};
use crate::core::text::{check_line, id_param, Id};
use crate::storage::idempotency::MaybeIdempotencyKey;

/// A stored response, as it was answered the first time.
pub fn replay(status_code: u16, body: String) -> HttpResponse {
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
    body: crate::core::extract::Json<CreateOrderRequest>,
) -> ApiResult<HttpResponse> {
    match state
        .place_order(user.user_id, body.into_inner(), key)
        .await?
    {
        Placed::Created(view) => Ok(HttpResponse::Created().json(view)),
        Placed::Replay { status_code, body } => Ok(replay(status_code, body)),
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

/// An order: its buyer, its merchant's owner, a gift's recipient and admins
/// see it; others get 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub async fn get_order(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::OrderId,)>,
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
    id: crate::core::ids::OrderId,
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
    path: web::Path<(crate::core::ids::OrderId,)>,
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
    path: web::Path<(crate::core::ids::OrderId,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::Pay).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    #[schema(min_length = 1, max_length = 100)]
    carrier: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    tracking_no: Option<String>,
}

/// Ship a paid order (merchant owner), with carrier and tracking number.
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ShipRequest, responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn ship(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::OrderId,)>,
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(min_length = 1, max_length = 500)]
    shipping_address: String,
}

/// A gift's recipient says where to deliver it (until it ships; again to
/// change it). A gift without an address cannot be shipped (409).
#[utoipa::path(post, path = "/api/v1/orders/{id}/address", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = AddressRequest, responses((status = 200, body = OrderView), (status = 400, body = Problem),
        (status = 403, description = "not the gift's recipient", body = Problem), (status = 404, body = Problem),
        (status = 409, description = "invalid_state: shipped, cancelled or refunded", body = Problem)))]
pub async fn give_address(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::OrderId,)>,
    body: crate::core::extract::Json<AddressRequest>,
) -> ApiResult<HttpResponse> {
    let address = body.into_inner().shipping_address;
    check_line(&address, "shipping_address", 500)?;
    command(
        &state,
        user,
        path.into_inner().0,
        Command::GiveAddress { address },
    )
    .await
}

/// Gifts others bought for the caller, newest first (each one's order).
#[utoipa::path(get, path = "/api/v1/gifts/received", tag = "orders", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::model::OrderView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn gifts_received(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    orders_page(
        &state,
        OrderScope::Recipient(user.user_id.get()),
        &q.status,
        &q.limit,
        &q.cursor,
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
    path: web::Path<(crate::core::ids::OrderId,)>,
) -> ApiResult<HttpResponse> {
    command(&state, user, path.into_inner().0, Command::Confirm).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// Request a refund (buyer).
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = RefundRequest, responses((status = 200, body = OrderView), (status = 409, body = Problem)))]
pub async fn refund(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::OrderId,)>,
    body: crate::core::extract::Json<RefundRequest>,
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
    path: web::Path<(crate::core::ids::OrderId,)>,
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
    path: web::Path<(crate::core::ids::OrderId,)>,
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

/// One page of the orders in `scope`, newest first, by the list's query.
async fn orders_page(
    state: &Commerce,
    scope: OrderScope,
    status: &Option<String>,
    limit: &Option<String>,
    cursor: &Option<String>,
) -> ApiResult<HttpResponse> {
    let page = state
        .list_orders(ListOrders {
            scope,
            status: status_filter(status)?,
            limit: parse_limit(limit.as_deref())?,
            before_id: cursor_id(cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Orders the caller bought, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::model::OrderView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn my_orders(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    orders_page(
        &state,
        OrderScope::Buyer(user.user_id.get()),
        &q.status,
        &q.limit,
        &q.cursor,
    )
    .await
}

/// A merchant's orders (its owner, admins), newest first.
#[utoipa::path(get, path = "/api/v1/merchants/{id}/orders", tag = "orders", security(("bearer" = [])),
    params(("id" = i64, Path), ("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::model::OrderView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = Problem)))]
pub async fn merchant_orders(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::MerchantId,)>,
    q: web::Query<StatusQuery>,
) -> ApiResult<HttpResponse> {
    let scope = OrderScope::Merchant {
        merchant_id: path.into_inner().0.get(),
        caller: user.user_id.get(),
    };
    orders_page(&state, scope, &q.status, &q.limit, &q.cursor).await
}

#[derive(Deserialize)]
pub struct OrderSearchQuery {
    status: Option<String>,
    user_id: Option<String>,
    merchant_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Order search (admin): by status, buyer (`user_id`) and merchant, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("user_id" = Option<i64>, Query), ("merchant_id" = Option<i64>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::model::OrderView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn admin_orders(
    state: web::Data<Commerce>,
    user: AuthUser,
    q: web::Query<OrderSearchQuery>,
) -> ApiResult<HttpResponse> {
    let scope = OrderScope::Admin {
        admin: user.user_id,
        buyer_id: id_param::<kind::User>(q.user_id.as_deref(), "user_id")?.map(Id::get),
        merchant_id: id_param::<kind::Merchant>(q.merchant_id.as_deref(), "merchant_id")?
            .map(Id::get),
    };
    orders_page(&state, scope, &q.status, &q.limit, &q.cursor).await
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
    body: crate::core::extract::RawBody,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let provider = &state.payments;
    let n = provider.verify(req.headers(), &body)?;
    let order_id = OrderId::new(n.order_id).ok_or_else(|| ApiError::not_found("no such order"))?;
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
    #[schema(minimum = 1, maximum = 5)]
    rating: i64,
    #[schema(max_length = 2000)]
    body: String,
}

/// Review a completed order (its buyer, once): the merchant's average and count move.
#[utoipa::path(post, path = "/api/v1/orders/{id}/review", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReviewRequest, responses((status = 201, body = crate::commerce::store::reviews::ReviewView), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "invalid_state (not completed), already_reviewed", body = Problem)))]
pub async fn review(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::OrderId,)>,
    body: crate::core::extract::Json<ReviewRequest>,
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

/// A merchant's reviews, newest first (public: the reviewer as a masked
/// name, never a buyer's id or an order).
#[utoipa::path(get, path = "/api/v1/merchants/{id}/reviews", tag = "commerce",
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::commerce::store::reviews::PublicReviewView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 404, body = Problem)))]
pub async fn merchant_reviews(
    state: web::Data<Commerce>,
    path: web::Path<(crate::core::ids::MerchantId,)>,
    q: web::Query<crate::core::paging::PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(crate::commerce::store::reviews::ListReviews {
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
    responses((status = 200, body = crate::commerce::store::reviews::DashboardView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn dashboard(
    state: web::Data<Commerce>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::MerchantId,)>,
) -> ApiResult<HttpResponse> {
    let view = state
        .db
        .call(crate::commerce::store::reviews::Dashboard {
            merchant_id: path.into_inner().0.get(),
            caller: user.user_id.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
