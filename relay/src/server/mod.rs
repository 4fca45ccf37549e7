//! The QUIC server: binds, accepts connections (one task each), and shuts down gracefully
//! (stop accepting, close connections, wait for the endpoint to drain).

pub mod byte_budget;
pub mod peer_caps;
pub mod read_rate;
pub mod session;
pub mod tls;

use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;

use crate::handler::{Misbehaviour, Relay};
use crate::store::postgres_store::PgStore;
use crate::store::sled_store::SledStore;
use crate::store::Store;

/// How to start a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Data directory (store, certificate).
    pub data_dir: PathBuf,
    /// UDP address to listen on (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// Names in the self-signed certificate.
    pub tls_names: Vec<String>,
    /// Deliberate faults, for tests' controls only.
    pub misbehaviour: Misbehaviour,
    /// The deployment's policies.
    pub policy: crate::handler::HubPolicy,
    /// Enrolment deadlines (F1).
    pub enrolment: crate::enrolment::Policy,
    /// How often to run the enrolment sweep while serving (none: never).
    pub sweep_every: Option<std::time::Duration>,
    /// Local HTTP address for `/health` and `/metrics` (none: not served).
    pub metrics: Option<SocketAddr>,
    /// Where the relay's state lives.
    pub backend: Backend,
    /// Where document blobs live.
    pub blobs: Blobs,
    /// Connections one network address may hold at once; more are refused before the
    /// handshake (issue 22 finding 5).
    pub max_connections_per_address: usize,
    /// What one connection may send, sustained and at once (none: unlimited).
    pub read_rate: Option<crate::server::read_rate::Rate>,
    /// New connections one address may open, per second and at once (none: unlimited).
    pub arrival_rate: Option<crate::server::read_rate::Rate>,
}

/// Where document blobs live, chosen at start-up (docs/operator-guide.md).
#[derive(Clone, Debug, Default)]
pub enum Blobs {
    /// In the backend's store, with everything else.
    #[default]
    InStore,
    /// In an S3-compatible object store (SeaweedFS, MinIO, Garage, AWS S3...).
    ObjectStore(crate::store::object_blobs::S3Options),
}

/// The storage backend, chosen at start-up (docs/operator-guide.md).
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// The embedded sled store in the data directory (one machine).
    #[default]
    Sled,
    /// A PostgreSQL database shared by several relay instances.
    Postgres(crate::store::postgres_store::PgOptions),
}

/// Opens the backend's store and the enrolment tables, both on the same backend.
async fn open_store(
    backend: &Backend,
    blobs: &Blobs,
    data_dir: &std::path::Path,
) -> Result<(Arc<dyn Store>, crate::enrolment::store::EnrolmentTables), StartError> {
    let (store, tables) = open_backend(backend, data_dir).await?;
    match blobs {
        Blobs::InStore => Ok((store, tables)),
        Blobs::ObjectStore(options) => {
            let objects = options.connect()?;
            let store = crate::store::object_blobs::ObjectBlobs::new(store, objects);
            Ok((Arc::new(store), tables))
        }
    }
}

