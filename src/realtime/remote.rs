//! The registry's reach to other nodes: what it does for a local socket it
//! also sends to the nodes that hold the user's other sockets (frames), or to
//! every node (closes, presence peers, cache notices), batched, over the
//! best-effort node link (`runtime::nodelink`). Each node applies what it
//! hears to its own sockets only, so nothing is done twice.
//!
//! Where a user's sockets are: every node keeps a map user -> nodes
//! (`Presence`), fed by the others' `online` / `offline` messages and by a
//! full list of their users every `HEARTBEAT`; a node silent for
//! `NODE_TIMEOUT` (dead) is dropped from it, and a node that stops cleanly
//! says `gone`. A frame for a user no other node holds is not sent at all.
//! A frame sent while the map is behind (a socket opened a few ms ago
//! elsewhere) is missed there; best effort by design: a client syncs on
//! connect and on a `seq` gap.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use super::registry::Registry;
use super::session::{Deliver, Outgoing};
use crate::runtime::nodelink::{NodeLink, To};

/// How often a node sends the list of its users.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead.
const NODE_TIMEOUT: Duration = Duration::from_secs(15);

/// Messages held for the next flush; past it they drop (and are counted).
const MAX_PENDING: usize = 65_536;
/// Most messages in one broadcast.
const MAX_BATCH: usize = 2_048;
/// How long a message waits for others to share its broadcast.
const LINGER: Duration = Duration::from_millis(2);

#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum NodeMsg {
    /// Frames for one user's sockets.
    Deliver {
        user: i64,
        items: Vec<Frame>,
    },
    /// One frame for each of these users.
    Many {
        users: Vec<i64>,
        frame: String,
    },
    /// Close a user's sockets (all, or one token session's).
    Close {
        user: i64,
        session: Option<i64>,
        code: u16,
        reason: String,
    },
    /// A new direct pair: each hears of the other's presence.
    Peers {
        a: i64,
        b: i64,
    },
    /// Something other nodes cache changed (`topic` names the cache).
    Notice {
        topic: String,
        key: i64,
    },
    /// A user's first socket on `node` opened / its last one closed.
    Online {
        node: u8,
        user: i64,
    },
    Offline {
        node: u8,
        user: i64,
    },
    /// Every user with a socket on `node` (the heartbeat).
    Here {
        node: u8,
        users: Vec<i64>,
    },
    /// `node` is stopping.
    Gone {
        node: u8,
    },
}

#[derive(Serialize, Deserialize)]
pub struct Frame {
    pub frame: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conversation_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub continues: bool,
}

/// Which other nodes hold sockets of which users.
#[derive(Default)]
pub struct Presence {
    /// User -> bit per node (node ids are 0-15).
    nodes_of: dashmap::DashMap<i64, u16>,
    /// When each node was last heard from.
    heard: Mutex<[Option<std::time::Instant>; 16]>,
}

impl Presence {
    pub fn nodes_of(&self, user: i64) -> u16 {
        self.nodes_of.get(&user).map_or(0, |m| *m)
    }

    fn set(&self, node: u8, user: i64, on: bool) {
        let bit = 1u16 << (node & 15);
        if on {
            *self.nodes_of.entry(user).or_insert(0) |= bit;
        } else {
            self.nodes_of.remove_if_mut(&user, |_, m| {
                *m &= !bit;
                *m == 0
            });
        }
    }

    /// `node`'s users are exactly `users` now (`None`: it left).
    fn replace(&self, node: u8, users: Option<&[i64]>) {
        let bit = 1u16 << (node & 15);
        self.nodes_of.retain(|_, m| {
            *m &= !bit;
            *m != 0
        });
        for u in users.unwrap_or_default() {
            self.set(node, *u, true);
        }
    }

    fn heard_from(&self, node: u8) {
        self.heard.lock()[usize::from(node & 15)] = Some(std::time::Instant::now());
    }

    /// Forgets nodes silent for `NODE_TIMEOUT`.
    fn expire(&self) {
        let dead: Vec<u8> = {
            let mut heard = self.heard.lock();
            (0..16u8)
                .filter(|n| {
                    let i = usize::from(*n);
                    let silent = heard[i].is_some_and(|t| t.elapsed() > NODE_TIMEOUT);
                    if silent {
                        heard[i] = None;
                    }
                    silent
                })
                .collect()
        };
        for n in dead {
            tracing::warn!(node = n, "a node went silent; its sockets are forgotten");
            self.replace(n, None);
        }
    }
}

/// The sending half: a buffer that a task flushes, batched per destination.
pub struct Remote {
    node: u8,
    pending: Mutex<Vec<(To, NodeMsg)>>,
    wake: Notify,
    pub presence: Presence,
    pub dropped: std::sync::atomic::AtomicU64,
    /// The link's own state and counters.
    pub link: Arc<crate::runtime::nodelink::LinkStatus>,
}

