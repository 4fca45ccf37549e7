//! The replica's sled store, where every value is sealed with the device's storage key and
//! every key name is a keyed hash: the files reveal neither contents, nor titles, nor which
//! volume a record belongs to; only counters (sequence numbers) appear as key suffixes.
//!
//! Writes go through a [`Batch`] applied atomically; [`SealedStore::flush`] returns only once
//! sled has made them durable. A fault switch makes the next flushes fail, so tests can
//! show that nothing is acknowledged before durability.
//!
//! Why batches are journaled rather than sled's `apply_batch` (issue 23): sled's
//! concurrency control is one static for every store in a process, lock-free until the
//! first `apply_batch` (or transaction) switches it for good to a readers-writer lock.
//! From then on a flush holding a read (every flush, and every drop of a store) can wait
//! for a flusher thread whose read queues behind a waiting batch, while the batch waits
//! for the flush: a cycle, seen as hangs in benchmarks and tests holding several stores.
//! Without `apply_batch` the lock is never taken. A batch of several writes is made
//! atomic by a journal instead: the batch is first written whole as one record of the
//! `journal` tree (one sled write, atomic), then applied write by write, then the record
//! is removed; sled recovers a prefix of its log after a crash, so a record that
//! survives names a batch that may be partly applied, and opening replays it (its writes
//! are whole values, so replaying is idempotent). Callers apply batches that touch the
//! same keys one at a time (the daemon does, under its state lock).

use mes_protocol::crypto::seal::SymmetricKey;
use rand::rngs::OsRng;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mes_protocol::store_error!(
    /// A storage failure of the replica: what was being done, and what kind of failure it is.
    "replica storage"
);
pub use mes_protocol::store_error::StoreErrorKind;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::backend(e.to_string())
    }
}

/// The replica store operations in flight in this process (issue 23): a thread of
/// [`watch_stores`] logs any that runs longer than [`mes_protocol::watchdog::SLOW`].
pub static WATCHDOG: mes_protocol::watchdog::Watchdog = mes_protocol::watchdog::Watchdog::new();

/// Starts, once per process, the thread that logs store operations running too long.
pub fn watch_stores() {
    let logged = WATCHDOG.watch(|what, ran| {
        tracing::warn!(
            "replica store: {what} has been running for {:.1} s (a store that stops making progress; see docs/architecture.md, \"The embedded stores\")",
            ran.as_secs_f64()
        );
    });
    if let Err(e) = logged {
        tracing::warn!("the store watchdog did not start: {e}");
    }
}

/// The sealed store.
#[derive(Clone)]
pub struct SealedStore {
    db: sled::Db,
    /// Batches being applied ([`SealedStore::apply`]).
    journal: sled::Tree,
    next_batch: Arc<std::sync::atomic::AtomicU64>,
    clear: bool,
    value_key: Arc<SymmetricKey>,
    name_key: [u8; 32],
    fail_flush: Arc<AtomicBool>,
    /// The last handle, closed on a thread of its own when the last clone goes
    /// (`close_later`, issue 23).
    _close: Arc<mes_protocol::close_later::CloseLater<sled::Db>>,
}

/// A stored `(suffix, value)`.
pub type Entry = (Vec<u8>, Vec<u8>);

/// sled's page cache for the replica.
const REPLICA_CACHE_BYTES: u64 = 8 << 20;

/// Length of a hashed namespace prefix.
const NAME_LEN: usize = 16;

/// Atomic group of writes: (key, new value or removal), in order.
pub struct Batch<'a> {
    store: &'a SealedStore,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<'a> Batch<'a> {
    /// Puts `value` at `(namespace, suffix)`.
    pub fn put(&mut self, namespace: &str, suffix: &[u8], value: &[u8]) {
        let key = self.store.key(namespace, suffix);
        let sealed = if self.store.clear {
            value.to_vec()
        } else {
            self.store.value_key.seal(&mut OsRng, &key, value)
        };
        self.ops.push((key, Some(sealed)));
    }
    /// Removes `(namespace, suffix)`.
    pub fn remove(&mut self, namespace: &str, suffix: &[u8]) {
        self.ops.push((self.store.key(namespace, suffix), None));
    }
}

