//! Event bus: domain events from the outbox to their consumers.
//!
//! Semantics both adapters share: `publish` returns only once every event is
//! safe (RabbitMQ: the broker confirmed it into durable queues; in-process:
//! every matching subscriber acknowledged it), so a relay may mark its outbox
//! rows sent after `publish` returns. Delivery is at least once: consumers
//! de-duplicate by `Event::id`.

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
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

/// Deliveries buffered per subscription (and the RabbitMQ prefetch).
pub const SUBSCRIPTION_BUFFER: usize = 1_024;

pub use crate::storage::outbox::Event;

pub struct Delivery {
    pub event: Event,
    acker: Acker,
}

enum Acker {
    InProcess(oneshot::Sender<()>),
    Rabbit(lapin::acker::Acker),
}

impl Delivery {
    /// Tells the bus the event's effects are durable.
    pub async fn ack(self) -> anyhow::Result<()> {
        match self.acker {
            Acker::InProcess(tx) => {
                // The publisher may have given up (shutdown); nothing to do then.
                let _ = tx.send(());
                Ok(())
            }
            Acker::Rabbit(a) => Ok(a.ack(BasicAckOptions::default()).await?),
        }
    }

    /// Hands the event back for redelivery.
    pub async fn nack(self) -> anyhow::Result<()> {
        match self.acker {
            // Dropping the sender makes the publisher see a failed delivery.
            Acker::InProcess(_) => Ok(()),
            Acker::Rabbit(a) => Ok(a
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?),
        }
    }
}

pub struct Subscription {
    rx: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The deliveries as a stream (for bounded concurrent consumers).
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Delivery> {
        futures_util::stream::unfold(self, |mut s| async move { s.next().await.map(|d| (d, s)) })
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> anyhow::Result<()>;
    /// Publishes every event and returns once all are safe (see module docs).
    async fn publish(&self, events: &[Event]) -> anyhow::Result<()>;
    /// A durable, named subscription to the routing-key patterns (`*` one word, `#` any).
    async fn subscribe(&self, name: &str, patterns: &[&str]) -> anyhow::Result<Subscription>;
    /// Takes patterns an earlier version bound off the named subscription
    /// (bindings outlive the process on a broker). Unbinding a pattern that
    /// is not bound is not an error.
    async fn retire(&self, _name: &str, _patterns: &[&str]) -> anyhow::Result<()> {
        Ok(())
    }
}

/// AMQP topic matching: words split on `.`, `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

struct LocalSub {
    patterns: Vec<String>,
    tx: mpsc::Sender<Delivery>,
}

/// The embedded default: bounded channels inside the process.
#[derive(Default)]
pub struct InProcessBus {
    subs: RwLock<Vec<LocalSub>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn publish(&self, events: &[Event]) -> anyhow::Result<()> {
        let mut pending = Vec::new();
        for event in events {
            let targets: Vec<mpsc::Sender<Delivery>> = {
                let subs = self.subs.read();
                subs.iter()
                    .filter(|s| !s.tx.is_closed())
                    .filter(|s| s.patterns.iter().any(|p| topic_matches(p, &event.kind)))
                    .map(|s| s.tx.clone())
                    .collect()
            };
            for tx in targets {
                let (ack_tx, ack_rx) = oneshot::channel();
                let delivery = Delivery {
                    event: event.clone(),
                    acker: Acker::InProcess(ack_tx),
                };
                // Bounded: a slow consumer slows the publisher, never grows memory.
                tx.send(delivery)
                    .await
                    .map_err(|_| anyhow::anyhow!("subscriber went away"))?;
                pending.push(ack_rx);
            }
        }
        for ack in pending {
            ack.await
                .map_err(|_| anyhow::anyhow!("a subscriber did not acknowledge an event"))?;
        }
        Ok(())
    }

    async fn subscribe(&self, _name: &str, patterns: &[&str]) -> anyhow::Result<Subscription> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        self.subs.write().push(LocalSub {
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            tx,
        });
        Ok(Subscription { rx })
    }
}

/// RabbitMQ through lapin: durable topic exchange, persistent messages,
/// publisher confirms, consumer acks with a prefetch bound.
pub struct RabbitBus {
    url: String,
    /// The durable topic exchange every event goes through: `<namespace>.events`.
    exchange: String,
    /// Current connection and publishing channel; replaced when it breaks.
    state: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

impl RabbitBus {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Arc<Self>> {
        let bus = Arc::new(RabbitBus {
            url: url.to_owned(),
            exchange: format!("{namespace}.events"),
            state: tokio::sync::Mutex::new(None),
        });
        bus.channel().await?;
        Ok(bus)
    }

