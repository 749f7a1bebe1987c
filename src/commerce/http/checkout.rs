//! Mockpay's checkout page, hosted by this server: the buyer confirms (or
//! declines) on the page, and the page's server side builds the provider's
//! signed notification and applies it through the same verification as
//! `POST /payments/mockpay/notify`. The secret never reaches the browser.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::accounts::auth::AuthUser;
use crate::commerce::model::{Command, OrderView};
use crate::commerce::order_actor::{Reply, Request};
use crate::commerce::Commerce;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::ids::OrderId;

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutOutcome {
    Succeeded,
    Failed,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The order to pay (the caller's own, `pending_payment`).
    order_id: i64,
    /// What the payer chose on the checkout page.
    outcome: CheckoutOutcome,
}

/// Mockpay's hosted checkout: the buyer confirms or declines paying an order;
/// the server sends the provider's signed notification and answers with the
/// order as it then stands (`paid` when confirmed).
#[utoipa::path(post, path = "/api/v1/payments/mockpay/checkout", tag = "orders", security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses((status = 200, body = OrderView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "invalid_state: the order is not awaiting payment", body = Problem)))]
pub async fn mockpay_checkout(
    state: web::Data<Commerce>,
    user: AuthUser,
    body: crate::core::extract::Json<CheckoutRequest>,
) -> ApiResult<HttpResponse> {
    let CheckoutRequest { order_id, outcome } = body.into_inner();
    let order_id = OrderId::new(order_id).ok_or_else(|| ApiError::not_found("no such order"))?;
    let caller = user.user_id.get();
    // `pay` is the buyer's alone and answers the same payment every time.
    let payment = match call(
        &state,
        order_id,
        Request::Command {
            caller: Some(caller),
            cmd: Command::Pay,
        },
    )
    .await?
    {
        Reply::Payment(p) => p,
        _ => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "pay answered without a payment"
            )))
        }
    };
    let succeeded = matches!(outcome, CheckoutOutcome::Succeeded);
    let (notice, signature) = state
        .payments
        .hosted_checkout(&payment, succeeded)
        .ok_or_else(|| ApiError::not_found("this payment provider hosts its own checkout"))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("x-mockpay-signature"),
        HeaderValue::from_str(&signature)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("signature header")))?,
    );
    let n = state.payments.verify(&headers, &notice)?;
    call(
        &state,
        order_id,
        Request::PaymentNotice {
            payment_id: n.payment_id,
            amount_cents: n.amount_cents,
            succeeded: n.succeeded,
        },
    )
    .await?;
    match call(&state, order_id, Request::View { caller }).await? {
        Reply::Order(o) => Ok(HttpResponse::Ok().json(o)),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "view answered without an order"
        ))),
    }
}

async fn call(state: &Commerce, order_id: OrderId, req: Request) -> ApiResult<Reply> {
    state.orders.call(order_id.get(), req).await
}
