//! The user session actor: every socket of one online user, presence, and
//! the single place that pushes to that user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture,
};

use super::frames::ServerFrame;
use super::registry::{ConnShared, Registry};
use super::reorder::{Released, SeqOrder};
use super::socket::{Kick, Push, PushFrame, SocketAddr};
use crate::core::ids::now_ms;

/// How often a session checks its sockets' liveness (at most). This runs on
/// the session, not the socket actor, so a socket jammed in a write (whose
/// own timers stop, actix-web #2441) is still reaped.
const REAP_INTERVAL_MAX: Duration = Duration::from_secs(5);

pub struct UserSession {
    user_id: i64,
    registry: Arc<Registry>,
    conns_count: Arc<AtomicUsize>,
    conns: HashMap<u64, (SocketAddr, Arc<ConnShared>)>,
    /// Direct-conversation peers, told when this user comes and goes.
    peers: Vec<i64>,
    /// `peers` was read (it is read once, as the session starts).
    peers_loaded: bool,
    /// In a cluster: frames held until their predecessors arrive (boxed and
    /// made on first use: most sessions never need it).
    order: Option<Box<SeqOrder<Outgoing>>>,
}

impl UserSession {
    pub fn new(
        user_id: i64,
        registry: Arc<Registry>,
        conns_count: Arc<AtomicUsize>,
        first: SocketAddr,
        shared: Arc<ConnShared>,
    ) -> Self {
        let mut conns = HashMap::new();
        conns.insert(shared.id, (first, shared));
        UserSession {
            user_id,
            registry,
            conns_count,
            conns,
            peers: Vec::new(),
            peers_loaded: false,
            order: None,
        }
    }

    fn broadcast_presence(&self, online: bool) {
        // Online through another node all along: nothing changed for the peers.
        if self.registry.online_elsewhere(self.user_id) {
            return;
        }
        let frame = ServerFrame::Presence {
            user_id: self.user_id,
            online,
        }
        .encode();
        for peer in &self.peers {
            self.registry.deliver(*peer, Deliver::plain(frame.clone()));
        }
    }

    /// Forgets a socket; retires the session when it was the last one.
    fn remove(&mut self, conn_id: u64, ctx: &mut Context<Self>) {
        if self.conns.remove(&conn_id).is_some() {
            let left = self.conns_count.fetch_sub(1, Ordering::AcqRel) - 1;
            if left == 0 && self.registry.retire(self.user_id, &ctx.address()) {
                ctx.stop();
            }
        }
    }

    fn kick(&mut self, conn_id: u64, code: u16, reason: &'static str, ctx: &mut Context<Self>) {
        if let Some((addr, _)) = self.conns.get(&conn_id) {
            addr.kick.do_send(Kick { code, reason });
        }
        self.remove(conn_id, ctx);
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4_096);
        let source = self.registry.presence_peers();
        let user_id = self.user_id;
        ctx.spawn(
            async move {
                match source {
                    Some(s) => s.peers_of(user_id).await,
                    None => Ok(Vec::new()),
                }
            }
            .into_actor(self)
            .map(|peers, this, ctx| {
                this.peers = peers.unwrap_or_default();
                this.peers_loaded = true;
                this.broadcast_presence(true);
                // The sockets attached so far learn who of their peers is online.
                let online = this.online_peers();
                this.push(&online, ctx);
            }),
        );
        let limits = self.registry.limits;
        let every = Duration::from_millis(
            u64::try_from(limits.idle_timeout_ms / 3)
                .unwrap_or(1000)
                .max(100),
        )
        .min(REAP_INTERVAL_MAX);
        ctx.run_interval(every, move |this, ctx| {
            let now = now_ms();
            let stale: Vec<u64> = this
                .conns
                .values()
                .filter(|(_, s)| {
                    now - s.last_seen_ms.load(Ordering::Acquire) > limits.idle_timeout_ms
                })
                .map(|(_, s)| s.id)
                .collect();
            for id in stale {
                this.kick(id, 1000, "idle timeout", ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.broadcast_presence(false);
    }
}

pub struct Attach {
    pub conn: SocketAddr,
    pub shared: Arc<ConnShared>,
}

impl Message for Attach {
    type Result = ();
}

impl Handler<Attach> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) {
        let id = msg.shared.id;
        self.conns.insert(id, (msg.conn, msg.shared));
        // A socket that joins a running session hears who of the peers is
        // online now (one that comes first hears it when the peers load).
        if self.peers_loaded {
            let online = self.online_peers();
            self.push_where(&online, |c| c == id, ctx);
        }
    }
}

pub struct Detach {
    pub conn_id: u64,
}

impl Message for Detach {
    type Result = ();
}

impl Handler<Detach> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        self.remove(msg.conn_id, ctx);
    }
}

/// One frame for every socket of the user but `except_conn`.
pub struct Outgoing {
    pub frame: Arc<str>,
    pub conversation_id: Option<i64>,
    pub seq: Option<i64>,
    /// The writer sent this conversation's previous seq itself, earlier on
    /// the same path (see `reorder`).
    pub continues: bool,
    pub except_conn: Option<u64>,
}

/// Frames for the user's sockets, in order. The chat batcher sends all of a
/// committed batch's frames for one member in one `Deliver`, so a member of a
/// busy group costs one session wake-up, one socket wake-up and one socket
/// write per batch instead of per message (loopback TCP per write was half of
/// the machine in `chat-group`).
pub struct Deliver {
    pub items: Vec<Outgoing>,
}

