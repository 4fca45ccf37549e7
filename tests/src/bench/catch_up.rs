//! `catch-up`: device A's log holds N one-change bundles (uploaded as an interactive
//! device would, one change per bundle, signed and sealed); a fresh device of the same
//! person joins and fetches, verifies, decrypts, applies and durably stores them all.
//! Then the same through a snapshot. `fresh-10k` (issue 28, item 5): the same join on a
//! 10,000-change notes volume, no snapshot, timed from pairing done to every change
//! applied and durable.

use super::{measure, Measure, Size};
use crate::{device, home, online, relay, target, until, volume};
use mes_daemon::daemon::Daemon;
use mes_daemon::run::RunningDaemon;
use mes_protocol::ids::{SpaceId, VolumeId};
use std::time::{Duration, Instant};

/// A relay, and device A whose notes volume holds `n` one-change bundles, applied.
struct Filled {
    dir: tempfile::TempDir,
    _relay: mes_relay::server::RunningRelay,
    target: mes_daemon::sync::relay_client::RelayTarget,
    a: RunningDaemon,
    space: SpaceId,
    notes: VolumeId,
    /// Entries in the log: the notes and the space's label.
    expected: usize,
}

async fn filled(n: usize) -> anyhow::Result<Filled> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    until(&a.daemon, Duration::from_secs(30), "a idle", |d| {
        d.state().volumes[&notes].progress.idle()
    })
    .await?;
    super::append_one_change_bundles(&a.daemon, &t, space, notes, n).await?;
    let expected = n + 1;
    until(
        &a.daemon,
        Duration::from_secs(600),
        "a applied its log",
        |d| {
            d.state().volumes[&notes].progress.idle()
                && d.note_list(space).map(|l| l.len() + 1).unwrap_or(0) == expected
        },
    )
    .await?;
    Ok(Filled {
        dir,
        _relay: r,
        target: t,
        a,
        space,
        notes,
        expected,
    })
}

/// A fresh device `name` pairs with A, then catches up: the time from pairing done until
/// its notes volume is applied and stored to the end; checks it holds `n` notes.
async fn join(f: &Filled, name: &str, n: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let b = device(f.dir.path(), name, &f.target).await?;
    online(&b.daemon).await?;
    let code = mes_daemon::devices::pairing::start(f.a.daemon.clone()).await?;
    mes_daemon::devices::pairing::join(b.daemon.clone(), &code, name).await?;
    let paired = start.elapsed();
    let (notes, expected) = (f.notes, f.expected);
    until(
        &b.daemon,
        Duration::from_secs(600),
        "caught up",
        |d: &Daemon| {
            d.state()
                .volumes
                .get(&notes)
                .is_some_and(|v| v.progress.idle() && v.progress.cursor.0 as usize >= expected)
        },
    )
    .await?;
    let took = start.elapsed() - paired;
    let held = b.daemon.note_list(f.space)?.len();
    anyhow::ensure!(held == n, "{name} holds {held} notes");
    b.shutdown().await;
    Ok(took)
}

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let n = size.pick(100_000, 500);
    let f = filled(n).await?;
    let secs = join(&f, "b", n).await?.as_secs_f64();
    f.a.daemon.put_snapshot(f.space, "notes").await?;
    let snapshot_ms = join(&f, "c", n).await?.as_secs_f64() * 1000.0;
    Ok(vec![
        measure("catch-up", "changes_per_s", n as f64 / secs, "changes/s"),
        measure("catch-up", "snapshot_ms", snapshot_ms, "ms"),
    ])
}

/// `fresh-10k`: see the module's header.
pub async fn fresh(size: Size) -> anyhow::Result<Vec<Measure>> {
    let n = size.pick(10_000, 500);
    let f = filled(n).await?;
    let took = join(&f, "b", n).await?;
    Ok(vec![
        measure("fresh-10k", "ms", took.as_secs_f64() * 1000.0, "ms"),
        measure("fresh-10k", "changes", n as f64, "changes"),
    ])
}
