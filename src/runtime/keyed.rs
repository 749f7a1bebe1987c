//! A registry of per-key actors (one per order, per trip, per order's
//! rebates): at most one live actor per key, a cap on how many, and idle
//! actors retiring themselves. Each domain's registry embeds one and adds
//! what its actors need to start.

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
}

impl<A> Keyed<A>
where
    A: Actor<Context = Context<A>>,
{
    pub fn new(what: &'static str, cap: usize) -> Self {
        Keyed {
            actors: DashMap::new(),
            cap,
            what,
        }
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

    fn probe(keyed: &Arc<Keyed<Probe>>, key: i64) -> Result<Addr<Probe>, ApiError> {
        keyed.get_or_start(key, || Probe {
            key,
            started: Instant::now(),
            keyed: keyed.clone(),
        })
    }

    #[actix_web::test]
    async fn one_actor_per_key_a_cap_and_idle_actors_retire() {
        let keyed = Arc::new(Keyed::new("probes", 2));
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
