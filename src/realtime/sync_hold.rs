//! Live frames held back on one socket while syncs of a conversation are served.
//!
//! A `sync` answers with stored messages and then `synced`; live frames of the
//! same conversation that arrive meanwhile must not overtake the page, nor be
//! sent twice. A client may ask for several syncs of one conversation at once
//! (a reconnect racing a scroll, say): the frames stay held until the last of
//! them has answered, and only then leave, minus what the syncs already sent.

use std::sync::Arc;

/// Most live frames held per conversation and socket.
pub const MAX_HELD_FRAMES: usize = 4_096;

/// How one sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Sent every stored message up to and including `up_to`.
    Complete { up_to: i64 },
    /// Stopped at the page limit: the client syncs again from where it stopped.
    Truncated,
    /// Sent nothing (an error went out instead).
    Failed,
}

/// The held frames were more than [`MAX_HELD_FRAMES`].
#[derive(Debug, PartialEq, Eq)]
pub struct HoldFull;

#[derive(Default)]
pub struct SyncHold {
    /// Syncs of this conversation started and not yet answered.
    pending: usize,
    held: Vec<(i64, Arc<str>)>,
    /// Highest seq a complete sync has sent up to.
    covered: Option<i64>,
    /// A sync stopped at its limit: the client will sync again.
    truncated: bool,
}

impl SyncHold {
    pub fn begin(&mut self) {
        self.pending += 1;
    }

    pub fn hold(&mut self, seq: i64, frame: Arc<str>) -> Result<(), HoldFull> {
        if self.held.len() >= MAX_HELD_FRAMES {
            return Err(HoldFull);
        }
        self.held.push((seq, frame));
        Ok(())
    }

    /// Records one answered sync. `None` while others are still outstanding
    /// (keep holding); otherwise the frames to send now, in arrival order,
    /// and the hold is over.
    pub fn finish(&mut self, outcome: SyncOutcome) -> Option<Vec<Arc<str>>> {
        self.pending = self.pending.saturating_sub(1);
        match outcome {
            SyncOutcome::Complete { up_to } => {
                self.covered = Some(self.covered.map_or(up_to, |c| c.max(up_to)));
            }
            SyncOutcome::Truncated => self.truncated = true,
            SyncOutcome::Failed => {}
        }
        if self.pending > 0 {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        Some(if self.truncated {
            // The client's next sync returns these, in order, after the rest.
            Vec::new()
        } else if let Some(covered) = self.covered {
            held.into_iter()
                .filter(|(seq, _)| *seq > covered)
                .map(|(_, f)| f)
                .collect()
        } else {
            // Every sync failed: nothing was sent, so nothing is a duplicate.
            held.into_iter().map(|(_, f)| f).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: i64) -> Arc<str> {
        Arc::from(format!("m{seq}"))
    }

    fn names(v: Option<Vec<Arc<str>>>) -> Option<Vec<String>> {
        v.map(|v| v.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn one_sync_releases_what_it_did_not_send() {
        let mut h = SyncHold::default();
        h.begin();
        for s in [4, 5, 6] {
            h.hold(s, frame(s)).expect("room");
        }
        let out = h.finish(SyncOutcome::Complete { up_to: 5 });
        assert_eq!(names(out), Some(vec!["m6".to_owned()]));
    }

    #[test]
    fn two_syncs_hold_until_the_second_answers() {
        let mut h = SyncHold::default();
        h.begin();
        h.begin();
        h.hold(7, frame(7)).expect("room");
        // The first answer must not release anything: the second page is still to come.
        assert_eq!(h.finish(SyncOutcome::Complete { up_to: 6 }), None);
        h.hold(8, frame(8)).expect("room");
        h.hold(9, frame(9)).expect("room");
        let out = h.finish(SyncOutcome::Complete { up_to: 8 });
        assert_eq!(names(out), Some(vec!["m9".to_owned()]));
    }

    #[test]
    fn a_truncated_sync_drops_the_held_frames_for_the_next_sync() {
        let mut h = SyncHold::default();
        h.begin();
        h.begin();
        h.hold(1_001, frame(1_001)).expect("room");
        assert_eq!(h.finish(SyncOutcome::Complete { up_to: 1_000 }), None);
        assert_eq!(names(h.finish(SyncOutcome::Truncated)), Some(vec![]));
    }

    #[test]
    fn failed_syncs_release_everything_held() {
        let mut h = SyncHold::default();
        h.begin();
        h.hold(3, frame(3)).expect("room");
        let out = h.finish(SyncOutcome::Failed);
        assert_eq!(names(out), Some(vec!["m3".to_owned()]));
    }

    #[test]
    fn holding_is_bounded() {
        let mut h = SyncHold::default();
        h.begin();
        for s in 0..MAX_HELD_FRAMES {
            h.hold(i64::try_from(s).expect("small"), frame(0))
                .expect("room");
        }
        assert_eq!(h.hold(0, frame(0)), Err(HoldFull));
    }
}
