//! Stress of the embedded stores in one process (issue 23): several sled stores at once,
//! the daemon's sealed replica, the relay's log and its enrolment tables' journaled
//! batches, each round opening a store, writing
//! batches and flushing from several tasks while another store keeps working, then
//! dropping it from a runtime worker, as the daemon and the relay do at shutdown. sled's
//! concurrency control is one static for every store in a process, so this is where a
//! batch queued behind a flush, or a flush on drop, would hang. A watchdog reports a
//! round that does not end in [`HANG_AFTER`].

use mes_daemon::replica::store::SealedStore;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::VolumeId;
use mes_relay::store::{sled_store::SledStore, Store};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A round that takes longer than this is a hang.
pub const HANG_AFTER: Duration = Duration::from_secs(30);

/// What a stress run did.
#[derive(Debug, Default)]
pub struct StressReport {
    /// Rounds completed.
    pub rounds: u64,
    /// The longest round.
    pub longest_round: Duration,
    /// Writes made durable (each checked after the store reopened).
    pub writes: u64,
    /// The longest wait for a closed store's lock before it reopened.
    pub longest_reopen_wait: Duration,
}

/// Opens the replica, waiting for the lock of the one just closed; how long it waited.
fn reopen(path: &Path, key: &SymmetricKey) -> anyhow::Result<(SealedStore, Duration)> {
    let start = Instant::now();
    loop {
        match SealedStore::open(path, key) {
            Ok(s) => return Ok((s, start.elapsed())),
            Err(e)
                if start.elapsed() < HANG_AFTER && e.message.contains("could not acquire lock") => {
            }
            Err(e) => anyhow::bail!("{e} (after waiting {:?})", start.elapsed()),
        }
    }
}

/// Runs `rounds` rounds under `dir`. A round that hangs ends the process with exit code 3
/// after printing `{"hung": ...}` (stuck threads cannot be freed).
pub fn run(dir: &Path, rounds: u64) -> anyhow::Result<StressReport> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let key = SymmetricKey::from_bytes([5; 32]);
    let steady = SealedStore::open(&dir.join("steady"), &key)?;
    let done = Arc::new(AtomicU64::new(0));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let now = done.load(Ordering::SeqCst);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > HANG_AFTER {
                    // The stuck threads cannot be freed: say which round hung and end.
                    println!(
                        "{}",
                        serde_json::json!({ "hung": format!("round {now} made no progress for {HANG_AFTER:?}") })
                    );
                    std::process::exit(3);
                }
                if now == u64::MAX {
                    return;
                }
            }
        });
    }
    let mut report = StressReport::default();
    for round in 0..rounds {
        let start = Instant::now();
        let (replica, waited) = reopen(&dir.join("replica"), &key)?;
        report.longest_reopen_wait = report.longest_reopen_wait.max(waited);
        let log = Arc::new(SledStore::open(&dir.join("relay"))?);
        // The relay's enrolment tables write journaled batches into their own tree.
        let tables_db =
            mes_relay::store::sled_store::open_db(sled::Config::new().path(dir.join("tables")))?;
        let (tables, _) = mes_relay::store::sled_batch::Journal::open(
            &tables_db,
            tables_db.open_tree("enrolment")?,
        )?;
        let tables = Arc::new((tables_db, tables));
        let volume = VolumeId([(round % 251) as u8; 16]);
        let (a, b, c, t) = (replica.clone(), steady.clone(), log.clone(), tables.clone());
        let outcome = {
            rt.block_on(async move {
                let writes = |s: SealedStore, tag: String| async move {
                    for i in 0..8u64 {
                        let mut batch = s.batch();
                        for k in 0..3u64 {
                            batch.put(&tag, &(round * 100 + i * 3 + k).to_be_bytes(), b"x");
                        }
                        s.apply(batch)?;
                        s.flush().await?;
                    }
                    anyhow::Ok(())
                };
                let appends = async move {
                    for _ in 0..8 {
                        c.append(volume, vec![vec![1u8; 64]]).await?;
                    }
                    anyhow::Ok(())
                };
                let batches = tokio::task::spawn_blocking(move || {
                    for i in 0..8u64 {
                        let mut batch = mes_relay::store::sled_batch::Batch::default();
                        for k in 0..3u64 {
                            batch.insert((round * 100 + i * 3 + k).to_be_bytes(), b"p".to_vec());
                        }
                        t.1.apply(batch)?;
                        t.0.flush()?;
                    }
                    anyhow::Ok(())
                });
                let (x, y, z, w) = tokio::join!(
                    tokio::spawn(writes(a, format!("replica-{round}"))),
                    tokio::spawn(writes(b.clone(), "steady".into())),
                    tokio::spawn(appends),
                    batches,
                );
                x??;
                y??;
                z??;
                w??;
                // The last handles dropped on a runtime worker while the steady store
                // keeps writing (the daemon's and the relay's shutdown).
                let dropping = tokio::spawn(async move {
                    drop(replica);
                    drop(log);
                    drop(tables);
                });
                let (d, w) = tokio::join!(dropping, tokio::spawn(writes(b, "steady-more".into())));
                d?;
                w??;
                anyhow::Ok(())
            })
        };
        outcome?;
        // Everything flushed is there after the reopen.
        let (reopened, waited) = reopen(&dir.join("replica"), &key)?;
        report.longest_reopen_wait = report.longest_reopen_wait.max(waited);
        // This round's writes (a namespace per round keeps the check's cost flat).
        let stored = reopened.count(&format!("replica-{round}")) as u64;
        anyhow::ensure!(
            stored == 24,
            "round {round}: {stored} of its 24 writes after reopening"
        );
        drop(reopened);
        report.writes += 24;
        report.rounds += 1;
        report.longest_round = report.longest_round.max(start.elapsed());
        done.store(round + 1, Ordering::SeqCst);
    }
    done.store(u64::MAX, Ordering::SeqCst);
    Ok(report)
}
