//! The store watchdog's core (issue 23), sans IO: operations on a store register while
//! they run; [`Watchdog::overdue`], given the time, names each one that has run longer
//! than the limit, once, and counts it. `mesd` and `mes-relay` each drive one from a
//! thread that logs what it names (and the relay serves the count as a metric, the
//! daemon in its status), so a store that stops making progress is seen within seconds
//! instead of as a silent hang.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An operation running longer than this is reported.
pub const SLOW: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Inflight {
    next: u64,
    running: BTreeMap<u64, (&'static str, Instant, bool)>,
    slow_total: u64,
}

/// Operations in flight, and how many ever ran too long.
pub struct Watchdog {
    inner: Mutex<Inflight>,
    started: std::sync::Once,
}

/// An operation in flight; it ends when dropped.
pub struct Running<'a> {
    dog: &'a Watchdog,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.dog
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .running
            .remove(&self.id);
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Self::new()
    }
}

impl Watchdog {
    /// A watchdog with nothing in flight (usable in a `static`).
    pub const fn new() -> Self {
        Watchdog {
            inner: Mutex::new(Inflight {
                next: 0,
                running: BTreeMap::new(),
                slow_total: 0,
            }),
            started: std::sync::Once::new(),
        }
    }

    /// Starts, once, a thread that every second hands `report` each operation running
    /// longer than [`SLOW`] (the shell logs it); `Err` if the thread could not start.
    pub fn watch(&'static self, report: fn(&'static str, Duration)) -> Result<(), std::io::Error> {
        let mut outcome = Ok(());
        self.started.call_once(|| {
            outcome = std::thread::Builder::new()
                .name("store-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(1));
                    for (what, ran) in self.overdue(Instant::now(), SLOW) {
                        report(what, ran);
                    }
                })
                .map(drop);
        });
        outcome
    }

    /// Registers an operation started at `now`.
    pub fn begin(&self, what: &'static str, now: Instant) -> Running<'_> {
        let mut i = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = i.next;
        i.next += 1;
        i.running.insert(id, (what, now, false));
        Running { dog: self, id }
    }

    /// Operations running for longer than `limit` at `now` and not reported yet: each is
    /// named once, with how long it has run, and counted.
    pub fn overdue(&self, now: Instant, limit: Duration) -> Vec<(&'static str, Duration)> {
        let mut i = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for (what, start, reported) in i.running.values_mut() {
            let ran = now.saturating_duration_since(*start);
            if !*reported && ran > limit {
                *reported = true;
                out.push((*what, ran));
            }
        }
        i.slow_total += out.len() as u64;
        out
    }

    /// Operations that ever ran longer than the limit (as [`Watchdog::overdue`] saw).
    pub fn slow_total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .slow_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_operation_is_named_once_and_counted_and_a_quick_one_never() {
        let dog = Watchdog::new();
        let t0 = Instant::now();
        let quick = dog.begin("apply", t0);
        drop(quick);
        let slow = dog.begin("flush", t0);
        assert!(dog.overdue(t0 + SLOW / 2, SLOW).is_empty(), "not yet");
        let named = dog.overdue(t0 + SLOW * 2, SLOW);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].0, "flush");
        assert!(dog.overdue(t0 + SLOW * 3, SLOW).is_empty(), "named once");
        assert_eq!(dog.slow_total(), 1);
        drop(slow);
        assert!(dog.overdue(t0 + SLOW * 4, SLOW).is_empty());
    }
}
