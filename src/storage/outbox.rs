//! Transactional outbox. A change and the events describing it commit in one
//! transaction ([`enqueue`]); the relay (`runtime::relay`) publishes committed rows on the bus
//! and deletes them only after the bus confirmed them. A crash between
//! publish and delete republishes: consumers de-duplicate by event id.

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

/// One outbox row as stored.
#[derive(Insertable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub created_at_ms: i64,
}

/// Adds an event to the outbox inside the caller's transaction; returns its
/// id. Inside a group-commit batch the row joins the batch's one multi-row
/// insert (`storage::appends`): nothing reads the outbox back inside the
/// transaction that wrote it (the relay reads committed rows only).
pub fn enqueue(
    conn: &mut DbConn,
    ids: &IdGenerator,
    kind: &str,
    payload: &serde_json::Value,
) -> QueryResult<i64> {
    let row = OutboxRow {
        id: ids.next_id(),
        kind: kind.to_owned(),
        payload: payload.to_string(),
        created_at_ms: now_ms(),
    };
    let id = row.id;
    super::appends::append(conn, row, write_rows)?;
    Ok(id)
}

/// Adds many events (see [`enqueue`]); returns their ids in order.
pub fn enqueue_many(
    conn: &mut DbConn,
    ids: &IdGenerator,
    events: &[(&str, serde_json::Value)],
) -> QueryResult<Vec<i64>> {
    events
        .iter()
        .map(|(kind, payload)| enqueue(conn, ids, kind, payload))
        .collect()
}

/// Writes outbox rows: one cached single-row statement for one row (the
/// common case outside a batch), sets otherwise (`direct::insert_set`).
fn write_rows(conn: &mut DbConn, rows: &[OutboxRow]) -> QueryResult<()> {
    if let [row] = rows {
        return crate::storage::direct::execute(
            conn,
            diesel::insert_into(outbox::table).values((
                outbox::id.eq(row.id),
                outbox::kind.eq(&row.kind),
                outbox::payload.eq(&row.payload),
                outbox::created_at_ms.eq(row.created_at_ms),
            )),
        )
        .map(|_| ());
    }
    crate::storage::direct::insert_set(
        conn,
        "INSERT INTO outbox (id, kind, payload, created_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use crate::storage::direct::Val::{Int, Text};
            vec![
                Int(r.id),
                Text(&r.kind),
                Text(&r.payload),
                Int(r.created_at_ms),
            ]
        },
        |c, chunk| diesel::insert_into(outbox::table).values(chunk).execute(c),
    )?;
    Ok(())
}

/// The oldest unpublished events with an id above `after` (0: all).
///
/// Why a lower bound: forgetting a published row leaves its index entry
/// behind until a vacuum, so a scan from the lowest id walks
/// every row published since the last vacuum before it finds a live one; on
/// PostgreSQL under load that was 17 ms per round and a quarter of the
/// database's time. The relay scans from a recent id instead and sweeps
/// from 0 now and then (see `runtime::relay`).
pub struct FetchUnpublished {
    pub after: i64,
}

impl Message for FetchUnpublished {
    type Result = Result<Vec<Event>, ApiError>;
}

impl Handler<FetchUnpublished> for DbExecutor {
    type Result = Result<Vec<Event>, ApiError>;

    fn handle(&mut self, msg: FetchUnpublished, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let rows: Vec<(i64, String, String, i64)> = outbox::table
            .filter(outbox::published_at_ms.is_null())
            .filter(outbox::id.gt(msg.after))
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

/// Forgets events the bus has confirmed (a group-commit job): their rows
/// are deleted, not marked.
///
/// Why: marking set `published_at_ms`, a column the unpublished index's
/// condition names, so PostgreSQL could not update in place: every event
/// wrote a second row version and a second primary-key entry, and the table
/// grew by every event ever published. A deleted row costs neither and the
/// table holds only what is in flight. Nothing reads published events (a
/// parked one is copied into `dead_letters`). Rows that versions before this one
/// marked keep their mark and are skipped by [`FetchUnpublished`].
pub fn forget_published(c: &mut DbConn, ids: &[i64]) -> Result<(), ApiError> {
    crate::storage::direct::execute(
        c,
        diesel::delete(outbox::table.filter(outbox::id.eq_any(ids))),
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