    async fn open(&self) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()),
        )
        .await
        .context("connecting to RabbitMQ timed out")?
        .context("connecting to RabbitMQ")?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                &self.exchange,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    /// The publishing channel, reconnecting if the old one broke.
    async fn channel(&self) -> anyhow::Result<lapin::Channel> {
        let mut state = self.state.lock().await;
        if let Some((conn, ch)) = state.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let (conn, ch) = self.open().await?;
        *state = Some((conn, ch.clone()));
        Ok(ch)
    }
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
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::to_vec(event)?;
            let confirm = channel
                .basic_publish(
                    &self.exchange,
                    &event.kind,
                    // Not `mandatory`: an event no queue is bound for has no
                    // consumer, so there is nothing to retry, and a returned
                    // message costs the broker a copy back and lapin a WARN
                    // line each (about half of all events under the orders
                    // load: order.created, rebate.*). Consumers' queues are
                    // durable and bound before their first event is published.
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into())
                        .with_message_id(event.id.to_string().into()),
                )
                .await?;
            confirms.push((event.id, confirm));
        }
        for (id, confirm) in confirms {
            match confirm.await? {
                lapin::publisher_confirm::Confirmation::Ack(_) => {}
                lapin::publisher_confirm::Confirmation::Nack(_) => {
                    anyhow::bail!("broker refused event {id}")
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
        let channel = self.channel().await?;
        let queue = format!("{}.{name}", self.exchange);
        for p in patterns {
            channel
                .queue_unbind(&queue, &self.exchange, p, FieldTable::default())
                .await?;
        }
        Ok(())
    }

    async fn subscribe(&self, name: &str, patterns: &[&str]) -> anyhow::Result<Subscription> {
        // A dedicated connection per subscription, so a slow consumer never
        // stalls publishing.
        let (conn, channel) = self.open().await?;
        let queue = format!("{}.{name}", self.exchange);
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for p in patterns {
            channel
                .queue_bind(
                    &queue,
                    &self.exchange,
                    p,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let prefetch = u16::try_from(SUBSCRIPTION_BUFFER).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                &queue,
                &format!("{name}-{}", crate::core::ids::random_token(8)),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(async move {
            // Keep the connection alive as long as the forwarding task runs.
            let _conn = conn;
            while let Some(item) = consumer.next().await {
                let delivery = match item {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(error = %e, "RabbitMQ consumer failed");
                        break;
                    }
                };
                let event: Event = match serde_json::from_slice(&delivery.data) {
                    Ok(e) => e,
                    Err(e) => {
                        // A poison message would be redelivered forever; drop it loudly.
                        tracing::error!(error = %e, "dropping undecodable event");
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                        continue;
                    }
                };
                let d = Delivery {
                    event,
                    acker: Acker::Rabbit(delivery.acker),
                };
                if tx.send(d).await.is_err() {
                    break;
                }
            }
        });
        Ok(Subscription { rx })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        assert!(topic_matches("order.*", "order.paid"));
        assert!(!topic_matches("order.*", "order.paid.late"));
        assert!(topic_matches("order.#", "order.paid.late"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("*.paid", "order.paid"));
        assert!(!topic_matches("rebate.*", "order.paid"));
    }

    #[tokio::test]
    async fn in_process_publish_waits_for_ack() {
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus.subscribe("t", &["order.*"]).await.unwrap();
        let consumer = tokio::spawn(async move {
            let d = sub.next().await.unwrap();
            let id = d.event.id;
            d.ack().await.unwrap();
            id
        });
        let ev = Event {
            id: 7,
            kind: "order.paid".into(),
            payload: serde_json::json!({"order_id": 1}),
            occurred_at_ms: 0,
        };
        bus.publish(&[ev]).await.unwrap();
        assert_eq!(consumer.await.unwrap(), 7);
    }

    /// A pattern an earlier version bound stays bound on the broker until it
    /// is retired: after `retire`, events of that kind no longer reach the
    /// queue, and the patterns still wanted do.
    #[tokio::test]
    async fn on_rabbitmq_retired_patterns_stop_reaching_the_queue() {
        let Ok(url) = std::env::var("TANDEM_TEST_AMQP_URL") else {
            return;
        };
        let namespace = format!("retire{}", crate::core::ids::random_token(6));
        let bus = RabbitBus::connect(&url, &namespace).await.unwrap();
        // As an older version left it: both patterns bound.
        drop(bus.subscribe("n", &["order.#", "user.#"]).await.unwrap());
        bus.retire("n", &["order.#", "gift.#"]).await.unwrap();
        let mut sub = bus.subscribe("n", &["user.#"]).await.unwrap();
        let event = |id: i64, kind: &str| Event {
            id,
            kind: kind.into(),
            payload: serde_json::json!({}),
            occurred_at_ms: 0,
        };
        bus.publish(&[event(1, "order.paid"), event(2, "user.followed")])
            .await
            .unwrap();
        let d = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.event.id, 2, "the retired kind was not delivered");
        d.ack().await.unwrap();
        let more = tokio::time::timeout(std::time::Duration::from_millis(300), sub.next()).await;
        assert!(more.is_err(), "nothing else arrives");
    }
}
