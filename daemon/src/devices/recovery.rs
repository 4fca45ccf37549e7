//! Recovery when every device is lost (F12.4), on the daemon's side. Making a kit creates
//! the person's recovery identity (kept sealed in this replica) and publishes its public
//! recipient in the notes of every space the person owns; from then on every admin device
//! also wraps each epoch key to it ([`wrap_recovery`]). Restoring a fresh daemon from the
//! kit gives it the principal keys, a certificate for itself and the recovery identity; it
//! then opens the recovery envelopes the relay kept ([`Daemon::collect_recovery_envelopes`]).

use mes_protocol::access::membership::Membership;
use mes_protocol::crypto::envelope::KeyEnvelope;
use mes_protocol::crypto::keys::{AgeRecipient, AgeSecret};
use mes_protocol::crypto::recovery::{self, recovery_device, RecoveryKit};
use mes_protocol::ids::{SpaceId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};
use std::path::Path;
use zeroize::Zeroizing;

use crate::daemon::{Daemon, State, SyncError};
use crate::devices::identity::Identity;
use crate::sync::relay_client::RelayClient;

/// Sealed-store namespace of the recovery identity.
const NAMESPACE: &str = "recovery";

/// Notes key of the recovery recipient (public).
pub const RECIPIENT_KEY: &str = "_recovery-recipient";

/// How a kit is protected.
pub enum KitLock {
    /// A passphrase the person keeps.
    Passphrase(Zeroizing<String>),
    /// A random secret split among trusted persons, `k` of `n`.
    Split {
        /// Shares needed.
        k: u8,
        /// Shares made.
        n: u8,
    },
}

/// How a kit is opened.
pub enum KitKey {
    /// Its passphrase.
    Passphrase(Zeroizing<String>),
    /// At least `k` of its shares.
    Shares(Vec<String>),
}

/// Envelopes of every key of the space's volumes for the owner's recovery identity.
pub fn wrap_recovery(
    st: &mut State,
    identity: &Identity,
    m: &Membership,
    recipient: Option<&AgeRecipient>,
) -> Vec<KeyEnvelope> {
    let Some(recipient) = recipient else {
        return Vec::new();
    };
    let device = recovery_device(m.owner());
    let mut out = Vec::new();
    for d in m.volumes.values().map(|d| &d.body) {
        if d.kind == VolumeKind::Inbox {
            continue;
        }
        for (slot, key) in st.keys.slots(d.volume, d.generation) {
            if st.wrapped.contains(&(slot, device)) {
                continue;
            }
            match KeyEnvelope::wrap(slot, key, device, recipient, &identity.principal.signing) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!("cannot wrap to the recovery identity: {e}"),
            }
        }
    }
    out
}

impl Daemon {
    /// The recovery recipient published in a space's notes, if a kit was ever made.
    pub(crate) fn recovery_recipient(&self, space: SpaceId) -> Option<AgeRecipient> {
        self.note_value(space, RECIPIENT_KEY).map(AgeRecipient)
    }

    fn recovery_identity(&self) -> Option<AgeSecret> {
        let bytes = self.store.get(NAMESPACE, &[]).ok().flatten()?;
        AgeSecret::parse(&String::from_utf8_lossy(&bytes)).ok()
    }

