//! Revocations in the shared cache, and what a request does when the cache
//! cannot vouch for a token.
//!
//! Logouts, ended sessions and bans are database facts, mirrored into the
//! key-value cache (`rev:sid:<session>`, `ban:<user>`) so that checking them
//! costs no database query. A cache that is down, or that restarted and lost
//! the mirror, would let a revoked token through, so it must not be trusted
//! blindly: a marker key is written after a full mirror, and a request whose
//! cache lookup fails or misses the marker asks the database instead (one
//! query; 503 if that fails too). Meanwhile one task per node rebuilds the
//! mirror and sets the marker again. So with Redis down, signed-in requests
//! go on (each checked against the database), and revoked tokens stay
//! refused whatever happened to the cache.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Handler, Message};

use super::auth::{banned_user_key, revoked_session_key};
use super::store;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, UserId};
use crate::runtime::kv::Kv;
use crate::storage::{Db, DbExecutor};

/// Set after every revocation is mirrored; gone after a cache restart or flush.
pub const MIRROR_MARKER_KEY: &str = "rev:mirrored";
/// The marker outlives any token; re-set on every start and rebuild.
const MIRROR_MARKER_TTL_MS: u64 = 30 * 86_400_000;

/// Mirrors a revoked session into the cache until its token would expire anyway.
pub async fn mirror_revoked_session(
    kv: &dyn Kv,
    sid: i64,
    expires_at_ms: i64,
) -> anyhow::Result<()> {
    let ttl = u64::try_from(expires_at_ms - now_ms()).unwrap_or(0);
    if ttl > 0 {
        kv.set(&revoked_session_key(sid), "1", ttl + 10_000).await?;
    }
    Ok(())
}

/// Marks a user banned in the cache for as long as any token could live.
pub async fn mirror_ban(kv: &dyn Kv, uid: i64, banned: bool, ttl_secs: u64) -> anyhow::Result<()> {
    if banned {
        kv.set(&banned_user_key(uid), "1", (ttl_secs + 60) * 1000)
            .await
    } else {
        kv.delete(&banned_user_key(uid)).await
    }
}

/// Every revocation still in force, from the database.
#[derive(Debug, Default)]
pub struct InForce {
    /// (session id, expiry in ms since the epoch).
    pub sessions: Vec<(i64, i64)>,
    pub banned_users: Vec<i64>,
}

/// Mirrors them all, then sets the marker (last: a half-done mirror is
/// never vouched for). At start, before any request is served.
pub async fn mirror_all(
    kv: &dyn Kv,
    in_force: &InForce,
    token_ttl_secs: u64,
) -> anyhow::Result<()> {
    mirror_entries(kv, in_force, token_ttl_secs).await?;
    kv.set(MIRROR_MARKER_KEY, "1", MIRROR_MARKER_TTL_MS).await
}

async fn mirror_entries(
    kv: &dyn Kv,
    in_force: &InForce,
    token_ttl_secs: u64,
) -> anyhow::Result<()> {
    for (sid, expires_at_ms) in &in_force.sessions {
        mirror_revoked_session(kv, *sid, *expires_at_ms).await?;
    }
    for uid in &in_force.banned_users {
        mirror_ban(kv, *uid, true, token_ttl_secs).await?;
    }
    Ok(())
}

/// Reads every revocation in force (an executor message).
pub struct LoadInForce;

impl Message for LoadInForce {
    type Result = Result<InForce, ApiError>;
}

impl Handler<LoadInForce> for DbExecutor {
    type Result = Result<InForce, ApiError>;

    fn handle(&mut self, _: LoadInForce, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(load_in_force(&mut conn)?)
    }
}

pub fn load_in_force(conn: &mut crate::storage::DbConn) -> crate::storage::QueryResult<InForce> {
    Ok(InForce {
        sessions: store::live_revoked_sessions(conn, now_ms())?
            .into_iter()
            .map(|s| (s.id, s.expires_at_ms))
            .collect(),
        banned_users: store::banned_user_ids(conn)?,
    })
}

/// Whether a session may act: not revoked, not expired, its user not banned.
pub struct SessionStanding {
    pub user_id: UserId,
    pub session_id: i64,
}

impl Message for SessionStanding {
    type Result = Result<bool, ApiError>;
}

impl Handler<SessionStanding> for DbExecutor {
    type Result = Result<bool, ApiError>;

    fn handle(&mut self, msg: SessionStanding, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let session = store::find_session(&mut conn, msg.session_id)?;
        let live = session.is_some_and(|s| {
            s.user_id == msg.user_id.get() && !s.revoked && s.expires_at_ms > now_ms()
        });
        let banned = store::find_user(&mut conn, msg.user_id.get())?.is_none_or(|u| u.banned);
        Ok(live && !banned)
    }
}

