//! One actor per trip being written to. Join, accept, reject, leave and close
//! of a trip run through it one at a time (`AtomicResponse` keeps the mailbox
//! closed until the database answered), so a burst of accepts is a queue, not
//! a race: the first ones fill the seats, the rest see a full trip. Idle actors
//! stop; the next write starts a fresh one (the database is the truth, the
//! actor holds nothing but its place in line).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AtomicResponse, Context, Handler, Message, WrapFuture};

use super::store::{TripCommand, TripReply, TripWrite};
use crate::core::error::ApiError;
use crate::runtime::keyed::{retire_when_idle, Keyed, KeyedActor, StartBy};
use crate::storage::Db;

/// A trip actor with no message for this long stops.
const IDLE: Duration = Duration::from_secs(30);
/// Writes waiting on one trip; past it callers get 503 (a trip has at most 50
/// seats: a longer queue is abuse, not demand).
const MAILBOX: usize = 256;
/// Longest a write waits for its turn; one not started by then is refused
/// and never runs. A started write is awaited to its outcome: a timeout
/// could not tell "never ran" from "committed a moment later".
const START_WITHIN: Duration = Duration::from_secs(10);
/// Live trip actors at most; past it new ones are refused with 503.
pub const MAX_TRIP_ACTORS: usize = 100_000;

pub struct TripActor {
    trip_id: i64,
    db: Db,
    registry: Arc<TripRegistry>,
    last_active: Instant,
}

/// After a committed write: the chat caches see the new members and the relay
/// publishes the notifications. Runs in the actor, so it happens even if the
/// caller has gone away (dropped request, timeout).
fn after_commit(registry: &TripRegistry, reply: &TripReply) {
    if let TripReply::Trip {
        view,
        membership_changed: true,
    } = reply
    {
        registry.chat.membership_changed(view.conversation_id);
    }
    registry.relay_nudge();
}

impl Actor for TripActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        retire_when_idle(ctx, IDLE);
    }
}

impl KeyedActor for TripActor {
    fn key(&self) -> i64 {
        self.trip_id
    }
    fn last_active(&self) -> Instant {
        self.last_active
    }
    fn registry(&self) -> &Keyed<Self> {
        &self.registry.actors
    }
}

pub struct TripMsg {
    pub cmd: TripCommand,
    /// Not started by then: refused (see [`START_WITHIN`]).
    pub start_by: StartBy,
}

impl Message for TripMsg {
    type Result = Result<TripReply, ApiError>;
}

impl Handler<TripMsg> for TripActor {
    type Result = AtomicResponse<Self, Result<TripReply, ApiError>>;

    fn handle(&mut self, msg: TripMsg, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let db = self.db.clone();
        let trip_id = self.trip_id;
        let on_time = msg.start_by.check("trip");
        let fut = async move {
            on_time?;
            db.call(TripWrite {
                trip_id,
                cmd: msg.cmd,
            })
            .await
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|res, this, _| {
            this.last_active = Instant::now();
            if let Ok(reply) = &res {
                after_commit(&this.registry, reply);
            }
            res
        })))
    }
}

/// Finds or starts trip actors.
pub struct TripRegistry {
    actors: Keyed<TripActor>,
    db: Db,
    /// Chat's handle: a trip's membership is its conversation's.
    chat: crate::chat::Chat,
    relay: std::sync::OnceLock<Addr<crate::runtime::relay::Relay>>,
}

impl TripRegistry {
    pub fn new(db: Db, chat: crate::chat::Chat) -> Arc<Self> {
        Arc::new(TripRegistry {
            actors: Keyed::new("trips", MAX_TRIP_ACTORS, START_WITHIN),
            db,
            chat,
            relay: std::sync::OnceLock::new(),
        })
    }

    /// The outbox relay to nudge after each write (set once at start).
    pub fn set_relay(&self, relay: Addr<crate::runtime::relay::Relay>) {
        let _ = self.relay.set(relay);
    }

    fn relay_nudge(&self) {
        if let Some(r) = self.relay.get() {
            r.do_send(crate::runtime::relay::Nudge);
        }
    }

    fn addr(self: &Arc<Self>, trip_id: i64) -> Result<Addr<TripActor>, ApiError> {
        self.actors.get_or_start(trip_id, || TripActor {
            trip_id,
            db: self.db.clone(),
            registry: self.clone(),
            last_active: Instant::now(),
        })
    }

    /// Runs a write on the trip's actor and returns its outcome. A full
    /// mailbox parks the caller (`send` waits for room); a write that could
    /// not start within [`START_WITHIN`] is answered 503 without running.
    pub async fn call(
        self: &Arc<Self>,
        trip_id: i64,
        cmd: TripCommand,
    ) -> Result<TripReply, ApiError> {
        let addr = self.addr(trip_id)?;
        let msg = TripMsg {
            cmd,
            start_by: self.actors.start_by(),
        };
        match addr.send(msg).await {
            Ok(r) => r,
            // `send` has no timeout (the start deadline is the only one), so
            // this is `Closed`: it retired between lookup and send, and the
            // request never ran.
            Err(_) => Err(ApiError::unavailable("the trip was busy; retry")),
        }
    }
}
