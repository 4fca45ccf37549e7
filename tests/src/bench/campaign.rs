//! `campaign` (issue 7): the pilot's whole enrolment on the embedded store, through the
//! functions `mes-relay` and the relay's request handler call: the population CSV
//! parsed and checked whole (`parse_s`), imported, notified in département order (one code and one
//! outbox message each), the outbox delivered (emails into a maildir, one file each;
//! letters into print files), 4.83 % activating and 0.68 % opposing (the pilot's rates)
//! through the handler's `EnrolmentHub::serve`, then the sweep six weeks later creating
//! every other space. Metrics: `seconds` (all of it) and each phase's seconds,
//! `peak_rss_mib` of this process, and `activation_ms`, one activation with its
//! password hash at the default Argon2id cost (the bulk activations use a cheap cost
//! so that the password hash, measured apart, does not hide the store's figure).

use super::{measure, percentile, Measure, Size};
use mes_protocol::enrolment::nir::Nir;
use mes_protocol::enrolment::{CardHolder, EnrolRequest};
use mes_protocol::time::UnixMillis;
use mes_relay::enrolment::service as svc;
use std::fmt::Write;
use std::time::Instant;

/// The pilot's notifications (seed 001).
const PILOT: usize = 3_391_505;

/// Requests served at once in the decisions phase (the relay's blocking pool serves up
/// to 512).
const DECIDING: usize = 32;

