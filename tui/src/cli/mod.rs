//! The `mes` subcommands, parsed by clap, each family in its file with the local API
//! call it makes (`call`), so that a command is tested without a process: parse the
//! words, compare the call. [`plan`] turns a command into what `mes` does.

pub mod access;
pub mod devices;
pub mod documents;
pub mod enrolment;
pub mod pro;
pub mod record;

use clap::{Parser, Subcommand};
use mes_protocol::ids::SpaceId;
use mes_protocol::record::RecordKind;
use mes_protocol::wire::api::ApiCall;
use std::path::PathBuf;

pub use access::*;
pub use devices::*;
pub use documents::*;
pub use enrolment::*;
pub use pro::*;
pub use record::*;

#[derive(Parser)]
#[command(
    name = "mes",
    version,
    about = "Mon espace santé, local-first: client en terminal / terminal client"
)]
pub struct Cli {
    /// Socket of the daemon (default: $MES_DATA/mesd.sock, else
    /// $XDG_RUNTIME_DIR/mes/mesd.sock, else ~/.local/share/mes/mesd.sock: where mesd puts it).
    #[arg(long, env = "MES_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// Space to act on (default: your first space).
    #[arg(long, global = true)]
    pub space: Option<SpaceId>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub log: mes_client::logging::LogArgs,
    /// Without a subcommand, the terminal client opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// The sandbox account of seed 001 (Inaya M.) on a relay and a device in a temporary
    /// directory, with the terminal client open on it; everything is removed on quit.
    /// `--json` (or `--serve`) serves it without the client until Ctrl-C, printing a
    /// ready line with the socket.
    Demo {
        /// Serve without opening the terminal client.
        #[arg(long)]
        serve: bool,
    },
    /// Sync state per volume: cursor, head, pending uploads, online or not.
    Status {
        /// Wait, with a progress bar, until this device is online and at the head of
        /// every volume with nothing left to upload; exits 1 after --timeout.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 300, requires = "wait")]
        timeout: u64,
    },
    /// This device and its principal.
    Whoami,
    /// Shell completions on standard output (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: mes_client::shell::Shell,
    },
    /// The manual page (roff) on standard output.
    Man,
    /// Notes (automerge volume).
    #[command(subcommand)]
    Note(NoteCmd),
    /// Medical profile (F2): conditions, treatments, allergies, hospitalisations,
    /// contacts, wishes, situation, person.
    #[command(subcommand)]
    Profile(RecordCmd),
    /// Vaccine doses and screenings done (F2.4, F10): sections doses, acts.
    #[command(subcommand)]
    Prevention(RecordCmd),
    /// The emergency section (F2.10): `mes emergency set card.blood_group A+`.
    #[command(subcommand)]
    Emergency(RecordCmd),
    /// Care history (F3.8): section items.
    #[command(subcommand)]
    Care(RecordCmd),
    /// Documents (F3).
    #[command(subcommand)]
    Doc(DocCmd),
    /// Health measurements (F2.5).
    #[command(subcommand)]
    Measure(MeasureCmd),
    /// Medical agenda (F5): appointments and reminders.
    #[command(subcommand)]
    Agenda(AgendaCmd),
    /// Secure messages (F4).
    #[command(subcommand)]
    Message(MessageCmd),
    /// Export the whole space to a new directory (F12.2): FHIR R4 bundle, emergency
    /// summary (IPS), PDF summary, original files. Prints the absolute path.
    Export {
        /// Directory to create.
        dir: PathBuf,
    },
    /// Import a FHIR bundle written by `mes export` (the file or its directory).
    ImportFhir {
        /// bundle.json or the export directory.
        path: PathBuf,
    },
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
    /// Consents given to professionals and rights of relatives (F7, F9).
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// Who accessed the space: the verified access history (F8).
    #[command(subcommand)]
    Access(AccessCmd),
    /// A child's space (F9.1, F9.4): other legal representatives, the handover at 16
    /// (15 under the citizen-committee policy).
    #[command(subcommand)]
    Minor(MinorCmd),
    /// The catalogue of approved services (F6): list them, allow one to exchange chosen
    /// data with the space, revoke it.
    #[command(subcommand)]
    Services(ServicesCmd),
    /// Enrolment with the hub (F1): activate or oppose with the letter's code, a new
    /// code, reminders, closure and reopening. A parent does it once per child.
    Enrol {
        /// The profile it is for ("Moi", a child's first name): an activation then uses
        /// (or creates) that profile's space, and the answer is kept with the profile
        /// (`mes enrol profiles` lists them).
        #[arg(long, global = true)]
        profile: Option<String>,
        #[command(subcommand)]
        command: EnrolCmd,
    },
    /// Notifications (F8.2): list them, or choose the kinds (access, document, device).
    Notifications {
        /// Keep exactly these kinds on (none given: list the notifications).
        #[arg(long = "on")]
        on: Vec<String>,
        /// Turn every kind off.
        #[arg(long, conflicts_with = "on")]
        none: bool,
    },
    /// Emergency access without consent (F7.5): refuse SAMU-Centre 15, break-glass, both
    /// or neither (no --refuse allows both).
    EmergencyAccess {
        /// A mode to refuse.
        #[arg(long, value_enum)]
        refuse: Vec<Mode>,
    },
    /// The professional's side.
    #[command(subcommand)]
    Pro(ProCmd),
    /// Recovery when every device is lost (F12.4).
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Sharing anonymised data for research (F12.3), opt-in and revocable.
    #[command(subcommand)]
    Research(ResearchCmd),
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

