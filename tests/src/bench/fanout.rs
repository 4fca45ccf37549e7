//! `fanout`: from an upload until the other devices of the space hold the bundle (push,
//! then fetch), with 1,000 devices connected across 200 spaces of 5, then 10,000 across
//! 2,000; and the relay's memory per idle connected device next to a bare quinn server's
//! per idle connection, both measured here as separate processes ([`super::child`]).
//!
//! Memory is marginal: resident size with three devices of every space connected, then
//! with all five; the difference over the added connections, so one-time costs (spaces,
//! caches, allocator warm-up) do not count as per-device cost.

use super::child::Child;
use super::{measure, percentile, Measure, Size};
use mes_daemon::devices::identity::certify;
use mes_daemon::sync::relay_client::{RelayClient, RelayTarget};
use mes_protocol::access::membership::{Signed, SpaceGenesis, VolumeDecl};
use mes_protocol::crypto::keys::KeyPair;
use mes_protocol::crypto::seal::{BundleHeader, CipherSuite, SealedBundle, SymmetricKey};
use mes_protocol::ids::{DeviceId, Epoch, Generation, Seq, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{Push, Reply, Request};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const DEVICES_PER_SPACE: usize = 5;
/// Devices connected before the first memory reading (the rest are the marginal ones).
const FIRST_WAVE: usize = 3;
/// Each space uploads once per this period, spaces spread evenly over it.
const PERIOD: Duration = Duration::from_secs(2);
/// Connections (and client endpoints) opened at once.
const CONNECT_AT_ONCE: usize = 64;
/// Client connections per client UDP socket.
const PER_ENDPOINT: usize = 500;

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let mut out = Vec::new();
    // `MES_BENCH_SPACES=N` runs one size of N spaces instead (to see how it scales).
    let one = std::env::var("MES_BENCH_SPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|n| vec![(n, "")]);
    let runs: Vec<(usize, &str)> = one.unwrap_or_else(|| match size {
        Size::Full => vec![(200, ""), (2_000, "_10k")],
        Size::Smoke => vec![(4, "")],
    });
    let rounds = size.pick(10, 2);
    for (spaces, suffix) in runs {
        let m = one_size(spaces, rounds).await?;
        let name = |base: &'static str| -> &'static str {
            if suffix.is_empty() {
                base
            } else {
                Box::leak(format!("{base}{suffix}").into_boxed_str())
            }
        };
        out.push(measure(
            "fanout",
            name("devices"),
            (spaces * DEVICES_PER_SPACE) as f64,
            "devices",
        ));
        out.push(measure(
            "fanout",
            name("uploads_per_s"),
            m.offered,
            "uploads/s",
        ));
        out.push(measure("fanout", name("p50_ms"), m.p50, "ms"));
        out.push(measure("fanout", name("p99_ms"), m.p99, "ms"));
        out.push(measure(
            "fanout",
            name("kib_per_device"),
            m.relay_kib,
            "KiB",
        ));
        out.push(measure(
            "fanout",
            name("quinn_kib_per_conn"),
            m.quinn_kib,
            "KiB",
        ));
    }
    Ok(out)
}

struct Figures {
    offered: f64,
    p50: f64,
    p99: f64,
    relay_kib: f64,
    quinn_kib: f64,
}

/// One space as the benchmark drives it: its owner, volume, devices and bundles.
struct BenchSpace {
    space: SpaceId,
    volume: VolumeId,
    principal: KeyPair,
    devices: Vec<KeyPair>,
    ids: Vec<DeviceId>,
}

impl BenchSpace {
    fn new(rng: &mut rand::rngs::OsRng) -> Self {
        let mut id = || {
            let mut b = [0u8; 16];
            rand::RngCore::fill_bytes(rng, &mut b);
            b
        };
        let (space, volume) = (SpaceId(id()), VolumeId(id()));
        let principal = KeyPair::generate(rng);
        let devices: Vec<KeyPair> = (0..DEVICES_PER_SPACE)
            .map(|_| KeyPair::generate(rng))
            .collect();
        let ids = devices
            .iter()
            .map(|d| certify(&principal, d, "fanout").body.device)
            .collect();
        BenchSpace {
            space,
            volume,
            principal,
            devices,
            ids,
        }
    }

    async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        target: &RelayTarget,
        i: usize,
    ) -> anyhow::Result<(RelayClient, mpsc::UnboundedReceiver<Push>)> {
        let cert = certify(&self.principal, &self.devices[i], "fanout");
        Ok(RelayClient::connect(endpoint, target, &cert, &self.devices[i].signing).await?)
    }

    async fn register(&self, c: &RelayClient) -> anyhow::Result<()> {
        let genesis = Signed::sign(
            SpaceGenesis {
                space: self.space,
                owner: self.principal.principal_id(),
                inbox_recipient: self.principal.age.recipient(),
                created_at: UnixMillis::now(),
            },
            &self.principal.signing,
        );
        c.request(Request::RegisterSpace { genesis }).await?;
        let decl = Signed::sign(
            VolumeDecl {
                space: self.space,
                volume: self.volume,
                kind: VolumeKind::Automerge,
                generation: Generation(0),
                label: "notes".into(),
            },
            &self.principal.signing,
        );
        c.request(Request::DeclareVolume { decl }).await?;
        // The other devices of the person, on their list (as pairing leaves them).
        for d in &self.devices[1..] {
            let cert = certify(&self.principal, d, "fanout");
            c.request(Request::ListDevice { cert }).await?;
        }
        Ok(())
    }

    /// The bundles of every round, each device chaining its own.
    fn bundles(&self, rounds: usize, rng: &mut rand::rngs::OsRng) -> Vec<SealedBundle> {
        let key = SymmetricKey::generate(rng);
        let mut prev = [None; DEVICES_PER_SPACE];
        (0..rounds)
            .map(|r| {
                let author = r % DEVICES_PER_SPACE;
                let header = BundleHeader {
                    suite: CipherSuite::XChaCha20Poly1305,
                    space: self.space,
                    volume: self.volume,
                    generation: Generation(0),
                    epoch: Epoch(0),
                    author: self.ids[author],
                    nonce: [0; 24],
                    prev: prev[author],
                };
                let b = SealedBundle::seal(
                    &key,
                    header,
                    &self.devices[author].signing,
                    rng,
                    format!("one change of round {r}").as_bytes(),
                );
                prev[author] = Some(b.link());
                b
            })
            .collect()
    }
}

