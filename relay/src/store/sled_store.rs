//! The embedded default backend: one sled database in the relay's data directory.
//!
//! Keys: `log` volume‖seq(BE) → bundle; `heads` volume → last seq written; `pruned`
//! volume → seq; `snapshots` volume → upto‖bytes; one tree per [`Table`]; blob
//! chunks under blob‖index and committed blobs under blob → chunk count.
//! Sequence numbers are assigned under one lock, written in one batch, then flushed; the
//! visible head advances only after the flush, so readers never see what could be lost.
//! Concurrent appends share their flush ([`crate::group_commit`]): one `fsync` covers
//! every append written before it started.

use mes_protocol::ids::{Seq, VolumeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::{
    BlobChunk, BoxFuture, NotifyHook, ReadResult, Record, Snapshot, Store, StoreError, Table,
};

/// sled-backed relay store.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    heads: sled::Tree,
    pruned: sled::Tree,
    snapshots: sled::Tree,
    records: [sled::Tree; Table::ALL.len()],
    chunks: sled::Tree,
    blobs: sled::Tree,
    append_lock: Mutex<()>,
    commits: crate::group_commit::AsyncGroupCommit,
    visible: Mutex<HashMap<VolumeId, Seq>>,
    notify: std::sync::RwLock<Option<NotifyHook>>,
    /// The last handle, closed on a thread of its own (`close_later`, issue 23).
    _close: mes_protocol::close_later::CloseLater<sled::Db>,
}

fn log_key(volume: VolumeId, seq: Seq) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&volume.0);
    k[16..].copy_from_slice(&seq.0.to_be_bytes());
    k
}

fn read_u64(v: &[u8]) -> u64 {
    u64::from_be_bytes(v[..8].try_into().expect("8-byte big-endian value"))
}

fn chunk_key(blob: &[u8; 32], index: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(blob);
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Opens sled, waiting a moment while a store of the same directory closed in this
/// process still holds its lock (sled's IO threads release it after the last handle; the
/// daemon's twin is `mes_daemon::replica::store::open_sled`, issue 23).
pub fn open_db(config: sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            // sled wraps the lock's WouldBlock in an error of its own kind.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = open_db(sled::Config::new().path(dir.join("relay.sled")))?;
        let t = |n: &str| db.open_tree(n);
        Ok(SledStore {
            log: t("log")?,
            heads: t("heads")?,
            pruned: t("pruned")?,
            snapshots: t("snapshots")?,
            records: [
                t("membership")?,
                t("devices")?,
                t("revocations")?,
                t("envelopes")?,
                t("blob_owners")?,
                t("directory")?,
                t("history")?,
                t("releases")?,
                t("catalogue")?,
                t("closed_spaces")?,
                t("volume_spaces")?,
                t("admission_keys")?,
                t("blob_spaces")?,
                t("device_current")?,
                t("blob_volumes")?,
                t("blob_pending")?,
                t("erased")?,
            ],
            chunks: t("blob_chunks")?,
            blobs: t("blobs")?,
            _close: mes_protocol::close_later::CloseLater::new(
                "relay store close",
                db.clone(),
                &super::WATCHDOG,
            ),
            db,
            append_lock: Mutex::new(()),
            commits: Default::default(),
            visible: Mutex::new(HashMap::new()),
            notify: Default::default(),
        })
    }

    /// The enrolment tables, in the same database.
    pub fn enrolment_tables(&self) -> Result<crate::enrolment::store::EnrolmentTables, StoreError> {
        crate::enrolment::store::EnrolmentTables::open(&self.db)
    }

    fn tree(&self, kind: Table) -> &sled::Tree {
        &self.records[kind as usize]
    }

    fn stored_head(&self, volume: VolumeId) -> Result<Seq, StoreError> {
        Ok(Seq(self
            .heads
            .get(volume.0)?
            .map(|v| read_u64(&v))
            .unwrap_or(0)))
    }

    fn pruned_upto(&self, volume: VolumeId) -> Result<Seq, StoreError> {
        Ok(Seq(self
            .pruned
            .get(volume.0)?
            .map(|v| read_u64(&v))
            .unwrap_or(0)))
    }

    fn publish(&self, volume: VolumeId, last: Seq) {
        let advanced = {
            let mut vis = self.visible.lock().expect("visible heads lock");
            let e = vis.entry(volume).or_default();
            if last > *e {
                *e = last;
                true
            } else {
                false
            }
        };
        if advanced {
            if let Some(hook) = &*self.notify.read().expect("notify lock") {
                hook(volume, last);
            }
        }
    }

    fn read_now(&self, volume: VolumeId, after: Seq, max: usize) -> Result<ReadResult, StoreError> {
        let head = self.head_now(volume)?;
        let pruned = self.pruned_upto(volume)?;
        if after < pruned {
            return Ok(ReadResult {
                items: Vec::new(),
                head,
                pruned_upto: Some(pruned),
            });
        }
        let mut items = Vec::new();
        if after < head {
            let start = log_key(volume, after.next());
            let end = log_key(volume, head);
            let mut bytes = 0;
            for kv in self.log.range(start..=end).take(max) {
                let (k, v) = kv?;
                if !items.is_empty() && bytes + v.len() > mes_protocol::wire::MAX_FETCH_BYTES {
                    break;
                }
                bytes += v.len();
                items.push((Seq(read_u64(&k[16..])), v.to_vec()));
            }
        }
        Ok(ReadResult {
            items,
            head,
            pruned_upto: None,
        })
    }

    /// Returns once every write applied before the call is on disk; appends waiting at
    /// the same time share the flush.
    async fn durable(&self) -> Result<(), StoreError> {
        self.commits
            .wait_durable(|| async {
                crate::group_commit::gather().await;
                let _watched = super::WATCHDOG.begin("flush", std::time::Instant::now());
                self.db
                    .flush_async()
                    .await
                    .map(drop)
                    .map_err(StoreError::from)
            })
            .await
    }

    fn head_now(&self, volume: VolumeId) -> Result<Seq, StoreError> {
        if let Some(s) = self
            .visible
            .lock()
            .expect("visible heads lock")
            .get(&volume)
        {
            return Ok(*s);
        }
        // Not yet seen since start: everything on disk survived a restart, so it is durable.
        let stored = self.stored_head(volume)?;
        let mut vis = self.visible.lock().expect("visible heads lock");
        Ok(*vis.entry(volume).or_insert(stored))
    }
}

