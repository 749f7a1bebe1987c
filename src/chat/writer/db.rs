//! The writer thread of one shard: one transaction per batch, every change
//! an entry of its conversation's `seq` stream.
//!
//! A batch's messages are checked against what the writer holds of each
//! conversation (kind, owner, members), and a group change in the batch
//! changes that state for the messages after it: a member removed at seq n
//! can neither send nor receive at n + 1, even in the same batch.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, SyncContext};
use serde_json::json;

use super::{PendingMessage, Stored, WriteResult};
use crate::chat::model::{self, Change, EntryKind, Group, Refusal, Target};
use crate::chat::store::{self, entries, MessageRow};
use crate::core::ids::{now_ms, IdGenerator};
use crate::storage::held::HeldConnection;
use crate::storage::{DbConn, DbError, QueryResult};

mod groups;

/// Counters and member lists a writer keeps before starting over.
const WRITER_CACHE_MAX: usize = 100_000;

/// What a writer holds of one conversation.
#[derive(Clone)]
pub(super) struct ConvState {
    kind: String,
    title: String,
    owner_id: Option<i64>,
    history: String,
    /// Sorted ascending.
    members: Arc<Vec<i64>>,
    /// Sorted ascending.
    admins: Vec<i64>,
    /// Members who may read only from a later seq on (added to a
    /// `since_join` group): (user, first visible seq).
    late: Vec<(i64, i64)>,
}

impl ConvState {
    fn group(&self) -> Group<'_> {
        Group {
            kind: &self.kind,
            owner_id: self.owner_id,
            members: &self.members,
            admins: &self.admins,
        }
    }
}

pub struct ChatDbWriter {
    pub(super) conn: HeldConnection,
    pub(super) ids: Arc<IdGenerator>,
    /// Next seq per conversation, valid only for this writer's shard.
    pub(super) next_seq: HashMap<i64, i64>,
    /// Last seq per conversation this writer committed and handed out for
    /// delivery: when the row lock reads it back, nothing came in between.
    pub(super) sent_last: HashMap<i64, i64>,
    pub(super) convs: HashMap<i64, ConvState>,
}

impl Actor for ChatDbWriter {
    type Context = SyncContext<Self>;
}

/// A batch failed as a whole and should be retried after reloading counters.
pub(super) struct Conflict;

/// What one change made: its entries (in seq order), whom they go to, and
/// whether the group's members or settings changed.
struct Made {
    entries: Vec<MessageRow>,
    deliver_to: Arc<Vec<i64>>,
    group_changed: bool,
}

/// One batch's transaction in progress.
struct Pass<'w> {
    w: &'w mut ChatDbWriter,
    now: i64,
    rows: Vec<MessageRow>,
    first_seq: HashMap<i64, i64>,
    read_up_to: HashMap<(i64, i64), i64>,
}

impl ChatDbWriter {
    fn conversation(&mut self, c: &mut DbConn, conv: i64) -> QueryResult<Option<ConvState>> {
        if let Some(v) = self.convs.get(&conv) {
            return Ok(Some(v.clone()));
        }
        let Some(row) = store::find_conversation(c, conv)? else {
            return Ok(None);
        };
        let visible = entries::members_with_visibility(c, conv)?;
        let state = ConvState {
            kind: row.kind,
            title: row.title,
            owner_id: row.owner_id,
            history: row.history_visibility,
            members: Arc::new(visible.iter().map(|(u, _)| *u).collect()),
            admins: entries::admins(c, conv)?,
            late: visible.into_iter().filter(|(_, from)| *from > 0).collect(),
        };
        if self.convs.len() >= WRITER_CACHE_MAX {
            self.convs.clear();
        }
        self.convs.insert(conv, state.clone());
        if !self.next_seq.contains_key(&conv) {
            if self.next_seq.len() >= WRITER_CACHE_MAX {
                self.next_seq.clear();
            }
            self.next_seq.insert(conv, row.last_seq + 1);
        }
        Ok(Some(state))
    }

    fn next_seq(&mut self, c: &mut DbConn, conv: i64) -> QueryResult<i64> {
        if let Some(s) = self.next_seq.get(&conv) {
            return Ok(*s);
        }
        let last = store::last_seq(c, conv)?;
        self.next_seq.insert(conv, last + 1);
        Ok(last + 1)
    }