/// Client endpoints, [`PER_ENDPOINT`] connections each.
fn endpoints(target: &RelayTarget, connections: usize) -> anyhow::Result<Vec<quinn::Endpoint>> {
    (0..connections.div_ceil(PER_ENDPOINT))
        .map(|_| Ok(mes_daemon::sync::relay_client::endpoint(target.address)?))
        .collect()
}

/// Runs `f` over `items`, [`CONNECT_AT_ONCE`] at a time, keeping the order.
async fn at_once<T, R, F, Fut>(items: Vec<T>, f: F) -> anyhow::Result<Vec<R>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>>,
{
    let mut out = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let wave: Vec<Fut> = items.by_ref().take(CONNECT_AT_ONCE).map(&f).collect();
        for r in futures_util::future::join_all(wave).await {
            out.push(r?);
        }
    }
    Ok(out)
}

/// A device that waits for head pushes, fetches what is new, and records how long each
/// bundle another device uploaded took to reach it.
async fn receive(
    client: Arc<RelayClient>,
    mut pushes: mpsc::UnboundedReceiver<Push>,
    (space, volume, me): (SpaceId, VolumeId, usize),
    sent: Arc<Mutex<Vec<Option<Instant>>>>,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut cursor = Seq(0);
    let mut latencies = Vec::new();
    while cursor.0 < rounds as u64 {
        let Some(push) = pushes.recv().await else {
            anyhow::bail!("device {me} of {} lost its connection", space.short());
        };
        let Push::Head { head, .. } = push else {
            continue;
        };
        while cursor < head {
            let reply = client
                .request(Request::Fetch {
                    space,
                    volume,
                    after: cursor,
                    max: 256,
                })
                .await?;
            let Reply::Bundles { items, .. } = reply else {
                anyhow::bail!("fetch answered {reply:?}");
            };
            let now = Instant::now();
            for (seq, _) in &items {
                let round = (seq.0 - 1) as usize;
                if round % DEVICES_PER_SPACE != me {
                    let at = sent.lock().expect("sent times")[round]
                        .ok_or_else(|| anyhow::anyhow!("bundle {} fetched before sent", seq.0))?;
                    latencies.push((now - at).as_secs_f64() * 1e3);
                }
                cursor = *seq;
            }
            if items.is_empty() {
                break;
            }
        }
    }
    Ok(latencies)
}

