//! Change bundles: one or more automerge changes, sealed under a volume's epoch key with
//! XChaCha20-Poly1305 and signed once by the author device.
//!
//! The associated data is the encoded [`BundleHeader`]: it binds the space, volume,
//! generation, epoch, author and nonce, so a bundle moved to another volume, replayed into
//! another generation or attributed to another device fails to open. The signature covers
//! header and ciphertext, so the relay (which cannot decrypt) can still check who wrote it.
//!
//! Bundles of one author chain: each header names the [`BundleLink`] (hash of the signed
//! bytes) of the author's previous bundle in the volume. A signature therefore vouches for
//! the whole chain behind it, and a device catching up verifies one signature per author
//! chain in a batch instead of one per bundle ([`SealedBundle::verify_authors`]); a broken
//! chain only falls back to checking more signatures.
//!
//! FROZEN (protocol version 2): the header layout and the signature context are part of
//! stored data; change them only with a new [`CipherSuite`] variant or protocol version.
//!
//! Over 600 lines: a third is the tests of the format (tampering, forgery, the null cipher); the format is one concept.
//!
//! Import circle: with `envelope`, an inbox drop is sealed with age as a key envelope is and fails with the same error, and an envelope wraps a bundle key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::envelope::EnvelopeError;
use crate::crypto::keys::{
    verify, AgeRecipient, AgeSecret, Signature, SignatureError, SigningSecret,
};
use crate::ids::{DeviceId, Epoch, Generation, SpaceId, VolumeId};
use crate::wire::codec;

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
    /// Link of the author's previous bundle in this volume and generation, when the author
    /// still knows it (a chain may restart at any bundle).
    pub prev: Option<BundleLink>,
}

