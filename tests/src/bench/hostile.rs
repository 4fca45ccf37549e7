//! `hostile` (issue 22 item 12): one relay in its own process; a person's two devices
//! measure edit-to-visible (as `sync-latency`) while the relay is quiet, then while 200
//! connections attack it (`crate::hostile::Attack`: 40 each stop reading, trickle
//! frames, announce 8 MiB frames, open streams the relay never accepts, flood pairing
//! rendezvous), reconnecting whenever the relay cuts them. The attackers run in their
//! own process (`mes-bench --child attackers`, at niceness 10), so what their own
//! handshakes cost is not charged to the victim's daemons, which run in this one.
//!
//! Metrics: `victim_p99_ms_quiet`, `victim_p99_ms` (under attack; target ≤ 2× quiet),
//! `relay_rss_mib` (the relay's peak resident memory over the whole run; target ≤ 256),
//! `relay_rss_mib_quiet` (before the attack), and what the attackers met:
//! `attacker_connections`, `attacker_cut` (connections the relay ended on its own),
//! `attacker_refused`.

use super::latency::one_edit;
use super::{measure, percentile, Measure, Size};
use crate::{device, pair, volume};
use mes_client::ApiClient;
use mes_protocol::wire::api::ApiCall;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let (attackers, samples, settle) = (
        size.pick(200, 20),
        size.pick(1000, 20),
        // Long enough for the relay to cut the first attackers (a stalled writer after
        // 15 s, a trickled frame after 30 s) and for them to come back.
        Duration::from_secs(size.pick(40, 1) as u64),
    );
    let dir = tempfile::tempdir()?;
    let relay = super::child::Child::spawn("relay-production", dir.path())?;
    let t = relay.target.clone();
    // The relay's peak resident memory, sampled every 20 ms for the whole run.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let pid = relay.pid();
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(kib) = super::rss_kib(pid) {
                    peak.fetch_max(kib as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let mut writer = ApiClient::connect(&a.ready.socket).await?;
    let mut reader = ApiClient::connect(&b.ready.socket).await?;
    let mut events = ApiClient::connect(&b.ready.socket).await?;
    events.call(Some(space), ApiCall::Subscribe).await??;
    let mut victim = Victim {
        writer: &mut writer,
        reader: &mut reader,
        events: &mut events,
        space,
        notes,
    };
    // Warm up first (the first edits of a fresh pair are slower, which would flatter
    // the attack by inflating the quiet figure), then measure.
    let warm = size.pick(100, 5);
    victim.sample(warm, 0).await?;
    let quiet = victim.sample(samples, warm).await?;
    let rss_quiet = super::rss_kib(pid)? / 1024.0;

    // The attackers run in a process of their own, at a lower priority: attack
    // connections come from other machines, and their handshakes and crypto must not
    // be charged to the victim's daemons in this process (on a machine of 2 cores the
    // three processes still share them).
    let attackers = super::child::Child::spawn_with(
        "attackers",
        dir.path(),
        &[
            ("MES_ATTACK_TARGET", serde_json::to_string(&t)?),
            ("MES_ATTACKERS", attackers.to_string()),
        ],
        10,
    )?;
    tokio::time::sleep(settle).await;
    let attacked = victim.sample(samples, warm + samples).await;
    let tally: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(attackers.finish()?.join("tally.json"))?)?;
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let attacked = attacked?;
    Ok(vec![
        measure(
            "hostile",
            "victim_p99_ms_quiet",
            percentile(&quiet, 99.0),
            "ms",
        ),
        measure(
            "hostile",
            "victim_p99_ms",
            percentile(&attacked, 99.0),
            "ms",
        ),
        measure(
            "hostile",
            "victim_p50_ms",
            percentile(&attacked, 50.0),
            "ms",
        ),
        measure("hostile", "relay_rss_mib_quiet", rss_quiet, "MiB"),
        measure(
            "hostile",
            "relay_rss_mib",
            peak.load(Ordering::Relaxed) as f64 / 1024.0,
            "MiB",
        ),
        measure(
            "hostile",
            "attacker_connections",
            tally.get("admitted").copied().unwrap_or(0) as f64,
            "connections",
        ),
        measure(
            "hostile",
            "attacker_cut",
            tally.get("cut").copied().unwrap_or(0) as f64,
            "connections",
        ),
        measure(
            "hostile",
            "attacker_refused",
            tally.get("refused").copied().unwrap_or(0) as f64,
            "connections",
        ),
    ])
}

/// The person's two devices, measuring.
struct Victim<'a> {
    writer: &'a mut ApiClient,
    reader: &'a mut ApiClient,
    events: &'a mut ApiClient,
    space: mes_protocol::ids::SpaceId,
    notes: mes_protocol::ids::VolumeId,
}

impl Victim<'_> {
    /// `n` edits, sorted milliseconds.
    async fn sample(&mut self, n: usize, from: usize) -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(n);
        for i in from..from + n {
            ms.push(
                one_edit(
                    self.writer,
                    self.reader,
                    self.events,
                    self.space,
                    self.notes,
                    i,
                )
                .await?,
            );
            if std::env::var_os("MES_HOSTILE_TRACE").is_some() && ms[ms.len() - 1] > 15.0 {
                eprintln!("slow edit {i}: {:.1} ms", ms[ms.len() - 1]);
            }
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms)
    }
}
