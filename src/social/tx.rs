//! Social's in-transaction API: what other domains (moderation) read or
//! change of posts inside their own executor call. The SQL stays in
//! social's store; this is its published face.

use super::store;
use crate::core::error::ApiError;
use crate::storage::DbConn;

pub fn post_author(conn: &mut DbConn, post_id: i64) -> Result<Option<i64>, ApiError> {
    Ok(store::post_author(conn, post_id)?)
}

/// Removes a post with its likes and comments (a moderator's removal).
pub fn remove_post(conn: &mut DbConn, post_id: i64) -> Result<(), ApiError> {
    Ok(store::delete_post(conn, post_id)?)
}
