//! `mes-relay`: parses arguments and runs the relay library.
//!
//! Over 600 lines: the operator's whole command line, one arm per subcommand (its parts live in the library).

use anyhow::Context;

/// sled allocates and frees small nodes at a high rate: glibc's allocator spent a third
/// of the campaign's time in malloc and fragmented the heap to many GiB (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
    #[command(flatten)]
    log: mes_client::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve devices over QUIC; prints one JSON ready line (address, fingerprint).
    Serve {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// UDP address to listen on (overrides the configuration file).
        #[arg(long, env = "MES_RELAY_LISTEN")]
        listen: Option<SocketAddr>,
        /// Configuration file (docs/mes-relay.example.toml).
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// Local TCP address for `/health` and `/metrics` (overrides `serve.metrics`;
        /// port 0 picks one, printed in the ready line).
        #[arg(long, env = "MES_RELAY_METRICS")]
        metrics: Option<SocketAddr>,
        /// Keep the relay's state in a PostgreSQL database instead of the data
        /// directory, shared with other instances (docs/operator-guide.md).
        #[command(flatten)]
        db: Database,
        /// Keep document blobs in this S3-compatible object store (endpoint URL);
        /// credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
        #[arg(long, env = "MES_RELAY_S3")]
        s3: Option<String>,
        /// The bucket for `--s3` (it must exist).
        #[arg(long, env = "MES_RELAY_S3_BUCKET", default_value = "mes-blobs")]
        s3_bucket: String,
        /// The region for `--s3`.
        #[arg(long, env = "MES_RELAY_S3_REGION", default_value = "us-east-1")]
        s3_region: String,
        /// A key prefix for `--s3`, to share a bucket.
        #[arg(long, env = "MES_RELAY_S3_PREFIX")]
        s3_prefix: Option<String>,
    },
    /// The relay's TLS certificate (docs/operator-guide.md, "Rotating the certificate").
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Applies the PostgreSQL schema's migrations not yet applied and prints their
    /// versions (`serve` applies them too); refuses a schema newer than this binary.
    Migrate {
        #[command(flatten)]
        db: Database,
    },
    /// Imports the insured population (F1.1) from a CSV (UTF-8, with or without a BOM, CRLF
    /// or LF). By default checked whole: any bad row, or anyone already on file, imports
    /// nothing. With `--rejects FILE`, the good rows are imported and every bad one, and
    /// everyone already on file, is written there with its line and reason. Run with the relay stopped, or with
    /// `--postgres` while the instances serve.
    ImportPopulation {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// The CSV file (header in docs/enrolment.md).
        file: PathBuf,
        /// Import the good rows and write the bad ones here (CSV: line,reason); refuses
        /// to overwrite a file.
        #[arg(long, conflicts_with = "all_or_nothing")]
        rejects: Option<PathBuf>,
        /// Import nothing if any row is bad (the default without --rejects).
        #[arg(long)]
        all_or_nothing: bool,
        /// The field separator, as the spreadsheet exported it (`;` in French locales).
        #[arg(long, default_value = ",", value_parser = one_byte)]
        delimiter: u8,
        #[command(flatten)]
        db: Database,
    },
    /// The notification campaign (F1.2).
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Delivers the outbox: emails to the maildir or SMTP, letters to print files. Run
    /// with the relay stopped, or with `--postgres` while the instances serve.
    Deliver {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// Configuration file.
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// At most this many messages.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        #[command(flatten)]
        db: Database,
    },
    /// Runs the clock (F1.5, F1.6, F1.8): spaces created at the deadline, archives deleted
    /// at their end, reminders queued. The serving relay also runs it periodically.
    Sweep {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// Configuration file.
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// The time to run the clock to (RFC 3339; default now), e.g. to rehearse.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        #[command(flatten)]
        db: Database,
    },
    /// Writes a backup of the stopped hub (store and key files) to a new file.
    Backup {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restores a backup into an empty data directory (the whole file is checked first).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The (empty or absent) data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
    },
    /// Campaign statistics (F1.9), as JSON.
    Stats {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        #[command(flatten)]
        db: Database,
    },
    /// The professional directory (F7): who the relay vouches for.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// The catalogue of approved services (F6): criteria, hosting, suspension.
    Catalogue {
        #[command(subcommand)]
        command: CatalogueCommand,
    },
    /// Shell completions on standard output (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: mes_client::shell::Shell,
    },
    /// The manual page (roff) on standard output.
    Man,
    /// The post that comes back (F1.2).
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Records an opposition or a closure on someone's behalf (F1.4, F1.6, seed 001),
    /// passed on by support staff, a guardian's service or a prison under their
    /// reference: the person is told by email or letter, sees who and which reference in
    /// their status, and can undo it (activate with the code the message carries; reopen
    /// with their account). Run with the relay stopped, or with `--postgres` while the
    /// instances serve.
    OnBehalf {
        /// What is recorded: `oppose` (someone without a space yet, or whose space was
        /// created without them) or `close` (someone with a space).
        #[arg(value_enum)]
        action: mes_relay::enrolment::behalf::Action,
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// Configuration file (the archive period of a closure).
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// The person's NIR, with its key (spaces allowed).
        #[arg(long)]
        nir: String,
        /// Their reference for it, e.g. "GREFFE-2026-0042".
        #[arg(long)]
        reference: String,
        /// Who passes the decision on, e.g. "Centre pénitentiaire de Fresnes, greffe".
        #[arg(long)]
        by: String,
        #[command(flatten)]
        db: Database,
    },
    /// Records a court decision removing a principal's rights on a space (F9.4), e.g. a
    /// parent's parental authority; signed with the hub's key. Run with the relay stopped,
    /// or with `--postgres` while the instances serve.
    CourtRemoval {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
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
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Records notification letters that came back (NPAI: not living at this address),
    /// from a CSV with one column, `nir`: each code sent is void and the deadline it
    /// started withdrawn; with an email on file the person is notified by email, the
    /// deadline from now, else they are undeliverable (counted apart in `stats`, no space
    /// created) until someone reaches them. Rows that cannot be recorded are named
    /// (`file:line: reason`) and change nothing. Run with the relay stopped, or with
    /// `--postgres` while the instances serve.
    Returned {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// Configuration file (the opposition period of an emailed notification).
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// The CSV of returned letters (header `nir`).
        file: PathBuf,
        #[command(flatten)]
        db: Database,
    },
}

