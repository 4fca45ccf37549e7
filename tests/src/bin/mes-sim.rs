//! `mes-sim`: runs scenarios on many seeds, deterministically or over real sockets, and
//! proves convergence without loss (docs/tester-guide.md).

use anyhow::Context;
use clap::{Parser, Subcommand};
use mes_tests::sim::report::Report;
use mes_tests::sim::scenario::Scenario;
use mes_tests::sim::trace::{PlantedBug, Trace};
use mes_tests::sim::RunOutput;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "mes-sim",
    about = "Multi-device sync simulator: faults in, proof of convergence out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario file on one or many seeds.
    Run {
        /// Scenario file (TOML), e.g. tests/scenarios/ci-short.toml.
        scenario: PathBuf,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of seeds, from --seed on.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Real sockets: a relay over QUIC on loopback, mesd processes, a fault-injecting
        /// UDP proxy per device (wall-clock time; see the scenario's `[real]` section).
        #[arg(long)]
        real: bool,
        /// Plants a bug the checker must catch (the run must then fail).
        #[arg(long, value_enum)]
        plant_bug: Option<PlantedBug>,
        /// One JSON report per line instead of text.
        #[arg(long)]
        json: bool,
        /// Where failing traces are written.
        #[arg(long, default_value = "target/sim-failures")]
        failures: PathBuf,
        /// Runs at a time.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
    /// Replays a trace file (a kept trace or a failure file) deterministically.
    Replay {
        /// The file.
        trace: PathBuf,
        /// One JSON report instead of text.
        #[arg(long)]
        json: bool,
        /// Print the event log of the run.
        #[arg(long)]
        log: bool,
        /// Replay over real sockets instead (same inputs, wall-clock timing).
        #[arg(long)]
        real: bool,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("mes-sim: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn print(r: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).expect("report serialises"));
    } else {
        print!("{}", r.text());
    }
}

fn run() -> anyhow::Result<bool> {
    match Cli::parse().command {
        Command::Run {
            scenario,
            seed,
            seeds,
            real,
            plant_bug,
            json,
            failures,
            jobs,
        } => {
            let s = Scenario::load(&scenario)?;
            let traces: Vec<Trace> = (seed..seed + seeds)
                .map(|n| Trace::generate(&s, n, plant_bug))
                .collect();
            let total = traces.len();
            let mut ok = 0;
            // Reports are printed as runs finish (a long soak shows progress).
            let mut handle = |(trace, report, log): Outcome| -> anyhow::Result<()> {
                print(&report, json);
                if report.ok {
                    ok += 1;
                } else {
                    let path = write_failure(&failures, &trace, &report, &log)?;
                    eprintln!(
                        "mes-sim: seed {} FAILED; replay with `mes-sim run {} --seed {}{}` (this build) or `mes-sim replay {}{}` (the exact inputs)",
                        trace.seed,
                        scenario.display(),
                        trace.seed,
                        if real { " --real" } else { "" },
                        path.display(),
                        if real { " --real" } else { "" },
                    );
                }
                Ok(())
            };
            if real {
                run_real(traces, jobs.max(1), &mut handle)?;
            } else {
                run_parallel(traces, jobs.max(1), &mut handle)?;
            }
            if total > 1 {
                let summary = serde_json::json!({
                    "scenario": s.name, "seeds": total, "ok": ok, "failed": total - ok,
                });
                if json {
                    println!("{summary}");
                } else {
                    println!("{}: {ok}/{total} seeds converged with nothing lost", s.name);
                }
            }
            Ok(ok == total)
        }
        Command::Replay {
            trace,
            json,
            log,
            real,
        } => {
            let trace = read_trace(&trace)?;
            let (report, lines) = if real {
                tokio::runtime::Runtime::new()?.block_on(mes_tests::sim::real::run(trace))?
            } else {
                mes_tests::sim::det::run(trace)?
            };
            if log {
                for l in &lines {
                    println!("{l}");
                }
            }
            print(&report, json);
            Ok(report.ok)
        }
    }
}

type Outcome = (Trace, Report, Vec<String>);

fn run_parallel(
    traces: Vec<Trace>,
    jobs: usize,
    handle: &mut dyn FnMut(Outcome) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(Trace, anyhow::Result<RunOutput>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, traces, next) = (tx.clone(), &traces, &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(t) = traces.get(i) else { break };
                if tx
                    .send((t.clone(), mes_tests::sim::det::run(t.clone())))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        for (t, r) in rx {
            let (report, log) = r?;
            handle((t, report, log))?;
        }
        Ok(())
    })
}

/// Real-socket runs, `jobs` at a time (each has its own relay, proxies and processes).
fn run_real(
    traces: Vec<Trace>,
    jobs: usize,
    handle: &mut dyn FnMut(Outcome) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        let mut traces = traces.into_iter();
        loop {
            // Keep `jobs` runs going; hand each report over as it finishes.
            while gate.available_permits() > 0 {
                let Some(t) = traces.next() else { break };
                let permit = gate.clone().acquire_owned().await?;
                set.spawn(async move {
                    let r = mes_tests::sim::real::run(t.clone()).await;
                    drop(permit);
                    (t, r)
                });
            }
            let Some(joined) = set.join_next().await else {
                return Ok(());
            };
            let (t, r) = joined?;
            let (report, log) = r?;
            handle((t, report, log))?;
        }
    })
}

/// A failure file: the trace (exact inputs), the report and the end of the event log.
fn write_failure(
    dir: &Path,
    trace: &Trace,
    report: &Report,
    log: &[String],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}-seed{}.json", trace.scenario.name, trace.seed));
    let body = serde_json::json!({ "trace": trace, "report": report, "log": log });
    std::fs::write(&path, serde_json::to_string_pretty(&body)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// Reads a bare trace or the `trace` field of a failure file.
pub fn read_trace(path: &Path) -> anyhow::Result<Trace> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let t = v.get("trace").cloned().unwrap_or(v);
    serde_json::from_value(t).with_context(|| format!("{} holds no valid trace", path.display()))
}
