//! Durable-before-ack chat writes with group commit.
//!
//! ```text
//! WsConn ──ChatSend──► ChatBatcher[conv % shards] ──WriteBatch──► ChatDbWriter (own thread)
//!                         ▲ collects while a flush runs            one transaction per batch:
//!                         │                                        dedupe, membership, block,
//!                         └──── results (in seq order) ◄────────── seq assignment, insert
//!        ack to the sender's socket, then `message` to every member's session
//! ```
//!
//! Each conversation maps to exactly one shard, and each shard has one writer
//! thread, so one thread assigns every `seq` of a conversation: gapless and
//! strictly increasing, assigned inside the transaction that stores the
//! message. If the transaction fails, the writer forgets its cached counters
//! for the batch and reloads them from `conversations.last_seq` (updated in
//! the same transaction), which is also how it recovers after a restart. The
//! update of `last_seq` is conditional on the expected previous value, so even
//! a second node writing the same conversation cannot create a gap or a
//! duplicate: its batch fails and is retried.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, SyncContext,
    WrapFuture,
};

use super::handle::ChatCaches;
use super::store::{self, MessageRow};
use crate::chat::socket::{Reply, WsConn};
use crate::core::ids::now_ms;
use crate::core::ids::IdGenerator;
use crate::realtime::frames::{MessageView, ServerFrame};
use crate::realtime::registry::Registry;
use crate::realtime::session::{Deliver, Outgoing};
use crate::runtime::context::Ctx;
use crate::storage::{DbConn, Pool, QueryResult};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 512;
/// Messages a shard accepts while busy before senders are told to retry.
pub const MAX_QUEUED: usize = 16_384;
/// Counters and member lists a writer keeps before starting over.
const WRITER_CACHE_MAX: usize = 100_000;

/// A message to store and deliver.
pub struct ChatSend {
    pub sender_id: i64,
    pub conn: Addr<WsConn>,
    pub conn_id: u64,
    /// Resolved before submission (a `to_user_id` send finds its direct conversation first).
    pub conversation_id: i64,
    pub client_id: String,
    pub body: String,
}

impl Message for ChatSend {
    type Result = ();
}

/// The shards. `submit` never waits: a full shard hands the message back.
#[derive(Clone)]
pub struct ChatWriters {
    shards: Vec<Addr<ChatBatcher>>,
    writers: Vec<Addr<ChatDbWriter>>,
}

impl ChatWriters {
    pub fn start(
        shards: usize,
        pool: Pool,
        ctx: Arc<Ctx>,
        registry: Arc<Registry>,
        caches: Arc<ChatCaches>,
    ) -> ChatWriters {
        let mut writers = Vec::new();
        let shards = (0..shards.max(1))
            .map(|i| {
                let writer_pool = pool.clone();
                let writer_ids = ctx.ids.clone();
                let writer = SyncArbiter::start(1, move || ChatDbWriter {
                    pool: writer_pool.clone(),
                    ids: writer_ids.clone(),
                    next_seq: HashMap::new(),
                    sent_last: HashMap::new(),
                    members: HashMap::new(),
                });
                writers.push(writer.clone());
                let batcher = ChatBatcher {
                    writer,
                    caches: caches.clone(),
                    registry: registry.clone(),
                    pending: Vec::new(),
                    flushing: false,
                    in_flight: 0,
                    gauge: ctx.metrics.queue(&format!("chat_writer_{i}"), MAX_QUEUED),
                };
                // `try_send` honours this bound; past it `submit` fails fast.
                // Set before the address exists (in `started` a burst right
                // after the start would meet actix's default of 16).
                ChatBatcher::create(|c| {
                    c.set_mailbox_capacity(MAX_QUEUED);
                    batcher
                })
            })
            .collect();
        ChatWriters { shards, writers }
    }

    fn shard_of(&self, conversation_id: i64) -> usize {
        let n = self.shards.len() as i64;
        usize::try_from(conversation_id.rem_euclid(n)).unwrap_or(0)
    }

