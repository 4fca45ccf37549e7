//! Closing an embedded store off the caller's thread (issue 23). sled flushes when the
//! last handle of a store goes, and that flush has been seen to wait for ever for a write
//! no thread makes (the `campaign` benchmark, 2026-12-07: every acknowledged write already
//! flushed, the relay's enrolment tables dropped at runtime shutdown, `make_stable` parked
//! on its condvar with every sled IO thread idle). Nothing acknowledged depends on that
//! flush (a write is acknowledged only after an explicit flush returned), so a store's
//! owner keeps a [`CloseLater`] holding one more handle: when the owner goes, a detached
//! thread drops that last handle a moment later. A flush that never returns then holds
//! that thread only, never a runtime worker or the process's exit, and the watchdog
//! reports it.

use std::time::{Duration, Instant};

use crate::watchdog::Watchdog;

/// Closes started and not finished, in this process.
static PENDING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

fn pending() -> std::sync::MutexGuard<'static, usize> {
    PENDING
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until every close started in this process finished, at most `limit`; whether
/// they all did. A shutdown calls it after dropping its store, so the directory's lock is
/// free when it returns (an operator command may open it next).
pub fn wait_idle(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut n = pending();
    while *n > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        n = PENDING
            .1
            .wait_timeout(n, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    true
}

/// Waits (at most `limit`) until `shared` is held by its caller alone, then drops it and
/// waits for the closes that started: a shutdown's last step.
pub async fn release_and_wait<T: Send + Sync + 'static>(
    shared: std::sync::Arc<T>,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while std::sync::Arc::strong_count(&shared) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(shared);
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::task::spawn_blocking(move || wait_idle(left))
        .await
        .unwrap_or(false)
}

/// How long the closing thread waits, so the owner's other handles are gone first and
/// its own is the last.
pub const CLOSE_DELAY: Duration = Duration::from_millis(20);

/// Holds a handle (a clone of a store) and drops it on a detached thread when dropped.
pub struct CloseLater<T: Send + 'static> {
    what: &'static str,
    handle: Option<T>,
    watchdog: &'static Watchdog,
}

impl<T: Send + 'static> CloseLater<T> {
    /// Keeps `handle` until this is dropped; `what` names it to the watchdog.
    pub fn new(what: &'static str, handle: T, watchdog: &'static Watchdog) -> Self {
        CloseLater {
            what,
            handle: Some(handle),
            watchdog,
        }
    }
}

impl<T: Send + 'static> Drop for CloseLater<T> {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        let (what, watchdog) = (self.what, self.watchdog);
        *pending() += 1;
        let done = || {
            *pending() -= 1;
            PENDING.1.notify_all();
        };
        let spawned = std::thread::Builder::new()
            .name("store-close".into())
            .spawn(move || {
                std::thread::sleep(CLOSE_DELAY);
                let watched = watchdog.begin(what, Instant::now());
                drop(handle);
                drop(watched);
                done();
            });
        if spawned.is_err() {
            done();
        }
        // With no thread to spare, the closure and its handle were dropped just now:
        // closed on this thread, as sled would have.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A handle whose drop never returns (sled's flush that waits for ever).
    struct Stuck(Arc<AtomicBool>);
    impl Drop for Stuck {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
            loop {
                std::thread::park();
            }
        }
    }

    static DOG: Watchdog = Watchdog::new();

    /// The owner's drop returns at once though the handle's drop never does, and the
    /// watchdog sees the close running. Control: the handle's drop was reached.
    #[test]
    fn a_close_that_never_returns_holds_no_one() {
        let reached = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        drop(CloseLater::new("stuck store", Stuck(reached.clone()), &DOG));
        assert!(start.elapsed() < CLOSE_DELAY);
        while !reached.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let later = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            DOG.overdue(later, Duration::from_secs(5))
                .iter()
                .map(|(w, _)| *w)
                .collect::<Vec<_>>(),
            vec!["stuck store"]
        );
    }
}
