//! Transactional outbox. A change and the events describing it commit in one
//! transaction ([`enqueue`]); the relay (`runtime::relay`) publishes committed rows on the bus
//! and marks them published only after the bus confirmed them. A crash between
//! publish and mark republishes: consumers de-duplicate by event id.

use actix::{Handler, Message};
use diesel::prelude::*;

use crate::core::error::ApiError;
use crate::core::ids::{now_ms, IdGenerator};
use crate::storage::schema::outbox;
use crate::storage::{DbConn, DbExecutor};

/// Rows published per round trip.
pub const RELAY_BATCH: i64 = 2_000;

/// One domain event: an outbox row, and what the bus carries.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Event {
    /// Unique and stable across redeliveries: the consumers' de-duplication key.
    pub id: i64,
    /// Routing key, e.g. `order.paid`.
    pub kind: String,
    pub payload: serde_json::Value,
    pub occurred_at_ms: i64,
}

/// Adds an event to the outbox inside the caller's transaction.
pub fn enqueue(
    conn: &mut DbConn,
    ids: &IdGenerator,
    kind: &str,
    payload: &serde_json::Value,
) -> QueryResult<i64> {
    let id = ids.next_id();
    crate::storage::direct::execute(
        conn,
        diesel::insert_into(outbox::table).values((
            outbox::id.eq(id),
            outbox::kind.eq(kind),
            outbox::payload.eq(payload.to_string()),
            outbox::created_at_ms.eq(now_ms()),
        )),
    )?;
    Ok(id)
}

/// Rows per multi-row outbox insert: 4 bound values each, far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bound-value limits.
const ENQUEUE_CHUNK: usize = 500;

/// Adds many events to the outbox inside the caller's transaction, one
/// multi-row insert per [`ENQUEUE_CHUNK`] events instead of one per event;
/// returns their ids in order.
pub fn enqueue_many(
    conn: &mut DbConn,
    ids: &IdGenerator,
    events: &[(&str, serde_json::Value)],
) -> QueryResult<Vec<i64>> {
    let now = now_ms();
    let event_ids: Vec<i64> = events.iter().map(|_| ids.next_id()).collect();
    let rows: Vec<_> = events
        .iter()
        .zip(&event_ids)
        .map(|((kind, payload), id)| {
            (
                outbox::id.eq(*id),
                outbox::kind.eq(*kind),
                outbox::payload.eq(payload.to_string()),
                outbox::created_at_ms.eq(now),
            )
        })
        .collect();
    for chunk in rows.chunks(ENQUEUE_CHUNK) {
        crate::per_backend!(&mut *conn, |b| diesel::insert_into(outbox::table)
            .values(chunk)
            .execute(b))?;
    }
    Ok(event_ids)
}

/// The oldest unpublished events.
pub struct FetchUnpublished;

impl Message for FetchUnpublished {
    type Result = Result<Vec<Event>, ApiError>;
}

impl Handler<FetchUnpublished> for DbExecutor {
    type Result = Result<Vec<Event>, ApiError>;

    fn handle(&mut self, _: FetchUnpublished, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let rows: Vec<(i64, String, String, i64)> = outbox::table
            .filter(outbox::published_at_ms.is_null())
            .order(outbox::id.asc())
            .limit(RELAY_BATCH)
            .select((
                outbox::id,
                outbox::kind,
                outbox::payload,
                outbox::created_at_ms,
            ))
            .load(&mut conn)?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, payload, at)| Event {
                id,
                kind,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                occurred_at_ms: at,
            })
            .collect())
    }
}

/// Marks events published (a group-commit job).
pub fn mark_published(c: &mut DbConn, ids: &[i64]) -> Result<(), ApiError> {
    crate::storage::direct::execute(
        c,
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set(outbox::published_at_ms.eq(now_ms())),
    )?;
    Ok(())
}

/// Records that `consumer` applies `event_id` now, in the caller's
/// transaction; false if it was applied before (a redelivery). `ON CONFLICT
/// DO NOTHING`, not a caught unique violation: on PostgreSQL a failed
/// statement aborts the whole transaction, and consumers run inside
/// group-commit batches with other jobs.
pub fn first_processing(
    c: &mut DbConn,
    consumer: &str,
    event_id: i64,
    now_ms: i64,
) -> diesel::QueryResult<bool> {
    use crate::storage::schema::processed_events;
    let n = crate::per_backend!(&mut *c, |b| diesel::insert_into(processed_events::table)
        .values((
            processed_events::consumer.eq(consumer),
            processed_events::event_id.eq(event_id),
            processed_events::processed_at_ms.eq(now_ms),
        ))
        .on_conflict_do_nothing()
        .execute(b))?;
    Ok(n == 1)
}
