//! Key-value cache: rebuildable state only (rate-limit buckets, token
//! revocations, fast paths). Money and events never live here.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;

use crate::core::ids::now_ms;

/// Outcome of taking a token from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Allowed,
    /// Denied; a token will be there after this many milliseconds.
    RetryAfterMs(u64),
}

#[async_trait]
pub trait Kv: Send + Sync {
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> anyhow::Result<()>;
    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> anyhow::Result<()>;
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>>;
    /// Whether each key exists, in order (one round trip).
    async fn exists_each(&self, keys: &[String]) -> anyhow::Result<Vec<bool>>;
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Sets `key` only while `witness` holds `expected`, in one atomic step;
    /// whether it was set.
    async fn set_if_equal(
        &self,
        witness: &str,
        expected: &str,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> anyhow::Result<bool>;
    /// Token bucket: `capacity` tokens, refilled at `refill_per_s`.
    async fn take_token(&self, key: &str, capacity: u32, refill_per_s: u32)
        -> anyhow::Result<Take>;
    /// Token bucket refilled slower than one a second: one token every `every_ms`.
    async fn take_token_every(
        &self,
        key: &str,
        capacity: u32,
        every_ms: u64,
    ) -> anyhow::Result<Take>;
}

/// One step of a slow bucket (`every_ms` per token), kept in milli-tokens:
/// refills what the time since `updated_ms` bought, moving `updated_ms` on
/// only by the time that was spent (so frequent calls lose no refill), then
/// takes a token or says when one will be there. Returns the new state.
fn slow_bucket_step(
    tokens_milli: u64,
    updated_ms: i64,
    now: i64,
    cap_milli: u64,
    every_ms: u64,
) -> (u64, i64, Take) {
    let every_ms = every_ms.max(1);
    let elapsed = u64::try_from(now - updated_ms).unwrap_or(0);
    let added = elapsed.saturating_mul(1000) / every_ms;
    let (mut tokens, updated) = if tokens_milli.saturating_add(added) >= cap_milli {
        (cap_milli, now)
    } else {
        (
            tokens_milli + added,
            updated_ms + i64::try_from(added * every_ms / 1000).unwrap_or(0),
        )
    };
    let take = if tokens >= 1000 {
        tokens -= 1000;
        Take::Allowed
    } else {
        Take::RetryAfterMs(((1000 - tokens) * every_ms).div_ceil(1000))
    };
    (tokens, updated, take)
}

/// Most entries the in-process cache holds; past it, expired entries are swept
/// at once and, if still full, the oldest-expiring half of the buckets dropped.
const MEMORY_MAX_ENTRIES: usize = 1_000_000;
/// Sweep expired entries every this many writes.
const MEMORY_SWEEP_EVERY: u64 = 4_096;

struct Entry {
    value: String,
    expires_at_ms: i64,
}

struct Bucket {
    tokens_milli: u64,
    updated_ms: i64,
    /// When the bucket would be full again; after that it can be forgotten.
    idle_at_ms: i64,
}

/// The embedded default: sharded hash maps, expiry on read plus a sweep.
#[derive(Default)]
pub struct MemoryKv {
    entries: DashMap<String, Entry>,
    buckets: DashMap<String, Bucket>,
    writes: AtomicU64,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn maybe_sweep(&self) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let full = self.entries.len() + self.buckets.len() >= MEMORY_MAX_ENTRIES;
        if n.is_multiple_of(MEMORY_SWEEP_EVERY) || full {
            let now = now_ms();
            self.entries.retain(|_, e| e.expires_at_ms > now);
            self.buckets.retain(|_, b| b.idle_at_ms > now);
            if self.buckets.len() >= MEMORY_MAX_ENTRIES / 2 {
                // Forgetting a bucket only makes that client's limit reset: safe.
                self.buckets.clear();
            }
        }
    }
}

