//! Chat: conversations, gapless per-conversation sequence numbers, durable
//! before ack (group commit), sync and history.

pub mod messages;
pub mod recent;
pub mod routes;
pub mod store;
pub mod writer;

use std::sync::Arc;

use crate::app::AppState;
use crate::error::ApiError;

/// Most entries the shared member cache keeps before it is cleared.
pub const MEMBER_CACHE_MAX: usize = 100_000;

/// Members of a conversation, from the shared cache or the database.
pub async fn members_of(state: &AppState, conversation_id: i64) -> Result<Arc<Vec<i64>>, ApiError> {
    if let Some(m) = state.shared.members.get(&conversation_id) {
        return Ok(m.clone());
    }
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
    state
        .shared
        .members
        .insert(conversation_id, members.clone());
    Ok(members)
}
