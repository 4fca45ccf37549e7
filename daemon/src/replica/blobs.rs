//! Encrypted blobs (document files): a file is sealed chunk by chunk under its own key into
//! this device's blob cache (`<data>/blobs/<id>`, ciphertext only), addressed by the hash
//! of its ciphertext, and uploaded to the relay when online (a pending marker survives a
//! restart). Reading decrypts from the cache, fetching from the relay first when the blob
//! was added on another device (then kept: fetched on demand, cached). Memory use is one
//! chunk in both directions.
//!
//! The reference (id, key, sizes) lives in an encrypted volume: a document's metadata, or
//! for a bare `mes blob put` the space's notes document. The relay binds a file to the
//! volume it is uploaded for and serves it only through a volume it is bound to (issue 22
//! finding 8); when a document moves to another volume (an inbox item filed, a hidden
//! one shown again) its owner binds the file there too. Both wait in the same durable
//! queue: `<data>/blobs/pending/{space}-{volume}-{blob}` to upload,
//! `….bind` to bind.

use mes_protocol::crypto::blob::{
    open_chunk, seal_chunk, BlobRef, CHUNK_CIPHERTEXT, CHUNK_PLAINTEXT,
};
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{BlobId, SpaceId, VolumeId};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::daemon::{Daemon, SyncError, NOTES};
use crate::replica::volume::Replica;
use crate::sync::relay_client::RelayClient;

fn err(code: ApiErrorCode, m: impl Into<String>) -> ApiError {
    ApiError::new(code, m)
}

fn storage(e: std::io::Error) -> ApiError {
    err(ApiErrorCode::Storage, format!("blob cache: {e}"))
}

/// Where blobs are cached and how large a document may be.
#[derive(Clone, Debug)]
pub struct Files {
    /// The cache directory.
    pub blob_dir: PathBuf,
    /// Largest file accepted (bytes).
    pub max_document_bytes: u64,
}

/// The default largest document: 64 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 64 << 20;

impl Files {
    /// Removes what a crash left in the cache: temporary files and folders (plaintext of
    /// a rekey, an import or an export being written, issue 22 finding 10). Every
    /// temporary there is made by `tempfile`, named `.tmp…`; cached blobs are named by
    /// their id. Returns how many were removed.
    pub fn remove_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.blob_dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(".tmp") {
                continue;
            }
            let p = e.path();
            let gone = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match gone {
                Ok(()) => removed += 1,
                Err(err) => tracing::warn!("cannot remove {}: {err}", p.display()),
            }
        }
        removed
    }

    fn cached(&self, id: BlobId) -> PathBuf {
        self.blob_dir.join(id.to_string())
    }
    fn pending_dir(&self) -> PathBuf {
        self.blob_dir.join("pending")
    }
}

/// The length of chunk `i` of a `total`-byte stream cut in `chunk`-byte pieces.
fn chunk_len(total: u64, i: u64, chunk: usize) -> usize {
    ((total - i * chunk as u64) as usize).min(chunk)
}

/// The notes key holding a bare blob's reference.
pub fn ref_key(id: BlobId) -> String {
    format!("_blob/{id}")
}

/// Seals a file into the cache under a fresh key; returns its reference. Refuses an
/// unreadable file or one over the configured size, naming it.
pub fn seal_into_cache(files: &Files, path: &Path) -> Result<BlobRef, ApiError> {
    seal_with(files, path, SymmetricKey::generate(&mut rand::rngs::OsRng))
}

/// Opens a file a person wants to add, refusing what cannot be read, is not a regular
/// file or is over the configured size; returns it and its length.
pub fn open_checked(files: &Files, path: &Path) -> Result<(std::fs::File, u64), ApiError> {
    let unreadable = |e: std::io::Error| {
        err(
            ApiErrorCode::BadRequest,
            format!("cannot read {}: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(err(
            ApiErrorCode::BadRequest,
            format!("{} is not a file", path.display()),
        ));
    }
    let len = meta.len();
    if len > files.max_document_bytes {
        return Err(err(
            ApiErrorCode::BadRequest,
            format!(
                "{} is {len} bytes, over the limit of {} bytes (mesd --max-document-mib)",
                path.display(),
                files.max_document_bytes
            ),
        ));
    }
    Ok((file, len))
}