    fn save_recovery_identity(&self, s: &AgeSecret) -> Result<(), ApiError> {
        let mut batch = self.store.batch();
        batch.put(NAMESPACE, &[], s.to_secret_string().as_bytes());
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))
    }

    /// Writes a recovery kit to `out` (and, for a split, its shares beside it as
    /// `out.share-I.txt`); returns the files written.
    pub async fn make_recovery_kit(
        &self,
        out: &Path,
        lock: KitLock,
    ) -> Result<Vec<String>, ApiError> {
        let secret = match self.recovery_identity() {
            Some(s) => s,
            None => {
                let s = AgeSecret::generate();
                self.save_recovery_identity(&s)?;
                s
            }
        };
        let target = self.link.target().ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Offline,
                "this daemon has no relay to name in a kit",
            )
        })?;
        // Every owned space learns the recipient, so every admin device wraps to it.
        let owned: Vec<SpaceId> = {
            let st = self.state();
            let me = self.identity().principal.principal_id();
            st.spaces
                .values()
                .filter(|s| s.owner() == me)
                .map(super::super::replica::spaces::Space::id)
                .collect()
        };
        // The kit's admission key (issue 22, finding 3): registered at the relay by this
        // listed device, its secret only in the kit, so a device restored from the kit
        // is admitted and a stolen device cannot admit itself again.
        let admission = mes_protocol::crypto::keys::SigningSecret::generate(&mut rand::rngs::OsRng);
        self.online_client("making a recovery kit")?
            .request(Request::SetAdmissionKey {
                key: mes_protocol::ids::PrincipalId(admission.public()),
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    ApiErrorCode::Offline,
                    format!("the relay did not register the kit's admission key: {e}"),
                )
            })?;
        for space in &owned {
            self.note_set_internal(*space, RECIPIENT_KEY, &secret.recipient().0)
                .await?;
        }
        let kit = RecoveryKit {
            principal: self.identity().principal.export(),
            recovery: secret.to_secret_string().to_string(),
            relay_address: target.address.to_string(),
            relay_fingerprint: target.fingerprint.clone(),
            created_at: UnixMillis::now(),
            admission: Some(hex::encode(admission.to_bytes())),
        };
        let mut written = Vec::new();
        let (passphrase, shares) = match lock {
            KitLock::Passphrase(p) => {
                if p.trim().len() < 12 {
                    return Err(ApiError::new(
                        ApiErrorCode::BadRequest,
                        "a recovery passphrase needs at least 12 characters",
                    ));
                }
                (p, Vec::new())
            }
            KitLock::Split { k, n } => {
                let mut raw = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
                let shares = recovery::split(&raw, k, n)
                    .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e.to_string()))?;
                (recovery::split_passphrase(&raw), shares)
            }
        };
        let sealed = recovery::seal(&kit, &passphrase);
        write_new(out, &sealed)?;
        written.push(out.to_string_lossy().into_owned());
        for (i, share) in shares.iter().enumerate() {
            let p = out.with_extension(format!("share-{}.txt", i + 1));
            write_new(&p, format!("{share}\n").as_bytes())?;
            written.push(p.to_string_lossy().into_owned());
        }
        // Wrap everything to the recovery identity now.
        if let Some(c) = self.client() {
            for space in owned {
                self.refresh_space(&c, space)
                    .await
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            }
        }
        Ok(written)
    }

    /// Makes this fresh daemon the person's device from a kit; returns the relay the kit
    /// names (address, fingerprint), which this daemon must be started with.
    pub async fn restore_from_kit(
        &self,
        sealed: &[u8],
        key: KitKey,
    ) -> Result<(String, String), ApiError> {
        if !self.state().spaces.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "this daemon already holds spaces; restore on a fresh daemon",
            ));
        }
        let passphrase = match key {
            KitKey::Passphrase(p) => p,
            KitKey::Shares(s) => {
                let raw = recovery::combine(&s)
                    .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e.to_string()))?;
                recovery::split_passphrase(&raw)
            }
        };
        let kit = recovery::open(sealed, &passphrase)
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e.to_string()))?;
        let principal = kit
            .principal
            .import()
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, format!("kit keys: {e}")))?;
        let secret = AgeSecret::parse(&kit.recovery).map_err(|e| {
            ApiError::new(
                ApiErrorCode::BadRequest,
                format!("kit recovery identity: {e}"),
            )
        })?;
        let (device, cert) = {
            let device = mes_protocol::crypto::keys::KeyPair {
                signing: mes_protocol::crypto::keys::SigningSecret::from_bytes(
                    &self.identity().device.signing.to_bytes(),
                ),
                age: AgeSecret::parse(&self.identity().device.age.to_secret_string())
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?,
            };
            let name = format!("{} (restored)", self.identity().name());
            let cert = crate::devices::identity::certify(&principal, &device, &name);
            (device, cert)
        };
        // The relay admits the restored device on the kit's word, before anything changes
        // here: a kit the relay does not know (or an older kit) restores nothing.
        admit_restored(&kit, &cert, &device.signing).await?;
        {
            let identity = Identity {
                principal,
                device,
                cert,
            };
            let mut batch = self.store.batch();
            identity.save(&mut batch);
            batch.put(NAMESPACE, &[], secret.to_secret_string().as_bytes());
            self.store
                .apply(batch)
                .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
            self.devices.replace_identity(identity);
        }
        self.store
            .flush()
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        self.link.reconnect.notify_one();
        Ok((kit.relay_address.clone(), kit.relay_fingerprint.clone()))
    }

    /// Opens the recovery envelopes of a space this person owns, when this device holds
    /// the recovery identity (a restored device).
    pub async fn collect_recovery_envelopes(
        &self,
        c: &RelayClient,
        space: SpaceId,
    ) -> Result<usize, SyncError> {
        let owner = {
            let st = self.state();
            st.spaces
                .get(&space)
                .map(super::super::replica::spaces::Space::owner)
                == Some(self.identity().principal.principal_id())
        };
        let Some(secret) = self.recovery_identity().filter(|_| owner) else {
            return Ok(0);
        };
        let Reply::Envelopes { envelopes } =
            c.request(Request::GetRecoveryEnvelopes { space }).await?
        else {
            return Err(SyncError::Refused(
                "GetRecoveryEnvelopes answered something else".into(),
            ));
        };
        self.open_envelopes(space, envelopes, Some(&secret), c.relay_key)
            .await
    }
}

