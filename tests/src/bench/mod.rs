//! Benchmark scenarios of `mes-bench`. Each returns its measures; nothing here asserts on
//! time. Sizes: `Full` as the issues specify, `Smoke` tiny for CI.

mod campaign;
mod catch_up;
pub mod child;
pub mod compare;
mod fanout;
mod floor;
mod hostile;
mod ingest;
mod latency;
mod record;
mod sizing;
mod space;
mod tui;

use serde::Serialize;

/// One figure.
#[derive(Clone, Debug, Serialize)]
pub struct Measure {
    /// Scenario name.
    pub scenario: &'static str,
    /// Metric name.
    pub metric: &'static str,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: &'static str,
}

/// Run size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// What the scenario specifies.
    Full,
    /// Tiny, for CI.
    Smoke,
}

impl Size {
    /// `full` or `smoke` by size.
    pub fn pick(self, full: usize, smoke: usize) -> usize {
        match self {
            Size::Full => full,
            Size::Smoke => smoke,
        }
    }
}

/// Scenarios and what they measure.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("sync-latency", "edit on A until visible through B's API, via the relay, on a 10,000-change volume with 100 idle devices (p50_ms, p99_ms)"),
    ("sync-latency-crowd", "sync-latency with 1,000 devices of other people connected to the relay besides (p50_ms, p99_ms)"),
    ("catch-up", "fresh device fetching, verifying, decrypting, applying, storing 100,000 one-change bundles (changes_per_s), and through a snapshot (snapshot_ms)"),
    ("fresh-10k", "a fresh device pairs and fetches a 10,000-change notes volume through the relay, no snapshot: from pairing done until every change is applied and durable (ms)"),
    ("automerge-floor", "automerge alone applying the same 100,000 changes in memory in one call (changes_per_s)"),
    ("open-space", "mesd started cold on a 10-year space (10,000 documents, 100,000 measurements) until the complete document list is served (cold_open_ms, rss_mib)"),
    ("search", "keyword + filter document queries over the socket on the 10-year space, a page of 100 and the total (p50_ms, p99_ms), every match (p99_all_ms)"),
    ("export", "the 10-year space's whole archive: FHIR R4 bundle, IPS summary, PDF, original files (seconds)"),
    ("first-frame", "from starting mes in a terminal until its first complete frame with a running daemon's data on the 10-year space (ms)"),
    ("campaign", "the pilot's enrolment, 3,391,505 people: import, notify, deliver, 4.83 % activate and 0.68 % oppose, sweep (seconds, each phase, peak_rss_mib, activation_ms)"),
    ("ingest", "single-change encrypted bundles from 100 devices at once, each acknowledged once durable; backend by --backend sled|postgres (uploads_per_s)"),
    ("fanout", "upload until the 4 other devices of the space fetched it, 1,000 devices across 200 spaces then 10,000 across 2,000 (p50_ms, p99_ms); relay memory per idle device next to a bare quinn server's per connection (kib_per_device, quinn_kib_per_conn)"),
    ("hostile", "edit-to-visible on a person's two devices while 200 connections attack the relay: stop reading, trickle frames, announce 8 MiB frames, open unaccepted streams, flood pairing (victim_p99_ms_quiet, victim_p99_ms, relay_rss_mib peak)"),
    ("sizing", "what a person's demanding year (50 documents, 1,000 measurements, the profile, appointments, messages) costs the hub's storage on --backend sled|postgres (sled_bytes_per_person_year or pg_rows_per_person_year, pg_bytes_per_person_year; stored_bytes_per_document)"),
    ("render", "the client's update and draw per frame while scrolling the 10-year space's documents, 160 x 48 (p50_ms, p99_ms)"),
];

/// What scenarios of one run share: the 10-year space, built on first use.
/// One figure.
pub fn measure(
    scenario: &'static str,
    metric: &'static str,
    value: f64,
    unit: &'static str,
) -> Measure {
    Measure {
        scenario,
        metric,
        value,
        unit,
    }
}

#[derive(Default)]
pub struct Context {
    ten_years: Option<space::TenYears>,
}

impl Context {
    async fn ten_years(&mut self, size: Size) -> anyhow::Result<&space::TenYears> {
        if self.ten_years.is_none() {
            self.ten_years = Some(space::TenYears::build(size).await?);
        }
        Ok(self.ten_years.as_ref().expect("just built"))
    }
}

/// Runs one scenario.
pub async fn run(name: &str, size: Size, ctx: &mut Context) -> anyhow::Result<Vec<Measure>> {
    match name {
        "sync-latency" => latency::run(size).await,
        "sync-latency-crowd" => latency::crowd(size).await,
        "catch-up" => catch_up::run(size).await,
        "fresh-10k" => catch_up::fresh(size).await,
        "automerge-floor" => floor::run(size),
        "open-space" => record::open_space(ctx.ten_years(size).await?, size).await,
        "search" => record::search(ctx.ten_years(size).await?, size).await,
        "export" => record::export(ctx.ten_years(size).await?, size).await,
        "first-frame" => tui::first_frame(ctx.ten_years(size).await?, size).await,
        "campaign" => campaign::run(size).await,
        "ingest" => ingest::run(size).await,
        "fanout" => fanout::run(size).await,
        "render" => tui::render(ctx.ten_years(size).await?, size).await,
        "hostile" => hostile::run(size).await,
        "sizing" => sizing::run(size).await,
        other => anyhow::bail!("unknown scenario {other:?}; `mes-bench --list` shows them"),
    }
}

