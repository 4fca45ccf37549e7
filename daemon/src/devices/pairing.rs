//! Adding a device to a person: the existing device shows a short code, the new device
//! types it; both run SPAKE2 over the code through the relay's rendezvous, confirm the key
//! before anything secret moves, then the new device offers its public keys and the
//! existing one hands over the principal's keys and a certificate for it, sealed under
//! the pairing key. A relay in the middle (swapping SPAKE2 messages) makes the
//! confirmation fail on both sides, and nothing is handed over.
//!
//! Order: joining → Spake; existing → Spake, Confirm; joining → Confirm, Sealed(offer);
//! existing → Sealed(handover).

use mes_protocol::crypto::pairing::{
    PairMessage, PairingCode, PairingExchange, PairingKey, PairingRole,
};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::codec;
use mes_protocol::wire::Request;
use rand::rngs::OsRng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::daemon::Daemon;
use crate::devices::identity::{certify_offer, DeviceOffer, Identity, PrincipalHandover};
use crate::sync::relay_client::RelayClient;

/// How long the existing device waits for someone to type the code.
pub const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long each later step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const OFFER_AAD: &[u8] = b"mes/pairing/offer/v1";
const HANDOVER_AAD: &[u8] = b"mes/pairing/handover/v1";

fn pairing(m: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorCode::Pairing, m)
}

struct Channel {
    daemon: Arc<Daemon>,
    client: Arc<RelayClient>,
    rendezvous: [u8; 16],
    rx: mpsc::Receiver<Vec<u8>>,
}

impl Channel {
    async fn open(daemon: Arc<Daemon>, code: &PairingCode) -> Result<Self, ApiError> {
        let client = daemon.client().ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Offline,
                "pairing needs the relay, and the daemon is offline",
            )
        })?;
        let rendezvous = code.rendezvous();
        let rx = daemon.devices.open_pairing(rendezvous);
        let ch = Channel {
            daemon,
            client,
            rendezvous,
            rx,
        };
        ch.client
            .request(Request::PairOpen { rendezvous })
            .await
            .map_err(|e| pairing(format!("cannot open the rendezvous: {e}")))?;
        Ok(ch)
    }

    async fn send(&self, m: &PairMessage) -> Result<(), ApiError> {
        self.client
            .request(Request::PairSend {
                rendezvous: self.rendezvous,
                body: codec::to_bytes(m),
            })
            .await
            .map(|_| ())
            .map_err(|e| pairing(format!("pairing message not delivered: {e}")))
    }

    async fn recv(&mut self, within: Duration) -> Result<PairMessage, ApiError> {
        let body = tokio::time::timeout(within, self.rx.recv())
            .await
            .map_err(|_| pairing("the other device did not answer in time"))?
            .ok_or_else(|| pairing("pairing channel closed"))?;
        match codec::from_bytes(&body) {
            Ok(PairMessage::Abort(reason)) => {
                Err(pairing(format!("the other device gave up: {reason}")))
            }
            Ok(m) => Ok(m),
            Err(e) => Err(pairing(format!("malformed pairing message: {e}"))),
        }
    }

    async fn abort(&self, e: ApiError) -> ApiError {
        let _ = self.send(&PairMessage::Abort(e.message.clone())).await;
        e
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.daemon.devices.close_pairing(&self.rendezvous);
    }
}

fn confirm_failed() -> ApiError {
    pairing("key confirmation failed: the code was mistyped, or someone is in the middle; start again with a new code")
}

/// On the existing device: opens a rendezvous and returns the code to show; the exchange
/// goes on in the background until the other device joins or the code expires.
pub async fn start(daemon: Arc<Daemon>) -> Result<String, ApiError> {
    let code = PairingCode::generate(&mut OsRng);
    let ch = Channel::open(daemon, &code).await?;
    let shown = code.as_str().to_string();
    tokio::spawn(async move {
        if let Err(e) = existing_side(ch, code).await {
            tracing::warn!("pairing did not complete: {e}");
        }
    });
    Ok(shown)
}

