//! Logs as the three binaries set them up (issue 27): one variable, `MES_LOG`, in
//! tracing's filter syntax (`info`, `mes_relay=debug,warn`), read by `mes`, `mesd` and
//! `mes-relay` alike; `-v` and `-q` raise and lower the level when it is unset; and
//! `--log-format json` (or `MES_LOG_FORMAT=json`) writes one JSON object per line for a
//! log collector. Logs go to standard error: standard output keeps the ready line and
//! the replies scripts read.

/// The log options every binary takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More detail in the logs (-v debug, -vv trace), when MES_LOG is unset.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less (-q errors only, -qq nothing), when MES_LOG is unset.
    #[arg(
        short,
        long,
        action = clap::ArgAction::Count,
        global = true,
        conflicts_with = "verbose"
    )]
    pub quiet: u8,
    /// Log lines as text, or as JSON objects one per line.
    #[arg(
        long,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "MES_LOG_FORMAT",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// The variable every binary reads its log filter from.
pub const LOG_VARIABLE: &str = "MES_LOG";

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter `args` ask for over `default` ("info" for the servers, "error" for `mes`,
/// whose screen the logs must not cover): `MES_LOG` when set, else `default` moved up by
/// each `-v` and down by each `-q`.
pub fn filter(args: &LogArgs, default: &str, from_env: Option<String>) -> String {
    if let Some(f) = from_env.filter(|f| !f.trim().is_empty()) {
        return f;
    }
    let at = LEVELS.iter().position(|l| *l == default).unwrap_or(3);
    let at = (at + usize::from(args.verbose)).saturating_sub(usize::from(args.quiet));
    LEVELS[at.min(LEVELS.len() - 1)].to_owned()
}

/// Sets up this process's logs, once, to standard error.
pub fn init(args: &LogArgs, default: &str) {
    let filter = filter(args, default, std::env::var(LOG_VARIABLE).ok());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("{LOG_VARIABLE}={filter:?} is not a log filter ({e}); logging at {default}");
        tracing_subscriber::EnvFilter::new(default)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_v_and_q_move_the_default() {
        let args = |verbose, quiet| LogArgs {
            verbose,
            quiet,
            log_format: LogFormat::Text,
        };
        assert_eq!(filter(&args(0, 0), "info", None), "info");
        assert_eq!(filter(&args(1, 0), "info", None), "debug");
        assert_eq!(filter(&args(5, 0), "info", None), "trace");
        assert_eq!(filter(&args(0, 1), "info", None), "warn");
        assert_eq!(filter(&args(0, 9), "info", None), "off");
        assert_eq!(filter(&args(1, 0), "error", None), "warn");
        assert_eq!(
            filter(&args(2, 0), "info", Some("mes_relay=debug".into())),
            "mes_relay=debug"
        );
        assert_eq!(filter(&args(0, 0), "info", Some(" ".into())), "info");
    }
}
