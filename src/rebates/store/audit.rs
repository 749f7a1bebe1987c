//! `tandem audit`: every wallet against its journal, every rebate against
//! its journal, order and rule, every withdrawal against its journal.

use diesel::prelude::*;

use crate::commerce::model::Status;
use crate::core::error::ApiError;
use crate::rebates::model::{RebateStatus, WithdrawalStatus};
use crate::storage::schema::{ledger_entries, rebates, wallets, withdrawals};
use crate::storage::DbConn;

use super::engine::{inviter_chain, order_facts, rule_set_version, RebateRow, AUDIT_GRACE_MS};
use super::ledger::Deltas;
use crate::rebates::rules::RuleSet;
use crate::rebates::rules::{best_rule, floor_bps, PaidOrder};

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
        let Some(status) = RebateStatus::parse(&r.status) else {
            problems.push(format!("rebate {}: unknown status {}", r.id, r.status));
            continue;
        };
        let expected = match status {
            RebateStatus::Pending => [r.amount_cents, 0, 0, 0],
            RebateStatus::Available => [0, r.amount_cents, 0, 0],
            RebateStatus::Cancelled | RebateStatus::Reversed => [0, 0, 0, 0],
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
        if o.status == Status::Refunded
            && !matches!(status, RebateStatus::Cancelled | RebateStatus::Reversed)
            && o.updated_at_ms + AUDIT_GRACE_MS < crate::core::ids::now_ms()
        {
            problems.push(format!(
                "rebate {}: order refunded but rebate {}",
                r.id, r.status
            ));
        }
        if status == RebateStatus::Available && o.completed_at_ms.is_none() {
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
            let categories = crate::commerce::tx::order_categories(c, r.order_id)?;
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
        let expected = match WithdrawalStatus::parse(&status) {
            Some(WithdrawalStatus::Pending) => [0, -amount, amount, 0],
            Some(WithdrawalStatus::Paid) => [0, -amount, 0, amount],
            Some(WithdrawalStatus::Rejected) => [0, 0, 0, 0],
            None => {
                problems.push(format!("withdrawal {id}: unknown status {status}"));
                continue;
            }
        };
        if j != expected {
            problems.push(format!(
                "withdrawal {id} ({status}): journal {j:?}, expected {expected:?}"
            ));
        }
    }
    Ok(problems)
}
