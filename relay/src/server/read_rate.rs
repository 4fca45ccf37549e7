//! How fast one connection may send the relay bytes (issue 22 finding 5): a token
//! bucket, sans IO. A connection over its rate is simply not read for a while, so QUIC's
//! flow control slows its peer down; one flooding device costs the relay at most its
//! rate, whatever it sends. The burst lets a device send a whole snapshot at once.

use std::time::{Duration, Instant};

/// A rate and a burst, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Bytes per second, sustained.
    pub per_second: u64,
    /// Bytes that may come at once after a quiet while.
    pub burst: u64,
}

/// The bucket of one connection.
#[derive(Debug)]
pub struct ReadRate {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl ReadRate {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Instant) -> Self {
        ReadRate {
            rate,
            tokens: rate.burst as f64,
            last: now,
        }
    }

    /// Takes `bytes` that just arrived at `now`; how long to wait before reading more.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Duration {
        let per_second = self.rate.per_second.max(1) as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * per_second).min(self.rate.burst as f64);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / per_second)
        }
    }
}

impl ReadRate {
    /// Returns units taken by a [`ReadRate::take`] that was then refused.
    pub fn give_back(&mut self, units: usize) {
        self.tokens = (self.tokens + units as f64).min(self.rate.burst as f64);
    }

    /// Whether the bucket would be full at `now` (nothing recent to remember).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate.per_second as f64 >= self.rate.burst as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burst passes at once, the rate holds after it, and a quiet while refills the
    /// bucket (control: a sender within its rate never waits).
    #[test]
    fn a_burst_passes_and_the_rate_holds_after() {
        let t0 = Instant::now();
        let mut r = ReadRate::new(
            Rate {
                per_second: 1000,
                burst: 5000,
            },
            t0,
        );
        assert_eq!(r.take(5000, t0), Duration::ZERO);
        assert_eq!(r.take(1000, t0), Duration::from_secs(1));
        // After the wait it asked for and one more second, 1000 bytes are free again.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(r.take(1000, t2), Duration::ZERO);
        let mut steady = ReadRate::new(
            Rate {
                per_second: 1000,
                burst: 1000,
            },
            t0,
        );
        for s in 1..10 {
            assert_eq!(
                steady.take(1000, t0 + Duration::from_secs(s)),
                Duration::ZERO
            );
        }
    }
}
