//! The relay's TLS identity: a self-signed certificate kept in the data directory (so its
//! fingerprint survives restarts) and pinned by daemons; or a CA-signed one given by path.
//! A rotation ([`rotate`], `mes-relay cert rotate`) makes a new certificate and a
//! handover signed by the relay's key (`mes_protocol::crypto::cert_handover`); every
//! handover kept in `relay-cert-handovers` rides in the TLS chain after the leaf, so
//! pinned devices move to the new certificate by themselves.

use crate::private_files::{invalid, read_key, KeyFileError};
use mes_protocol::crypto::cert_handover::{to_chain_entry, CertHandover};
use mes_protocol::crypto::signed::Signed;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Certificate chain and key.
pub struct TlsIdentity {
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// SHA-256 of the leaf certificate, lowercase hex: what daemons pin.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

/// SHA-256 fingerprint of a certificate, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// Loads `relay-cert.der`/`relay-key.der` from `dir`, creating a self-signed pair for
/// `names` on first start (key file mode 0600).
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsIdentity, KeyFileError> {
    let cert_path = dir.join("relay-cert.der");
    let key_path = dir.join("relay-key.der");
    if cert_path.exists() && key_path.exists() {
        let cert = read_key(&cert_path)?;
        let key = read_key(&key_path)?;
        let mut chain = vec![CertificateDer::from(cert)];
        chain.extend(
            handovers(dir)?
                .iter()
                .map(|h| CertificateDer::from(to_chain_entry(h))),
        );
        return Ok(TlsIdentity {
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        });
    }
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| invalid(&cert_path, format!("generating the relay certificate: {e}")))?;
    let cert = certified.cert.der().to_vec();
    let key = certified.key_pair.serialize_der();
    crate::private_files::write_key(&key_path, &key)?;
    crate::private_files::write(&cert_path, &cert)?;
    Ok(TlsIdentity {
        chain: vec![CertificateDer::from(cert)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    })
}

/// The handovers kept in `dir` (`relay-cert-handovers`), oldest first.
pub fn handovers(dir: &Path) -> Result<Vec<Signed<CertHandover>>, KeyFileError> {
    let path = dir.join(HANDOVERS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    mes_protocol::wire::codec::from_bytes(&read_key(&path)?)
        .map_err(|e| invalid(&path, format!("not a list of certificate handovers: {e}")))
}

/// Where the handovers are kept.
const HANDOVERS: &str = "relay-cert-handovers";

/// What a rotation did: the fingerprints before and after.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    /// What devices pinned.
    pub old: String,
    /// What they pin once they connect again.
    pub new: String,
    /// Where the old certificate and key were kept (to roll back by hand).
    pub kept: String,
}

/// Replaces the self-signed certificate of `dir` with a new one for `names` and appends
/// the handover from the old, signed by `signing` (the relay's key), to the handovers
/// the relay serves. The old pair is kept beside, renamed with its fingerprint's start.
/// Serving instances take it at their next start.
pub fn rotate(
    dir: &Path,
    names: &[String],
    signing: &mes_protocol::crypto::keys::SigningSecret,
    now: mes_protocol::time::UnixMillis,
) -> Result<Rotation, KeyFileError> {
    let cert_path = dir.join("relay-cert.der");
    let key_path = dir.join("relay-key.der");
    if !(cert_path.exists() && key_path.exists()) {
        return Err(invalid(
            &cert_path,
            "no certificate to rotate (the relay makes one at its first start)",
        ));
    }
    let old = fingerprint(&CertificateDer::from(read_key(&cert_path)?));
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| invalid(&cert_path, format!("generating the relay certificate: {e}")))?;
    let new = fingerprint(certified.cert.der());
    let mut all = handovers(dir)?;
    all.push(Signed::sign(
        CertHandover {
            old: old.clone(),
            new: new.clone(),
            at: now,
        },
        signing,
    ));
    let kept = format!("relay-cert.{}.old.der", &old[..16]);
    let rename = |from: &Path, to: &str| {
        std::fs::rename(from, dir.join(to)).map_err(|e| invalid(from, format!("keeping it: {e}")))
    };
    crate::private_files::write(
        &dir.join(HANDOVERS),
        &mes_protocol::wire::codec::to_bytes(&all),
    )?;
    rename(&cert_path, &kept)?;
    rename(&key_path, &format!("relay-key.{}.old.der", &old[..16]))?;
    crate::private_files::write_key(&key_path, &certified.key_pair.serialize_der())?;
    crate::private_files::write(&cert_path, certified.cert.der())?;
    Ok(Rotation { old, new, kept })
}

/// A TLS or QUIC setting the relay cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// The QUIC server configuration: TLS 1.3, ring only, our ALPN, idle timeout.
pub fn server_config(id: TlsIdentity) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(format!("TLS 1.3: {e}")))?
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)
        .map_err(|e| TlsError(format!("installing the relay certificate: {e}")))?;
    tls.alpn_protocols = vec![mes_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError(format!("QUIC over TLS: {e}")))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(crate::defaults::IDLE_TIMEOUT.try_into().map_err(
        |e: quinn::VarIntBoundsExceeded| TlsError(format!("idle timeout: {e}")),
    )?));
    // The relay opens the one stream a connection uses; a device opens none, so a
    // stream it opens would only hold the relay's memory unread (issue 22 finding 5).
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_concurrent_bidi_streams(0u32.into());
    // What one connection may make the relay hold: unread bytes from the device, and
    // bytes sent but not yet acknowledged by it.
    transport.stream_receive_window(crate::defaults::RECEIVE_WINDOW.into());
    transport.receive_window(crate::defaults::RECEIVE_WINDOW.into());
    transport.send_window(crate::defaults::SEND_WINDOW as u64);
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}
