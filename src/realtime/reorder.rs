//! Live `seq` frames put back in order, per user session, in a cluster.
//!
//! On one node every conversation has one writer and one path to a session,
//! so its frames arrive in `seq` order. In a cluster two nodes may write one
//! conversation in turn (the row lock keeps the seqs gapless) and their frames
//! travel different paths: node B's local delivery of seq 6 can overtake seq 5
//! still on its way from node A over the node link. A session therefore holds
//! a frame whose predecessor it has not seen, and releases it the moment the
//! gap fills, or after [`HOLD`] (the predecessor was lost with a node, or was
//! never meant for this user): then the client sees the gap and syncs, as the
//! contract says. A frame that arrives after a later one was released is
//! dropped for the same reason: the client syncs it.
//!
//! The first frame a session sees of a conversation has no known predecessor.
//! A writer marks a frame `continues` when it sent the previous seq itself,
//! earlier on the same first-in-first-out path; such a frame cannot be
//! overtaken by its predecessor and leaves at once, as does seq 1.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Longest a frame waits for its predecessor. Above the node link's usual
/// latency under load (a 2 ms linger plus a RabbitMQ hop), short enough that a
/// lost frame costs the conversation only a brief stall before the client syncs.
pub const HOLD: Duration = Duration::from_millis(250);
/// Most conversations whose last seq one session remembers.
pub const MAX_CONVERSATIONS: usize = 256;
/// Most frames held per conversation; past it they all leave, in order.
pub const MAX_HELD: usize = 1_024;

/// What became of the frames offered.
pub struct Released<T> {
    /// To send now, in order.
    pub ready: Vec<T>,
    /// Check this conversation again after this long (frames are held).
    pub check_after: Option<Duration>,
    /// Frames dropped because a later seq had already been released.
    pub late: usize,
}

impl<T> Default for Released<T> {
    fn default() -> Self {
        Released {
            ready: Vec::new(),
            check_after: None,
            late: 0,
        }
    }
}

struct Conversation<T> {
    /// Last seq released to the sockets.
    last: Option<i64>,
    /// Held frames by seq, with their `continues` mark.
    held: BTreeMap<i64, (bool, T)>,
    /// When the current wait for a predecessor began.
    since: Option<Instant>,
    /// When a frame of it last arrived (the least recent idle one is forgotten first).
    touched: Option<Instant>,
}

impl<T> Default for Conversation<T> {
    fn default() -> Self {
        Conversation {
            last: None,
            held: BTreeMap::new(),
            since: None,
            touched: None,
        }
    }
}

impl<T> Conversation<T> {
    /// Releases the run of held frames that follows what was released.
    fn release_run(&mut self, out: &mut Vec<T>) -> bool {
        let mut released = false;
        while let Some((&seq, &(continues, _))) = self.held.first_key_value() {
            let next = match self.last {
                Some(last) => seq == last + 1,
                None => seq == 1 || continues,
            };
            if !next {
                break;
            }
            if let Some((_, (_, item))) = self.held.pop_first() {
                out.push(item);
            }
            self.last = Some(seq);
            released = true;
        }
        released
    }

    /// Releases everything held, in order: the wait is over.
    fn release_all(&mut self, out: &mut Vec<T>) {
        if let Some((&max, _)) = self.held.last_key_value() {
            self.last = Some(max);
        }
        out.extend(std::mem::take(&mut self.held).into_values().map(|(_, t)| t));
        self.since = None;
    }
}

pub struct SeqOrder<T> {
    conversations: HashMap<i64, Conversation<T>>,
}

impl<T> Default for SeqOrder<T> {
    fn default() -> Self {
        SeqOrder {
            conversations: HashMap::new(),
        }
    }
}

impl<T> SeqOrder<T> {
    /// Offers one frame of `conversation` with `seq`.
    pub fn admit(
        &mut self,
        conversation: i64,
        seq: i64,
        continues: bool,
        item: T,
        now: Instant,
    ) -> Released<T> {
        let mut out = Released::default();
        self.make_room(conversation, &mut out.ready);
        let c = self.conversations.entry(conversation).or_default();
        c.touched = Some(now);
        if c.last.is_some_and(|last| seq <= last) || c.held.contains_key(&seq) {
            out.late = 1;
            return out;
        }
        c.held.insert(seq, (continues, item));
        let released = c.release_run(&mut out.ready);
        if c.held.len() > MAX_HELD {
            c.release_all(&mut out.ready);
        } else if c.held.is_empty() {
            c.since = None;
        } else if c.since.is_none() || released {
            // A new gap: its wait starts now (a pending check re-arms itself).
            let first = c.since.is_none();
            c.since = Some(now);
            if first {
                out.check_after = Some(HOLD);
            }
        }
        out
    }

    /// The check [`Released::check_after`] asked for.
    pub fn check(&mut self, conversation: i64, now: Instant) -> Released<T> {
        let mut out = Released::default();
        let Some(c) = self.conversations.get_mut(&conversation) else {
            return out;
        };
        match c.since {
            None => {}
            Some(since) if now.duration_since(since) >= HOLD => c.release_all(&mut out.ready),
            Some(since) => out.check_after = Some(HOLD - now.duration_since(since)),
        }
        out
    }

