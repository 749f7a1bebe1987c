//! The claim-end timer: claim deadlines are a column of `animals`
//! (`claimed_until_ms`); one timer asks the database what fell due
//! (including while the server was down), frees those animals, and tells
//! commerce's inventory actor so memory follows the database.

use std::time::Duration;

use actix::{Actor, ActorFutureExt as _, AsyncContext, Context, WrapFuture};

use super::store::{DueClaims, EndClaim};
use crate::commerce::Commerce;

const TICK: Duration = Duration::from_millis(500);

pub struct ClaimTimer {
    commerce: Commerce,
    /// A tick still running skips the next (ticks never pile up).
    busy: bool,
}

impl ClaimTimer {
    pub fn new(commerce: Commerce) -> Self {
        ClaimTimer {
            commerce,
            busy: false,
        }
    }
}

/// Frees the animals whose claim period ended.
async fn end_claims(commerce: &Commerce) {
    let db = &commerce.db;
    let due = match db
        .call(DueClaims {
            now_ms: crate::core::ids::now_ms(),
        })
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "claim timer could not read ended claims");
            return;
        }
    };
    for (animal_id, order_id, _) in due {
        match db
            .call(EndClaim {
                animal_id,
                order_id,
            })
            .await
        {
            Ok(Some((product, version))) => commerce.stock_returned(product, 1, version),
            Ok(None) => {}
            Err(e) => tracing::debug!(animal_id, error = %e, "claim end deferred"),
        }
    }
}

impl Actor for ClaimTimer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The first tick comes at once: catch up with what fell due while down.
        ctx.run_interval(TICK, |this, ctx| {
            // One node ends claims: the cluster's leader (see `runtime::cluster`).
            if this.busy || !this.commerce.ctx.leader.is_leader() {
                return;
            }
            this.busy = true;
            let commerce = this.commerce.clone();
            ctx.spawn(
                async move { end_claims(&commerce).await }
                    .into_actor(this)
                    .map(|(), this, _| this.busy = false),
            );
        });
    }
}