impl Remote {
    pub fn send(&self, to: To, msg: NodeMsg) {
        let mut p = self.pending.lock();
        if p.len() >= MAX_PENDING {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        p.push((to, msg));
        if p.len() == 1 {
            self.wake.notify_one();
        }
    }

    /// The other nodes that hold sockets of `user`.
    fn nodes(&self, user: i64) -> impl Iterator<Item = u8> {
        let mask = self.presence.nodes_of(user) & !(1u16 << (self.node & 15));
        (0..16u8).filter(move |n| mask & (1 << n) != 0)
    }

    pub fn deliver(&self, user: i64, msg: &Deliver) {
        for node in self.nodes(user) {
            let items = msg
                .items
                .iter()
                .map(|o| Frame {
                    frame: o.frame.to_string(),
                    conversation_id: o.conversation_id,
                    seq: o.seq,
                    continues: o.continues,
                })
                .collect();
            self.send(To::Node(node), NodeMsg::Deliver { user, items });
        }
    }

    pub fn deliver_to_all(&self, users: &[i64], frame: &str) {
        let mut per_node: std::collections::HashMap<u8, Vec<i64>> = Default::default();
        for u in users {
            for node in self.nodes(*u) {
                per_node.entry(node).or_default().push(*u);
            }
        }
        for (node, users) in per_node {
            let frame = frame.to_owned();
            self.send(To::Node(node), NodeMsg::Many { users, frame });
        }
    }

    /// This node's first socket of `user` opened (`true`) or its last closed.
    pub fn here(&self, user: i64, online: bool) {
        let node = self.node;
        let msg = if online {
            NodeMsg::Online { node, user }
        } else {
            NodeMsg::Offline { node, user }
        };
        self.send(To::All, msg);
    }

    /// Is the user on another node?
    pub fn elsewhere(&self, user: i64) -> bool {
        self.nodes(user).next().is_some()
    }

    /// This node stops: the others forget its sockets now.
    pub fn leave(&self) {
        self.send(To::All, NodeMsg::Gone { node: self.node });
    }
}

/// Starts both halves on the link; the registry sends through the result.
pub fn start(registry: Arc<Registry>, link: NodeLink) -> Arc<Remote> {
    let remote = Arc::new(Remote {
        node: link.node_id,
        pending: Mutex::new(Vec::new()),
        wake: Notify::new(),
        presence: Presence::default(),
        dropped: Default::default(),
        link: link.status.clone(),
    });
    tokio::spawn(flush_all(remote.clone(), link.tx));
    tokio::spawn(apply_all(registry.clone(), remote.clone(), link.rx));
    tokio::spawn(heartbeat(registry, remote.clone()));
    remote
}

/// Every `HEARTBEAT`: this node's users to all, and silent nodes forgotten.
async fn heartbeat(registry: Arc<Registry>, remote: Arc<Remote>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let users = registry.local_users();
        remote.send(
            To::All,
            NodeMsg::Here {
                node: remote.node,
                users,
            },
        );
        remote.presence.expire();
    }
}

async fn flush_all(remote: Arc<Remote>, tx: mpsc::Sender<(To, Vec<u8>)>) {
    loop {
        remote.wake.notified().await;
        // Let a burst (a chat batch's members) gather into one message per node.
        tokio::time::sleep(LINGER).await;
        loop {
            let batch: Vec<(To, NodeMsg)> = {
                let mut p = remote.pending.lock();
                let n = p.len().min(MAX_BATCH);
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let mut per_dest: std::collections::HashMap<To, Vec<NodeMsg>> = Default::default();
            for (to, msg) in batch {
                per_dest.entry(to).or_default().push(msg);
            }
            for (to, msgs) in per_dest {
                send_batch(&remote, &tx, to, &msgs);
            }
        }
    }
}

fn send_batch(remote: &Remote, tx: &mpsc::Sender<(To, Vec<u8>)>, to: To, msgs: &[NodeMsg]) {
    let sent = serde_json::to_vec(msgs)
        .map_err(|e| tracing::error!(error = %e, "encoding a node message"))
        .and_then(|body| tx.try_send((to, body)).map_err(|_| ()));
    if sent.is_err() {
        remote
            .dropped
            .fetch_add(msgs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn apply_all(registry: Arc<Registry>, remote: Arc<Remote>, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(body) = rx.recv().await {
        let batch: Vec<NodeMsg> = match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "a node message this node cannot read");
                continue;
            }
        };
        for msg in batch {
            apply(&registry, &remote.presence, msg);
        }
    }
}

fn apply(registry: &Registry, presence: &Presence, msg: NodeMsg) {
    match msg {
        NodeMsg::Deliver { user, items } => {
            // The sender's socket (`except_conn`) is on the sending node:
            // here every socket of the user gets every frame.
            let items = items
                .into_iter()
                .map(|f| Outgoing {
                    frame: f.frame.into(),
                    conversation_id: f.conversation_id,
                    seq: f.seq,
                    continues: f.continues,
                    except_conn: None,
                })
                .collect();
            registry.deliver_here(user, Deliver { items });
        }
        NodeMsg::Many { users, frame } => {
            let frame: Arc<str> = frame.into();
            for u in users {
                registry.deliver_here(u, Deliver::plain(frame.clone()));
            }
        }
        NodeMsg::Close {
            user,
            session,
            code,
            reason,
        } => registry.close_here(user, session, code, close_reason(&reason)),
        NodeMsg::Peers { a, b } => registry.add_peers_here(a, b),
        NodeMsg::Notice { topic, key } => registry.noticed(&topic, key),
        NodeMsg::Online { node, user } => {
            presence.heard_from(node);
            presence.set(node, user, true);
        }
        NodeMsg::Offline { node, user } => {
            presence.heard_from(node);
            presence.set(node, user, false);
        }
        NodeMsg::Here { node, users } => {
            presence.heard_from(node);
            presence.replace(node, Some(&users));
        }
        NodeMsg::Gone { node } => presence.replace(node, None),
    }
}

/// Close reasons are a fixed set (`CloseConns` holds a `&'static str`).
fn close_reason(reason: &str) -> &'static str {
    match reason {
        "banned" => "banned",
        "session ended" => "session ended",
        "server shutting down" => "server shutting down",
        _ => "closed",
    }
}
