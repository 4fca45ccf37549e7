//! `ingest`: single-change encrypted bundles uploaded by 100 devices at once over QUIC,
//! each acknowledged only once durable (sled flushed, or PostgreSQL committed with its
//! default durable settings); `mes-bench ingest --backend sled|postgres`.
//!
//! The relay runs as its own process ([`super::child`]), so the CPU time it spends per
//! upload is measured apart from the devices' (which share the same two cores here).

use super::child::Child;
use super::{measure, Measure, Size};
use crate::{device, volume};
use mes_daemon::sync::relay_client::RelayClient;
use mes_protocol::wire::Request;
use std::time::Instant;

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let (devices, per_device) = (size.pick(100, 4), size.pick(200, 10));
    let dir = tempfile::tempdir()?;
    let r = Child::spawn("relay", dir.path())?;
    let t = r.target.clone();
    let a = device(dir.path(), "a", &t).await?;
    let space = crate::home(&a.daemon).await?;
    crate::registered(&a, space).await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let key = crate::current_key(&a.daemon, notes).expect("volume key");
    let principal = super::principal_keys(&a.daemon)?;
    let epoch = super::current_epoch(&a.daemon, notes);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let changes = super::changes(per_device);
    // Each device: its connection and its chain of sealed one-change bundles, made before
    // the clock starts (sealing is the device's work, not the relay's).
    let mut uploads = Vec::new();
    let (lister, _) = crate::connect_as(&a.daemon, &t).await?;
    for i in 0..devices {
        let (dev, cert) = super::listed_device(&lister, &principal, &format!("ingest-{i}")).await?;
        let (client, pushes) = RelayClient::connect(&endpoint, &t, &cert, &dev.signing).await?;
        let header = super::bundle_header(space, notes, epoch, cert.body.device);
        let bundles = super::sealed_chain(&key, &header, &dev.signing, &changes);
        uploads.push((client, pushes, bundles));
    }
    // The space's own daemon would fetch and apply every bundle on the same two cores;
    // that is device work (the `fanout` scenario measures delivery), not ingest.
    a.shutdown().await;
    let cpu = r.cpu_seconds()?;
    let sample = mes_protocol::wire::codec::to_bytes(&uploads[0].2[0]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (client, pushes, bundles) in uploads {
        tasks.push(tokio::spawn(async move {
            for b in bundles {
                client
                    .request(Request::Append {
                        space,
                        volume: notes,
                        bundles: vec![b],
                    })
                    .await?;
            }
            drop(pushes);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = r.cpu_seconds()? - cpu;
    let total = (devices * per_device) as f64;
    drop(r);
    let floor = sled_floor(dir.path(), &sample, total as usize)?;
    Ok(vec![
        measure("ingest", "sled_floor_per_s", floor, "entries/s"),
        measure("ingest", "uploads_per_s", total / secs, "uploads/s"),
        measure("ingest", "uploads", total, "uploads"),
        measure("ingest", "relay_cpu_us_per_upload", cpu * 1e6 / total, "µs"),
        measure("ingest", "relay_cores", cpu / secs, "cores"),
    ])
}

/// The floor: sled alone, one writer, writing as many entries of the same size as the
/// uploads, flushed every [`FLOOR_GROUP`] entries (about the group the relay's flushes
/// gather under this load), in entries per second.
fn sled_floor(dir: &std::path::Path, entry: &[u8], n: usize) -> anyhow::Result<f64> {
    const FLOOR_GROUP: usize = 10;
    let db = sled::Config::new().path(dir.join("floor.sled")).open()?;
    let log = db.open_tree("log")?;
    let start = Instant::now();
    for i in 0..n {
        log.insert((i as u64).to_be_bytes(), entry)?;
        if (i + 1) % FLOOR_GROUP == 0 {
            db.flush()?;
        }
    }
    db.flush()?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
