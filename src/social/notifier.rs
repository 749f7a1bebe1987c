//! The notifier: consumes domain events (at least once), stores each
//! event's notifications exactly once (de-duplicated by event id in the same
//! transaction), pushes them to online recipients, then acknowledges.
//!
//! Producers say whom to tell: an event payload may carry
//! `"notify": [{"user_id": N, "kind": "order.paid", "data": {...}}]`.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Deserialize;

use super::messages::NotificationView;
use crate::db::group::GroupCommit;
use crate::db::schema::{notifications, processed_events};
use crate::error::ApiError;
use crate::ids::{now_ms, rfc3339};
use crate::infra::bus::{Event, EventBus};
use crate::realtime::frames::ServerFrame;
use crate::realtime::registry::Registry;
use crate::realtime::session::Deliver;

pub const CONSUMER: &str = "notifier";
/// Routing-key patterns the notifier listens to.
pub const PATTERNS: &[&str] = &[
    "user.#", "order.#", "rebate.#", "trip.#", "animal.#", "gift.#",
];
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
    conn: &mut crate::db::DbConn,
    ids: &crate::ids::IdGenerator,
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
    crate::db::transaction(
        conn,
        |c| -> Result<Vec<(i64, NotificationView)>, ApiError> {
            let seen: Option<i64> = processed_events::table
                .find((CONSUMER, event.id))
                .select(processed_events::event_id)
                .first(c)
                .optional()?;
            if seen.is_some() {
                // Applied before: a redelivery. Looked up rather than caught as a
                // failed insert, which would abort a PostgreSQL transaction.
                return Ok(Vec::new());
            }
            let first = diesel::insert_into(processed_events::table)
                .values((
                    processed_events::consumer.eq(CONSUMER),
                    processed_events::event_id.eq(event.id),
                    processed_events::processed_at_ms.eq(now),
                ))
                .execute(c);
            match first {
                Ok(_) => {}
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e.into()),
            }
            let mut created = Vec::new();
            for n in notify.iter().take(MAX_PER_EVENT) {
                let view = store(c, ids, event.id, n.user_id, &n.kind, &n.data, now)?;
                created.push((n.user_id, view));
            }
            Ok(created)
        },
    )
}

/// Notifications a transaction stored: (recipient, notification), to push
/// once it has committed ([`push_all`]).
pub type Stored = Vec<(i64, NotificationView)>;

/// Stores one notification of event `event_id` in the caller's transaction.
/// Producers that commit an event and its notifications together (the order
/// actor's transitions, the rebate reconcile) call this directly and push
/// after their commit, so the notifier has nothing left to do for them.
pub fn store(
    c: &mut crate::db::DbConn,
    ids: &crate::ids::IdGenerator,
    event_id: i64,
    user_id: i64,
    kind: &str,
    data: &serde_json::Value,
    now_ms: i64,
) -> QueryResult<NotificationView> {
    let id = ids.next_id();
    crate::db::direct::execute(
        c,
        diesel::insert_into(notifications::table).values((
            notifications::id.eq(id),
            notifications::user_id.eq(user_id),
            notifications::kind.eq(kind),
            notifications::data.eq(data.to_string()),
            notifications::event_id.eq(Some(event_id)),
            notifications::read.eq(false),
            notifications::created_at_ms.eq(now_ms),
        )),
    )?;
    Ok(NotificationView {
        notification_id: id,
        kind: kind.to_owned(),
        data: data.clone(),
        created_at: rfc3339(now_ms),
        read: false,
    })
}

/// Pushes a stored notification to the recipient's open sockets.
pub fn push(registry: &Registry, user_id: i64, n: &NotificationView) {
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

/// Runs the consumer loop until the subscription ends.
pub async fn run(bus: Arc<dyn EventBus>, commit: GroupCommit, shared: Arc<crate::app::Shared>) {
    let sub = match bus.subscribe(CONSUMER, PATTERNS).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "notifier could not subscribe");
            return;
        }
    };
    // Order does not matter between events: up to CONCURRENCY at once.
    let (commit, shared) = (&commit, &shared);
    futures_util::StreamExt::for_each_concurrent(sub.into_stream(), CONCURRENCY, |delivery| async move {
        let event = delivery.event.clone();
        // Most events tell nobody (`order.created`, ...): nothing to store, so
        // no write job and no de-duplication row; just acknowledge.
        let tells_nobody = event
            .payload
            .get("notify")
            .and_then(|n| n.as_array())
            .is_none_or(|n| n.is_empty());
        if tells_nobody {
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "notifier ack failed; the event will be redelivered");
            }
            return;
        }
        let job_shared = shared.clone();
        match commit.run(move |c| apply_event(c, &job_shared.ids, event.clone())).await {
            Ok(created) => {
                for (user, n) in &created {
                    push(&shared.registry, *user, n);
                }
                if let Err(e) = delivery.ack().await {
                    tracing::warn!(error = %e, "notifier ack failed; the event will be redelivered");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "notifier could not apply an event; retrying later");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = delivery.nack().await;
            }
        }
    })
    .await;
}
