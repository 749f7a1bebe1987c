//! Trips' in-transaction API: what other domains read of trips inside their
//! own executor call (a member's profile counts the trips they organized).
//! The SQL stays in trips' store; this is its published face.

use super::store;
use crate::core::error::ApiError;
use crate::storage::DbConn;

pub fn count_organized(conn: &mut DbConn, user: i64) -> Result<i64, ApiError> {
    Ok(store::count_organized(conn, user)?)
}
