//! The event bus on RabbitMQ, through lapin: durable topic exchanges,
//! persistent messages, publisher confirms, consumer acks with a prefetch bound.
//!
//! **Events travel in batches.** A publish sends one message per event kind
//! and at most [`EVENTS_PER_MESSAGE`] events (the routing key is the kind,
//! the body a JSON array of events in id order) to the exchange
//! `<namespace>.event-batches`. The broker's work is per message (a
//! persistent, confirmed message costs it about as much as a small one), and
//! the lifecycle of an order writes about three events: one message each made
//! RabbitMQ a third of the server's CPU under `orders` on PostgreSQL
//! (BENCHMARKS, sixteenth session). A consumer queue is
//! `<exchange>.<name>`, bound with the consumer's patterns.
//!
//! **Rolling upgrades.** Versions before batches published one event per
//! message to `<namespace>.events` and consumed queues bound there. Such a
//! node may still lead (and relay) while others are upgraded, so every
//! subscription here also consumes its legacy queue `<namespace>.events.<name>`,
//! bound with the same patterns. An older node never receives a batch (it
//! would drop what it cannot decode): batches go only to the new exchange.
//! Both queues take either body.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use tokio::sync::mpsc;

use super::{Acker, Delivery, Event, EventBus, Subscription, SUBSCRIPTION_BUFFER};

/// Most events in one broker message (all of one kind). 64 small events are
/// a few KB; more would gain little, since a relay round's events already
/// travel in a handful of messages.
pub const EVENTS_PER_MESSAGE: usize = 64;
/// Unacknowledged messages a batch queue's consumer may hold. Messages, not
/// events: at light load a message carries one or two events, and the
/// consumers apply up to a few hundred at once. At most 16,384 events
/// (about 5 MB) wait in the client's buffer when every message is full.
const BATCH_PREFETCH: usize = 256;
/// How long connecting to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RabbitBus {
    url: String,
    /// Where batches are published: `<namespace>.event-batches`.
    exchange: String,
    /// Where versions before batches published single events: `<namespace>.events`.
    legacy_exchange: String,
    /// Current connection and publishing channel; replaced when it breaks.
    state: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

impl RabbitBus {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Arc<Self>> {
        let bus = Arc::new(RabbitBus {
            url: url.to_owned(),
            exchange: format!("{namespace}.event-batches"),
            legacy_exchange: format!("{namespace}.events"),
            state: tokio::sync::Mutex::new(None),
        });
        bus.channel().await?;
        Ok(bus)
    }

