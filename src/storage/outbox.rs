//! Transactional outbox. A change and the events describing it commit in one
//! transaction ([`enqueue`]); the [`Relay`] publishes committed rows on the bus
//! and marks them published only after the bus confirmed them. A crash between
//! publish and mark republishes: consumers de-duplicate by event id.

use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, WrapFuture};
use diesel::prelude::*;

use crate::core::error::ApiError;
use crate::core::ids::{now_ms, IdGenerator};
use crate::runtime::bus::Event;
use crate::storage::group::GroupCommit;
use crate::storage::schema::outbox;
use crate::storage::{Db, DbConn, DbExecutor};

/// Rows published per round trip.
pub const RELAY_BATCH: i64 = 2_000;
/// How often the relay looks when nobody nudged it.
const RELAY_INTERVAL: Duration = Duration::from_millis(100);

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

/// Publishes the outbox. One round at a time; a nudge after a commit makes
/// the next round start at once instead of at the next tick.
pub struct Relay {
    pub db: Db,
    pub commit: GroupCommit,
    /// Test-only fault: never mark rows published (see `TANDEM_FAULT_RELAY_SKIP_MARK`).
    pub skip_mark: bool,
    pub bus: std::sync::Arc<dyn crate::runtime::bus::EventBus>,
    busy: bool,
    again: bool,
}

impl Relay {
    pub fn new(
        db: Db,
        commit: GroupCommit,
        bus: std::sync::Arc<dyn crate::runtime::bus::EventBus>,
    ) -> Self {
        Relay {
            db,
            commit,
            bus,
            skip_mark: false,
            busy: false,
            again: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        self.again = false;
        let (db, commit, bus, skip_mark) = (
            self.db.clone(),
            self.commit.clone(),
            self.bus.clone(),
            self.skip_mark,
        );
        ctx.spawn(
            async move {
                let events = db.call(FetchUnpublished).await?;
                if events.is_empty() {
                    return Ok::<usize, ApiError>(0);
                }
                bus.publish(&events)
                    .await
                    .map_err(ApiError::unavailable_because)?;
                let n = events.len();
                if skip_mark {
                    return Ok(0);
                }
                let ids: Vec<i64> = events.into_iter().map(|e| e.id).collect();
                commit.run(move |c| mark_published(c, &ids)).await?;
                Ok(n)
            }
            .into_actor(self)
            .map(|result, this, ctx| {
                this.busy = false;
                match result {
                    // A full batch means more may be waiting.
                    Ok(n) if n as i64 >= RELAY_BATCH => this.round(ctx),
                    Ok(_) if this.again => this.round(ctx),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox relay round failed; will retry"),
                }
            }),
        );
    }
}

use actix::ActorFutureExt as _;

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(RELAY_INTERVAL, |this, ctx| this.round(ctx));
    }
}

/// "There are new rows": start a round now.
pub struct Nudge;

impl Message for Nudge {
    type Result = ();
}

impl Handler<Nudge> for Relay {
    type Result = ();
    fn handle(&mut self, _: Nudge, ctx: &mut Self::Context) {
        self.round(ctx);
    }
}
