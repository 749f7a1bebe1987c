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

use crate::accounts::tx::Inviters;
use crate::commerce::model::Status;
use crate::core::error::ApiError;
use crate::core::ids::IdGenerator;
use crate::rebates::model::RebateStatus;
use crate::rebates::rules::{best_rule, floor_bps, PaidOrder};
use crate::social::notifier;
use crate::storage::outbox;
use crate::storage::schema::rebates;
use crate::storage::{direct, DbConn};

pub use super::audit::audit;
pub use super::ledger::{ensure_wallet, post, wallet, Deltas, WalletView};
pub use super::rule_sets::{put_rule_set, rule_set_at, rule_set_version};
pub use super::withdrawals::{decide_withdrawal, request_withdrawal, WithdrawalView};
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

// ---- reconcile -----------------------------------------------------------------

/// How long a refund may take to reach the rebates before the audit calls it a mismatch.
pub const AUDIT_GRACE_MS: i64 = 60_000;

pub(super) use crate::commerce::tx::OrderFacts;

pub(super) fn order_facts(c: &mut DbConn, order_id: i64) -> Result<Option<OrderFacts>, ApiError> {
    crate::commerce::tx::order_facts(c, order_id)
}

/// The buyer's inviters, nearest first, at most `levels`.
pub fn inviter_chain(c: &mut DbConn, buyer: i64, levels: usize) -> Result<Vec<i64>, ApiError> {
    inviter_chain_via(c, None, buyer, levels)
}

/// [`inviter_chain`], from remembered bindings where `known` has them.
fn inviter_chain_via(
    c: &mut DbConn,
    known: Option<&Inviters>,
    buyer: i64,
    levels: usize,
) -> Result<Vec<i64>, ApiError> {
    let mut chain = Vec::new();
    let mut current = buyer;
    while chain.len() < levels.min(crate::rebates::rules::MAX_REFERRAL_LEVELS) {
        let inviter = match known {
            Some(k) => k.inviter_of(c, current)?,
            None => crate::accounts::tx::inviter_of(c, current)?,
        };
        match inviter {
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
    known_categories: Option<&[String]>,
    paid_at: i64,
    inviters: &[i64],
) -> Result<Option<(i64, i64, Vec<Planned>)>, ApiError> {
    let Some(in_force) = super::rule_sets::rule_set_in_force(c, paid_at)? else {
        return Ok(None);
    };
    let (version, set) = (in_force.version, &in_force.set);
    let categories: std::borrow::Cow<'_, [String]> = match known_categories {
        Some(k) => k.into(),
        None => crate::commerce::tx::order_categories(c, order_id)?.into(),
    };
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
    status: RebateStatus,
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
    from: RebateStatus,
    to: RebateStatus,
    now: i64,
) -> Result<bool, ApiError> {
    let n = direct::execute(
        c,
        diesel::update(
            rebates::table
                .find(r.id)
                .filter(rebates::status.eq(from.as_str())),
        )
        .set((
            rebates::status.eq(to.as_str()),
            rebates::updated_at_ms.eq(now),
        )),
    )?;
    Ok(n == 1)
}

/// The status a loaded record carries; text no status names is a corrupt row.
fn stored_status(r: &RebateRow) -> Result<RebateStatus, ApiError> {
    RebateStatus::parse(&r.status).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "rebate {} has unknown status {:?}",
            r.id,
            r.status
        ))
    })
}

/// The record's status as stored now (a fresh read inside the caller's transaction).
fn status_of(c: &mut DbConn, id: i64) -> Result<RebateStatus, ApiError> {
    let status: Option<String> = direct::first(c, rebates::table.find(id).select(rebates::status))?;
    status
        .as_deref()
        .and_then(RebateStatus::parse)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("rebate {id} is missing or unreadable")))
}

