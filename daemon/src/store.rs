//! The replica's sled store, where every value is sealed with the device's storage key and
//! every key name is a keyed hash: the files reveal neither contents, nor titles, nor which
//! volume a record belongs to; only counters (sequence numbers) appear as key suffixes.
//!
//! Writes go through a [`Batch`] applied atomically; [`SealedStore::flush`] returns only once
//! sled has made them durable. A fault switch makes the next flushes fail, so tests can
//! show that nothing is acknowledged before durability.

use mes_protocol::seal::SymmetricKey;
use rand::rngs::OsRng;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("replica storage: {0}")]
pub struct StoreError(pub String);

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// The sealed store.
#[derive(Clone)]
pub struct SealedStore {
    db: sled::Db,
    clear: bool,
    value_key: Arc<SymmetricKey>,
    name_key: [u8; 32],
    fail_flush: Arc<AtomicBool>,
}

/// A stored `(suffix, value)`.
pub type Entry = (Vec<u8>, Vec<u8>);

/// sled's page cache for the replica.
const REPLICA_CACHE_BYTES: u64 = 8 << 20;

/// Length of a hashed namespace prefix.
const NAME_LEN: usize = 16;

/// Atomic group of writes.
pub struct Batch<'a> {
    store: &'a SealedStore,
    inner: sled::Batch,
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
        self.inner.insert(key, sealed);
    }
    /// Removes `(namespace, suffix)`.
    pub fn remove(&mut self, namespace: &str, suffix: &[u8]) {
        self.inner.remove(self.store.key(namespace, suffix));
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
        Ok(SealedStore {
            db,
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
            inner: sled::Batch::default(),
        }
    }

    /// Applies a batch atomically (not yet durable: call [`SealedStore::flush`]).
    pub fn apply(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        self.db.apply_batch(batch.inner)?;
        Ok(())
    }

    /// Makes every applied write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(StoreError("flush failed (injected fault)".into()));
        }
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
            .map_err(|e| StoreError(format!("a stored value failed to open: {e}")))
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
        mes_protocol::codec::from_bytes(&bytes).ok()
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
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
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
        .map_err(|_| StoreError(format!("bad sequence suffix of {} bytes", s.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