pub fn abs(p: PathBuf) -> CliResult<String> {
    let p = if p.is_absolute() {
        p
    } else {
        std::env::current_dir()?.join(p)
    };
    Ok(p.to_string_lossy().into_owned())
}

pub fn socket_path(cli: &Option<PathBuf>) -> CliResult<PathBuf> {
    if let Some(s) = cli {
        return Ok(s.clone());
    }
    Ok(mes_client::paths::client_socket())
}

/// Why a command cannot be made into what `mes` does; each names the problem.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file or the terminal could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A secret's file descriptor gave nothing usable.
    #[error(transparent)]
    Secret(#[from] mes_client::ClientError),
    /// The words do not make a command.
    #[error("{0}")]
    Usage(String),
}

/// A command's outcome.
pub type CliResult<T> = Result<T, CliError>;

/// What `mes` does for a command.
pub enum Plan {
    /// `mes demo`: the sandbox account, served or with the client open.
    Demo {
        /// Serve only, without the client.
        serve: bool,
    },
    /// `mes watch`: print the daemon's events.
    Watch,
    /// `mes doc import`: a folder and its manifest.
    Import {
        /// The folder.
        dir: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// Check only.
        dry_run: bool,
    },
    /// `mes status --wait`: the status until this device is caught up.
    WaitCaughtUp {
        /// How long at most.
        timeout: std::time::Duration,
    },
    /// `mes completions SHELL`.
    Completions(mes_client::shell::Shell),
    /// `mes man`.
    Man,
    /// One call to the local API.
    Call(Box<ApiCall>),
}