#[async_trait]
impl Kv for MemoryKv {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> anyhow::Result<()> {
        self.maybe_sweep();
        if self.entries.len() >= MEMORY_MAX_ENTRIES {
            anyhow::bail!("in-process cache is full ({MEMORY_MAX_ENTRIES} live entries)");
        }
        let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX / 2);
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires_at_ms: now_ms().saturating_add(ttl),
            },
        );
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let now = now_ms();
        Ok(self
            .entries
            .get(key)
            .filter(|e| e.expires_at_ms > now)
            .map(|e| e.value.clone()))
    }

    async fn set_if_equal(
        &self,
        witness: &str,
        expected: &str,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> anyhow::Result<bool> {
        if self.get(witness).await?.as_deref() != Some(expected) {
            return Ok(false);
        }
        self.set(key, value, ttl_ms).await?;
        Ok(true)
    }

    async fn exists_each(&self, keys: &[String]) -> anyhow::Result<Vec<bool>> {
        let now = now_ms();
        Ok(keys
            .iter()
            .map(|k| self.entries.get(k).is_some_and(|e| e.expires_at_ms > now))
            .collect())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        // One keyspace, as in Redis: a bucket is deleted like any entry.
        self.entries.remove(key);
        self.buckets.remove(key);
        Ok(())
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        refill_per_s: u32,
    ) -> anyhow::Result<Take> {
        if !self.buckets.contains_key(key) {
            self.maybe_sweep();
        }
        let now = now_ms();
        let cap_milli = u64::from(capacity) * 1000;
        let rate = u64::from(refill_per_s.max(1)); // milli-tokens per ms
                                                   // The entry guard holds the shard lock, so concurrent takes on one key serialize.
        let mut b = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens_milli: cap_milli,
            updated_ms: now,
            idle_at_ms: now,
        });
        let elapsed = u64::try_from(now - b.updated_ms).unwrap_or(0);
        b.tokens_milli = (b.tokens_milli + elapsed * rate).min(cap_milli);
        b.updated_ms = now;
        let outcome = if b.tokens_milli >= 1000 {
            b.tokens_milli -= 1000;
            Take::Allowed
        } else {
            Take::RetryAfterMs((1000 - b.tokens_milli).div_ceil(rate))
        };
        let to_full = (cap_milli - b.tokens_milli).div_ceil(rate);
        b.idle_at_ms = now + i64::try_from(to_full).unwrap_or(0);
        Ok(outcome)
    }

    async fn take_token_every(
        &self,
        key: &str,
        capacity: u32,
        every_ms: u64,
    ) -> anyhow::Result<Take> {
        if !self.buckets.contains_key(key) {
            self.maybe_sweep();
        }
        let now = now_ms();
        let cap_milli = u64::from(capacity) * 1000;
        // The entry guard holds the shard lock, so concurrent takes on one key serialize.
        let mut b = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens_milli: cap_milli,
            updated_ms: now,
            idle_at_ms: now,
        });
        let (tokens, updated, take) =
            slow_bucket_step(b.tokens_milli, b.updated_ms, now, cap_milli, every_ms);
        b.tokens_milli = tokens;
        b.updated_ms = updated;
        let to_full = (cap_milli - tokens).saturating_mul(every_ms.max(1)) / 1000;
        b.idle_at_ms = now + i64::try_from(to_full).unwrap_or(i64::MAX / 2);
        Ok(take)
    }
}

/// Redis through the `redis` crate's connection manager (reconnects by itself).
pub struct RedisKv {
    client: redis::Client,
    /// The live connection (multiplexed: one for every caller); `None`
    /// after a failure, so the next command connects afresh.
    /// With its generation: a late failure of an old connection must not
    /// drop the one that replaced it.
    conn: parking_lot::RwLock<Option<(u64, redis::aio::MultiplexedConnection)>>,
    generations: std::sync::atomic::AtomicU64,
    /// One connect at a time (the others wait for it, then share it).
    connecting: tokio::sync::Mutex<()>,
    /// When the last connect failed: for a moment after, callers fail at
    /// once instead of queueing a connect each behind the mutex.
    failed_connect: parking_lot::Mutex<Option<std::time::Instant>>,
    /// Prepended to every key (`<namespace>:`).
    prefix: String,
    bucket_script: redis::Script,
    slow_bucket_script: redis::Script,
    set_if_equal_script: redis::Script,
}

/// `set_if_equal` in one step: KEYS[1] the witness, KEYS[2] the key.
const SET_IF_EQUAL_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"#;

