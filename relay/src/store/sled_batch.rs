//! Atomic groups of sled writes without sled's `apply_batch` (issue 23), for the relay's
//! enrolment tables and its log. sled's concurrency control is one static for every store
//! in a process, lock-free until the first `apply_batch` or transaction switches it for
//! good to a readers-writer lock; from then on a flush (every flush, every drop of a
//! store) holds a read while it waits for a flusher thread whose read queues behind a
//! waiting batch, and the batch waits for the flush. Benchmarks and tests that hold
//! several stores hung so. Without `apply_batch` the lock is never taken.
//!
//! A [`Batch`] of several writes is written first, whole, as one record of its
//! [`Journal`] (one sled write, atomic), then write by write, then the record goes; sled
//! recovers a prefix of its log after a crash, so a record that survives names a batch
//! that may be partly applied, and [`Journal::open`] applies it again (whole values:
//! replaying is idempotent). Callers apply batches that touch the same keys one at a
//! time (the enrolment tables do, under their page locks). The daemon's sealed store
//! does the same (`mes_daemon::replica::store`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Writes to apply together: (key, new value or removal), in order.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Sets a key.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.as_ref().to_vec(), Some(value.into())));
    }

    /// Removes a key.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// Writes in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The journal of one tree's batches.
pub struct Journal {
    target: sled::Tree,
    records: sled::Tree,
    next: AtomicU64,
}

fn write_all(target: &sled::Tree, ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> sled::Result<()> {
    for (key, value) in ops {
        match value {
            Some(v) => target.insert(key, v.as_slice())?,
            None => target.remove(key)?,
        };
    }
    Ok(())
}

impl Journal {
    /// The journal of `target` (its records in the tree `journal/<target's name>`), after
    /// applying again what a crash cut short; returns it and how many batches it replayed.
    pub fn open(db: &sled::Db, target: sled::Tree) -> Result<(Self, usize), super::StoreError> {
        let mut name = b"journal/".to_vec();
        name.extend_from_slice(&target.name());
        let records = db.open_tree(name)?;
        let mut replayed = 0;
        for r in &records {
            let (id, ops) = r?;
            let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = mes_protocol::wire::codec::from_bytes(&ops)
                .map_err(|e| {
                    super::StoreError::corrupt(format!("a journaled batch does not decode: {e}"))
                })?;
            write_all(&target, &ops)?;
            records.remove(id)?;
            replayed += 1;
        }
        if replayed > 0 {
            db.flush()?;
        }
        Ok((
            Journal {
                target,
                records,
                next: AtomicU64::new(0),
            },
            replayed,
        ))
    }

    /// Applies a batch atomically (not yet durable: flush after).
    pub fn apply(&self, batch: Batch) -> sled::Result<()> {
        let _watched = super::WATCHDOG.begin("batch", std::time::Instant::now());
        if batch.ops.len() <= 1 {
            return write_all(&self.target, &batch.ops);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        self.records
            .insert(id, mes_protocol::wire::codec::to_bytes(&batch.ops))?;
        write_all(&self.target, &batch.ops)?;
        self.records.remove(id)?;
        Ok(())
    }

    /// The tree the journal writes.
    pub fn target(&self) -> &sled::Tree {
        &self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch cut by a crash after its record and some writes is whole after the next
    /// open. Control: before the reopen it is cut.
    #[test]
    fn a_batch_cut_by_a_crash_is_completed_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let (j, _) = Journal::open(&db, db.open_tree("t").unwrap()).unwrap();
            let mut b = Batch::default();
            for k in 0..4u8 {
                b.insert([k], vec![k]);
            }
            j.records
                .insert(
                    9u64.to_be_bytes(),
                    mes_protocol::wire::codec::to_bytes(&b.ops),
                )
                .unwrap();
            write_all(&j.target, &b.ops[..1]).unwrap();
            db.flush().unwrap();
            assert_eq!(j.target.len(), 1, "control: the batch is cut");
        }
        // Reopened in the same process: wait for the lock as the relay does.
        let db = super::super::sled_store::open_db(sled::Config::new().path(dir.path())).unwrap();
        let (j, replayed) = Journal::open(&db, db.open_tree("t").unwrap()).unwrap();
        assert_eq!((replayed, j.target.len()), (1, 4));
        assert!(j.records.is_empty());
        let mut b = Batch::default();
        b.insert(b"x", b"1".to_vec());
        b.remove([0u8]);
        j.apply(b).unwrap();
        assert_eq!(j.target.len(), 4);
        assert!(j.records.is_empty());
    }
}
