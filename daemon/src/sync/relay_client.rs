//! The daemon's QUIC connection to the relay: the relay certificate pinned by SHA-256
//! fingerprint, challenge-response authentication with the device key, then requests
//! multiplexed by id on one stream, with pushes delivered on a channel.

use mes_protocol::crypto::keys::{DeviceCert, SigningSecret, CHALLENGE_CONTEXT};
use mes_protocol::wire::codec::MAX_WIRE_FRAME;
use mes_protocol::wire::framing::{read_frame, write_frame};
use mes_protocol::wire::{ClientFrame, Push, RelayFrame, Reply, Request, WireError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where the relay is and which certificate to accept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayTarget {
    /// UDP address.
    pub address: SocketAddr,
    /// SHA-256 fingerprint of its certificate, lowercase hex.
    pub fingerprint: String,
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The relay refused it.
    #[error("relay refused: {0}")]
    Refused(WireError),
    /// The connection is gone, or no authenticated connection could be set up (socket,
    /// TLS, QUIC or handshake: the message says which).
    #[error("relay connection lost: {0}")]
    Closed(String),
}

fn connect_error(what: &str) -> impl FnOnce(String) -> ClientError + '_ {
    move |e| ClientError::Closed(format!("cannot connect, {what}: {e}"))
}

/// Interval of QUIC keep-alives (the relay drops connections idle for 30 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply, WireError>>>>>;

/// An authenticated connection.
pub struct RelayClient {
    conn: quinn::Connection,
    send: tokio::sync::Mutex<quinn::SendStream>,
    waiters: Waiters,
    next_id: AtomicU64,
    closed: Arc<Mutex<Option<String>>>,
    /// The relay's signing key, from `Welcome` (authentic: the connection is pinned).
    pub relay_key: mes_protocol::ids::PrincipalId,
    /// The fingerprint of the certificate this connection verified: the pinned one, or
    /// the one a handover led to (`mes_protocol::crypto::cert_handover`).
    pub fingerprint: String,
}

/// What a device pinned beyond the configured fingerprint (kept in its store by the sync
/// loop): the relay's key learned over a pinned connection, and the certificate it was
/// last handed over to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayPin {
    /// The relay's signing key.
    pub relay_key: mes_protocol::ids::PrincipalId,
    /// The fingerprint last verified.
    pub current: String,
}

