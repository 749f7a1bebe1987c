//! The registry's reach to other nodes: what it does for a local socket it
//! also tells every other node (frames, closes, presence peers), batched,
//! over the best-effort node link (`runtime::nodelink`). Each node applies
//! what it hears to its own sockets only, so nothing is done twice.
//!
//! Every node hears every message (a broadcast, filtered by the receiving
//! node's own sessions): simple, and bounded by the 16 nodes a cluster may
//! have. Best effort: a lost frame is a `seq` gap the client syncs.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use super::registry::Registry;
use super::session::{Deliver, Outgoing};
use crate::runtime::nodelink::NodeLink;

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
    Deliver { user: i64, items: Vec<Frame> },
    /// One frame for each of these users.
    Many { users: Vec<i64>, frame: String },
    /// Close a user's sockets (all, or one token session's).
    Close {
        user: i64,
        session: Option<i64>,
        code: u16,
        reason: String,
    },
    /// A new direct pair: each hears of the other's presence.
    Peers { a: i64, b: i64 },
    /// Something other nodes cache changed (`topic` names the cache).
    Notice { topic: String, key: i64 },
}

#[derive(Serialize, Deserialize)]
pub struct Frame {
    pub frame: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conversation_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<i64>,
}

/// The sending half: a buffer that a task flushes as broadcasts.
pub struct Remote {
    pending: Mutex<Vec<NodeMsg>>,
    wake: Notify,
    pub dropped: std::sync::atomic::AtomicU64,
}

impl Remote {
    pub fn send(&self, msg: NodeMsg) {
        let mut p = self.pending.lock();
        if p.len() >= MAX_PENDING {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        p.push(msg);
        if p.len() == 1 {
            self.wake.notify_one();
        }
    }

    pub fn deliver(&self, user: i64, msg: &Deliver) {
        let items = msg
            .items
            .iter()
            .map(|o| Frame {
                frame: o.frame.to_string(),
                conversation_id: o.conversation_id,
                seq: o.seq,
            })
            .collect();
        self.send(NodeMsg::Deliver { user, items });
    }
}

/// Starts both halves on the link; the registry sends through the result.
pub fn start(registry: Arc<Registry>, link: NodeLink) -> Arc<Remote> {
    let remote = Arc::new(Remote {
        pending: Mutex::new(Vec::new()),
        wake: Notify::new(),
        dropped: Default::default(),
    });
    tokio::spawn(flush_all(remote.clone(), link.tx));
    tokio::spawn(apply_all(registry, link.rx));
    remote
}

async fn flush_all(remote: Arc<Remote>, tx: mpsc::Sender<Vec<u8>>) {
    loop {
        remote.wake.notified().await;
        // Let a burst (a chat batch's members) gather into one broadcast.
        tokio::time::sleep(LINGER).await;
        loop {
            let batch: Vec<NodeMsg> = {
                let mut p = remote.pending.lock();
                let n = p.len().min(MAX_BATCH);
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let body = match serde_json::to_vec(&batch) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "encoding a node broadcast");
                    continue;
                }
            };
            if tx.try_send(body).is_err() {
                remote
                    .dropped
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

async fn apply_all(registry: Arc<Registry>, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(body) = rx.recv().await {
        let batch: Vec<NodeMsg> = match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "a node broadcast this node cannot read");
                continue;
            }
        };
        for msg in batch {
            apply(&registry, msg);
        }
    }
}

fn apply(registry: &Registry, msg: NodeMsg) {
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