/// pending -> cancelled, with its entry and event; false if the row was no longer pending.
fn cancel(
    c: &mut DbConn,
    ids: &IdGenerator,
    r: &RebateRow,
    now: i64,
    out: &mut Reconciled,
) -> Result<bool, ApiError> {
    if !set_status(c, r, RebateStatus::Pending, RebateStatus::Cancelled, now)? {
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
    event(
        c,
        ids,
        "rebate.cancelled",
        r,
        RebateStatus::Cancelled,
        now,
        out,
    )?;
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
    if !set_status(c, r, RebateStatus::Available, RebateStatus::Reversed, now)? {
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
    event(
        c,
        ids,
        "rebate.reversed",
        r,
        RebateStatus::Reversed,
        now,
        out,
    )?;
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
    let mut status = stored_status(r)?;
    for _ in 0..3 {
        let done = match status {
            RebateStatus::Pending => cancel(c, ids, r, now, out)?,
            RebateStatus::Available => reverse(c, ids, r, now, out)?,
            // Another reconcile took it back already.
            RebateStatus::Cancelled | RebateStatus::Reversed => return Ok(()),
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
    reconcile_facts(conn, ids, order_id, &o, None, now)
}

/// What the caller knows of the order already, inside the same transaction
/// that changed it (the order actor's transition): the engine then reads
/// neither the order nor its categories back, and takes referral bindings
/// from `inviters` where it remembers them.
pub struct Known<'a> {
    pub facts: OrderFacts,
    pub categories: Vec<String>,
    pub inviters: &'a Inviters,
    /// This transaction is the one that pays the order. Rebate records are
    /// created only by a reconcile that reads the order as paid, and until
    /// this transaction commits no other transaction can read it so: the
    /// order has no records yet, and they are not read.
    pub first_payment: bool,
}

/// [`reconcile`] with the order as the caller knows it.
pub fn reconcile_known(
    conn: &mut DbConn,
    ids: &IdGenerator,
    order_id: i64,
    known: Known<'_>,
    now: i64,
) -> Result<Reconciled, ApiError> {
    let given = Given {
        categories: &known.categories,
        inviters: known.inviters,
        first_payment: known.first_payment,
    };
    reconcile_facts(conn, ids, order_id, &known.facts, Some(given), now)
}

/// The part of [`Known`] the steps after the order facts use.
#[derive(Clone, Copy)]
struct Given<'a> {
    categories: &'a [String],
    inviters: &'a Inviters,
    first_payment: bool,
}

#[allow(clippy::collapsible_match)]
fn reconcile_facts(
    conn: &mut DbConn,
    ids: &IdGenerator,
    order_id: i64,
    o: &OrderFacts,
    given: Option<Given<'_>>,
    now: i64,
) -> Result<Reconciled, ApiError> {
    crate::storage::transaction(conn, |c| -> Result<Reconciled, ApiError> {
        let mut out = Reconciled::default();
        let mut records: Vec<RebateRow> = if given.is_some_and(|g| g.first_payment) {
            Vec::new()
        } else {
            direct::load(
                c,
                rebates::table
                    .filter(rebates::order_id.eq(order_id))
                    .select(direct::columns::<RebateRow>()),
            )?
        };
        if records.is_empty() && !matches!(o.status, Status::Refunded | Status::Cancelled) {
            if let Some(paid_at) = o.paid_at_ms {
                let inviters = inviter_chain_via(
                    c,
                    given.map(|g| g.inviters),
                    o.buyer_id,
                    crate::rebates::rules::MAX_REFERRAL_LEVELS,
                )?;
                if let Some((version, hold, planned)) = plan(
                    c,
                    order_id,
                    o,
                    given.map(|g| g.categories),
                    paid_at,
                    &inviters,
                )? {
                    for (user, kind, amount, rule_name, rate, fixed) in planned {
                        // A missing wallet is created by `post`'s upsert.
                        let row = RebateRow {
                            id: ids.next_id(),
                            order_id,
                            user_id: user,
                            kind: kind.to_owned(),
                            amount_cents: amount,
                            status: RebateStatus::Pending.as_str().into(),
                            rule_version: version,
                            rule_name,
                            rate_bps: rate,
                            fixed_cents: fixed,
                            hold_seconds: hold,
                            available_at_ms: None,
                            created_at_ms: now,
                            updated_at_ms: now,
                        };
                        insert_record(c, &row, given.is_some_and(|g| g.first_payment))?;
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
                        event(
                            c,
                            ids,
                            "rebate.pending",
                            &row,
                            RebateStatus::Pending,
                            now,
                            &mut out,
                        )?;
                        records.push(row);
                    }
                }
            }
        }
        for r in &records {
            match (o.status, stored_status(r)?) {
                (Status::Refunded, _) => claw_back(c, ids, r, now, &mut out)?,
                (_, RebateStatus::Pending) => {
                    let Some(done) = o.completed_at_ms else {
                        continue;
                    };
                    let at = done.saturating_add(r.hold_seconds.saturating_mul(1000));
                    if r.available_at_ms.is_none() {
                        diesel::update(rebates::table.find(r.id))
                            .set(rebates::available_at_ms.eq(Some(at)))
                            .execute(c)?;
                    }
                    if at <= now
                        && set_status(c, r, RebateStatus::Pending, RebateStatus::Available, now)?
                    {
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
                        event(
                            c,
                            ids,
                            "rebate.available",
                            r,
                            RebateStatus::Available,
                            now,
                            &mut out,
                        )?;
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    })
}

/// Stores a new record. In the transaction that pays the order (`fresh`) no
/// record of it can exist and none is read back, so inside a group-commit
/// batch it joins the batch's one multi-row insert (`storage::appends`).
fn insert_record(c: &mut DbConn, row: &RebateRow, fresh: bool) -> Result<(), ApiError> {
    if fresh {
        crate::storage::appends::append(c, row.clone(), write_records)?;
    } else {
        direct::execute(c, diesel::insert_into(rebates::table).values(row))?;
    }
    Ok(())
}

fn write_records(c: &mut DbConn, rows: &[RebateRow]) -> diesel::QueryResult<()> {
    if let [row] = rows {
        return direct::execute(c, diesel::insert_into(rebates::table).values(row)).map(|_| ());
    }
    direct::insert_set(
        c,
        "INSERT INTO rebates (id, order_id, user_id, kind, amount_cents, status, \
         rule_version, rule_name, rate_bps, fixed_cents, hold_seconds, available_at_ms, \
         created_at_ms, updated_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use direct::Val::{Int, NullInt, NullText, Text};
            vec![
                Int(r.id),
                Int(r.order_id),
                Int(r.user_id),
                Text(&r.kind),
                Int(r.amount_cents),
                Text(&r.status),
                Int(r.rule_version),
                NullText(r.rule_name.as_deref()),
                Int(r.rate_bps),
                Int(r.fixed_cents),
                Int(r.hold_seconds),
                NullInt(r.available_at_ms),
                Int(r.created_at_ms),
                Int(r.updated_at_ms),
            ]
        },
        |b, chunk| diesel::insert_into(rebates::table).values(chunk).execute(b),
    )?;
    Ok(())
}

/// The condition the partial indexes `rebates_due_idx` and
/// `rebates_undated_pending_idx` share, as written there (migrations 000009
/// and 000016; see `storage::partial_index`).
pub(crate) const PENDING: &str = "status = 'pending'";

/// Orders with pending rebates whose hold has passed, and the next cursor
/// of the undated scan.
///
/// Pending rebates without a date belong to orders paid but not completed;
/// the completion's reconcile dates them. The scan is the safety net for a
/// completion (or refund) whose reconcile never ran: it walks the undated
/// rebates' orders `limit` at a time from `undated_after` and asks commerce
/// which of them are settled, so every one is looked at within a few ticks
/// however many wait. Returns 0 as the cursor when the walk wrapped.
pub fn due_orders(
    conn: &mut DbConn,
    now: i64,
    limit: i64,
    undated_after: i64,
) -> Result<(Vec<i64>, i64), ApiError> {
    let pending = || crate::storage::partial_index::condition(PENDING);
    let mut ids: Vec<i64> = rebates::table
        .filter(pending())
        .filter(rebates::available_at_ms.le(now))
        .order(rebates::available_at_ms.asc())
        .limit(limit)
        .select(rebates::order_id)
        .load(conn)?;
    let undated: Vec<i64> = rebates::table
        .filter(pending())
        .filter(rebates::available_at_ms.is_null())
        .filter(rebates::order_id.gt(undated_after))
        .order(rebates::order_id.asc())
        .limit(limit)
        .select(rebates::order_id)
        .distinct()
        .load(conn)?;
    let next = match undated.last() {
        Some(&last) if i64::try_from(undated.len()).unwrap_or(0) >= limit => last,
        _ => 0,
    };
    ids.extend(crate::commerce::tx::settled_among(conn, &undated)?);
    ids.sort_unstable();
    ids.dedup();
    Ok((ids, next))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
