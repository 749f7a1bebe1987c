//! Chat's in-transaction API: what other domains read or change of
//! conversations and blocks inside their own executor call or group-commit
//! job (a trip's group chat is created and joined in the trip's own
//! transaction). The SQL stays in chat's store; this is its published face.
//! Whoever changes a membership here also tells `Chat` after the commit
//! (`Chat::membership_changed`) so its caches follow.

use super::store::{self, ConversationRow};
use crate::core::error::ApiError;
use crate::storage::DbConn;

/// Creates group conversation `id` (from the caller's id generator, so the
/// caller can store it beside its own rows) of `kind` with its first members.
pub fn create_group(
    conn: &mut DbConn,
    id: i64,
    kind: &'static str,
    title: &str,
    members: &[i64],
    now_ms: i64,
) -> Result<(), ApiError> {
    let row = ConversationRow {
        id,
        kind: kind.into(),
        title: title.to_owned(),
        direct_key: None,
        last_seq: 0,
        last_activity_ms: now_ms,
        created_at_ms: now_ms,
        // Managed by the caller's domain (a trip's members), not by an owner;
        // members who join later read the whole history.
        owner_id: None,
        history_visibility: crate::chat::model::HistoryVisibility::Full.as_str().into(),
    };
    Ok(store::insert_conversation(conn, &row, members, now_ms)?)
}

pub fn add_member(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
    now_ms: i64,
) -> Result<(), ApiError> {
    Ok(store::add_member(conn, conversation_id, user_id, now_ms)?)
}

pub fn remove_member(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
) -> Result<(), ApiError> {
    Ok(store::remove_member(conn, conversation_id, user_id)?)
}

/// Whether `blocker` blocked `blocked`.
pub fn is_blocked(conn: &mut DbConn, blocker: i64, blocked: i64) -> Result<bool, ApiError> {
    Ok(store::is_blocked(conn, blocker, blocked)?)
}

/// Makes `blocker` block `blocked` (`on`) or lifts it; idempotent.
pub fn set_block(
    conn: &mut DbConn,
    blocker: i64,
    blocked: i64,
    on: bool,
    now_ms: i64,
) -> Result<(), ApiError> {
    if !on {
        return Ok(store::delete_block(conn, blocker, blocked)?);
    }
    if !store::is_blocked(conn, blocker, blocked)? {
        store::insert_block(conn, blocker, blocked, now_ms)?;
    }
    Ok(())
}

/// Most blockers [`blockers_of`] returns.
pub const MAX_BLOCKERS: i64 = 1_000;

/// Who blocked `user` (at most [`MAX_BLOCKERS`]).
pub fn blockers_of(conn: &mut DbConn, user: i64) -> Result<Vec<i64>, ApiError> {
    Ok(store::blockers_of(conn, user, MAX_BLOCKERS)?)
}

/// Everyone `user` blocked or was blocked by (at most [`MAX_BLOCKERS`] each
/// way): they see nothing of each other.
pub fn blocked_either(conn: &mut DbConn, user: i64) -> Result<Vec<i64>, ApiError> {
    let mut all = store::blockers_of(conn, user, MAX_BLOCKERS)?;
    all.extend(store::blocked_by(conn, user, MAX_BLOCKERS)?);
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// (conversation, sender) of a message, if `reader` is a member of its
/// conversation (what the reader could see); else `None`.
pub fn message_seen_by(
    conn: &mut DbConn,
    message_id: i64,
    reader: i64,
) -> Result<Option<(i64, i64)>, ApiError> {
    let Some((conv, sender)) = store::message_origin(conn, message_id)? else {
        return Ok(None);
    };
    Ok(store::membership(conn, conv, reader)?.map(|_| (conv, sender)))
}

/// Empties a message's body for everyone (a moderator's removal; the `seq`
/// stays). Returns its conversation; the caller tells `Chat::message_changed`
/// after the commit.
pub fn blank_message(conn: &mut DbConn, message_id: i64) -> Result<Option<i64>, ApiError> {
    Ok(store::blank_message(conn, message_id)?)
}