/// Token bucket in one atomic step on the server. Tokens are kept in
/// milli-tokens so all arithmetic stays integral.
const BUCKET_LUA: &str = r#"
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(cap, tokens + (now - ts) * rate) end
local retry = 0
if tokens >= 1000 then tokens = tokens - 1000 else retry = math.ceil((1000 - tokens) / rate) end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', math.max(now, ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 1000)
return retry
"#;

/// The slow bucket of [`slow_bucket_step`], in one atomic step on the server.
const SLOW_BUCKET_LUA: &str = r#"
local cap = tonumber(ARGV[1])
local every = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then
  local added = math.floor((now - ts) * 1000 / every)
  if tokens + added >= cap then tokens = cap; ts = now
  else tokens = tokens + added; ts = ts + math.floor(added * every / 1000) end
end
local retry = 0
if tokens >= 1000 then tokens = tokens - 1000 else retry = math.ceil((1000 - tokens) * every / 1000) end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil(cap * every / 1000) + 1000)
return retry
"#;

impl RedisKv {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let kv = RedisKv {
            client,
            conn: parking_lot::RwLock::new(None),
            generations: std::sync::atomic::AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            failed_connect: parking_lot::Mutex::new(None),
            prefix: format!("{namespace}:"),
            bucket_script: redis::Script::new(BUCKET_LUA),
            slow_bucket_script: redis::Script::new(SLOW_BUCKET_LUA),
            set_if_equal_script: redis::Script::new(SET_IF_EQUAL_LUA),
        };
        kv.connection().await?;
        Ok(kv)
    }

    /// The live connection, or a new one. Reconnecting here rather than in
    /// redis-rs's connection manager: that one, with Redis cut off and back,
    /// kept commands waiting on a dead reconnect (tests/api/degradation.rs).
    async fn connection(&self) -> anyhow::Result<(u64, redis::aio::MultiplexedConnection)> {
        if let Some(c) = self.conn.read().clone() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.conn.read().clone() {
            return Ok(c);
        }
        if self
            .failed_connect
            .lock()
            .is_some_and(|at| at.elapsed() < REDIS_RECONNECT_PAUSE)
        {
            anyhow::bail!("Redis is unreachable (a connect failed just now)");
        }
        let connect = self.client.get_multiplexed_async_connection();
        let c = match tokio::time::timeout(REDIS_COMMAND_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            failed => {
                *self.failed_connect.lock() = Some(std::time::Instant::now());
                match failed {
                    Ok(Err(e)) => return Err(e.into()),
                    _ => anyhow::bail!("connecting to Redis timed out"),
                }
            }
        };
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.conn.write() = Some((generation, c.clone()));
        Ok((generation, c))
    }

    /// Runs one command on the connection of `generation`, bounded; a
    /// failure drops that connection (not a newer one).
    async fn bounded<T>(
        &self,
        generation: u64,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> anyhow::Result<T> {
        let result = match tokio::time::timeout(REDIS_COMMAND_TIMEOUT, command).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => anyhow::Error::from(e),
            Err(_) => anyhow::anyhow!("Redis did not answer within {REDIS_COMMAND_TIMEOUT:?}"),
        };
        let mut conn = self.conn.write();
        if conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            *conn = None;
        }
        Err(result)
    }
}

impl RedisKv {
    /// Runs one of the bucket scripts (capacity, its rate argument, now):
    /// it answers 0 when a token was taken, else the wait in milliseconds.
    async fn run_bucket(
        &self,
        script: &redis::Script,
        key: &str,
        capacity: u32,
        rate: u64,
    ) -> anyhow::Result<Take> {
        let (generation, mut c) = self.connection().await?;
        let mut invocation = script.key(self.k(key));
        invocation
            .arg(u64::from(capacity) * 1000)
            .arg(rate)
            .arg(now_ms());
        let retry_ms: u64 = self
            .bounded(generation, invocation.invoke_async(&mut c))
            .await?;
        Ok(if retry_ms == 0 {
            Take::Allowed
        } else {
            Take::RetryAfterMs(retry_ms)
        })
    }

    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// The longest one Redis command (or connect) may take: while Redis is
/// unreachable, callers must get an error soon enough to degrade (fail open,
/// or ask the database) instead of waiting on it. Below the callers' own
/// bounds (300 ms), so a hung connection is dropped by its command, not
/// abandoned by a cancelled caller. Commands take well under 1 ms here.
const REDIS_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);
/// After a failed connect, commands fail at once for this long.
const REDIS_RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

