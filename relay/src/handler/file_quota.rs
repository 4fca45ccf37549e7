//! Files a space may hold at the hub (issue 22 finding 6): what is committed and what is
//! being uploaded count in bytes against one quota per space, and an upload left
//! unfinished is swept once it has not grown for a day.
//!
//! An upload reserves chunks in steps of [`RESERVE_CHUNKS`] (a `BlobPending` record,
//! written once per step, not per chunk); a committed file is counted at its size, kept
//! in its `BlobOwner` record. Files committed before quotas have an empty record and
//! count for nothing.

use crate::defaults::{MAX_BLOB_CHUNK, MAX_BLOB_CHUNKS};
use crate::handler::Relay;
use crate::store::{StoreError, Table};
use mes_protocol::ids::{BlobId, SpaceId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{ErrorCode, WireError};

/// Chunks an upload reserves at a time (4 MiB of ciphertext).
pub const RESERVE_CHUNKS: u32 = 64;

/// An upload not committed yet: chunks reserved and when it last grew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// Chunks counted against the quota; no chunk at or past this index is stored.
    pub reserved: u32,
    /// When the reservation last grew.
    pub grown_at: UnixMillis,
}

impl PendingUpload {
    /// The record's value: reserved chunks, then the time, both big-endian.
    pub fn encode(&self) -> Vec<u8> {
        [
            self.reserved.to_be_bytes().as_slice(),
            &self.grown_at.0.to_be_bytes(),
        ]
        .concat()
    }

    /// Reads a record's value.
    pub fn decode(v: &[u8]) -> Option<Self> {
        Some(PendingUpload {
            reserved: u32::from_be_bytes(v.get(..4)?.try_into().ok()?),
            grown_at: UnixMillis(u64::from_be_bytes(v.get(4..12)?.try_into().ok()?)),
        })
    }
}

/// The reservation that holds a chunk at `index`: the next step past it.
pub fn reservation_for(index: u32) -> u32 {
    ((index / RESERVE_CHUNKS + 1) * RESERVE_CHUNKS).min(MAX_BLOB_CHUNKS as u32)
}

/// Bytes of `chunks` full chunks.
pub fn chunk_bytes(chunks: u32) -> u64 {
    u64::from(chunks) * MAX_BLOB_CHUNK as u64
}

/// A committed file's size as its `BlobOwner` record keeps it (empty before quotas: 0).
pub fn committed_size(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

/// What a space's files take: (committed bytes, bytes reserved by uploads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileUsage {
    /// Committed files.
    pub committed: u64,
    /// Uploads not committed yet, at their reservation.
    pub pending: u64,
}

fn key(space: SpaceId, blob: BlobId) -> Vec<u8> {
    [space.0.as_slice(), blob.0.as_slice()].concat()
}

impl Relay {
    /// What the files of `space` take at the hub.
    pub async fn file_usage(&self, space: SpaceId) -> Result<FileUsage, StoreError> {
        let committed = self
            .store
            .scan_records(Table::BlobOwner, &space.0)
            .await?
            .iter()
            .map(|(_, v)| committed_size(v))
            .sum();
        let pending = self
            .store
            .scan_records(Table::BlobPending, &space.0)
            .await?
            .iter()
            .filter_map(|(_, v)| PendingUpload::decode(v))
            .map(|p| chunk_bytes(p.reserved))
            .sum();
        Ok(FileUsage { committed, pending })
    }

    /// The upload of `key` (space || blob) not committed yet, if any.
    async fn pending(&self, key: &[u8]) -> Result<Option<PendingUpload>, WireError> {
        Ok(self
            .store
            .get_record(Table::BlobPending, key)
            .await
            .map_err(super::internal)?
            .and_then(|v| PendingUpload::decode(&v)))
    }