    pub(super) fn write(
        &mut self,
        batch: &[PendingMessage],
    ) -> Result<Vec<WriteResult>, Result<Conflict, DbError>> {
        let (mut conn, _fresh) = self.conn.get().map_err(|e| {
            tracing::error!(error = %e, "chat writer has no database connection");
            Ok(Conflict)
        })?;
        let now = now_ms();
        let _writer = crate::storage::write_lock(&conn);
        let results = crate::storage::write_transaction(&mut conn, |c| {
            let mut pass = Pass {
                w: &mut *self,
                now,
                rows: Vec::new(),
                first_seq: HashMap::new(),
                read_up_to: HashMap::new(),
            };
            pass.run(c, batch)
        });
        drop(_writer);
        let results = match results {
            // Kept for the next batch only after a commit (see `storage::held`).
            Ok(r) => {
                self.conn.keep(conn);
                r
            }
            // Retried (after reloading the counters) on a connection from
            // the pool: a stale counter, a transient conflict, or a
            // connection that was lost (a kept one that died while idle
            // fails at BEGIN). Even if a lost connection's COMMIT went
            // through, the retry finds the messages by their client ids
            // and answers them as stored.
            Err(DbError::RollbackTransaction) => return Err(Ok(Conflict)),
            Err(e)
                if crate::storage::is_transient(&e) || crate::storage::is_connection_lost(&e) =>
            {
                return Err(Ok(Conflict))
            }
            Err(e) => return Err(Err(e)),
        };
        if self.sent_last.len() >= WRITER_CACHE_MAX {
            self.sent_last.clear();
        }
        for stored in results.iter().flatten() {
            if let (Some(_), Some(last)) = (&stored.deliver_to, stored.entries.last()) {
                self.sent_last.insert(last.conversation_id, last.seq);
            }
        }
        Ok(results)
    }
}