/// [`DECIDING`], or `MES_BENCH_DECIDING`.
fn deciding() -> usize {
    std::env::var("MES_BENCH_DECIDING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DECIDING)
}

const DEPARTEMENTS: &[&str] = &[
    "01", "02", "03", "06", "13", "2A", "2B", "31", "33", "34", "35", "38", "44", "59", "62", "67",
    "69", "75", "76", "92", "93", "94", "971", "972", "974",
];

fn nir(i: usize) -> String {
    let sex = 1 + i % 2;
    Nir::with_key(&format!("{sex}{:02}{:02}{:08}", 50 + i % 50, 1 + i % 12, i))
}

/// One row in five is a minor whose representative is the row before (an adult).
fn population(n: usize) -> String {
    let mut csv = String::with_capacity(n * 140);
    csv.push_str(&mes_relay::enrolment::population::HEADER.join(","));
    csv.push('\n');
    for i in 0..n {
        let minor = i % 5 == 4;
        let sex = if (1 + i % 2) == 1 { "M" } else { "F" };
        let d = DEPARTEMENTS[(i / 5) % DEPARTEMENTS.len()];
        let (birth, reps) = if minor {
            ("2014-03-01".to_string(), nir(i - 1))
        } else {
            (
                format!("{}-{:02}-15", 1950 + i % 50, 1 + i % 12),
                String::new(),
            )
        };
        // One adult in three has an email on file; the others get a letter.
        let (email, postal) = match (minor, i % 3) {
            (true, _) => (String::new(), String::new()),
            (false, 0) => (format!("p{i}@exemple.fr"), String::new()),
            _ => (String::new(), format!("{i} rue de la République")),
        };
        let _ = writeln!(
            csv,
            "{},V{i:010},Nom{i},Prénom,{birth},{sex},{email},{postal},{d},{reps}",
            nir(i)
        );
    }
    csv
}

/// This process's user and system CPU seconds.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0;
    (
        f.get(11).copied().unwrap_or(0.0) / tick,
        f.get(12).copied().unwrap_or(0.0) / tick,
    )
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Runs the scenario.
pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    // `MES_BENCH_PEOPLE` runs another population size (to see how it scales).
    let n = std::env::var("MES_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(size.pick(PILOT, 2_000));
    tokio::task::spawn_blocking(move || blocking(n)).await?
}

#[allow(
    clippy::too_many_lines,
    reason = "the pilot's phases in order, each timed"
)]
fn blocking(n: usize) -> anyhow::Result<Vec<Measure>> {
    // `MES_BENCH_DIR`: where the store and outbox go (ext4 creates files several times
    // slower in a block group full of recently deleted inodes: use a fresh place).
    // `MES_BENCH_KEEP`: leave them there (deleting 1.1 million files slows the next run's
    // file creation for minutes on a file system without a journal; docs/benchmarks.md).
    let mut dir = match std::env::var_os("MES_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    if std::env::var_os("MES_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("campaign: kept in {}", dir.path().display());
    }
    let data = dir.path().join("relay");
    let csv = population(n);
    let mut phases = Vec::new();
    // Each phase's end on stderr as it happens (to attach a profiler to one phase).
    let mut cpu = cpu_seconds();
    let mut phase = |name: &'static str, t: &mut Instant| {
        phases.push((name, t.elapsed().as_secs_f64()));
        let now = cpu_seconds();
        eprintln!(
            "campaign: {name} {:.1} (cpu user {:.1} s, system {:.1} s)",
            t.elapsed().as_secs_f64(),
            now.0 - cpu.0,
            now.1 - cpu.1
        );
        cpu = now;
        *t = Instant::now();
    };
    let mut t = Instant::now();
    let today = jiff::civil::date(2026, 12, 2);
    let rows = mes_relay::enrolment::population::parse(&csv, today)
        .map_err(|bad| anyhow::anyhow!("{} bad rows, first {:?}", bad.len(), bad.first()))?;
    drop(csv);
    phase("parse_s", &mut t);
    let relay =
        tokio::runtime::Handle::current().block_on(mes_relay::server::open_offline(&data))?;
    let hub = relay.enrolment.get().expect("enrolment").clone();
    svc::import(&hub.tables, &rows, |_| {}).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    drop(rows);
    phase("import_s", &mut t);
    let t0 = UnixMillis::now();
    let r = svc::campaign(
        &hub.tables,
        &hub.policy,
        &hub.secrets,
        &svc::CampaignRun::default(),
        || t0,
        |_| {},
    )?;
    anyhow::ensure!(r.notified == n, "notified {} of {n}", r.notified);
    phase("notify_s", &mut t);
    let templates = mes_relay::outbox::notification::Templates::load(None)?;
    let delivery = mes_relay::outbox::Delivery::under(&dir.path().join("outbox"));
    let d = mes_relay::outbox::deliver(
        &hub.tables,
        &hub.secrets.code_key,
        &templates,
        &delivery,
        usize::MAX,
        |_| {},
    )?;
    anyhow::ensure!(d.emails + d.letters == n, "delivered {d:?} of {n}");
    phase("deliver_s", &mut t);
    // The pilot's decisions, through the handler's code path, with a cheap password
    // cost (the real cost is `activation_ms`, below).
    let cheap = std::sync::Arc::new(svc::EnrolmentHub::new(
        hub.tables.clone(),
        hub.policy.clone(),
        svc::Secrets {
            code_key: hub.secrets.code_key,
            argon: argon2::Params::new(8, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?,
        },
    ));
    let request = |i: usize, activate: bool| {
        let holder = CardHolder {
            nir: nir(i),
            vitale_serial: format!("V{i:010}"),
        };
        let code =
            mes_relay::enrolment::provisional_code::derive(&hub.secrets.code_key, &nir(i)[..13], 1);
        if activate {
            EnrolRequest::Activate {
                holder,
                code,
                identifier: format!("personne{i:08}"),
                password: "Santé-2026!".into(),
                email: String::new(),
                space: mes_protocol::ids::SpaceId([(i % 251) as u8; 16]),
            }
        } else {
            EnrolRequest::Oppose { holder, code }
        }
    };
    // 4.83 % activate and 0.68 % oppose (per 10,000: 483 and 68).
    let decisions: Vec<(usize, bool)> = (0..n)
        .filter_map(|i| match i % 10_000 {
            r if r < 483 => Some((i, true)),
            r if r < 551 => Some((i, false)),
            _ => None,
        })
        .collect();
    let now = UnixMillis(t0.0 + 86_400_000);
    // As the relay serves them: each request on a blocking thread, many at once (people
    // answer concurrently), each durable before its answer; concurrent commits share
    // the store's flushes.
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = decisions
            .chunks(decisions.len().div_ceil(deciding()).max(1))
            .map(|chunk| {
                let hub = cheap.clone();
                let request = &request;
                s.spawn(move || -> anyhow::Result<()> {
                    for (i, activate) in chunk {
                        hub.serve(&request(*i, *activate), now)
                            .map_err(|e| anyhow::anyhow!("person {i}: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a decision thread panicked"))??;
        }
        Ok(())
    })?;
    phase("decide_s", &mut t);
    // One activation at the real password cost, as a person waits for it.
    let mut samples = Vec::new();
    let spare = (0..n)
        .filter(|i| i % 10_000 >= 551)
        .take(if n > 10_000 { 20 } else { 3 });
    for i in spare {
        let t = Instant::now();
        hub.serve(&request(i, true), now)
            .map_err(|e| anyhow::anyhow!("person {i}: {e}"))?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    t = Instant::now();
    let later = UnixMillis(t0.0 + 43 * 86_400_000);
    let measured = samples.len() as u64;
    let swept = svc::sweep(&hub.tables, &hub.policy, later, |_| {})?;
    phase("sweep_s", &mut t);
    let seconds: f64 = phases.iter().map(|(_, s)| s).sum();
    let stats = svc::stats(&hub.tables)?;
    anyhow::ensure!(
        stats.auto_created as usize == swept.auto_created
            && stats.activated + stats.opposed + stats.auto_created == n as u64
            && stats.activated >= measured,
        "the pilot's table does not add up: {stats:?}"
    );
    let rss = peak_rss_mib();
    // The floor: sled alone writing one person-sized value per person, flushed every
    // 10,000 (what any design on this store pays once per pass). Plain inserts, as sled's
    // `apply_batch` would switch the process's stores to its locking mode (issue 23).
    let value_len = hub
        .tables
        .person(&nir(0)[..13])?
        .map(|p| mes_protocol::wire::codec::to_bytes(&p).len())
        .unwrap_or(300);
    let floor_db = sled::open(dir.path().join("floor.sled"))?;
    let t = Instant::now();
    let value = vec![7u8; value_len];
    for chunk in (0..n).collect::<Vec<_>>().chunks(svc::BATCH) {
        for i in chunk {
            floor_db.insert(nir(*i).as_bytes(), value.as_slice())?;
        }
        floor_db.flush()?;
    }
    let floor_s = t.elapsed().as_secs_f64();
    let mut out = vec![
        measure("campaign", "seconds", seconds, "s"),
        measure("campaign", "people", n as f64, "people"),
    ];
    for (name, s) in phases {
        out.push(measure("campaign", name, s, "s"));
    }
    out.push(measure(
        "campaign",
        "activation_rate",
        stats.activation_rate,
        "%",
    ));
    out.push(measure(
        "campaign",
        "opposition_rate",
        stats.opposition_rate,
        "%",
    ));
    out.push(measure("campaign", "sled_floor_one_pass_s", floor_s, "s"));
    out.push(measure("campaign", "peak_rss_mib", rss, "MiB"));
    out.push(measure(
        "campaign",
        "activation_ms",
        percentile(&samples, 50.0),
        "ms",
    ));
    Ok(out)
}
