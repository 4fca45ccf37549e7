//! The real-socket mode: a relay over QUIC on loopback (restarted on the same port),
//! `mesd` processes (killed with SIGKILL and restarted on the same data), each behind its
//! own fault-injecting [`UdpProxy`], edits through each daemon's Unix-socket API. Wall
//! clock: the trace's times are divided by the scenario's `real.time_scale`.
//!
//! Differences from the deterministic mode: one volume per space (the notes volume that
//! the API edits), at most `real.max_edits` edits, and packet-level faults, which QUIC
//! repairs, instead of message-level ones.

use anyhow::Context;
use mes_client::ApiClient;
use mes_daemon::run::DaemonReady;
use mes_daemon::sync::relay_client::RelayTarget;
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use mes_relay::handler::Misbehaviour;
use mes_relay::server::{RelayConfig, RunningRelay};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::report::{Oracle, Report};
use super::trace::{devices, Action, PlantedBug, Trace};
use super::udp_proxy::UdpProxy;

struct Device {
    person: usize,
    name: String,
    proxy: UdpProxy,
    child: Option<Child>,
    socket: PathBuf,
}

impl Drop for Device {
    /// Whatever happens to the run, no `mesd` outlives it.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn start_relay(
    dir: &Path,
    listen: Option<std::net::SocketAddr>,
    misbehaviour: &Misbehaviour,
) -> anyhow::Result<RunningRelay> {
    let mut cfg = RelayConfig::new(dir.join("relay"));
    if let Some(l) = listen {
        cfg.listen = l;
    }
    // Clones share the planted bug's counters, so a restarted relay goes on counting.
    cfg.misbehaviour = misbehaviour.clone();
    Ok(mes_relay::server::start(cfg).await?)
}

fn spawn_mesd(
    dir: &Path,
    name: &str,
    relay: std::net::SocketAddr,
    fingerprint: &str,
) -> anyhow::Result<(Child, DaemonReady)> {
    let target = RelayTarget {
        address: relay,
        fingerprint: fingerprint.into(),
    };
    crate::spawn_mesd(dir, name, &target, Stdio::null())
}

async fn call(socket: &Path, space: Option<SpaceId>, c: ApiCall) -> anyhow::Result<ApiReply> {
    let what = format!("{c:?}");
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        let mut client = ApiClient::connect(socket).await?;
        client.call(space, c).await
    })
    .await
    .map_err(|_| anyhow::anyhow!("{what} got no answer within 60 s"))??;
    answer.map_err(|e| anyhow::anyhow!("{e:?}"))
}

async fn notes(socket: &Path, space: SpaceId) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    match call(socket, Some(space), ApiCall::NoteList).await? {
        ApiReply::Notes(n) => Ok(n.into_iter().map(|e| (e.key, e.values)).collect()),
        r => anyhow::bail!("unexpected reply to NoteList: {r:?}"),
    }
}

