//! The sans-IO core of the sync engine: per-volume progress and the decision of what to
//! do next, plus reconnection backoff. No sockets, no clock, no randomness of its own:
//! the shell (or the simulator) feeds events and executes the steps.
//!
//! Invariants: only durable local changes are uploaded; local changes are uploaded in
//! order and at least once; the cursor only moves forward, past bundles that were applied
//! and stored.

use mes_protocol::ids::Seq;
use std::time::Duration;

/// Progress of one volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeProgress {
    /// Last relay sequence applied and stored.
    pub cursor: Seq,
    /// Highest relay sequence known to exist.
    pub head: Seq,
    /// Local changes `1..=uploaded` are acknowledged by the relay.
    pub uploaded: u64,
    /// Local changes `1..=durable` are flushed to disk (and may be uploaded).
    pub durable: u64,
    /// An upload is in flight.
    pub uploading: bool,
    /// A fetch is in flight.
    pub fetching: bool,
    /// The relay holds nothing before this seq any more (pruned behind a snapshot).
    pub pruned: Seq,
    /// The last step was refused (no key yet, conflict): wait for news before retrying.
    pub stalled: bool,
    /// The last upload was refused (e.g. the volume moved to a newer generation): fetch
    /// first, then retry.
    pub upload_blocked: bool,
}

/// What to do next for a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Upload local changes `from..=to`.
    Upload {
        /// First local change.
        from: u64,
        /// Last local change.
        to: u64,
    },
    /// Fetch bundles after the cursor.
    Fetch {
        /// Cursor.
        after: Seq,
    },
    /// The cursor is behind the pruned point: converge from the snapshot first.
    Snapshot,
}

impl VolumeProgress {
    /// Local changes durable but not acknowledged.
    pub fn pending(&self) -> u64 {
        self.durable.saturating_sub(self.uploaded)
    }

    /// The next step, marking it in flight; uploads before fetches, at most `max_upload`
    /// changes per upload.
    pub fn next_step(&mut self, max_upload: u64) -> Option<Step> {
        if self.stalled {
            return None;
        }
        if !self.uploading && !self.upload_blocked && self.durable > self.uploaded {
            self.uploading = true;
            let from = self.uploaded + 1;
            return Some(Step::Upload {
                from,
                to: self.durable.min(self.uploaded + max_upload),
            });
        }
        if !self.fetching && self.head > self.cursor {
            self.fetching = true;
            if self.pruned > self.cursor {
                return Some(Step::Snapshot);
            }
            return Some(Step::Fetch { after: self.cursor });
        }
        None
    }

    /// Local changes up to `n` are durable.
    pub fn on_durable(&mut self, n: u64) {
        self.stalled = false;
        self.upload_blocked = false;
        self.durable = self.durable.max(n);
    }

    /// The relay acknowledged local changes up to `to`; it now holds up to `relay_last`.
    pub fn on_uploaded(&mut self, to: u64, relay_last: Seq) {
        self.uploading = false;
        self.uploaded = self.uploaded.max(to);
        self.head = self.head.max(relay_last);
    }

    /// The relay announced its head.
    pub fn on_head(&mut self, head: Seq) {
        self.stalled = false;
        self.head = self.head.max(head);
    }

    /// A fetch (or snapshot) was applied and stored up to `cursor`.
    pub fn on_fetched(&mut self, cursor: Seq, head: Seq, pruned: Seq) {
        self.fetching = false;
        self.upload_blocked = false;
        self.cursor = self.cursor.max(cursor);
        self.head = self.head.max(head);
        self.pruned = self.pruned.max(pruned);
    }

    /// The connection dropped: whatever was in flight will be redone.
    pub fn on_disconnected(&mut self) {
        self.uploading = false;
        self.fetching = false;
        self.upload_blocked = false;
    }

    /// Time to retry refused steps (a periodic tick: what was refused may now pass, e.g.
    /// once the space is registered or a key envelope arrived).
    pub fn retry_refused(&mut self) {
        self.stalled = false;
        self.upload_blocked = false;
    }

    /// The relay refused an upload: fetch what is new before trying again.
    pub fn on_upload_refused(&mut self) {
        self.uploading = false;
        self.upload_blocked = true;
    }

    /// Fully synced with what is known of the relay.
    pub fn idle(&self) -> bool {
        self.pending() == 0 && self.cursor >= self.head && !self.uploading && !self.fetching
    }
}

/// Exponential backoff with full jitter, capped; the random draw is an input.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, given a uniform draw in `[0, 1)`.
    pub fn next_delay(&mut self, uniform: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + uniform.clamp(0.0, 1.0) / 2.0)
    }

    /// A connection succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_only_durable_changes_then_fetches() {
        let mut v = VolumeProgress::default();
        assert_eq!(v.next_step(100), None);
        v.on_durable(3);
        assert_eq!(v.next_step(2), Some(Step::Upload { from: 1, to: 2 }));
        assert_eq!(v.next_step(2), None, "one upload at a time");
        v.on_uploaded(2, Seq(5));
        assert_eq!(v.next_step(2), Some(Step::Upload { from: 3, to: 3 }));
        assert_eq!(v.next_step(2), Some(Step::Fetch { after: Seq(0) }));
        v.on_disconnected();
        assert_eq!(
            v.next_step(2),
            Some(Step::Upload { from: 3, to: 3 }),
            "redone after a drop"
        );
        v.on_uploaded(3, Seq(6));
        v.fetching = false;
        v.pruned = Seq(4);
        assert_eq!(v.next_step(2), Some(Step::Snapshot));
        v.on_fetched(Seq(6), Seq(6), Seq(4));
        assert!(v.idle());
        v.on_fetched(Seq(2), Seq(1), Seq(0));
        assert_eq!(v.cursor, Seq(6), "the cursor never goes back");
    }

    #[test]
    fn a_refused_upload_fetches_first_and_is_retried_later() {
        let mut v = VolumeProgress::default();
        v.on_durable(1);
        assert_eq!(v.next_step(8), Some(Step::Upload { from: 1, to: 1 }));
        v.on_upload_refused();
        assert_eq!(v.next_step(8), None, "nothing to fetch, upload blocked");
        v.retry_refused();
        assert_eq!(
            v.next_step(8),
            Some(Step::Upload { from: 1, to: 1 }),
            "the tick retries it"
        );
        v.on_upload_refused();
        v.on_head(Seq(3));
        assert_eq!(
            v.next_step(8),
            Some(Step::Fetch { after: Seq(0) }),
            "fetch before retrying"
        );
        v.on_fetched(Seq(3), Seq(3), Seq(0));
        assert_eq!(v.next_step(8), Some(Step::Upload { from: 1, to: 1 }));
    }

    #[test]
    fn backoff_grows_jitters_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let d: Vec<_> = (0..10).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(d[0], Duration::from_millis(100));
        assert_eq!(d[3], Duration::from_millis(800));
        assert_eq!(d[9], Duration::from_secs(5));
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
    }
}