    /// Keeps at most [`MAX_CONVERSATIONS`]: forgets the idle one heard from
    /// least recently (its next frame is a first frame again), and if every
    /// one is waiting, ends every wait.
    fn make_room(&mut self, conversation: i64, out: &mut Vec<T>) {
        if self.conversations.len() < MAX_CONVERSATIONS
            || self.conversations.contains_key(&conversation)
        {
            return;
        }
        let oldest_idle = self
            .conversations
            .iter()
            .filter(|(_, c)| c.held.is_empty())
            .min_by_key(|(_, c)| c.touched)
            .map(|(id, _)| *id);
        if let Some(id) = oldest_idle {
            self.conversations.remove(&id);
            return;
        }
        for c in self.conversations.values_mut() {
            c.release_all(out);
        }
        self.conversations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        // One fixed origin per test run; only differences matter.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn in_order_frames_pass_at_once() {
        let mut o = SeqOrder::default();
        for s in 1..=3 {
            let r = o.admit(7, s, false, s, at(0));
            assert_eq!(r.ready, vec![s]);
            assert_eq!(r.check_after, None);
        }
    }

    #[test]
    fn an_overtaking_frame_waits_for_its_predecessor() {
        let mut o = SeqOrder::default();
        assert_eq!(o.admit(7, 1, false, 1, at(0)).ready, vec![1]);
        let r = o.admit(7, 3, false, 3, at(1));
        assert!(r.ready.is_empty());
        assert_eq!(r.check_after, Some(HOLD));
        let r = o.admit(7, 4, true, 4, at(2));
        assert!(r.ready.is_empty());
        assert_eq!(r.check_after, None, "one check per wait");
        assert_eq!(o.admit(7, 2, false, 2, at(3)).ready, vec![2, 3, 4]);
        assert!(
            o.check(7, at(300)).ready.is_empty(),
            "nothing left to release"
        );
    }

    #[test]
    fn a_lost_predecessor_ends_the_wait_after_hold_and_late_frames_drop() {
        let mut o = SeqOrder::default();
        o.admit(7, 1, false, 1, at(0));
        o.admit(7, 3, false, 3, at(10));
        let r = o.check(7, at(110));
        assert!(r.ready.is_empty());
        assert_eq!(r.check_after, Some(HOLD - Duration::from_millis(100)));
        assert_eq!(o.check(7, at(260)).ready, vec![3]);
        let r = o.admit(7, 2, false, 2, at(270));
        assert!(r.ready.is_empty());
        assert_eq!(r.late, 1);
        assert_eq!(o.admit(7, 4, false, 4, at(280)).ready, vec![4]);
    }

    #[test]
    fn a_first_frame_leaves_at_once_only_when_nothing_can_overtake_it() {
        let mut o = SeqOrder::default();
        // Continues what the same path sent earlier: nothing in flight before it.
        assert_eq!(o.admit(1, 40, true, 40, at(0)).ready, vec![40]);
        // Seq 1 has no predecessor.
        assert_eq!(o.admit(2, 1, false, 1, at(0)).ready, vec![1]);
        // Otherwise its predecessor may be on its way from another node.
        let r = o.admit(3, 9, false, 9, at(0));
        assert!(r.ready.is_empty());
        assert_eq!(o.admit(3, 8, true, 8, at(5)).ready, vec![8, 9]);
        o.admit(4, 5, false, 5, at(0));
        assert_eq!(o.check(4, at(250)).ready, vec![5]);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut o = SeqOrder::default();
        o.admit(7, 1, false, 1, at(0));
        o.admit(7, 3, false, 3, at(0));
        assert_eq!(o.admit(7, 3, false, 3, at(0)).late, 1);
        assert_eq!(o.admit(7, 1, false, 1, at(0)).late, 1);
        assert_eq!(o.admit(7, 2, false, 2, at(0)).ready, vec![2, 3]);
    }

    #[test]
    fn the_least_recent_idle_conversation_is_forgotten_first() {
        let mut o = SeqOrder::default();
        for c in 0..MAX_CONVERSATIONS as i64 {
            o.admit(c, 1, false, 1, at(u64::try_from(c).unwrap_or(0)));
        }
        // Conversation 0 is heard from again: 1 is now the least recent.
        o.admit(0, 2, false, 2, at(1_000));
        o.admit(9_999, 1, false, 1, at(1_001));
        assert_eq!(o.conversations.len(), MAX_CONVERSATIONS);
        assert!(o.conversations.contains_key(&0) && !o.conversations.contains_key(&1));
        // Conversation 2 still knows its last seq: a late frame drops.
        assert_eq!(o.admit(2, 1, false, 1, at(1_002)).late, 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut o = SeqOrder::default();
        o.admit(1, 1, false, 1, at(0));
        let mut released = 0;
        for s in 3..=(3 + MAX_HELD as i64) {
            released += o.admit(1, s, false, s, at(0)).ready.len();
        }
        assert_eq!(
            released,
            MAX_HELD + 1,
            "past the bound everything held leaves"
        );
        for c in 0..(2 * MAX_CONVERSATIONS as i64) {
            o.admit(100 + c, 5, false, c, at(0));
        }
        assert!(o.conversations.len() <= MAX_CONVERSATIONS);
    }
}
