//! `mes`: scriptable subcommands over the daemon's local API (`--json` for scripts), and
//! `mes demo`, which runs a relay and two devices of one person in a temporary directory.

mod demo;
mod render;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mes_protocol::api::ApiCall;
use mes_protocol::ids::{BlobId, DeviceId, SpaceId};
use mes_protocol::record::RecordEdit;
use std::path::PathBuf;

use mes_daemon::api_client::ApiClient;

#[derive(Parser)]
#[command(
    name = "mes",
    version,
    about = "Mon espace santé, local-first: client en terminal / terminal client"
)]
struct Cli {
    /// Socket of the daemon (default: $MES_DATA/mesd.sock).
    #[arg(long, env = "MES_SOCKET", global = true)]
    socket: Option<PathBuf>,
    /// Space to act on (default: your first space).
    #[arg(long, global = true)]
    space: Option<SpaceId>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a relay and two devices in a temporary directory and show them syncing.
    Demo,
    /// Sync state per volume: cursor, head, pending uploads, online or not.
    Status,
    /// This device and its principal.
    Whoami,
    /// Notes (automerge volume).
    #[command(subcommand)]
    Note(NoteCmd),
    /// Medical profile (F2): conditions, treatments, allergies, hospitalisations,
    /// contacts, wishes, situation.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Vaccine doses and screenings done (F2.4, F10).
    #[command(subcommand)]
    Prevention(PreventionCmd),
    /// Vaccination and screening reminders (F5.2, F10).
    Reminders {
        /// How many months ahead.
        #[arg(long, default_value_t = 3)]
        months: u32,
    },
    /// Emergency and help numbers (15, 17, 18, 112, 114, ...).
    EmergencyNumbers,
    /// Journal (chained log volume).
    #[command(subcommand)]
    Log(LogCmd),
    /// Inbox (sealed drops).
    #[command(subcommand)]
    Inbox(InboxCmd),
    /// Spaces.
    #[command(subcommand)]
    Spaces(SpacesCmd),
    /// Add a device to this person.
    #[command(subcommand)]
    Pair(PairCmd),
    /// This person's devices.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Encrypted files.
    #[command(subcommand)]
    Blob(BlobCmd),
    /// Upload a snapshot of a volume so the relay can prune its log.
    Snapshot {
        /// Volume label: notes or journal.
        volume: String,
    },
    /// Start a new generation of a volume: a fresh document from the current state under
    /// a new key; the old history is dropped at the relay.
    Compact {
        /// Volume label: notes or journal.
        volume: String,
    },
    /// Print events (changes, connection) as they happen.
    Watch,
}

#[derive(Subcommand)]
enum NoteCmd {
    /// Set a note.
    Set { key: String, value: String },
    /// Print a note (several values if concurrent edits conflict).
    Get { key: String },
    /// List notes.
    List,
    /// Delete a note.
    Rm { key: String },
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// Print the profile, with any conflicting fields.
    Show,
    /// Add a record to a list section, or replace the one with the same "id", e.g.
    /// `mes profile put allergies '{"substance":"pénicilline","major":true}'`.
    Put {
        /// conditions, treatments, allergies, hospitalisations or contacts.
        section: String,
        /// The record as JSON.
        record: String,
    },
    /// Remove a record from a list section.
    Rm { section: String, id: String },
    /// Set a field of wishes or situation, e.g. `mes profile set situation.lives_alone true`.
    Set { field: String, value: String },
}

#[derive(Subcommand)]
enum PreventionCmd {
    /// Print the doses and acts.
    Show,
    /// Record a dose or an act, e.g.
    /// `mes prevention put doses '{"rule":"mmr","date":"2025-03-01"}'`.
    Put {
        /// doses or acts.
        section: String,
        /// The record as JSON.
        record: String,
    },
    /// Remove a dose or an act.
    Rm { section: String, id: String },
}

#[derive(Subcommand)]
enum LogCmd {
    /// Append an entry.
    Append { text: String },
    /// Print the journal.
    Read,
}

#[derive(Subcommand)]
enum InboxCmd {
    /// Drop a message.
    Drop { text: String },
    /// Read the inbox (owner).
    Read,
}

#[derive(Subcommand)]
enum SpacesCmd {
    /// List spaces.
    List,
    /// Create a space.
    Create { label: String },
}

