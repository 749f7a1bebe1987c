//! Chat queries, portable across both backends.

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
        "SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.body, m.client_id, m.sent_at_ms \
         FROM messages m JOIN (VALUES {rows}) AS v \
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

pub fn messages_before(
    conn: &mut DbConn,
    conversation_id: i64,
    before_seq: i64,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::seq.lt(before_seq))
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
