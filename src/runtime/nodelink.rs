//! The nodes' link: best-effort messages from one node to one other node
//! (frames for the sockets it holds) or to all of them (socket closes,
//! presence, cache invalidations).
//!
//! Over RabbitMQ: a direct exchange `<namespace>.node`, and per node an
//! exclusive, auto-deleted queue bound to it with the keys `all` and
//! `node.<id>`, consumed without acks. A node
//! that dies takes its queue with it; frames sent meanwhile are dropped. That
//! is by design: a chat frame is only a hint that the database has something
//! new, and a client that misses one sees a `seq` gap (or reconnects) and
//! syncs from the database. Nothing that must not be lost goes this way.
//!
//! Why RabbitMQ and not Redis pub/sub: the broker is already the cluster's
//! transport for events, its per-node queue buffers a short stall of a busy
//! node instead of dropping at once, and a dead node's queue disappears with
//! its connection. Both are best-effort; either would do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use tokio::sync::mpsc;

/// Messages waiting to go out (each a batch of the registry's), and
/// received ones waiting to be applied. Past either bound, messages drop.
pub const LINK_BUFFER: usize = 4_096;

/// Where a message goes: every other node, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum To {
    All,
    Node(u8),
}

impl To {
    fn routing_key(self) -> String {
        match self {
            To::All => "all".to_owned(),
            To::Node(n) => format!("node.{n}"),
        }
    }
}

/// First wait before reconnecting a broken link; doubles up to `RECONNECT_MAX`.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// A link that stayed open this long broke for a new reason: its next
/// reconnect waits only `RECONNECT_MIN`.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Longest one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A node's end of the link.
pub struct NodeLink {
    pub node_id: u8,
    pub tx: mpsc::Sender<(To, Vec<u8>)>,
    pub rx: mpsc::Receiver<Vec<u8>>,
    /// How the link is doing, for `/metrics`.
    pub status: Arc<LinkStatus>,
}

/// Counters of one node's link.
#[derive(Default)]
pub struct LinkStatus {
    /// Whether the link is connected now.
    pub up: AtomicBool,
    /// Times it broke and was opened again.
    pub reconnects: AtomicU64,
    /// Messages dropped while it was down or failed to send.
    pub dropped: AtomicU64,
}

/// One open connection of the link.
struct Connected {
    _conn: lapin::Connection,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
}

/// Where the link connects, and as whom.
#[derive(Clone)]
struct Endpoint {
    url: String,
    exchange: String,
    node_id: u8,
    name: String,
}

/// Opens the link on its own connection (a busy link never stalls events).
/// The first connection must succeed; when one breaks later (the broker
/// restarted, a network cut), the link connects again with backoff, and
/// what is sent meanwhile drops (see the module docs: clients sync).
pub async fn open(url: &str, namespace: &str, node_id: u8) -> anyhow::Result<NodeLink> {
    let at = Endpoint {
        url: url.to_owned(),
        exchange: format!("{namespace}.node"),
        node_id,
        name: format!("{namespace}-node-link-{node_id}"),
    };
    let first = connect(&at).await?;
    let (out_tx, out_rx) = mpsc::channel::<(To, Vec<u8>)>(LINK_BUFFER);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(LINK_BUFFER);
    let status = Arc::new(LinkStatus::default());
    status.up.store(true, Ordering::Relaxed);
    tokio::spawn(keep_open(at, first, out_rx, in_tx, status.clone()));
    Ok(NodeLink {
        node_id,
        tx: out_tx,
        rx: in_rx,
        status,
    })
}

/// Connects, declares the exchange and this node's queue, and consumes it,
/// all within `CONNECT_TIMEOUT` (a broker that accepts the connection and
/// then stalls must not hang the link).
async fn connect(at: &Endpoint) -> anyhow::Result<Connected> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_unbounded(at))
        .await
        .context("opening the node link timed out")?
}