/// Accepts the pinned certificate, or one that handovers signed by the pinned relay key
/// lead to (sent as extra entries of the chain); records which it accepted.
#[derive(Debug)]
struct PinnedFingerprint {
    pinned: String,
    follow: Option<mes_protocol::ids::PrincipalId>,
    accepted: Arc<Mutex<Option<String>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedFingerprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use mes_protocol::crypto::cert_handover::{follows, from_chain_entry};
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(end_entity.as_ref()));
        let handovers: Vec<_> = intermediates
            .iter()
            .filter_map(|c| from_chain_entry(c.as_ref()))
            .collect();
        let handed_over = self
            .follow
            .is_some_and(|key| follows(&self.pinned, &got, &key, &handovers));
        if got == self.pinned || handed_over {
            *self.accepted.lock().expect("accepted lock") = Some(got);
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "relay certificate fingerprint {got} is not the pinned {}{}",
                self.pinned,
                if handovers.is_empty() {
                    ""
                } else {
                    " and no handover signed by the relay's pinned key leads to it"
                }
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client endpoint on an ephemeral port of the right address family.
pub fn endpoint(for_target: SocketAddr) -> Result<quinn::Endpoint, ClientError> {
    let bind = if for_target.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    quinn::Endpoint::client(bind).map_err(|e| connect_error("binding a UDP socket")(e.to_string()))
}

/// The QUIC client configuration: TLS 1.3 with the relay's certificate pinned, our ALPN,
/// keep-alives.
pub fn client_config(fingerprint: &str) -> Result<quinn::ClientConfig, ClientError> {
    client_config_following(fingerprint, None, Arc::default())
}

/// [`client_config`] that also accepts a certificate handed over from the pinned one by
/// `follow` (the relay's pinned key), recording the fingerprint it accepted in `accepted`.
fn client_config_following(
    fingerprint: &str,
    follow: Option<mes_protocol::ids::PrincipalId>,
    accepted: Arc<Mutex<Option<String>>>,
) -> Result<quinn::ClientConfig, ClientError> {
    let tls_error =
        |e: String| ClientError::Closed(format!("cannot connect, TLS configuration: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedFingerprint {
            pinned: fingerprint.to_ascii_lowercase(),
            follow,
            accepted,
            provider,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![mes_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| tls_error(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(
        Duration::from_secs(30)
            .try_into()
            .map_err(|e: quinn::VarIntBoundsExceeded| tls_error(e.to_string()))?,
    ));
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// The bytes a device signs to answer a challenge (must match the relay's).
pub fn challenge_message(nonce: &[u8; 32], fingerprint: &str) -> Vec<u8> {
    [nonce.as_slice(), fingerprint.as_bytes()].concat()
}

impl RelayClient {
    /// Connects, checks the pinned certificate, and authenticates the device.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        target: &RelayTarget,
        cert: &DeviceCert,
        device_key: &SigningSecret,
    ) -> Result<(RelayClient, mpsc::UnboundedReceiver<Push>), ClientError> {
        Self::connect_vouched(endpoint, target, cert, device_key, None).await
    }

    /// Connects as [`RelayClient::connect`], with a recovery kit's word for a restored
    /// device not yet on its person's list (issue 22, finding 3).
    pub async fn connect_vouched(
        endpoint: &quinn::Endpoint,
        target: &RelayTarget,
        cert: &DeviceCert,
        device_key: &SigningSecret,
        vouch: Option<mes_protocol::crypto::recovery::AdmissionVouch>,
    ) -> Result<(RelayClient, mpsc::UnboundedReceiver<Push>), ClientError> {
        Self::connect_pinned(endpoint, target, None, cert, device_key, vouch).await
    }

    /// Connects as [`RelayClient::connect_vouched`], starting from `pin` when the device
    /// has one for this target: its last certificate, and handovers signed by its relay
    /// key followed (issue 27, item 7). The connection's `fingerprint` says which
    /// certificate was accepted; a relay answering with another key is refused.
    pub async fn connect_pinned(
        endpoint: &quinn::Endpoint,
        target: &RelayTarget,
        pin: Option<&RelayPin>,
        cert: &DeviceCert,
        device_key: &SigningSecret,
        vouch: Option<mes_protocol::crypto::recovery::AdmissionVouch>,
    ) -> Result<(RelayClient, mpsc::UnboundedReceiver<Push>), ClientError> {
        let handshake = |e: String| ClientError::Closed(format!("cannot connect, handshake: {e}"));
        let accepted: Arc<Mutex<Option<String>>> = Arc::default();
        let pinned = pin.map_or(target.fingerprint.as_str(), |p| p.current.as_str());
        let conn = endpoint
            .connect_with(
                client_config_following(pinned, pin.map(|p| p.relay_key), accepted.clone())?,
                target.address,
                "mes-relay",
            )
            .map_err(|e| connect_error("QUIC")(e.to_string()))?
            .await
            .map_err(|e| connect_error("QUIC")(e.to_string()))?;
        let (mut send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| handshake(e.to_string()))?;
        let nonce = match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME)
            .await
            .map_err(|e| handshake(e.to_string()))?
        {
            Some(RelayFrame::Challenge { nonce, .. }) => nonce,
            other => {
                return Err(handshake(format!(
                    "expected a challenge from the relay, got {other:?}"
                )))
            }
        };
        let fingerprint = accepted
            .lock()
            .expect("accepted lock")
            .clone()
            .unwrap_or_else(|| target.fingerprint.to_ascii_lowercase());
        let signature =
            device_key.sign(CHALLENGE_CONTEXT, &challenge_message(&nonce, &fingerprint));
        write_frame(
            &mut send,
            &ClientFrame::Hello {
                cert: cert.clone(),
                signature,
                vouch,
            },
        )
        .await
        .map_err(|e| handshake(e.to_string()))?;
        let relay_key = match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME)
            .await
            .map_err(|e| handshake(e.to_string()))?
        {
            Some(RelayFrame::Welcome { relay_key, .. })
                if pin.is_none_or(|p| p.relay_key == relay_key) =>
            {
                relay_key
            }
            Some(RelayFrame::Welcome { relay_key, .. }) => {
                return Err(handshake(format!(
                    "the relay answers with key {}, not the pinned one",
                    relay_key.short()
                )))
            }
            Some(RelayFrame::Fatal(e)) => return Err(ClientError::Refused(e)),
            other => {
                return Err(handshake(format!(
                    "expected a welcome from the relay, got {other:?}"
                )))
            }
        };
        let waiters: Waiters = Arc::default();
        let closed: Arc<Mutex<Option<String>>> = Arc::default();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(recv, waiters.clone(), closed.clone(), push_tx));
        Ok((
            RelayClient {
                conn,
                send: tokio::sync::Mutex::new(send),
                waiters,
                next_id: AtomicU64::new(1),
                closed,
                relay_key,
                fingerprint,
            },
            push_rx,
        ))
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, body: Request) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters lock").insert(id, tx);
        {
            let mut send = self.send.lock().await;
            if let Err(e) = write_frame(&mut *send, &ClientFrame::Request { id, body }).await {
                self.waiters.lock().expect("waiters lock").remove(&id);
                return Err(ClientError::Closed(e.to_string()));
            }
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ClientError::Refused(e)),
            Err(_) => Err(ClientError::Closed(
                self.closed
                    .lock()
                    .expect("closed lock")
                    .clone()
                    .unwrap_or_else(|| "connection closed".into()),
            )),
        }
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        self.conn.closed().await;
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"bye");
    }
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    waiters: Waiters,
    closed: Arc<Mutex<Option<String>>>,
    pushes: mpsc::UnboundedSender<Push>,
) {
    let reason = loop {
        match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await {
            Ok(Some(RelayFrame::Response { id, result })) => {
                if let Some(tx) = waiters.lock().expect("waiters lock").remove(&id) {
                    let _ = tx.send(result);
                }
            }
            Ok(Some(RelayFrame::Push(p))) => {
                let _ = pushes.send(p);
            }
            Ok(Some(RelayFrame::Fatal(e))) => break format!("relay closed the connection: {e}"),
            Ok(Some(other)) => break format!("unexpected frame from the relay: {other:?}"),
            Ok(None) => break "relay closed the stream".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    *closed.lock().expect("closed lock") = Some(reason);
    waiters.lock().expect("waiters lock").clear();
}