async fn existing_side(mut ch: Channel, code: PairingCode) -> Result<(), ApiError> {
    let PairMessage::Spake(peer) = ch.recv(CODE_LIFETIME).await? else {
        return Err(ch.abort(pairing("expected the SPAKE2 message first")).await);
    };
    let (ex, msg) = PairingExchange::start(&code, &mut OsRng);
    let key = match ex.finish(&peer) {
        Ok(k) => k,
        Err(e) => return Err(ch.abort(pairing(e.to_string())).await),
    };
    ch.send(&PairMessage::Spake(msg)).await?;
    ch.send(&PairMessage::Confirm {
        role: PairingRole::Existing,
        mac: key.confirmation(PairingRole::Existing),
    })
    .await?;
    match ch.recv(STEP_TIMEOUT).await? {
        PairMessage::Confirm {
            role: PairingRole::Joining,
            mac,
        } if key.check(PairingRole::Joining, &mac).is_ok() => {}
        _ => return Err(ch.abort(confirm_failed()).await),
    }
    let PairMessage::Sealed(sealed) = ch.recv(STEP_TIMEOUT).await? else {
        return Err(ch.abort(pairing("expected the device offer")).await);
    };
    let offer: DeviceOffer = open(&key, OFFER_AAD, &sealed)?;
    let handover = {
        let cert = certify_offer(&ch.daemon.identity().principal, &offer);
        PrincipalHandover {
            principal: ch.daemon.identity().principal.export(),
            cert,
        }
    };
    // The relay admits only devices on the person's list, which a listed device extends
    // (issue 22, finding 3): this one lists the new device before handing anything over.
    if let Err(e) = ch
        .client
        .request(Request::ListDevice {
            cert: handover.cert.clone(),
        })
        .await
    {
        return Err(ch
            .abort(pairing(format!(
                "the relay did not list the new device: {e}"
            )))
            .await);
    }
    let sealed = key
        .channel_key()
        .seal(&mut OsRng, HANDOVER_AAD, &codec::to_bytes(&handover));
    ch.send(&PairMessage::Sealed(sealed)).await?;
    tracing::info!("device {} ({}) joined", offer.device.short(), offer.name);
    Ok(())
}

fn open<T: serde::de::DeserializeOwned>(
    key: &PairingKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<T, ApiError> {
    let plain = key
        .channel_key()
        .open(aad, sealed)
        .map_err(|e| pairing(format!("sealed pairing message: {e}")))?;
    codec::from_bytes(&plain).map_err(|e| pairing(format!("sealed pairing message: {e}")))
}

/// On the new device: joins the person whose device shows `code`. This daemon must not
/// hold spaces yet (it becomes another device of that person).
pub async fn join(daemon: Arc<Daemon>, code: &str, device_name: &str) -> Result<(), ApiError> {
    let code = PairingCode::parse(code)
        .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e.to_string()))?;
    if !daemon.state().spaces.is_empty() {
        return Err(ApiError::new(
            ApiErrorCode::BadRequest,
            "this daemon already holds spaces; pair a fresh daemon",
        ));
    }
    let mut ch = Channel::open(daemon.clone(), &code).await?;
    let (ex, msg) = PairingExchange::start(&code, &mut OsRng);
    ch.send(&PairMessage::Spake(msg)).await?;
    let PairMessage::Spake(peer) = ch.recv(STEP_TIMEOUT).await? else {
        return Err(ch.abort(pairing("expected the SPAKE2 message")).await);
    };
    let key = match ex.finish(&peer) {
        Ok(k) => k,
        Err(e) => return Err(ch.abort(pairing(e.to_string())).await),
    };
    match ch.recv(STEP_TIMEOUT).await? {
        PairMessage::Confirm {
            role: PairingRole::Existing,
            mac,
        } if key.check(PairingRole::Existing, &mac).is_ok() => {}
        _ => return Err(ch.abort(confirm_failed()).await),
    }
    ch.send(&PairMessage::Confirm {
        role: PairingRole::Joining,
        mac: key.confirmation(PairingRole::Joining),
    })
    .await?;
    let offer = {
        DeviceOffer {
            device: daemon.identity().device.device_id(),
            recipient: daemon.identity().device.age.recipient(),
            name: device_name.to_string(),
        }
    };
    ch.send(&PairMessage::Sealed(key.channel_key().seal(
        &mut OsRng,
        OFFER_AAD,
        &codec::to_bytes(&offer),
    )))
    .await?;
    let PairMessage::Sealed(sealed) = ch.recv(STEP_TIMEOUT).await? else {
        return Err(pairing("expected the principal handover"));
    };
    let handover: PrincipalHandover = open(&key, HANDOVER_AAD, &sealed)?;
    let principal = handover
        .principal
        .import()
        .map_err(|e| pairing(format!("handover keys: {e}")))?;
    let cert = handover.cert;
    if cert.verify().is_err()
        || cert.body.principal != principal.principal_id()
        || cert.body.device != offer.device
    {
        return Err(pairing(
            "the certificate handed over does not match this device and principal",
        ));
    }
    {
        let device = mes_protocol::crypto::keys::KeyPair {
            signing: mes_protocol::crypto::keys::SigningSecret::from_bytes(
                &daemon.identity().device.signing.to_bytes(),
            ),
            age: mes_protocol::crypto::keys::AgeSecret::parse(
                &daemon.identity().device.age.to_secret_string(),
            )
            .map_err(|e| pairing(e.to_string()))?,
        };
        let identity = Identity {
            principal,
            device,
            cert,
        };
        let mut batch = daemon.store.batch();
        identity.save(&mut batch);
        daemon
            .store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        daemon.devices.replace_identity(identity);
    }
    daemon
        .store
        .flush()
        .await
        .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
    drop(ch);
    daemon.link.reconnect.notify_one();
    Ok(())
}
