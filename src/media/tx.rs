//! Media's in-transaction API: another domain attaches pictures in its own
//! transaction (an avatar, a post's pictures, a chat message's).

use super::store;
use crate::core::error::ApiError;
use crate::storage::DbConn;

/// Most pictures one post carries.
pub const MAX_POST_PICTURES: usize = 9;

/// The path a picture is served at (no token needed).
pub fn url(id: i64) -> String {
    crate::core::urls::picture_url(id)
}

/// The path its thumbnail is served at.
pub fn thumbnail_url(id: i64) -> String {
    crate::core::urls::thumbnail_url(id)
}

/// Attaches `ids` for `owner`: each must be a picture `owner` uploaded (404
/// otherwise, the same for another's and for none), and is then kept (never
/// swept as unused).
pub fn attach(conn: &mut DbConn, ids: &[i64], owner: i64, now_ms: i64) -> Result<(), ApiError> {
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(());
    }
    let attached = store::attach_owned(conn, &wanted, owner, now_ms)?;
    if usize::try_from(attached).ok() != Some(wanted.len()) {
        return Err(ApiError::not_found(
            "a media id names no picture you uploaded",
        ));
    }
    Ok(())
}

/// Media answering accounts' [`crate::accounts::hooks::Pictures`].
pub struct PicturesForAccounts;

impl crate::accounts::hooks::Pictures for PicturesForAccounts {
    fn attach(&self, conn: &mut DbConn, ids: &[i64], owner: i64) -> Result<(), ApiError> {
        attach(conn, ids, owner, crate::core::ids::now_ms())
    }
}