fn seal_with(files: &Files, path: &Path, key: SymmetricKey) -> Result<BlobRef, ApiError> {
    let (mut file, len) = open_checked(files, path)?;
    std::fs::create_dir_all(&files.blob_dir).map_err(storage)?;
    let tmp = tempfile::NamedTempFile::new_in(&files.blob_dir).map_err(storage)?;
    let mut out = std::io::BufWriter::new(tmp);
    let mut hasher = blake3::Hasher::new();
    let count = len.div_ceil(CHUNK_PLAINTEXT as u64).max(1);
    let mut buf = vec![0u8; CHUNK_PLAINTEXT];
    let mut ciphertext_len = 0u64;
    for i in 0..count {
        let want = chunk_len(len, i, CHUNK_PLAINTEXT);
        file.read_exact(&mut buf[..want]).map_err(|e| {
            err(
                ApiErrorCode::BadRequest,
                format!("{} changed while reading: {e}", path.display()),
            )
        })?;
        let c = seal_chunk(&key, i, i + 1 == count, &buf[..want]);
        hasher.update(&c);
        ciphertext_len += c.len() as u64;
        out.write_all(&c).map_err(storage)?;
    }
    let id = BlobId(*hasher.finalize().as_bytes());
    let tmp = out.into_inner().map_err(|e| storage(e.into_error()))?;
    tmp.as_file().sync_all().map_err(storage)?;
    tmp.persist(files.cached(id))
        .map_err(|e| storage(e.error))?;
    Ok(BlobRef {
        id,
        key: *key.as_bytes(),
        plaintext_len: len,
        ciphertext_len,
    })
}

/// Re-seals a cached blob under a new key (hiding a document, F3.3): a new blob.
pub fn rekey(files: &Files, r: &BlobRef) -> Result<BlobRef, ApiError> {
    let plain = tempfile::NamedTempFile::new_in(&files.blob_dir).map_err(storage)?;
    decrypt_cached(files, r, plain.path())?;
    seal_with(
        files,
        plain.path(),
        SymmetricKey::generate(&mut rand::rngs::OsRng),
    )
}

/// Queues a cached blob for upload to `volume` (durable: the marker is synced).
pub fn mark_pending(
    files: &Files,
    space: SpaceId,
    volume: VolumeId,
    id: BlobId,
) -> Result<(), ApiError> {
    write_marker(files, &format!("{space}-{volume}-{id}"))
}

/// Queues the binding of a blob already at the relay to another volume of its space
/// (durable; sent by an admin's device).
pub fn mark_bind(
    files: &Files,
    space: SpaceId,
    volume: VolumeId,
    id: BlobId,
) -> Result<(), ApiError> {
    write_marker(files, &format!("{space}-{volume}-{id}.bind"))
}

/// Writes a queue marker durably (the file and its directory synced).
fn write_marker(files: &Files, name: &str) -> Result<(), ApiError> {
    let dir = files.pending_dir();
    std::fs::create_dir_all(&dir).map_err(storage)?;
    let f = std::fs::File::create(dir.join(name)).map_err(storage)?;
    f.sync_all().map_err(storage)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(storage)
}

/// What waits in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The marker's file name.
    pub marker: String,
    /// Space.
    pub space: SpaceId,
    /// The volume to bind it to (none: a marker left by a daemon before version 9).
    pub volume: Option<VolumeId>,
    /// Blob.
    pub blob: BlobId,
    /// Bind only (the file is at the relay already).
    pub bind: bool,
}

/// Reads a marker's name.
fn parse_marker(name: &str) -> Option<Pending> {
    let (stem, bind) = match name.strip_suffix(".bind") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let (space, volume, blob) = match parts.as_slice() {
        [s, v, b] => (s.parse().ok()?, Some(v.parse().ok()?), b.parse().ok()?),
        [s, b] => (s.parse().ok()?, None, b.parse().ok()?),
        _ => return None,
    };
    Some(Pending {
        marker: name.to_string(),
        space,
        volume,
        blob,
        bind,
    })
}

/// Blobs waiting for upload or binding.
pub fn pending(files: &Files) -> Vec<Pending> {
    let Ok(rd) = std::fs::read_dir(files.pending_dir()) else {
        return Vec::new();
    };
    rd.filter_map(|e| parse_marker(&e.ok()?.file_name().into_string().ok()?))
        .collect()
}

