//! The rebate engine as plain functions on a connection: the rebate actors,
//! the settlement timer, the `tandem audit` command and the property test all
//! call these.
//!
//! `reconcile` brings one order's rebate records in line with the order as
//! stored (paid -> pending records; completed and held long enough ->
//! available; refunded -> cancelled or reversed). Because it reads the truth
//! instead of trusting the event, a duplicated, late or out-of-order event can
//! never pay twice or skip a step; `UNIQUE (order_id, user_id, kind)` backs it.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;
use serde::Serialize;

use super::rules::{best_rule, floor_bps, PaidOrder, RuleSet, RuleSetSpec};
use crate::core::error::ApiError;
use crate::core::ids::IdGenerator;
use crate::social::notifier;
use crate::storage::outbox;
use crate::storage::schema::{
    ledger_entries, order_items, orders, products, rebate_rule_sets, rebates, users, wallets,
    withdrawals,
};
use crate::storage::{direct, DbConn};

/// Balance changes of one ledger entry: (pending, available, withdrawing, withdrawn).
pub type Deltas = [i64; 4];

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default, utoipa::ToSchema)]
pub struct WalletView {
    pub pending_cents: i64,
    pub available_cents: i64,
    pub withdrawing_cents: i64,
    pub withdrawn_cents: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rebates)]
