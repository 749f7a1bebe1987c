//! The outbox relay: publishes committed outbox rows on the bus and deletes
//! them only after the bus confirmed them (see `storage::outbox`).

use std::time::Duration;

use actix::{Actor, ActorFutureExt as _, AsyncContext, Context, Handler, Message, WrapFuture};

use crate::core::error::ApiError;
use crate::storage::group::GroupCommit;
use crate::storage::outbox::{forget_published, FetchUnpublished, RELAY_BATCH};
use crate::storage::Db;

/// How often the relay looks when nobody nudged it.
const RELAY_INTERVAL: Duration = Duration::from_millis(100);
/// A round looks at rows whose ids were made at most this long ago...
const RECENT: Duration = Duration::from_secs(3);
/// ...and every this often at all unpublished rows (a sweep): rows that
/// committed later than `RECENT` after their ids were made, and rows left
/// from before a restart.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Publishes the outbox. One round at a time; a nudge after a commit makes
/// the next round start at once instead of at the next tick.
pub struct Relay {
    pub db: Db,
    pub commit: GroupCommit,
    /// Test-only fault: never delete published rows (see `TANDEM_FAULT_RELAY_SKIP_MARK`).
    pub skip_mark: bool,
    pub bus: std::sync::Arc<dyn crate::runtime::bus::EventBus>,
    /// Only the cluster's leader publishes the outbox (see `runtime::cluster`):
    /// two relays would publish every row twice.
    pub leader: crate::runtime::cluster::Leadership,
    busy: bool,
    again: bool,
    /// Where the next round starts: after a full batch, past its last row.
    cursor: Option<i64>,
    /// When the last sweep started (`None`: none yet, so the first round is one).
    swept_at: Option<std::time::Instant>,
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
            leader: crate::runtime::cluster::Leadership::sole(),
            skip_mark: false,
            busy: false,
            again: false,
            cursor: None,
            swept_at: None,
        }
    }

    /// The id the next round reads after (see [`FetchUnpublished`]): past
    /// the previous full batch, 0 for a sweep, or recent ids only.
    fn next_after(&mut self) -> i64 {
        if let Some(after) = self.cursor.take() {
            return after;
        }
        let now = std::time::Instant::now();
        if self
            .swept_at
            .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
        {
            self.swept_at = Some(now);
            return 0;
        }
        let recent_ms = i64::try_from(RECENT.as_millis()).unwrap_or(i64::MAX);
        crate::core::ids::first_id_at(crate::core::ids::now_ms().saturating_sub(recent_ms))
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if !self.leader.is_leader() {
            return;
        }
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        self.again = false;
        let after = self.next_after();
        let (db, commit, bus, skip_mark) = (
            self.db.clone(),
            self.commit.clone(),
            self.bus.clone(),
            self.skip_mark,
        );
        ctx.spawn(
            async move {
                let events = db.call(FetchUnpublished { after }).await?;
                let Some(last) = events.last().map(|e| e.id) else {
                    return Ok::<(usize, i64), ApiError>((0, after));
                };
                bus.publish(&events)
                    .await
                    .map_err(ApiError::unavailable_because)?;
                let n = events.len();
                if skip_mark {
                    return Ok((0, last));
                }
                let ids: Vec<i64> = events.into_iter().map(|e| e.id).collect();
                commit.run(move |c| forget_published(c, &ids)).await?;
                Ok((n, last))
            }
            .into_actor(self)
            .map(|result, this, ctx| {
                this.busy = false;
                match result {
                    // A full batch means more may be waiting, past its last row.
                    Ok((n, last)) if n as i64 >= RELAY_BATCH => {
                        this.cursor = Some(last);
                        this.round(ctx);
                    }
                    Ok(_) if this.again => this.round(ctx),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox relay round failed; will retry"),
                }
            }),
        );
    }
}

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