    async fn connection(&self) -> anyhow::Result<lapin::Connection> {
        let props = lapin::ConnectionProperties::default();
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            lapin::Connection::connect(&self.url, props),
        )
        .await
        .context("connecting to RabbitMQ timed out")?
        .context("connecting to RabbitMQ")
    }

    /// A new channel on `conn` with both exchanges declared.
    async fn open_channel(&self, conn: &lapin::Connection) -> anyhow::Result<lapin::Channel> {
        let channel = conn.create_channel().await?;
        for exchange in [&self.exchange, &self.legacy_exchange] {
            let options = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .exchange_declare(
                    exchange,
                    ExchangeKind::Topic,
                    options,
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(channel)
    }

    /// The publishing channel (confirms on), reconnecting if the old one broke.
    async fn channel(&self) -> anyhow::Result<lapin::Channel> {
        let mut state = self.state.lock().await;
        if let Some((conn, ch)) = state.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let conn = self.connection().await?;
        let ch = self.open_channel(&conn).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *state = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// The two queues of a subscription: on the batch exchange, then the legacy one.
    fn queues(&self, name: &str) -> [String; 2] {
        [
            format!("{}.{name}", self.exchange),
            format!("{}.{name}", self.legacy_exchange),
        ]
    }
}

/// The events as broker messages: grouped by kind (a message has one routing
/// key), in their order within a kind, at most `per_message` to a message.
pub fn batches(events: &[Event], per_message: usize) -> Vec<Vec<&Event>> {
    let mut by_kind: Vec<(&str, Vec<&Event>)> = Vec::new();
    for event in events {
        match by_kind.iter_mut().find(|(kind, _)| *kind == event.kind) {
            Some((_, list)) => list.push(event),
            None => by_kind.push((&event.kind, vec![event])),
        }
    }
    let per_message = per_message.max(1);
    by_kind
        .into_iter()
        .flat_map(|(_, list)| {
            list.chunks(per_message)
                .map(<[&Event]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A message body: a batch (a JSON array), or one event as versions before
/// batches published it. An element that is not an event is dropped with
/// an error line; the others are delivered.
fn decode(body: &[u8]) -> serde_json::Result<Vec<Event>> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return serde_json::from_slice(body).map(|e| vec![e]);
    }
    let elements: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    Ok(elements
        .into_iter()
        .filter_map(|v| match serde_json::from_value(v) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::error!(error = %e, "dropping an undecodable event of a batch");
                None
            }
        })
        .collect())
}

#[async_trait]
impl EventBus for RabbitBus {
    fn backend(&self) -> &'static str {
        "rabbitmq"
    }

    async fn ping(&self) -> anyhow::Result<()> {
        self.channel().await.map(|_| ())
    }

    async fn publish(&self, events: &[Event]) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        // Pipelined: send all, then await the confirms together.
        let mut confirms = Vec::new();
        for batch in batches(events, EVENTS_PER_MESSAGE) {
            let first = batch[0];
            let body = serde_json::to_vec(&batch)?;
            let confirm = channel
                .basic_publish(
                    &self.exchange,
                    &first.kind,
                    // Not `mandatory`: an event no queue is bound for has no
                    // consumer, so there is nothing to retry, and a returned
                    // message costs the broker a copy back and lapin a WARN
                    // line each (order.created and rebate.* under the orders
                    // load). Consumers' queues are durable and bound at start,
                    // before the relay publishes (`EventBus::prepare`).
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into())
                        .with_message_id(first.id.to_string().into()),
                )
                .await?;
            confirms.push((first.id, confirm));
        }
        for (id, confirm) in confirms {
            match confirm.await? {
                lapin::publisher_confirm::Confirmation::Ack(_) => {}
                lapin::publisher_confirm::Confirmation::Nack(_) => {
                    anyhow::bail!("broker refused the events from {id}")
                }
                lapin::publisher_confirm::Confirmation::NotRequested => {
                    anyhow::bail!("publisher confirms are not enabled")
                }
            }
        }
        Ok(())
    }

    async fn retire(&self, name: &str, patterns: &[&str]) -> anyhow::Result<()> {
        if patterns.is_empty() {
            return Ok(());
        }
        // A connection of its own, closed after: an error closes the channel
        // it happens on, and the publishing one should not go with it.
        let conn = self.connection().await?;
        let result = self.unbind(&conn, name, patterns).await;
        close(&conn).await;
        result
    }

    async fn prepare(&self, name: &str, patterns: &[&str]) -> anyhow::Result<()> {
        let conn = self.connection().await?;
        let channel = self.open_channel(&conn).await?;
        let result = self.declare_and_bind(&channel, name, patterns).await;
        close(&conn).await;
        result
    }

    async fn subscribe(&self, name: &str, patterns: &[&str]) -> anyhow::Result<Subscription> {
        // A dedicated connection per subscription, so a slow consumer never
        // stalls publishing.
        let conn = Arc::new(self.connection().await?);
        let consumers = match self.consume_both(&conn, name, patterns).await {
            Ok(consumers) => consumers,
            Err(e) => {
                // Nothing was spawned yet: closing ends whatever was begun.
                close(&conn).await;
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        for consumer in consumers {
            tokio::spawn(forward(consumer, tx.clone(), conn.clone()));
        }
        Ok(Subscription { rx })
    }
}

impl RabbitBus {
    /// Takes `patterns` off both queues of the subscription.
    async fn unbind(
        &self,
        conn: &lapin::Connection,
        name: &str,
        patterns: &[&str],
    ) -> anyhow::Result<()> {
        let channel = self.open_channel(conn).await?;
        let exchanges = [&self.exchange, &self.legacy_exchange];
        for (queue, exchange) in self.queues(name).iter().zip(exchanges) {
            // Unbinding from a queue that does not exist is an error: make it.
            declare_queue(&channel, queue).await?;
            for p in patterns {
                channel
                    .queue_unbind(queue, exchange, p, FieldTable::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// Both queues of the subscription exist and carry `patterns`.
    async fn declare_and_bind(
        &self,
        channel: &lapin::Channel,
        name: &str,
        patterns: &[&str],
    ) -> anyhow::Result<()> {
        let exchanges = [&self.exchange, &self.legacy_exchange];
        for (queue, exchange) in self.queues(name).iter().zip(exchanges) {
            declare_queue(channel, queue).await?;
            for p in patterns {
                let options = QueueBindOptions::default();
                channel
                    .queue_bind(queue, exchange, p, options, FieldTable::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// A consumer on each of the subscription's queues (batch queue first),
    /// each on its own channel with its prefetch bound.
    async fn consume_both(
        &self,
        conn: &lapin::Connection,
        name: &str,
        patterns: &[&str],
    ) -> anyhow::Result<Vec<lapin::Consumer>> {
        let setup = self.open_channel(conn).await?;
        self.declare_and_bind(&setup, name, patterns).await?;
        let prefetches = [BATCH_PREFETCH, SUBSCRIPTION_BUFFER];
        let mut consumers = Vec::with_capacity(2);
        for (queue, prefetch) in self.queues(name).iter().zip(prefetches) {
            let channel = self.open_channel(conn).await?;
            let prefetch = u16::try_from(prefetch.max(1)).unwrap_or(u16::MAX);
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let tag = format!("{name}-{}", crate::core::ids::random_token(8));
            let options = BasicConsumeOptions::default();
            consumers.push(
                channel
                    .basic_consume(queue, &tag, options, FieldTable::default())
                    .await?,
            );
        }
        Ok(consumers)
    }
}

async fn declare_queue(channel: &lapin::Channel, queue: &str) -> anyhow::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue, options, FieldTable::default())
        .await?;
    Ok(())
}

/// Hands a queue's messages, event by event, to the subscription. When it
/// ends (the broker or the connection went away, or the subscriber did), it
/// closes the shared connection, so the subscription's other queue ends too
/// and the subscriber sees one end and subscribes again to both.
async fn forward(
    mut consumer: lapin::Consumer,
    tx: mpsc::Sender<Delivery>,
    conn: Arc<lapin::Connection>,
) {
    while let Some(item) = consumer.next().await {
        let delivery = match item {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "RabbitMQ consumer failed");
                break;
            }
        };
        let events = match decode(&delivery.data) {
            Ok(events) => events,
            Err(e) => {
                // A poison message would be redelivered forever; drop it loudly.
                tracing::error!(error = %e, "dropping an undecodable event message");
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                continue;
            }
        };
        if events.is_empty() {
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            continue;
        }
        let message = Arc::new(MessageAck {
            acker: delivery.acker,
            unsettled: AtomicUsize::new(events.len()),
            failed: AtomicBool::new(false),
        });
        for event in events {
            let acker = Acker::Rabbit(EventAck {
                message: message.clone(),
                settled: false,
            });
            // Bounded: a slow consumer holds the broker's messages (up to the
            // prefetch) instead of growing memory here.
            if tx.send(Delivery { event, acker }).await.is_err() {
                return close(&conn).await;
            }
        }
    }
    close(&conn).await;
}

async fn close(conn: &lapin::Connection) {
    if conn.status().connected() {
        let _ = conn.close(200, "subscription ended").await;
    }
}

/// One broker message's verdict, shared by its events: acknowledged once
/// every event is, handed back whole if any was not (the others come again
/// too; consumers de-duplicate by event id).
struct MessageAck {
    acker: lapin::acker::Acker,
    unsettled: AtomicUsize,
    failed: AtomicBool,
}

impl MessageAck {
    async fn settle(&self, ok: bool) -> anyhow::Result<()> {
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        // AcqRel: the last settler must see every earlier failure.
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) != 1 {
            return Ok(());
        }
        if self.failed.load(Ordering::Acquire) {
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            Ok(self.acker.nack(requeue).await?)
        } else {
            Ok(self.acker.ack(BasicAckOptions::default()).await?)
        }
    }
}

/// One event's share of its message's verdict.
pub(super) struct EventAck {
    message: Arc<MessageAck>,
    settled: bool,
}

impl EventAck {
    pub(super) async fn ack(mut self) -> anyhow::Result<()> {
        self.settled = true;
        self.message.settle(true).await
    }

    pub(super) async fn nack(mut self) -> anyhow::Result<()> {
        self.settled = true;
        self.message.settle(false).await
    }
}

impl Drop for EventAck {
    /// An event dropped without a verdict (its consumer went away) counts
    /// as not applied, so its message comes back instead of staying
    /// unacknowledged, and holding a prefetch slot, for the channel's life.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let message = self.message.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = message.settle(false).await;
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "rabbit_tests.rs"]
mod tests;