    /// A conversation's members changed (a trip member joined or left): its
    /// writer reloads them before the next batch. Queued behind any batch
    /// already sent, so only messages sent before the change see the old list.
    pub fn forget_members(&self, conversation_id: i64) {
        // Rare (membership changes), so the unbounded `do_send` cannot pile up.
        self.writers[self.shard_of(conversation_id)].do_send(ForgetMembers(conversation_id));
    }

    pub fn submit(&self, msg: ChatSend) -> Result<(), ChatSend> {
        match self.shards[self.shard_of(msg.conversation_id)].try_send(msg) {
            Ok(()) => Ok(()),
            Err(actix::dev::SendError::Full(m) | actix::dev::SendError::Closed(m)) => Err(m),
        }
    }
}

pub struct ChatBatcher {
    writer: Addr<ChatDbWriter>,
    caches: Arc<ChatCaches>,
    registry: Arc<Registry>,
    pending: Vec<ChatSend>,
    flushing: bool,
    /// Messages in the batch being committed.
    in_flight: usize,
    gauge: crate::core::metrics::QueueGauge,
}

impl Actor for ChatBatcher {
    type Context = Context<Self>;
}

impl Handler<ChatSend> for ChatBatcher {
    type Result = ();

    fn handle(&mut self, msg: ChatSend, ctx: &mut Self::Context) {
        if self.pending.len() >= MAX_QUEUED {
            let frame = ServerFrame::Error {
                code: "unavailable",
                message: "the server is busy; resend later",
                client_id: Some(&msg.client_id),
            };
            msg.conn.do_send(Reply(frame.encode()));
            return;
        }
        self.pending.push(msg);
        self.gauge.set(self.pending.len() + self.in_flight);
        if !self.flushing {
            self.flush(ctx);
        }
    }
}

impl ChatBatcher {
    /// Sends what is pending to the writer; while it commits, new messages
    /// collect into the next batch (group commit).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<ChatSend> = self.pending.drain(..take).collect();
        self.in_flight = take;
        let rows: Vec<PendingMessage> = batch
            .iter()
            .map(|m| PendingMessage {
                sender_id: m.sender_id,
                conversation_id: m.conversation_id,
                client_id: m.client_id.clone(),
                body: m.body.clone(),
            })
            .collect();
        ctx.spawn(self.writer.send(WriteBatch(rows)).into_actor(self).map(
            move |res, this, ctx| {
                let results = match res {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "chat writer unavailable");
                        batch
                            .iter()
                            .map(|_| Err(("unavailable", "the message was not stored; resend")))
                            .collect()
                    }
                };
                // Deliveries gather per member across the batch, in commit
                // order, so each member gets one `Deliver` per batch (see
                // `Deliver`); a member's frames keep their seq order.
                let mut fan_out: HashMap<i64, Vec<Outgoing>> = HashMap::new();
                for (req, result) in batch.iter().zip(results) {
                    this.complete(req, result, &mut fan_out);
                }
                for (member, items) in fan_out {
                    this.registry.deliver(member, Deliver { items });
                }
                this.flushing = false;
                this.in_flight = 0;
                this.gauge.set(this.pending.len());
                this.flush(ctx);
            },
        ));
    }

    fn complete(
        &self,
        req: &ChatSend,
        result: WriteResult,
        fan_out: &mut HashMap<i64, Vec<Outgoing>>,
    ) {
        match result {
            Ok(stored) => {
                let ack = ServerFrame::Ack {
                    client_id: &req.client_id,
                    conversation_id: stored.view.conversation_id,
                    message_id: stored.view.message_id,
                    seq: stored.view.seq,
                };
                req.conn.do_send(Reply(ack.encode()));
                if let Some(members) = stored.deliver_to {
                    // Committed, in seq order: remember it before anyone can ask to sync.
                    self.caches.recent.push(&stored.view);
                    let frame = ServerFrame::Message(&stored.view).encode();
                    for m in members.iter() {
                        fan_out.entry(*m).or_default().push(Outgoing {
                            frame: frame.clone(),
                            conversation_id: Some(stored.view.conversation_id),
                            seq: Some(stored.view.seq),
                            continues: stored.continues,
                            except_conn: Some(req.conn_id),
                        });
                    }
                }
            }
            Err((code, message)) => {
                let frame = ServerFrame::Error {
                    code,
                    message,
                    client_id: Some(&req.client_id),
                };
                req.conn.do_send(Reply(frame.encode()));
            }
        }
    }
}

