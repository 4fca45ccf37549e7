//! Starting and stopping a daemon: unlock, open the store, serve the local API, run the
//! sync engine. Used by `mesd`, by `mes demo`, and by tests that embed daemons.

use mes_protocol::crypto::seal::CipherSuite;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::daemon::Daemon;
use crate::devices::unlock::{storage_key, Unlock};
use crate::replica::store::SealedStore;
use crate::sync::relay_client::RelayTarget;

/// How to start a daemon.
pub struct DaemonConfig {
    /// Data directory (created 0700).
    pub data_dir: PathBuf,
    /// The local API's socket (none: `mesd.sock` in the data directory); its directory
    /// is created 0700 when missing.
    pub socket: Option<PathBuf>,
    /// How to unlock the storage key.
    pub unlock: Unlock,
    /// The relay, if any (without one the daemon works offline only).
    pub relay: Option<RelayTarget>,
    /// This device's name.
    pub name: String,
    /// Null cipher: only for the confidentiality tests' control. Bundles and the local
    /// store are then in clear.
    pub null_cipher: bool,
    /// Largest document file accepted, in bytes.
    pub max_document_bytes: u64,
}

/// The ready line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaemonReady {
    /// Always true.
    pub ready: bool,
    /// Local API socket.
    pub socket: PathBuf,
    /// This device.
    pub device: String,
    /// Its principal.
    pub principal: String,
}

/// A running daemon.
pub struct RunningDaemon {
    /// What the ready line says.
    pub ready: DaemonReady,
    /// The daemon (tests drive it directly too).
    pub daemon: Arc<Daemon>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a daemon does not start; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or the socket could not be set up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The storage key does not unlock.
    #[error(transparent)]
    Unlock(#[from] crate::devices::unlock::UnlockError),
    /// The replica's store does not open.
    #[error("opening the replica: {0}")]
    Store(#[from] crate::replica::store::StoreError),
}

/// Starts a daemon.
pub async fn start(config: DaemonConfig) -> Result<RunningDaemon, StartError> {
    let io = |what, path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| StartError::Io { what, path, source }
    };
    std::fs::create_dir_all(&config.data_dir).map_err(io("creating", &config.data_dir))?;
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("restricting", &config.data_dir))?;
    let key = storage_key(&config.data_dir, &config.unlock)?;
    let store = if config.null_cipher {
        SealedStore::open_clear(&config.data_dir.join("replica.sled"))?
    } else {
        SealedStore::open(&config.data_dir.join("replica.sled"), &key)?
    };
    let suite = if config.null_cipher {
        CipherSuite::Null
    } else {
        CipherSuite::XChaCha20Poly1305
    };
    let label = config
        .relay
        .as_ref()
        .map(|r| r.address.to_string())
        .unwrap_or_else(|| "none (offline only)".into());
    let files = crate::replica::blobs::Files {
        blob_dir: config.data_dir.join("blobs"),
        max_document_bytes: config.max_document_bytes,
    };
    crate::replica::store::watch_stores();
    let removed = files.remove_leftovers();
    if removed > 0 {
        tracing::info!("removed {removed} temporary file(s) a crash left in the blob cache");
    }
    let daemon = Daemon::open(store, &config.name, suite, label, files)?;
    daemon.link.set_target(config.relay.clone());
    let socket = config
        .socket
        .clone()
        .unwrap_or_else(|| config.data_dir.join("mesd.sock"));
    if let Some(dir) = socket.parent().filter(|d| !d.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
    }
    let listener = crate::api_server::bind(&socket).map_err(io("binding", &socket))?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(crate::api_server::serve(
        daemon.clone(),
        listener,
        stopped.clone(),
    ))];
    if let Some(target) = config.relay {
        tasks.push(tokio::spawn(crate::sync::run(
            daemon.clone(),
            target,
            stopped,
        )));
    }
    let ready = {
        DaemonReady {
            ready: true,
            socket,
            device: daemon.identity().device.device_id().to_string(),
            principal: daemon.identity().principal.principal_id().to_string(),
        }
    };
    Ok(RunningDaemon {
        ready,
        daemon,
        stop,
        tasks,
    })
}

impl RunningDaemon {
    /// Stops serving and syncing, and flushes.
    pub async fn shutdown(self) {
        const SHUTDOWN_TASK_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
        let _ = self.stop.send(true);
        for mut t in self.tasks {
            // A task that does not stop within the limit is aborted: a shutdown ends.
            if tokio::time::timeout(SHUTDOWN_TASK_LIMIT, &mut t)
                .await
                .is_err()
            {
                tracing::warn!("a task did not stop within {SHUTDOWN_TASK_LIMIT:?}; aborted");
                t.abort();
            }
        }
        if let Err(e) = self.daemon.save_document_indexes() {
            tracing::warn!("document indexes not saved (the next start rebuilds them): {e}");
        }
        let _ = self.daemon.store.flush().await;
        let _ = std::fs::remove_file(&self.ready.socket);
        // The store is closed apart (`close_later`): wait for it, so the directory is
        // free when this returns.
        mes_protocol::close_later::release_and_wait(self.daemon, std::time::Duration::from_secs(5))
            .await;
    }
}
