//! Change bundles: one or more automerge changes, sealed under a volume's epoch key with
//! XChaCha20-Poly1305 and signed once by the author device.
//!
//! The associated data is the encoded [`BundleHeader`]: it binds the space, volume,
//! generation, epoch, author and nonce, so a bundle moved to another volume, replayed into
//! another generation or attributed to another device fails to open. The signature covers
//! header and ciphertext, so the relay (which cannot decrypt) can still check who wrote it.
//!
//! FROZEN: the header layout and the signature context are part of stored data; change
//! them only with a new [`CipherSuite`] variant.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec;
use crate::envelope::EnvelopeError;
use crate::ids::{DeviceId, Epoch, Generation, SpaceId, VolumeId};
use crate::keys::{verify, AgeRecipient, AgeSecret, Signature, SignatureError, SigningSecret};

const BUNDLE_CONTEXT: &[u8] = b"mes/bundle/v1";

/// The cipher a bundle was sealed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CipherSuite {
    /// XChaCha20-Poly1305 under the epoch key (the only suite a normal build accepts).
    XChaCha20Poly1305,
    /// No encryption: exists only as the control of the confidentiality tests, and is
    /// refused unless the opener explicitly allows it.
    Null,
    /// age (X25519) to the space's inbox recipient: inbox drops from principals who hold
    /// no epoch key. The plaintext starts with the (space, volume) binding.
    AgeInbox,
}

/// A symmetric key: a volume epoch key, a blob key, a storage key. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        SymmetricKey(k)
    }
    /// From raw bytes (unsealed storage or an unwrapped envelope).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SymmetricKey(bytes)
    }
    /// The raw bytes, to wrap or store sealed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// An explicit copy (secret types are not `Clone` by accident).
    pub fn duplicate(&self) -> Self {
        SymmetricKey(self.0)
    }
    /// Derives a sub-key for another purpose (keyed BLAKE3).
    pub fn derive(&self, purpose: &str) -> SymmetricKey {
        SymmetricKey(blake3::derive_key(purpose, &self.0))
    }
    /// Seals `plaintext` with XChaCha20-Poly1305 under a fresh random nonce; output is
    /// nonce || ciphertext.
    pub fn seal(&self, rng: &mut impl rand::RngCore, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(self.seal_with_nonce(&nonce, aad, plaintext));
        out
    }
    /// Opens what [`SymmetricKey::seal`] produced.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 24 + 16 {
            return Err(OpenError::Truncated { len: sealed.len() });
        }
        let (nonce, ct) = sealed.split_at(24);
        self.open_with_nonce(nonce.try_into().expect("24 bytes"), aad, ct)
    }
    fn seal_with_nonce(&self, nonce: &[u8; 24], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        XChaCha20Poly1305::new((&self.0).into())
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers")
    }
    fn open_with_nonce(
        &self,
        nonce: &[u8; 24],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| OpenError::Decrypt)
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(redacted)")
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a nonce and a tag.
    #[error("sealed value truncated ({len} bytes)")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// Wrong key, or altered ciphertext or associated data.
    #[error("decryption failed: wrong key or tampered data")]
    Decrypt,
    /// The author's signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Sealed with the null cipher, which the opener does not allow.
    #[error("bundle uses the null cipher, which this daemon refuses")]
    NullRefused,
    /// The bundle was sealed with another suite than this opener handles.
    #[error("this is an {suite}; open it with the matching key")]
    WrongSuite {
        /// What the bundle is.
        suite: &'static str,
    },
    /// The header names another volume, generation or epoch than expected.
    #[error("bundle header names {found}, expected {expected}")]
    WrongBinding {
        /// What the header says.
        found: String,
        /// What the opener expected.
        expected: String,
    },
}

/// Everything a bundle is bound to; the AEAD associated data and part of the signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// Cipher used.
    pub suite: CipherSuite,
    /// Space the volume belongs to.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// Volume generation.
    pub generation: Generation,
    /// Key epoch.
    pub epoch: Epoch,
    /// Author device.
    pub author: DeviceId,
    /// Random nonce.
    pub nonce: [u8; 24],
}

/// A sealed, signed bundle as the relay stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBundle {
    /// Binding and nonce.
    pub header: BundleHeader,
    /// Ciphertext (plaintext under [`CipherSuite::Null`]).
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The author device's signature over header and ciphertext.
    pub signature: Signature,
}

