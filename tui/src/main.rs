//! `mes`: with no subcommand, the terminal client (`mes_tui::app`) on the local daemon;
//! scriptable subcommands over the daemon's local API (`--json` for scripts); and
//! `mes demo`, the sandbox account on a relay and a device in a temporary directory, with
//! the terminal client open on it.

mod caught_up;
#[cfg(feature = "demo")]
mod demo;
mod import;
mod manifest;

use clap::Parser;
use mes_client::ApiClient;
use mes_protocol::wire::api::ApiCall;
use mes_tui::cli::{plan, socket_path, Cli, Plan};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    // Errors only by default: the terminal client's screen is on the same terminal.
    mes_client::logging::init(&cli.log, "error");
    match run(cli, started).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("erreur / error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli, started: std::time::Instant) -> anyhow::Result<std::process::ExitCode> {
    let Some(command) = cli.command else {
        mes_tui::app::shell::run(mes_tui::app::shell::Options {
            socket: socket_path(&cli.socket)?,
            space: cli.space,
            started,
        })
        .await?;
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let call = match plan(command)? {
        #[cfg(feature = "demo")]
        Plan::Demo { serve } => {
            let ui = !(serve || cli.json);
            return demo::run(cli.json, ui.then_some(started))
                .await
                .map(|_| std::process::ExitCode::SUCCESS);
        }
        #[cfg(not(feature = "demo"))]
        Plan::Demo { .. } => {
            anyhow::bail!("this mes was built without `mes demo` (the `demo` feature) / mes construit sans la démo")
        }
        Plan::Watch => {
            let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
            c.call(None, ApiCall::Subscribe).await??;
            loop {
                let e = c.next_event().await?;
                println!(
                    "{}",
                    if cli.json {
                        serde_json::to_string(&e)?
                    } else {
                        format!("{e:?}")
                    }
                );
            }
        }
        Plan::Import {
            dir,
            manifest,
            dry_run,
        } => {
            let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
            let ok = import::run(&mut c, cli.space, &dir, &manifest, dry_run, cli.json).await?;
            return Ok(std::process::ExitCode::from(if ok { 0 } else { 1 }));
        }
        Plan::Completions(shell) => {
            mes_client::shell::completions::<Cli>(shell, "mes");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Plan::Man => {
            mes_client::shell::man::<Cli>()?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Plan::WaitCaughtUp { timeout } => {
            let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
            let caught_up = caught_up::wait(&mut c, timeout, cli.json).await?;
            return Ok(std::process::ExitCode::from(if caught_up { 0 } else { 1 }));
        }
        Plan::Call(call) => *call,
    };
    let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
    match c.call(cli.space, call).await? {
        Ok(reply) => {
            if cli.json {
                println!("{}", reply.to_json()?);
            } else {
                println!("{}", mes_tui::printable::text(&reply.to_text()?));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": { "code": format!("{:?}", e.code), "message": e.message } })
                );
            } else {
                eprintln!("erreur / error ({:?}): {}", e.code, e.message);
            }
            Ok(std::process::ExitCode::from(1))
        }
    }
}