impl SealedStore {
    /// Opens (or creates) the store in `dir` under `storage_key`.
    pub fn open(dir: &Path, storage_key: &SymmetricKey) -> Result<Self, StoreError> {
        // The replica is read once at open (volume metadata, stored document lists) and
        // then lazily per volume, which keeps what it loads in memory itself; sled's own
        // page cache (1 GiB by default) would only hold those pages a second time.
        let db = open_sled(
            sled::Config::new()
                .path(dir)
                .mode(sled::Mode::HighThroughput)
                .cache_capacity(REPLICA_CACHE_BYTES),
        )?;
        let journal = db.open_tree("journal")?;
        let replayed = replay_journal(&db, &journal)?;
        if replayed > 0 {
            tracing::info!("replayed {replayed} batch(es) a crash interrupted");
        }
        Ok(SealedStore {
            _close: Arc::new(mes_protocol::close_later::CloseLater::new(
                "replica close",
                db.clone(),
                &WATCHDOG,
            )),
            db,
            journal,
            next_batch: Arc::default(),
            clear: false,
            value_key: Arc::new(storage_key.derive("mes/replica/values/v1")),
            name_key: *storage_key.derive("mes/replica/names/v1").as_bytes(),
            fail_flush: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Opens a store that keeps names and values in clear: the null-cipher control of the
    /// confidentiality tests only.
    pub fn open_clear(dir: &Path) -> Result<Self, StoreError> {
        let mut s = Self::open(dir, &SymmetricKey::from_bytes([0; 32]))?;
        s.clear = true;
        Ok(s)
    }

    fn prefix(&self, namespace: &str) -> Vec<u8> {
        if self.clear {
            let mut k = namespace.as_bytes().to_vec();
            k.push(0);
            return k;
        }
        blake3::keyed_hash(&self.name_key, namespace.as_bytes()).as_bytes()[..NAME_LEN].to_vec()
    }

    fn key(&self, namespace: &str, suffix: &[u8]) -> Vec<u8> {
        let mut k = self.prefix(namespace);
        k.extend_from_slice(suffix);
        k
    }

    /// A new batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            ops: Vec::new(),
        }
    }

    /// Applies a batch atomically (not yet durable: call [`SealedStore::flush`]), through
    /// the journal when it holds more than one write (see the module's header).
    pub fn apply(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let _watched = WATCHDOG.begin("apply", std::time::Instant::now());
        let ops = batch.ops;
        if ops.len() <= 1 {
            return Ok(apply_ops(&self.db, &ops)?);
        }
        let id = self
            .next_batch
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        self.journal
            .insert(id, mes_protocol::wire::codec::to_bytes(&ops))?;
        apply_ops(&self.db, &ops)?;
        self.journal.remove(id)?;
        Ok(())
    }

    /// Makes every applied write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(StoreError::backend("flush failed (injected fault)"));
        }
        let _watched = WATCHDOG.begin("flush", std::time::Instant::now());
        self.db.flush_async().await?;
        Ok(())
    }

    /// Makes flushes fail (true) or work again (false); for fault-injection tests.
    pub fn inject_flush_failure(&self, fail: bool) {
        self.fail_flush.store(fail, Ordering::SeqCst);
    }

    fn open_value(&self, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if self.clear {
            return Ok(sealed.to_vec());
        }
        self.value_key
            .open(key, sealed)
            .map_err(|e| StoreError::corrupt(format!("a stored value failed to open: {e}")))
    }

    /// Reads one value.
    pub fn get(&self, namespace: &str, suffix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(namespace, suffix);
        match self.db.get(&key)? {
            Some(v) => Ok(Some(self.open_value(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// Reads one value encoded with the protocol codec; `None` when absent or unreadable.
    pub fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        suffix: &[u8],
    ) -> Option<T> {
        let bytes = self.get(namespace, suffix).ok().flatten()?;
        mes_protocol::wire::codec::from_bytes(&bytes).ok()
    }

    /// Every `(suffix, value)` of a namespace, in suffix order.
    pub fn scan(&self, namespace: &str) -> Result<Vec<Entry>, StoreError> {
        let prefix = self.prefix(namespace);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            out.push((k[prefix.len()..].to_vec(), self.open_value(&k, &v)?));
        }
        Ok(out)
    }

    /// Number of entries in a namespace.
    pub fn count(&self, namespace: &str) -> usize {
        self.db.scan_prefix(self.prefix(namespace)).count()
    }
}

/// Writes a batch's operations one by one.
fn apply_ops(db: &sled::Db, ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> sled::Result<()> {
    for (key, value) in ops {
        match value {
            Some(v) => db.insert(key, v.as_slice())?,
            None => db.remove(key)?,
        };
    }
    Ok(())
}

/// Applies again every batch a crash left in the journal, in order, then forgets them;
/// returns how many there were.
fn replay_journal(db: &sled::Db, journal: &sled::Tree) -> Result<usize, StoreError> {
    let mut n = 0;
    for entry in journal {
        let (id, ops) = entry?;
        let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = mes_protocol::wire::codec::from_bytes(&ops)
            .map_err(|e| StoreError::corrupt(format!("a journaled batch does not decode: {e}")))?;
        apply_ops(db, &ops)?;
        journal.remove(id)?;
        n += 1;
    }
    if n > 0 {
        db.flush()?;
    }
    Ok(n)
}

/// How long an open waits for the lock of a store closed a moment ago in this process.
pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a sled database, waiting up to [`OPEN_WAIT`] while its directory is still locked:
/// sled's IO threads let go of the lock a moment after the last handle is dropped, so a
/// store closed and reopened in one process (a daemon restarted in place, the tests)
/// would otherwise fail at random (issue 23's stress test found it).
pub fn open_sled(config: sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + OPEN_WAIT;
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

/// Big-endian suffix for sequence numbers, so scans come back in order.
pub fn seq_suffix(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads back a [`seq_suffix`].
pub fn suffix_seq(s: &[u8]) -> Result<u64, StoreError> {
    s.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(format!("bad sequence suffix of {} bytes", s.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch a crash cut in the middle (its journal record written, some of its writes
    /// not) is whole after the next open, and the journal is empty. Control: before the
    /// reopen the batch is only partly there.
    #[test]
    fn a_batch_cut_by_a_crash_is_completed_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = SymmetricKey::generate(&mut OsRng);
        {
            let s = SealedStore::open(dir.path(), &key).unwrap();
            let mut b = s.batch();
            for n in 0..4u64 {
                b.put("volume/notes", &seq_suffix(n), b"change");
            }
            b.remove("volume/gone", &[]);
            // What `apply` does, stopped after the journal and two of the writes.
            s.journal
                .insert(
                    7u64.to_be_bytes(),
                    mes_protocol::wire::codec::to_bytes(&b.ops),
                )
                .unwrap();
            apply_ops(&s.db, &b.ops[..2]).unwrap();
            s.db.flush().unwrap();
            assert_eq!(s.count("volume/notes"), 2, "control: the batch is cut");
        }
        let s = SealedStore::open(dir.path(), &key).unwrap();
        assert_eq!(s.count("volume/notes"), 4);
        assert!(s.journal.is_empty());
        // And a whole batch leaves no journal behind.
        let mut b = s.batch();
        b.put("a", b"1", b"x");
        b.put("b", b"2", b"y");
        s.apply(b).unwrap();
        assert!(s.journal.is_empty());
        assert_eq!(s.get("b", b"2").unwrap(), Some(b"y".to_vec()));
    }

    #[test]
    fn values_and_names_are_sealed_and_reads_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let key = SymmetricKey::generate(&mut OsRng);
        let s = SealedStore::open(dir.path(), &key).unwrap();
        let mut b = s.batch();
        for n in [3u64, 1, 2] {
            b.put(
                "volume/notes-title",
                &seq_suffix(n),
                format!("canary-{n}").as_bytes(),
            );
        }
        s.apply(b).unwrap();
        let got: Vec<_> = s
            .scan("volume/notes-title")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (suffix_seq(&k).unwrap(), v))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, b"canary-1".to_vec()),
                (2, b"canary-2".to_vec()),
                (3, b"canary-3".to_vec())
            ]
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(s.flush()).unwrap();
        s.inject_flush_failure(true);
        assert!(rt.block_on(s.flush()).is_err());
        drop(s);
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            for needle in [&b"canary"[..], b"notes-title"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} leaks",
                    entry.display()
                );
            }
        }
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
