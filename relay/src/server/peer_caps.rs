//! Connections per network address, capped (issue 22 finding 5): one machine holding
//! thousands of connections, or opening them faster than a rate, is refused before the
//! handshake costs anything. The maps hold only addresses with a live connection or a
//! recent arrival.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Live connections by address, at most `max` each, arriving at most at `rate`.
#[derive(Debug)]
pub struct PerAddress {
    max: usize,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
    rate: Option<crate::server::read_rate::Rate>,
    arrivals: Mutex<(
        HashMap<IpAddr, crate::server::read_rate::ReadRate>,
        crate::pruned_map::Sweep,
    )>,
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    address: IpAddr,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// At most `max` connections per address, new ones at most at `rate` (a connection
    /// counts as one unit of the rate).
    pub fn new(max: usize, rate: Option<crate::server::read_rate::Rate>) -> Self {
        PerAddress {
            max,
            live: Default::default(),
            rate,
            arrivals: Default::default(),
        }
    }

    /// A place for one more connection from `address`, unless it holds `max` already or
    /// arrives faster than the rate.
    pub fn take(&self, address: IpAddr) -> Option<Slot> {
        if let Some(rate) = self.rate {
            let now = std::time::Instant::now();
            let mut guard = self.arrivals.lock().expect("arrivals lock");
            let (arrivals, sweep) = &mut *guard;
            // A bucket that has refilled says nothing: forget it.
            sweep.maybe(arrivals, |_, b| !b.is_full(now));
            let bucket = arrivals
                .entry(address)
                .or_insert_with(|| crate::server::read_rate::ReadRate::new(rate, now));
            if !bucket.take(1, now).is_zero() {
                bucket.give_back(1);
                return None;
            }
        }
        let mut live = self.live.lock().expect("per-address lock");
        let n = live.entry(address).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            address,
            live: self.live.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.live.lock().expect("per-address lock");
        if let Some(n) = live.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap holds per address, a freed place is given again, and the map forgets an
    /// address with no connection left (control: another address is not affected).
    #[test]
    fn each_address_holds_at_most_its_share() {
        let caps = PerAddress::new(2, None);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let one = caps.take(a).unwrap();
        let two = caps.take(a).unwrap();
        assert!(caps.take(a).is_none(), "a third from the same address");
        assert!(caps.take(b).is_some(), "control: another address");
        drop(one);
        assert!(caps.take(a).is_some(), "a freed place");
        drop(two);
        assert!(caps.live.lock().unwrap().is_empty());
    }

    /// Arrivals faster than the rate are refused, past the burst (control: another
    /// address still comes in).
    #[test]
    fn arrivals_beyond_the_rate_are_refused() {
        let rate = crate::server::read_rate::Rate {
            per_second: 1,
            burst: 3,
        };
        let caps = PerAddress::new(100, Some(rate));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<_> = (0..3).map(|_| caps.take(a).expect("the burst")).collect();
        assert!(caps.take(a).is_none(), "a fourth at once");
        assert!(caps.take(b).is_some(), "control: another address");
        drop(held);
    }
}