/// A node's part in keeping the mirror whole.
#[derive(Default)]
pub struct Mirror {
    /// A rebuild is running (one at a time per node).
    rebuilding: AtomicBool,
    /// Revocations this node failed to mirror, counted; the cache cannot
    /// vouch for tokens while a failure is not covered by a later rebuild.
    failures: AtomicU64,
    /// `failures` as it was when the last successful rebuild began.
    covered: AtomicU64,
}

impl Mirror {
    pub fn is_stale(&self) -> bool {
        self.failures.load(Ordering::Acquire) > self.covered.load(Ordering::Acquire)
    }

    /// A revocation was not mirrored: the cache cannot vouch for tokens
    /// until a rebuild (started here, retried until the cache answers).
    pub fn failed(
        self: &Arc<Self>,
        error: &anyhow::Error,
        kv: Arc<dyn Kv>,
        db: Db,
        token_ttl_secs: u64,
    ) {
        tracing::warn!(%error, "a revocation could not be mirrored; the database decides until the cache is rebuilt");
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.rebuild(kv, db, token_ttl_secs);
    }

    /// Starts a rebuild unless one is running; it retries until it succeeds,
    /// and again while failures happened during it.
    pub fn rebuild(self: &Arc<Self>, kv: Arc<dyn Kv>, db: Db, token_ttl_secs: u64) {
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let mirror = self.clone();
        actix::spawn(async move {
            let mut pause_ms = REBUILD_FIRST_PAUSE_MS;
            loop {
                // Only failures seen before this rebuild read the database
                // are covered by it; later ones need another round.
                let seen = mirror.failures.load(Ordering::Acquire);
                match rebuild_once(kv.as_ref(), &db, token_ttl_secs).await {
                    Ok(n) => {
                        mirror.covered.fetch_max(seen, Ordering::AcqRel);
                        if !mirror.is_stale() {
                            tracing::info!(revocations = n, "revocations mirrored into the cache");
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "revocations not mirrored yet; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                        pause_ms = (pause_ms * 2).min(REBUILD_MAX_PAUSE_MS);
                    }
                }
            }
            mirror.rebuilding.store(false, Ordering::Release);
        });
    }

    /// Rebuilds the mirror every `REFRESH_SECS` for the life of the node: a
    /// cache that lost keys without losing the marker (eviction, a restore
    /// from an old snapshot, a node that could not reach it while the others
    /// could) vouches for a missing revocation at most that long.
    pub fn refresh_periodically(self: &Arc<Self>, kv: Arc<dyn Kv>, db: Db, token_ttl_secs: u64) {
        let mirror = self.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(REFRESH_SECS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is now; the start just mirrored
            loop {
                tick.tick().await;
                mirror.rebuild(kv.clone(), db.clone(), token_ttl_secs);
            }
        });
    }
}

/// Between failed rebuilds (doubling up to the maximum).
const REBUILD_FIRST_PAUSE_MS: u64 = 250;
const REBUILD_MAX_PAUSE_MS: u64 = 5_000;
/// Between periodic rebuilds.
const REFRESH_SECS: u64 = 60;
/// Set when a rebuild starts (one key per rebuild, so nodes rebuilding at
/// once do not overwrite each other's); the marker is written only while it
/// is still there, so a cache that restarted during the rebuild (losing the
/// keys written before) is not vouched for.
const REBUILD_WITNESS_PREFIX: &str = "rev:rebuilding:";
const REBUILD_WITNESS_TTL_MS: u64 = 10 * 60_000;

/// One rebuild: every revocation in force, then the marker (only if the
/// cache kept everything written since the start), then lifted bans that
/// this rebuild may have written back are removed again.
async fn rebuild_once(kv: &dyn Kv, db: &Db, token_ttl_secs: u64) -> anyhow::Result<usize> {
    let in_force = db
        .call(LoadInForce)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let witness = format!(
        "{REBUILD_WITNESS_PREFIX}{}",
        crate::core::ids::random_token(16)
    );
    kv.set(&witness, "1", REBUILD_WITNESS_TTL_MS).await?;
    mirror_entries(kv, &in_force, token_ttl_secs).await?;
    let vouched = kv
        .set_if_equal(&witness, "1", MIRROR_MARKER_KEY, "1", MIRROR_MARKER_TTL_MS)
        .await?;
    anyhow::ensure!(vouched, "the cache lost keys during the rebuild");
    // Done with it; one left behind by a failure expires with its TTL.
    let _ = kv.delete(&witness).await;
    // An unban between the load above and now had its key written back here.
    let now = db
        .call(LoadInForce)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for uid in in_force
        .banned_users
        .iter()
        .filter(|u| !now.banned_users.contains(u))
    {
        mirror_ban(kv, *uid, false, token_ttl_secs).await?;
    }
    Ok(in_force.sessions.len() + in_force.banned_users.len())
}