pub struct PendingMessage {
    pub sender_id: i64,
    pub conversation_id: i64,
    pub client_id: String,
    pub body: String,
}

pub struct Stored {
    pub view: MessageView,
    /// Members to deliver to; `None` for a duplicate (already delivered once).
    pub deliver_to: Option<Arc<Vec<i64>>>,
    /// This writer stored the conversation's previous seq too (see `Outgoing::continues`).
    pub continues: bool,
}

pub type WriteResult = Result<Stored, (&'static str, &'static str)>;

pub struct WriteBatch(pub Vec<PendingMessage>);

/// Drop the cached member list of a conversation.
pub struct ForgetMembers(pub i64);

impl Message for ForgetMembers {
    type Result = ();
}

impl Handler<ForgetMembers> for ChatDbWriter {
    type Result = ();
    fn handle(&mut self, msg: ForgetMembers, _: &mut Self::Context) {
        self.members.remove(&msg.0);
    }
}

impl Message for WriteBatch {
    type Result = Vec<WriteResult>;
}

pub struct ChatDbWriter {
    pool: Pool,
    ids: Arc<IdGenerator>,
    /// Next seq per conversation, valid only for this writer's shard.
    next_seq: HashMap<i64, i64>,
    /// Last seq per conversation this writer committed and handed out for
    /// delivery: when the row lock reads it back, nothing came in between.
    sent_last: HashMap<i64, i64>,
    /// (kind, members) per conversation.
    members: HashMap<i64, (String, Arc<Vec<i64>>)>,
}

impl Actor for ChatDbWriter {
    type Context = SyncContext<Self>;
}

/// A batch failed as a whole and should be retried after reloading counters.
struct Conflict;

impl ChatDbWriter {
    fn conversation(
        &mut self,
        c: &mut DbConn,
        conv: i64,
    ) -> QueryResult<Option<(String, Arc<Vec<i64>>)>> {
        if let Some(v) = self.members.get(&conv) {
            return Ok(Some(v.clone()));
        }
        let Some(row) = store::find_conversation(c, conv)? else {
            return Ok(None);
        };
        let members = Arc::new(store::members(c, conv)?);
        if self.members.len() >= WRITER_CACHE_MAX {
            self.members.clear();
        }
        self.members
            .insert(conv, (row.kind.clone(), members.clone()));
        if !self.next_seq.contains_key(&conv) {
            if self.next_seq.len() >= WRITER_CACHE_MAX {
                self.next_seq.clear();
            }
            self.next_seq.insert(conv, row.last_seq + 1);
        }
        Ok(Some((row.kind, members)))
    }

    fn next_seq(&mut self, c: &mut DbConn, conv: i64) -> QueryResult<i64> {
        if let Some(s) = self.next_seq.get(&conv) {
            return Ok(*s);
        }
        let last = store::last_seq(c, conv)?;
        self.next_seq.insert(conv, last + 1);
        Ok(last + 1)
    }

