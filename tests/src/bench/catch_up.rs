//! `catch-up`: device A's log holds N one-change bundles (uploaded as an interactive
//! device would, one change per bundle, signed and sealed); a fresh device of the same
//! person joins and fetches, verifies, decrypts, applies and durably stores them all.
//! Then the same through a snapshot.

use super::{Measure, Size};
use crate::{device, home, online, relay, target, until, volume};
use std::time::{Duration, Instant};

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let n = size.pick(100_000, 500);
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
    let expected = n + 1; // plus the space label
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

    let start = Instant::now();
    let b = device(dir.path(), "b", &t).await?;
    online(&b.daemon).await?;
    let code = mes_daemon::devices::pairing::start(a.daemon.clone()).await?;
    mes_daemon::devices::pairing::join(b.daemon.clone(), &code, "b").await?;
    let paired = start.elapsed();
    until(&b.daemon, Duration::from_secs(600), "b caught up", |d| {
        d.state()
            .volumes
            .get(&notes)
            .is_some_and(|v| v.progress.idle() && v.progress.cursor.0 as usize >= expected)
    })
    .await?;
    let secs = (start.elapsed() - paired).as_secs_f64();
    anyhow::ensure!(
        b.daemon.note_list(space)?.len() == n,
        "b holds {} notes",
        b.daemon.note_list(space)?.len()
    );

    a.daemon.put_snapshot(space, "notes").await?;
    let start = Instant::now();
    let c = device(dir.path(), "c", &t).await?;
    online(&c.daemon).await?;
    let code = mes_daemon::devices::pairing::start(a.daemon.clone()).await?;
    mes_daemon::devices::pairing::join(c.daemon.clone(), &code, "c").await?;
    let paired = start.elapsed();
    until(
        &c.daemon,
        Duration::from_secs(600),
        "c converged from the snapshot",
        |d| {
            d.state()
                .volumes
                .get(&notes)
                .is_some_and(|v| v.progress.idle() && v.progress.cursor.0 as usize >= expected)
        },
    )
    .await?;
    let snapshot_ms = (start.elapsed() - paired).as_secs_f64() * 1000.0;
    anyhow::ensure!(
        c.daemon.note_list(space)?.len() == n,
        "c holds {} notes",
        c.daemon.note_list(space)?.len()
    );
    Ok(vec![
        Measure {
            scenario: "catch-up",
            metric: "changes_per_s",
            value: n as f64 / secs,
            unit: "changes/s",
        },
        Measure {
            scenario: "catch-up",
            metric: "snapshot_ms",
            value: snapshot_ms,
            unit: "ms",
        },
    ])
}