impl Deliver {
    pub fn plain(frame: Arc<str>) -> Self {
        Deliver {
            items: vec![Outgoing {
                frame,
                conversation_id: None,
                seq: None,
                continues: false,
                except_conn: None,
            }],
        }
    }
}

impl Message for Deliver {
    type Result = ();
}

impl Handler<Deliver> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        // One node: one writer and one path per conversation, already in order.
        let items = if self.registry.clustered() {
            self.put_in_order(msg.items, ctx)
        } else {
            msg.items
        };
        self.push(&items, ctx);
    }
}

impl UserSession {
    /// Passes frames on in `seq` order per conversation, holding those whose
    /// predecessor is still on its way from another node.
    fn put_in_order(&mut self, items: Vec<Outgoing>, ctx: &mut Context<Self>) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(items.len());
        let now = std::time::Instant::now();
        for o in items {
            let (Some(conv), Some(seq)) = (o.conversation_id, o.seq) else {
                out.push(o);
                continue;
            };
            let order = self.order.get_or_insert_with(Box::default);
            let released = order.admit(conv, seq, o.continues, o, now);
            self.released(conv, released, &mut out, ctx);
        }
        out
    }

    fn released(
        &mut self,
        conv: i64,
        r: Released<Outgoing>,
        out: &mut Vec<Outgoing>,
        ctx: &mut Context<Self>,
    ) {
        out.extend(r.ready);
        self.registry.count_late_frames(r.late);
        if let Some(after) = r.check_after {
            ctx.run_later(after, move |this, ctx| {
                let Some(order) = this.order.as_mut() else {
                    return;
                };
                let r = order.check(conv, std::time::Instant::now());
                let mut out = Vec::new();
                this.released(conv, r, &mut out, ctx);
                this.push(&out, ctx);
            });
        }
    }

    /// A presence frame for each peer online on any node.
    fn online_peers(&self) -> Vec<Outgoing> {
        self.peers
            .iter()
            .filter(|p| self.registry.is_online(**p) || self.registry.online_elsewhere(**p))
            .map(|p| {
                ServerFrame::Presence {
                    user_id: *p,
                    online: true,
                }
                .encode()
            })
            .map(|frame| Deliver::plain(frame).items.remove(0))
            .collect()
    }

    /// Sends frames to every socket of the user, but a frame's `except_conn`.
    fn push(&mut self, items: &[Outgoing], ctx: &mut Context<Self>) {
        self.push_where(items, |_| true, ctx);
    }

    /// Sends frames to the sockets `to` picks, but a frame's `except_conn`.
    fn push_where(
        &mut self,
        items: &[Outgoing],
        to: impl Fn(u64) -> bool,
        ctx: &mut Context<Self>,
    ) {
        if items.is_empty() {
            return;
        }
        let limits = self.registry.limits;
        let mut too_slow = Vec::new();
        for (id, (addr, shared)) in self.conns.iter().filter(|(id, _)| to(**id)) {
            let frames: Vec<PushFrame> = items
                .iter()
                .filter(|o| o.except_conn != Some(*id))
                .map(|o| PushFrame {
                    frame: o.frame.clone(),
                    conversation_id: o.conversation_id,
                    seq: o.seq,
                })
                .collect();
            if frames.is_empty() {
                continue;
            }
            let bytes: usize = frames.iter().map(|f| f.frame.len()).sum();
            // Count before sending: `do_send` ignores mailbox capacity, and a
            // socket whose client stopped reading never drains its mailbox.
            let pending_frames = shared
                .pending_frames
                .fetch_add(frames.len(), Ordering::AcqRel)
                + frames.len();
            let pending_bytes = shared.pending_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
            if pending_frames > limits.max_pending_frames
                || pending_bytes > limits.max_pending_bytes
            {
                too_slow.push(*id);
                continue;
            }
            addr.push.do_send(Push { frames });
        }
        for id in too_slow {
            tracing::info!(
                user_id = self.user_id,
                conn_id = id,
                "disconnecting a client that cannot keep up"
            );
            self.kick(id, 1008, "too slow: cannot keep up", ctx);
        }
    }
}

/// A direct conversation was opened while online: this peer now hears of our
/// presence changes (and we of theirs, through their own session).
pub struct AddPeer {
    pub peer: i64,
}

impl Message for AddPeer {
    type Result = ();
}

impl Handler<AddPeer> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: AddPeer, ctx: &mut Self::Context) {
        if self.peers.contains(&msg.peer) {
            return;
        }
        self.peers.push(msg.peer);
        // A new peer who is online: this user's sockets learn it now, not at
        // the peer's next coming and going.
        if self.registry.is_online(msg.peer) || self.registry.online_elsewhere(msg.peer) {
            let frame = ServerFrame::Presence {
                user_id: msg.peer,
                online: true,
            }
            .encode();
            self.push(&Deliver::plain(frame).items, ctx);
        }
    }
}

/// Closes sockets: with 1008 on a ban (all) or logout (those of one token
/// session), with 1001 when the server stops (all).
pub struct CloseConns {
    pub token_session: Option<i64>,
    pub code: u16,
    pub reason: &'static str,
}

impl Message for CloseConns {
    type Result = ();
}

impl Handler<CloseConns> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: CloseConns, ctx: &mut Self::Context) {
        let ids: Vec<u64> = self
            .conns
            .values()
            .filter(|(_, s)| msg.token_session.is_none_or(|t| t == s.token_session))
            .map(|(_, s)| s.id)
            .collect();
        for id in ids {
            self.kick(id, msg.code, msg.reason, ctx);
        }
    }
}
