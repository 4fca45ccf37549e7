//! `mes-bench`: runs the benchmark scenarios and prints one JSON object per metric
//! (`scenario`, `metric`, `value`, `unit`) with `--json`, or a table without.
//!
//! `mes-bench --list`; `mes-bench SCENARIO... [--smoke] [--json]`; `--all` (or no
//! scenario) runs all; `mes-bench compare OLD.jsonl NEW.jsonl` compares two `--json` runs.

use clap::Parser;

/// The allocator `mes-relay` runs with (relay/src/main.rs), so that figures are the hub's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mes_tests::bench::{self, Measure, Size};

#[derive(Parser)]
#[command(name = "mes-bench", about = "Mon espace santé benchmarks")]
struct Cli {
    /// Scenarios to run (all when none is given).
    scenarios: Vec<String>,
    /// List the scenarios.
    #[arg(long)]
    list: bool,
    /// Run every scenario (the same as naming none).
    #[arg(long)]
    all: bool,
    /// Tiny sizes, for CI.
    #[arg(long)]
    smoke: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Relay storage: sled (embedded) or postgres (the server at `MES_TEST_PG`, see
    /// scripts/services).
    #[arg(long, default_value = "sled", value_parser = ["sled", "postgres"])]
    backend: String,
    /// Internal: run a measured server (relay or quinn) in this process, with its data
    /// directory (the `fanout` scenario starts these).
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"], hide = true)]
    child: Option<Vec<String>>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The harness's relays read the backend from the environment (tests do the same).
    if let Some(child) = &cli.child {
        return bench::child::serve(&child[0], std::path::Path::new(&child[1])).await;
    }
    if cli.scenarios.first().map(String::as_str) == Some("compare") {
        let [_, old, new] = &cli.scenarios[..] else {
            anyhow::bail!("usage: mes-bench compare OLD.jsonl NEW.jsonl");
        };
        let read = |p: &str| -> anyhow::Result<Vec<bench::compare::Figure>> {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {p}: {e}"))?;
            Ok(bench::compare::read(&text))
        };
        let rows = bench::compare::compare(&read(old)?, &read(new)?);
        print!("{}", bench::compare::render(&rows));
        // A guard: a figure that moved the wrong way fails the command.
        if rows.iter().any(|r| r.worse) {
            std::process::exit(1);
        }
        return Ok(());
    }
    std::env::set_var("MES_TEST_BACKEND", &cli.backend);
    if cli.list {
        for (name, what) in bench::SCENARIOS {
            println!("{name:<16} {what}");
        }
        return Ok(());
    }
    let size = if cli.smoke { Size::Smoke } else { Size::Full };
    let names: Vec<String> = if cli.all || cli.scenarios.is_empty() {
        bench::SCENARIOS
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    } else {
        cli.scenarios
    };
    let mut ctx = bench::Context::default();
    for name in names {
        let measures: Vec<Measure> = bench::run(&name, size, &mut ctx).await?;
        for m in measures {
            if cli.json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                println!(
                    "{:<16} {:<16} {:>14.3} {}",
                    m.scenario, m.metric, m.value, m.unit
                );
            }
        }
    }
    Ok(())
}
