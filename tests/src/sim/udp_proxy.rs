//! A fault-injecting UDP proxy between one device and the relay: real QUIC packets,
//! dropped, delayed, held back (reordered) or duplicated at random, or all dropped while
//! the link is cut (a partition). QUIC sees a bad network, not a fake one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the link does to packets now.
#[derive(Clone, Debug, Default)]
pub struct LinkFaults {
    /// Every packet dropped.
    pub cut: bool,
    /// Drop probability.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Probability of being held back behind later packets.
    pub reorder: f64,
    /// One-way delay range, milliseconds.
    pub delay_ms: [u64; 2],
}

/// Packets the proxy tampered with.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Forwarded.
    pub forwarded: AtomicU64,
    /// Dropped by loss (not by a cut).
    pub lost: AtomicU64,
    /// Sent twice.
    pub duplicated: AtomicU64,
    /// Held back.
    pub reordered: AtomicU64,
}

/// A running proxy.
pub struct UdpProxy {
    /// Where the device must send (its relay address).
    pub addr: SocketAddr,
    /// The faults, changed while it runs.
    pub faults: Arc<Mutex<LinkFaults>>,
    /// What it did.
    pub counters: Arc<LinkCounters>,
    /// Where packets go (a relay restarted on another port is re-pointed here).
    upstream: Arc<Mutex<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    faults: Arc<Mutex<LinkFaults>>,
    counters: Arc<LinkCounters>,
    rng: Mutex<ChaCha8Rng>,
}

impl Shared {
    /// How many copies to send and after how long; none when dropped.
    fn fate(&self) -> Vec<Duration> {
        let f = self.faults.lock().expect("faults").clone();
        let mut rng = self.rng.lock().expect("rng");
        if f.cut {
            return Vec::new();
        }
        if rng.gen_bool(f.loss) {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let mut delay = rng.gen_range(f.delay_ms[0]..=f.delay_ms[1].max(f.delay_ms[0]));
        if rng.gen_bool(f.reorder) {
            self.counters.reordered.fetch_add(1, Ordering::Relaxed);
            delay += rng.gen_range(f.delay_ms[1] + 1..=f.delay_ms[1] * 3 + 30);
        }
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let mut out = vec![Duration::from_millis(delay)];
        if rng.gen_bool(f.duplicate) {
            self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
            out.push(Duration::from_millis(delay + rng.gen_range(1..=10)));
        }
        out
    }
}

fn forward(shared: &Shared, socket: &Arc<UdpSocket>, packet: &[u8], to: SocketAddr) {
    for delay in shared.fate() {
        if delay.is_zero() {
            let _ = socket.try_send_to(packet, to);
        } else {
            let (socket, packet) = (socket.clone(), packet.to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = socket.send_to(&packet, to).await;
            });
        }
    }
}

impl UdpProxy {
    /// Starts a proxy on loopback for one device, forwarding to `relay`.
    pub async fn start(relay: SocketAddr, seed: u64) -> anyhow::Result<UdpProxy> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let faults = Arc::new(Mutex::new(LinkFaults::default()));
        let counters = Arc::new(LinkCounters::default());
        let upstream = Arc::new(Mutex::new(relay));
        let to_relay = upstream.clone();
        let shared = Arc::new(Shared {
            faults: faults.clone(),
            counters: counters.clone(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        });
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        let relay = *to_relay.lock().expect("upstream");
                        forward(&shared, &back, &a[..n], relay);
                    }
                    r = back.recv_from(&mut b) => {
                        let Ok((n, from)) = r else { continue };
                        if from != *to_relay.lock().expect("upstream") {
                            continue; // a relay that is gone
                        }
                        if let Some(c) = client {
                            forward(&shared, &front, &b[..n], c);
                        }
                    }
                }
            }
        });
        Ok(UdpProxy {
            addr,
            faults,
            counters,
            upstream,
            task,
        })
    }

    /// Sends to another relay address from now on.
    pub fn set_upstream(&self, relay: SocketAddr) {
        *self.upstream.lock().expect("upstream") = relay;
    }

    /// Changes the faults.
    pub fn set(&self, f: impl FnOnce(&mut LinkFaults)) {
        f(&mut self.faults.lock().expect("faults"));
    }
}
