//! Files (blobs): chunked uploads under the space's quota, commits, bindings to the volumes that reference them, and reads through those volumes (issue 22, finding 8).

use super::{bad_record, internal, Caller, Relay, Rule};
use crate::access::Need;
use crate::defaults::MAX_BLOB_CHUNK;
use crate::store::Table;
use mes_protocol::access::history::AccessTarget;
use mes_protocol::ids::{SpaceId, VolumeId};
use mes_protocol::wire::{ErrorCode, Reply, WireError};

use mes_protocol::ids::BlobId;

/// One chunk of an upload: its index, whether it is the file's last, its bytes.
pub(super) struct Chunk {
    pub(super) index: u32,
    pub(super) last: bool,
    pub(super) data: Vec<u8>,
}

impl Relay {
    /// Uploads one chunk of a blob; the last chunk commits it if the hash matches, and
    /// binds it to `volume` (issue 22 finding 8: a file is read through the volume that
    /// references it). Needs write access to `volume`.
    pub(super) async fn put_blob_chunk(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        blob: BlobId,
        Chunk { index, last, data }: Chunk,
    ) -> Result<Reply, WireError> {
        // Finding 8: a file is uploaded for the volume whose entries reference it,
        // by someone who may write there.
        self.authorize(space, caller.principal, Need::Write(volume))
            .await?;
        // A committed blob belongs to the space that committed it (finding 8): a
        // member of another space who learnt its id cannot claim it there.
        let committed_here = self.blob_bound_here(space, blob).await?;
        if data.len() > MAX_BLOB_CHUNK {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!(
                    "blob chunk of {} bytes, the limit is {MAX_BLOB_CHUNK}",
                    data.len()
                ),
            ));
        }
        if index as usize >= crate::defaults::MAX_BLOB_CHUNKS {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!(
                    "chunk {index}: a file has at most {} chunks",
                    crate::defaults::MAX_BLOB_CHUNKS
                ),
            ));
        }
        if !committed_here {
            self.reserve_chunk(space, blob, index).await?;
        }
        self.store
            .put_blob_chunk(&blob.0, index, &data)
            .await
            .map_err(internal)?;
        if last {
            if !self
                .store
                .commit_blob(blob.0, index + 1)
                .await
                .map_err(internal)?
            {
                return Err(bad_record(format!(
                    "blob {} does not match its hash or misses chunks",
                    blob.short()
                )));
            }
            self.bind_blob(space, blob).await?;
            // Bound to its volume before it counts as committed here (read by
            // `blob_committed_in`): no moment where it is committed and bound to
            // no volume, which reads as a file from before bindings.
            self.bind_blob_to_volume(space, volume, blob).await?;
            let size = super::file_quota::chunk_bytes(index) + data.len() as u64;
            self.upload_committed(space, blob, index + 1, size).await?;
        }
        Ok(Reply::Done)
    }

    /// Binds a blob already committed in the space to another of its volumes (an admin
    /// filing an inbox document, showing a hidden one again): readers of that volume may
    /// then fetch it.
    pub(super) async fn bind_blob_to(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        blob: BlobId,
    ) -> Result<Reply, WireError> {
        let m = self.authorize(space, caller.principal, Need::Admin).await?;
        if m.volume(volume).is_none() {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no volume {} in space {}", volume.short(), space.short()),
            ));
        }
        if !self.blob_committed_in(space, blob).await? {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no blob {} in space {}", blob.short(), space.short()),
            ));
        }
        self.bind_blob_to_volume(space, volume, blob).await?;
        Ok(Reply::Done)
    }

    /// Downloads one chunk of a blob bound to `volume`; needs read access to it.
    pub(super) async fn get_blob_chunk(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        blob: BlobId,
        index: u32,
    ) -> Result<Reply, WireError> {
        let m = self
            .authorize(space, caller.principal, Need::Read(volume))
            .await?;
        if !self.blob_committed_in(space, blob).await? {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no blob {} in space {}", blob.short(), space.short()),
            ));
        }
        // Finding 8: read only through a volume the file is bound to. A file
        // committed before bindings existed (bound to none) stays readable by any
        // member, as it was.
        if !self.faults.skips(Rule::Access)
            && !self.blob_readable_through(space, volume, blob).await?
        {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!(
                    "blob {} is not referenced by volume {}",
                    blob.short(),
                    volume.short()
                ),
            ));
        }
        match self
            .store
            .get_blob_chunk(&blob.0, index)
            .await
            .map_err(internal)?
        {
            Some((data, last)) => {
                // One entry per read of the file: at its first chunk, or at
                // whichever chunk a connection starts a file it was not logged
                // for lately (a reader skipping chunk 0 is logged too, finding 8).
                if caller.blob_reads.starts_read(blob, index) {
                    self.record_access(&m, caller, AccessTarget::Blob { blob })
                        .await?;
                }
                Ok(Reply::BlobChunk { data, last })
            }
            None => Err(WireError::new(
                ErrorCode::NotFound,
                format!("blob {} has no chunk {index}", blob.short()),
            )),
        }
    }

    /// Refuses a blob id another space committed (issue 22, finding 8).
    /// Refuses a blob committed by another space; says whether `space` committed it.
    pub(super) async fn blob_bound_here(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        if self.faults.skips(Rule::FileBinding) {
            return Ok(false);
        }
        match self
            .store
            .get_record(Table::BlobSpace, &blob.0)
            .await
            .map_err(internal)?
        {
            Some(owner) if owner.as_slice() != space.0.as_slice() => Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "blob {} belongs to another space; a blob is bound to the space that committed it",
                    blob.short()
                ),
            )),
            owner => Ok(owner.is_some()),
        }
    }

    /// Whether `blob` was committed for `space`.
    pub(super) async fn blob_committed_in(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        let key = [space.0.as_slice(), blob.0.as_slice()].concat();
        Ok(self
            .store
            .get_record(Table::BlobOwner, &key)
            .await
            .map_err(internal)?
            .is_some())
    }

    /// Binds a committed blob to a volume of its space (finding 8).
    pub(super) async fn bind_blob_to_volume(
        &self,
        space: SpaceId,
        volume: VolumeId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<(), WireError> {
        let key = [space.0.as_slice(), blob.0.as_slice(), volume.0.as_slice()].concat();
        self.store
            .put_record(Table::BlobVolume, key, Vec::new())
            .await
            .map_err(internal)
    }

    /// Whether a blob of `space` may be read through `volume`: bound to it (one read, the
    /// path of every chunk), or bound to no volume at all (committed before bindings
    /// existed: a prefix scan, only when the first read missed).
    pub(super) async fn blob_readable_through(
        &self,
        space: SpaceId,
        volume: VolumeId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        let prefix = [space.0.as_slice(), blob.0.as_slice()].concat();
        let key = [prefix.as_slice(), volume.0.as_slice()].concat();
        if self
            .store
            .get_record(Table::BlobVolume, &key)
            .await
            .map_err(internal)?
            .is_some()
        {
            return Ok(true);
        }
        Ok(self
            .store
            .scan_records(Table::BlobVolume, &prefix)
            .await
            .map_err(internal)?
            .is_empty())
    }

    /// Binds a committed blob to its space for ever (first commit wins).
    pub(super) async fn bind_blob(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<(), WireError> {
        let _one_binding = self.binding_lock.lock().await;
        self.blob_bound_here(space, blob).await?;
        self.store
            .put_record(Table::BlobSpace, blob.0.to_vec(), space.0.to_vec())
            .await
            .map_err(internal)
    }
}