    fn write(
        &mut self,
        batch: &[PendingMessage],
    ) -> Result<Vec<WriteResult>, Result<Conflict, crate::storage::DbError>> {
        let mut conn = self.pool.get().map_err(|e| {
            tracing::error!(error = %e, "chat writer has no database connection");
            Ok(Conflict)
        })?;
        let now = now_ms();
        let _writer = crate::storage::write_lock(&conn);
        let results = crate::storage::write_transaction(&mut conn, |c| {
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
                .map(|conv| (*conv, self.sent_last.contains_key(conv)))
                .collect();
            if let Some(seqs) = store::lock_seqs(c, &convs)? {
                for (conv, last) in seqs {
                    self.next_seq.insert(conv, last + 1);
                    // The counter is where this writer left it: no other
                    // node wrote in between, so the previous seq went out on
                    // this writer's path, ahead of what this batch sends.
                    continues.insert(conv, self.sent_last.get(&conv) == Some(&last));
                }
            }
            let originals = store::find_by_client_ids(
                c,
                batch.iter().map(|m| (m.sender_id, m.client_id.as_str())),
            )?;
            let mut direct_pairs: Vec<(i64, i64)> = Vec::new();
            for m in batch {
                if let Some((kind, members)) = self.conversation(c, m.conversation_id)? {
                    if kind == "direct" {
                        if let Some(peer) = members.iter().copied().find(|u| *u != m.sender_id) {
                            direct_pairs.push((peer, m.sender_id));
                        }
                    }
                }
            }
            let blocked = store::blocked_pairs(c, &direct_pairs)?;
            let mut out: Vec<WriteResult> = Vec::with_capacity(batch.len());
            let mut rows: Vec<MessageRow> = Vec::new();
            let mut first_seq: HashMap<i64, i64> = HashMap::new();
            let mut read_up_to: HashMap<(i64, i64), i64> = HashMap::new();
            let mut in_batch: HashMap<(i64, &str), usize> = HashMap::new();
            for m in batch {
                if let Some(&i) = in_batch.get(&(m.sender_id, m.client_id.as_str())) {
                    out.push(match &out[i] {
                        Ok(s) => Ok(Stored {
                            view: s.view.clone(),
                            deliver_to: None,
                            continues: false,
                        }),
                        Err(e) => Err(*e),
                    });
                    continue;
                }
                in_batch.insert((m.sender_id, m.client_id.as_str()), out.len());
                if let Some(orig) = originals.get(&(m.sender_id, m.client_id.clone())) {
                    out.push(Ok(Stored {
                        view: orig.clone().into(),
                        deliver_to: None,
                        continues: false,
                    }));
                    continue;
                }
                let Some((kind, members)) = self.conversation(c, m.conversation_id)? else {
                    out.push(Err(("not_member", "not a member of this conversation")));
                    continue;
                };
                if members.binary_search(&m.sender_id).is_err() {
                    out.push(Err(("not_member", "not a member of this conversation")));
                    continue;
                }
                if kind == "direct" {
                    let peer = members
                        .iter()
                        .copied()
                        .find(|u| *u != m.sender_id)
                        .unwrap_or(m.sender_id);
                    if blocked.contains(&(peer, m.sender_id)) {
                        out.push(Err(("blocked", "this user does not accept your messages")));
                        continue;
                    }
                }
                let seq = self.next_seq(c, m.conversation_id)?;
                self.next_seq.insert(m.conversation_id, seq + 1);
                // After the batch's first message of a conversation, the rest follow it.
                let follows = first_seq.contains_key(&m.conversation_id)
                    || continues.get(&m.conversation_id) == Some(&true);
                first_seq.entry(m.conversation_id).or_insert(seq);
                let key = (m.conversation_id, m.sender_id);
                read_up_to.insert(key, seq);
                let row = MessageRow {
                    id: self.ids.next_id(),
                    conversation_id: m.conversation_id,
                    seq,
                    sender_id: m.sender_id,
                    body: m.body.clone(),
                    client_id: m.client_id.clone(),
                    sent_at_ms: now,
                };
                out.push(Ok(Stored {
                    view: row.clone().into(),
                    deliver_to: Some(members),
                    continues: follows,
                }));
                rows.push(row);
            }
            store::insert_messages(c, &rows)?;
            // Each conversation's counter moves from first-1 to last, only if
            // it still is first-1: all of them in one statement per
            // MAX_VALUES_ROWS conversations, not one UPDATE each.
            let advances: Vec<[i64; 3]> = first_seq
                .iter()
                .map(|(conv, first)| {
                    let last = self.next_seq.get(conv).copied().unwrap_or(*first) - 1;
                    [*conv, first - 1, last]
                })
                .collect();
            let advanced = store::advance_seqs(c, &advances, now)?;
            if advanced != advances.len() {
                // Someone else advanced one of these conversations: our counters are stale.
                return Err(crate::storage::DbError::RollbackTransaction);
            }
            // A sender has read their own message (never moving a mark back).
            let reads: Vec<[i64; 3]> = read_up_to
                .into_iter()
                .map(|((conv, user), seq)| [conv, user, seq])
                .collect();
            store::raise_read_marks(c, &reads)?;
            Ok(out)
        })
        .map_err(|e| match e {
            crate::storage::DbError::RollbackTransaction => Ok(Conflict),
            e if crate::storage::is_transient(&e) => Ok(Conflict),
            e => Err(e),
        })?;
        if self.sent_last.len() >= WRITER_CACHE_MAX {
            self.sent_last.clear();
        }
        for stored in results.iter().flatten() {
            if stored.deliver_to.is_some() {
                self.sent_last
                    .insert(stored.view.conversation_id, stored.view.seq);
            }
        }
        Ok(results)
    }
}