/// Where the relay's state is, for the commands that work on the store.
#[derive(clap::Args)]
struct Database {
    /// The PostgreSQL database of the serving instances (default: `[postgres]` of the
    /// configuration file, else the data directory's embedded store, with the relay
    /// stopped). Prefer the variable, a file or the configuration file to this flag: a
    /// URL with a password on a command line is visible to every user of the machine.
    #[arg(long, env = "MES_RELAY_POSTGRES")]
    postgres: Option<String>,
    /// A file holding the PostgreSQL URL (e.g. a systemd credential).
    #[arg(long, env = "MES_RELAY_POSTGRES_FILE", conflicts_with = "postgres")]
    postgres_file: Option<PathBuf>,
    /// PEM certificates PostgreSQL's must chain to (default: the system's roots).
    #[arg(long, env = "MES_RELAY_POSTGRES_CA")]
    postgres_ca: Option<PathBuf>,
}

impl Database {
    /// The backend: the flag or variable, else its file, else the configuration's
    /// `[postgres]`, else the embedded store.
    fn backend(&self) -> anyhow::Result<mes_relay::server::Backend> {
        self.backend_with(&mes_relay::config::HubConfig::load(None)?.postgres)
    }

    fn backend_with(
        &self,
        cfg: &mes_relay::config::PostgresConfig,
    ) -> anyhow::Result<mes_relay::server::Backend> {
        let url = match (&self.postgres, &self.postgres_file) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(file)) => mes_relay::config::PostgresConfig {
                url_file: Some(file.clone()),
                ..Default::default()
            }
            .resolved_url()?,
            (None, None) => cfg.resolved_url()?,
        };
        Ok(match url {
            Some(url) => {
                let mut options = mes_relay::store::postgres_store::PgOptions::new(url);
                options.ca_file = self.postgres_ca.clone().or_else(|| cfg.ca_file.clone());
                mes_relay::server::Backend::Postgres(options)
            }
            None => mes_relay::server::Backend::Sled,
        })
    }
}