impl Store for SledStore {
    fn append<'a>(
        &'a self,
        volume: VolumeId,
        bundles: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(Seq, Seq), StoreError>> {
        Box::pin(async move {
            let (first, last) = {
                let _guard = self.append_lock.lock().expect("append lock");
                let head = self.stored_head(volume)?;
                // Plain inserts, not a sled batch: a batch seals and writes sled's IO
                // buffer each time (a write and a `sync_file_range` per append, most of
                // the relay's CPU under load). The head, written last, is the commit
                // mark: sled recovers a prefix of its log, so a head that survives a
                // crash has its entries, and entries past it are overwritten.
                let mut seq = head;
                for b in &bundles {
                    seq = seq.next();
                    self.log.insert(&log_key(volume, seq)[..], b.as_slice())?;
                }
                self.heads.insert(volume.0, &seq.0.to_be_bytes())?;
                (head.next(), seq)
            };
            self.durable().await?;
            self.publish(volume, last);
            Ok((first, last))
        })
    }

    fn read(
        &self,
        volume: VolumeId,
        after: Seq,
        max: usize,
    ) -> BoxFuture<'_, Result<ReadResult, StoreError>> {
        Box::pin(async move { self.read_now(volume, after, max) })
    }

    fn head(&self, volume: VolumeId) -> BoxFuture<'_, Result<Seq, StoreError>> {
        Box::pin(async move { self.head_now(volume) })
    }

    fn put_snapshot<'a>(
        &'a self,
        volume: VolumeId,
        upto: Seq,
        snapshot: Vec<u8>,
        prune: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut v = upto.0.to_be_bytes().to_vec();
            v.extend_from_slice(&snapshot);
            self.snapshots.insert(volume.0, v)?;
            self.durable().await?;
            if prune {
                // The snapshot is durable before any entry behind it is dropped, and the
                // pruned mark is written before the entries go (sled recovers a prefix
                // of its log: a reader never finds a gap the mark does not explain).
                // Removed one by one, never with sled's `apply_batch` (issue 23,
                // `sled_batch`); a crash leaves at most entries the next prune removes.
                self.pruned.insert(volume.0, &upto.0.to_be_bytes())?;
                let start = log_key(volume, Seq(0));
                let end = log_key(volume, upto);
                for k in self.log.range(start..=end).keys() {
                    self.log.remove(k?)?;
                }
                self.durable().await?;
            }
            Ok(())
        })
    }

    fn get_snapshot(
        &self,
        volume: VolumeId,
    ) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .snapshots
                .get(volume.0)?
                .map(|v| (Seq(read_u64(&v)), v[8..].to_vec())))
        })
    }

    fn remove_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.tree(kind).remove(key)?;
            self.durable().await?;
            Ok(())
        })
    }

    fn put_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.tree(kind).insert(key, value)?;
            self.durable().await?;
            Ok(())
        })
    }

    fn get_record<'a>(
        &'a self,
        kind: Table,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move { Ok(self.tree(kind).get(key)?.map(|v| v.to_vec())) })
    }

    fn scan_records<'a>(
        &'a self,
        kind: Table,
        prefix: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            self.tree(kind)
                .scan_prefix(prefix)
                .map(|kv| {
                    kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(StoreError::from)
                })
                .collect()
        })
    }

    fn put_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // A committed blob is immutable (its id is its hash): chunks for it are ignored.
            if self.blobs.contains_key(blob)? {
                return Ok(());
            }
            self.chunks.insert(chunk_key(blob, index), data)?;
            Ok(())
        })
    }

    fn commit_blob<'a>(
        &'a self,
        blob: [u8; 32],
        chunks: u32,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if let Some(n) = self.blobs.get(blob)? {
                return Ok(n[..4] == chunks.to_be_bytes());
            }
            let mut hasher = blake3::Hasher::new();
            for i in 0..chunks {
                match self.chunks.get(chunk_key(&blob, i))? {
                    Some(c) => {
                        hasher.update(&c);
                    }
                    None => return Ok(false),
                }
            }
            if *hasher.finalize().as_bytes() != blob {
                for i in 0..chunks {
                    self.chunks.remove(chunk_key(&blob, i))?;
                }
                return Ok(false);
            }
            self.blobs.insert(blob, &chunks.to_be_bytes())?;
            self.durable().await?;
            Ok(true)
        })
    }

    fn remove_blob_chunks<'a>(
        &'a self,
        blob: &'a [u8; 32],
        from: u32,
        to: u32,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let kept = match self.blobs.get(blob)? {
                Some(n) => u32::from_be_bytes(n[..4].try_into().expect("4 bytes")),
                None => 0,
            };
            for i in from.max(kept)..to {
                self.chunks.remove(chunk_key(blob, i))?;
            }
            self.durable().await?;
            Ok(())
        })
    }

    fn remove_volume(&self, volume: VolumeId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            {
                // Appends to the volume wait: none lands between the head and the log.
                let _guard = self.append_lock.lock().expect("append lock");
                self.heads.remove(volume.0)?;
                self.pruned.remove(volume.0)?;
                self.snapshots.remove(volume.0)?;
                for k in self.log.scan_prefix(volume.0).keys() {
                    self.log.remove(k?)?;
                }
                self.visible.lock().expect("visible heads").remove(&volume);
            }
            self.durable().await
        })
    }

    fn remove_blob<'a>(&'a self, blob: &'a [u8; 32]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.blobs.remove(blob)?;
            for k in self.chunks.scan_prefix(blob).keys() {
                self.chunks.remove(k?)?;
            }
            self.durable().await
        })
    }

    fn get_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
    ) -> BoxFuture<'a, Result<Option<BlobChunk>, StoreError>> {
        Box::pin(async move {
            let Some(count) = self.blobs.get(blob)? else {
                return Ok(None);
            };
            let count = u32::from_be_bytes(count[..4].try_into().expect("4-byte count"));
            if index >= count {
                return Ok(None);
            }
            Ok(self
                .chunks
                .get(chunk_key(blob, index))?
                .map(|c| (c.to_vec(), index + 1 == count)))
        })
    }

    fn set_notify(&self, hook: NotifyHook) {
        *self.notify.write().expect("notify lock") = Some(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_are_dense_and_reads_respect_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let v = VolumeId([7; 16]);
        let big = vec![1u8; 3 * 1024 * 1024];
        let (first, last) = store
            .append(v, vec![big.clone(), big.clone(), vec![2u8; 10]])
            .await
            .unwrap();
        assert_eq!((first, last), (Seq(1), Seq(3)));
        let r = store.read(v, Seq(0), 100).await.unwrap();
        assert_eq!(r.items.len(), 1, "a 4 MiB budget holds one 3 MiB bundle");
        assert_eq!(r.head, Seq(3));
        let r = store.read(v, Seq(1), 100).await.unwrap();
        assert_eq!(
            r.items.iter().map(|(s, _)| s.0).collect::<Vec<_>>(),
            vec![2, 3],
            "3 MiB and 10 bytes fit the budget"
        );
        let r = store.read(v, Seq(2), 100).await.unwrap();
        assert_eq!(
            r.items.iter().map(|(s, _)| s.0).collect::<Vec<_>>(),
            vec![3]
        );
        let r = store.read(v, Seq(0), 1).await.unwrap();
        assert_eq!(r.items.len(), 1);
    }
}