/// Uploads every pending blob and sends every pending binding; each marker is removed
/// once the relay has it. A binding the relay refuses for good (this device's person is
/// not an admin there) is dropped with a warning.
pub async fn upload_pending(d: &Daemon, client: &RelayClient) -> Result<(), SyncError> {
    for p in pending(&d.files) {
        let volume = match p.volume {
            Some(v) => v,
            None => match d.volume_referencing(p.space, p.blob) {
                Some(v) => v,
                None => {
                    tracing::warn!(
                        "blob {} queued before version 9 is referenced by no volume here; left queued",
                        p.blob
                    );
                    continue;
                }
            },
        };
        if p.bind {
            let sent = client
                .request(Request::BindBlob {
                    space: p.space,
                    volume,
                    blob: p.blob,
                })
                .await;
            if let Err(crate::sync::relay_client::ClientError::Refused(e)) = &sent {
                use mes_protocol::wire::ErrorCode as C;
                if matches!(e.code, C::Forbidden | C::NotMember | C::NotFound) {
                    tracing::warn!("binding blob {} refused: {e}; dropped", p.blob);
                    let _ = std::fs::remove_file(d.files.pending_dir().join(&p.marker));
                    continue;
                }
            }
            sent?;
        } else {
            upload(&d.files, client, p.space, volume, p.blob).await?;
        }
        let _ = std::fs::remove_file(d.files.pending_dir().join(&p.marker));
    }
    Ok(())
}