/// What `mes` does for `command`; a bad argument is an error that names it.
pub fn plan(command: Command) -> CliResult<Plan> {
    Ok(Plan::Call(Box::new(match command {
        Command::Demo { serve } => return Ok(Plan::Demo { serve }),
        Command::Watch => return Ok(Plan::Watch),
        Command::Doc(DocCmd::Import {
            dir,
            manifest,
            dry_run,
        }) => {
            return Ok(Plan::Import {
                dir,
                manifest,
                dry_run,
            })
        }
        Command::Status {
            wait: true,
            timeout,
        } => {
            return Ok(Plan::WaitCaughtUp {
                timeout: std::time::Duration::from_secs(timeout),
            })
        }
        Command::Status { wait: false, .. } => ApiCall::Status,
        Command::Completions { shell } => return Ok(Plan::Completions(shell)),
        Command::Man => return Ok(Plan::Man),
        Command::Whoami => ApiCall::Identity,
        Command::Profile(c) => record_call(RecordKind::Profile, c),
        Command::Prevention(c) => record_call(RecordKind::Prevention, c),
        Command::Emergency(c) => record_call(RecordKind::Emergency, c),
        Command::Care(c) => record_call(RecordKind::Care, c),
        Command::Reminders { months } => ApiCall::Reminders { months },
        Command::EmergencyNumbers => ApiCall::EmergencyNumbers,
        Command::Export { dir } => ApiCall::Export { out: abs(dir)? },
        Command::ImportFhir { path } => ApiCall::ImportFhir { path: abs(path)? },
        Command::Enrol {
            command: EnrolCmd::Profiles,
            ..
        } => ApiCall::EnrolProfiles,
        Command::Enrol {
            profile,
            command: e,
        } => {
            use mes_protocol::enrolment::EnrolRequest as R;
            let request = match e {
                EnrolCmd::Activate {
                    holder,
                    code,
                    identifier,
                    password_fd,
                    email,
                } => R::Activate {
                    holder: holder.card(),
                    code: code.read()?,
                    identifier,
                    password: password(password_fd)?,
                    email,
                    space: mes_protocol::ids::SpaceId([0; 16]),
                },
                EnrolCmd::Oppose { holder, code } => R::Oppose {
                    holder: holder.card(),
                    code: code.read()?,
                },
                EnrolCmd::Regenerate { holder } => R::Regenerate {
                    holder: holder.card(),
                },
                EnrolCmd::Status { holder } => R::Status {
                    holder: holder.card(),
                },
                EnrolCmd::Reminders { holder, code, on } => R::Reminders {
                    holder: holder.card(),
                    code: code.read()?,
                    off: !on,
                },
                EnrolCmd::Close {
                    identifier,
                    password_fd,
                    express,
                } => R::Close {
                    identifier,
                    password: password(password_fd)?,
                    express,
                },
                EnrolCmd::Reopen {
                    identifier,
                    password_fd,
                } => R::Reopen {
                    identifier,
                    password: password(password_fd)?,
                },
                EnrolCmd::ResetPassword {
                    holder,
                    code,
                    password_fd,
                } => R::ResetPassword {
                    holder: holder.card(),
                    code: code.read()?,
                    password: password(password_fd)?,
                },
                EnrolCmd::ResetPasswordWithKeys {
                    identifier,
                    password_fd,
                } => R::ResetPasswordAsOwner {
                    identifier,
                    password: password(password_fd)?,
                    space: mes_protocol::ids::SpaceId([0; 16]),
                },
                EnrolCmd::Profiles => unreachable!("answered above"),
            };
            match profile {
                Some(profile) => ApiCall::EnrolFor { profile, request },
                None => ApiCall::Enrol { request },
            }
        }
        Command::Notifications { on, none } => {
            if none || !on.is_empty() {
                ApiCall::NotifyPrefs { kinds: on }
            } else {
                ApiCall::Notifications
            }
        }
        Command::EmergencyAccess { refuse } => ApiCall::EmergencyPolicy {
            refuse_centre15: refuse.iter().any(|m| matches!(m, Mode::Centre15)),
            refuse_break_glass: refuse.iter().any(|m| matches!(m, Mode::BreakGlass)),
        },
        Command::Snapshot { volume } => ApiCall::Snapshot { volume },
        Command::Compact { volume } => ApiCall::Compact { volume },
        Command::Access(c) => c.call()?,
        Command::Agenda(c) => c.call()?,
        Command::Blob(c) => c.call()?,
        Command::Consent(c) => c.call()?,
        Command::Devices(c) => c.call()?,
        Command::Doc(c) => c.call()?,
        Command::Inbox(c) => c.call()?,
        Command::Log(c) => c.call()?,
        Command::Measure(c) => c.call()?,
        Command::Message(c) => c.call()?,
        Command::Minor(c) => c.call()?,
        Command::Note(c) => c.call()?,
        Command::Pair(c) => c.call()?,
        Command::Pro(c) => c.call()?,
        Command::Recovery(c) => c.call()?,
        Command::Research(c) => c.call()?,
        Command::Services(c) => c.call()?,
        Command::Spaces(c) => c.call()?,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call `mes WORDS…` makes.
    fn call(words: &[&str]) -> Result<ApiCall, String> {
        let cli = Cli::try_parse_from(std::iter::once("mes").chain(words.iter().copied()))
            .map_err(|e| e.to_string())?;
        match plan(cli.command.ok_or("no command")?).map_err(|e| e.to_string())? {
            Plan::Call(c) => Ok(*c),
            _ => Err("not a single call".into()),
        }
    }

    #[test]
    fn a_search_carries_its_words_and_filters() {
        let c = call(&[
            "doc",
            "search",
            "fracture",
            "poignet",
            "--category",
            "imaging",
            "--from",
            "2024-01-01",
        ])
        .unwrap();
        let ApiCall::DocSearch { query } = c else {
            panic!("{c:?}")
        };
        assert_eq!(query.text, "fracture poignet");
        assert_eq!(query.category, "imaging");
        assert_eq!(query.from, "2024-01-01");
        assert_eq!(query.limit, 0);
    }

    #[test]
    fn a_delegation_names_its_role_volumes_and_end() {
        let p = mes_protocol::ids::PrincipalId([7; 32]);
        let c = call(&[
            "consent",
            "delegate",
            &p.to_string(),
            "--role",
            "write",
            "--volume",
            "profile",
            "--until",
            "2027-06-30T00:00:00+02:00",
        ])
        .unwrap();
        assert_eq!(
            c,
            ApiCall::Delegate {
                principal: p,
                role: mes_protocol::access::membership::Role::Write,
                volumes: vec!["profile".into()],
                until: Some("2027-06-30T00:00:00+02:00".into()),
            }
        );
    }

    #[test]
    fn the_emergency_refusals_are_kept_apart() {
        assert_eq!(
            call(&["emergency-access", "--refuse", "break-glass"]).unwrap(),
            ApiCall::EmergencyPolicy {
                refuse_centre15: false,
                refuse_break_glass: true
            }
        );
    }

    #[test]
    fn relative_paths_become_absolute_and_bad_words_are_named() {
        let ApiCall::Export { out } = call(&["export", "archive"]).unwrap() else {
            panic!()
        };
        assert!(std::path::Path::new(&out).is_absolute() && out.ends_with("archive"));
        let e = call(&["measure", "add"]).unwrap_err();
        assert!(e.contains("<KIND>") || e.contains("required"), "{e}");
        assert!(matches!(
            plan(
                Cli::try_parse_from(["mes", "doc", "import", "d", "--manifest", "m.csv"])
                    .unwrap()
                    .command
                    .unwrap()
            )
            .unwrap(),
            Plan::Import { .. }
        ));
    }
}
