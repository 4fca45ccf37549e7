//! `mesd serve`: runs a device daemon and prints one JSON ready line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mes_daemon::devices::unlock::Unlock;
use mes_daemon::run::{start, DaemonConfig};
use mes_daemon::sync::relay_client::RelayTarget;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mesd",
    version,
    about = "Mon espace santé device daemon / démon d'appareil"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: mes_client::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local API and sync with the relay.
    Serve(Serve),
    /// Shell completions on standard output (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: mes_client::shell::Shell,
    },
    /// The manual page (roff) on standard output.
    Man,
}

/// What `mesd serve` takes.
#[derive(clap::Args)]
struct Serve {
    /// Data directory (default: $XDG_DATA_HOME/mes, else ~/.local/share/mes).
    #[arg(long, env = "MES_DATA")]
    data: Option<PathBuf>,
    /// The local API's socket (default: beside an explicit --data, else
    /// $XDG_RUNTIME_DIR/mes/mesd.sock, else in the data directory).
    #[arg(long, env = "MES_SOCKET")]
    socket: Option<PathBuf>,
    /// age identity file unlocking the replica, created if missing (default, without
    /// --passphrase-fd: $XDG_CONFIG_HOME/mes/identity.age).
    #[arg(long, conflicts_with = "passphrase_fd")]
    identity: Option<PathBuf>,
    /// File descriptor to read the passphrase from.
    #[arg(long)]
    passphrase_fd: Option<u32>,
    /// Relay UDP address.
    #[arg(long, env = "MES_RELAY", requires = "fingerprint")]
    relay: Option<SocketAddr>,
    /// Relay certificate SHA-256 fingerprint (hex) to pin.
    #[arg(long, env = "MES_RELAY_FINGERPRINT")]
    fingerprint: Option<String>,
    /// This device's name.
    #[arg(long, default_value = "device")]
    name: String,
    /// Largest document file accepted, in MiB.
    #[arg(long, default_value_t = 64)]
    max_document_mib: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    mes_client::logging::init(&cli.log, "info");
    let Serve {
        data,
        socket,
        identity,
        passphrase_fd,
        relay,
        fingerprint,
        name,
        max_document_mib,
    } = match cli.command {
        Command::Completions { shell } => {
            mes_client::shell::completions::<Cli>(shell, "mesd");
            return Ok(());
        }
        Command::Man => return Ok(mes_client::shell::man::<Cli>()?),
        Command::Serve(serve) => serve,
    };
    let socket = socket.unwrap_or_else(|| mes_client::paths::daemon_socket(data.as_deref()));
    let data = data.unwrap_or_else(mes_client::paths::daemon_data);
    let unlock = match (identity, passphrase_fd) {
        (Some(p), None) => Unlock::IdentityFile(p),
        (None, Some(fd)) => Unlock::from_fd(fd)?,
        _ => {
            let p = mes_client::paths::daemon_identity();
            if let Some(dir) = p.parent() {
                private_dir(dir)?;
            }
            Unlock::IdentityFile(p)
        }
    };
    let relay = relay.map(|address| RelayTarget {
        address,
        fingerprint: fingerprint.unwrap_or_default(),
    });
    let running = start(DaemonConfig {
        data_dir: data,
        socket: Some(socket),
        unlock,
        relay,
        name,
        // The null cipher is the confidentiality tests' control, reachable from the
        // library only; the binary always seals (issue 22, finding 10).
        null_cipher: false,
        max_document_bytes: max_document_mib << 20,
    })
    .await
    .context("starting mesd")?;
    println!("{}", serde_json::to_string(&running.ready)?);
    mes_client::service_manager::ready();
    tracing::info!(
        socket = %running.ready.socket.display(),
        device = %running.ready.device,
        "mesd ready"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    mes_client::service_manager::stopping();
    running.shutdown().await;
    Ok(())
}

/// Creates a directory of the user's own (0700) if it is missing.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}
