//! Consumers that cannot be stalled by one bad event.
//!
//! Every bus consumer runs through [`consume`]: an event is applied, and on
//! failure tried again a few times with short pauses (a failure for want of
//! capacity, 503, is waited out in place instead, then handed back to the
//! bus: backpressure). An event
//! that still fails is *parked*: written to `dead_letters` with its error (durably,
//! before the delivery is acknowledged), so the bus moves on to later events.
//! Without this, one event whose effect fails every time (a stored rule set
//! that no longer parses, say) is nacked forever: on the in-process bus the
//! relay's whole publish fails and it republishes the same oldest rows every
//! round; on RabbitMQ it is requeued at the head of the queue.
//!
//! The [`Retrier`] applies parked events again with exponential backoff
//! until they succeed, then deletes them. Consumers de-duplicate by event id,
//! so a retry after a success that was not recorded does nothing twice.
//! Admins list parked events (`GET /api/v1/admin/dead-letters`) and
//! `/metrics` reports how many there are (`tandem_dead_letters`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::Serialize;

use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::runtime::bus::{Delivery, Event, EventBus};
use crate::storage::dead_letter::{failed_again, park, unpark, DeadLetter, Due};
use crate::storage::group::GroupCommit;
use crate::storage::Db;

/// Pauses between the tries of one delivery; after the last, it is parked.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];
/// Pause before applying again an event that failed for want of capacity.
const OVERLOAD_PAUSE: Duration = Duration::from_millis(500);
/// Such pauses one delivery waits out in place before it is handed back.
///
/// Why in place: on RabbitMQ a message carries up to 64 events, and handing
/// one back hands back the message; its other events, applied already,
/// then need the busy writer again just to be recognised as duplicates, so
/// under sustained overload a message might never get through. Waiting
/// keeps the delivery, and so the broker's prefetch slot: backpressure.
const OVERLOAD_WAITS: usize = 20;
/// How often the retrier looks for parked events that are due.
const RETRY_TICK: Duration = Duration::from_secs(1);
/// Longest error text kept per parked event, in characters.
const MAX_ERROR_CHARS: usize = 1_000;

/// Applies one event's effects durably; `Ok` once they are (or were before).
pub type Apply = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync>;

/// A named, durable subscription and what to do with each event.
pub struct Consumer {
    pub name: &'static str,
    pub patterns: &'static [&'static str],
    /// Patterns earlier versions bound and this one no longer wants.
    pub retired: &'static [&'static str],
    /// Events applied at once (order between events does not matter).
    pub concurrency: usize,
    pub apply: Apply,
}

/// After a subscription ends or cannot be made, the pause before the next
/// try (doubling up to the maximum).
const RESUBSCRIBE_FIRST_PAUSE: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX_PAUSE: Duration = Duration::from_secs(10);

