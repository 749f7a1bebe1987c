//! Rebates, referrals and the wallet over HTTP, with their executor messages.

mod promotion;

pub use promotion::*;

use actix::{Handler, Message};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::rules::RuleSetSpec;
use super::store::engine::{self, RebateRow, WalletView, WithdrawalView};
use super::Rebates;
use crate::accounts::auth::AuthUser;
use crate::accounts::authz::require_role;
use crate::accounts::domain::Role;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::ids::now_ms;
use crate::core::paging::{parse_limit, Page, PageQuery};
use crate::core::text::Id;
use crate::storage::idempotency::{
    self, fingerprint, Decision, MaybeIdempotencyKey, StoredResponse,
};
use crate::storage::schema::{rebates, withdrawals};
use crate::storage::DbExecutor;

// ---- rules -------------------------------------------------------------------

pub struct PutRules {
    pub admin: Id,
    pub spec: RuleSetSpec,
}

impl Message for PutRules {
    type Result = Result<RuleSetView, ApiError>;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSetView {
    pub version: Option<i64>,
    #[serde(flatten)]
    pub spec: RuleSetSpec,
}

impl Handler<PutRules> for DbExecutor {
    type Result = Result<RuleSetView, ApiError>;
    fn handle(&mut self, msg: PutRules, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let version =
            engine::put_rule_set(&mut conn, &self.ids, msg.admin.get(), &msg.spec, now_ms())?;
        Ok(RuleSetView {
            version: Some(version),
            spec: msg.spec,
        })
    }
}

pub struct GetRules {
    pub admin: Id,
}

impl Message for GetRules {
    type Result = Result<RuleSetView, ApiError>;
}

impl Handler<GetRules> for DbExecutor {
    type Result = Result<RuleSetView, ApiError>;
    fn handle(&mut self, msg: GetRules, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        Ok(match engine::rule_set_at(&mut conn, i64::MAX)? {
            Some((v, spec, _)) => RuleSetView {
                version: Some(v),
                spec,
            },
            None => RuleSetView {
                version: None,
                spec: RuleSetSpec {
                    rules: vec![],
                    referral_levels_bps: vec![],
                    hold_seconds: 0,
                },
            },
        })
    }
}

/// Replace the rule set (admin). Rates 0-10000 bps, at most 3 referral levels, windows that end after they start.
#[utoipa::path(put, path = "/api/v1/admin/rebate-rules", tag = "rebates", security(("bearer" = [])), request_body = RuleSetSpec,
    responses((status = 200, body = RuleSetView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn put_rules(
    state: web::Data<Rebates>,
    user: AuthUser,
    body: web::Json<RuleSetSpec>,
) -> ApiResult<HttpResponse> {
    let spec = body.into_inner();
    spec.validate().map_err(ApiError::invalid_input)?;
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

// ---- records and wallet ----------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RebateView {
    pub rebate_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub amount_cents: i64,
    pub status: String,
    pub rule_version: i64,
    pub rule_name: Option<String>,
    pub rate_bps: i64,
    pub available_at: Option<String>,
    pub created_at: String,
}

impl From<RebateRow> for RebateView {
    fn from(r: RebateRow) -> Self {
        RebateView {
            rebate_id: r.id,
            order_id: r.order_id,
            user_id: r.user_id,
            kind: r.kind,
            amount_cents: r.amount_cents,
            status: r.status,
            rule_version: r.rule_version,
            rule_name: r.rule_name,
            rate_bps: r.rate_bps,
            available_at: r.available_at_ms.map(crate::core::ids::rfc3339),
            created_at: crate::core::ids::rfc3339(r.created_at_ms),
        }
    }
}

pub struct ListRebates {
    pub user: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for ListRebates {
    type Result = Result<Page<RebateView>, ApiError>;
}

impl Handler<ListRebates> for DbExecutor {
    type Result = Result<Page<RebateView>, ApiError>;
    fn handle(&mut self, msg: ListRebates, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = rebates::table
            .filter(rebates::user_id.eq(msg.user))
            .into_boxed();
        if let Some(b) = msg.before_id {
            q = q.filter(rebates::id.lt(b));
        }
        let mut rows: Vec<RebateRow> = q
            .order(rebates::id.desc())
            .limit(msg.limit + 1)
            .select(RebateRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}

/// The caller's rebate and commission records, newest first.
#[utoipa::path(get, path = "/api/v1/rebates", tag = "rebates", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Rebate], next_cursor}"), (status = 400, body = Problem)))]
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

pub struct GetWallet {
    pub user: i64,
}

impl Message for GetWallet {
    type Result = Result<WalletView, ApiError>;
}

impl Handler<GetWallet> for DbExecutor {
    type Result = Result<WalletView, ApiError>;
    fn handle(&mut self, msg: GetWallet, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        engine::wallet(&mut conn, msg.user)
    }
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

// ---- withdrawals -------------------------------------------------------------------

pub struct RequestWithdrawal {
    pub user: i64,
    pub amount_cents: i64,
    pub idempotency: Option<(String, String)>,
}

impl Message for RequestWithdrawal {
    type Result = Result<(u16, String), ApiError>;
}

impl Handler<RequestWithdrawal> for DbExecutor {
    type Result = Result<(u16, String), ApiError>;
    fn handle(&mut self, msg: RequestWithdrawal, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let now = now_ms();
        engine::ensure_wallet(&mut conn, msg.user, now)?;
        let ids = &self.ids;
        crate::storage::transaction(&mut conn, |c| -> Result<(u16, String), ApiError> {
            if let Some((key, hash)) = &msg.idempotency {
                let k = idempotency::IdempotencyKey::parse(key)?;
                if let Decision::Replay { status_code, body } =
                    idempotency::check(c, msg.user, "withdrawals", &k, hash, now)?
                {
                    return Ok((status_code, body));
                }
            }
            let w = engine::request_withdrawal(c, ids, msg.user, msg.amount_cents, now)?;
            let body = serde_json::to_string(&w).map_err(ApiError::internal)?;
            if let Some((key, hash)) = &msg.idempotency {
                let row = StoredResponse {
                    user_id: msg.user,
                    scope: "withdrawals".into(),
                    idem_key: key.clone(),
                    request_hash: hash.clone(),
                    status_code: 201,
                    response_body: body.clone(),
                    created_at_ms: now,
                };
                idempotency::record(c, &row).map_err(|e| match e {
                    idempotency::RecordError::Db(e) => ApiError::from(e),
                    idempotency::RecordError::Conflict => ApiError::conflict(
                        crate::core::error::ErrorKind::IdempotencyConflict,
                        "retry the request",
                    ),
                })?;
            }
            Ok((201, body))
        })
    }
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
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
    body: web::Json<WithdrawalRequest>,
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

pub struct DecideWithdrawal {
    pub admin: Id,
    pub id: i64,
    pub approve: bool,
}

impl Message for DecideWithdrawal {
    type Result = Result<WithdrawalView, ApiError>;
}

impl Handler<DecideWithdrawal> for DbExecutor {
    type Result = Result<WithdrawalView, ApiError>;
    fn handle(&mut self, msg: DecideWithdrawal, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let ids = &self.ids;
        crate::storage::transaction(&mut conn, |c| {
            engine::decide_withdrawal(c, ids, msg.id, msg.approve, now_ms())
        })
    }
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
    path: web::Path<(Id,)>,
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
    path: web::Path<(Id,)>,
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

pub struct ListWithdrawals {
    pub admin: Id,
    pub status: Option<String>,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListWithdrawals {
    type Result = Result<Page<WithdrawalView>, ApiError>;
}

impl Handler<ListWithdrawals> for DbExecutor {
    type Result = Result<Page<WithdrawalView>, ApiError>;
    fn handle(&mut self, msg: ListWithdrawals, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let mut q = withdrawals::table.into_boxed();
        if let Some(s) = msg.status {
            q = q.filter(withdrawals::status.eq(s));
        }
        if let Some(a) = msg.after_id {
            q = q.filter(withdrawals::id.gt(a));
        }
        let mut rows: Vec<(i64, i64, i64, String, i64)> = q
            .order(withdrawals::id.asc())
            .limit(msg.limit + 1)
            .select((
                withdrawals::id,
                withdrawals::user_id,
                withdrawals::amount_cents,
                withdrawals::status,
                withdrawals::created_at_ms,
            ))
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|(id, u, a, s, t)| WithdrawalView {
                    withdrawal_id: id,
                    user_id: u,
                    amount_cents: a,
                    status: s,
                    created_at: crate::core::ids::rfc3339(t),
                })
                .collect(),
            next_cursor,
        })
    }
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
    responses((status = 200, description = "{items: [Withdrawal], next_cursor}"), (status = 403, body = Problem)))]
pub async fn list_withdrawals(
    state: web::Data<Rebates>,
    user: AuthUser,
    q: web::Query<WithdrawalQuery>,
) -> ApiResult<HttpResponse> {
    if q.status
        .as_deref()
        .is_some_and(|s| !["pending", "paid", "rejected"].contains(&s))
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
    list_withdrawals,
    approve_withdrawal,
    reject_withdrawal,
    invitees,
    rewards,
))]
pub struct Api;
