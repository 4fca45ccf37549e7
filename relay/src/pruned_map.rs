//! Maps filled by what callers ask for, swept of what nobody holds any more (issue 22
//! finding 5): a stranger asking about a million random ids leaves nothing behind.
//!
//! [`Sweep`] decides when: a map is swept each time it has doubled since its last sweep
//! (so the cost is amortised, and a map of live entries is never swept in a loop).
//! [`LockMap`] is a map of per-key locks whose unused locks go at the next sweep.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Smallest size at which a map is swept.
const FLOOR: usize = 1024;

/// When a map has grown enough to be swept.
#[derive(Debug)]
pub struct Sweep(AtomicUsize);

impl Default for Sweep {
    fn default() -> Self {
        Sweep(AtomicUsize::new(FLOOR))
    }
}

impl Sweep {
    /// Whether a map of `len` entries should be swept now.
    pub fn due(&self, len: usize) -> bool {
        len > self.0.load(Ordering::Relaxed)
    }

    /// Records the size left after a sweep: the next is due at twice that.
    pub fn swept(&self, len: usize) {
        self.0.store((len * 2).max(FLOOR), Ordering::Relaxed);
    }

    /// Sweeps `map` of the entries `keep` refuses, when due.
    pub fn maybe<K, V>(&self, map: &mut HashMap<K, V>, keep: impl FnMut(&K, &mut V) -> bool) {
        if self.due(map.len()) {
            map.retain(keep);
            self.swept(map.len());
        }
    }
}

/// Locks by key, created on first use and forgotten once nobody holds them.
pub struct LockMap<K, L> {
    locks: Mutex<HashMap<K, Arc<L>>>,
    sweep: Sweep,
}

impl<K, L> Default for LockMap<K, L> {
    fn default() -> Self {
        LockMap {
            locks: Mutex::new(HashMap::new()),
            sweep: Sweep::default(),
        }
    }
}

impl<K: Hash + Eq + Copy, L: Default> LockMap<K, L> {
    /// The lock of `key`.
    pub fn get(&self, key: K) -> Arc<L> {
        let mut m = self.locks.lock().expect("lock map");
        // Only the map holds an unused lock.
        self.sweep.maybe(&mut m, |_, l| Arc::strong_count(l) > 1);
        m.entry(key).or_default().clone()
    }

    /// Locks currently remembered (tests).
    pub fn len(&self) -> usize {
        self.locks.lock().expect("lock map").len()
    }

    /// Whether no lock is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million keys asked once leave at most a sweep's worth of locks; a lock someone
    /// holds survives every sweep (control: it is still the same lock afterwards).
    #[test]
    fn unused_locks_are_forgotten_and_held_ones_kept() {
        let map: LockMap<u64, tokio::sync::Mutex<()>> = LockMap::default();
        let held = map.get(u64::MAX);
        for k in 0..1_000_000u64 {
            drop(map.get(k));
        }
        assert!(map.len() <= 2 * FLOOR + 1, "{} locks kept", map.len());
        assert!(Arc::ptr_eq(&held, &map.get(u64::MAX)));
    }
}
