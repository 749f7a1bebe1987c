//! The wallet ledger: an append-only journal (`ledger_entries`) and the
//! materialized balances (`wallets`) it moves, in the caller's transaction.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;
use serde::Serialize;

use crate::core::error::ApiError;
use crate::core::ids::IdGenerator;
use crate::storage::schema::{ledger_entries, wallets};
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
/// caller's transaction, creating the wallet if the user has none yet.
///
/// These deltas have no guard (a guarded move, such as a withdrawal, updates
/// the wallet itself and records only its [`entry`]). So inside a group-commit
/// batch the wallet change joins the batch's one upsert of all its wallets
/// (`storage::appends`, [`write_wallet_deltas`]): a hot inviter's wallet is
/// updated once per batch, not once per order, and the rows are taken in
/// `user_id` order. Nothing in a batch reads a wallet balance; a withdrawal
/// reads and moves it in its own transaction.
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
    let delta = WalletDelta {
        user_id,
        deltas: d,
        at_ms: now,
    };
    // Any committer's batch may move any wallet: written last, in user id
    // order (see `storage::appends::LockRank`).
    crate::storage::appends::append_ranked(
        c,
        delta,
        write_wallet_deltas,
        crate::storage::appends::LockRank::Balances,
    )?;
    Ok(())
}

/// One unguarded change of a wallet's balances.
pub struct WalletDelta {
    user_id: i64,
    deltas: Deltas,
    at_ms: i64,
}

const UPSERT_HEAD: &str = "INSERT INTO wallets (user_id, pending_cents, available_cents, \
     withdrawing_cents, withdrawn_cents, updated_at_ms) VALUES ";
const UPSERT_TAIL: &str = " ON CONFLICT (user_id) DO UPDATE SET \
     pending_cents = wallets.pending_cents + excluded.pending_cents, \
     available_cents = wallets.available_cents + excluded.available_cents, \
     withdrawing_cents = wallets.withdrawing_cents + excluded.withdrawing_cents, \
     withdrawn_cents = wallets.withdrawn_cents + excluded.withdrawn_cents, \
     updated_at_ms = excluded.updated_at_ms";

/// Sums the deltas per wallet (an upsert may touch a row only once) and
/// writes them as one upsert, in `user_id` order (one lock order for every
/// writer of wallets).
fn write_wallet_deltas(c: &mut DbConn, rows: &[WalletDelta]) -> diesel::QueryResult<()> {
    let mut sums: std::collections::BTreeMap<i64, (Deltas, i64)> = Default::default();
    for r in rows {
        let (d, at) = sums.entry(r.user_id).or_insert(([0; 4], r.at_ms));
        for (sum, x) in d.iter_mut().zip(r.deltas) {
            *sum = sum.saturating_add(x);
        }
        *at = (*at).max(r.at_ms);
    }
    let values: Vec<Vec<direct::Val<'_>>> = sums
        .iter()
        .map(|(user, (d, at))| {
            use direct::Val::Int;
            vec![
                Int(*user),
                Int(d[0]),
                Int(d[1]),
                Int(d[2]),
                Int(d[3]),
                Int(*at),
            ]
        })
        .collect();
    direct::execute_values(c, UPSERT_HEAD, UPSERT_TAIL, &values)?;
    Ok(())
}

/// One journal entry as stored.
#[derive(Insertable)]
#[diesel(table_name = ledger_entries)]
pub struct EntryRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub rebate_id: Option<i64>,
    pub withdrawal_id: Option<i64>,
    pub pending_delta: i64,
    pub available_delta: i64,
    pub withdrawing_delta: i64,
    pub withdrawn_delta: i64,
    pub created_at_ms: i64,
}

/// Appends a ledger entry only, for a caller that has moved the wallet itself
/// (with a guarded update). The journal is append-only and read only by
/// `tandem audit` and tests, never inside the transaction that writes it, so
/// inside a group-commit batch the entry joins the batch's one multi-row
/// insert (`storage::appends`); the wallet row it explains moves at once.
// Each argument is one column of the journal entry; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(super) fn entry(
    c: &mut DbConn,
    ids: &IdGenerator,
    user_id: i64,
    kind: &str,
    rebate_id: Option<i64>,
    withdrawal_id: Option<i64>,
    d: Deltas,
    now: i64,
) -> Result<(), ApiError> {
    let row = EntryRow {
        id: ids.next_id(),
        user_id,
        kind: kind.to_owned(),
        rebate_id,
        withdrawal_id,
        pending_delta: d[0],
        available_delta: d[1],
        withdrawing_delta: d[2],
        withdrawn_delta: d[3],
        created_at_ms: now,
    };
    crate::storage::appends::append(c, row, write_entries)?;
    Ok(())
}

/// One cached single-row statement for one entry, multi-row inserts otherwise.
fn write_entries(c: &mut DbConn, rows: &[EntryRow]) -> diesel::QueryResult<()> {
    if let [row] = rows {
        return direct::execute(
            c,
            diesel::insert_into(ledger_entries::table).values((
                ledger_entries::id.eq(row.id),
                ledger_entries::user_id.eq(row.user_id),
                ledger_entries::kind.eq(&row.kind),
                ledger_entries::rebate_id.eq(row.rebate_id),
                ledger_entries::withdrawal_id.eq(row.withdrawal_id),
                ledger_entries::pending_delta.eq(row.pending_delta),
                ledger_entries::available_delta.eq(row.available_delta),
                ledger_entries::withdrawing_delta.eq(row.withdrawing_delta),
                ledger_entries::withdrawn_delta.eq(row.withdrawn_delta),
                ledger_entries::created_at_ms.eq(row.created_at_ms),
            )),
        )
        .map(|_| ());
    }
    direct::insert_set(
        c,
        "INSERT INTO ledger_entries (id, user_id, kind, rebate_id, withdrawal_id, \
         pending_delta, available_delta, withdrawing_delta, withdrawn_delta, created_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use direct::Val::{Int, NullInt, Text};
            vec![
                Int(r.id),
                Int(r.user_id),
                Text(&r.kind),
                NullInt(r.rebate_id),
                NullInt(r.withdrawal_id),
                Int(r.pending_delta),
                Int(r.available_delta),
                Int(r.withdrawing_delta),
                Int(r.withdrawn_delta),
                Int(r.created_at_ms),
            ]
        },
        |b, chunk| diesel::insert_into(ledger_entries::table).values(chunk).execute(b),
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

/// Pending rebates over every wallet, in cents. `CAST(SUM ...)`: PostgreSQL
/// sums a BIGINT as NUMERIC, which the portable schema does not carry.
pub fn total_pending_cents(conn: &mut DbConn) -> Result<i64, ApiError> {
    Ok(wallets::table
        .select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CAST(COALESCE(SUM(pending_cents), 0) AS BIGINT)",
        ))
        .first(conn)?)
}
