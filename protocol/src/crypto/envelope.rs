//! Key envelopes: a volume's epoch key wrapped with age to one device's X25519 recipient.
//!
//! The relay stores envelopes and hands a device those addressed to it; it cannot open them.
//! Each envelope is signed by the principal that wrapped it, so a device adopts a key only
//! from someone allowed to choose it (an admin of the space, the owner alone for a private
//! volume, the hub for an emergency release): a hub that wraps a key of its own to a
//! device, hoping it seals what comes next under it, is refused.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

use crate::crypto::keys::{
    verify, AgeRecipient, AgeSecret, KeyParseError, Signature, SignatureError, SigningSecret,
};
use crate::crypto::seal::SymmetricKey;
use crate::ids::{DeviceId, Epoch, Generation, PrincipalId, SpaceId, VolumeId};
use crate::wire::codec;

/// Which key an envelope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeySlot {
    /// Space.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// Generation of the volume.
    pub generation: Generation,
    /// Key epoch.
    pub epoch: Epoch,
}

/// An epoch key wrapped to one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    /// Which key.
    pub slot: KeySlot,
    /// The device that can open it.
    pub recipient: DeviceId,
    /// The age ciphertext of the 32 key bytes.
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
    /// The principal that wrapped it.
    pub signer: PrincipalId,
    /// Its signature over slot, recipient and ciphertext.
    pub signature: Signature,
}

/// Signature context of key envelopes.
const CONTEXT: &[u8] = b"mes/key-envelope/v1";

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The recipient string is not an age recipient.
    #[error(transparent)]
    Recipient(#[from] KeyParseError),
    /// age refused to encrypt.
    #[error("age encryption failed: {0}")]
    Encrypt(String),
    /// Not addressed to this identity, or altered.
    #[error("cannot open key envelope for {slot:?}: {reason}")]
    Decrypt {
        /// The key slot.
        slot: KeySlot,
        /// age's reason.
        reason: String,
    },
    /// The plaintext is not a 32-byte key.
    #[error("key envelope for {slot:?} holds {len} bytes, not a 32-byte key")]
    BadLength {
        /// The key slot.
        slot: KeySlot,
        /// Length found.
        len: usize,
    },
}

/// Whether a device may adopt the key in `e` for a space with membership `m` (as it
/// stands now), `hub` being the relay's pinned signing key: the signature must verify,
/// and the wrapper be the owner, or an admin for a volume that is not private, or the hub
/// for the escrowed emergency volume (a release, F7.5).
pub fn may_adopt(
    e: &KeyEnvelope,
    m: &crate::access::membership::Membership,
    hub: PrincipalId,
) -> Result<(), Invalid> {
    e.verify().map_err(|err| err.to_string())?;
    if e.slot.space != m.space() {
        return Err(Invalid::from(format!(
            "envelope for space {}, not {}",
            e.slot.space.short(),
            m.space().short()
        )));
    }
    let label = m.volume(e.slot.volume).map(|d| d.label.as_str());
    if e.signer == m.owner() {
        return Ok(());
    }
    if e.signer == hub {
        return if label == Some(crate::access::escrow::ESCROWED_LABEL) {
            Ok(())
        } else {
            Err(Invalid::from(format!(
                "the hub wrapped a key of {} itself: only emergency releases come from the hub",
                label.unwrap_or("an unknown volume")
            )))
        };
    }
    if m.is_private(e.slot.volume) {
        return Err(Invalid::from(format!(
            "a key of the private volume {} wrapped by {:?}, not the owner",
            label.unwrap_or("?"),
            e.signer
        )));
    }
    if m.role(e.signer, None) == Some(crate::access::membership::Role::Admin) {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "{:?} wrapped a key but does not manage this space",
            e.signer
        )))
    }
}

fn signed_bytes(slot: &KeySlot, recipient: DeviceId, wrapped: &[u8]) -> Vec<u8> {
    codec::to_bytes(&(slot, recipient, serde_bytes::Bytes::new(wrapped)))
}

impl KeyEnvelope {
    /// Wraps `key` to a device's age recipient, signed by `signer`.
    pub fn wrap(
        slot: KeySlot,
        key: &SymmetricKey,
        recipient: DeviceId,
        to: &AgeRecipient,
        signer: &SigningSecret,
    ) -> Result<Self, EnvelopeError> {
        let r = to.parse()?;
        let wrapped =
            age::encrypt(&r, key.as_bytes()).map_err(|e| EnvelopeError::Encrypt(e.to_string()))?;
        let signature = signer.sign(CONTEXT, &signed_bytes(&slot, recipient, &wrapped));
        Ok(KeyEnvelope {
            slot,
            recipient,
            wrapped,
            signer: PrincipalId(signer.public()),
            signature,
        })
    }

    /// Checks the wrapper's signature (not whether they may choose this key).
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify(
            &self.signer.0,
            CONTEXT,
            &signed_bytes(&self.slot, self.recipient, &self.wrapped),
            &self.signature,
            "key envelope",
        )
    }

    /// Opens the envelope with the device's age identity.
    pub fn unwrap(&self, identity: &AgeSecret) -> Result<SymmetricKey, EnvelopeError> {
        let plain = age::decrypt(identity.identity(), &self.wrapped).map_err(|e| {
            EnvelopeError::Decrypt {
                slot: self.slot,
                reason: e.to_string(),
            }
        })?;
        let bytes: [u8; 32] =
            plain
                .as_slice()
                .try_into()
                .map_err(|_| EnvelopeError::BadLength {
                    slot: self.slot,
                    len: plain.len(),
                })?;
        Ok(SymmetricKey::from_bytes(bytes))
    }
}