pub struct RebateRow {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub amount_cents: i64,
    pub status: String,
    pub rule_version: i64,
    pub rule_name: Option<String>,
    pub rate_bps: i64,
    pub fixed_cents: i64,
    pub hold_seconds: i64,
    pub available_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Makes sure the user has a wallet row. The insert runs in its own nested
/// transaction (a savepoint), so losing a race to another writer rolls back
/// only that savepoint, never the caller's transaction (on PostgreSQL a
/// failed statement would otherwise abort it).
pub fn ensure_wallet(conn: &mut DbConn, user_id: i64, now: i64) -> Result<(), ApiError> {
    let exists: Option<i64> =
        direct::first(conn, wallets::table.find(user_id).select(wallets::user_id))?;
    if exists.is_some() {
        return Ok(());
    }
    let _writer = crate::storage::write_lock(conn);
    // In its own (nested) transaction: if another writer created the row
    // meanwhile, only that savepoint rolls back, never the caller's transaction.
    let r = conn.transaction(|c| {
        diesel::insert_into(wallets::table)
            .values((
                wallets::user_id.eq(user_id),
                wallets::pending_cents.eq(0_i64),
                wallets::available_cents.eq(0_i64),
                wallets::withdrawing_cents.eq(0_i64),
                wallets::withdrawn_cents.eq(0_i64),
                wallets::updated_at_ms.eq(now),
            ))
            .execute(c)
    });
    match r {
        Ok(_) | Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Appends a ledger entry and applies it to the materialized wallet, in the
/// caller's transaction.
// Each argument is one column of the journal entry; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn post(
    c: &mut DbConn,
    ids: &IdGenerator,
    user_id: i64,
    kind: &str,
    rebate_id: Option<i64>,
    withdrawal_id: Option<i64>,
    d: Deltas,
    now: i64,
) -> Result<(), ApiError> {
    entry(c, ids, user_id, kind, rebate_id, withdrawal_id, d, now)?;
    // A cached statement (see `RowUpdate`): this runs for every rebate.
    let n = {
        use diesel::Column;
        use direct::{Assign, RowUpdate, Val};
        direct::execute(
            c,
            RowUpdate {
                table: "wallets",
                set: vec![
                    (wallets::pending_cents::NAME, Assign::AddInt(d[0])),
                    (wallets::available_cents::NAME, Assign::AddInt(d[1])),
                    (wallets::withdrawing_cents::NAME, Assign::AddInt(d[2])),
                    (wallets::withdrawn_cents::NAME, Assign::AddInt(d[3])),
                    (wallets::updated_at_ms::NAME, Assign::To(Val::Int(now))),
                ],
                filter: vec![(wallets::user_id::NAME, Val::Int(user_id))],
            },
        )?
    };
    if n != 1 {
        return Err(ApiError::internal(anyhow::anyhow!(
            "wallet of user {user_id} is missing"
        )));
    }
    Ok(())
}

/// Appends a ledger entry only, for a caller that has moved the wallet itself
/// (with a guarded update).
// Each argument is one column of the journal entry; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn entry(
    c: &mut DbConn,
    ids: &IdGenerator,
    user_id: i64,
    kind: &str,
    rebate_id: Option<i64>,
    withdrawal_id: Option<i64>,
    d: Deltas,
    now: i64,
) -> Result<(), ApiError> {
    direct::execute(
        c,
        diesel::insert_into(ledger_entries::table).values((
            ledger_entries::id.eq(ids.next_id()),
            ledger_entries::user_id.eq(user_id),
            ledger_entries::kind.eq(kind),
            ledger_entries::rebate_id.eq(rebate_id),
            ledger_entries::withdrawal_id.eq(withdrawal_id),
            ledger_entries::pending_delta.eq(d[0]),
            ledger_entries::available_delta.eq(d[1]),
            ledger_entries::withdrawing_delta.eq(d[2]),
            ledger_entries::withdrawn_delta.eq(d[3]),
            ledger_entries::created_at_ms.eq(now),
        )),
    )?;
    Ok(())
}

pub fn wallet(conn: &mut DbConn, user_id: i64) -> Result<WalletView, ApiError> {
    let row: Option<(i64, i64, i64, i64)> = wallets::table
        .find(user_id)
        .select((
            wallets::pending_cents,
            wallets::available_cents,
            wallets::withdrawing_cents,
            wallets::withdrawn_cents,
        ))
        .first(conn)
        .optional()?;
    Ok(
        row.map_or_else(WalletView::default, |(p, a, w, d)| WalletView {
            pending_cents: p,
            available_cents: a,
            withdrawing_cents: w,
            withdrawn_cents: d,
        }),
    )
}

// ---- rule sets ---------------------------------------------------------------

pub fn put_rule_set(
    conn: &mut DbConn,
    ids: &IdGenerator,
    admin: i64,
    spec: &RuleSetSpec,
    now: i64,
) -> Result<i64, ApiError> {
    spec.validate().map_err(ApiError::invalid_input)?;
    let version = ids.next_id();
    diesel::insert_into(rebate_rule_sets::table)
        .values((
            rebate_rule_sets::version.eq(version),
            rebate_rule_sets::rules
                .eq(serde_json::to_string(&spec.rules).map_err(ApiError::internal)?),
            rebate_rule_sets::referral_levels_bps
                .eq(serde_json::to_string(&spec.referral_levels_bps).map_err(ApiError::internal)?),
            rebate_rule_sets::hold_seconds.eq(spec.hold_seconds),
            rebate_rule_sets::created_by.eq(admin),
            rebate_rule_sets::created_at_ms.eq(now),
        ))
        .execute(conn)?;
    Ok(version)
}

fn spec_of(rules: String, levels: String, hold: i64) -> Result<RuleSetSpec, ApiError> {
    Ok(RuleSetSpec {
        rules: serde_json::from_str(&rules).map_err(ApiError::internal)?,
        referral_levels_bps: serde_json::from_str(&levels).map_err(ApiError::internal)?,
        hold_seconds: hold,
    })
}

/// The rule set in force at `at_ms` (the newest one created at or before it).
pub fn rule_set_at(
    conn: &mut DbConn,
    at_ms: i64,
) -> Result<Option<(i64, RuleSetSpec, RuleSet)>, ApiError> {
    let row: Option<(i64, String, String, i64)> = direct::first(
        conn,
        rebate_rule_sets::table
            .filter(rebate_rule_sets::created_at_ms.le(at_ms))
            .order(rebate_rule_sets::version.desc())
            .select((
                rebate_rule_sets::version,
                rebate_rule_sets::rules,
                rebate_rule_sets::referral_levels_bps,
                rebate_rule_sets::hold_seconds,
            )),
    )?;
    row.map(|(v, r, l, h)| version_of(v, r, l, h)).transpose()
}

pub fn rule_set_version(
    conn: &mut DbConn,
    version: i64,
) -> Result<Option<(i64, RuleSetSpec, RuleSet)>, ApiError> {
    let row: Option<(i64, String, String, i64)> = rebate_rule_sets::table
        .find(version)
        .select((
            rebate_rule_sets::version,
            rebate_rule_sets::rules,
            rebate_rule_sets::referral_levels_bps,
            rebate_rule_sets::hold_seconds,
        ))
        .first(conn)
        .optional()?;
    row.map(|(v, r, l, h)| version_of(v, r, l, h)).transpose()
}

fn version_of(
    v: i64,
    r: String,
    l: String,
    h: i64,
) -> Result<(i64, RuleSetSpec, RuleSet), ApiError> {
    let spec = spec_of(r, l, h)?;
    let set = spec
        .validate()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored rule set {v} invalid: {e}")))?;
    Ok((v, spec, set))
}

// ---- reconcile -----------------------------------------------------------------

/// How long a refund may take to reach the rebates before the audit calls it a mismatch.
pub const AUDIT_GRACE_MS: i64 = 60_000;

struct OrderFacts {
    updated_at_ms: i64,
    buyer_id: i64,
    merchant_id: i64,
    status: String,
    total_cents: i64,
    paid_at_ms: Option<i64>,
    completed_at_ms: Option<i64>,
}

fn order_facts(c: &mut DbConn, order_id: i64) -> Result<Option<OrderFacts>, ApiError> {
    type Facts = (i64, i64, i64, String, i64, Option<i64>, Option<i64>);
    let row: Option<Facts> = direct::first(
        c,
        orders::table.find(order_id).select((
            orders::updated_at_ms,
            orders::buyer_id,
            orders::merchant_id,
            orders::status,
            orders::total_cents,
            orders::paid_at_ms,
            orders::completed_at_ms,
        )),
    )?;
    Ok(row.map(
        |(
            updated_at_ms,
            buyer_id,
            merchant_id,
            status,
            total_cents,
            paid_at_ms,
            completed_at_ms,
        )| OrderFacts {
            updated_at_ms,
            buyer_id,
            merchant_id,
            status,
            total_cents,
            paid_at_ms,
            completed_at_ms,
        },
    ))
}

/// The buyer's inviters, nearest first, at most `levels`.
pub fn inviter_chain(c: &mut DbConn, buyer: i64, levels: usize) -> Result<Vec<i64>, ApiError> {
    let mut chain = Vec::new();
    let mut current = buyer;
    while chain.len() < levels.min(super::rules::MAX_REFERRAL_LEVELS) {
        let inviter: Option<Option<i64>> =
            direct::first(c, users::table.find(current).select(users::inviter_id))?;
        match inviter.flatten() {
            // Inviter bindings never change and point to earlier users, so no cycles.
            Some(i) if !chain.contains(&i) && i != buyer => {
                chain.push(i);
                current = i;
            }
            _ => break,
        }
    }
    Ok(chain)
}

/// One record to create: (user, kind, amount, rule name, rate, fixed).
type Planned = (i64, &'static str, i64, Option<String>, i64, i64);

fn plan(
    c: &mut DbConn,
    order_id: i64,
    o: &OrderFacts,
    paid_at: i64,
    inviters: &[i64],
) -> Result<Option<(i64, i64, Vec<Planned>)>, ApiError> {
    let Some((version, _, set)) = rule_set_at(c, paid_at)? else {
        return Ok(None);
    };
    let categories: Vec<String> = direct::load(
        c,
        order_items::table
            .inner_join(products::table)
            .filter(order_items::order_id.eq(order_id))
            .select(products::category),
    )?;
    let mut planned = Vec::new();
    let po = PaidOrder {
        merchant_id: o.merchant_id,
        categories: &categories,
        total_cents: o.total_cents,
        paid_at_ms: paid_at,
    };
    if let Some(rule) = best_rule(&set.rules, &po) {
        let amount = rule.amount(o.total_cents);
        if amount > 0 {
            planned.push((
                o.buyer_id,
                "purchase",
                amount,
                Some(rule.name.clone()),
                rule.rate_bps,
                rule.fixed_cents,
            ));
        }
    }
    // `inviters` is the chain at the deepest level; the rule set may pay fewer.
    let levels = set.referral_levels_bps.len().min(inviters.len());
    for (level, inviter) in inviters[..levels].iter().enumerate() {
        let rate = set.referral_levels_bps[level];
        let amount = floor_bps(o.total_cents, rate);
        let kind = ["referral_1", "referral_2", "referral_3"][level];
        if amount > 0 {
            planned.push((*inviter, kind, amount, None, rate, 0));
        }
    }
    Ok(Some((version, set.hold_seconds, planned)))
}

/// What a reconcile did: records changed, and the notifications it stored
/// (to push once the transaction has committed).
#[derive(Debug, Default)]
pub struct Reconciled {
    pub changed: usize,
    pub notifications: notifier::Stored,
}

/// The record's event on the outbox and its owner's notification, stored
/// together in the caller's transaction (the notifier has nothing left to do).
fn event(
    c: &mut DbConn,
    ids: &IdGenerator,
    kind: &str,
    r: &RebateRow,
    status: &str,
    now: i64,
    out: &mut Reconciled,
) -> Result<(), ApiError> {
    let data = serde_json::json!({"rebate_id": r.id, "order_id": r.order_id, "kind": r.kind, "amount_cents": r.amount_cents, "status": status});
    let event_id = outbox::enqueue(
        c,
        ids,
        kind,
        &serde_json::json!({"rebate_id": r.id, "order_id": r.order_id, "user_id": r.user_id, "amount_cents": r.amount_cents}),
    )?;
    let view = notifier::store(c, ids, event_id, r.user_id, kind, &data, now)?;
    out.notifications.push((r.user_id, view));
    out.changed += 1;
    Ok(())
}

fn set_status(
    c: &mut DbConn,
    r: &RebateRow,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let n = direct::execute(
        c,
        diesel::update(rebates::table.find(r.id).filter(rebates::status.eq(from)))
            .set((rebates::status.eq(to), rebates::updated_at_ms.eq(now))),
    )?;
    Ok(n == 1)
}

/// The record's status as stored now (a fresh read inside the caller's transaction).
fn status_of(c: &mut DbConn, id: i64) -> Result<String, ApiError> {
    let status: Option<String> = direct::first(c, rebates::table.find(id).select(rebates::status))?;
    status.ok_or_else(|| ApiError::internal(anyhow::anyhow!("rebate {id} is missing")))
}

/// pending -> cancelled, with its entry and event; false if the row was no longer pending.
fn cancel(
    c: &mut DbConn,
    ids: &IdGenerator,
    r: &RebateRow,
    now: i64,
    out: &mut Reconciled,
) -> Result<bool, ApiError> {
    if !set_status(c, r, "pending", "cancelled", now)? {
        return Ok(false);
    }
    let d = [-r.amount_cents, 0, 0, 0];
    post(
        c,
        ids,
        r.user_id,
        "rebate_cancelled",
        Some(r.id),
        None,
        d,
        now,
    )?;
    event(c, ids, "rebate.cancelled", r, "cancelled", now, out)?;
    Ok(true)
}

/// available -> reversed (the clawback: available may go negative), with its
/// entry and event; false if the row was no longer available.
fn reverse(
    c: &mut DbConn,
    ids: &IdGenerator,
    r: &RebateRow,
    now: i64,
    out: &mut Reconciled,
) -> Result<bool, ApiError> {
    if !set_status(c, r, "available", "reversed", now)? {
        return Ok(false);
    }
    let d = [0, -r.amount_cents, 0, 0];
    post(
        c,
        ids,
        r.user_id,
        "rebate_reversed",
        Some(r.id),
        None,
        d,
        now,
    )?;
    event(c, ids, "rebate.reversed", r, "reversed", now, out)?;
    Ok(true)
}

/// Takes back one record of a refunded order: cancels it if pending,
/// reverses it if available, leaves it if already cancelled or reversed.
///
/// Why the re-read: `r` was read earlier in this transaction. On PostgreSQL
/// (READ COMMITTED) another node's settle can move the row pending ->
/// available between that read and our guarded update; the update waits for
/// that transaction, re-checks its guard on the committed row and matches 0
/// rows. Taking those 0 rows for "nothing to do" lost the clawback (issue 21,
/// item 8). So the status is read again (a new statement sees that commit)
/// and the step the row's current status needs is taken, still guarded.
/// Statuses only move forward (pending -> available -> reversed, pending ->
/// cancelled), so three rounds always reach a terminal status. On SQLite the
/// transaction holds the only writer lock and the first round always matches.
fn claw_back(
    c: &mut DbConn,
    ids: &IdGenerator,
    r: &RebateRow,
    now: i64,
    out: &mut Reconciled,
) -> Result<(), ApiError> {
    let mut status = r.status.clone();
    for _ in 0..3 {
        let done = match status.as_str() {
            "pending" => cancel(c, ids, r, now, out)?,
            "available" => reverse(c, ids, r, now, out)?,
            // Cancelled or reversed: another reconcile took it back already.
            _ => return Ok(()),
        };
        if done {
            return Ok(());
        }
        status = status_of(c, r.id)?;
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "rebate {} kept changing during its clawback (now {status})",
        r.id
    )))
}

