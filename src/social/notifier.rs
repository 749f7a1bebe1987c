//! The notifier: consumes domain events (at least once), stores each
//! event's notifications exactly once (de-duplicated by event id in the same
//! transaction), pushes them to online recipients, then acknowledges.
//!
//! Producers say whom to tell: an event payload may carry
//! `"notify": [{"user_id": N, "kind": "order.paid", "data": {...}}]`.

use std::sync::Arc;

use crate::storage::QueryResult;
use serde::Deserialize;

use super::store::NotificationView;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::realtime::frames::ServerFrame;
use crate::realtime::registry::Registry;
use crate::realtime::session::Deliver;
use crate::runtime::bus::Event;
use crate::runtime::dead_letter::{Apply, Consumer};
use crate::storage::group::GroupCommit;

pub const CONSUMER: &str = "notifier";
/// Routing-key patterns the notifier listens to.
/// Only kinds whose producers leave notifications to the notifier: order and
/// rebate events store theirs in the transaction that makes them, so the
/// notifier does not receive them (on RabbitMQ that was four of every five
/// deliveries of a paid order, each a no-op).
pub const PATTERNS: &[&str] = &["user.#", "trip.#", "animal.#"];
/// Bound by versions that stored order and gift notifications here.
pub const RETIRED: &[&str] = &["order.#", "rebate.#", "gift.#"];
/// Events applied at once.
const CONCURRENCY: usize = 256;
/// Most notifications one event may create.
const MAX_PER_EVENT: usize = 1_000;

#[derive(Deserialize)]
struct Notify {
    user_id: i64,
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// Stores the notifications of one event, once (a group-commit job). Returns
/// (recipient, view) of those created now (empty if the event was applied before).
pub fn apply_event(
    conn: &mut crate::storage::DbConn,
    ids: &crate::core::ids::IdGenerator,
    event: Event,
) -> Result<Vec<(i64, NotificationView)>, ApiError> {
    let notify: Vec<Notify> = event
        .payload
        .get("notify")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "event {} has a bad notify list: {e}",
                event.id
            ))
        })?
        .unwrap_or_default();
    let now = now_ms();
    crate::storage::transaction(
        conn,
        |c| -> Result<Vec<(i64, NotificationView)>, ApiError> {
            // Exactly once per event: see `first_processing` for why it is
            // not a caught unique violation.
            if !crate::storage::outbox::first_processing(c, CONSUMER, event.id, now)? {
                // Applied before: a redelivery.
                return Ok(Vec::new());
            }
            let mut created = Vec::new();
            for n in distinct(&notify).take(MAX_PER_EVENT) {
                let view = store(c, ids, event.id, n.user_id, &n.kind, &n.data, now)?;
                created.push((n.user_id, view));
            }
            Ok(created)
        },
    )
}

/// The notify list without repeats: one notification per (recipient, kind)
/// per event (what `notifications` allows; the same person in two roles, a
/// shop owner buying from their own shop, is told once per kind).
fn distinct(notify: &[Notify]) -> impl Iterator<Item = &Notify> {
    let mut first = first_each();
    notify
        .iter()
        .filter(move |n| first((n.user_id, n.kind.as_str())))
}

/// Keeps the first of each (recipient, kind) of one event, in order; see
/// [`distinct`]. For producers that store their own notifications.
pub fn dedupe<D>(notify: &mut Vec<(i64, &str, D)>) {
    let mut first = first_each();
    notify.retain(|(user, kind, _)| first((*user, *kind)));
}

/// The one rule of both: true the first time a (recipient, kind) is seen.
fn first_each<'a>() -> impl FnMut((i64, &'a str)) -> bool {
    let mut seen = std::collections::HashSet::new();
    move |key| seen.insert(key)
}

/// Notifications a transaction stored: (recipient, notification), to push
/// once it has committed ([`push_all`]).
pub type Stored = Vec<(i64, NotificationView)>;

/// Stores one notification of event `event_id` in the caller's transaction.
/// Producers that commit an event and its notifications together (the order
/// actor's transitions, the rebate reconcile) call this directly and push
/// after their commit, so the notifier has nothing left to do for them.
pub fn store(
    c: &mut crate::storage::DbConn,
    ids: &crate::core::ids::IdGenerator,
    event_id: i64,
    user_id: i64,
    kind: &str,
    data: &serde_json::Value,
    now_ms: i64,
) -> QueryResult<NotificationView> {
    let id = ids.next_id();
    super::store::insert_notification(c, id, user_id, kind, data, event_id, now_ms)?;
    Ok(NotificationView {
        notification_id: id,
        kind: kind.to_owned(),
        data: data.clone(),
        created_at: rfc3339(now_ms),
        read: false,
    })
}

/// Pushes a stored notification to the recipient's open sockets, unless
/// they turned its kind off (then it is not listed either).
pub fn push(registry: &Registry, user_id: i64, n: &NotificationView) {
    if !registry.wants_notification(user_id, &n.kind) {
        return;
    }
    let frame = ServerFrame::Notification {
        notification_id: n.notification_id,
        kind: &n.kind,
        data: &n.data,
    };
    registry.deliver(user_id, Deliver::plain(frame.encode()));
}

/// Pushes notifications stored by a transaction that has committed.
pub fn push_all(registry: &Registry, stored: &[(i64, NotificationView)]) {
    for (user, n) in stored {
        push(registry, *user, n);
    }
}

/// The notifier as a bus consumer (run by `infra::dead_letter::consume`).
pub fn consumer(
    commit: GroupCommit,
    shared: Arc<crate::runtime::context::Ctx>,
    registry: Arc<Registry>,
) -> Consumer {
    let apply: Apply = Arc::new(move |event: Event| {
        let (commit, shared, registry) = (commit.clone(), shared.clone(), registry.clone());
        Box::pin(async move {
            // Most events tell nobody (`order.created`, ...): nothing to store,
            // so no write job and no de-duplication row.
            let tells_nobody = event
                .payload
                .get("notify")
                .and_then(|n| n.as_array())
                .is_none_or(|n| n.is_empty());
            if tells_nobody {
                return Ok(());
            }
            let job_shared = shared.clone();
            let created = commit
                .run_for(event.id, move |c| {
                    apply_event(c, &job_shared.ids, event.clone())
                })
                .await?;
            push_all(&registry, &created);
            Ok(())
        })
    });
    Consumer {
        name: CONSUMER,
        patterns: PATTERNS,
        retired: RETIRED,
        concurrency: CONCURRENCY,
        apply,
    }
}
