//! Everything a relay stored, read from each backend as an operator (or a thief of its
//! disks and dumps) would, to check that an erasure leaves nothing (F1.6, issue 27 item
//! 3): the sled databases of the relay's directory opened and read tree by tree (a
//! logical scan: freed space inside sled's files is reclaimed as sled reuses it, see
//! docs/threat-model.md), `pg_dump` of its PostgreSQL database, and every object under
//! its S3 prefix. Run it with the relay stopped (sled holds a lock while open).

use std::path::Path;

/// Every key and value of every sled database under `relay_dir`, the text of
/// `pg_dump` of its database on the PostgreSQL backend, and every object of its S3
/// prefix with the S3 blobs.
pub async fn everything_stored(relay_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(relay_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sled") && path.is_dir() {
            let db = mes_relay::store::sled_store::open_db(sled::Config::new().path(&path))?;
            for name in db.tree_names() {
                for kv in &db.open_tree(&name)? {
                    let (k, v) = kv?;
                    out.extend_from_slice(&k);
                    out.extend_from_slice(&v);
                }
            }
        }
    }
    if std::env::var("MES_TEST_BACKEND").as_deref() == Ok("postgres") {
        let url = crate::pg_database(relay_dir).await?;
        let dump = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&url)
            .output()?;
        anyhow::ensure!(
            dump.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
        out.extend_from_slice(&dump.stdout);
    }
    if std::env::var("MES_TEST_BLOBS").as_deref() == Ok("s3") {
        use futures_util::StreamExt;
        let objects = crate::s3_bucket(relay_dir).await?.connect()?;
        let mut listed = objects.list(None);
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            out.extend_from_slice(meta.location.as_ref().as_bytes());
            out.extend_from_slice(&objects.get(&meta.location).await?.bytes().await?);
        }
    }
    Ok(out)
}

/// Whether `stored` holds `needle`, as bytes or as the hex `pg_dump` writes bytea in.
pub fn holds(stored: &[u8], needle: &[u8]) -> bool {
    let hex = hex::encode(needle);
    stored.windows(needle.len()).any(|w| w == needle)
        || stored.windows(hex.len()).any(|w| w == hex.as_bytes())
}
