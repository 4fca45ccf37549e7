//! The relay's TLS identity: a self-signed certificate kept in the data directory (so its
//! fingerprint survives restarts) and pinned by daemons; or a CA-signed one given by path.

use crate::private_files::{invalid, read_key, KeyFileError};
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
        return Ok(TlsIdentity {
            chain: vec![CertificateDer::from(cert)],
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
