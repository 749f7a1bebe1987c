//! Chat: conversations, gapless per-conversation sequence numbers, durable
//! before ack (group commit), sync and history.

pub mod messages;
pub mod recent;
pub mod routes;
pub mod store;
pub mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::core::error::ApiError;
use crate::server::app::AppState;

/// Most entries the shared member cache keeps before it is cleared.
pub const MEMBER_CACHE_MAX: usize = 100_000;

/// Members of a conversation, from the shared cache or the database.
pub async fn members_of(state: &AppState, conversation_id: i64) -> Result<Arc<Vec<i64>>, ApiError> {
    if let Some(m) = state.shared.members.get(&conversation_id) {
        return Ok(m.clone());
    }
    let epoch = state.shared.members_epoch.load(Ordering::Acquire);
    let members = Arc::new(
        state
            .db
            .call(messages::LoadMembers { conversation_id })
            .await?,
    );
    if members.is_empty() {
        return Err(ApiError::not_found("no such conversation"));
    }
    if state.shared.members.len() >= MEMBER_CACHE_MAX {
        state.shared.members.clear();
    }
    // A membership change since the load began may have been read or not:
    // answer with what was read, but do not cache it.
    if state.shared.members_epoch.load(Ordering::Acquire) == epoch {
        state
            .shared
            .members
            .insert(conversation_id, members.clone());
        // Changed between the check and the insert: drop it again.
        if state.shared.members_epoch.load(Ordering::Acquire) != epoch {
            state.shared.members.remove(&conversation_id);
        }
    }
    Ok(members)
}

/// A conversation's members changed (committed): every cache of them here
/// forgets the old list. Called where the change completes, not by the
/// request handler, so a dropped request cannot skip it.
pub fn membership_changed(
    shared: &crate::server::app::Shared,
    chat: &writer::ChatWriters,
    conversation_id: i64,
) {
    shared.members_epoch.fetch_add(1, Ordering::AcqRel);
    shared.members.remove(&conversation_id);
    chat.forget_members(conversation_id);
}
