//! Durable-before-ack chat writes with group commit.
//!
//! ```text
//! WsConn ──ChatSend──► ChatBatcher[shard_of(conv)] ──WriteBatch──► ChatDbWriter (own thread)
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
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, WrapFuture,
};

use tokio::sync::oneshot;

use super::handle::ChatCaches;
use super::model::{Change, EntryKind, Refusal};
use crate::chat::socket::{Reply, WsConn};
use crate::realtime::frames::{MessageView, ServerFrame};
use crate::realtime::registry::Registry;
use crate::realtime::session::{Deliver, Outgoing};
use crate::runtime::context::Ctx;
use crate::storage::Pool;

mod db;
use db::{ChatDbWriter, Conflict};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 512;
/// Messages a shard accepts while busy before senders are told to retry.
pub const MAX_QUEUED: usize = 16_384;

/// Where a change's outcome goes.
pub enum ReplyTo {
    /// A socket's frame: the ack or error goes to it, and the entry's
    /// `message` frame to every connection of the members but it.
    Socket { conn: Addr<WsConn>, conn_id: u64 },
    /// An HTTP request waiting for the entries its change made.
    Caller(oneshot::Sender<Result<Vec<MessageView>, Refusal>>),
}

/// A change to store and deliver: a message, an edit, a group's change.
pub struct ChatSend {
    pub sender_id: i64,
    pub reply: ReplyTo,
    /// Resolved before submission (a `to_user_id` send finds its direct conversation first).
    pub conversation_id: i64,
    /// Unique per sender: a resend with it returns the first outcome.
    pub client_id: String,
    pub change: Change,
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
                    conn: crate::storage::held::HeldConnection::new(writer_pool.clone()),
                    ids: writer_ids.clone(),
                    next_seq: HashMap::new(),
                    sent_last: HashMap::new(),
                    convs: HashMap::new(),
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
        crate::core::ids::shard_of(conversation_id, self.shards.len())
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

    /// Runs `change` by `sender_id` in `conversation_id`'s next batch and
    /// answers with the entries it made, once they are committed (and the
    /// caches of a group that changed have forgotten the old state). A
    /// dropped caller does not cancel it: the batch commits and delivers
    /// anyway.
    pub async fn change(
        &self,
        sender_id: i64,
        conversation_id: i64,
        client_id: String,
        change: Change,
    ) -> Result<Vec<MessageView>, Refusal> {
        let (tx, rx) = oneshot::channel();
        let msg = ChatSend {
            sender_id,
            reply: ReplyTo::Caller(tx),
            conversation_id,
            client_id,
            change,
        };
        if self.submit(msg).is_err() {
            return Err(BUSY);
        }
        rx.await
            .unwrap_or(Err(("unavailable", "the chat writer stopped")))
    }
}

const BUSY: Refusal = ("unavailable", "the server is busy; resend later");

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
            return answer(msg, Err(BUSY));
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
                change: m.change.clone(),
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
                for (req, result) in batch.into_iter().zip(results) {
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
        req: ChatSend,
        result: WriteResult,
        fan_out: &mut HashMap<i64, Vec<Outgoing>>,
    ) {
        let Ok(stored) = result else {
            return answer(req, result.map(|s| s.entries));
        };
        let except_conn = match &req.reply {
            ReplyTo::Socket { conn_id, .. } => Some(*conn_id),
            ReplyTo::Caller(_) => None,
        };
        if let Some(members) = &stored.deliver_to {
            for view in &stored.entries {
                // Committed, in seq order: remember it before anyone can ask to sync.
                self.remember(view);
                let frame = ServerFrame::Message(view).encode();
                for m in members.iter() {
                    fan_out.entry(*m).or_default().push(Outgoing {
                        frame: frame.clone(),
                        conversation_id: Some(view.conversation_id),
                        seq: Some(view.seq),
                        continues: stored.continues,
                        except_conn,
                    });
                }
            }
        }
        if stored.group_changed {
            // Before the caller hears back: its next request sees the new members.
            self.registry
                .notice(super::handle::MEMBERS_NOTICE, req.conversation_id);
        }
        answer(req, Ok(stored.entries));
    }

    /// Keeps an entry in the recent ring, and an edit's or deletion's
    /// target there in its new state.
    fn remember(&self, view: &MessageView) {
        let recent = &self.caches.recent;
        match (EntryKind::parse(&view.kind), view.target_seq) {
            (Some(EntryKind::Edit), Some(target)) => {
                recent.amend(view.conversation_id, target, |m| {
                    m.body.clone_from(&view.body);
                    m.edited_at = Some(view.sent_at.clone());
                });
            }
            (Some(EntryKind::Delete), Some(target)) => {
                recent.amend(view.conversation_id, target, |m| {
                    m.body.clear();
                    m.data = None;
                    m.deleted = true;
                });
                recent.blank_edits_of(view.conversation_id, target);
            }
            _ => {}
        }
        recent.push(view);
    }
}

/// Tells the one who asked: an ack (the first entry's seq) or an error
/// frame to a socket, the entries or the refusal to an HTTP caller.
fn answer(req: ChatSend, outcome: Result<Vec<MessageView>, Refusal>) {
    match req.reply {
        ReplyTo::Caller(tx) => {
            let _ = tx.send(outcome);
        }
        ReplyTo::Socket { conn, .. } => {
            let frame = match &outcome {
                Ok(entries) => match entries.first() {
                    Some(first) => ServerFrame::Ack {
                        client_id: &req.client_id,
                        conversation_id: first.conversation_id,
                        message_id: first.message_id,
                        seq: first.seq,
                    }
                    .encode(),
                    None => return,
                },
                Err((code, message)) => ServerFrame::Error {
                    code,
                    message,
                    client_id: Some(&req.client_id),
                }
                .encode(),
            };
            conn.do_send(Reply(frame));
        }
    }
}

pub struct PendingMessage {
    pub sender_id: i64,
    pub conversation_id: i64,
    pub client_id: String,
    pub change: Change,
}

pub struct Stored {
    /// The change's entries in seq order (empty: it changed nothing; for a
    /// duplicate, the original's).
    pub entries: Vec<MessageView>,
    /// Members to deliver to; `None` for a duplicate (already delivered once).
    pub deliver_to: Option<Arc<Vec<i64>>>,
    /// This writer stored the conversation's previous seq too (see `Outgoing::continues`).
    pub continues: bool,
    /// The group's members or settings changed: every cache of them forgets.
    pub group_changed: bool,
}

impl Stored {
    fn duplicate(entries: Vec<MessageView>) -> Stored {
        Stored {
            entries,
            deliver_to: None,
            continues: false,
            group_changed: false,
        }
    }
}

pub type WriteResult = Result<Stored, Refusal>;

pub struct WriteBatch(pub Vec<PendingMessage>);

impl Message for WriteBatch {
    type Result = Vec<WriteResult>;
}

/// Drop the cached member list of a conversation.
pub struct ForgetMembers(pub i64);

impl Message for ForgetMembers {
    type Result = ();
}

impl Handler<ForgetMembers> for ChatDbWriter {
    type Result = ();
    fn handle(&mut self, msg: ForgetMembers, _: &mut Self::Context) {
        self.convs.remove(&msg.0);
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

const NOT_STORED: Refusal = ("unavailable", "the message was not stored; resend");
const REFUSED: Refusal = ("invalid_input", "the message could not be stored as sent");

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
                self.convs.remove(&m.conversation_id);
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