impl SealedBundle {
    /// Seals and signs a plaintext bundle.
    pub fn seal(
        key: &SymmetricKey,
        mut header: BundleHeader,
        author: &SigningSecret,
        rng: &mut impl rand::RngCore,
        plaintext: &[u8],
    ) -> Self {
        rng.fill_bytes(&mut header.nonce);
        let aad = codec::to_bytes(&header);
        let ciphertext = match header.suite {
            CipherSuite::XChaCha20Poly1305 => key.seal_with_nonce(&header.nonce, &aad, plaintext),
            CipherSuite::Null => plaintext.to_vec(),
            CipherSuite::AgeInbox => {
                panic!("inbox drops are sealed with SealedBundle::seal_drop, not with an epoch key")
            }
        };
        let signature = author.sign(BUNDLE_CONTEXT, &signed_bytes(&aad, &ciphertext));
        SealedBundle {
            header,
            ciphertext,
            signature,
        }
    }

    /// Checks the author's signature only (what the relay can do without keys).
    pub fn verify_author(&self) -> Result<(), SignatureError> {
        let aad = codec::to_bytes(&self.header);
        verify(
            &self.header.author.0,
            BUNDLE_CONTEXT,
            &signed_bytes(&aad, &self.ciphertext),
            &self.signature,
            "bundle",
        )
    }

    /// Verifies the author signatures of many bundles in one batch; on failure, the index
    /// of the first bad bundle.
    pub fn verify_authors<'a>(
        bundles: impl IntoIterator<Item = &'a SealedBundle>,
    ) -> Result<(), (usize, SignatureError)> {
        let bundles: Vec<&SealedBundle> = bundles.into_iter().collect();
        let signed: Vec<Vec<u8>> = bundles
            .iter()
            .map(|b| signed_bytes(&codec::to_bytes(&b.header), &b.ciphertext))
            .collect();
        let items: Vec<_> = bundles
            .iter()
            .zip(&signed)
            .map(|(b, m)| {
                (
                    &b.header.author.0,
                    BUNDLE_CONTEXT,
                    m.as_slice(),
                    &b.signature,
                )
            })
            .collect();
        crate::keys::verify_batch(&items, "bundle")
    }

    /// Verifies the signature, checks the binding, and decrypts.
    pub fn open(
        &self,
        key: &SymmetricKey,
        expect: (SpaceId, VolumeId, Generation, Epoch),
        allow_null: bool,
    ) -> Result<Vec<u8>, OpenError> {
        self.verify_author()?;
        self.open_verified(key, expect, allow_null)
    }

    /// Checks the binding and decrypts a bundle whose signature was already checked with
    /// [`SealedBundle::verify_authors`].
    pub fn open_verified(
        &self,
        key: &SymmetricKey,
        expect: (SpaceId, VolumeId, Generation, Epoch),
        allow_null: bool,
    ) -> Result<Vec<u8>, OpenError> {
        let h = &self.header;
        if (h.space, h.volume, h.generation, h.epoch) != expect {
            return Err(OpenError::WrongBinding {
                found: format!(
                    "{}/{} g{} e{}",
                    h.space.short(),
                    h.volume.short(),
                    h.generation.0,
                    h.epoch.0
                ),
                expected: format!(
                    "{}/{} g{} e{}",
                    expect.0.short(),
                    expect.1.short(),
                    expect.2 .0,
                    expect.3 .0
                ),
            });
        }
        match h.suite {
            CipherSuite::XChaCha20Poly1305 => {
                key.open_with_nonce(&h.nonce, &codec::to_bytes(h), &self.ciphertext)
            }
            CipherSuite::Null if allow_null => Ok(self.ciphertext.clone()),
            CipherSuite::Null => Err(OpenError::NullRefused),
            CipherSuite::AgeInbox => Err(OpenError::WrongSuite {
                suite: "age inbox drop",
            }),
        }
    }

    /// Seals an inbox drop to the space's inbox recipient and signs it.
    pub fn seal_drop(
        to: &AgeRecipient,
        mut header: BundleHeader,
        author: &SigningSecret,
        plaintext: &[u8],
    ) -> Result<Self, EnvelopeError> {
        header.suite = CipherSuite::AgeInbox;
        header.nonce = [0; 24];
        let mut bound = codec::to_bytes(&(header.space, header.volume));
        bound.extend_from_slice(plaintext);
        let ciphertext = age::encrypt(&to.parse()?, &bound)
            .map_err(|e| EnvelopeError::Encrypt(e.to_string()))?;
        let aad = codec::to_bytes(&header);
        let signature = author.sign(BUNDLE_CONTEXT, &signed_bytes(&aad, &ciphertext));
        Ok(SealedBundle {
            header,
            ciphertext,
            signature,
        })
    }

    /// Verifies and opens an inbox drop with the space's inbox identity.
    pub fn open_drop(
        &self,
        identity: &AgeSecret,
        expect: (SpaceId, VolumeId),
    ) -> Result<Vec<u8>, OpenError> {
        if self.header.suite != CipherSuite::AgeInbox {
            return Err(OpenError::WrongSuite {
                suite: "epoch-key bundle",
            });
        }
        self.verify_author()?;
        let plain =
            age::decrypt(identity.identity(), &self.ciphertext).map_err(|_| OpenError::Decrypt)?;
        let binding = codec::to_bytes(&expect);
        match plain.strip_prefix(binding.as_slice()) {
            Some(rest) => Ok(rest.to_vec()),
            None => Err(OpenError::WrongBinding {
                found: "another space or volume".into(),
                expected: format!("{}/{}", expect.0.short(), expect.1.short()),
            }),
        }
    }
}

