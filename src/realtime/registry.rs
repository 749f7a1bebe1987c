//! Session registry: user id -> that user's session actor, while online.
//!
//! Concurrency: attach (a socket opens) and the session's own retirement
//! (its last socket closed) both run under the DashMap shard lock of the
//! user's entry, and share one connection counter. A session retires only if
//! the counter is still zero under that lock, so a socket that attaches at
//! the same moment is never handed to a session that is about to stop.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, Addr};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::session::{AddPeer, Attach, CloseConns, Deliver, Detach, UserSession};
use super::socket::SocketAddr;
use crate::core::error::ApiError;
use crate::runtime::nodelink::To;

/// What a session and the registry know about one socket, readable without
/// going through the socket's actor (which stalls while its writes are jammed).
pub struct ConnShared {
    pub id: u64,
    pub user_id: i64,
    /// The token session the socket was opened with (logout closes it).
    pub token_session: i64,
    pub last_seen_ms: AtomicI64,
    /// Frames handed to the socket actor and not yet written by it.
    pub pending_frames: AtomicUsize,
    pub pending_bytes: AtomicUsize,
}

struct SessionEntry {
    addr: Addr<UserSession>,
    conns: Arc<AtomicUsize>,
}

/// Bounds every socket lives by.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub idle_timeout_ms: i64,
    pub max_pending_frames: usize,
    pub max_pending_bytes: usize,
}

/// Who hears of a user coming online and going: supplied by the domain that
/// knows (chat: the user's direct-conversation peers). Realtime knows no
/// domain; the server plugs the source in at start.
#[async_trait::async_trait]
pub trait PresencePeers: Send + Sync {
    async fn peers_of(&self, user_id: i64) -> Result<Vec<i64>, ApiError>;
}

/// Something a node caches changed elsewhere: `key` of the cache `topic`.
pub type NoticeHandler = Arc<dyn Fn(i64) + Send + Sync>;

pub struct Registry {
    sessions: DashMap<i64, SessionEntry>,
    next_conn_id: AtomicU64,
    pub limits: SocketLimits,
    peers: std::sync::OnceLock<Arc<dyn PresencePeers>>,
    /// The other nodes of a cluster (none on a single node).
    remote: std::sync::OnceLock<Arc<super::remote::Remote>>,
    /// Who follows which cache notices (set at start, read per notice).
    notices: parking_lot::RwLock<Vec<(&'static str, NoticeHandler)>>,
    /// Live frames dropped because a later seq had left before them (see `reorder`).
    late_frames: AtomicU64,
    /// Notification kinds each user turned off (only users who turned one
    /// off): `notification` frames of those kinds are not pushed. Filled and
    /// kept by the notifications' owner.
    quiet_kinds: DashMap<i64, Arc<Vec<String>>>,
}

impl Registry {
    pub fn new(limits: SocketLimits) -> Self {
        Registry {
            sessions: DashMap::new(),
            next_conn_id: AtomicU64::new(0),
            limits,
            peers: std::sync::OnceLock::new(),
            remote: std::sync::OnceLock::new(),
            notices: parking_lot::RwLock::new(Vec::new()),
            late_frames: AtomicU64::new(0),
            quiet_kinds: DashMap::new(),
        }
    }

    /// The notification kinds `user_id` turned off (empty: none).
    pub fn set_quiet_kinds(&self, user_id: i64, kinds: Vec<String>) {
        if kinds.is_empty() {
            self.quiet_kinds.remove(&user_id);
        } else {
            self.quiet_kinds.insert(user_id, Arc::new(kinds));
        }
    }

    /// Whether `user_id` wants `notification` frames of `kind` pushed.
    pub fn wants_notification(&self, user_id: i64, kind: &str) -> bool {
        self.quiet_kinds
            .get(&user_id)
            .is_none_or(|off| !off.iter().any(|k| k == kind))
    }

    /// Joins the other nodes of a cluster over `link` (once, at start):
    /// from now on frames, closes and notices reach their sockets too.
    pub fn link(self: &Arc<Self>, link: crate::runtime::nodelink::NodeLink) {
        let _ = self.remote.set(super::remote::start(self.clone(), link));
    }

    /// Is this node one of several (frames may arrive out of order)?
    pub fn clustered(&self) -> bool {
        self.remote.get().is_some()
    }

    pub(super) fn count_late_frames(&self, n: usize) {
        if n > 0 {
            self.late_frames.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Live frames dropped because their predecessor's wait had ended (the
    /// clients sync them).
    pub fn late_frames(&self) -> u64 {
        self.late_frames.load(Ordering::Relaxed)
    }

    /// Messages for other nodes dropped because the link could not keep up.
    pub fn remote_dropped(&self) -> u64 {
        self.remote.get().map_or(0, |r| {
            r.dropped.load(Ordering::Relaxed) + r.link.dropped.load(Ordering::Relaxed)
        })
    }

    /// The node link's state: (connected now, times reopened); `None` on one node.
    pub fn link_status(&self) -> Option<(bool, u64)> {
        self.remote.get().map(|r| {
            (
                r.link.up.load(Ordering::Relaxed),
                r.link.reconnects.load(Ordering::Relaxed),
            )
        })
    }

    /// Calls `handler` with the key of every `topic` notice, from this node
    /// or another (a cache to forget).
    pub fn on_notice(&self, topic: &'static str, handler: NoticeHandler) {
        self.notices.write().push((topic, handler));
    }

    /// Tells this node and every other one that `key` of `topic` changed.
    pub fn notice(&self, topic: &'static str, key: i64) {
        self.notice_others(topic, key);
        self.noticed(topic, key);
    }

    /// Tells only the other nodes (this one knows already).
    pub fn notice_others(&self, topic: &'static str, key: i64) {
        if let Some(r) = self.remote.get() {
            r.send(
                To::All,
                super::remote::NodeMsg::Notice {
                    topic: topic.to_owned(),
                    key,
                },
            );
        }
    }

    pub(super) fn noticed(&self, topic: &str, key: i64) {
        let handlers: Vec<NoticeHandler> = self
            .notices
            .read()
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, h)| h.clone())
            .collect();
        for h in handlers {
            h(key);
        }
    }

