//! `mes-store-stress [ROUNDS]`: the embedded stores' stress (issue 23), printing one JSON
//! line (`rounds`, `writes`, `longest_round_ms`; or `hung` and exit code 3 on a hang,
//! `error` and exit code 1 on any other failure).

fn main() -> anyhow::Result<()> {
    let rounds = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    match mes_tests::store_stress::run(dir.path(), rounds) {
        Ok(r) => {
            println!(
                "{}",
                serde_json::json!({
                    "rounds": r.rounds,
                    "writes": r.writes,
                    "longest_round_ms": r.longest_round.as_secs_f64() * 1000.0,
                    "longest_reopen_wait_ms": r.longest_reopen_wait.as_secs_f64() * 1000.0,
                })
            );
            Ok(())
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
    }
}
