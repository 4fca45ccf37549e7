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
    /// The professional directory (F7): who the relay vouches for.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Records a court decision removing a principal's rights on a space (F9.4), e.g. a
    /// parent's parental authority; signed with the hub's key. Run with the relay stopped.
    CourtRemoval {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA")]
        data: PathBuf,
        /// The space (hex id).
        #[arg(long)]
        space: mes_protocol::ids::SpaceId,
        /// The principal who loses access (hex id).
        #[arg(long)]
        principal: mes_protocol::ids::PrincipalId,
        /// The decision's reference, e.g. "TJ Lyon, 2026-11-30, RG 26/04211".
        #[arg(long)]
        reference: String,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Imports a CSV `rpps,principal,name,profession,specialty,structure` (checked whole:
    /// any bad row imports nothing); run with the relay stopped.
    Import {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA")]
        data: PathBuf,
        /// The CSV file.
        file: PathBuf,
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
        Command::Directory {
            command: DirectoryCommand::Import { data, file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rows = match mes_relay::directory::parse(&text) {
                Ok(rows) => rows,
                Err(bad) => {
                    for b in &bad {
                        eprintln!("{}:{}: {}", file.display(), b.line, b.reason);
                    }
                    eprintln!(
                        "{} bad row(s) in {}: nothing imported",
                        bad.len(),
                        file.display()
                    );
                    std::process::exit(2);
                }
            };
            let relay = mes_relay::server::open_offline(&data)?;
            let n = relay.import_directory(rows).await?;
            println!("{}", serde_json::json!({ "imported": n }));
            Ok(())
        }
        Command::CourtRemoval {
            data,
            space,
            principal,
            reference,
        } => {
            let relay = mes_relay::server::open_offline(&data)?;
            if let Err(e) = relay
                .record_court_removal(space, principal, &reference)
                .await
            {
                eprintln!("court removal refused: {}", e.message);
                std::process::exit(2);
            }
            println!(
                "{}",
                serde_json::json!({ "removed": principal.to_string(), "space": space.to_string() })
            );
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