async fn connect_unbounded(at: &Endpoint) -> anyhow::Result<Connected> {
    // The name shows in the broker's connection list (an operator, or a
    // test, can tell the link from the event bus).
    let props = lapin::ConnectionProperties::default().with_connection_name(at.name.clone().into());
    let conn = lapin::Connection::connect(&at.url, props)
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            &at.exchange,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let queue = channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for to in [To::All, To::Node(at.node_id)] {
        channel
            .queue_bind(
                queue.name().as_str(),
                &at.exchange,
                &to.routing_key(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let consumer = channel
        .basic_consume(
            queue.name().as_str(),
            &format!("node-{}", at.node_id),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(Connected {
        _conn: conn,
        channel,
        consumer,
    })
}

/// Serves the link until the node stops, reconnecting whenever it breaks.
async fn keep_open(
    at: Endpoint,
    first: Connected,
    mut out: mpsc::Receiver<(To, Vec<u8>)>,
    into: mpsc::Sender<Vec<u8>>,
    status: Arc<LinkStatus>,
) {
    let mut open = Some(first);
    let mut wait = RECONNECT_MIN;
    loop {
        let connected = match open.take() {
            Some(c) => c,
            None => match connect(&at).await {
                Ok(c) => {
                    tracing::info!("the node link is open again");
                    status.reconnects.fetch_add(1, Ordering::Relaxed);
                    status.up.store(true, Ordering::Relaxed);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "the node link cannot connect");
                    if drop_for(wait, &mut out, &status).await.is_break() {
                        return;
                    }
                    wait = (wait * 2).min(RECONNECT_MAX);
                    continue;
                }
            },
        };
        let opened_at = tokio::time::Instant::now();
        match serve(&at, connected, &mut out, &into).await {
            Ok(()) => return,
            Err(e) => {
                status.up.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "the node link broke; frames for other nodes drop until it is open again");
            }
        }
        // A link that broke at once (a flapping broker) backs off further;
        // one that held a while starts over from the shortest wait.
        wait = if opened_at.elapsed() >= STABLE_AFTER {
            RECONNECT_MIN
        } else {
            (wait * 2).min(RECONNECT_MAX)
        };
        if drop_for(wait, &mut out, &status).await.is_break() {
            return;
        }
    }
}

/// Drops what is sent for `wait` (nothing can carry it); `Break` when the node stops.
async fn drop_for(
    wait: Duration,
    out: &mut mpsc::Receiver<(To, Vec<u8>)>,
    status: &LinkStatus,
) -> std::ops::ControlFlow<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, out.recv()).await {
            Err(_) => return std::ops::ControlFlow::Continue(()),
            Ok(None) => return std::ops::ControlFlow::Break(()),
            Ok(Some(_)) => {
                status.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends and receives on one connection; `Ok` when the node stops, `Err` when it breaks.
async fn serve(
    at: &Endpoint,
    mut c: Connected,
    out: &mut mpsc::Receiver<(To, Vec<u8>)>,
    into: &mpsc::Sender<Vec<u8>>,
) -> anyhow::Result<()> {
    let me = at.node_id.to_string();
    loop {
        // Both arms are cancel-safe: a message is either taken whole or left
        // in its channel or stream for the next turn.
        tokio::select! {
            next = out.recv() => {
                let Some((to, body)) = next else { return Ok(()) };
                // Not persistent, not confirmed: best effort (see the module docs).
                c.channel
                    .basic_publish(
                        &at.exchange,
                        &to.routing_key(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_app_id(me.as_str().into()),
                    )
                    .await
                    .context("publishing on the node link")?;
            }
            item = c.consumer.next() => {
                let delivery = item.context("the node link's consumer ended")?.context("the node link's consumer failed")?;
                // A node gets its own messages to `all` back: skip them.
                let from_me = delivery
                    .properties
                    .app_id()
                    .as_ref()
                    .is_some_and(|a| a.as_str() == me);
                if !from_me && into.try_send(delivery.data).is_err() {
                    tracing::warn!("the node link's inbox is full; a message from another node dropped");
                }
            }
        }
    }
}
