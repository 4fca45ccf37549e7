//! `mes-relay`: parses arguments and runs the relay library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mes-relay",
    version,
    about = "Relay (national hub) for Mon espace santé local-first"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve devices over QUIC; prints one JSON ready line (address, fingerprint).
    Serve {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA")]
        data: PathBuf,
        /// UDP address to listen on.
        #[arg(long, default_value = "127.0.0.1:4433", env = "MES_RELAY_LISTEN")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MES_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { data, listen } => {
            let mut config = mes_relay::RelayConfig::new(data);
            config.listen = listen;
            let running = mes_relay::start(config)
                .await
                .context("starting the relay")?;
            println!("{}", serde_json::to_string(&running.ready)?);
            shutdown_signal().await;
            running.shutdown().await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
