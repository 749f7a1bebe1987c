//! Event bus: domain events from the outbox to their consumers.
//!
//! Semantics both adapters share: `publish` returns only once every event is
//! safe (RabbitMQ: the broker confirmed it into durable queues; in-process:
//! every matching subscriber acknowledged it), so a relay may delete its
//! outbox rows after `publish` returns. Delivery is at least once: consumers
//! de-duplicate by `Event::id`.

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

mod rabbit;

pub use rabbit::RabbitBus;

/// Deliveries buffered per subscription (and, in events, the RabbitMQ prefetch).
pub const SUBSCRIPTION_BUFFER: usize = 1_024;

pub use crate::storage::outbox::Event;

pub struct Delivery {
    pub event: Event,
    acker: Acker,
}

enum Acker {
    InProcess(oneshot::Sender<()>),
    Rabbit(rabbit::EventAck),
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
            Acker::Rabbit(a) => a.ack().await,
        }
    }

    /// Hands the event back for redelivery.
    pub async fn nack(self) -> anyhow::Result<()> {
        match self.acker {
            // Dropping the sender makes the publisher see a failed delivery.
            Acker::InProcess(_) => Ok(()),
            Acker::Rabbit(a) => a.nack().await,
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
    /// Makes the named subscription's durable queue and bindings exist
    /// without consuming, so events published before the consumer first
    /// subscribes wait for it instead of reaching no queue (a broker drops
    /// those). Called at start, before the relay publishes anything.
    async fn prepare(&self, _name: &str, _patterns: &[&str]) -> anyhow::Result<()> {
        Ok(())
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
}