/// Has the kit's relay put a restored device on its person's list, with the kit's word.
async fn admit_restored(
    kit: &RecoveryKit,
    cert: &mes_protocol::crypto::keys::DeviceCert,
    device: &mes_protocol::crypto::keys::SigningSecret,
) -> Result<(), ApiError> {
    let Some(secret) = &kit.admission else {
        return Err(ApiError::new(
            ApiErrorCode::Forbidden,
            "this kit was made before device lists and cannot admit a device: list this device from one of your devices, or make a new kit there",
        ));
    };
    let secret: [u8; 32] = hex::decode(secret)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::BadRequest,
                "the kit's admission key is malformed",
            )
        })?;
    let vouch = mes_protocol::crypto::recovery::AdmissionVouch::sign(
        &mes_protocol::crypto::keys::SigningSecret::from_bytes(&secret),
        cert,
    );
    let target = crate::sync::relay_client::RelayTarget {
        address: kit.relay_address.parse().map_err(|e| {
            ApiError::new(
                ApiErrorCode::BadRequest,
                format!("the kit's relay address {:?}: {e}", kit.relay_address),
            )
        })?,
        fingerprint: kit.relay_fingerprint.clone(),
    };
    let endpoint = crate::sync::relay_client::endpoint(target.address)
        .map_err(|e| ApiError::new(ApiErrorCode::Offline, e.to_string()))?;
    let (client, _pushes) = crate::sync::relay_client::RelayClient::connect_vouched(
        &endpoint,
        &target,
        cert,
        device,
        Some(vouch),
    )
    .await
    .map_err(|e| {
        ApiError::new(
            ApiErrorCode::Offline,
            format!(
                "the relay named in the kit ({}) did not admit this device: {e:#}",
                kit.relay_address
            ),
        )
    })?;
    drop(client);
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    crate::devices::unlock::write_private(path, bytes)
        .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, format!("{e:#}")))
}