/// Uploads one cached blob chunk by chunk.
async fn upload(
    files: &Files,
    client: &RelayClient,
    space: SpaceId,
    volume: VolumeId,
    id: BlobId,
) -> Result<(), SyncError> {
    let mut file = std::fs::File::open(files.cached(id))
        .map_err(|e| SyncError::Refused(format!("cached blob {id}: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| SyncError::Refused(e.to_string()))?
        .len();
    let count = len.div_ceil(CHUNK_CIPHERTEXT as u64).max(1);
    let mut buf = vec![0u8; CHUNK_CIPHERTEXT];
    for i in 0..count {
        let want = chunk_len(len, i, CHUNK_CIPHERTEXT);
        file.read_exact(&mut buf[..want])
            .map_err(|e| SyncError::Refused(format!("cached blob {id}: {e}")))?;
        client
            .request(Request::PutBlobChunk {
                space,
                volume,
                blob: id,
                index: i as u32,
                last: i + 1 == count,
                data: buf[..want].to_vec(),
            })
            .await?;
    }
    Ok(())
}

/// Fetches a blob from the relay into the cache (checked against its id) unless cached,
/// through the first of `volumes` the relay serves it by (the volume of the entry that
/// references it, then, for an admin, the inbox it may have come through before its
/// binding reached the relay).
pub async fn ensure_cached(
    d: &Daemon,
    space: SpaceId,
    volumes: &[VolumeId],
    r: &BlobRef,
) -> Result<(), ApiError> {
    let path = d.files.cached(r.id);
    if path.exists() {
        return Ok(());
    }
    let client = d.client().ok_or_else(|| {
        err(
            ApiErrorCode::Offline,
            format!(
                "blob {} is not on this device yet and the relay is not reachable",
                r.id
            ),
        )
    })?;
    std::fs::create_dir_all(&d.files.blob_dir).map_err(storage)?;
    let mut refused = None;
    for volume in volumes {
        match fetch(&client, &d.files.blob_dir, space, *volume, r).await {
            Ok(tmp) => {
                tmp.as_file().sync_all().map_err(storage)?;
                tmp.persist(&path).map_err(|e| storage(e.error))?;
                return Ok(());
            }
            Err(e) => refused = Some(e),
        }
    }
    Err(refused.unwrap_or_else(|| {
        err(
            ApiErrorCode::NotFound,
            format!("blob {} is referenced by no volume here", r.id),
        )
    }))
}

/// Fetches a blob through `volume` into a checked temporary file of the cache.
async fn fetch(
    client: &RelayClient,
    dir: &Path,
    space: SpaceId,
    volume: VolumeId,
    r: &BlobRef,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(storage)?;
    let mut out = std::io::BufWriter::new(tmp);
    let mut hasher = blake3::Hasher::new();
    let mut index = 0u32;
    loop {
        let (data, last) = match client
            .request(Request::GetBlobChunk {
                space,
                volume,
                blob: r.id,
                index,
            })
            .await
        {
            Ok(Reply::BlobChunk { data, last }) => (data, last),
            Ok(other) => {
                return Err(err(
                    ApiErrorCode::Internal,
                    format!("unexpected reply {other:?}"),
                ))
            }
            Err(e) => {
                return Err(err(
                    ApiErrorCode::NotFound,
                    format!("blob {} chunk {index}: {e}", r.id),
                ))
            }
        };
        hasher.update(&data);
        out.write_all(&data).map_err(storage)?;
        index += 1;
        if last {
            break;
        }
    }
    if BlobId(*hasher.finalize().as_bytes()) != r.id {
        return Err(err(
            ApiErrorCode::Internal,
            format!(
                "blob {} does not match its hash (tampered or truncated)",
                r.id
            ),
        ));
    }
    out.into_inner().map_err(|e| storage(e.into_error()))
}

/// Decrypts a cached blob into `out` (written atomically); returns its size.
pub fn decrypt_cached(files: &Files, r: &BlobRef, out: &Path) -> Result<u64, ApiError> {
    let mut file = std::fs::File::open(files.cached(r.id)).map_err(storage)?;
    let key = SymmetricKey::from_bytes(r.key);
    let dir = out.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        err(
            ApiErrorCode::BadRequest,
            format!("cannot write in {}: {e}", dir.display()),
        )
    })?;
    let mut w = std::io::BufWriter::new(tmp);
    let count = r.ciphertext_len.div_ceil(CHUNK_CIPHERTEXT as u64).max(1);
    let mut buf = vec![0u8; CHUNK_CIPHERTEXT];
    let mut hasher = blake3::Hasher::new();
    let mut written = 0u64;
    for i in 0..count {
        let want = chunk_len(r.ciphertext_len, i, CHUNK_CIPHERTEXT);
        file.read_exact(&mut buf[..want]).map_err(storage)?;
        hasher.update(&buf[..want]);
        let plain = open_chunk(&key, i, i + 1 == count, &buf[..want])
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
        w.write_all(&plain).map_err(storage)?;
        written += plain.len() as u64;
    }
    if BlobId(*hasher.finalize().as_bytes()) != r.id || written != r.plaintext_len {
        return Err(err(
            ApiErrorCode::Internal,
            format!(
                "blob {} does not match its reference (tampered or truncated)",
                r.id
            ),
        ));
    }
    let tmp = w.into_inner().map_err(|e| storage(e.into_error()))?;
    tmp.as_file().sync_all().map_err(storage)?;
    tmp.persist(out).map_err(|e| {
        err(
            ApiErrorCode::BadRequest,
            format!("cannot write {}: {}", out.display(), e.error),
        )
    })?;
    Ok(written)
}

/// `mes blob put`: caches, queues and records a bare blob in the notes; (id, size).
pub async fn put(d: &Arc<Daemon>, space: SpaceId, path: &Path) -> Result<(BlobId, u64), ApiError> {
    let r = seal_into_cache(&d.files, path)?;
    let notes = Daemon::volume_of(&d.state(), space, NOTES)?;
    mark_pending(&d.files, space, notes, r.id)?;
    d.note_set_internal(
        space,
        &ref_key(r.id),
        &hex::encode(mes_protocol::wire::codec::to_bytes(&r)),
    )
    .await?;
    Ok((r.id, r.plaintext_len))
}

/// `mes blob get`: a bare blob recorded in the notes, written to `out`; its size.
pub async fn get(d: &Arc<Daemon>, space: SpaceId, id: BlobId, out: &Path) -> Result<u64, ApiError> {
    let r: BlobRef = {
        let mut st = d.state();
        let v = st
            .volumes
            .values_mut()
            .find(|v| v.meta.space == space && v.meta.label == NOTES)
            .ok_or_else(|| err(ApiErrorCode::NotFound, "no notes volume"))?;
        let replica = v
            .replica()
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
        let Replica::Doc(doc) = replica else {
            return Err(err(ApiErrorCode::Internal, "notes is not a document"));
        };
        let text = doc.get(&ref_key(id)).into_iter().next().ok_or_else(|| {
            err(
                ApiErrorCode::NotFound,
                format!("no blob {id} in this space"),
            )
        })?;
        let bytes = hex::decode(text).map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
        mes_protocol::wire::codec::from_bytes(&bytes)
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?
    };
    let notes = Daemon::volume_of(&d.state(), space, NOTES)?;
    ensure_cached(d, space, &[notes], &r).await?;
    decrypt_cached(&d.files, &r, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22, finding 10: the plaintext a crash leaves in the cache (a rekey's or an
    /// import's temporary file or folder) is gone at the next start, and cached blobs and
    /// the upload queue stay. Control: before the clean-up the plaintext is on disk.
    #[test]
    fn plaintext_left_by_a_crash_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            blob_dir: dir.path().to_path_buf(),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        };
        let left = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        std::fs::write(left.path(), "Compte rendu en clair").unwrap();
        let (_, left) = left.keep().unwrap();
        let folder = tempfile::tempdir_in(dir.path()).unwrap().keep();
        std::fs::write(folder.join("ordonnance.pdf"), "en clair").unwrap();
        let blob = dir.path().join(BlobId([7; 32]).to_string());
        std::fs::write(&blob, "ciphertext").unwrap();
        std::fs::create_dir_all(files.pending_dir()).unwrap();
        assert!(left.exists() && folder.exists(), "control");
        assert_eq!(files.remove_leftovers(), 2);
        assert!(!left.exists() && !folder.exists());
        assert!(blob.exists() && files.pending_dir().exists());
    }
}
