//! Chat queries, portable across both backends.

pub mod entries;
pub mod requests;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::realtime::frames::MessageView;
use crate::storage::schema::{blocks, conversation_members, conversations, messages};
use crate::storage::DbConn;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub body: String,
    pub client_id: String,
    pub sent_at_ms: i64,
    /// A `chat::model::EntryKind`'s text.
    pub kind: String,
    pub target_seq: Option<i64>,
    /// JSON, for membership and settings entries.
    pub data: Option<String>,
    pub edited_at_ms: Option<i64>,
    pub deleted_at_ms: Option<i64>,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        MessageView {
            conversation_id: m.conversation_id,
            message_id: m.id,
            seq: m.seq,
            sender_id: m.sender_id,
            body: m.body,
            sent_at: crate::core::ids::rfc3339(m.sent_at_ms),
            client_id: m.client_id,
            kind: m.kind,
            target_seq: m.target_seq,
            data: m.data.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            edited_at: m.edited_at_ms.map(crate::core::ids::rfc3339),
            deleted: m.deleted_at_ms.is_some(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub direct_key: Option<String>,
    pub last_seq: i64,
    pub last_activity_ms: i64,
    pub created_at_ms: i64,
    pub owner_id: Option<i64>,
    /// A `chat::model::HistoryVisibility`'s text.
    pub history_visibility: String,
}

pub fn direct_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

pub fn find_conversation(conn: &mut DbConn, id: i64) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .find(id)
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_direct(conn: &mut DbConn, key: &str) -> QueryResult<Option<i64>> {
    conversations::table
        .filter(conversations::direct_key.eq(key))
        .select(conversations::id)
        .first(conn)
        .optional()
}

pub fn insert_conversation(
    conn: &mut DbConn,
    row: &ConversationRow,
    members: &[i64],
    now_ms: i64,
) -> QueryResult<()> {
    diesel::insert_into(conversations::table)
        .values(row)
        .execute(conn)?;
    let rows: Vec<_> = members
        .iter()
        .map(|m| {
            (
                conversation_members::conversation_id.eq(row.id),
                conversation_members::user_id.eq(*m),
                conversation_members::last_read_seq.eq(0_i64),
                conversation_members::joined_at_ms.eq(now_ms),
            )
        })
        .collect();
    // Chunked to stay far below SQLite's bound-variable limit.
    for chunk in rows.chunks(1_000) {
        crate::per_backend!(conn, |c| diesel::insert_into(conversation_members::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn members(conn: &mut DbConn, conversation_id: i64) -> QueryResult<Vec<i64>> {
    conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .order(conversation_members::user_id.asc())
        .select(conversation_members::user_id)
        .load(conn)
}

pub fn membership(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
) -> QueryResult<Option<i64>> {
    conversation_members::table
        .find((conversation_id, user_id))
        .select(conversation_members::last_read_seq)
        .first(conn)
        .optional()
}

/// Is `blocked` blocked by `blocker`?
pub fn is_blocked(conn: &mut DbConn, blocker: i64, blocked: i64) -> QueryResult<bool> {
    Ok(blocks::table
        .find((blocker, blocked))
        .select(blocks::blocker_id)
        .first::<i64>(conn)
        .optional()?
        .is_some())
}

/// The stored messages of many (sender, client_id) pairs: each pair probes
/// the unique (sender_id, client_id) index once. At most a chat batch of pairs.
pub fn find_by_client_ids<'a>(
    conn: &mut DbConn,
    pairs: impl Iterator<Item = (i64, &'a str)>,
) -> QueryResult<std::collections::HashMap<(i64, String), MessageRow>> {
    let wanted: std::collections::HashSet<(i64, &str)> = pairs.collect();
    if wanted.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let pairs: Vec<(i64, String)> = wanted.iter().map(|(u, c)| (*u, (*c).to_owned())).collect();
    let rows: Vec<MessageRow> = crate::storage::direct::load_by_pairs::<_, BigInt, Text, _, _>(
        conn,
        "SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.body, m.client_id, m.sent_at_ms, \
         m.kind, m.target_seq, m.data, m.edited_at_ms, m.deleted_at_ms FROM messages m JOIN (VALUES {rows}) AS v \
         ON m.sender_id = v.column1 AND m.client_id = v.column2",
        &pairs,
    )?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.sender_id, r.client_id.clone()), r))
        .collect())
}

#[derive(QueryableByName)]
struct BlockPair {
    #[diesel(sql_type = BigInt)]
    blocker_id: i64,
    #[diesel(sql_type = BigInt)]
    blocked_id: i64,
}

/// Which of these (blocker, blocked) pairs are blocks: each pair probes the
/// primary key once.
pub fn blocked_pairs(
    conn: &mut DbConn,
    pairs: &[(i64, i64)],
) -> QueryResult<std::collections::HashSet<(i64, i64)>> {
    if pairs.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let mut unique: Vec<(i64, i64)> = pairs.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let found: Vec<BlockPair> = crate::storage::direct::load_by_pairs::<_, BigInt, BigInt, _, _>(
        conn,
        "SELECT b.blocker_id, b.blocked_id FROM blocks b JOIN (VALUES {rows}) AS v \
         ON b.blocker_id = v.column1 AND b.blocked_id = v.column2",
        &unique,
    )?;
    Ok(found
        .into_iter()
        .map(|p| (p.blocker_id, p.blocked_id))
        .collect())
}

pub fn messages_after(
    conn: &mut DbConn,
    conversation_id: i64,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::seq.gt(after_seq))
        .order(messages::seq.asc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

/// Entries before `before_seq`, newest first, none before `from_seq`.
pub fn messages_before(
    conn: &mut DbConn,
    conversation_id: i64,
    before_seq: i64,
    from_seq: i64,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::seq.lt(before_seq))
        .filter(messages::seq.ge(from_seq))
        .order(messages::seq.desc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

/// Peers of a user's direct conversations.
pub fn direct_peers(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<i64>> {
    let convs = conversation_members::table
        .inner_join(conversations::table)
        .filter(conversation_members::user_id.eq(user_id))
        .filter(conversations::kind.eq("direct"))
        .select(conversations::id)
        .limit(10_000)
        .load::<i64>(conn)?;
    conversation_members::table
        .filter(conversation_members::conversation_id.eq_any(convs))
        .filter(conversation_members::user_id.ne(user_id))
        .select(conversation_members::user_id)
        .load(conn)
}

pub fn add_member(
    conn: &mut DbConn,
    conversation_id: i64,
    user_id: i64,
    now_ms: i64,
) -> QueryResult<()> {
    diesel::insert_into(conversation_members::table)
        .values((
            conversation_members::conversation_id.eq(conversation_id),
            conversation_members::user_id.eq(user_id),
            conversation_members::last_read_seq.eq(0_i64),
            conversation_members::joined_at_ms.eq(now_ms),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn remove_member(conn: &mut DbConn, conversation_id: i64, user_id: i64) -> QueryResult<()> {
    diesel::delete(conversation_members::table.find((conversation_id, user_id)))
        .execute(conn)
        .map(|_| ())
}

pub fn last_seq(conn: &mut DbConn, conversation_id: i64) -> QueryResult<i64> {
    conversations::table
        .find(conversation_id)
        .select(conversations::last_seq)
        .first(conn)
}

/// PostgreSQL: locks the conversations' rows for the rest of the
/// transaction, in id order (two writers never wait on each other in a
/// cycle), and reads their `last_seq`. Writers of one conversation on
/// several nodes then take turns instead of racing on the conditional
/// counter update and retrying. `None` on SQLite: one writer per database.
pub fn lock_seqs(
    conn: &mut DbConn,
    ids: &[i64],
) -> QueryResult<Option<std::collections::HashMap<i64, i64>>> {
    match conn {
        DbConn::Pg(c) => {
            let rows: Vec<(i64, i64)> = conversations::table
                .filter(conversations::id.eq_any(ids))
                .order(conversations::id.asc())
                .select((conversations::id, conversations::last_seq))
                .for_update()
                .load(c)?;
            Ok(Some(rows.into_iter().collect()))
        }
        DbConn::Sqlite(_) => Ok(None),
    }
}

/// A chat batch's messages as one set per `MAX_VALUES_ROWS`: on PostgreSQL
/// one array per column, one prepared statement for any batch size (a
/// `VALUES` list was a statement parsed and planned anew for each row
/// count); on SQLite diesel's multi-row insert.
pub fn insert_messages(conn: &mut DbConn, rows: &[MessageRow]) -> QueryResult<()> {
    crate::storage::direct::insert_set(
        conn,
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, client_id, sent_at_ms, \
         kind, target_seq, data, edited_at_ms, deleted_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use crate::storage::direct::Val::{Int, NullInt, NullText, Text};
            vec![
                Int(r.id),
                Int(r.conversation_id),
                Int(r.seq),
                Int(r.sender_id),
                Text(&r.body),
                Text(&r.client_id),
                Int(r.sent_at_ms),
                Text(&r.kind),
                NullInt(r.target_seq),
                NullText(r.data.as_deref()),
                NullInt(r.edited_at_ms),
                NullInt(r.deleted_at_ms),
            ]
        },
        |b, chunk| {
            diesel::insert_into(messages::table)
                .values(chunk)
                .execute(b)
        },
    )?;
    Ok(())
}

/// Moves each conversation's counter from `[conv, expected, to]`'s expected
/// to `to`, only where it still is `expected`: one statement per
/// `MAX_VALUES_ROWS` conversations. Returns how many moved; fewer than asked
/// means another writer moved one (the caller's counters are stale).
pub fn advance_seqs(conn: &mut DbConn, advances: &[[i64; 3]], now_ms: i64) -> QueryResult<usize> {
    crate::storage::direct::update_from_values(
        conn,
        "UPDATE conversations SET last_seq = v.column3, last_activity_ms = {p} \
         FROM (VALUES {rows}) AS v \
         WHERE conversations.id = v.column1 AND conversations.last_seq = v.column2",
        Some(now_ms),
        advances,
    )
}

/// Raises `[conv, user, seq]` read marks, never moving one back.
pub fn raise_read_marks(conn: &mut DbConn, reads: &[[i64; 3]]) -> QueryResult<usize> {
    crate::storage::direct::update_from_values(
        conn,
        "UPDATE conversation_members SET last_read_seq = v.column3 \
         FROM (VALUES {rows}) AS v \
         WHERE conversation_members.conversation_id = v.column1 \
         AND conversation_members.user_id = v.column2 \
         AND conversation_members.last_read_seq < v.column3",
        None,
        reads,
    )
}

pub fn insert_block(conn: &mut DbConn, blocker: i64, blocked: i64, now_ms: i64) -> QueryResult<()> {
    diesel::insert_into(blocks::table)
        .values((
            blocks::blocker_id.eq(blocker),
            blocks::blocked_id.eq(blocked),
            blocks::created_at_ms.eq(now_ms),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn delete_block(conn: &mut DbConn, blocker: i64, blocked: i64) -> QueryResult<()> {
    diesel::delete(blocks::table.find((blocker, blocked)))
        .execute(conn)
        .map(|_| ())
}

/// Who blocked `user`, at most `limit` of them.
/// Whom `user` blocked (at most `limit`).
pub fn blocked_by(conn: &mut DbConn, user: i64, limit: i64) -> QueryResult<Vec<i64>> {
    blocks::table
        .filter(blocks::blocker_id.eq(user))
        .select(blocks::blocked_id)
        .limit(limit)
        .load(conn)
}

pub fn blockers_of(conn: &mut DbConn, user: i64, limit: i64) -> QueryResult<Vec<i64>> {
    blocks::table
        .filter(blocks::blocked_id.eq(user))
        .select(blocks::blocker_id)
        .limit(limit)
        .load(conn)
}

/// (conversation, sender) of a message.
pub fn message_origin(conn: &mut DbConn, message_id: i64) -> QueryResult<Option<(i64, i64)>> {
    messages::table
        .find(message_id)
        .select((messages::conversation_id, messages::sender_id))
        .first(conn)
        .optional()
}

/// Empties a message's body and marks it deleted (its `seq` stays);
/// returns its conversation.
pub fn blank_message(conn: &mut DbConn, message_id: i64) -> QueryResult<Option<i64>> {
    let target: Option<(i64, i64)> = diesel::update(messages::table.find(message_id))
        .set((
            messages::body.eq(""),
            messages::data.eq(None::<String>),
            messages::deleted_at_ms.eq(Some(crate::core::ids::now_ms())),
        ))
        .returning((messages::conversation_id, messages::seq))
        .get_result(conn)
        .optional()?;
    if let Some((conv, seq)) = target {
        entries::blank_edits_of(conn, conv, seq)?;
    }
    Ok(target.map(|(conv, _)| conv))
}
