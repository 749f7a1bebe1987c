//! The recent messages of active conversations, in memory, so that `sync`
//! after a short disconnect is served without the database.
//!
//! Filled by the chat batcher after each commit, in `seq` order (one batcher
//! per conversation), so a ring is always a contiguous run of committed
//! messages. A ring answers a sync only if it reaches back to the first
//! message asked for; otherwise the database does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::realtime::frames::MessageView;

/// Messages kept per conversation.
pub const PER_CONVERSATION: usize = 256;
/// Conversations kept; past it the map is cleared (the database still answers).
pub const MAX_CONVERSATIONS: usize = 20_000;
/// Bytes of message bodies kept in all; past it the map is cleared.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Recent {
    rings: DashMap<i64, VecDeque<MessageView>>,
    /// Approximate bytes held (bodies and client ids).
    bytes: std::sync::atomic::AtomicUsize,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl Recent {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops a conversation's ring (a message in it was changed, e.g. removed
    /// by a moderator): the next sync reads the database.
    pub fn forget(&self, conversation_id: i64) {
        if let Some((_, ring)) = self.rings.remove(&conversation_id) {
            let freed: usize = ring
                .iter()
                .map(|x| x.body.len() + x.client_id.len() + 64)
                .sum();
            let held = self.bytes.load(Ordering::Relaxed);
            self.bytes.fetch_sub(freed.min(held), Ordering::Relaxed);
        }
    }

    /// Changes the kept entry at `seq` (an edit or deletion of it
    /// committed), if this ring holds it.
    pub fn amend(&self, conversation_id: i64, seq: i64, f: impl FnOnce(&mut MessageView)) {
        let Some(mut ring) = self.rings.get_mut(&conversation_id) else {
            return;
        };
        let Some(first) = ring.front().map(|m| m.seq) else {
            return;
        };
        let at = usize::try_from(seq - first).ok();
        if let Some(m) = at.and_then(|i| ring.get_mut(i)).filter(|m| m.seq == seq) {
            let before = m.body.len();
            f(m);
            let after = m.body.len();
            // Approximate, like every count here: the body is what varies.
            if after > before {
                self.bytes.fetch_add(after - before, Ordering::Relaxed);
            } else {
                let freed = (before - after).min(self.bytes.load(Ordering::Relaxed));
                self.bytes.fetch_sub(freed, Ordering::Relaxed);
            }
        }
    }

    /// Blanks the kept edits of the message at `seq` (it was deleted).
    pub fn blank_edits_of(&self, conversation_id: i64, seq: i64) {
        if let Some(mut ring) = self.rings.get_mut(&conversation_id) {
            for m in ring.iter_mut() {
                if m.kind == "edit" && m.target_seq == Some(seq) {
                    m.body.clear();
                }
            }
        }
    }

    /// Appends a committed message.
    pub fn push(&self, m: &MessageView) {
        let size = m.body.len() + m.client_id.len() + 64;
        let full = self.bytes.load(Ordering::Relaxed) + size > MAX_BYTES;
        if full
            || (self.rings.len() >= MAX_CONVERSATIONS
                && !self.rings.contains_key(&m.conversation_id))
        {
            self.rings.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let mut ring = self.rings.entry(m.conversation_id).or_default();
        // Not contiguous (another node wrote, or we restarted): start over.
        if ring.back().is_some_and(|last| last.seq + 1 != m.seq) {
            let freed: usize = ring
                .iter()
                .map(|x| x.body.len() + x.client_id.len() + 64)
                .sum();
            self.bytes.fetch_sub(
                freed.min(self.bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            ring.clear();
        }
        ring.push_back(m.clone());
        if ring.len() > PER_CONVERSATION {
            if let Some(old) = ring.pop_front() {
                let freed = old.body.len() + old.client_id.len() + 64;
                self.bytes.fetch_sub(
                    freed.min(self.bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Messages with `seq > after_seq` (at most `limit`) and the latest seq,
    /// if this ring holds every one of them.
    pub fn after(
        &self,
        conversation_id: i64,
        after_seq: i64,
        limit: usize,
    ) -> Option<(Vec<MessageView>, i64)> {
        let found = self.rings.get(&conversation_id).and_then(|ring| {
            let first = ring.front()?.seq;
            let last = ring.back()?.seq;
            (first <= after_seq + 1).then(|| {
                let items = ring
                    .iter()
                    .filter(|m| m.seq > after_seq)
                    .take(limit)
                    .cloned()
                    .collect();
                (items, last)
            })
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(seq: i64) -> MessageView {
        MessageView {
            conversation_id: 1,
            message_id: seq,
            seq,
            sender_id: 1,
            body: String::new(),
            sent_at: String::new(),
            client_id: seq.to_string(),
            kind: "text".into(),
            target_seq: None,
            data: None,
            edited_at: None,
            deleted: false,
        }
    }

    #[test]
    fn covers_only_contiguous_ranges() {
        let r = Recent::new();
        for s in 1..=300 {
            r.push(&m(s));
        }
        // Kept: 45..=300.
        assert!(r.after(1, 10, 1000).is_none(), "older than the ring");
        let (items, last) = r.after(1, 44, 1000).unwrap();
        assert_eq!((items.len(), items[0].seq, last), (256, 45, 300));
        let (items, last) = r.after(1, 300, 1000).unwrap();
        assert_eq!((items.len(), last), (0, 300));
        let (items, _) = r.after(1, 100, 5).unwrap();
        assert_eq!(
            items.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![101, 102, 103, 104, 105]
        );
        // A gap starts the ring over.
        r.push(&m(400));
        assert!(r.after(1, 300, 10).is_none());
        assert_eq!(r.after(1, 399, 10).unwrap().1, 400);
        assert!(r.after(2, 0, 10).is_none());
    }
}