async fn one_size(spaces: usize, rounds: usize) -> anyhow::Result<Figures> {
    let mut rng = rand::rngs::OsRng;
    let dir = tempfile::tempdir()?;
    let devices = spaces * DEVICES_PER_SPACE;
    let plan: Vec<Arc<BenchSpace>> = (0..spaces)
        .map(|_| Arc::new(BenchSpace::new(&mut rng)))
        .collect();
    let bundles: Vec<Vec<SealedBundle>> =
        plan.iter().map(|s| s.bundles(rounds, &mut rng)).collect();

    // The bare quinn floor first, alone on the machine.
    let quinn_kib = {
        let child = Child::spawn("quinn", dir.path())?;
        let t = child.target.clone();
        let eps = endpoints(&t, devices)?;
        let first = FIRST_WAVE * spaces;
        let open = |i: usize| {
            let (ep, t) = (eps[i % eps.len()].clone(), t.clone());
            async move {
                let cfg = mes_daemon::sync::relay_client::client_config(&t.fingerprint)?;
                anyhow::Ok(ep.connect_with(cfg, t.address, "mes-relay")?.await?)
            }
        };
        let mut held = at_once((0..first).collect(), &open).await?;
        let before = child.settled_rss_kib().await?;
        held.extend(at_once((first..devices).collect(), &open).await?);
        let after = child.settled_rss_kib().await?;
        drop(held);
        (after - before) / (devices - first) as f64
    };

    let child = Child::spawn("relay", dir.path())?;
    let t = child.target.clone();
    let eps = endpoints(&t, devices)?;
    let connect = |(i, d): (usize, usize)| {
        let (s, ep, t) = (
            plan[i].clone(),
            eps[(i * DEVICES_PER_SPACE + d) % eps.len()].clone(),
            t.clone(),
        );
        async move {
            let (c, pushes) = s.connect(&ep, &t, d).await?;
            if d == 0 {
                s.register(&c).await?;
            }
            c.request(Request::Subscribe {
                space: s.space,
                volumes: vec![s.volume],
            })
            .await?;
            anyhow::Ok((i, d, Arc::new(c), pushes))
        }
    };
    // Owners first (they register the spaces), then the rest of the first wave.
    let wave = |ds: std::ops::Range<usize>| -> Vec<(usize, usize)> {
        ds.flat_map(|d| (0..spaces).map(move |i| (i, d))).collect()
    };
    let mut conns = at_once(wave(0..1), &connect).await?;
    conns.extend(at_once(wave(1..FIRST_WAVE), &connect).await?);
    let before = child.settled_rss_kib().await?;
    conns.extend(at_once(wave(FIRST_WAVE..DEVICES_PER_SPACE), &connect).await?);
    let after = child.settled_rss_kib().await?;
    let relay_kib = (after - before) / ((DEVICES_PER_SPACE - FIRST_WAVE) * spaces) as f64;

    // Every device listens; each space's uploads rotate over its devices.
    let sent: Vec<Arc<Mutex<Vec<Option<Instant>>>>> = (0..spaces)
        .map(|_| Arc::new(Mutex::new(vec![None; rounds])))
        .collect();
    let mut uploaders: Vec<Vec<Option<Arc<RelayClient>>>> =
        vec![vec![None; DEVICES_PER_SPACE]; spaces];
    let mut receivers = Vec::new();
    for (i, d, c, pushes) in conns {
        uploaders[i][d] = Some(c.clone());
        let ids = (plan[i].space, plan[i].volume, d);
        receivers.push(tokio::spawn(receive(
            c,
            pushes,
            ids,
            sent[i].clone(),
            rounds,
        )));
    }
    let start = Instant::now() + Duration::from_millis(200);
    let mut senders = Vec::new();
    for (i, bundles) in bundles.into_iter().enumerate() {
        let (s, sent) = (plan[i].clone(), sent[i].clone());
        let clients: Vec<Arc<RelayClient>> = uploaders[i]
            .iter()
            .map(|c| c.clone().expect("connected"))
            .collect();
        let offset = PERIOD.mul_f64(i as f64 / spaces as f64);
        senders.push(tokio::spawn(async move {
            for (r, b) in bundles.into_iter().enumerate() {
                tokio::time::sleep_until((start + offset + PERIOD * r as u32).into()).await;
                sent.lock().expect("sent times")[r] = Some(Instant::now());
                clients[r % DEVICES_PER_SPACE]
                    .request(Request::Append {
                        space: s.space,
                        volume: s.volume,
                        bundles: vec![b],
                    })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let mut latencies = Vec::new();
    for r in receivers {
        latencies.extend(tokio::time::timeout(Duration::from_secs(60), r).await???);
    }
    let expected = spaces * rounds * (DEVICES_PER_SPACE - 1);
    anyhow::ensure!(
        latencies.len() == expected,
        "{} deliveries of {expected}",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    Ok(Figures {
        offered: spaces as f64 / PERIOD.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        relay_kib,
        quinn_kib,
    })
}
