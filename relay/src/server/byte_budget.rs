//! Memory bounded in bytes, not in frames (issue 22 finding 5).
//!
//! A [`ByteBudget`] hands out permits counted in bytes; whoever holds a frame's bytes
//! holds its permit, and the bytes return when the frame is written or handled. A request
//! larger than the whole budget takes the whole budget (so one frame at the largest
//! allowed size always fits, alone). Waiting for a permit is the backpressure: a
//! connection whose replies its peer does not read waits, and its writer's stall timeout
//! then closes it.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of bytes.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    capacity: usize,
}

/// Bytes held from a [`ByteBudget`] until dropped.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Held {
    /// Holds nothing.
    pub fn none() -> Self {
        Held(None)
    }
}

impl ByteBudget {
    /// A pool of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ByteBudget {
            bytes: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits until `len` bytes (at most the whole pool) are free, and holds them.
    pub async fn hold(&self, len: usize) -> Held {
        let n = len.clamp(1, self.capacity) as u32;
        match self.bytes.clone().acquire_many_owned(n).await {
            Ok(p) => Held(Some(p)),
            // The semaphore is never closed.
            Err(_) => Held(None),
        }
    }

    /// Bytes free now (metrics, tests).
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// The pool's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The relay-wide pools: bytes of requests being read or handled, and of replies queued
/// or being written, across all connections ([`crate::defaults`]).
#[derive(Clone, Debug)]
pub struct RelayBudgets {
    /// Request frames of [`crate::defaults::SMALL_FRAME`] or more.
    pub requests: ByteBudget,
    /// Replies of [`crate::defaults::SMALL_FRAME`] or more.
    pub replies: ByteBudget,
}

impl Default for RelayBudgets {
    fn default() -> Self {
        RelayBudgets {
            requests: ByteBudget::new(crate::defaults::REQUEST_BYTES),
            replies: ByteBudget::new(crate::defaults::REPLY_BYTES),
        }
    }
}

impl RelayBudgets {
    /// Holds a large request frame's bytes from the relay-wide pool (a small one holds
    /// nothing).
    pub async fn request(&self, len: usize) -> Held {
        if len < crate::defaults::SMALL_FRAME {
            Held::none()
        } else {
            self.requests.hold(len).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Bytes come back when their holder drops them; a request larger than the pool takes
    /// the whole pool; a holder that never lets go makes the next one wait (control: the
    /// same wait ends once it is dropped).
    #[tokio::test]
    async fn bytes_are_held_until_dropped() {
        let b = ByteBudget::new(1000);
        let big = b.hold(5000).await;
        assert_eq!(b.available(), 0);
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.hold(10)).await;
        assert!(waiting.is_err(), "the pool is full: the next holder waits");
        drop(big);
        let small = tokio::time::timeout(Duration::from_millis(50), b.hold(10))
            .await
            .expect("freed bytes are handed out again");
        assert_eq!(b.available(), 990);
        drop(small);
        assert_eq!(b.available(), 1000);
    }
}