impl Handler<WriteBatch> for ChatDbWriter {
    type Result = Vec<WriteResult>;

    fn handle(&mut self, msg: WriteBatch, _: &mut Self::Context) -> Self::Result {
        match self.write_with_retries(&msg.0) {
            Ok(results) => results,
            // Not a conflict: something in the batch the database refuses. One
            // bad message must not sink the others, so each is written alone
            // and only the bad one fails.
            Err(Failure::Refused) if msg.0.len() > 1 => msg
                .0
                .chunks(1)
                .map(|one| match self.write_with_retries(one) {
                    Ok(mut r) => r.pop().unwrap_or(Err(NOT_STORED)),
                    Err(Failure::Refused) => Err(REFUSED),
                    Err(Failure::Unavailable) => Err(NOT_STORED),
                })
                .collect(),
            Err(Failure::Refused) => vec![Err(REFUSED)],
            Err(Failure::Unavailable) => msg.0.iter().map(|_| Err(NOT_STORED)).collect(),
        }
    }
}

const NOT_STORED: (&str, &str) = ("unavailable", "the message was not stored; resend");
const REFUSED: (&str, &str) = ("invalid_input", "the message could not be stored as sent");

/// Why a batch was not stored after its retries.
enum Failure {
    /// Conflicts every time, or no connection: transient.
    Unavailable,
    /// The database refused a statement: something in the batch itself.
    Refused,
}

impl ChatDbWriter {
    /// Writes the batch, retrying conflicts (stale counters) a few times.
    fn write_with_retries(
        &mut self,
        batch: &[PendingMessage],
    ) -> Result<Vec<WriteResult>, Failure> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let e = match self.write(batch) {
                Ok(results) => return Ok(results),
                Err(e) => e,
            };
            // The transaction rolled back: forget what it assumed.
            for m in batch {
                self.next_seq.remove(&m.conversation_id);
                self.members.remove(&m.conversation_id);
            }
            match e {
                Ok(Conflict) if attempt < ATTEMPTS => continue,
                Ok(Conflict) => tracing::warn!("chat batch conflicted {ATTEMPTS} times"),
                Err(e) => {
                    tracing::error!(error = %e, messages = batch.len(), "chat batch refused");
                    return Err(Failure::Refused);
                }
            }
        }
        Err(Failure::Unavailable)
    }
}