/// The epoch of `volume`'s current key on `d` at generation 0 (0 when it has none).
pub fn current_epoch(
    d: &mes_daemon::daemon::Daemon,
    volume: mes_protocol::ids::VolumeId,
) -> mes_protocol::ids::Epoch {
    d.state()
        .keys
        .current(volume, mes_protocol::ids::Generation(0))
        .map_or(mes_protocol::ids::Epoch(0), |(e, _)| e)
}

/// The header of a device's bundles on a volume at generation 0 (XChaCha20-Poly1305).
pub fn bundle_header(
    space: mes_protocol::ids::SpaceId,
    volume: mes_protocol::ids::VolumeId,
    epoch: mes_protocol::ids::Epoch,
    author: mes_protocol::ids::DeviceId,
) -> mes_protocol::crypto::seal::BundleHeader {
    mes_protocol::crypto::seal::BundleHeader {
        suite: mes_protocol::crypto::seal::CipherSuite::XChaCha20Poly1305,
        space,
        volume,
        generation: mes_protocol::ids::Generation(0),
        epoch,
        author,
        nonce: [0; 24],
        prev: None,
    }
}

/// `changes` as one-change bundles of `header`'s volume, sealed under `key` and signed by
/// `signing`, each naming its predecessor's link as the daemon's uploads do.
pub fn sealed_chain(
    key: &mes_protocol::crypto::seal::SymmetricKey,
    header: &mes_protocol::crypto::seal::BundleHeader,
    signing: &mes_protocol::crypto::keys::SigningSecret,
    changes: &[Vec<u8>],
) -> Vec<mes_protocol::crypto::seal::SealedBundle> {
    let mut rng = rand::rngs::OsRng;
    let mut prev = None;
    changes
        .iter()
        .map(|c| {
            let plain = mes_daemon::replica::volume::encode(
                &mes_daemon::replica::volume::Payload::Changes(c.clone()),
            );
            let b = mes_protocol::crypto::seal::SealedBundle::seal(
                key,
                mes_protocol::crypto::seal::BundleHeader {
                    prev,
                    ..header.clone()
                },
                signing,
                &mut rng,
                &plain,
            );
            prev = Some(b.link());
            b
        })
        .collect()
}

/// A copy of the daemon's principal keys, to certify extra devices of the same person.
/// Certifies a new device of a person and puts it on their list through `lister`, a
/// connection of one of their listed devices (what pairing does).
pub async fn listed_device(
    lister: &mes_daemon::sync::relay_client::RelayClient,
    principal: &mes_protocol::crypto::keys::KeyPair,
    name: &str,
) -> anyhow::Result<(
    mes_protocol::crypto::keys::KeyPair,
    mes_protocol::crypto::keys::DeviceCert,
)> {
    let dev = mes_protocol::crypto::keys::KeyPair::generate(&mut rand::rngs::OsRng);
    let cert = mes_daemon::devices::identity::certify(principal, &dev, name);
    lister
        .request(mes_protocol::wire::Request::ListDevice { cert: cert.clone() })
        .await?;
    Ok((dev, cert))
}

/// The principal keys of a daemon's person.
pub fn principal_keys(
    d: &mes_daemon::daemon::Daemon,
) -> anyhow::Result<mes_protocol::crypto::keys::KeyPair> {
    Ok(mes_protocol::crypto::keys::KeyPair {
        signing: mes_protocol::crypto::keys::SigningSecret::from_bytes(
            &d.identity().principal.signing.to_bytes(),
        ),
        age: mes_protocol::crypto::keys::AgeSecret::parse(
            &d.identity().principal.age.to_secret_string(),
        )?,
    })
}

/// Resident memory of a process now, in KiB (`VmRSS` of /proc).
pub fn rss_kib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `n` automerge changes, one key each, as one device typing them: the payloads of
/// one-change bundles.
pub fn changes(n: usize) -> Vec<Vec<u8>> {
    let mut doc = mes_daemon::replica::volume::doc::DocReplica::new(b"bench-author");
    (0..n)
        .map(|i| {
            match doc
                .set(&format!("k{i:06}"), &format!("value {i}"))
                .expect("set")
            {
                mes_daemon::replica::volume::Payload::Changes(b) => b,
                mes_daemon::replica::volume::Payload::Snapshot(b) => b,
            }
        })
        .collect()
}

/// Appends `n` one-change bundles to a volume as device `d` would have uploaded them
/// while typing: each change its own bundle, sealed under the volume's current key and
/// signed by the device.
pub async fn append_one_change_bundles(
    d: &mes_daemon::daemon::Daemon,
    t: &mes_daemon::sync::relay_client::RelayTarget,
    space: mes_protocol::ids::SpaceId,
    volume: mes_protocol::ids::VolumeId,
    n: usize,
) -> anyhow::Result<()> {
    let key =
        crate::current_key(d, volume).ok_or_else(|| anyhow::anyhow!("no key for the volume"))?;
    let author = mes_protocol::crypto::keys::SigningSecret::from_bytes(
        &d.identity().device.signing.to_bytes(),
    );
    let header = bundle_header(
        space,
        volume,
        current_epoch(d, volume),
        d.identity().device.device_id(),
    );
    let (client, _pushes) = crate::connect_as(d, t).await?;
    // Chained as the daemon's uploads are: each bundle names its predecessor's link.
    let bundles = sealed_chain(&key, &header, &author, &changes(n));
    for chunk in bundles.chunks(1024) {
        client
            .request(mes_protocol::wire::Request::Append {
                space,
                volume,
                bundles: chunk.to_vec(),
            })
            .await?;
    }
    Ok(())
}
