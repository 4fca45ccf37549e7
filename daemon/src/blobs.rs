//! Encrypted blobs: a file is sealed chunk by chunk under its own key, uploaded to the
//! relay addressed by the hash of its ciphertext, and its reference (id, key, sizes) is
//! kept in the space's notes document, so every reader device can fetch it on demand.
//! Files are streamed in both directions; memory use is one chunk.

use mes_protocol::api::{ApiError, ApiErrorCode};
use mes_protocol::blob::{open_chunk, seal_chunk, BlobRef, CHUNK_PLAINTEXT};
use mes_protocol::ids::{BlobId, SpaceId};
use mes_protocol::seal::SymmetricKey;
use mes_protocol::wire::{Reply, Request};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::daemon::{Daemon, NOTES};
use crate::volume::Replica;

fn err(code: ApiErrorCode, m: impl Into<String>) -> ApiError {
    ApiError::new(code, m)
}

/// The notes key holding a blob's reference.
pub fn ref_key(id: BlobId) -> String {
    format!("_blob/{id}")
}

/// A file read chunk by chunk, each chunk sealed (deterministic for a given key).
struct SealedChunks {
    file: std::fs::File,
    len: u64,
    count: u64,
    next: u64,
    buf: Vec<u8>,
}

impl SealedChunks {
    fn open(path: &Path) -> Result<Self, ApiError> {
        let file = std::fs::File::open(path).map_err(|e| {
            err(
                ApiErrorCode::BadRequest,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let len = file
            .metadata()
            .map_err(|e| err(ApiErrorCode::BadRequest, e.to_string()))?
            .len();
        Ok(SealedChunks {
            file,
            len,
            count: len.div_ceil(CHUNK_PLAINTEXT as u64).max(1),
            next: 0,
            buf: vec![0u8; CHUNK_PLAINTEXT],
        })
    }

    fn next(&mut self, key: &SymmetricKey) -> Result<Option<(u64, bool, Vec<u8>)>, ApiError> {
        if self.next == self.count {
            return Ok(None);
        }
        let i = self.next;
        let want = ((self.len - i * CHUNK_PLAINTEXT as u64) as usize).min(CHUNK_PLAINTEXT);
        self.file.read_exact(&mut self.buf[..want]).map_err(|e| {
            err(
                ApiErrorCode::BadRequest,
                format!("the file changed while reading: {e}"),
            )
        })?;
        self.next += 1;
        let last = self.next == self.count;
        Ok(Some((i, last, seal_chunk(key, i, last, &self.buf[..want]))))
    }
}

/// Uploads a file as a blob of `space` and records its reference; returns (id, size).
pub async fn put(d: &Arc<Daemon>, space: SpaceId, path: &Path) -> Result<(BlobId, u64), ApiError> {
    let client = d
        .client()
        .ok_or_else(|| err(ApiErrorCode::Offline, "uploading a blob needs the relay"))?;
    let key = SymmetricKey::generate(&mut rand::rngs::OsRng);
    let mut hasher = blake3::Hasher::new();
    let mut ciphertext_len = 0u64;
    let mut pass = SealedChunks::open(path)?;
    let len = pass.len;
    while let Some((_, _, c)) = pass.next(&key)? {
        hasher.update(&c);
        ciphertext_len += c.len() as u64;
    }
    let id = BlobId(*hasher.finalize().as_bytes());
    let mut upload = SealedChunks::open(path)?;
    if upload.len != len {
        return Err(err(
            ApiErrorCode::BadRequest,
            format!("{} changed while reading", path.display()),
        ));
    }
    while let Some((index, last, data)) = upload.next(&key)? {
        client
            .request(Request::PutBlobChunk {
                space,
                blob: id,
                index: index as u32,
                last,
                data,
            })
            .await
            .map_err(|e| err(ApiErrorCode::Offline, format!("blob upload: {e}")))?;
    }
    let r = BlobRef {
        id,
        key: *key.as_bytes(),
        plaintext_len: len,
        ciphertext_len,
    };
    d.note_set_internal(
        space,
        &ref_key(id),
        &hex::encode(mes_protocol::codec::to_bytes(&r)),
    )
    .await?;
    Ok((id, len))
}

/// Fetches a blob chunk by chunk into `out` (written atomically); returns its size.
pub async fn get(d: &Arc<Daemon>, space: SpaceId, id: BlobId, out: &Path) -> Result<u64, ApiError> {
    let r: BlobRef = {
        let st = d.state();
        let v = st
            .volumes
            .values()
            .find(|v| v.meta.space == space && v.meta.label == NOTES)
            .ok_or_else(|| err(ApiErrorCode::NotFound, "no notes volume"))?;
        let Replica::Doc(doc) = &v.replica else {
            return Err(err(ApiErrorCode::Internal, "notes is not a document"));
        };
        let text = doc.get(&ref_key(id)).into_iter().next().ok_or_else(|| {
            err(
                ApiErrorCode::NotFound,
                format!("no blob {id} in this space"),
            )
        })?;
        let bytes = hex::decode(text).map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
        mes_protocol::codec::from_bytes(&bytes)
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?
    };
    let client = d
        .client()
        .ok_or_else(|| err(ApiErrorCode::Offline, "fetching a blob needs the relay"))?;
    let key = SymmetricKey::from_bytes(r.key);
    let tmp = out.with_extension("part");
    let mut file = std::fs::File::create(&tmp).map_err(|e| {
        err(
            ApiErrorCode::BadRequest,
            format!("cannot write {}: {e}", tmp.display()),
        )
    })?;
    let mut hasher = blake3::Hasher::new();
    let mut index = 0u64;
    let mut written = 0u64;
    loop {
        let (data, last) = match client
            .request(Request::GetBlobChunk {
                space,
                blob: id,
                index: index as u32,
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
                    format!("blob chunk {index}: {e}"),
                ))
            }
        };
        hasher.update(&data);
        let plain = open_chunk(&key, index, last, &data)
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
        file.write_all(&plain)
            .map_err(|e| err(ApiErrorCode::Storage, e.to_string()))?;
        written += plain.len() as u64;
        index += 1;
        if last {
            break;
        }
    }
    if BlobId(*hasher.finalize().as_bytes()) != id || written != r.plaintext_len {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(
            ApiErrorCode::Internal,
            format!("blob {id} does not match its reference (tampered or truncated)"),
        ));
    }
    file.sync_all()
        .map_err(|e| err(ApiErrorCode::Storage, e.to_string()))?;
    std::fs::rename(&tmp, out).map_err(|e| err(ApiErrorCode::Storage, e.to_string()))?;
    Ok(written)
}