fn signed_bytes(aad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(aad.len() + 32);
    m.extend_from_slice(&(aad.len() as u32).to_be_bytes());
    m.extend_from_slice(aad);
    m.extend_from_slice(blake3::hash(ciphertext).as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    fn header(author: DeviceId) -> BundleHeader {
        BundleHeader {
            suite: CipherSuite::XChaCha20Poly1305,
            space: SpaceId([1; 16]),
            volume: VolumeId([2; 16]),
            generation: Generation(0),
            epoch: Epoch(0),
            author,
            nonce: [0; 24],
        }
    }

    #[test]
    fn seal_open_and_every_tampering_is_refused() {
        let mut rng = rand::thread_rng();
        let dev = KeyPair::generate(&mut rng);
        let key = SymmetricKey::generate(&mut rng);
        let b = SealedBundle::seal(
            &key,
            header(dev.device_id()),
            &dev.signing,
            &mut rng,
            b"hello",
        );
        let expect = (SpaceId([1; 16]), VolumeId([2; 16]), Generation(0), Epoch(0));
        assert_eq!(b.open(&key, expect, false).unwrap(), b"hello");
        assert!(!b.ciphertext.windows(5).any(|w| w == b"hello"));

        let mut flipped = b.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            flipped.open(&key, expect, false),
            Err(OpenError::Signature(_))
        ));

        let mut moved = b.clone();
        moved.header.volume = VolumeId([3; 16]);
        assert!(matches!(
            moved.open(
                &key,
                (expect.0, VolumeId([3; 16]), expect.2, expect.3),
                false
            ),
            Err(OpenError::Signature(_))
        ));
        assert!(matches!(
            b.open(
                &key,
                (expect.0, VolumeId([3; 16]), expect.2, expect.3),
                false
            ),
            Err(OpenError::WrongBinding { .. })
        ));

        let other = SymmetricKey::generate(&mut rng);
        assert_eq!(b.open(&other, expect, false), Err(OpenError::Decrypt));

        let mut h = header(dev.device_id());
        h.suite = CipherSuite::Null;
        let null = SealedBundle::seal(&key, h, &dev.signing, &mut rng, b"hello");
        assert_eq!(null.open(&key, expect, false), Err(OpenError::NullRefused));
        assert_eq!(null.open(&key, expect, true).unwrap(), b"hello");
    }

    #[test]
    fn inbox_drop_opens_only_with_the_inbox_identity_and_binding() {
        let mut rng = rand::thread_rng();
        let dropper = KeyPair::generate(&mut rng);
        let inbox = crate::keys::AgeSecret::generate();
        let other = crate::keys::AgeSecret::generate();
        let h = header(dropper.device_id());
        let b = SealedBundle::seal_drop(
            &inbox.recipient(),
            h.clone(),
            &dropper.signing,
            b"lab result",
        )
        .unwrap();
        assert_eq!(
            b.open_drop(&inbox, (h.space, h.volume)).unwrap(),
            b"lab result"
        );
        assert_eq!(
            b.open_drop(&other, (h.space, h.volume)),
            Err(OpenError::Decrypt)
        );
        assert!(matches!(
            b.open_drop(&inbox, (SpaceId([9; 16]), h.volume)),
            Err(OpenError::WrongBinding { .. })
        ));
        let key = SymmetricKey::generate(&mut rng);
        assert!(matches!(
            b.open(&key, (h.space, h.volume, h.generation, h.epoch), false),
            Err(OpenError::WrongSuite { .. })
        ));
        let mut forged = b.clone();
        forged.ciphertext[40] ^= 1;
        assert!(matches!(
            forged.open_drop(&inbox, (h.space, h.volume)),
            Err(OpenError::Signature(_))
        ));
    }

    #[test]
    fn batch_verification_names_the_bad_bundle() {
        let mut rng = rand::thread_rng();
        let dev = KeyPair::generate(&mut rng);
        let key = SymmetricKey::generate(&mut rng);
        let mut bundles: Vec<SealedBundle> = (0..8)
            .map(|i| {
                SealedBundle::seal(
                    &key,
                    header(dev.device_id()),
                    &dev.signing,
                    &mut rng,
                    &[i as u8; 40],
                )
            })
            .collect();
        assert_eq!(SealedBundle::verify_authors(&bundles), Ok(()));
        bundles[5].ciphertext[0] ^= 1;
        assert_eq!(SealedBundle::verify_authors(&bundles).unwrap_err().0, 5);
    }
}