async fn wait_online(socket: &Path, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(ApiReply::Status(s)) = call(socket, None, ApiCall::Status).await {
            if s.online {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} never came online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn scaled(ms: u64, scale: f64, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(((ms as f64 / scale) as u64).clamp(lo, hi))
}

/// Runs a trace over real sockets and processes.
#[allow(
    clippy::too_many_lines,
    reason = "one real-mode run from start to check, in order"
)]
pub async fn run(trace: Trace) -> anyhow::Result<super::RunOutput> {
    anyhow::ensure!(
        trace.plant != Some(PlantedBug::AckBeforeFlush),
        "the ack-before-flush bug can only be planted in the deterministic mode; use relay-drops-bundle with --real"
    );
    let started = Instant::now();
    let s = trace.scenario.clone();
    let scale = s.real.time_scale;
    let dir = tempfile::tempdir()?;
    let misbehaviour = Misbehaviour {
        drop_bundle: trace.drop_bundle,
        ..Default::default()
    };
    // Not armed during the setup: the count starts far beyond the bundle to drop.
    misbehaviour.appended.store(u64::MAX / 2, Ordering::SeqCst);
    let mut relay = start_relay(dir.path(), None, &misbehaviour).await?;
    let (address, fingerprint) = (relay.ready.address, relay.ready.fingerprint.clone());
    let slots = devices(&s);
    let mut log = Vec::new();
    let mut devs = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let proxy = UdpProxy::start(address, trace.net_seed.wrapping_add(i as u64)).await?;
        let name = format!("d{i}");
        let (child, ready) = spawn_mesd(dir.path(), &name, proxy.addr, &fingerprint)?;
        devs.push(Device {
            person: slot.person,
            name,
            proxy,
            child: Some(child),
            socket: ready.socket,
        });
    }
    for d in &devs {
        wait_online(&d.socket, &d.name).await?;
    }
    // Each person's first device creates the space; the others pair with it.
    let mut spaces = Vec::new();
    for person in 0..s.persons {
        let own: Vec<usize> = (0..devs.len())
            .filter(|d| devs[*d].person == person)
            .collect();
        let first = &devs[own[0]].socket;
        let space = match call(
            first,
            None,
            ApiCall::CreateSpace {
                label: format!("person {person}"),
            },
        )
        .await?
        {
            ApiReply::SpaceCreated { space } => space,
            r => anyhow::bail!("unexpected reply to CreateSpace: {r:?}"),
        };
        for &d in &own[1..] {
            let code = match call(first, None, ApiCall::PairStart).await? {
                ApiReply::PairingCode(c) => c,
                r => anyhow::bail!("unexpected reply to PairStart: {r:?}"),
            };
            call(
                &devs[d].socket,
                None,
                ApiCall::PairJoin {
                    code,
                    device_name: devs[d].name.clone(),
                },
            )
            .await
            .with_context(|| format!("pairing {}", devs[d].name))?;
        }
        spaces.push(space);
    }
    // Every device must hold its space before the faults begin.
    for d in &devs {
        let deadline = Instant::now() + Duration::from_secs(60);
        while notes(&d.socket, spaces[d.person]).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} never received its space",
                d.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let net = s.network.clone();
    for d in &devs {
        d.proxy.set(|f| {
            f.loss = net.loss;
            f.duplicate = net.duplicate;
            f.reorder = net.reorder;
            f.delay_ms = net.delay_ms;
        });
    }
    // The planted drop is armed from here: a bundle of the setup (a space's creation, a
    // pairing) is not an edit the oracle follows, and dropping it made the control miss.
    misbehaviour.appended.store(0, Ordering::SeqCst);
    let mut report = Report::new(&trace, devs.len(), spaces.len());
    report.mode = "real".into();
    let mut oracle = Oracle::default();
    let mut edits = 0;
    let t0 = Instant::now();
    let mut restarts: Vec<(Instant, usize)> = Vec::new();
    for t in &trace.actions {
        let due = t0 + scaled(t.at_ms, scale, 0, u64::MAX);
        while Instant::now() < due {
            restart_due(&mut restarts, &mut devs, dir.path(), &fingerprint, &mut log)?;
            tokio::time::sleep((due - Instant::now()).min(Duration::from_millis(50))).await;
        }
        restart_due(&mut restarts, &mut devs, dir.path(), &fingerprint, &mut log)?;
        let now_ms = t0.elapsed().as_millis() as u64;
        match &t.action {
            Action::Edit {
                device, key, value, ..
            } => {
                if edits >= s.real.max_edits {
                    continue;
                }
                edits += 1;
                let d = &devs[*device];
                if d.child.is_none() {
                    report.operations.edits_while_down += 1;
                    continue;
                }
                report.operations.edits += 1;
                let set = ApiCall::NoteSet {
                    key: key.clone(),
                    value: value.clone(),
                };
                if call(&d.socket, Some(spaces[d.person]), set).await.is_ok() {
                    report.operations.acknowledged += 1;
                    let others = (0..devs.len())
                        .filter(|o| devs[*o].person == d.person && o != device)
                        .collect();
                    oracle.acknowledged(d.person, 0, key.clone(), value.clone(), now_ms, others);
                }
            }
            Action::Partition { device, for_ms } | Action::Offline { device, for_ms } => {
                if matches!(t.action, Action::Offline { .. }) {
                    report.faults.offline += 1;
                } else {
                    report.faults.partitions += 1;
                }
                let length = scaled(*for_ms, scale, 100, 10_000);
                log.push(format!("{now_ms:>8} d{device}: cut for {length:?}"));
                devs[*device].proxy.set(|f| f.cut = true);
                let faults = devs[*device].proxy.faults.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(length).await;
                    faults.lock().expect("faults").cut = false;
                });
            }
            Action::RelayRestart { down_ms } => {
                report.faults.relay_restarts += 1;
                log.push(format!("{now_ms:>8} relay restart, down {down_ms} ms"));
                relay.shutdown().await;
                tokio::time::sleep(Duration::from_millis((*down_ms).min(3_000))).await;
                // Same data and identity (the pinned fingerprint), a fresh port: the old
                // one may have been taken meanwhile; the proxies are the stable address.
                relay = start_relay(dir.path(), None, &misbehaviour).await?;
                anyhow::ensure!(
                    relay.ready.fingerprint == fingerprint,
                    "the restarted relay changed identity"
                );
                for d in &devs {
                    d.proxy.set_upstream(relay.ready.address);
                }
            }
            Action::Crash { device, down_ms } => {
                let d = &mut devs[*device];
                if let Some(mut child) = d.child.take() {
                    report.faults.crashes += 1;
                    log.push(format!("{now_ms:>8} {}: SIGKILL", d.name));
                    child.kill()?;
                    child.wait()?;
                    restarts.push((
                        Instant::now() + scaled(*down_ms, scale, 100, 5_000),
                        *device,
                    ));
                }
            }
        }
        see(&devs, &spaces, &mut oracle, t0).await;
    }
    // Heal: every fault off, every device up, then wait for convergence.
    for d in &devs {
        d.proxy.set(|f| {
            f.cut = false;
            f.loss = 0.0;
            f.duplicate = 0.0;
            f.reorder = 0.0;
        });
    }
    for r in &mut restarts {
        r.0 = Instant::now();
    }
    restart_due(&mut restarts, &mut devs, dir.path(), &fingerprint, &mut log)?;
    let healed = Instant::now();
    let problems = loop {
        see(&devs, &spaces, &mut oracle, t0).await;
        let problems = check(&devs, &spaces, &oracle).await;
        if problems.is_empty() || healed.elapsed() > Duration::from_secs(s.real.settle_s) {
            break problems;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    report.convergence_ms = healed.elapsed().as_millis() as u64;
    for p in problems {
        report.problem(p);
    }
    for d in &devs {
        let c = &d.proxy.counters;
        report.faults.lost += c.lost.load(std::sync::atomic::Ordering::Relaxed);
        report.faults.duplicated += c.duplicated.load(std::sync::atomic::Ordering::Relaxed);
        report.faults.reordered += c.reordered.load(std::sync::atomic::Ordering::Relaxed);
        report.operations.messages += c.forwarded.load(std::sync::atomic::Ordering::Relaxed);
    }
    report.latency_ms = oracle.latencies();
    report.faults.dropped_bundles = misbehaviour.dropped.load(Ordering::SeqCst);
    report.ok = report.problems.is_empty();
    report.sim_ms = t0.elapsed().as_millis() as u64;
    report.wall_ms = started.elapsed().as_millis() as u64;
    for d in &mut devs {
        if let Some(mut c) = d.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    relay.shutdown().await;
    Ok((report, log))
}

fn restart_due(
    restarts: &mut Vec<(Instant, usize)>,
    devs: &mut [Device],
    dir: &Path,
    fingerprint: &str,
    log: &mut Vec<String>,
) -> anyhow::Result<()> {
    let now = Instant::now();
    let (due, later): (Vec<_>, Vec<_>) = restarts.drain(..).partition(|(t, _)| *t <= now);
    *restarts = later;
    for (_, i) in due {
        let d = &mut devs[i];
        let (child, ready) = spawn_mesd(dir, &d.name, d.proxy.addr, fingerprint)?;
        log.push(format!("{}: restarted", d.name));
        d.child = Some(child);
        d.socket = ready.socket;
    }
    Ok(())
}

/// Marks the acknowledged writes each running device now shows.
async fn see(devs: &[Device], spaces: &[SpaceId], oracle: &mut Oracle, t0: Instant) {
    for (i, d) in devs.iter().enumerate() {
        if d.child.is_none() {
            continue;
        }
        let awaited = oracle.awaited_by(i, d.person, 0);
        if awaited.is_empty() {
            continue;
        }
        if let Ok(n) = notes(&d.socket, spaces[d.person]).await {
            let now = t0.elapsed().as_millis() as u64;
            for (k, v) in awaited {
                if n.get(&k).is_some_and(|vals| vals.contains(&v)) {
                    oracle.visible(i, d.person, 0, &k, now);
                }
            }
        }
    }
}

/// What is still wrong: divergent notes or missing acknowledged writes.
async fn check(devs: &[Device], spaces: &[SpaceId], oracle: &Oracle) -> Vec<String> {
    let mut problems = Vec::new();
    for (person, space) in spaces.iter().enumerate() {
        let mut states = BTreeMap::new();
        for d in devs.iter().filter(|d| d.person == person) {
            match notes(&d.socket, *space).await {
                Ok(n) => {
                    states.insert(d.name.clone(), n);
                }
                Err(e) => problems.push(format!("{}: {e}", d.name)),
            }
        }
        let distinct: std::collections::BTreeSet<_> = states.values().collect();
        if distinct.len() > 1 {
            problems.push(format!(
                "divergence: space {person} has {} states across its devices",
                distinct.len()
            ));
        }
        for (s, _, key, value) in oracle.unique_writes() {
            if s != person {
                continue;
            }
            for (name, n) in &states {
                if !n.get(&key).is_some_and(|v| v.contains(&value)) {
                    problems.push(format!(
                        "lost: acknowledged write {key}={value} (space {person}) is missing on {name}"
                    ));
                }
            }
        }
    }
    problems.truncate(50);
    problems
}