async fn open_backend(
    backend: &Backend,
    data_dir: &std::path::Path,
) -> Result<(Arc<dyn Store>, crate::enrolment::store::EnrolmentTables), StartError> {
    match backend {
        Backend::Sled => {
            let store = SledStore::open(data_dir).map_err(|source| StartError::Store {
                what: "opening the relay store (is a relay serving this directory? stop it first)",
                source,
            })?;
            let tables = store.enrolment_tables()?;
            Ok((Arc::new(store), tables))
        }
        Backend::Postgres(options) => {
            let store =
                PgStore::open(options.clone())
                    .await
                    .map_err(|source| StartError::Store {
                        what: "opening the PostgreSQL store",
                        source,
                    })?;
            let options = options.clone();
            let tables = tokio::task::spawn_blocking(move || {
                crate::enrolment::tables::pg_tables::PgTables::open_with(&options)
            })
            .await
            .map_err(|e| StartError::Io {
                what: format!("opening the enrolment tables on PostgreSQL: {e}"),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| StartError::Store {
                what: "opening the enrolment tables on PostgreSQL",
                source,
            })?;
            Ok((
                Arc::new(store),
                crate::enrolment::store::EnrolmentTables::on(tables),
            ))
        }
    }
}

/// Why a relay does not start or open; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A store failed to open or answer.
    #[error("{what}: {source}")]
    Store {
        /// What was being opened.
        what: &'static str,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The store failed while the relay loaded its state.
    #[error(transparent)]
    Loading(#[from] crate::store::StoreError),
    /// A private file or folder could not be made.
    #[error(transparent)]
    File(#[from] crate::private_files::PrivateFileError),
    /// A key file cannot be used.
    #[error(transparent)]
    Key(#[from] crate::private_files::KeyFileError),
    /// The TLS or QUIC settings.
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsError),
    /// A socket or a task.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

impl RelayConfig {
    /// Defaults for a data directory, on loopback with a free port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RelayConfig {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:0".parse().expect("valid address"),
            tls_names: vec!["localhost".into(), "mes-relay".into()],
            misbehaviour: Misbehaviour::default(),
            policy: Default::default(),
            enrolment: Default::default(),
            sweep_every: None,
            metrics: None,
            backend: Backend::Sled,
            blobs: Blobs::InStore,
            max_connections_per_address: crate::defaults::MAX_CONNECTIONS_PER_ADDRESS,
            read_rate: Some(crate::defaults::READ_RATE),
            arrival_rate: Some(crate::defaults::ARRIVAL_RATE),
        }
    }
}

/// The hub's enrolment over the store's tables, with the code key of the data directory
/// (`enrolment-code.key`, created on first use, mode 0600).
fn enrolment_hub(
    tables: crate::enrolment::store::EnrolmentTables,
    data_dir: &std::path::Path,
    policy: crate::enrolment::Policy,
) -> Result<crate::enrolment::service::EnrolmentHub, StartError> {
    let path = data_dir.join("enrolment-code.key");
    let code_key = crate::private_files::key32(&path)?;
    Ok(crate::enrolment::service::EnrolmentHub::new(
        tables,
        policy,
        crate::enrolment::service::Secrets {
            code_key,
            argon: argon2::Params::default(),
        },
    ))
}

/// The ready line a relay prints once serving.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RelayReady {
    /// Always true.
    pub ready: bool,
    /// Listening address.
    pub address: SocketAddr,
    /// SHA-256 fingerprint of the certificate, to pin.
    pub fingerprint: String,
    /// The relay's signing key (directory, access history), hex.
    pub signing_key: String,
    /// Where `/health` and `/metrics` are served, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
}

/// A running relay.
pub struct RunningRelay {
    /// Where it listens and what to pin.
    pub ready: RelayReady,
    endpoint: quinn::Endpoint,
    accept: JoinHandle<()>,
    sweeper: Option<JoinHandle<()>>,
    metrics: Option<JoinHandle<()>>,
    /// Shared state (tests inspect it).
    pub relay: Arc<Relay>,
}

/// Opens the relay's state in a data directory without serving (operator commands).
pub async fn open_offline(data_dir: &std::path::Path) -> Result<Arc<Relay>, StartError> {
    open_offline_with(data_dir, Default::default()).await
}

/// Opens the relay's state offline with the deployment's enrolment deadlines.
pub async fn open_offline_with(
    data_dir: &std::path::Path,
    enrolment: crate::enrolment::Policy,
) -> Result<Arc<Relay>, StartError> {
    open_offline_on(data_dir, enrolment, &Backend::Sled).await
}

/// Opens the relay's state on a backend, for an operator command. On PostgreSQL the
/// instances serving the same database stay up: what the command writes to cached
/// records (catalogue, memberships, closures) reaches them through `NOTIFY`.
pub async fn open_offline_on(
    data_dir: &std::path::Path,
    enrolment: crate::enrolment::Policy,
    backend: &Backend,
) -> Result<Arc<Relay>, StartError> {
    crate::private_files::create_dir(data_dir)?;
    let (store, tables) = open_backend(backend, data_dir).await?;
    let key = crate::signing::load_or_create(data_dir)?;
    let escrow = crate::escrow::Escrow::load_or_create(data_dir)?;
    let hub = enrolment_hub(tables, data_dir, enrolment)?;
    let relay = Relay::new(
        store,
        crate::handler::RelayKeys {
            signing: key,
            escrow,
        },
        Default::default(),
        Default::default(),
    )
    .await?;
    let _ = relay.enrolment.set(Arc::new(hub));
    Ok(relay)
}

/// Starts a relay on the configured backend.
pub async fn start(config: RelayConfig) -> Result<RunningRelay, StartError> {
    crate::private_files::create_dir(&config.data_dir)?;
    crate::store::watch_stores();
    let (store, tables) = open_store(&config.backend, &config.blobs, &config.data_dir).await?;
    let key = crate::signing::load_or_create(&config.data_dir)?;
    let escrow = crate::escrow::Escrow::load_or_create(&config.data_dir)?;
    let hub = Arc::new(enrolment_hub(
        tables,
        &config.data_dir,
        config.enrolment.clone(),
    )?);
    let relay = Relay::new(
        store,
        crate::handler::RelayKeys {
            signing: key,
            escrow,
        },
        config.policy,
        config.misbehaviour.clone(),
    )
    .await?;
    let _ = relay.enrolment.set(hub.clone());
    // The enrolment gauges need a scan: once at start, then after each sweep.
    let r = relay.clone();
    let sweeper = Some(tokio::spawn(async move {
        let mut tick = config.sweep_every.map(tokio::time::interval);
        loop {
            let sweep = match &mut tick {
                Some(t) => {
                    t.tick().await;
                    true
                }
                None => false,
            };
            let (h, r2) = (hub.clone(), r.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let report = sweep
                    .then(|| {
                        crate::enrolment::service::sweep(
                            &h.tables,
                            &h.policy,
                            r2.clock.now(),
                            |_| {},
                        )
                    })
                    .transpose()?;
                r2.metrics
                    .set_enrolment(&crate::enrolment::service::stats(&h.tables)?);
                Ok::<_, crate::store::StoreError>(report)
            })
            .await;
            if sweep {
                match r.sweep_uploads(r.clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("swept {n} uploads left unfinished for a day"),
                    Err(e) => tracing::warn!("the sweep of unfinished uploads failed: {e}"),
                }
                // Closed spaces whose archive or express delay ended (F1.6).
                if let Err(e) = r.erase_due(r.clock.now()).await {
                    tracing::warn!("erasing closed spaces failed (the next sweep resumes): {e}");
                }
            }
            match outcome {
                Ok(Ok(Some(report))) => {
                    r.metrics.sweeps.inc();
                    tracing::info!(?report, "enrolment sweep");
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!("enrolment sweep or statistics failed: {e}"),
                Err(e) => tracing::warn!("enrolment sweep panicked: {e}"),
            }
            if tick.is_none() {
                return;
            }
        }
    }));
    let (metrics_address, metrics) = match config.metrics {
        Some(a) => {
            let (bound, task) =
                crate::metrics::serve(relay.clone(), a)
                    .await
                    .map_err(|source| StartError::Io {
                        what: "the metrics port".into(),
                        source,
                    })?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    let id = crate::server::tls::load_or_create(&config.data_dir, &config.tls_names)?;
    let fingerprint: Arc<str> = id.fingerprint().into();
    let endpoint = quinn::Endpoint::server(crate::server::tls::server_config(id)?, config.listen)
        .map_err(|source| StartError::Io {
        what: format!("binding UDP {}", config.listen),
        source,
    })?;
    let address = endpoint.local_addr().map_err(|source| StartError::Io {
        what: "reading the bound address".into(),
        source,
    })?;
    let ready = RelayReady {
        ready: true,
        address,
        fingerprint: fingerprint.to_string(),
        signing_key: relay.public_key().to_string(),
        metrics: metrics_address,
    };
    let ep = endpoint.clone();
    let r = relay.clone();
    let per_address = Arc::new(crate::server::peer_caps::PerAddress::new(
        config.max_connections_per_address,
        config.arrival_rate,
    ));
    let read_rate = config.read_rate;
    let accept = tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let Some(slot) = per_address.take(incoming.remote_address().ip()) else {
                r.metrics.refused_connections.inc();
                incoming.refuse();
                continue;
            };
            let r = r.clone();
            let fp = fingerprint.clone();
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    crate::server::session::serve_connection(r, conn, fp, read_rate).await;
                }
                drop(slot);
            });
        }
    });
    Ok(RunningRelay {
        ready,
        endpoint,
        accept,
        sweeper,
        metrics,
        relay,
    })
}

impl RunningRelay {
    /// Stops accepting, closes every connection and waits for the endpoint to drain.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"relay shutting down");
        self.accept.abort();
        for task in [self.sweeper, self.metrics].into_iter().flatten() {
            task.abort();
        }
        let _ =
            tokio::time::timeout(crate::defaults::DRAIN_TIMEOUT, self.endpoint.wait_idle()).await;
        // The store is closed apart (`close_later`): wait for it, so the data directory is
        // free when this returns.
        let _ = self.accept.await;
        mes_protocol::close_later::release_and_wait(self.relay, crate::defaults::DRAIN_TIMEOUT)
            .await;
    }
}