/// Brings an order's rebates in line with the order, in its own transaction
/// (a savepoint inside a group-commit job or an order transition). Returns
/// what changed and the notifications stored with it.
// The status checks inside the arms are guarded database updates, not conditions to fold into patterns.
#[allow(clippy::collapsible_match)]
pub fn reconcile(
    conn: &mut DbConn,
    ids: &IdGenerator,
    order_id: i64,
    now: i64,
) -> Result<Reconciled, ApiError> {
    let Some(o) = order_facts(conn, order_id)? else {
        return Ok(Reconciled::default());
    };
    crate::storage::transaction(conn, |c| -> Result<Reconciled, ApiError> {
        let mut out = Reconciled::default();
        let mut records: Vec<RebateRow> = direct::load(
            c,
            rebates::table
                .filter(rebates::order_id.eq(order_id))
                .select(direct::columns::<RebateRow>()),
        )?;
        if records.is_empty() && o.status != "refunded" && o.status != "cancelled" {
            if let Some(paid_at) = o.paid_at_ms {
                let inviters = inviter_chain(c, o.buyer_id, super::rules::MAX_REFERRAL_LEVELS)?;
                if let Some((version, hold, planned)) = plan(c, order_id, &o, paid_at, &inviters)? {
                    for (user, kind, amount, rule_name, rate, fixed) in planned {
                        // Only here can a wallet be missing: later steps move
                        // money that this step put in.
                        ensure_wallet(c, user, now)?;
                        let row = RebateRow {
                            id: ids.next_id(),
                            order_id,
                            user_id: user,
                            kind: kind.to_owned(),
                            amount_cents: amount,
                            status: "pending".into(),
                            rule_version: version,
                            rule_name,
                            rate_bps: rate,
                            fixed_cents: fixed,
                            hold_seconds: hold,
                            available_at_ms: None,
                            created_at_ms: now,
                            updated_at_ms: now,
                        };
                        direct::execute(c, diesel::insert_into(rebates::table).values(&row))?;
                        post(
                            c,
                            ids,
                            user,
                            "rebate_pending",
                            Some(row.id),
                            None,
                            [amount, 0, 0, 0],
                            now,
                        )?;
                        event(c, ids, "rebate.pending", &row, "pending", now, &mut out)?;
                        records.push(row);
                    }
                }
            }
        }
        for r in &records {
            match (o.status.as_str(), r.status.as_str()) {
                ("refunded", _) => claw_back(c, ids, r, now, &mut out)?,
                (_, "pending") => {
                    let Some(done) = o.completed_at_ms else {
                        continue;
                    };
                    let at = done.saturating_add(r.hold_seconds.saturating_mul(1000));
                    if r.available_at_ms.is_none() {
                        diesel::update(rebates::table.find(r.id))
                            .set(rebates::available_at_ms.eq(Some(at)))
                            .execute(c)?;
                    }
                    if at <= now && set_status(c, r, "pending", "available", now)? {
                        post(
                            c,
                            ids,
                            r.user_id,
                            "rebate_available",
                            Some(r.id),
                            None,
                            [-r.amount_cents, r.amount_cents, 0, 0],
                            now,
                        )?;
                        event(c, ids, "rebate.available", r, "available", now, &mut out)?;
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    })
}

/// Orders with pending rebates whose hold has passed.
pub fn due_orders(conn: &mut DbConn, now: i64, limit: i64) -> Result<Vec<i64>, ApiError> {
    let mut ids: Vec<i64> = rebates::table
        .filter(rebates::status.eq("pending"))
        .filter(rebates::available_at_ms.le(now))
        .order(rebates::available_at_ms.asc())
        .limit(limit)
        .select(rebates::order_id)
        .load(conn)?;
    // Completed orders whose pending rebates have no date yet.
    let undated: Vec<i64> = rebates::table
        .inner_join(orders::table)
        .filter(rebates::status.eq("pending"))
        .filter(rebates::available_at_ms.is_null())
        .filter(
            orders::completed_at_ms
                .is_not_null()
                .or(orders::status.eq("refunded")),
        )
        .limit(limit)
        .select(rebates::order_id)
        .load(conn)?;
    ids.extend(undated);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

// ---- withdrawals ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WithdrawalView {
    pub withdrawal_id: i64,
    pub user_id: i64,
    pub amount_cents: i64,
    pub status: String,
    pub created_at: String,
}

/// Moves `amount` from available to withdrawing at once, never more than available.
/// The guarded update serializes concurrent requests of one wallet.
pub fn request_withdrawal(
    c: &mut DbConn,
    ids: &IdGenerator,
    user: i64,
    amount: i64,
    now: i64,
) -> Result<WithdrawalView, ApiError> {
    let n = diesel::update(
        wallets::table
            .find(user)
            .filter(wallets::available_cents.ge(amount)),
    )
    .set((
        wallets::available_cents.eq(wallets::available_cents - amount),
        wallets::withdrawing_cents.eq(wallets::withdrawing_cents + amount),
        wallets::updated_at_ms.eq(now),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(ApiError::conflict(
            "insufficient_funds",
            "the amount is more than the available balance",
        ));
    }
    let id = ids.next_id();
    diesel::insert_into(withdrawals::table)
        .values((
            withdrawals::id.eq(id),
            withdrawals::user_id.eq(user),
            withdrawals::amount_cents.eq(amount),
            withdrawals::status.eq("pending"),
            withdrawals::created_at_ms.eq(now),
        ))
        .execute(c)?;
    // The wallet was already moved by the guarded update: record the entry only.
    diesel::insert_into(ledger_entries::table)
        .values((
            ledger_entries::id.eq(ids.next_id()),
            ledger_entries::user_id.eq(user),
            ledger_entries::kind.eq("withdrawal_requested"),
            ledger_entries::withdrawal_id.eq(Some(id)),
            ledger_entries::pending_delta.eq(0_i64),
            ledger_entries::available_delta.eq(-amount),
            ledger_entries::withdrawing_delta.eq(amount),
            ledger_entries::withdrawn_delta.eq(0_i64),
            ledger_entries::created_at_ms.eq(now),
        ))
        .execute(c)?;
    Ok(WithdrawalView {
        withdrawal_id: id,
        user_id: user,
        amount_cents: amount,
        status: "pending".into(),
        created_at: crate::core::ids::rfc3339(now),
    })
}

/// Pays (withdrawing -> withdrawn) or rejects (back to available) a pending
/// withdrawal, in the caller's transaction. Approval is refused (409
/// `insufficient_funds`) while the user's available balance is negative; see
/// `pay_out`.
pub fn decide_withdrawal(
    c: &mut DbConn,
    ids: &IdGenerator,
    id: i64,
    approve: bool,
    now: i64,
) -> Result<WithdrawalView, ApiError> {
    let row: Option<(i64, i64, String, i64)> = withdrawals::table
        .find(id)
        .select((
            withdrawals::user_id,
            withdrawals::amount_cents,
            withdrawals::status,
            withdrawals::created_at_ms,
        ))
        .first(c)
        .optional()?;
    let (user, amount, status, created) =
        row.ok_or_else(|| ApiError::not_found("no such withdrawal"))?;
    if status != "pending" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("the withdrawal is already {status}"),
        ));
    }
    let to = if approve { "paid" } else { "rejected" };
    let n = diesel::update(
        withdrawals::table
            .find(id)
            .filter(withdrawals::status.eq("pending")),
    )
    .set((
        withdrawals::status.eq(to),
        withdrawals::decided_at_ms.eq(Some(now)),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(ApiError::conflict(
            "invalid_state",
            "the withdrawal was decided meanwhile",
        ));
    }
    if approve {
        // Refused here, the error rolls back the status change above with the
        // caller's transaction: the withdrawal stays pending.
        pay_out(c, ids, user, id, amount, now)?;
    } else {
        let d = [0, amount, -amount, 0];
        post(c, ids, user, "withdrawal_rejected", None, Some(id), d, now)?;
    }
    Ok(WithdrawalView {
        withdrawal_id: id,
        user_id: user,
        amount_cents: amount,
        status: to.into(),
        created_at: crate::core::ids::rfc3339(created),
    })
}

/// Moves a withdrawal's amount from withdrawing to withdrawn, only while the
/// wallet's available balance is not negative.
///
/// Why (issue 21, item 9): the amount left `available` when the withdrawal
/// was requested. A clawback since then (a refund reversing an available
/// rebate) may take back more than was left, driving available below zero:
/// part of what is held in `withdrawing` is then money the reversal took
/// back, and paying it would hand it out anyway. The withdrawal stays pending:
/// an admin approves it once the balance has recovered (new rebates settle)
/// or rejects it, which returns the amount to available as usual.
/// The condition is in the UPDATE's WHERE, not in a read before it: on
/// PostgreSQL a reversal committing in between would slip past a read, while
/// the guarded update waits for the wallet row and re-checks the condition on
/// the committed version (SQLite has one writer).
fn pay_out(
    c: &mut DbConn,
    ids: &IdGenerator,
    user: i64,
    withdrawal: i64,
    amount: i64,
    now: i64,
) -> Result<(), ApiError> {
    let n = diesel::update(
        wallets::table
            .find(user)
            .filter(wallets::available_cents.ge(0_i64)),
    )
    .set((
        wallets::withdrawing_cents.eq(wallets::withdrawing_cents - amount),
        wallets::withdrawn_cents.eq(wallets::withdrawn_cents + amount),
        wallets::updated_at_ms.eq(now),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(ApiError::conflict(
            "insufficient_funds",
            "the available balance is negative: a rebate was taken back after this \
             withdrawal was requested; approve it once the balance has recovered, or reject it",
        ));
    }
    // The wallet was already moved by the guarded update: record the entry only.
    let d = [0, 0, -amount, amount];
    entry(
        c,
        ids,
        user,
        "withdrawal_paid",
        None,
        Some(withdrawal),
        d,
        now,
    )
}

// ---- audit -----------------------------------------------------------------------

/// Checks every wallet against its journal, every rebate against its journal,
/// its order and its rule, and every withdrawal against its journal.
/// Returns one line per mismatch (empty: all consistent).
pub fn audit(c: &mut DbConn) -> Result<Vec<String>, ApiError> {
    use std::collections::HashMap;
    let mut problems = Vec::new();
    type EntryRow = (i64, Option<i64>, Option<i64>, i64, i64, i64, i64);
    let entries: Vec<EntryRow> = ledger_entries::table
        .select((
            ledger_entries::user_id,
            ledger_entries::rebate_id,
            ledger_entries::withdrawal_id,
            ledger_entries::pending_delta,
            ledger_entries::available_delta,
            ledger_entries::withdrawing_delta,
            ledger_entries::withdrawn_delta,
        ))
        .load(c)?;
    let mut by_user: HashMap<i64, Deltas> = HashMap::new();
    let mut by_rebate: HashMap<i64, Deltas> = HashMap::new();
    let mut by_withdrawal: HashMap<i64, Deltas> = HashMap::new();
    for (u, r, w, p, a, wi, wd) in entries {
        for (map, key) in [
            (&mut by_user, Some(u)),
            (&mut by_rebate, r),
            (&mut by_withdrawal, w),
        ] {
            if let Some(k) = key {
                let e = map.entry(k).or_default();
                e[0] += p;
                e[1] += a;
                e[2] += wi;
                e[3] += wd;
            }
        }
    }
    let wallet_rows: Vec<(i64, i64, i64, i64, i64)> = wallets::table
        .select((
            wallets::user_id,
            wallets::pending_cents,
            wallets::available_cents,
            wallets::withdrawing_cents,
            wallets::withdrawn_cents,
        ))
        .load(c)?;
    let mut seen = std::collections::HashSet::new();
    for (u, p, a, w, d) in wallet_rows {
        seen.insert(u);
        let j = by_user.get(&u).copied().unwrap_or_default();
        if j != [p, a, w, d] {
            problems.push(format!(
                "wallet {u}: balances {:?} but journal sums to {j:?}",
                [p, a, w, d]
            ));
        }
        if p < 0 || w < 0 || d < 0 {
            problems.push(format!(
                "wallet {u}: negative pending/withdrawing/withdrawn {:?}",
                [p, w, d]
            ));
        }
    }
    for u in by_user.keys().filter(|u| !seen.contains(u)) {
        problems.push(format!("user {u} has journal entries but no wallet"));
    }
    let rows: Vec<RebateRow> = rebates::table.select(RebateRow::as_select()).load(c)?;
    let mut sets: HashMap<i64, Option<RuleSet>> = HashMap::new();
    for r in rows {
        let j = by_rebate.get(&r.id).copied().unwrap_or_default();
        let expected = match r.status.as_str() {
            "pending" => [r.amount_cents, 0, 0, 0],
            "available" => [0, r.amount_cents, 0, 0],
            "cancelled" | "reversed" => [0, 0, 0, 0],
            other => {
                problems.push(format!("rebate {}: unknown status {other}", r.id));
                continue;
            }
        };
        if j != expected {
            problems.push(format!(
                "rebate {} ({}): journal {j:?}, expected {expected:?}",
                r.id, r.status
            ));
        }
        let Some(o) = order_facts(c, r.order_id)? else {
            problems.push(format!(
                "rebate {}: order {} does not exist",
                r.id, r.order_id
            ));
            continue;
        };
        let Some(paid_at) = o.paid_at_ms else {
            problems.push(format!(
                "rebate {}: order {} was never paid",
                r.id, r.order_id
            ));
            continue;
        };
        // The rebate side follows a refund through an event; only an overdue one is a mismatch.
        if o.status == "refunded"
            && !(r.status == "cancelled" || r.status == "reversed")
            && o.updated_at_ms + AUDIT_GRACE_MS < crate::core::ids::now_ms()
        {
            problems.push(format!(
                "rebate {}: order refunded but rebate {}",
                r.id, r.status
            ));
        }
        if r.status == "available" && o.completed_at_ms.is_none() {
            problems.push(format!(
                "rebate {}: available but the order never completed",
                r.id
            ));
        }
        let set = match sets.get(&r.rule_version) {
            Some(s) => s.clone(),
            None => {
                let s = rule_set_version(c, r.rule_version)?.map(|(_, _, s)| s);
                sets.insert(r.rule_version, s.clone());
                s
            }
        };
        let Some(set) = set else {
            problems.push(format!(
                "rebate {}: rule set {} does not exist",
                r.id, r.rule_version
            ));
            continue;
        };
        let expected_amount = if r.kind == "purchase" {
            let categories: Vec<String> = order_items::table
                .inner_join(products::table)
                .filter(order_items::order_id.eq(r.order_id))
                .select(products::category)
                .load(c)?;
            let po = PaidOrder {
                merchant_id: o.merchant_id,
                categories: &categories,
                total_cents: o.total_cents,
                paid_at_ms: paid_at,
            };
            let rule = best_rule(&set.rules, &po);
            if rule.map(|x| &x.name) != r.rule_name.as_ref() {
                problems.push(format!(
                    "rebate {}: rule {:?} recorded, {:?} matches",
                    r.id,
                    r.rule_name,
                    rule.map(|x| &x.name)
                ));
            }
            if r.user_id != o.buyer_id {
                problems.push(format!(
                    "rebate {}: purchase rebate not for the buyer",
                    r.id
                ));
            }
            rule.map_or(0, |x| x.amount(o.total_cents))
        } else {
            let level = match r.kind.as_str() {
                "referral_1" => 0,
                "referral_2" => 1,
                "referral_3" => 2,
                other => {
                    problems.push(format!("rebate {}: unknown kind {other}", r.id));
                    continue;
                }
            };
            let chain = inviter_chain(c, o.buyer_id, set.referral_levels_bps.len())?;
            if chain.get(level) != Some(&r.user_id) {
                problems.push(format!(
                    "rebate {}: {} is not level {} of the buyer's chain",
                    r.id,
                    r.user_id,
                    level + 1
                ));
            }
            set.referral_levels_bps
                .get(level)
                .map_or(0, |bps| floor_bps(o.total_cents, *bps))
        };
        if expected_amount != r.amount_cents {
            problems.push(format!(
                "rebate {}: amount {} but the rule gives {expected_amount}",
                r.id, r.amount_cents
            ));
        }
    }
    let ws: Vec<(i64, i64, String)> = withdrawals::table
        .select((
            withdrawals::id,
            withdrawals::amount_cents,
            withdrawals::status,
        ))
        .load(c)?;
    for (id, amount, status) in ws {
        let j = by_withdrawal.get(&id).copied().unwrap_or_default();
        let expected = match status.as_str() {
            "pending" => [0, -amount, amount, 0],
            "paid" => [0, -amount, 0, amount],
            _ => [0, 0, 0, 0],
        };
        if j != expected {
            problems.push(format!(
                "withdrawal {id} ({status}): journal {j:?}, expected {expected:?}"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;

    /// A migrated in-memory SQLite database. Foreign keys stay off: the
    /// records below need no users or orders.
    fn db() -> DbConn {
        let mut c = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        crate::storage::run_migrations(&mut c).unwrap();
        c.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        c
    }

    /// A pending record of `amount` for `user`, with its wallet and entry.
    fn pending_record(c: &mut DbConn, ids: &IdGenerator, user: i64, amount: i64) -> RebateRow {
        ensure_wallet(c, user, 0).unwrap();
        let r = RebateRow {
            id: ids.next_id(),
            order_id: 1,
            user_id: user,
            kind: "purchase".into(),
            amount_cents: amount,
            status: "pending".into(),
            rule_version: 1,
            rule_name: Some("all".into()),
            rate_bps: 100,
            fixed_cents: 0,
            hold_seconds: 0,
            available_at_ms: Some(0),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        direct::execute(c, diesel::insert_into(rebates::table).values(&r)).unwrap();
        let d = [amount, 0, 0, 0];
        post(c, ids, user, "rebate_pending", Some(r.id), None, d, 0).unwrap();
        r
    }

    fn entry_kinds(c: &mut DbConn, rebate: i64) -> Vec<String> {
        ledger_entries::table
            .filter(ledger_entries::rebate_id.eq(Some(rebate)))
            .order(ledger_entries::id.asc())
            .select(ledger_entries::kind)
            .load(c)
            .unwrap()
    }

    /// Issue 21, item 8, on PostgreSQL with two connections, as two nodes
    /// have: the refund's transaction reads the record as pending; another
    /// connection settles it (pending -> available) and commits; the refund's
    /// guarded update then matches nothing (READ COMMITTED sees the commit)
    /// and the clawback must still happen, as a reversal.
    #[test]
    fn on_postgres_a_clawback_sees_a_settle_another_node_committed() {
        let Some(scratch) = crate::storage::test_pg::scratch("clawback") else {
            return;
        };
        let open = || {
            let mut c = DbConn::Pg(diesel::PgConnection::establish(&scratch.url).unwrap());
            // Foreign-key triggers off: the records need no users or orders.
            c.batch_execute("SET session_replication_role = replica")
                .unwrap();
            c
        };
        let (mut refund, mut settle) = (open(), open());
        crate::storage::run_migrations(&mut refund).unwrap();
        let ids = IdGenerator::new(1);
        let r = pending_record(&mut refund, &ids, 7, 250);
        let mut out = Reconciled::default();
        crate::storage::write_transaction(&mut refund, |t| -> Result<(), ApiError> {
            let stale: RebateRow = direct::first(
                t,
                rebates::table
                    .find(r.id)
                    .select(direct::columns::<RebateRow>()),
            )?
            .unwrap();
            assert_eq!(stale.status, "pending");
            // The other node's settle commits in between.
            crate::storage::write_transaction(&mut settle, |s| -> Result<(), ApiError> {
                assert!(set_status(s, &stale, "pending", "available", 1)?);
                post(
                    s,
                    &ids,
                    7,
                    "rebate_available",
                    Some(stale.id),
                    None,
                    [-250, 250, 0, 0],
                    1,
                )
            })?;
            claw_back(t, &ids, &stale, 2, &mut out)
        })
        .unwrap();
        assert_eq!(out.changed, 1);
        assert_eq!(status_of(&mut refund, r.id).unwrap(), "reversed");
        assert_eq!(
            entry_kinds(&mut refund, r.id),
            ["rebate_pending", "rebate_available", "rebate_reversed"]
        );
        let w = wallet(&mut refund, 7).unwrap();
        assert_eq!((w.pending_cents, w.available_cents), (0, 0));
        drop((refund, settle));
    }

    /// Issue 21, item 8: a refund's reconcile read the record as pending;
    /// before its guarded pending -> cancelled update, another node's settle
    /// committed pending -> available. The update matches 0 rows; the
    /// clawback must still happen, as a reversal of the available amount.
    #[test]
    fn a_clawback_reverses_a_record_settled_after_it_was_read() {
        let mut c = db();
        let ids = IdGenerator::new(1);
        let user = 7;
        let stale = pending_record(&mut c, &ids, user, 250);
        // The other node's settle, committed between the read and the update.
        assert!(set_status(&mut c, &stale, "pending", "available", 1).unwrap());
        let d = [-250, 250, 0, 0];
        post(
            &mut c,
            &ids,
            user,
            "rebate_available",
            Some(stale.id),
            None,
            d,
            1,
        )
        .unwrap();

        let mut out = Reconciled::default();
        claw_back(&mut c, &ids, &stale, 2, &mut out).unwrap();
        assert_eq!(out.changed, 1);
        assert_eq!(status_of(&mut c, stale.id).unwrap(), "reversed");
        assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
        assert_eq!(
            entry_kinds(&mut c, stale.id),
            ["rebate_pending", "rebate_available", "rebate_reversed"]
        );

        // A redelivered refund event finds it reversed: nothing more moves.
        let mut again = Reconciled::default();
        claw_back(&mut c, &ids, &stale, 3, &mut again).unwrap();
        assert_eq!(again.changed, 0);
        assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
        assert_eq!(entry_kinds(&mut c, stale.id).len(), 3);
    }

    /// The ordinary case still cancels a pending record once, and a stale
    /// copy read before that cancellation does nothing.
    #[test]
    fn a_clawback_cancels_a_pending_record_once() {
        let mut c = db();
        let ids = IdGenerator::new(1);
        let user = 8;
        let r = pending_record(&mut c, &ids, user, 90);
        let mut out = Reconciled::default();
        claw_back(&mut c, &ids, &r, 1, &mut out).unwrap();
        claw_back(&mut c, &ids, &r, 2, &mut out).unwrap();
        assert_eq!(out.changed, 1);
        assert_eq!(status_of(&mut c, r.id).unwrap(), "cancelled");
        assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
        assert_eq!(
            entry_kinds(&mut c, r.id),
            ["rebate_pending", "rebate_cancelled"]
        );
    }
}
