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
    /// Data directory.
    #[arg(long, env = "MES_DATA")]
    data: PathBuf,
    /// age identity file unlocking the replica (created if missing).
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
    let unlock = match (identity, passphrase_fd) {
        (Some(p), None) => Unlock::IdentityFile(p),
        (None, Some(fd)) => Unlock::from_fd(fd)?,
        _ => anyhow::bail!("give --identity FILE or --passphrase-fd N to unlock the replica"),
    };
    let relay = relay.map(|address| RelayTarget {
        address,
        fingerprint: fingerprint.unwrap_or_default(),
    });
    let running = start(DaemonConfig {
        data_dir: data,
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
    running.shutdown().await;
    Ok(())
}
