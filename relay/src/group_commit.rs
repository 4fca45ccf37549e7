//! Group commit: a writer that needs its write durable waits for one flush that started
//! after its write was applied; whoever finds no flush running starts one for everyone
//! waiting, so concurrent writers (uploads, activations) share one `fsync`.
//!
//! [`Tickets`] is the sans-IO core; [`GroupCommit`] (blocking threads) and
//! [`AsyncGroupCommit`] (tokio tasks) are its two shells. [`Combiner`] goes one step
//! further for stores that pay per atomic batch: one caller writes everyone's batch.

use std::sync::{Condvar, Mutex};

/// The bookkeeping: tickets asked, tickets made durable, whether a flush runs.
#[derive(Debug, Default)]
pub struct Tickets {
    asked: u64,
    durable: u64,
    flushing: bool,
}

/// What a waiting writer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Its write is durable.
    Done,
    /// It flushes for every ticket up to this one, then reports with [`Tickets::flushed`].
    Flush(u64),
    /// Another flush runs; wait for it and ask again.
    Wait,
}

impl Tickets {
    /// A ticket for a write already applied.
    pub fn take(&mut self) -> u64 {
        self.asked += 1;
        self.asked
    }

    /// What the holder of `ticket` does next.
    pub fn next(&mut self, ticket: u64) -> Step {
        if self.durable >= ticket {
            Step::Done
        } else if self.flushing {
            Step::Wait
        } else {
            self.flushing = true;
            Step::Flush(self.asked)
        }
    }

    /// The flush for tickets up to `target` ended; on failure nothing became durable.
    pub fn flushed(&mut self, target: u64, ok: bool) {
        self.flushing = false;
        if ok {
            self.durable = self.durable.max(target);
        }
    }
}

/// The blocking shell.
#[derive(Default)]
pub struct GroupCommit {
    tickets: Mutex<Tickets>,
    done: Condvar,
}

impl GroupCommit {
    /// Returns once a write applied before the call is durable, running `flush` at most
    /// once for it and for every writer waiting alongside.
    pub fn wait_durable<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut g = self.tickets.lock().expect("group commit lock");
        let ticket = g.take();
        loop {
            match g.next(ticket) {
                Step::Done => return Ok(()),
                Step::Flush(target) => {
                    drop(g);
                    let r = flush();
                    g = self.tickets.lock().expect("group commit lock");
                    g.flushed(target, r.is_ok());
                    self.done.notify_all();
                    r?;
                }
                Step::Wait => g = self.done.wait(g).expect("group commit lock"),
            }
        }
    }
}

/// Flat combining, the blocking shell: concurrent callers leave their work in a queue;
/// whoever finds nobody combining takes the whole queue and runs it in one go (one
/// atomic batch and one flush for everyone), then hands each caller its result. Where a
/// store seals a buffer per atomic batch (sled does), this is what makes concurrent
/// commits cost one write, not one each.
pub struct Combiner<W, R> {
    state: Mutex<Combining<W, R>>,
    done: Condvar,
}

struct Combining<W, R> {
    next: u64,
    queue: Vec<(u64, W)>,
    results: std::collections::HashMap<u64, R>,
    busy: bool,
}

impl<W, R> Default for Combiner<W, R> {
    fn default() -> Self {
        Combiner {
            state: Mutex::new(Combining {
                next: 0,
                queue: Vec::new(),
                results: Default::default(),
                busy: false,
            }),
            done: Condvar::new(),
        }
    }
}

impl<W, R> Combiner<W, R> {
    /// Runs `work`, maybe with others': `combine` gets the works in the order they came
    /// and returns one result each, in that order.
    pub fn run(&self, work: W, combine: impl Fn(Vec<W>) -> Vec<R>) -> R {
        let mut s = self.state.lock().expect("combiner lock");
        let id = s.next;
        s.next += 1;
        s.queue.push((id, work));
        loop {
            if let Some(r) = s.results.remove(&id) {
                return r;
            }
            if s.busy {
                s = self.done.wait(s).expect("combiner lock");
                continue;
            }
            s.busy = true;
            drop(s);
            // Let the callers already running reach the queue.
            for _ in 0..2 {
                std::thread::yield_now();
            }
            let taken = std::mem::take(&mut self.state.lock().expect("combiner lock").queue);
            let ids: Vec<u64> = taken.iter().map(|(i, _)| *i).collect();
            let results = combine(taken.into_iter().map(|(_, w)| w).collect());
            assert_eq!(results.len(), ids.len(), "one result per work");
            s = self.state.lock().expect("combiner lock");
            s.results.extend(ids.into_iter().zip(results));
            s.busy = false;
            self.done.notify_all();
        }
    }
}

/// Flat combining, the async shell: as [`Combiner`], for tasks. A leader cancelled while
/// it gathers hands the lead on; a waiter cancelled takes its work back.
pub struct AsyncCombiner<W, R> {
    state: Mutex<Combining<W, R>>,
    done: tokio::sync::Notify,
}

impl<W, R> Default for AsyncCombiner<W, R> {
    fn default() -> Self {
        AsyncCombiner {
            state: Mutex::new(Combining {
                next: 0,
                queue: Vec::new(),
                results: Default::default(),
                busy: false,
            }),
            done: tokio::sync::Notify::new(),
        }
    }
}

/// Undoes a caller's part if its future is dropped before its result came.
struct Pending<'a, W, R> {
    c: &'a AsyncCombiner<W, R>,
    id: u64,
    leading: bool,
    finished: bool,
}