/// Runs `consumer` for the life of the process. A subscription ends when the
/// broker connection breaks (a broker restart, a network cut): the consumer
/// subscribes again, with growing pauses, and the broker redelivers what was
/// not acknowledged (applying is idempotent by event id).
pub async fn consume(bus: Arc<dyn EventBus>, commit: GroupCommit, consumer: Consumer) {
    if let Err(e) = bus.retire(consumer.name, consumer.retired).await {
        // The events of those patterns are still applied (as no-ops) if delivered.
        tracing::warn!(consumer = consumer.name, error = %e, "could not unbind retired patterns");
    }
    let (commit, consumer) = (&commit, &consumer);
    let mut pause = RESUBSCRIBE_FIRST_PAUSE;
    loop {
        match bus.subscribe(consumer.name, consumer.patterns).await {
            Ok(sub) => {
                // The pause starts over only after a subscription delivered:
                // one that ends at once (a broker half up) backs off as a failure.
                let delivered = std::sync::atomic::AtomicBool::new(false);
                sub.into_stream()
                    .for_each_concurrent(consumer.concurrency, |d| {
                        delivered.store(true, std::sync::atomic::Ordering::Relaxed);
                        handle(d, consumer, commit)
                    })
                    .await;
                if delivered.load(std::sync::atomic::Ordering::Relaxed) {
                    pause = RESUBSCRIBE_FIRST_PAUSE;
                }
                tracing::warn!(
                    consumer = consumer.name,
                    "subscription ended; subscribing again"
                );
            }
            Err(e) => {
                let name = consumer.name;
                tracing::warn!(error = %format!("{e:#}"), consumer = name, "could not subscribe; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESUBSCRIBE_MAX_PAUSE);
    }
}

/// Applies one delivery: ack on success; after repeated failure park it
/// durably and ack; nack only if even parking failed (then the bus redelivers).
async fn handle(d: Delivery, consumer: &Consumer, commit: &GroupCommit) {
    let mut error = match apply(consumer, &d.event).await {
        Ok(()) => return ack(d, consumer.name).await,
        Err(e) => e,
    };
    for pause in RETRY_PAUSES {
        if is_overload(&error) {
            return redeliver_later(d, consumer.name, &error).await;
        }
        tokio::time::sleep(pause).await;
        match apply(consumer, &d.event).await {
            Ok(()) => return ack(d, consumer.name).await,
            Err(e) => error = e,
        }
    }
    if is_overload(&error) {
        return redeliver_later(d, consumer.name, &error).await;
    }
    let tries = i64::try_from(RETRY_PAUSES.len() + 1).unwrap_or(i64::MAX);
    let letter = DeadLetter::new(consumer.name, &d.event, error_text(&error), tries, now_ms());
    match commit.run_for(d.event.id, move |c| park(c, &letter)).await {
        Ok(()) => {
            tracing::error!(consumer = consumer.name, event_id = d.event.id, kind = %d.event.kind,
                error = %error, "event parked after repeated failures; later events go on");
            ack(d, consumer.name).await;
        }
        Err(e) => {
            tracing::warn!(consumer = consumer.name, event_id = d.event.id, error = %e,
                "could not park a failing event; the bus will redeliver it");
            if let Err(e) = d.nack().await {
                tracing::warn!(error = %e, "nack failed; the event will be redelivered");
            }
        }
    }
}

/// Applies the event, waiting out up to [`OVERLOAD_WAITS`] failures for
/// want of capacity.
async fn apply(consumer: &Consumer, event: &Event) -> Result<(), ApiError> {
    let mut waits = 0;
    loop {
        match (consumer.apply)(event.clone()).await {
            Err(e) if is_overload(&e) && waits < OVERLOAD_WAITS => {
                waits += 1;
                tokio::time::sleep(OVERLOAD_PAUSE).await;
            }
            result => return result,
        }
    }
}

/// 503: the database or a queue is unavailable or full right now. Such an
/// event is not bad, the moment is: parking it would turn an overload into a
/// pile of parked events retried at `RETRY_BATCH` a second. Handing it back
/// slows the bus down instead (backpressure), as it should.
fn is_overload(e: &ApiError) -> bool {
    e.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
}

async fn redeliver_later(d: Delivery, consumer: &str, error: &ApiError) {
    tracing::warn!(consumer, event_id = d.event.id, error = %error, "event not applied now; redelivered later");
    tokio::time::sleep(OVERLOAD_PAUSE).await;
    if let Err(e) = d.nack().await {
        tracing::warn!(error = %e, consumer, "nack failed; the event will be redelivered");
    }
}

async fn ack(d: Delivery, consumer: &str) {
    if let Err(e) = d.ack().await {
        tracing::warn!(error = %e, consumer, "ack failed; the event will be redelivered");
    }
}

/// The error as admins see it: with its cause (an internal error's detail
/// alone says nothing).
fn error_text(e: &ApiError) -> String {
    e.to_string().chars().take(MAX_ERROR_CHARS).collect()
}

/// A parked event as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    pub consumer: String,
    pub event_id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub error: String,
    pub attempts: i64,
    pub parked_at: String,
    pub next_attempt_at: String,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        DeadLetterView {
            payload: d.event().payload,
            consumer: d.consumer,
            event_id: d.event_id,
            kind: d.kind,
            error: d.error,
            attempts: d.attempts,
            parked_at: rfc3339(d.parked_at_ms),
            next_attempt_at: rfc3339(d.next_attempt_at_ms),
        }
    }
}

/// Retries parked events of the consumers it knows, with backoff.
pub struct Retrier {
    db: Db,
    commit: GroupCommit,
    consumers: HashMap<&'static str, Apply>,
    /// Parked events at the last look, for `/metrics`.
    parked: Arc<AtomicU64>,
    /// Only the cluster's leader retries (see `runtime::cluster`).
    pub leader: crate::runtime::cluster::Leadership,
    busy: bool,
}

impl Retrier {
    pub fn new(
        db: Db,
        commit: GroupCommit,
        consumers: &[&Consumer],
        parked: Arc<AtomicU64>,
    ) -> Self {
        Retrier {
            db,
            commit,
            consumers: consumers
                .iter()
                .map(|c| (c.name, c.apply.clone()))
                .collect(),
            parked,
            leader: crate::runtime::cluster::Leadership::sole(),
            busy: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy || !self.leader.is_leader() {
            return;
        }
        self.busy = true;
        let (db, commit, parked) = (self.db.clone(), self.commit.clone(), self.parked.clone());
        let consumers = self.consumers.clone();
        let work = async move {
            let (due, total) = db.call(Due { now_ms: now_ms() }).await?;
            parked.store(u64::try_from(total).unwrap_or(0), Ordering::Relaxed);
            for letter in due {
                // Parked by a consumer this process does not run: leave it.
                let Some(apply) = consumers.get(letter.consumer.as_str()) else {
                    continue;
                };
                retry(&commit, apply, letter).await?;
            }
            Ok::<(), ApiError>(())
        };
        ctx.spawn(work.into_actor(self).map(|res, this, _| {
            this.busy = false;
            if let Err(e) = res {
                tracing::warn!(error = %e, "dead-letter retry round failed; will try again");
            }
        }));
    }
}

/// Applies one parked event again and records the outcome.
async fn retry(commit: &GroupCommit, apply: &Apply, letter: DeadLetter) -> Result<(), ApiError> {
    match apply(letter.event()).await {
        Ok(()) => {
            tracing::info!(consumer = %letter.consumer, event_id = letter.event_id, "parked event applied");
            commit
                .run_for(letter.event_id, move |c| {
                    unpark(c, &letter.consumer, letter.event_id)
                })
                .await
        }
        Err(e) => {
            let text = error_text(&e);
            commit
                .run_for(letter.event_id, move |c| {
                    failed_again(c, &letter, &text, now_ms())
                })
                .await
        }
    }
}

impl Actor for Retrier {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(RETRY_TICK, |this, ctx| this.round(ctx));
    }
}