#[async_trait]
impl Kv for RedisKv {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let (generation, mut c) = self.connection().await?;
        let pong: String = self
            .bounded(generation, redis::cmd("PING").query_async(&mut c))
            .await?;
        anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong}");
        Ok(())
    }

    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> anyhow::Result<()> {
        let (generation, mut c) = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.k(key)).arg(value).arg("PX").arg(ttl_ms.max(1));
        self.bounded(generation, cmd.query_async::<()>(&mut c))
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let (generation, mut c) = self.connection().await?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.k(key));
        self.bounded(generation, cmd.query_async(&mut c)).await
    }

    async fn set_if_equal(
        &self,
        witness: &str,
        expected: &str,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> anyhow::Result<bool> {
        let (generation, mut c) = self.connection().await?;
        let mut invocation = self.set_if_equal_script.key(self.k(witness));
        invocation
            .key(self.k(key))
            .arg(expected)
            .arg(value)
            .arg(ttl_ms.max(1));
        let set: u8 = self
            .bounded(generation, invocation.invoke_async(&mut c))
            .await?;
        Ok(set == 1)
    }

    async fn exists_each(&self, keys: &[String]) -> anyhow::Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (generation, mut c) = self.connection().await?;
        let keys: Vec<String> = keys.iter().map(|k| self.k(k)).collect();
        // One round trip: MGET answers nil for each missing key.
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&keys);
        let values: Vec<Option<String>> = self.bounded(generation, cmd.query_async(&mut c)).await?;
        Ok(values.iter().map(Option::is_some).collect())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let (generation, mut c) = self.connection().await?;
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.k(key));
        self.bounded(generation, cmd.query_async::<()>(&mut c))
            .await?;
        Ok(())
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        refill_per_s: u32,
    ) -> anyhow::Result<Take> {
        let rate = u64::from(refill_per_s.max(1));
        self.run_bucket(&self.bucket_script, key, capacity, rate)
            .await
    }

    async fn take_token_every(
        &self,
        key: &str,
        capacity: u32,
        every_ms: u64,
    ) -> anyhow::Result<Take> {
        self.run_bucket(&self.slow_bucket_script, key, capacity, every_ms.max(1))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slow_buckets_refill_one_token_per_interval_without_losing_time() {
        let cap = 3_000;
        let (mut t, mut u) = (cap, 0_i64);
        for _ in 0..3 {
            let (nt, nu, take) = slow_bucket_step(t, u, 0, cap, 60_000);
            assert_eq!(take, Take::Allowed);
            (t, u) = (nt, nu);
        }
        let (_, _, take) = slow_bucket_step(t, u, 0, cap, 60_000);
        assert_eq!(take, Take::RetryAfterMs(60_000));
        // Calls every 10 s still add up to a token after 60 s.
        let mut now = 0;
        let mut allowed_at = None;
        while allowed_at.is_none() {
            now += 10_000;
            let (nt, nu, take) = slow_bucket_step(t, u, now, cap, 60_000);
            (t, u) = (nt, nu);
            if take == Take::Allowed {
                allowed_at = Some(now);
            }
        }
        assert_eq!(allowed_at, Some(60_000));
    }

    #[tokio::test]
    async fn memory_bucket_allows_capacity_then_denies() {
        let kv = MemoryKv::new();
        for _ in 0..5 {
            assert_eq!(kv.take_token("k", 5, 1).await.unwrap(), Take::Allowed);
        }
        match kv.take_token("k", 5, 1).await.unwrap() {
            Take::RetryAfterMs(ms) => assert!(ms > 0 && ms <= 1000, "{ms}"),
            Take::Allowed => panic!("bucket should be empty"),
        }
        assert_eq!(kv.take_token("other", 5, 1).await.unwrap(), Take::Allowed);
    }

    #[tokio::test]
    async fn memory_entries_expire() {
        let kv = MemoryKv::new();
        kv.set("a", "1", 50).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(
            kv.exists_each(&["x".into(), "a".into()]).await.unwrap(),
            [false, true]
        );
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.exists_each(&["a".into()]).await.unwrap(), [false]);
    }
}
