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

/// A node's end of the link.
pub struct NodeLink {
    pub node_id: u8,
    pub tx: mpsc::Sender<(To, Vec<u8>)>,
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
    let exchange = format!("{namespace}.node");
    channel
        .exchange_declare(
            &exchange,
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
    for to in [To::All, To::Node(node_id)] {
        channel
            .queue_bind(
                queue.name().as_str(),
                &exchange,
                &to.routing_key(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
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
    let (out_tx, out_rx) = mpsc::channel::<(To, Vec<u8>)>(LINK_BUFFER);
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
        node_id,
        tx: out_tx,
        rx: in_rx,
    })
}

async fn send_all(
    _conn: Arc<lapin::Connection>,
    channel: lapin::Channel,
    exchange: String,
    me: String,
    mut out: mpsc::Receiver<(To, Vec<u8>)>,
) {
    while let Some((to, body)) = out.recv().await {
        // Not persistent, not confirmed: best effort (see the module docs).
        let sent = channel
            .basic_publish(
                &exchange,
                &to.routing_key(),
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
        // A node gets its own messages to `all` back: skip them.
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
