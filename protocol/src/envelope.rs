//! Key envelopes: a volume's epoch key wrapped with age to one device's X25519 recipient.
//!
//! The relay stores envelopes and hands a device those addressed to it; it cannot open them.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, Epoch, Generation, SpaceId, VolumeId};
use crate::keys::{AgeRecipient, AgeSecret, KeyParseError};
use crate::seal::SymmetricKey;

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
}

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

impl KeyEnvelope {
    /// Wraps `key` to a device's age recipient.
    pub fn wrap(
        slot: KeySlot,
        key: &SymmetricKey,
        recipient: DeviceId,
        to: &AgeRecipient,
    ) -> Result<Self, EnvelopeError> {
        let r = to.parse()?;
        let wrapped =
            age::encrypt(&r, key.as_bytes()).map_err(|e| EnvelopeError::Encrypt(e.to_string()))?;
        Ok(KeyEnvelope {
            slot,
            recipient,
            wrapped,
        })
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