#[derive(Subcommand)]
enum PairCmd {
    /// Show a code to type on the new device.
    Start,
    /// Join the person whose device shows CODE (on a fresh daemon).
    Join {
        code: String,
        #[arg(long, default_value = "device")]
        name: String,
    },
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// List devices.
    List,
    /// Revoke a device (starts a new key epoch).
    Revoke { device: DeviceId },
}

#[derive(Subcommand)]
enum BlobCmd {
    /// Encrypt and upload a file.
    Put { path: PathBuf },
    /// Fetch and decrypt a file.
    Get { blob: BlobId, out: PathBuf },
}

fn socket_path(cli: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(s) = cli {
        return Ok(s.clone());
    }
    let data = std::env::var_os("MES_DATA")
        .context("give --socket or set MES_DATA / indiquez --socket ou MES_DATA")?;
    Ok(PathBuf::from(data).join("mesd.sock"))
}

fn abs(p: PathBuf) -> anyhow::Result<String> {
    let p = if p.is_absolute() {
        p
    } else {
        std::env::current_dir()?.join(p)
    };
    Ok(p.to_string_lossy().into_owned())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("erreur / error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let call = match cli.command {
        Command::Demo => return demo::run().await.map(|_| std::process::ExitCode::SUCCESS),
        Command::Watch => {
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
        Command::Status => ApiCall::Status,
        Command::Whoami => ApiCall::Identity,
        Command::Note(NoteCmd::Set { key, value }) => ApiCall::NoteSet { key, value },
        Command::Note(NoteCmd::Get { key }) => ApiCall::NoteGet { key },
        Command::Note(NoteCmd::List) => ApiCall::NoteList,
        Command::Note(NoteCmd::Rm { key }) => ApiCall::NoteDelete { key },
        Command::Profile(ProfileCmd::Show) => ApiCall::ProfileGet,
        Command::Prevention(PreventionCmd::Show) => ApiCall::PreventionGet,
        Command::Prevention(PreventionCmd::Put { section, record }) => ApiCall::PreventionEdit {
            edit: RecordEdit::Put { section, record },
        },
        Command::Prevention(PreventionCmd::Rm { section, id }) => ApiCall::PreventionEdit {
            edit: RecordEdit::Remove { section, id },
        },
        Command::Reminders { months } => ApiCall::Reminders { months },
        Command::EmergencyNumbers => ApiCall::EmergencyNumbers,
        Command::Profile(ProfileCmd::Put { section, record }) => ApiCall::ProfileEdit {
            edit: RecordEdit::Put { section, record },
        },
        Command::Profile(ProfileCmd::Rm { section, id }) => ApiCall::ProfileEdit {
            edit: RecordEdit::Remove { section, id },
        },
        Command::Profile(ProfileCmd::Set { field, value }) => ApiCall::ProfileEdit {
            edit: RecordEdit::Set { field, value },
        },
        Command::Log(LogCmd::Append { text }) => ApiCall::LogAppend { text },
        Command::Log(LogCmd::Read) => ApiCall::LogRead,
        Command::Inbox(InboxCmd::Drop { text }) => ApiCall::InboxDrop { text },
        Command::Inbox(InboxCmd::Read) => ApiCall::InboxRead,
        Command::Spaces(SpacesCmd::List) => ApiCall::ListSpaces,
        Command::Spaces(SpacesCmd::Create { label }) => ApiCall::CreateSpace { label },
        Command::Pair(PairCmd::Start) => ApiCall::PairStart,
        Command::Pair(PairCmd::Join { code, name }) => ApiCall::PairJoin {
            code,
            device_name: name,
        },
        Command::Devices(DevicesCmd::List) => ApiCall::ListDevices,
        Command::Devices(DevicesCmd::Revoke { device }) => ApiCall::RevokeDevice { device },
        Command::Blob(BlobCmd::Put { path }) => ApiCall::BlobPut { path: abs(path)? },
        Command::Blob(BlobCmd::Get { blob, out }) => ApiCall::BlobGet {
            blob,
            out: abs(out)?,
        },
        Command::Snapshot { volume } => ApiCall::Snapshot { volume },
        Command::Compact { volume } => ApiCall::Compact { volume },
    };
    let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
    match c.call(cli.space, call).await? {
        Ok(reply) => {
            println!("{}", render::reply(&reply, cli.json)?);
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