#[derive(Subcommand)]
enum CertCommand {
    /// Makes a new self-signed certificate and a handover from the old one signed by the
    /// relay's key; devices that pinned the old one follow it by themselves. Restart the
    /// instances (after copying the data directory's `relay-cert.der`, `relay-key.der`
    /// and `relay-cert-handovers` to each) to serve it.
    Rotate {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Notifies imported people in département order, each with a code and a message in
    /// the outbox, then delivers the outbox. Run with the relay stopped, or with
    /// `--postgres` while the instances serve.
    Run {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// Configuration file.
        #[arg(long, env = "MES_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// Only these départements, comma-separated ("69,2A,974"); default all, in order.
        #[arg(long, value_delimiter = ',')]
        departements: Option<Vec<String>>,
        /// At most this many people.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        /// Messages per second at most (overrides the configuration file).
        #[arg(long)]
        rate: Option<u32>,
        /// Leave the messages in the outbox (deliver them later with `deliver`).
        #[arg(long)]
        no_deliver: bool,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Imports a CSV `rpps,principal,name,profession,specialty,structure` (checked whole:
    /// any bad row imports nothing); run with the relay stopped, or with `--postgres`
    /// while the instances serve.
    Import {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Replaces the catalogue with a TOML file of `[[service]]` tables (checked whole: any
    /// bad service imports nothing; see docs/catalogue.example.toml). A service hosted or
    /// controlled outside the EU is suspended; one the file no longer lists is withdrawn.
    /// Run with the relay stopped, or with `--postgres` while the instances serve.
    Import {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        /// The TOML file.
        file: PathBuf,
        #[command(flatten)]
        db: Database,
    },
    /// Prints the catalogue, one JSON object per service.
    List {
        /// Data directory.
        #[arg(long, env = "MES_RELAY_DATA", default_value_os_t = mes_client::paths::relay_data())]
        data: PathBuf,
        #[command(flatten)]
        db: Database,
    },
}

/// The hub's state without serving, on the backend `db` and the configuration (`cfg`,
/// else the conventional file) say.
async fn offline(
    data: &std::path::Path,
    cfg: Option<&mes_relay::config::HubConfig>,
    db: &Database,
) -> anyhow::Result<std::sync::Arc<mes_relay::handler::Relay>> {
    let loaded;
    let cfg = match cfg {
        Some(c) => c,
        None => {
            loaded = mes_relay::config::HubConfig::load(None)?;
            &loaded
        }
    };
    let backend = db.backend_with(&cfg.postgres)?;
    let relay = mes_relay::server::open_offline_on(data, cfg.enrolment.clone(), &backend).await?;
    tracing::info!(
        data = %data.display(),
        backend = match backend {
            mes_relay::server::Backend::Postgres(_) => "postgres",
            mes_relay::server::Backend::Sled => "sled",
        },
        "hub store opened"
    );
    Ok(relay)
}

#[tokio::main]
#[allow(
    clippy::too_many_lines,
    reason = "the relay's command line, one arm per subcommand"
)]
async fn main() -> anyhow::Result<()> {
    // Everything the hub writes is its own user's only (issue 22, finding 9); the files
    // that hold keys and codes also set their mode themselves (`private_files`).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    mes_client::logging::init(&cli.log, "info");
    match cli.command {
        Command::Serve {
            data,
            listen,
            config,
            metrics,
            db,
            s3,
            s3_bucket,
            s3_region,
            s3_prefix,
        } => {
            let hub = mes_relay::config::HubConfig::load(config.as_deref())?;
            let mut config = mes_relay::RelayConfig::new(data);
            config.listen = listen.unwrap_or(hub.serve.listen);
            config.enrolment = hub.enrolment.clone();
            config.metrics = metrics.or(hub.serve.metrics);
            config.max_connections_per_address = hub.serve.max_connections_per_address;
            config.read_rate = hub.serve.read_rate();
            config.arrival_rate = hub.serve.arrival_rate();
            config.policy.file_bytes_per_space = hub.serve.file_bytes_per_space;
            config.backend = db.backend_with(&hub.postgres)?;
            if let Some(endpoint) = s3 {
                let mut options =
                    mes_relay::store::object_blobs::S3Options::new(endpoint, s3_bucket);
                options.region = s3_region;
                options.prefix = s3_prefix;
                config.blobs = mes_relay::server::Blobs::ObjectStore(options);
            }
            config.sweep_every = (hub.serve.sweep_every_minutes > 0)
                .then(|| std::time::Duration::from_secs(hub.serve.sweep_every_minutes * 60));
            let running = mes_relay::start(config)
                .await
                .context("starting the relay")?;
            println!("{}", serde_json::to_string(&running.ready)?);
            mes_client::service_manager::ready();
            shutdown_signal().await;
            mes_client::service_manager::stopping();
            running.shutdown().await;
            Ok(())
        }
        Command::Directory {
            command: DirectoryCommand::Import { data, file, db },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rows = match mes_relay::directory::parse(&text) {
                Ok(rows) => rows,
                Err(bad) => refuse_rows(&file, &bad),
            };
            let relay = offline(&data, None, &db).await?;
            let n = relay.import_directory(rows).await?;
            println!("{}", serde_json::json!({ "imported": n }));
            Ok(())
        }
        Command::Catalogue {
            command: CatalogueCommand::Import { data, file, db },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let services = match mes_relay::catalogue::parse(&text) {
                Ok(s) => s,
                Err(bad) => refuse_rows(&file, &bad),
            };
            let relay = offline(&data, None, &db).await?;
            let report = relay.import_catalogue(services).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Catalogue {
            command: CatalogueCommand::List { data, db },
        } => {
            let relay = offline(&data, None, &db).await?;
            for e in relay.catalogue_entries() {
                let s = &e.body.service;
                println!(
                    "{}",
                    serde_json::json!({
                        "id": s.id,
                        "name": s.name,
                        "editor": s.editor,
                        "hosting_country": s.hosting_country,
                        "controller_country": s.controller_country,
                        "data": s.data,
                        "criteria": s.criteria,
                        "status": if e.body.suspended.is_some() { "suspended" } else { "listed" },
                        "suspended_fr": e.body.suspended.as_ref().map(mes_protocol::enrolment::catalogue::Suspension::fr),
                        "suspended_en": e.body.suspended.as_ref().map(mes_protocol::enrolment::catalogue::Suspension::en),
                    })
                );
            }
            Ok(())
        }
        Command::ImportPopulation {
            data,
            file,
            rejects,
            all_or_nothing: _,
            delimiter,
            db,
        } => {
            let text = read_csv(&file)?;
            let today = jiff::Zoned::now()
                .with_time_zone(mes_protocol::time::paris())
                .date();
            let (rows, mut bad) =
                mes_relay::enrolment::population::parse_lines(&text, today, delimiter);
            if rejects.is_none() && !bad.is_empty() {
                refuse_rows(&file, &bad);
            }
            let relay = offline(&data, None, &db).await?;
            let hub = enrolment(&relay);
            // With a rejects file, people already on file are rejected rows too; checked
            // whole, they refuse the file (below).
            let rows = match &rejects {
                None => rows.into_iter().map(|(_, r)| r).collect(),
                Some(path) => {
                    let rows = set_aside_on_file(&hub.tables, rows, &mut bad)?;
                    write_rejects(path, &bad)?;
                    rows
                }
            };
            let rejected = bad.len();
            let bar = progress(rows.len() as u64, "import");
            match mes_relay::enrolment::service::import(&hub.tables, &rows, |n| bar.inc(n as u64)) {
                Ok(report) => {
                    bar.finish_and_clear();
                    let mut out = serde_json::to_value(&report)?;
                    out["rejected"] = rejected.into();
                    println!("{out}");
                    Ok(())
                }
                Err(reasons) => {
                    bar.abandon();
                    for r in &reasons {
                        eprintln!("{}: {r}", file.display());
                    }
                    eprintln!(
                        "{} problem(s) in {}: nothing imported",
                        reasons.len(),
                        file.display()
                    );
                    std::process::exit(2);
                }
            }
        }
        Command::Campaign {
            command:
                CampaignCommand::Run {
                    data,
                    config,
                    departements,
                    limit,
                    rate,
                    no_deliver,
                    db,
                },
        } => {
            let cfg = mes_relay::config::HubConfig::load(config.as_deref())?;
            if let Some(ds) = &departements {
                for d in ds {
                    if let Err(e) = mes_relay::enrolment::population::check_departement(d) {
                        eprintln!("--departements: {e}");
                        std::process::exit(2);
                    }
                }
            }
            let delivery = cfg.delivery(&data)?;
            let templates =
                mes_relay::outbox::notification::Templates::load(cfg.outbox.templates.as_deref())?;
            let relay = offline(&data, Some(&cfg), &db).await?;
            let hub = enrolment(&relay);
            let queued = mes_relay::enrolment::service::stats(&hub.tables)?.pending_notification;
            let bar = progress(queued.min(limit as u64), "notify");
            let report = mes_relay::enrolment::service::campaign(
                &hub.tables,
                &hub.policy,
                &hub.secrets,
                &mes_relay::enrolment::service::CampaignRun {
                    departements,
                    limit,
                    rate: rate.or(cfg.campaign.rate_per_second),
                },
                mes_protocol::time::UnixMillis::now,
                |n| bar.inc(n as u64),
            )?;
            bar.finish_and_clear();
            let delivered = if no_deliver {
                None
            } else {
                Some(deliver(hub, &templates, &delivery, usize::MAX)?)
            };
            println!(
                "{}",
                serde_json::json!({ "notified": report.notified, "delivered": delivered })
            );
            Ok(())
        }
        Command::Deliver {
            data,
            config,
            limit,
            db,
        } => {
            let cfg = mes_relay::config::HubConfig::load(config.as_deref())?;
            let delivery = cfg.delivery(&data)?;
            let templates =
                mes_relay::outbox::notification::Templates::load(cfg.outbox.templates.as_deref())?;
            let relay = offline(&data, Some(&cfg), &db).await?;
            let report = deliver(enrolment(&relay), &templates, &delivery, limit)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Sweep {
            data,
            config,
            now,
            db,
        } => {
            let relay = offline_configured(&data, config.as_deref(), &db).await?;
            let hub = enrolment(&relay);
            let now = now
                .map(|t| mes_protocol::time::UnixMillis(t.as_millisecond().max(0) as u64))
                .unwrap_or_else(mes_protocol::time::UnixMillis::now);
            let bar = progress(0, "sweep");
            let report =
                mes_relay::enrolment::service::sweep(&hub.tables, &hub.policy, now, |n| {
                    bar.inc(n as u64);
                })?;
            bar.finish_and_clear();
            let erased = relay.erase_due(now).await?;
            println!(
                "{}",
                serde_json::json!({
                    "auto_created": report.auto_created,
                    "deleted": report.deleted,
                    "reminders": report.reminders,
                    "spaces_erased": erased.len(),
                })
            );
            Ok(())
        }
        Command::Cert {
            command: CertCommand::Rotate { data },
        } => {
            let signing = mes_relay::signing::load_or_create(&data)?;
            let names = mes_relay::RelayConfig::new(data.clone()).tls_names;
            let rotation = mes_relay::server::tls::rotate(
                &data,
                &names,
                &signing,
                mes_protocol::time::UnixMillis::now(),
            )?;
            println!("{}", serde_json::to_string(&rotation)?);
            Ok(())
        }
        Command::Migrate { db } => match db.backend()? {
            mes_relay::server::Backend::Postgres(options) => {
                let applied =
                    mes_relay::store::postgres_store::migrate_database(&options).await?;
                println!("{}", serde_json::json!({ "applied": applied }));
                Ok(())
            }
            mes_relay::server::Backend::Sled => anyhow::bail!(
                "no PostgreSQL database given (--postgres, MES_RELAY_POSTGRES, --postgres-file or [postgres] in the configuration); the embedded store needs no migration"
            ),
        },
        Command::Backup { data, out } => {
            let report = mes_relay::backup::backup(&data, &out)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Restore { from, data } => match mes_relay::backup::restore(&from, &data) {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
            Err(e) => {
                eprintln!("restore refused: {e:#}");
                std::process::exit(2);
            }
        },
        Command::Stats { data, db } => {
            let relay = offline(&data, None, &db).await?;
            let stats = mes_relay::enrolment::service::stats(&enrolment(&relay).tables)?;
            println!("{}", serde_json::to_string(&stats)?);
            Ok(())
        }
        Command::Completions { shell } => {
            mes_client::shell::completions::<Cli>(shell, "mes-relay");
            Ok(())
        }
        Command::Man => Ok(mes_client::shell::man::<Cli>()?),
        Command::Mail {
            command:
                MailCommand::Returned {
                    data,
                    config,
                    file,
                    db,
                },
        } => {
            let text = read_csv(&file)?;
            let (nirs, mut bad) =
                mes_relay::checked_csv::parse_rows(&text, &["nir"], b',', |line, field| {
                    Ok((line, field(0)))
                });
            let relay = offline_configured(&data, config.as_deref(), &db).await?;
            let hub = enrolment(&relay);
            let now = mes_protocol::time::UnixMillis::now();
            let (mut emailed, mut undeliverable) = (0u64, 0u64);
            for (line, nir) in nirs {
                match mes_relay::enrolment::service::letter_returned(
                    &hub.tables,
                    &hub.policy,
                    &hub.secrets,
                    &nir,
                    now,
                ) {
                    Ok(mes_relay::enrolment::service::Returned::Emailed) => emailed += 1,
                    Ok(mes_relay::enrolment::service::Returned::Undeliverable) => {
                        undeliverable += 1;
                    }
                    Err(e) => bad.push(mes_relay::checked_csv::BadRow {
                        line,
                        reason: e.to_string(),
                    }),
                }
            }
            bad.sort_by_key(|b| b.line);
            for b in &bad {
                eprintln!("{}:{}: {}", file.display(), b.line, b.reason);
            }
            println!(
                "{}",
                serde_json::json!({
                    "emailed": emailed,
                    "undeliverable": undeliverable,
                    "refused": bad.len(),
                })
            );
            Ok(())
        }
        Command::OnBehalf {
            action,
            data,
            config,
            nir,
            reference,
            by,
            db,
        } => {
            let relay = offline_configured(&data, config.as_deref(), &db).await?;
            let hub = enrolment(&relay);
            let now = mes_protocol::time::UnixMillis::now();
            let status = match mes_relay::enrolment::service::on_behalf(
                &hub.tables,
                &hub.policy,
                &hub.secrets,
                &nir,
                (action, &by, &reference),
                now,
            ) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("nothing recorded: {e}");
                    std::process::exit(2);
                }
            };
            // A closed space is closed at the hub too: nobody reads it while archived.
            let person = mes_protocol::enrolment::nir::Nir::parse(&nir)
                .ok()
                .and_then(|n| hub.tables.person(n.as_str()).ok().flatten());
            let departement = person
                .as_ref()
                .map(|p| p.insured.departement.clone())
                .unwrap_or_default();
            let space = person.and_then(|p| p.account).map(|a| a.space);
            if let (
                mes_relay::enrolment::behalf::Action::Close,
                Some(space),
                mes_relay::enrolment::Status::Closed { purge_at, .. },
            ) = (action, space, &status)
            {
                relay
                    .set_closed(space, Some(*purge_at))
                    .await
                    .map_err(|e| anyhow::anyhow!("closing the space at the hub: {}", e.message))?;
            }
            println!(
                "{}",
                serde_json::json!({
                    "status": status.name(),
                    "detail": mes_relay::enrolment::service::describe(&status, &departement),
                })
            );
            Ok(())
        }
        Command::CourtRemoval {
            data,
            space,
            principal,
            reference,
            db,
        } => {
            let relay = offline(&data, None, &db).await?;
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

/// The hub's store, offline, with the enrolment policy of the configuration file.
async fn offline_configured(
    data: &std::path::Path,
    config: Option<&std::path::Path>,
    db: &Database,
) -> anyhow::Result<std::sync::Arc<mes_relay::handler::Relay>> {
    let cfg = mes_relay::config::HubConfig::load(config)?;
    offline(data, Some(&cfg), db).await
}

/// An operator's CSV file as text: UTF-8 with or without a byte-order mark, any other
/// encoding named (`checked_csv::decode`).
fn read_csv(file: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    mes_relay::checked_csv::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Moves the people already on file out of `rows` into `bad`, by line.
fn set_aside_on_file(
    tables: &mes_relay::enrolment::store::EnrolmentTables,
    rows: Vec<(u64, mes_relay::enrolment::population::Insured)>,
    bad: &mut Vec<mes_relay::checked_csv::BadRow>,
) -> anyhow::Result<Vec<mes_relay::enrolment::population::Insured>> {
    let nirs: Vec<&str> = rows.iter().map(|(_, r)| r.nir.as_str()).collect();
    let on_file: std::collections::HashSet<String> = tables.on_file(&nirs)?.into_iter().collect();
    let mut kept = Vec::with_capacity(rows.len());
    for (line, r) in rows {
        if on_file.contains(r.nir.as_str()) {
            bad.push(mes_relay::checked_csv::BadRow {
                line,
                reason: format!("NIR {} is already on file", r.nir.display()),
            });
        } else {
            kept.push(r);
        }
    }
    bad.sort_by_key(|b| b.line);
    Ok(kept)
}

/// Writes the rows not imported, with their line and reason (CSV `line,reason`),
/// owner-only: they hold people's names and NIRs.
fn write_rejects(
    path: &std::path::Path,
    bad: &[mes_relay::checked_csv::BadRow],
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(mes_relay::private_files::create_new(path)?);
    w.write_record(["line", "reason"])?;
    for b in bad {
        w.write_record([b.line.to_string(), b.reason.clone()])?;
    }
    w.flush()?;
    Ok(())
}

/// A field separator given on the command line: one ASCII character.
fn one_byte(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!("{s:?} is not one ASCII character (give , or ;)")),
    }
}

/// Names every bad row of an operator file and exits with status 2 (nothing imported).
fn refuse_rows(file: &std::path::Path, bad: &[mes_relay::checked_csv::BadRow]) -> ! {
    for b in bad {
        eprintln!("{}:{}: {}", file.display(), b.line, b.reason);
    }
    eprintln!(
        "{} bad row(s) in {}: nothing imported",
        bad.len(),
        file.display()
    );
    std::process::exit(2);
}

fn enrolment(relay: &mes_relay::handler::Relay) -> &mes_relay::enrolment::service::EnrolmentHub {
    relay
        .enrolment
        .get()
        .expect("the offline relay opens its enrolment")
}

/// A progress bar on standard error (hidden when it is not a terminal).
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = if len == 0 {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(len)
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:8} {bar:40} {pos}/{len} {per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn deliver(
    hub: &mes_relay::enrolment::service::EnrolmentHub,
    templates: &mes_relay::outbox::notification::Templates,
    delivery: &mes_relay::outbox::Delivery,
    limit: usize,
) -> anyhow::Result<mes_relay::outbox::DeliveryReport> {
    let bar = progress((hub.tables.outbox_len()).min(limit) as u64, "deliver");
    let r = mes_relay::outbox::deliver(
        &hub.tables,
        &hub.secrets.code_key,
        templates,
        delivery,
        limit,
        |n| bar.inc(n as u64),
    );
    bar.finish_and_clear();
    Ok(r?)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
