//! A registry of per-key actors (one per order, per trip, per order's
//! rebates): at most one live actor per key, a cap on how many, idle actors
//! retiring themselves, and one timeout: a request must *start* within the
//! registry's `start_within` ([`StartBy`]), else the actor refuses it and
//! nothing is done. Once started, the caller awaits its outcome (a timeout
//! there would have to guess whether a write happened). Each domain's
//! registry embeds one and adds what its actors need to start.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context};
use dashmap::DashMap;

use crate::core::error::ApiError;

pub struct Keyed<A: Actor> {
    actors: DashMap<i64, Addr<A>>,
    /// Live actors at most; past it new ones are refused with 503.
    cap: usize,
    /// What the actors are, for the 503's message ("orders", "trips").
    what: &'static str,
    /// How long a request may wait in an actor's mailbox before it starts.
    start_within: Duration,
}

/// The moment a request to a keyed actor must have started by. The actor
/// checks it first thing ([`StartBy::check`]): a request that waited longer
/// behind others is refused with 503 without running, so the caller knows
/// nothing happened.
#[derive(Debug, Clone, Copy)]
pub struct StartBy(Instant);

impl StartBy {
    pub fn check(self, what: &str) -> Result<(), ApiError> {
        if Instant::now() > self.0 {
            return Err(ApiError::unavailable(format!(
                "the {what} was too busy to take this request; nothing was done"
            )));
        }
        Ok(())
    }
}

impl<A> Keyed<A>
where
    A: Actor<Context = Context<A>>,
{
    pub fn new(what: &'static str, cap: usize, start_within: Duration) -> Self {
        Keyed {
            actors: DashMap::new(),
            cap,
            what,
            start_within,
        }
    }

    /// The start deadline of a request sent now.
    pub fn start_by(&self) -> StartBy {
        StartBy(Instant::now() + self.start_within)
    }

    /// The key's actor, started with `start` if there is none. The entry
    /// lock makes "look, start, insert" one step: two first callers share
    /// one actor.
    pub fn get_or_start(&self, key: i64, start: impl FnOnce() -> A) -> Result<Addr<A>, ApiError> {
        if let Some(a) = self.actors.get(&key) {
            return Ok(a.clone());
        }
        if self.actors.len() >= self.cap {
            return Err(ApiError::unavailable(format!(
                "too many {} in flight; retry shortly",
                self.what
            )));
        }
        Ok(self
            .actors
            .entry(key)
            .or_insert_with(|| start().start())
            .clone())
    }

    /// Forgets `addr` as the key's actor (only that one, not a newer one);
    /// true if it was.
    pub fn retire(&self, key: i64, addr: &Addr<A>) -> bool {
        self.actors.remove_if(&key, |_, a| a == addr).is_some()
    }

    pub fn len(&self) -> usize {
        self.actors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }
}

/// An actor kept in a [`Keyed`] registry.
pub trait KeyedActor: Actor<Context = Context<Self>> {
    fn key(&self) -> i64;
    fn last_active(&self) -> Instant;
    fn registry(&self) -> &Keyed<Self>;
}

/// Stops the actor once it has been idle for `idle`. It leaves the registry
/// first, so a message sent after that starts a fresh actor; one that
/// reached this actor before is still handled (its mailbox drains on stop).
pub fn retire_when_idle<A: KeyedActor>(ctx: &mut Context<A>, idle: Duration) {
    ctx.run_interval(idle, move |this, ctx| {
        if this.last_active().elapsed() >= idle
            && this.registry().retire(this.key(), &ctx.address())
        {
            ctx.stop();
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use actix::{Handler, Message};

    use super::*;

    struct Probe {
        key: i64,
        started: Instant,
        keyed: Arc<Keyed<Probe>>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            retire_when_idle(ctx, Duration::from_millis(50));
        }
    }

    impl KeyedActor for Probe {
        fn key(&self) -> i64 {
            self.key
        }
        fn last_active(&self) -> Instant {
            self.started
        }
        fn registry(&self) -> &Keyed<Self> {
            &self.keyed
        }
    }

    struct Key;

    impl Message for Key {
        type Result = i64;
    }

    impl Handler<Key> for Probe {
        type Result = i64;
        fn handle(&mut self, _: Key, _: &mut Self::Context) -> i64 {
            self.key
        }
    }

    /// Holds the actor for `hold` (a slow request), then answers whether
    /// it started in time.
    struct Slow {
        hold: Duration,
        start_by: StartBy,
    }

    impl Message for Slow {
        type Result = Result<(), ApiError>;
    }

    impl Handler<Slow> for Probe {
        type Result = Result<(), ApiError>;
        fn handle(&mut self, msg: Slow, _: &mut Self::Context) -> Self::Result {
            msg.start_by.check("probe")?;
            // Blocking on purpose: the next message waits in the mailbox.
            std::thread::sleep(msg.hold);
            Ok(())
        }
    }

    #[actix_web::test]
    async fn a_request_that_could_not_start_in_time_is_refused_unrun() {
        let keyed = Arc::new(Keyed::new("probes", 2, Duration::from_millis(100)));
        let a = probe(&keyed, 1).unwrap();
        let first = a.send(Slow {
            hold: Duration::from_millis(300),
            start_by: keyed.start_by(),
        });
        let second = a.send(Slow {
            hold: Duration::ZERO,
            start_by: keyed.start_by(),
        });
        assert!(first.await.unwrap().is_ok(), "the first started at once");
        let refused = second.await.unwrap().unwrap_err();
        assert_eq!(
            refused.status().as_u16(),
            503,
            "waited 300 ms behind the first"
        );
    }

    fn probe(keyed: &Arc<Keyed<Probe>>, key: i64) -> Result<Addr<Probe>, ApiError> {
        keyed.get_or_start(key, || Probe {
            key,
            started: Instant::now(),
            keyed: keyed.clone(),
        })
    }

    #[actix_web::test]
    async fn one_actor_per_key_a_cap_and_idle_actors_retire() {
        let keyed = Arc::new(Keyed::new("probes", 2, Duration::from_secs(1)));
        let a = probe(&keyed, 1).unwrap();
        assert!(
            probe(&keyed, 1).unwrap() == a,
            "the same key, the same actor"
        );
        assert_eq!(a.send(Key).await.unwrap(), 1);
        probe(&keyed, 2).unwrap();
        let refused = probe(&keyed, 3).unwrap_err();
        assert_eq!(refused.status().as_u16(), 503);
        assert_eq!(keyed.len(), 2);
        // Idle past 50 ms: both retire and leave the registry.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(keyed.is_empty());
        assert!(a.send(Key).await.is_err(), "a retired actor is stopped");
        // Room again, and a fresh actor for an old key.
        let fresh = probe(&keyed, 1).unwrap();
        assert!(fresh != a);
        assert_eq!(fresh.send(Key).await.unwrap(), 1);
    }
}
