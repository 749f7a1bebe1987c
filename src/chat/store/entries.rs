//! The writer's statements for edits, deletions and groups that change:
//! the messages an entry targets, their new state, members in and out, a
//! group's settings. Rare next to plain messages, so one statement each.

use diesel::prelude::*;

use super::MessageRow;
use crate::storage::schema::{conversation_members, conversations, messages};
use crate::storage::DbConn;

/// The entry at (`conversation_id`, `seq`), if any.
pub fn find_entry(
    conn: &mut DbConn,
    conversation_id: i64,
    seq: i64,
) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::seq.eq(seq))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

/// A message's new text after an edit.
pub fn set_edited(
    conn: &mut DbConn,
    conversation_id: i64,
    seq: i64,
    body: &str,
    at_ms: i64,
) -> QueryResult<usize> {
    diesel::update(
        messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .filter(messages::seq.eq(seq)),
    )
    .set((
        messages::body.eq(body),
        messages::edited_at_ms.eq(Some(at_ms)),
    ))
    .execute(conn)
}

/// A message deleted for everyone: its body goes, its `seq` stays.
pub fn set_deleted(
    conn: &mut DbConn,
    conversation_id: i64,
    seq: i64,
    at_ms: i64,
) -> QueryResult<usize> {
    diesel::update(
        messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .filter(messages::seq.eq(seq)),
    )
    .set((
        messages::body.eq(""),
        messages::data.eq(None::<String>),
        messages::deleted_at_ms.eq(Some(at_ms)),
    ))
    .execute(conn)
}

/// Blanks the text of every edit of the message at `seq` (it was deleted).
pub fn blank_edits_of(conn: &mut DbConn, conversation_id: i64, seq: i64) -> QueryResult<usize> {
    diesel::update(
        messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .filter(messages::kind.eq("edit"))
            .filter(messages::target_seq.eq(seq)),
    )
    .set(messages::body.eq(""))
    .execute(conn)
}

/// Adds members who joined at entry `seq`: they have read everything before
/// it, and read from `visible_from_seq` on (0: all of the history).
pub fn add_members(
    conn: &mut DbConn,
    conversation_id: i64,
    users: &[i64],
    seq: i64,
    visible_from_seq: i64,
    now_ms: i64,
) -> QueryResult<()> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            (
                conversation_members::conversation_id.eq(conversation_id),
                conversation_members::user_id.eq(*u),
                conversation_members::last_read_seq.eq(seq - 1),
                conversation_members::joined_at_ms.eq(now_ms),
                conversation_members::visible_from_seq.eq(visible_from_seq),
            )
        })
        .collect();
    // Chunked to stay far below SQLite's bound-variable limit.
    for chunk in rows.chunks(500) {
        crate::per_backend!(&mut *conn, |c| diesel::insert_into(
            conversation_members::table
        )
        .values(chunk)
        .execute(c))?;
    }
    Ok(())
}

/// A group's settings after a change (each `None` stays as it is).
pub fn update_group(
    conn: &mut DbConn,
    conversation_id: i64,
    title: Option<&str>,
    owner_id: Option<i64>,
    history_visibility: Option<&str>,
) -> QueryResult<usize> {
    let target = conversations::table.find(conversation_id);
    let mut n = 0;
    if let Some(t) = title {
        n += diesel::update(target)
            .set(conversations::title.eq(t))
            .execute(conn)?;
    }
    if let Some(o) = owner_id {
        n += diesel::update(target)
            .set(conversations::owner_id.eq(Some(o)))
            .execute(conn)?;
    }
    if let Some(h) = history_visibility {
        n += diesel::update(target)
            .set(conversations::history_visibility.eq(h))
            .execute(conn)?;
    }
    Ok(n)
}

/// What one member's row says of them in a conversation.
#[derive(Debug, Clone, Copy, Queryable)]
pub struct MemberState {
    pub last_read_seq: i64,
    /// The first seq they may read (0: all).
    pub visible_from_seq: i64,
    pub muted: bool,
}

/// A member's state; `None` for others.
pub fn member_state(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
) -> QueryResult<Option<MemberState>> {
    conversation_members::table
        .find((conversation_id, user_id))
        .select((
            conversation_members::last_read_seq,
            conversation_members::visible_from_seq,
            conversation_members::muted,
        ))
        .first(conn)
        .optional()
}

/// Every member with the first seq they may read, by user id.
pub fn members_with_visibility(
    conn: &mut DbConn,
    conversation_id: i64,
) -> QueryResult<Vec<(i64, i64)>> {
    conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .order(conversation_members::user_id.asc())
        .select((
            conversation_members::user_id,
            conversation_members::visible_from_seq,
        ))
        .load(conn)
}

/// A group's admins (besides its owner), by id.
pub fn admins(conn: &mut DbConn, conversation_id: i64) -> QueryResult<Vec<i64>> {
    conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::is_admin.eq(true))
        .order(conversation_members::user_id.asc())
        .select(conversation_members::user_id)
        .load(conn)
}

pub fn set_admin(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
    admin: bool,
) -> QueryResult<usize> {
    diesel::update(conversation_members::table.find((conversation_id, user_id)))
        .set(conversation_members::is_admin.eq(admin))
        .execute(conn)
}