    /// Before a chunk at `index` of `blob` is stored for `space`: grows the upload's
    /// reservation when the chunk lies past it, refused when the space's files would
    /// pass its quota (the check and the write are not atomic: concurrent uploads of a
    /// space may pass it by one step each).
    pub(crate) async fn reserve_chunk(
        &self,
        space: SpaceId,
        blob: BlobId,
        index: u32,
    ) -> Result<(), WireError> {
        let key = key(space, blob);
        let held = self.pending(&key).await?;
        let held_chunks = held.map(|p| p.reserved).unwrap_or(0);
        if index < held_chunks {
            return Ok(());
        }
        let wanted = reservation_for(index);
        let quota = self.policy().file_bytes_per_space;
        let usage = self.file_usage(space).await.map_err(super::internal)?;
        let after = usage.committed + usage.pending + chunk_bytes(wanted - held_chunks);
        if after > quota {
            return Err(WireError::new(
                ErrorCode::Busy,
                format!(
                    "the space's files would take {} MiB at the hub, past its quota of {} MiB ({} MiB committed, {} MiB being uploaded)",
                    after >> 20,
                    quota >> 20,
                    usage.committed >> 20,
                    usage.pending >> 20
                ),
            ));
        }
        let pending = PendingUpload {
            reserved: wanted,
            grown_at: self.clock.now(),
        };
        self.store
            .put_record(Table::BlobPending, key, pending.encode())
            .await
            .map_err(super::internal)
    }

    /// Once `blob` is committed for `space` with `chunks` chunks of `size` bytes: counts
    /// it at its size, drops the upload's reservation and any chunk sent past its end.
    pub(crate) async fn upload_committed(
        &self,
        space: SpaceId,
        blob: BlobId,
        chunks: u32,
        size: u64,
    ) -> Result<(), WireError> {
        let key = key(space, blob);
        self.store
            .put_record(Table::BlobOwner, key.clone(), size.to_be_bytes().to_vec())
            .await
            .map_err(super::internal)?;
        if let Some(p) = self.pending(&key).await? {
            if p.reserved > chunks {
                self.store
                    .remove_blob_chunks(&blob.0, chunks, p.reserved)
                    .await
                    .map_err(super::internal)?;
            }
            self.store
                .remove_record(Table::BlobPending, key)
                .await
                .map_err(super::internal)?;
        }
        Ok(())
    }

    /// Removes the uploads that have not grown since `now - UNCOMMITTED_UPLOAD_TTL`:
    /// their chunks, then their reservation. Returns how many were swept.
    pub async fn sweep_uploads(&self, now: UnixMillis) -> Result<usize, StoreError> {
        let ttl = crate::defaults::UNCOMMITTED_UPLOAD_TTL.as_millis() as u64;
        let mut swept = 0;
        // Keys are space (16 bytes) || blob (32).
        for (key, value) in self.store.scan_records(Table::BlobPending, &[]).await? {
            let (Some(p), Some(blob)) = (
                PendingUpload::decode(&value),
                key.get(16..).and_then(|b| <[u8; 32]>::try_from(b).ok()),
            ) else {
                continue;
            };
            if p.grown_at.0.saturating_add(ttl) > now.0 {
                continue;
            }
            self.store.remove_blob_chunks(&blob, 0, p.reserved).await?;
            self.store.remove_record(Table::BlobPending, key).await?;
            swept += 1;
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_holds_its_chunk_and_steps_by_reserve_chunks() {
        assert_eq!(reservation_for(0), RESERVE_CHUNKS);
        assert_eq!(reservation_for(RESERVE_CHUNKS - 1), RESERVE_CHUNKS);
        assert_eq!(reservation_for(RESERVE_CHUNKS), 2 * RESERVE_CHUNKS);
        assert_eq!(
            reservation_for(MAX_BLOB_CHUNKS as u32 - 1),
            MAX_BLOB_CHUNKS as u32
        );
        for i in [0, 1, 63, 64, 1000, 16_383] {
            assert!(reservation_for(i) > i);
        }
    }

    #[test]
    fn a_pending_upload_reads_back_and_a_short_value_is_none() {
        let p = PendingUpload {
            reserved: 128,
            grown_at: UnixMillis(1_765_000_000_000),
        };
        assert_eq!(PendingUpload::decode(&p.encode()), Some(p));
        assert_eq!(PendingUpload::decode(&[0; 11]), None);
        assert_eq!(committed_size(&[]), 0);
        assert_eq!(committed_size(&5u64.to_be_bytes()), 5);
    }
}
