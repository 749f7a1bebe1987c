//! Rebates' in-transaction API: what other domains (moderation's figures)
//! read of wallets inside their own executor call. The SQL stays in the
//! rebates store; this is its published face.

use crate::core::error::ApiError;
use crate::storage::DbConn;

/// Pending rebates over every wallet, in cents.
pub fn total_pending_cents(conn: &mut DbConn) -> Result<i64, ApiError> {
    super::store::ledger::total_pending_cents(conn)
}