impl<W, R> Drop for Pending<'_, W, R> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut s = self.c.state.lock().expect("combiner lock");
        s.queue.retain(|(i, _)| *i != self.id);
        s.results.remove(&self.id);
        if self.leading {
            s.busy = false;
        }
        drop(s);
        self.c.done.notify_waiters();
    }
}

impl<W, R> AsyncCombiner<W, R> {
    /// Runs `work`, maybe with others': `combine` gets the works in the order they came
    /// and returns one result each, in that order.
    pub async fn run(&self, work: W, combine: impl Fn(Vec<W>) -> Vec<R>) -> R {
        let id = {
            let mut s = self.state.lock().expect("combiner lock");
            let id = s.next;
            s.next += 1;
            s.queue.push((id, work));
            id
        };
        let mut me = Pending {
            c: self,
            id,
            leading: false,
            finished: false,
        };
        loop {
            // Registered before the state is read, so no wake-up falls between the two.
            let woken = self.done.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut s = self.state.lock().expect("combiner lock");
                if let Some(r) = s.results.remove(&id) {
                    me.finished = true;
                    return r;
                }
                if !s.busy {
                    s.busy = true;
                    me.leading = true;
                }
            }
            if !me.leading {
                woken.await;
                continue;
            }
            gather().await;
            let taken = std::mem::take(&mut self.state.lock().expect("combiner lock").queue);
            let ids: Vec<u64> = taken.iter().map(|(i, _)| *i).collect();
            let results = combine(taken.into_iter().map(|(_, w)| w).collect());
            assert_eq!(results.len(), ids.len(), "one result per work");
            let mut s = self.state.lock().expect("combiner lock");
            s.results.extend(ids.into_iter().zip(results));
            s.busy = false;
            me.leading = false;
            drop(s);
            self.done.notify_waiters();
        }
    }
}

/// Before a flush, lets the tasks already runnable on this runtime (requests received,
/// being checked) reach their write and join the flush: two turns of the run queue,
/// after the I/O driver. Alone on the runtime this costs microseconds; under load it
/// trades them for several times fewer flushes (docs/benchmarks.md, `ingest`).
pub async fn gather() {
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}

/// The async shell.
#[derive(Default)]
pub struct AsyncGroupCommit {
    tickets: Mutex<Tickets>,
    done: tokio::sync::Notify,
}

impl AsyncGroupCommit {
    /// Returns once a write applied before the call is durable, awaiting `flush` at most
    /// once for it and for every writer waiting alongside.
    pub async fn wait_durable<E, F, Fut>(&self, flush: F) -> Result<(), E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let ticket = self.tickets.lock().expect("group commit lock").take();
        loop {
            // Registered before the state is read, so no wake-up falls between the two.
            let woken = self.done.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let step = self.tickets.lock().expect("group commit lock").next(ticket);
            match step {
                Step::Done => return Ok(()),
                Step::Flush(target) => {
                    let r = flush().await;
                    self.tickets
                        .lock()
                        .expect("group commit lock")
                        .flushed(target, r.is_ok());
                    self.done.notify_waiters();
                    r?;
                }
                Step::Wait => woken.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn one_flush_covers_every_ticket_taken_before_it_started() {
        let mut t = Tickets::default();
        let (a, b) = (t.take(), t.take());
        assert_eq!(t.next(a), Step::Flush(2));
        let c = t.take();
        assert_eq!(t.next(b), Step::Wait);
        assert_eq!(t.next(c), Step::Wait);
        t.flushed(2, true);
        assert_eq!(t.next(a), Step::Done);
        assert_eq!(t.next(b), Step::Done);
        // c was taken while the flush ran: the flush may have missed its write.
        assert_eq!(t.next(c), Step::Flush(3));
    }

    #[test]
    fn a_failed_flush_makes_nothing_durable() {
        let mut t = Tickets::default();
        let a = t.take();
        assert_eq!(t.next(a), Step::Flush(1));
        t.flushed(1, false);
        assert_eq!(t.next(a), Step::Flush(1));
    }

    #[test]
    fn combined_works_get_their_own_results_in_fewer_runs() {
        let c = std::sync::Arc::new(Combiner::<u64, u64>::default());
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..16u64)
            .map(|i| {
                let (c, runs) = (c.clone(), runs.clone());
                std::thread::spawn(move || {
                    (0..50u64)
                        .map(|j| {
                            let w = i * 1000 + j;
                            let r = c.run(w, |ws| {
                                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                ws.iter().map(|w| w * 2).collect()
                            });
                            assert_eq!(r, w * 2);
                        })
                        .count()
                })
            })
            .collect();
        let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(done, 800);
        let n = runs.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < 800, "{n} runs for 800 works: nothing was combined");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_works_are_combined_and_a_cancelled_leader_hands_on() {
        let c = std::sync::Arc::new(AsyncCombiner::<u64, u64>::default());
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        // A caller dropped while it leads (before combining) must not stall the others.
        {
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            let mut lead = Box::pin(c.run(7, |ws| ws));
            assert!(lead.as_mut().poll(&mut cx).is_pending(), "it gathers first");
        }
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (c, runs) = (c.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                c.run(i, |ws| {
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ws.iter().map(|w| w + 100).collect()
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i as u64 + 100);
        }
        let n = runs.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..64).contains(&n), "{n} runs for 64 works");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_writers_share_flushes() {
        let commits = std::sync::Arc::new(AsyncGroupCommit::default());
        let flushes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (commits, flushes) = (commits.clone(), flushes.clone());
            tasks.push(tokio::spawn(async move {
                commits
                    .wait_durable(|| {
                        let flushes = flushes.clone();
                        async move {
                            flushes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            Ok::<(), ()>(())
                        }
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = flushes.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..64).contains(&n), "{n} flushes for 64 writers");
    }
}
