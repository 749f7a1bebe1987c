//! The rebate routes' requests to the database executor: rules, rebates,
//! the wallet and withdrawals.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use super::engine::{self, RebateRow, WalletView, WithdrawalView};
use crate::accounts::domain::Role;
use crate::accounts::tx::require_role;
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::core::paging::Page;
use crate::rebates::rules::RuleSetSpec;
use crate::storage::idempotency::{self, Decision, StoredResponse};
use crate::storage::schema::{rebates, withdrawals};
use crate::storage::DbExecutor;

// ---- rules -------------------------------------------------------------------

pub struct PutRules {
    pub admin: crate::core::ids::UserId,
    pub spec: RuleSetSpec,
}

impl Message for PutRules {
    type Result = Result<RuleSetView, ApiError>;
}

/// The rule set in force and its version (null before any was set). The
/// spec's fields are written out, not flattened: the spec refuses unknown
/// fields, so a flattened schema would forbid `version` itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSetView {
    pub version: Option<i64>,
    pub rules: Vec<crate::rebates::rules::RuleSpec>,
    pub referral_levels_bps: Vec<i64>,
    pub hold_seconds: i64,
}

impl RuleSetView {
    fn new(version: Option<i64>, spec: RuleSetSpec) -> Self {
        let RuleSetSpec {
            rules,
            referral_levels_bps,
            hold_seconds,
        } = spec;
        RuleSetView {
            version,
            rules,
            referral_levels_bps,
            hold_seconds,
        }
    }
}

impl Handler<PutRules> for DbExecutor {
    type Result = Result<RuleSetView, ApiError>;
    fn handle(&mut self, msg: PutRules, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let version =
            engine::put_rule_set(&mut conn, &self.ids, msg.admin.get(), &msg.spec, now_ms())?;
        Ok(RuleSetView::new(Some(version), msg.spec))
    }
}

pub struct GetRules {
    pub admin: crate::core::ids::UserId,
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
            Some((v, spec, _)) => RuleSetView::new(Some(v), spec),
            None => RuleSetView::new(
                None,
                RuleSetSpec {
                    rules: vec![],
                    referral_levels_bps: vec![],
                    hold_seconds: 0,
                },
            ),
        })
    }
}

// ---- records and wallet ----------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RebateView {
    pub rebate_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub amount_cents: i64,
    #[schema(value_type = crate::rebates::model::RebateStatus, inline)]
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

pub struct DecideWithdrawal {
    pub admin: crate::core::ids::UserId,
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

/// The caller's withdrawals, newest first.
pub struct MyWithdrawals {
    pub user: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for MyWithdrawals {
    type Result = Result<Page<WithdrawalView>, ApiError>;
}

impl Handler<MyWithdrawals> for DbExecutor {
    type Result = Result<Page<WithdrawalView>, ApiError>;
    fn handle(&mut self, msg: MyWithdrawals, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = withdrawals::table
            .filter(withdrawals::user_id.eq(msg.user))
            .into_boxed();
        if let Some(b) = msg.before_id {
            q = q.filter(withdrawals::id.lt(b));
        }
        let mut rows: Vec<WithdrawalRow> = q
            .order(withdrawals::id.desc())
            .limit(msg.limit + 1)
            .select(WITHDRAWAL_COLUMNS)
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        Ok(Page {
            items: rows.into_iter().map(withdrawal_view).collect(),
            next_cursor,
        })
    }
}

/// id, user, amount, status, created: what a withdrawal's view shows.
type WithdrawalRow = (i64, i64, i64, String, i64);
const WITHDRAWAL_COLUMNS: (
    withdrawals::id,
    withdrawals::user_id,
    withdrawals::amount_cents,
    withdrawals::status,
    withdrawals::created_at_ms,
) = (
    withdrawals::id,
    withdrawals::user_id,
    withdrawals::amount_cents,
    withdrawals::status,
    withdrawals::created_at_ms,
);

fn withdrawal_view((id, u, a, s, t): WithdrawalRow) -> WithdrawalView {
    WithdrawalView {
        withdrawal_id: id,
        user_id: u,
        amount_cents: a,
        status: s,
        created_at: crate::core::ids::rfc3339(t),
    }
}

pub struct ListWithdrawals {
    pub admin: crate::core::ids::UserId,
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
        let mut rows: Vec<WithdrawalRow> = q
            .order(withdrawals::id.asc())
            .limit(msg.limit + 1)
            .select(WITHDRAWAL_COLUMNS)
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        Ok(Page {
            items: rows.into_iter().map(withdrawal_view).collect(),
            next_cursor,
        })
    }
}
