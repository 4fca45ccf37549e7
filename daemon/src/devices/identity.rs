//! Who this daemon is: the principal's keys (shared by a person's devices through
//! pairing), the device's own keys, and the certificate binding them. Kept sealed in the
//! replica store.

use mes_protocol::crypto::keys::{DeviceCert, DeviceCertBody, ExportedKeyPair, KeyPair};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::codec;
use serde::{Deserialize, Serialize};

use crate::replica::store::{SealedStore, StoreError};

/// The daemon's keys.
pub struct Identity {
    /// The person (or organisation).
    pub principal: KeyPair,
    /// This device.
    pub device: KeyPair,
    /// The principal's certificate for this device.
    pub cert: DeviceCert,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    principal: ExportedKeyPair,
    device: ExportedKeyPair,
    cert: DeviceCert,
}

const NS: &str = "identity";

impl Identity {
    /// A new principal with this as its first device.
    pub fn create(name: &str) -> Self {
        let mut rng = rand::rngs::OsRng;
        let principal = KeyPair::generate(&mut rng);
        let device = KeyPair::generate(&mut rng);
        let cert = certify(&principal, &device, name);
        Identity {
            principal,
            device,
            cert,
        }
    }

    /// Loads the identity, if any.
    pub fn load(store: &SealedStore) -> Result<Option<Self>, StoreError> {
        let Some(bytes) = store.get(NS, &[])? else {
            return Ok(None);
        };
        let s: Stored = codec::from_bytes(&bytes)
            .map_err(|e| StoreError::corrupt(format!("stored identity: {e}")))?;
        let err = |e: mes_protocol::crypto::keys::KeyParseError| {
            StoreError::corrupt(format!("stored identity: {e}"))
        };
        Ok(Some(Identity {
            principal: s.principal.import().map_err(err)?,
            device: s.device.import().map_err(err)?,
            cert: s.cert,
        }))
    }

    /// Writes the identity in a batch.
    pub fn save(&self, batch: &mut crate::replica::store::Batch<'_>) {
        let s = Stored {
            principal: self.principal.export(),
            device: self.device.export(),
            cert: self.cert.clone(),
        };
        batch.put(NS, &[], &codec::to_bytes(&s));
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.cert.body.name
    }
}

/// Issues a certificate for `device` under `principal`.
pub fn certify(principal: &KeyPair, device: &KeyPair, name: &str) -> DeviceCert {
    certify_offer(
        principal,
        &DeviceOffer {
            device: device.device_id(),
            recipient: device.age.recipient(),
            name: name.to_string(),
        },
    )
}

/// What a joining device tells the existing one during pairing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceOffer {
    /// Its signing key.
    pub device: mes_protocol::ids::DeviceId,
    /// Its age recipient.
    pub recipient: mes_protocol::crypto::keys::AgeRecipient,
    /// The name its owner chose.
    pub name: String,
}

/// Issues a certificate for an offered device.
pub fn certify_offer(principal: &KeyPair, offer: &DeviceOffer) -> DeviceCert {
    DeviceCert::issue(
        &principal.signing,
        DeviceCertBody {
            principal: principal.principal_id(),
            device: offer.device,
            recipient: offer.recipient.clone(),
            name: offer.name.clone(),
            issued_at: UnixMillis::now(),
        },
    )
}

/// What the existing device hands the joining one, sealed under the pairing key.
#[derive(Serialize, Deserialize)]
pub struct PrincipalHandover {
    /// The principal's keys.
    pub principal: ExportedKeyPair,
    /// The joining device's certificate.
    pub cert: DeviceCert,
}