/// BLAKE3 of a bundle's signed bytes (header and ciphertext hash): what the next bundle of
/// the same author names as `prev`.
pub type BundleLink = [u8; 32];

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

    /// This bundle's link: what the author's next bundle names as `prev`.
    pub fn link(&self) -> BundleLink {
        *blake3::hash(&signed_bytes(
            &codec::to_bytes(&self.header),
            &self.ciphertext,
        ))
        .as_bytes()
    }

    /// Authenticates many bundles; on failure, the index of the first bad bundle.
    ///
    /// Walking back from the end, a bundle whose link a later bundle of the same author
    /// names as `prev` is covered by that bundle's signature (its signed bytes contain the
    /// link, a BLAKE3 hash of this bundle's header and ciphertext); every other bundle's
    /// own signature is checked, all in one batch. A tampered bundle inside a chain breaks
    /// its link, so its own signature is checked, and fails.
    pub fn verify_authors<'a>(
        bundles: impl IntoIterator<Item = &'a SealedBundle>,
    ) -> Result<(), (usize, SignatureError)> {
        let bundles: Vec<&SealedBundle> = bundles.into_iter().collect();
        let signed: Vec<Vec<u8>> = bundles
            .iter()
            .map(|b| signed_bytes(&codec::to_bytes(&b.header), &b.ciphertext))
            .collect();
        let needed = signatures_needed(&bundles, &signed);
        let items: Vec<_> = needed
            .iter()
            .map(|&i| {
                (
                    &bundles[i].header.author.0,
                    BUNDLE_CONTEXT,
                    signed[i].as_slice(),
                    &bundles[i].signature,
                )
            })
            .collect();
        crate::crypto::keys::verify_batch(&items, "bundle").map_err(|(k, e)| (needed[k], e))
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

    /// The signature checks [`SealedBundle::verify_authors`] makes, owned (to batch them
    /// with other requests'): (index of the bundle, check).
    pub fn author_checks(bundles: &[SealedBundle]) -> Vec<(usize, crate::crypto::keys::Check)> {
        let refs: Vec<&SealedBundle> = bundles.iter().collect();
        let signed: Vec<Vec<u8>> = bundles
            .iter()
            .map(|b| signed_bytes(&codec::to_bytes(&b.header), &b.ciphertext))
            .collect();
        signatures_needed(&refs, &signed)
            .into_iter()
            .map(|i| {
                let b = &bundles[i];
                (
                    i,
                    crate::crypto::keys::Check::new(
                        b.header.author.0,
                        BUNDLE_CONTEXT,
                        &signed[i],
                        b.signature,
                    ),
                )
            })
            .collect()
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

/// Indices (ascending) of the bundles whose own signature must be checked: those no later
/// bundle of the same author vouches for through its `prev` link. Vouching is transitive:
/// if any checked signature fails, the whole set is refused.
fn signatures_needed(bundles: &[&SealedBundle], signed: &[Vec<u8>]) -> Vec<usize> {
    let mut vouched: std::collections::HashSet<(DeviceId, BundleLink)> =
        std::collections::HashSet::new();
    let mut needed = Vec::new();
    for i in (0..bundles.len()).rev() {
        let h = &bundles[i].header;
        let link = *blake3::hash(&signed[i]).as_bytes();
        if !vouched.contains(&(h.author, link)) {
            needed.push(i);
        }
        if let Some(prev) = h.prev {
            vouched.insert((h.author, prev));
        }
    }
    needed.reverse();
    needed
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
    use crate::crypto::keys::KeyPair;

    fn header(author: DeviceId) -> BundleHeader {
        BundleHeader {
            suite: CipherSuite::XChaCha20Poly1305,
            space: SpaceId([1; 16]),
            volume: VolumeId([2; 16]),
            generation: Generation(0),
            epoch: Epoch(0),
            author,
            nonce: [0; 24],
            prev: None,
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
        let inbox = crate::crypto::keys::AgeSecret::generate();
        let other = crate::crypto::keys::AgeSecret::generate();
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

    /// A chain of `n` bundles by one author, each naming the previous one's link.
    fn chain(dev: &KeyPair, key: &SymmetricKey, n: usize) -> Vec<SealedBundle> {
        let mut rng = rand::thread_rng();
        let mut prev = None;
        (0..n)
            .map(|i| {
                let mut h = header(dev.device_id());
                h.prev = prev;
                let b = SealedBundle::seal(key, h, &dev.signing, &mut rng, &[i as u8; 40]);
                prev = Some(b.link());
                b
            })
            .collect()
    }

    fn needed(bundles: &[SealedBundle]) -> Vec<usize> {
        let refs: Vec<&SealedBundle> = bundles.iter().collect();
        let signed: Vec<Vec<u8>> = bundles
            .iter()
            .map(|b| signed_bytes(&codec::to_bytes(&b.header), &b.ciphertext))
            .collect();
        signatures_needed(&refs, &signed)
    }

    #[test]
    fn a_chain_needs_one_signature_per_author_and_a_gap_one_more() {
        let mut rng = rand::thread_rng();
        let (a, b) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let key = SymmetricKey::generate(&mut rng);
        let mut bundles = chain(&a, &key, 50);
        assert_eq!(needed(&bundles), vec![49]);
        assert_eq!(SealedBundle::verify_authors(&bundles), Ok(()));
        // Two authors interleaved: one tail each.
        let other = chain(&b, &key, 10);
        let mut mixed = Vec::new();
        for (i, x) in bundles.iter().enumerate() {
            mixed.push(x.clone());
            if i < 10 {
                mixed.push(other[i].clone());
            }
        }
        assert_eq!(needed(&mixed).len(), 2);
        assert_eq!(SealedBundle::verify_authors(&mixed), Ok(()));
        // A bundle missing from the middle (a relay hiding it): both halves are checked.
        bundles.remove(20);
        assert_eq!(needed(&bundles), vec![19, 48]);
        assert_eq!(SealedBundle::verify_authors(&bundles), Ok(()));
    }

    #[test]
    fn tampering_anywhere_in_a_chain_is_refused_and_named() {
        let mut rng = rand::thread_rng();
        let dev = KeyPair::generate(&mut rng);
        let key = SymmetricKey::generate(&mut rng);
        for at in [0, 20, 49] {
            let mut bundles = chain(&dev, &key, 50);
            bundles[at].ciphertext[3] ^= 1;
            assert_eq!(SealedBundle::verify_authors(&bundles).unwrap_err().0, at);
            // The header is covered too: a bundle moved to another epoch breaks the chain.
            let mut bundles = chain(&dev, &key, 50);
            bundles[at].header.epoch = Epoch(7);
            assert_eq!(SealedBundle::verify_authors(&bundles).unwrap_err().0, at);
        }
    }

    #[test]
    fn a_forged_chain_in_anothers_name_is_refused() {
        let mut rng = rand::thread_rng();
        let (victim, forger) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let key = SymmetricKey::generate(&mut rng);
        // The forger chains bundles claiming the victim as author, signing with its own key;
        // only the tail is checked by signature, and it fails.
        let mut prev = None;
        let forged: Vec<SealedBundle> = (0..10)
            .map(|i| {
                let mut h = header(victim.device_id());
                h.prev = prev;
                let b = SealedBundle::seal(&key, h, &forger.signing, &mut rng, &[i; 40]);
                prev = Some(b.link());
                b
            })
            .collect();
        assert_eq!(SealedBundle::verify_authors(&forged).unwrap_err().0, 9);
        // A forged bundle spliced before an honest tail, naming nothing: its own signature
        // is checked and fails.
        let mut spliced = chain(&victim, &key, 10);
        spliced.insert(5, forged[0].clone());
        assert_eq!(SealedBundle::verify_authors(&spliced).unwrap_err().0, 5);
    }
}
