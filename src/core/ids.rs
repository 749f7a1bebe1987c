//! Server-assigned ids and time helpers.
//!
//! Ids are time-ordered and stay below 2^53 so JavaScript clients read them
//! exactly: `(milliseconds since 2025-01-01) << 12 | node << 8 | sequence`.
//! 41 bits of milliseconds last until 2094. The generator is one atomic: under
//! a burst of more than 256 ids in one millisecond it borrows the next
//! millisecond (the clock runs slightly ahead and catches up when the burst
//! ends), so ids never repeat and never go backwards within a process.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::distributions::Alphanumeric;
use rand::Rng;

pub use super::text::{Any, Id};

/// The kinds of entity an [`Id`] may name (never values: only markers).
pub mod kind {
    pub enum User {}
    pub enum Merchant {}
    pub enum Product {}
    pub enum Order {}
    pub enum Conversation {}
    pub enum Message {}
    pub enum Post {}
    pub enum Comment {}
    pub enum Trip {}
    pub enum JoinRequest {}
    pub enum Animal {}
    pub enum Report {}
    pub enum Withdrawal {}
    pub enum Notification {}
    pub enum Session {}
    pub enum Media {}
}

pub type UserId = Id<kind::User>;
pub type MerchantId = Id<kind::Merchant>;
pub type ProductId = Id<kind::Product>;
pub type OrderId = Id<kind::Order>;
pub type ConversationId = Id<kind::Conversation>;
pub type MessageId = Id<kind::Message>;
pub type PostId = Id<kind::Post>;
pub type CommentId = Id<kind::Comment>;
pub type TripId = Id<kind::Trip>;
pub type JoinRequestId = Id<kind::JoinRequest>;
pub type AnimalId = Id<kind::Animal>;
pub type ReportId = Id<kind::Report>;
pub type WithdrawalId = Id<kind::Withdrawal>;
pub type NotificationId = Id<kind::Notification>;
pub type SessionId = Id<kind::Session>;
pub type MediaId = Id<kind::Media>;

/// 2025-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 4;
const SEQ_BITS: u32 = 8;
/// Largest id a JSON client can hold exactly.
pub const MAX_SAFE_ID: i64 = (1 << 53) - 1;

pub struct IdGenerator {
    node: u64,
    /// `(ms << SEQ_BITS) | seq` of the last id handed out.
    last: AtomicU64,
}

impl IdGenerator {
    pub fn new(node: u8) -> Self {
        IdGenerator {
            node: u64::from(node) & ((1 << NODE_BITS) - 1),
            last: AtomicU64::new(0),
        }
    }

    pub fn next_id(&self) -> i64 {
        let now = u64::try_from(now_ms() - EPOCH_MS).unwrap_or(0) << SEQ_BITS;
        // fetch_update retries on contention; each caller gets a distinct value.
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(if now > last { now } else { last + 1 })
            })
            .unwrap_or(0);
        let cur = if now > prev { now } else { prev + 1 };
        let ms = cur >> SEQ_BITS;
        let seq = cur & ((1 << SEQ_BITS) - 1);
        let id = (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq;
        // 41 bits of ms keep this below 2^53 until 2094.
        i64::try_from(id).unwrap_or(MAX_SAFE_ID)
    }
}

/// The smallest id any node hands out at or after `ms` (ids are time-ordered,
/// so `id >= first_id_at(t)` selects rows created since `t` by primary key).
pub fn first_id_at(ms: i64) -> i64 {
    (ms - EPOCH_MS).max(0) << (NODE_BITS + SEQ_BITS)
}

/// Which of `n` shards (or partitions) an id belongs to, evenly. Not
/// `id % n`: an id's low bits are its millisecond's sequence, 0 whenever ids
/// are made less often than once a millisecond, so `id % 2` put every
/// conversation started at a human pace on the first of two chat writers.
/// A multiplicative (Fibonacci) hash mixes the time bits in.
pub fn shard_of(id: i64, n: usize) -> usize {
    let n = n.max(1) as u64;
    let h = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    usize::try_from(h % n).unwrap_or(0)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-23T10:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A random alphanumeric string from the OS-seeded thread RNG.
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_increasing_and_safe() {
        let gen = IdGenerator::new(3);
        let mut seen = HashSet::new();
        let mut prev = 0;
        for _ in 0..100_000 {
            let id = gen.next_id();
            assert!(id > prev);
            assert!(id > 0 && id <= MAX_SAFE_ID);
            assert!(seen.insert(id));
            prev = id;
        }
    }

    /// Ids made one per millisecond all end in sequence 0 (even, and
    /// divisible by 256): `shard_of` still spreads them over every shard,
    /// each within a fifth of its fair share.
    #[test]
    fn ids_made_at_a_human_pace_spread_over_every_shard() {
        let node = 5_i64 << SEQ_BITS;
        for n in [2_usize, 3, 4, 8] {
            let mut counts = vec![0_usize; n];
            let ids: Vec<i64> = (0..10_000_i64)
                .map(|ms| (ms * 7 + 1_000_000) << 12 | node)
                .collect();
            for id in &ids {
                counts[shard_of(*id, n)] += 1;
            }
            let fair = ids.len() / n;
            for c in &counts {
                assert!(c.abs_diff(fair) < fair / 5, "{n} shards: {counts:?}");
            }
            assert!(
                ids.iter().all(|id| id % 2 == 0),
                "the case id % n gets wrong"
            );
        }
        assert_eq!(shard_of(12_345, 1), 0);
        assert_eq!(shard_of(-1, 0), 0, "no shards counts as one");
    }

    #[test]
    fn ids_from_threads_do_not_collide() {
        let gen = std::sync::Arc::new(IdGenerator::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = gen.clone();
                std::thread::spawn(move || (0..20_000).map(|_| g.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id));
            }
        }
        assert_eq!(all.len(), 80_000);
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
