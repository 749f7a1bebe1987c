//! Withdrawals: requested out of the available balance, then paid or
//! rejected by an admin.

use diesel::prelude::*;
use serde::Serialize;

use crate::core::error::ApiError;
use crate::core::ids::IdGenerator;
use crate::rebates::model::WithdrawalStatus;
use crate::storage::schema::{ledger_entries, wallets, withdrawals};
use crate::storage::DbConn;

use super::ledger::{entry, post};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WithdrawalView {
    pub withdrawal_id: i64,
    pub user_id: i64,
    pub amount_cents: i64,
    #[schema(value_type = crate::rebates::model::WithdrawalStatus, inline)]
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
            crate::core::error::ErrorKind::InsufficientFunds,
            "the amount is more than the available balance",
        ));
    }
    let id = ids.next_id();
    diesel::insert_into(withdrawals::table)
        .values((
            withdrawals::id.eq(id),
            withdrawals::user_id.eq(user),
            withdrawals::amount_cents.eq(amount),
            withdrawals::status.eq(WithdrawalStatus::Pending.as_str()),
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
        status: WithdrawalStatus::Pending.as_str().into(),
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
    if status != WithdrawalStatus::Pending.as_str() {
        return Err(ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            format!("the withdrawal is already {status}"),
        ));
    }
    let to = if approve {
        WithdrawalStatus::Paid
    } else {
        WithdrawalStatus::Rejected
    }
    .as_str();
    let n = diesel::update(
        withdrawals::table
            .find(id)
            .filter(withdrawals::status.eq(WithdrawalStatus::Pending.as_str())),
    )
    .set((
        withdrawals::status.eq(to),
        withdrawals::decided_at_ms.eq(Some(now)),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
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
            crate::core::error::ErrorKind::InsufficientFunds,
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