    /// Plugs in who hears of presence (once, at start; without it nobody does).
    pub fn set_presence_peers(&self, peers: Arc<dyn PresencePeers>) {
        let _ = self.peers.set(peers);
    }

    pub(super) fn presence_peers(&self) -> Option<Arc<dyn PresencePeers>> {
        self.peers.get().cloned()
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Hands a new socket to the user's session, starting one if needed.
    pub fn attach(self: &Arc<Self>, conn: SocketAddr, shared: Arc<ConnShared>) {
        let user_id = shared.user_id;
        match self.sessions.entry(user_id) {
            Entry::Occupied(e) => {
                e.get().conns.fetch_add(1, Ordering::AcqRel);
                e.get().addr.do_send(Attach { conn, shared });
            }
            Entry::Vacant(v) => {
                let conns = Arc::new(AtomicUsize::new(1));
                let addr =
                    UserSession::new(user_id, self.clone(), conns.clone(), conn, shared).start();
                v.insert(SessionEntry { addr, conns });
                if let Some(r) = self.remote.get() {
                    r.here(user_id, true);
                }
            }
        }
    }

    pub fn detach(&self, user_id: i64, conn_id: u64) {
        if let Some(e) = self.sessions.get(&user_id) {
            e.addr.do_send(Detach { conn_id });
        }
    }

    /// Called by a session whose counter reached zero; true if it may stop.
    pub fn retire(&self, user_id: i64, addr: &Addr<UserSession>) -> bool {
        let retired = self
            .sessions
            .remove_if(&user_id, |_, e| {
                e.addr == *addr && e.conns.load(Ordering::Acquire) == 0
            })
            .is_some();
        if let (true, Some(r)) = (retired, self.remote.get()) {
            r.here(user_id, false);
        }
        retired
    }

    /// Has the user a socket on another node? (A session that closes here
    /// says `offline` only if not.)
    pub fn online_elsewhere(&self, user_id: i64) -> bool {
        self.remote.get().is_some_and(|r| r.elsewhere(user_id))
    }

    /// Users with a socket on this node.
    pub fn local_users(&self) -> Vec<i64> {
        self.sessions.iter().map(|e| *e.key()).collect()
    }

    /// Pushes frames to every socket of the user, on every node.
    pub fn deliver(&self, user_id: i64, msg: Deliver) {
        if let Some(r) = self.remote.get() {
            r.deliver(user_id, &msg);
        }
        self.deliver_here(user_id, msg);
    }

    /// Pushes one frame to every socket of each of `users`, on every node.
    pub fn deliver_to_all(&self, users: &[i64], frame: Arc<str>) {
        if let Some(r) = self.remote.get() {
            r.deliver_to_all(users, &frame);
        }
        for u in users {
            self.deliver_here(*u, Deliver::plain(frame.clone()));
        }
    }

    /// Pushes to this node's sockets of the user, if any.
    pub(super) fn deliver_here(&self, user_id: i64, msg: Deliver) {
        if let Some(e) = self.sessions.get(&user_id) {
            e.addr.do_send(msg);
        }
    }

    /// Records a new direct-conversation pair in both sessions, on every node.
    pub fn add_peers(&self, a: i64, b: i64) {
        if let Some(r) = self.remote.get() {
            r.send(To::All, super::remote::NodeMsg::Peers { a, b });
        }
        self.add_peers_here(a, b);
    }

    pub(super) fn add_peers_here(&self, a: i64, b: i64) {
        for (user, peer) in [(a, b), (b, a)] {
            if let Some(e) = self.sessions.get(&user) {
                e.addr.do_send(AddPeer { peer });
            }
        }
    }

    pub fn is_online(&self, user_id: i64) -> bool {
        self.sessions.contains_key(&user_id)
    }

    pub fn online_users(&self) -> usize {
        self.sessions.len()
    }

    /// Closes the user's sockets with 1008 and `reason`, on every node: all
    /// of them (a ban, `banned`) or those opened with one token session (a
    /// logout).
    pub fn close_user(&self, user_id: i64, token_session: Option<i64>, reason: &'static str) {
        if let Some(r) = self.remote.get() {
            r.send(
                To::All,
                super::remote::NodeMsg::Close {
                    user: user_id,
                    session: token_session,
                    code: 1008,
                    reason: reason.to_owned(),
                },
            );
        }
        self.close_here(user_id, token_session, 1008, reason);
    }

    pub(super) fn close_here(
        &self,
        user_id: i64,
        token_session: Option<i64>,
        code: u16,
        reason: &'static str,
    ) {
        if let Some(e) = self.sessions.get(&user_id) {
            e.addr.do_send(CloseConns {
                token_session,
                code,
                reason,
            });
        }
    }

    /// Closes every socket with 1001 (going away): the server is stopping,
    /// and clients should reconnect (to another node, or to this one once it
    /// is back) and sync.
    pub fn close_all(&self) {
        if let Some(r) = self.remote.get() {
            r.leave();
        }
        for e in self.sessions.iter() {
            e.addr.do_send(CloseConns {
                token_session: None,
                code: 1001,
                reason: "server shutting down",
            });
        }
    }
}
