//! Document files as blobs: encrypted under their own key in fixed-size chunks, addressed
//! by the BLAKE3 hash of the whole ciphertext, streamed chunk by chunk.
//!
//! Chunk `i` is sealed with XChaCha20-Poly1305 under the blob key with nonce `i` (the key is
//! used for one blob only) and associated data `(i, last)`, so chunks cannot be reordered,
//! dropped or truncated without detection. The volume keeps the [`BlobRef`] (id, key,
//! sizes); the relay keeps only ciphertext.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::crypto::seal::{OpenError, SymmetricKey};
use crate::ids::BlobId;

/// Plaintext bytes per chunk.
pub const CHUNK_PLAINTEXT: usize = 64 * 1024;
/// Ciphertext bytes per full chunk (plaintext plus the Poly1305 tag).
pub const CHUNK_CIPHERTEXT: usize = CHUNK_PLAINTEXT + 16;

/// What a volume records about a blob: enough to fetch, check and decrypt it.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRef {
    /// Hash of the ciphertext.
    pub id: BlobId,
    /// The blob key (inside an encrypted volume only).
    pub key: [u8; 32],
    /// Plaintext length.
    pub plaintext_len: u64,
    /// Ciphertext length.
    pub ciphertext_len: u64,
}

impl fmt::Debug for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BlobRef({:?}, {} bytes, key redacted)",
            self.id, self.plaintext_len
        )
    }
}

/// Why a blob could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// The ciphertext does not hash to the blob id.
    #[error("blob {id} does not match its hash (tampered or truncated)")]
    HashMismatch {
        /// Expected id.
        id: BlobId,
    },
    /// A chunk failed to decrypt.
    #[error("blob chunk {index} failed to open: {source}")]
    Chunk {
        /// Chunk index.
        index: u64,
        /// Reason.
        source: OpenError,
    },
}

fn chunk_nonce(index: u64) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n
}

fn chunk_aad(index: u64, last: bool) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[..8].copy_from_slice(&index.to_be_bytes());
    a[8] = last as u8;
    a
}

/// Seals a whole file (held in memory by the caller or read chunk by chunk through
/// [`seal_chunk`]); returns the reference and the ciphertext chunks.
pub fn seal_blob(
    rng: &mut (impl rand::RngCore + rand::CryptoRng),
    plaintext: &[u8],
) -> (BlobRef, Vec<Vec<u8>>) {
    let key = SymmetricKey::generate(rng);
    let count = plaintext.len().div_ceil(CHUNK_PLAINTEXT).max(1);
    let mut hasher = blake3::Hasher::new();
    let mut chunks = Vec::with_capacity(count);
    for i in 0..count {
        let end = ((i + 1) * CHUNK_PLAINTEXT).min(plaintext.len());
        let c = seal_chunk(
            &key,
            i as u64,
            i + 1 == count,
            &plaintext[i * CHUNK_PLAINTEXT..end],
        );
        hasher.update(&c);
        chunks.push(c);
    }
    let ciphertext_len = chunks.iter().map(|c| c.len() as u64).sum();
    let r = BlobRef {
        id: BlobId(*hasher.finalize().as_bytes()),
        key: *key.as_bytes(),
        plaintext_len: plaintext.len() as u64,
        ciphertext_len,
    };
    (r, chunks)
}

/// Seals one chunk.
pub fn seal_chunk(key: &SymmetricKey, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
    // The nonce is the chunk index: unique because each blob key seals one blob only.
    let mut rng = FixedNonce(chunk_nonce(index));
    let sealed = key.seal(&mut rng, &chunk_aad(index, last), plaintext);
    sealed[24..].to_vec()
}

/// Opens one chunk (authenticated with its index and whether it is the last); the caller
/// checks the whole ciphertext's hash against the blob id.
pub fn open_chunk(
    key: &SymmetricKey,
    index: u64,
    last: bool,
    chunk: &[u8],
) -> Result<Vec<u8>, BlobError> {
    let mut sealed = chunk_nonce(index).to_vec();
    sealed.extend_from_slice(chunk);
    key.open(&chunk_aad(index, last), &sealed)
        .map_err(|source| BlobError::Chunk { index, source })
}

/// Checks the hash and decrypts a whole blob from its ciphertext chunks, in order.
pub fn open_blob(r: &BlobRef, chunks: &[Vec<u8>]) -> Result<Vec<u8>, BlobError> {
    let mut hasher = blake3::Hasher::new();
    for c in chunks {
        hasher.update(c);
    }
    if BlobId(*hasher.finalize().as_bytes()) != r.id {
        return Err(BlobError::HashMismatch { id: r.id });
    }
    let key = SymmetricKey::from_bytes(r.key);
    let mut out = Vec::with_capacity(r.plaintext_len as usize);
    for (i, c) in chunks.iter().enumerate() {
        let index = i as u64;
        let mut sealed = chunk_nonce(index).to_vec();
        sealed.extend_from_slice(c);
        let plain = key
            .open(&chunk_aad(index, i + 1 == chunks.len()), &sealed)
            .map_err(|source| BlobError::Chunk { index, source })?;
        out.extend(plain);
    }
    Ok(out)
}

/// Splits a stored ciphertext into its chunks.
pub fn split_ciphertext(ciphertext: &[u8]) -> Vec<Vec<u8>> {
    if ciphertext.is_empty() {
        return vec![Vec::new()];
    }
    ciphertext
        .chunks(CHUNK_CIPHERTEXT)
        .map(<[u8]>::to_vec)
        .collect()
}

/// A random source that yields one fixed nonce (chunk sealing derives nonces from indices).
struct FixedNonce([u8; 24]);

impl rand::RngCore for FixedNonce {
    fn next_u32(&mut self) -> u32 {
        unreachable!("only fill_bytes is used for nonces")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("only fill_bytes is used for nonces")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&self.0[..dest.len()]);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering_detected() {
        let mut rng = rand::thread_rng();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (r, chunks) = seal_blob(&mut rng, &data);
        assert_eq!(chunks.len(), 4);
        assert_eq!(open_blob(&r, &chunks).unwrap(), data);
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(open_blob(&r, &split_ciphertext(&joined)).unwrap(), data);
        let mut bad = chunks.clone();
        bad[1][0] ^= 1;
        assert_eq!(
            open_blob(&r, &bad),
            Err(BlobError::HashMismatch { id: r.id })
        );
        let (empty, c) = seal_blob(&mut rng, b"");
        assert_eq!(open_blob(&empty, &c).unwrap(), b"");
    }
}
