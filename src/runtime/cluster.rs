//! The node's place in a cluster: its id is its own, and exactly one node at
//! a time runs the singular jobs (timers, the outbox relay, the dead-letter
//! retrier, housekeeping).
//!
//! On PostgreSQL both are session advisory locks on one dedicated connection
//! (`storage::lease`): the node id is lock `node_id` of the namespace's lock
//! space, the leadership lock `LEADER_KEY`. A node that cannot take its id
//! refuses to start. Every node tries the leadership each `CHECK_EVERY`; the
//! leader checks each time that its connection (and so its lock) still lives
//! and stops leading the moment it does not. A dead leader's connection
//! closes with its process, so another node leads within about
//! `CHECK_EVERY`. The jobs' writes are guarded in the database anyway (an
//! order moves only from the status its actor saw), so the short overlap
//! while a leader that lost its connection notices is harmless.
//!
//! On SQLite there is one process: it always leads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::storage::lease::LockConn;

/// How often a node tries the leadership, and the leader checks its lock.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The leadership's lock key (node ids are 0-15).
const LEADER_KEY: i32 = 1_000;
/// How long a starting node waits for its id to come free: a predecessor
/// killed a moment ago holds it until PostgreSQL has noticed its closed
/// connection (quick, but not instant on a busy server); a live node holds
/// it for good.
const CLAIM_WITHIN: Duration = Duration::from_secs(5);
/// How long a node whose id another node took waits between attempts to
/// take it back (it keeps serving, never leading, until it does).
const RETAKE_EVERY: Duration = Duration::from_secs(5);

/// Whether this node runs the singular jobs now. Cheap to clone and read:
/// each job reads it at every tick.
#[derive(Clone)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// The only process there is (SQLite, or a test): always the leader.
    pub fn sole() -> Self {
        Leadership(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, leading: bool) {
        let was = self.0.swap(leading, Ordering::AcqRel);
        if was != leading {
            tracing::info!(leading, "cluster leadership changed");
        }
    }
}

/// Claims `node_id` and starts competing for the leadership; fails (for a
/// clear refusal to start) when a live node of the same namespace holds the id.
pub fn join(url: &str, namespace: &str, node_id: u8) -> anyhow::Result<Leadership> {
    let mut conn = LockConn::open(url, namespace)?;
    let deadline = std::time::Instant::now() + CLAIM_WITHIN;
    while !conn.try_take(i32::from(node_id))? {
        if std::time::Instant::now() < deadline {
            std::thread::sleep(CHECK_EVERY / 2);
            continue;
        }
        anyhow::bail!(
            "TANDEM_NODE_ID {node_id} is held by another live node of namespace \
             {namespace:?}: give every node its own id (0-15)"
        );
    }
    let leadership = Leadership(Arc::new(AtomicBool::new(false)));
    // Try once now, so a single node leads from its first tick.
    leadership.set(conn.try_take(LEADER_KEY).unwrap_or(false));
    let watch = leadership.clone();
    let (url, namespace) = (url.to_owned(), namespace.to_owned());
    std::thread::Builder::new()
        .name("cluster-lease".into())
        .spawn(move || keep(conn, &url, &namespace, node_id, &watch))?;
    Ok(leadership)
}

/// The lease thread: holds the connection (and its locks) for the process's
/// life; reconnects and takes the node id again if the connection breaks.
/// A node without its id never leads. Each trouble is logged when it
/// starts and when it ends, not at every attempt.
fn keep(mut conn: LockConn, url: &str, namespace: &str, node_id: u8, leadership: &Leadership) {
    let mut id_held = true;
    // Another live node took the id while this one was cut off.
    let mut id_taken = false;
    let mut unreachable = false;
    loop {
        std::thread::sleep(if id_taken { RETAKE_EVERY } else { CHECK_EVERY });
        if !conn.alive() {
            // The locks went with the connection: lead no more until retaken.
            leadership.set(false);
            if id_held {
                tracing::warn!("the cluster lock connection broke; reconnecting");
            }
            id_held = false;
            match LockConn::open(url, namespace) {
                Ok(c) => conn = c,
                Err(e) => {
                    if !unreachable {
                        tracing::warn!(error = %e, "cannot reach PostgreSQL for the cluster locks; retrying");
                    }
                    unreachable = true;
                    continue;
                }
            }
            unreachable = false;
        }
        if !id_held {
            match conn.try_take(i32::from(node_id)) {
                Ok(true) => {
                    if id_taken {
                        tracing::info!(node_id, "this node holds its id again");
                    }
                    (id_held, id_taken) = (true, false);
                }
                Ok(false) => {
                    if !id_taken {
                        tracing::error!(
                            node_id,
                            "another live node took this node's id while it was cut off: \
                             this node serves but never leads until the id is free; \
                             give every node its own TANDEM_NODE_ID"
                        );
                    }
                    id_taken = true;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "taking the node id again");
                    continue;
                }
            }
        }
        if !leadership.is_leader() {
            match conn.try_take(LEADER_KEY) {
                Ok(taken) => leadership.set(taken),
                Err(e) => tracing::warn!(error = %e, "trying the cluster leadership"),
            }
        }
    }
}
