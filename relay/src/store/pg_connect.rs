//! Connections to PostgreSQL for the relay's store and the enrolment tables (issue 27,
//! item 1): a pool (deadpool-postgres) that drops a broken connection and opens a new one
//! at the next request, so the hub survives a database restart by itself; TLS by rustls,
//! negotiated as the URL's `sslmode` says (`disable`, `prefer`, `require`) and checked
//! against a CA file or the system's roots; the LISTEN connection opened the same way.
//!
//! While the database is away every request fails fast with an `Unavailable` error,
//! which devices read as "try again" ([`StoreError::retryable`]).

use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a request waits for a connection, and a new connection for the server.
const WAIT: Duration = Duration::from_secs(5);

/// Where the database is and how to reach it.
#[derive(Clone, Debug)]
pub struct PgTarget {
    /// Connection string, e.g. `postgres://mes@db.internal/mes?sslmode=require`.
    pub url: String,
    /// PEM certificates the server's certificate must chain to (none: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Replace connections the server closed (always, but in the outage test's control).
    pub reconnect: bool,
}

impl PgTarget {
    /// A target with the system's roots, reconnecting.
    pub fn new(url: impl Into<String>) -> Self {
        PgTarget {
            url: url.into(),
            ca_file: None,
            reconnect: true,
        }
    }

    fn config(&self) -> Result<tokio_postgres::Config, StoreError> {
        self.url
            .parse()
            .map_err(|e| StoreError::backend(format!("the PostgreSQL URL: {e}")))
    }
}

/// The TLS connector: rustls with `ca_file`'s certificates, or the system's roots.
pub fn tls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                StoreError::backend(format!("PostgreSQL CA file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is skipped, as every client does.
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::backend(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What to run on each new connection (the store records its server process id).
pub type OnConnect = Arc<
    dyn Fn(&tokio_postgres::Client) -> super::BoxFuture<'_, Result<(), StoreError>> + Send + Sync,
>;

/// A pool of at most `size` connections.
pub fn pool(
    target: &PgTarget,
    size: usize,
    on_connect: Option<OnConnect>,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        target.config()?,
        tls(target.ca_file.as_deref())?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let created = Arc::new(AtomicUsize::new(0));
    let reconnect = target.reconnect;
    let hook = deadpool_postgres::Hook::async_fn(move |client, _| {
        let on_connect = on_connect.clone();
        let created = created.clone();
        Box::pin(async move {
            // The control of the outage test: the first connections only, never again.
            if !reconnect && created.fetch_add(1, Ordering::Relaxed) >= size {
                return Err(deadpool_postgres::HookError::message(
                    "reconnection is turned off",
                ));
            }
            if let Some(f) = &on_connect {
                f(client)
                    .await
                    .map_err(|e| deadpool_postgres::HookError::message(e.message))?;
            }
            Ok(())
        })
    });
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .recycle_timeout(Some(WAIT))
        .post_create(hook)
        .build()
        .map_err(|e| StoreError::backend(format!("PostgreSQL pool: {e}")))
}

/// A connection from the pool; a database that cannot be reached is `Unavailable`.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
        other => StoreError::unavailable(format!("PostgreSQL: {other}")),
    })
}

/// The connection type of [`connect`].
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// One connection outside the pool (the LISTEN connection, which must stay the same).
pub async fn connect(
    target: &PgTarget,
) -> Result<(tokio_postgres::Client, Connection), StoreError> {
    Ok(target
        .config()?
        .connect(tls(target.ca_file.as_deref())?)
        .await?)
}
