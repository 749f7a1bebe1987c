//! Rebates, referrals and the wallet over HTTP, with their executor messages.

mod promotion;

pub use promotion::*;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::rules::RuleSetSpec;
use super::store::engine::{WalletView, WithdrawalView};
use super::Rebates;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{parse_limit, PageQuery};
use crate::rebates::store::requests::{
    DecideWithdrawal, GetRules, GetWallet, ListRebates, ListWithdrawals, PutRules,
    RequestWithdrawal, RuleSetView,
};
use crate::storage::idempotency::{fingerprint, MaybeIdempotencyKey};

/// Replace the rule set (admin). Rates 0-10000 bps, at most 3 referral levels, windows that end after they start; refused (400) when it can pay out more than `TANDEM_REBATE_MAX_PAYOUT_BPS` of an order (default 10000: the whole order), counted as the highest rule rate plus every referral level (fixed amounts are absolute and bounded by `cap_cents`).
#[utoipa::path(put, path = "/api/v1/admin/rebate-rules", tag = "rebates", security(("bearer" = [])), request_body = RuleSetSpec,
    responses((status = 200, body = RuleSetView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn put_rules(
    state: web::Data<Rebates>,
    user: AuthUser,
    body: crate::core::extract::Json<RuleSetSpec>,
) -> ApiResult<HttpResponse> {
    let spec = body.into_inner();
    spec.validate()
        .map_err(ApiError::invalid_input)?
        .check_payout(state.ctx.config.rebate_max_payout_bps)
        .map_err(ApiError::invalid_input)?;
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(PutRules {
                admin: user.user_id,
                spec,
            })
            .await?,
    ))
}

/// The rule set in force (admin).
#[utoipa::path(get, path = "/api/v1/admin/rebate-rules", tag = "rebates", security(("bearer" = [])),
    responses((status = 200, body = RuleSetView), (status = 403, body = Problem)))]
pub async fn get_rules(state: web::Data<Rebates>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(GetRules {
                admin: user.user_id,
            })
            .await?,
    ))
}

/// The caller's rebate and commission records, newest first.
#[utoipa::path(get, path = "/api/v1/rebates", tag = "rebates", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::rebates::store::requests::RebateView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn list_rebates(
    state: web::Data<Rebates>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(ListRebates {
            user: user.user_id.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The caller's withdrawals, newest first.
#[utoipa::path(get, path = "/api/v1/withdrawals", tag = "rebates", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::rebates::store::withdrawals::WithdrawalView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn my_withdrawals(
    state: web::Data<Rebates>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(crate::rebates::store::requests::MyWithdrawals {
            user: user.user_id.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The caller's balances.
#[utoipa::path(get, path = "/api/v1/wallet", tag = "rebates", security(("bearer" = [])), responses((status = 200, body = WalletView)))]
pub async fn get_wallet(state: web::Data<Rebates>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(GetWallet {
                user: user.user_id.get(),
            })
            .await?,
    ))
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    amount_cents: i64,
}

/// Withdraw: the amount moves from available to withdrawing at once; more than available is 409.
#[utoipa::path(post, path = "/api/v1/withdrawals", tag = "rebates", security(("bearer" = [])), request_body = WithdrawalRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = WithdrawalView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn request_withdrawal(
    state: web::Data<Rebates>,
    user: AuthUser,
    key: MaybeIdempotencyKey,
    body: crate::core::extract::Json<WithdrawalRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if !(1..=1_000_000_000_000).contains(&b.amount_cents) {
        return Err(ApiError::invalid_input("amount_cents must be 1 to 10^12"));
    }
    let idempotency = match key.0 {
        Some(k) => Some((
            k.as_str().to_owned(),
            fingerprint(
                "withdrawals",
                &serde_json::to_value(&b).map_err(ApiError::internal)?,
            ),
        )),
        None => None,
    };
    let (status, body) = state
        .db
        .call(RequestWithdrawal {
            user: user.user_id.get(),
            amount_cents: b.amount_cents,
            idempotency,
        })
        .await?;
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    Ok(HttpResponse::build(code)
        .content_type("application/json")
        .body(body))
}

/// Pay a pending withdrawal (admin): withdrawing to withdrawn.
///
/// 409 `insufficient_funds` while the user's available balance is negative (a rebate was
/// clawed back since the request): nothing changes and the withdrawal stays pending.
#[utoipa::path(post, path = "/api/v1/admin/withdrawals/{id}/approve", tag = "admin", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = WithdrawalView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_withdrawal(
    state: web::Data<Rebates>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::WithdrawalId,)>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(DecideWithdrawal {
                admin: user.user_id,
                id: path.into_inner().0.get(),
                approve: true,
            })
            .await?,
    ))
}

/// Reject a pending withdrawal (admin): back to available.
#[utoipa::path(post, path = "/api/v1/admin/withdrawals/{id}/reject", tag = "admin", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = WithdrawalView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_withdrawal(
    state: web::Data<Rebates>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::WithdrawalId,)>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(DecideWithdrawal {
                admin: user.user_id,
                id: path.into_inner().0.get(),
                approve: false,
            })
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct WithdrawalQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Withdrawals by status (admin).
#[utoipa::path(get, path = "/api/v1/admin/withdrawals", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::rebates::store::withdrawals::WithdrawalView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = Problem)))]
pub async fn list_withdrawals(
    state: web::Data<Rebates>,
    user: AuthUser,
    q: web::Query<WithdrawalQuery>,
) -> ApiResult<HttpResponse> {
    if q.status
        .as_deref()
        .is_some_and(|s| crate::rebates::model::WithdrawalStatus::parse(s).is_none())
    {
        return Err(ApiError::invalid_input(
            "status must be pending, paid or rejected",
        ));
    }
    let after_id = crate::core::paging::cursor_id(q.cursor.as_deref())?;
    let page = state
        .db
        .call(ListWithdrawals {
            admin: user.user_id,
            status: q.status.clone(),
            limit: parse_limit(q.limit.as_deref())?,
            after_id,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/rebate-rules", web::put().to(put_rules))
        .route("/admin/rebate-rules", web::get().to(get_rules))
        .route("/rebates", web::get().to(list_rebates))
        .route("/wallet", web::get().to(get_wallet))
        .route("/withdrawals", web::post().to(request_withdrawal))
        .route("/withdrawals", web::get().to(my_withdrawals))
        .route("/admin/withdrawals", web::get().to(list_withdrawals))
        .route(
            "/admin/withdrawals/{id}/approve",
            web::post().to(approve_withdrawal),
        )
        .route(
            "/admin/withdrawals/{id}/reject",
            web::post().to(reject_withdrawal),
        )
        .route("/me/invitees", web::get().to(invitees))
        .route("/me/rewards", web::get().to(rewards));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    put_rules,
    get_rules,
    list_rebates,
    get_wallet,
    request_withdrawal,
    my_withdrawals,
    list_withdrawals,
    approve_withdrawal,
    reject_withdrawal,
    invitees,
    rewards,
))]
pub struct Api;
