//! The nodes' broadcast link: best-effort messages from one node to every
//! other node of the cluster (frames for sockets held elsewhere, socket
//! closes, cache invalidations).
//!
//! Over RabbitMQ: a fanout exchange `<namespace>.nodes`, and per node an
//! exclusive, auto-deleted queue bound to it, consumed without acks. A node
//! that dies takes its queue with it; frames sent meanwhile are dropped. That
//! is by design: a chat frame is only a hint that the database has something
//! new, and a client that misses one sees a `seq` gap (or reconnects) and
//! syncs from the database. Nothing that must not be lost goes this way.
//!
//! Why RabbitMQ and not Redis pub/sub: the broker is already the cluster's
//! transport for events, its per-node queue buffers a short stall of a busy
//! node instead of dropping at once, and a dead node's queue disappears with
//! its connection. Both are best-effort; either would do.

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

/// A node's end of the link: what it sends reaches every other node.
pub struct NodeLink {
    pub tx: mpsc::Sender<Vec<u8>>,
    pub rx: mpsc::Receiver<Vec<u8>>,
}

/// Opens the link on its own connection (a busy link never stalls events).
pub async fn open(url: &str, namespace: &str, node_id: u8) -> anyhow::Result<NodeLink> {
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()),
    )
    .await
    .context("connecting to RabbitMQ timed out")?
    .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    let exchange = format!("{namespace}.nodes");
    channel
        .exchange_declare(
            &exchange,
            ExchangeKind::Fanout,
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
    channel
        .queue_bind(
            queue.name().as_str(),
            &exchange,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer = channel
        .basic_consume(
            queue.name().as_str(),
            &format!("node-{node_id}"),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let me = node_id.to_string();
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(LINK_BUFFER);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(LINK_BUFFER);
    let conn = Arc::new(conn);
    tokio::spawn(send_all(
        conn.clone(),
        channel,
        exchange,
        me.clone(),
        out_rx,
    ));
    tokio::spawn(receive_all(conn, consumer, me, in_tx));
    Ok(NodeLink {
        tx: out_tx,
        rx: in_rx,
    })
}

async fn send_all(
    _conn: Arc<lapin::Connection>,
    channel: lapin::Channel,
    exchange: String,
    me: String,
    mut out: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(body) = out.recv().await {
        // Not persistent, not confirmed: best effort (see the module docs).
        let sent = channel
            .basic_publish(
                &exchange,
                "",
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_app_id(me.as_str().into()),
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "the node link cannot send; frames for other nodes drop");
        }
    }
}

async fn receive_all(
    _conn: Arc<lapin::Connection>,
    mut consumer: lapin::Consumer,
    me: String,
    into: mpsc::Sender<Vec<u8>>,
) {
    while let Some(item) = consumer.next().await {
        let delivery = match item {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "the node link's consumer failed");
                break;
            }
        };
        // Every node gets its own broadcasts back from a fanout: skip them.
        let from_me = delivery
            .properties
            .app_id()
            .as_ref()
            .is_some_and(|a| a.as_str() == me);
        if from_me {
            continue;
        }
        if into.try_send(delivery.data).is_err() {
            tracing::warn!("the node link's inbox is full; a message from another node dropped");
        }
    }
}