impl Pass<'_> {
    fn run(&mut self, c: &mut DbConn, batch: &[PendingMessage]) -> QueryResult<Vec<WriteResult>> {
        // Lookups for the whole batch at once (one statement each rather
        // than one per message: on PostgreSQL each is a network round trip).
        // On PostgreSQL the batch's conversations are locked first and
        // their counters read: a writer of the same conversation on
        // another node waits for this commit instead of conflicting.
        let mut convs: Vec<i64> = batch.iter().map(|m| m.conversation_id).collect();
        convs.sort_unstable();
        convs.dedup();
        let mut continues: HashMap<i64, bool> = convs
            .iter()
            .map(|conv| (*conv, self.w.sent_last.contains_key(conv)))
            .collect();
        if let Some(seqs) = store::lock_seqs(c, &convs)? {
            for (conv, last) in seqs {
                self.w.next_seq.insert(conv, last + 1);
                // The counter is where this writer left it: no other node
                // wrote in between, so the previous seq went out on this
                // writer's path, ahead of what this batch sends. Otherwise
                // another node's entries may have changed the members: read
                // them again, under the lock.
                let ours = self.w.sent_last.get(&conv) == Some(&last);
                if !ours {
                    self.w.convs.remove(&conv);
                }
                continues.insert(conv, ours);
            }
        }
        let originals = store::find_by_client_ids(
            c,
            batch.iter().map(|m| (m.sender_id, m.client_id.as_str())),
        )?;
        let blocked = self.blocked_in_direct(c, batch)?;
        let mut out: Vec<WriteResult> = Vec::with_capacity(batch.len());
        let mut in_batch: HashMap<(i64, &str), usize> = HashMap::new();
        for m in batch {
            if let Some(&i) = in_batch.get(&(m.sender_id, m.client_id.as_str())) {
                out.push(match &out[i] {
                    Ok(s) => Ok(Stored::duplicate(s.entries.clone())),
                    Err(e) => Err(*e),
                });
                continue;
            }
            in_batch.insert((m.sender_id, m.client_id.as_str()), out.len());
            if let Some(orig) = originals.get(&(m.sender_id, m.client_id.clone())) {
                out.push(Ok(Stored::duplicate(vec![orig.clone().into()])));
                continue;
            }
            // After the batch's first entry of a conversation, the rest follow it.
            let follows = self.first_seq.contains_key(&m.conversation_id)
                || continues.get(&m.conversation_id) == Some(&true);
            out.push(self.apply(c, m, &blocked)?.map(|made| Stored {
                entries: made.entries.into_iter().map(Into::into).collect(),
                deliver_to: Some(made.deliver_to),
                continues: follows,
                group_changed: made.group_changed,
            }));
        }
        store::insert_messages(c, &self.rows)?;
        // Each conversation's counter moves from first-1 to last, only if
        // it still is first-1: all of them in one statement per
        // MAX_VALUES_ROWS conversations, not one UPDATE each.
        let advances: Vec<[i64; 3]> = self
            .first_seq
            .iter()
            .map(|(conv, first)| {
                let last = self.w.next_seq.get(conv).copied().unwrap_or(*first) - 1;
                [*conv, first - 1, last]
            })
            .collect();
        let advanced = store::advance_seqs(c, &advances, self.now)?;
        if advanced != advances.len() {
            // Someone else advanced one of these conversations: our counters are stale.
            return Err(DbError::RollbackTransaction);
        }
        // A sender has read their own entries (never moving a mark back).
        let reads: Vec<[i64; 3]> = self
            .read_up_to
            .iter()
            .map(|((conv, user), seq)| [*conv, *user, *seq])
            .collect();
        store::raise_read_marks(c, &reads)?;
        Ok(out)
    }

    /// (peer, sender) pairs of the batch's direct messages that are blocks.
    fn blocked_in_direct(
        &mut self,
        c: &mut DbConn,
        batch: &[PendingMessage],
    ) -> QueryResult<std::collections::HashSet<(i64, i64)>> {
        let mut pairs: Vec<(i64, i64)> = Vec::new();
        for m in batch {
            if let Some(st) = self.w.conversation(c, m.conversation_id)? {
                if st.kind == "direct" {
                    if let Some(peer) = st.members.iter().copied().find(|u| *u != m.sender_id) {
                        pairs.push((peer, m.sender_id));
                    }
                }
            }
        }
        store::blocked_pairs(c, &pairs)
    }

    fn apply(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        blocked: &std::collections::HashSet<(i64, i64)>,
    ) -> QueryResult<Result<Made, Refusal>> {
        const NOT_MEMBER: Refusal = ("not_member", "not a member of this conversation");
        let Some(st) = self.w.conversation(c, m.conversation_id)? else {
            return Ok(Err(NOT_MEMBER));
        };
        if st.members.binary_search(&m.sender_id).is_err() {
            return Ok(Err(NOT_MEMBER));
        }
        // A block stops whatever would reach the blocker: messages, pictures
        // and edits (taking one's own message back stays possible).
        let reaches_peer = matches!(
            m.change,
            Change::Text { .. } | Change::Image { .. } | Change::Edit { .. }
        );
        if st.kind == "direct" && reaches_peer {
            let peer = st.members.iter().copied().find(|u| *u != m.sender_id);
            if blocked.contains(&(peer.unwrap_or(m.sender_id), m.sender_id)) {
                return Ok(Err(("blocked", "this user does not accept your messages")));
            }
        }
        match &m.change {
            Change::Text { body } => {
                let row = self.entry(c, m, 0, EntryKind::Text, body.clone(), None, None)?;
                Ok(Ok(made(vec![row], &st, false)))
            }
            Change::Image { media_id, body } => {
                let now = self.now;
                if crate::media::tx::attach(c, &[*media_id], m.sender_id, now).is_err() {
                    return Ok(Err(("not_found", "media_id names no picture you uploaded")));
                }
                let data = json!({
                    "media_id": media_id,
                    "url": crate::core::urls::picture_url(*media_id),
                    "thumbnail_url": crate::core::urls::thumbnail_url(*media_id),
                });
                let kind = EntryKind::Image;
                let row = self.entry(c, m, 0, kind, body.clone(), None, Some(data))?;
                Ok(Ok(made(vec![row], &st, false)))
            }
            Change::Edit { target_seq, body } => self.edit(c, m, &st, *target_seq, body),
            Change::Delete { target_seq } => self.delete(c, m, &st, *target_seq),
            Change::AddMembers { user_ids } => self.add(c, m, st, user_ids),
            Change::RemoveMember { user_id } => self.remove(c, m, st, *user_id),
            Change::Update {
                title,
                owner_id,
                history,
            } => self.update(c, m, st, title.as_deref(), *owner_id, *history),
            Change::SetAdmin { user_id, admin } => self.set_admin(c, m, st, *user_id, *admin),
        }
    }

    /// Assigns the next seq of `m`'s conversation to a new entry and keeps
    /// its row for the batch's insert. `part` > 0 names the change's later
    /// entries (their client ids are made from the first's).
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        part: usize,
        kind: EntryKind,
        body: String,
        target_seq: Option<i64>,
        data: Option<serde_json::Value>,
    ) -> QueryResult<MessageRow> {
        let conv = m.conversation_id;
        let seq = self.w.next_seq(c, conv)?;
        self.w.next_seq.insert(conv, seq + 1);
        self.first_seq.entry(conv).or_insert(seq);
        self.read_up_to.insert((conv, m.sender_id), seq);
        let client_id = if part == 0 {
            m.client_id.clone()
        } else {
            format!("{}~{part}", m.client_id)
        };
        let row = MessageRow {
            id: self.w.ids.next_id(),
            conversation_id: conv,
            seq,
            sender_id: m.sender_id,
            body,
            client_id,
            sent_at_ms: self.now,
            kind: kind.as_str().into(),
            target_seq,
            data: data.map(|d| d.to_string()),
            edited_at_ms: None,
            deleted_at_ms: None,
        };
        self.rows.push(row.clone());
        Ok(row)
    }

    /// The entry at `seq`: from this batch's rows, else the database.
    fn target(&mut self, c: &mut DbConn, conv: i64, seq: i64) -> QueryResult<Option<MessageRow>> {
        let pending = self
            .rows
            .iter()
            .rev()
            .find(|r| r.conversation_id == conv && r.seq == seq);
        match pending {
            Some(r) => Ok(Some(r.clone())),
            None => entries::find_entry(c, conv, seq),
        }
    }

    /// Changes the stored target: in this batch's rows if it is one of
    /// them, else in the database.
    fn amend(
        &mut self,
        c: &mut DbConn,
        conv: i64,
        seq: i64,
        body: &str,
        deleted: bool,
    ) -> QueryResult<()> {
        let now = self.now;
        if deleted {
            // A deleted message's text must not live on in its edits.
            let edits_of = |r: &&mut MessageRow| {
                r.conversation_id == conv
                    && r.target_seq == Some(seq)
                    && r.kind == EntryKind::Edit.as_str()
            };
            for r in self.rows.iter_mut().filter(edits_of) {
                r.body.clear();
            }
        }
        if let Some(r) = self
            .rows
            .iter_mut()
            .rev()
            .find(|r| r.conversation_id == conv && r.seq == seq)
        {
            body.clone_into(&mut r.body);
            if deleted {
                r.data = None;
                r.deleted_at_ms = Some(now);
            } else {
                r.edited_at_ms = Some(now);
            }
            return Ok(());
        }
        if deleted {
            entries::set_deleted(c, conv, seq, now)?;
            entries::blank_edits_of(c, conv, seq)?;
        } else {
            entries::set_edited(c, conv, seq, body, now)?;
        }
        Ok(())
    }

    fn edit(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        st: &ConvState,
        target_seq: i64,
        body: &str,
    ) -> QueryResult<Result<Made, Refusal>> {
        let target = self.target(c, m.conversation_id, target_seq)?;
        if let Err(r) =
            model::decide_edit(m.sender_id, target.as_ref().map(facts).as_ref(), self.now)
        {
            return Ok(Err(r));
        }
        self.amend(c, m.conversation_id, target_seq, body, false)?;
        let kind = EntryKind::Edit;
        let row = self.entry(c, m, 0, kind, body.to_owned(), Some(target_seq), None)?;
        // The new text of a message sent before a member joined is not theirs
        // to read: they get no live frame of it (their sync and history show
        // the entry with an empty body).
        let readers: Vec<i64> = st
            .members
            .iter()
            .copied()
            .filter(|u| !st.late.iter().any(|(l, from)| l == u && *from > target_seq))
            .collect();
        Ok(Ok(Made {
            entries: vec![row],
            deliver_to: Arc::new(readers),
            group_changed: false,
        }))
    }

    fn delete(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        st: &ConvState,
        target_seq: i64,
    ) -> QueryResult<Result<Made, Refusal>> {
        let target = self.target(c, m.conversation_id, target_seq)?;
        // Asked only when it matters: someone else's message.
        let is_admin = match &target {
            Some(t) if t.sender_id != m.sender_id => {
                crate::accounts::tx::is_admin(c, m.sender_id).unwrap_or(false)
            }
            _ => false,
        };
        let facts = target.as_ref().map(facts);
        if let Err(r) = model::decide_delete(m.sender_id, is_admin, facts.as_ref()) {
            return Ok(Err(r));
        }
        self.amend(c, m.conversation_id, target_seq, "", true)?;
        let kind = EntryKind::Delete;
        let row = self.entry(c, m, 0, kind, String::new(), Some(target_seq), None)?;
        Ok(Ok(made(vec![row], st, false)))
    }
}

fn made(entries: Vec<MessageRow>, st: &ConvState, group_changed: bool) -> Made {
    Made {
        entries,
        deliver_to: st.members.clone(),
        group_changed,
    }
}

fn facts(r: &MessageRow) -> Target {
    Target {
        sender_id: r.sender_id,
        kind: r.kind.clone(),
        sent_at_ms: r.sent_at_ms,
        deleted: r.deleted_at_ms.is_some(),
    }
}
