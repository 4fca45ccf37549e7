//! `mes`: with no subcommand, the terminal client (`mes_tui::app`) on the local daemon;
//! scriptable subcommands over the daemon's local API (`--json` for scripts); and
//! `mes demo`, the sandbox account on a relay and a device in a temporary directory, with
//! the terminal client open on it.

mod demo;
mod import;
mod manifest;
mod render;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mes_protocol::ids::{BlobId, DeviceId, PrincipalId, SpaceId};
use mes_protocol::record::documents::{DocQuery, NewDocument};
use mes_protocol::record::measurements::{MeasureQuery, Measurement};
use mes_protocol::record::messages::Message;
use mes_protocol::record::{RecordEdit, RecordKind};
use mes_protocol::wire::api::ApiCall;
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
    /// Without a subcommand, the terminal client opens.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
    Status,
    /// This device and its principal.
    Whoami,
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
enum RecordCmd {
    /// Print the record, with any conflicting fields.
    Show,
    /// Add a record to a list section, or replace the one with the same "id", e.g.
    /// `mes profile put allergies '{"substance":"pénicilline","major":true}'`.
    Put {
        /// The section (profile: conditions, treatments, allergies, hospitalisations,
        /// contacts; prevention: doses, acts; care: items).
        section: String,
        /// The record as JSON.
        record: String,
    },
    /// Remove a record from a list section.
    Rm { section: String, id: String },
    /// Set a field, e.g. `mes profile set situation.lives_alone true`.
    Set { field: String, value: String },
}

#[derive(Subcommand)]
enum DocCmd {
    /// Add a file: `mes doc add scan.pdf --category biology --title "Bilan" --date 2026-01-27`.
    Add {
        file: PathBuf,
        /// Category id (summary, prescriptions, imaging, biology, reports, prevention,
        /// certificates, administrative, questionnaire, other).
        #[arg(long)]
        category: String,
        /// Type code (LOINC or MES-*; default: the category's first).
        #[arg(long = "type", default_value = "")]
        type_code: String,
        /// Title (default: the file name).
        #[arg(long, default_value = "")]
        title: String,
        /// Date of the document, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Author.
        #[arg(long, default_value = "")]
        author: String,
    },
    /// List documents, newest first.
    List {
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Search: keywords over titles and metadata, with filters.
    Search {
        /// Keywords (all must match; case and accents ignored).
        words: Vec<String>,
        #[arg(long, default_value = "")]
        category: String,
        #[arg(long = "type", default_value = "")]
        type_code: String,
        #[arg(long, default_value = "")]
        author: String,
        /// From date, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        from: String,
        /// To date, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        to: String,
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Write a document's file to PATH; prints the absolute path written.
    Get {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a folder of past documents (F3.7) from a manifest: CSV (`,` or `;`) or
    /// JSON with columns file, category, date and optional title, type, class, author,
    /// id. Every row is checked first: one bad row and nothing is imported. Re-running
    /// adds nothing twice.
    Import {
        /// The folder holding the files (manifest paths are relative to it).
        dir: PathBuf,
        /// The manifest (.csv, .json or .jsonl).
        #[arg(long)]
        manifest: PathBuf,
        /// Check only, import nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Hide a document from professionals (F3.3).
    Hide { id: String },
    /// Show a hidden document to professionals again.
    Unhide { id: String },
    /// Keep a document from your parents (a minor whose space was handed over, F9.1).
    HideFromParents { id: String },
    /// Make a document visible to the legal representatives: cannot be undone.
    ShowToParents {
        id: String,
        /// Confirm that this cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Subcommand)]
enum MeasureCmd {
    /// Record a measurement: `mes measure add weight 61.5 --at 2026-11-24T08:30`.
    Add {
        kind: String,
        value: f64,
        /// When (default: now).
        #[arg(long, default_value = "")]
        at: String,
    },
    /// List measurements, oldest first.
    List {
        #[arg(default_value = "")]
        kind: String,
        #[arg(long, default_value = "")]
        from: String,
        #[arg(long, default_value = "")]
        to: String,
    },
}

#[derive(Subcommand)]
enum AgendaCmd {
    /// Add an appointment: `mes agenda add --at 2026-12-03T14:30 --title "Dentiste"`.
    Add {
        #[arg(long)]
        at: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        with: String,
        #[arg(long, default_value = "")]
        place: String,
        #[arg(long, default_value_t = 30)]
        minutes: u32,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Appointments and reminders.
    List {
        /// First day (default: today).
        #[arg(long, default_value = "")]
        from: String,
        #[arg(long, default_value_t = 3)]
        months: u32,
    },
    /// Remove an appointment.
    Rm { id: String },
}

#[derive(Subcommand)]
enum MessageCmd {
    /// Threads and their messages.
    List,
    /// Reply in a thread.
    Reply {
        thread: String,
        text: String,
        /// Attach a document by id (repeatable).
        #[arg(long)]
        attach: Vec<String>,
    },
    /// Start a thread (normally a professional does, F4.2).
    New {
        #[arg(long)]
        subject: String,
        text: String,
    },
    /// Mark a message read (the read receipt).
    Read { id: String },
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
    /// Join the person whose device shows the code (on a fresh daemon); the code is asked
    /// at a prompt, or read from --code-fd (on the command line it shows in `ps`).
    Join {
        /// The code (visible to other users of the machine: prefer the prompt).
        code: Option<String>,
        /// File descriptor to read the code from.
        #[arg(long, conflicts_with = "code")]
        code_fd: Option<u32>,
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
enum ServicesCmd {
    /// Every approved service: criteria, eco-score, hosting, suspension, what you allow.
    List,
    /// Allows a service to exchange data with the space, e.g.
    /// `mes services allow tensio-suivi --data measurements`; without --data, all it
    /// was approved for.
    Allow {
        /// The service's id.
        service: String,
        /// Data items among those it was approved for (comma-separated).
        #[arg(long, value_delimiter = ',')]
        data: Vec<String>,
    },
    /// Revokes everything a service was allowed.
    Revoke {
        /// The service's id.
        service: String,
    },
}

#[derive(Subcommand)]
enum ConsentCmd {
    /// Let a professional of the directory read what the habilitation matrix allows
    /// for their profession.
    Give {
        /// RPPS number.
        rpps: String,
        /// Keep a volume (documents/mental, profile) or a group (mental) from them.
        #[arg(long = "except")]
        except: Vec<String>,
    },
    /// Withdraw every right of a principal (starts a new key epoch on what they read).
    Withdraw { principal: PrincipalId },
    /// Who holds which rights.
    List,
    /// Block a professional or an establishment (only you can).
    Block {
        #[arg(long)]
        rpps: Option<String>,
        #[arg(long)]
        structure: Option<String>,
    },
    /// Lift a block.
    Unblock {
        #[arg(long)]
        rpps: Option<String>,
        #[arg(long)]
        structure: Option<String>,
    },
    /// Give a relative, trusted person, caregiver or guardian access (F9.2): on some
    /// volumes or the whole space, until a time if given; revoke with `withdraw`.
    Delegate {
        principal: PrincipalId,
        #[arg(long, value_enum, default_value = "read")]
        role: DelegateRole,
        /// A volume label (profile, emergency, documents/care…); none: the whole space.
        #[arg(long = "volume")]
        volumes: Vec<String>,
        /// RFC 3339 end, e.g. 2027-06-30T00:00:00+02:00.
        #[arg(long)]
        until: Option<String>,
    },
    /// A guardian within a protection measure (F9.3): manages the space beside you until
    /// the measure ends, then loses access.
    Guardian {
        principal: PrincipalId,
        /// RFC 3339 end of the measure, e.g. 2031-06-30T00:00:00+02:00.
        #[arg(long)]
        until: String,
    },
    /// Consent once to an establishment's care team (each member logged by name).
    Team {
        structure: String,
        #[arg(long = "except")]
        except: Vec<String>,
    },
    /// What you blocked.
    Blocks,
    /// Consent requests professionals sent you.
    Requests,
    /// Designate your médecin traitant (reads hidden documents under law-2022).
    Attending {
        rpps: String,
        /// law-2022 or citizen-committee (the hub's when absent).
        #[arg(long)]
        policy: Option<String>,
        /// Keep a volume or group from them (citizen-committee only; you will be warned).
        #[arg(long = "except")]
        except: Vec<String>,
    },
}

#[derive(Subcommand)]
enum MinorCmd {
    /// Give another legal representative (a second parent, a step-parent the parents
    /// chose) the management of the child's space.
    AddParent { principal: PrincipalId },
    /// Hand the child's space over to the child (from the handover age): they own it,
    /// you keep managing what they do not keep private.
    Handover {
        /// The child's principal (`mes whoami` on their device).
        #[arg(long)]
        to: PrincipalId,
        /// The child's recipient (`mes whoami` on their device).
        #[arg(long)]
        recipient: String,
    },
}

/// The NIR and carte Vitale serial, as on the card.
#[derive(clap::Args)]
struct Holder {
    /// NIR (with or without its key; spaces allowed).
    #[arg(long)]
    nir: String,
    /// Carte Vitale serial.
    #[arg(long)]
    serial: String,
}

impl Holder {
    fn card(self) -> mes_protocol::enrolment::CardHolder {
        mes_protocol::enrolment::CardHolder {
            nir: self.nir,
            vitale_serial: self.serial,
        }
    }
}

#[derive(Subcommand)]
enum EnrolCmd {
    /// The profiles enrolled from this device (with --profile) and their last status:
    /// "En attente de décision" until someone activates or opposes.
    Profiles,
    /// Activate: the space given with --space (or the only one) becomes the person's;
    /// the password is read from a file descriptor.
    Activate {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
        /// Identifier to choose (8 characters or more, not an email).
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from (8+ characters, upper, lower,
        /// digit, special).
        #[arg(long)]
        password_fd: u32,
        /// Contact email to keep (empty: none).
        #[arg(long, default_value = "")]
        email: String,
    },
    /// Oppose the automatic creation (you may still activate later).
    Oppose {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
    },
    /// Ask for a new code, sent to the email on file.
    Regenerate {
        #[command(flatten)]
        holder: Holder,
    },
    /// Where the enrolment stands.
    Status {
        #[command(flatten)]
        holder: Holder,
    },
    /// Turn the reminders off (or back on with --on).
    Reminders {
        #[command(flatten)]
        holder: Holder,
        #[command(flatten)]
        code: CodeArg,
        /// Turn them back on.
        #[arg(long)]
        on: bool,
    },
    /// Close the space with the hub account (export it first: `mes export`).
    Close {
        /// Hub identifier.
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from.
        #[arg(long)]
        password_fd: u32,
        /// Delete within three months instead of archiving for ten years.
        #[arg(long)]
        express: bool,
    },
    /// Reopen a closed space: what is archived is restored.
    Reopen {
        /// Hub identifier.
        #[arg(long)]
        identifier: String,
        /// File descriptor to read the password from.
        #[arg(long)]
        password_fd: u32,
    },
}

/// A provisional code (issue 22, finding 10): asked at a prompt, or read from a file
/// descriptor as passwords are, so that it never shows in the process list; `--code`
/// remains for scripts that accept that.
#[derive(clap::Args)]
struct CodeArg {
    /// The provisional code (visible to other users in `ps`: prefer the prompt or
    /// --code-fd).
    #[arg(long)]
    code: Option<String>,
    /// File descriptor to read the provisional code from.
    #[arg(long, conflicts_with = "code")]
    code_fd: Option<u32>,
}

impl CodeArg {
    fn read(self) -> anyhow::Result<String> {
        code_from(
            self.code,
            self.code_fd,
            "Code provisoire / provisional code",
        )
    }
}

/// A code from the command line, a file descriptor, or a prompt on the terminal.
fn code_from(given: Option<String>, fd: Option<u32>, what: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(c) = given {
        return Ok(c);
    }
    if let Some(fd) = fd {
        return passphrase(Some(fd))?.ok_or_else(|| anyhow::anyhow!("no code on descriptor {fd}"));
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "{what}: type it at the prompt on a terminal, or give it with --code-fd N"
    );
    eprint!("{what} : ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

fn password(fd: u32) -> anyhow::Result<String> {
    passphrase(Some(fd))?.ok_or_else(|| anyhow::anyhow!("no password on descriptor {fd}"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DelegateRole {
    /// Read.
    Read,
    /// Read and write.
    Write,
    /// Manage, as a guardian.
    Admin,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// SAMU-Centre 15.
    #[value(name = "centre-15")]
    Centre15,
    /// Bris de glace.
    BreakGlass,
}

impl From<Mode> for mes_protocol::access::escrow::EscrowMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Centre15 => mes_protocol::access::escrow::EscrowMode::Centre15,
            Mode::BreakGlass => mes_protocol::access::escrow::EscrowMode::BreakGlass,
        }
    }
}

#[derive(Subcommand)]
enum RecoveryCmd {
    /// Write a recovery kit: locked by a passphrase read from a file descriptor, or split
    /// among trusted persons (--split 2/3 writes KIT.share-1.txt ...).
    Kit {
        out: PathBuf,
        #[arg(long, conflicts_with = "split")]
        passphrase_fd: Option<u32>,
        #[arg(long, value_parser = parse_split)]
        split: Option<(u8, u8)>,
    },
    /// Restore this fresh daemon from a kit, with its passphrase or enough shares.
    Restore {
        kit: PathBuf,
        #[arg(long, conflicts_with = "share")]
        passphrase_fd: Option<u32>,
        #[arg(long)]
        share: Vec<PathBuf>,
    },
}

fn parse_split(s: &str) -> Result<(u8, u8), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: write K/N, e.g. 2/3"))?;
    let k: u8 = k.parse().map_err(|_| format!("{k:?} is not a number"))?;
    let n: u8 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
    Ok((k, n))
}

fn passphrase(fd: Option<u32>) -> anyhow::Result<Option<String>> {
    fd.map(
        |fd| match mes_daemon::devices::unlock::Unlock::from_fd(fd)? {
            mes_daemon::devices::unlock::Unlock::Passphrase(p) => Ok(p.to_string()),
            _ => anyhow::bail!("file descriptor {fd} gave no passphrase"),
        },
    )
    .transpose()
}

#[derive(Subcommand)]
enum ResearchCmd {
    /// Share anonymised data for research.
    OptIn,
    /// Stop sharing (a later opt-in gets an unlinkable pseudonym).
    OptOut,
    /// Write research.json into DIR (opted in only).
    Export { dir: PathBuf },
}

/// A document a professional sends or holds.
#[derive(clap::Args)]
struct ProDoc {
    path: PathBuf,
    #[arg(long, default_value = "")]
    title: String,
    #[arg(long, default_value = "reports")]
    category: String,
    /// YYYY-MM-DD.
    #[arg(long)]
    date: String,
}

impl ProDoc {
    fn new_document(self) -> anyhow::Result<mes_protocol::record::documents::NewDocument> {
        Ok(mes_protocol::record::documents::NewDocument {
            path: abs(self.path)?,
            title: self.title,
            category: self.category,
            date: self.date,
            ..Default::default()
        })
    }
}

#[derive(Subcommand)]
enum ProCmd {
    /// Emergency access to the space given with --space (logged, notified to the person).
    Emergency {
        #[arg(long, value_enum)]
        mode: Mode,
    },
    /// The spaces you read or feed (your patients).
    Patients,
    /// Send a document into the patient's space (--space), readable by them only.
    SendDoc(ProDoc),
    /// Start a message thread with the patient (--space).
    Message {
        #[arg(long)]
        subject: String,
        body: String,
    },
    /// Send an appointment to the patient's agenda (--space).
    Appointment {
        /// RFC 3339 time, e.g. 2026-12-10T09:30:00+01:00.
        #[arg(long)]
        at: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        place: String,
        #[arg(long, default_value_t = 30)]
        minutes: u32,
    },
    /// Ask the patient (--space) for consent.
    AskConsent { note: String },
    /// Hold a document for a person whose space nobody holds keys to yet (F1.5): kept on
    /// this device, delivered into their space once they activate it.
    HoldDoc {
        /// The person's NIR.
        nir: String,
        #[command(flatten)]
        doc: ProDoc,
    },
    /// Hold the first message of a thread for such a person (F1.5).
    HoldMessage {
        /// The person's NIR.
        nir: String,
        #[arg(long)]
        subject: String,
        body: String,
    },
    /// What this device holds for people without a device yet.
    Held,
    /// Deliver what is held for people who activated since.
    DeliverHeld,
}

#[derive(Subcommand)]
enum AccessCmd {
    /// The verified access history, with its alarm if the relay's history failed a check.
    History,
    /// Flag an entry as suspicious.
    Flag { seq: u64 },
}

#[derive(Subcommand)]
enum BlobCmd {
    /// Encrypt and upload a file.
    Put { path: PathBuf },
    /// Fetch and decrypt a file.
    Get { blob: BlobId, out: PathBuf },
}

fn record_call(kind: RecordKind, c: RecordCmd) -> ApiCall {
    match c {
        RecordCmd::Show => ApiCall::RecordGet { kind },
        RecordCmd::Put { section, record } => ApiCall::RecordEdit {
            kind,
            edit: RecordEdit::Put { section, record },
        },
        RecordCmd::Rm { section, id } => ApiCall::RecordEdit {
            kind,
            edit: RecordEdit::Remove { section, id },
        },
        RecordCmd::Set { field, value } => ApiCall::RecordEdit {
            kind,
            edit: RecordEdit::Set { field, value },
        },
    }
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
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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
    let call = match command {
        Command::Demo { serve } => {
            let ui = !(serve || cli.json);
            return demo::run(cli.json, ui.then_some(started))
                .await
                .map(|_| std::process::ExitCode::SUCCESS);
        }
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
        Command::Doc(DocCmd::Import {
            dir,
            manifest,
            dry_run,
        }) => {
            let mut c = ApiClient::connect(&socket_path(&cli.socket)?).await?;
            let ok = import::run(&mut c, cli.space, &dir, &manifest, dry_run, cli.json).await?;
            return Ok(std::process::ExitCode::from(if ok { 0 } else { 1 }));
        }
        Command::Status => ApiCall::Status,
        Command::Whoami => ApiCall::Identity,
        Command::Note(NoteCmd::Set { key, value }) => ApiCall::NoteSet { key, value },
        Command::Note(NoteCmd::Get { key }) => ApiCall::NoteGet { key },
        Command::Note(NoteCmd::List) => ApiCall::NoteList,
        Command::Note(NoteCmd::Rm { key }) => ApiCall::NoteDelete { key },
        Command::Profile(c) => record_call(RecordKind::Profile, c),
        Command::Prevention(c) => record_call(RecordKind::Prevention, c),
        Command::Emergency(c) => record_call(RecordKind::Emergency, c),
        Command::Care(c) => record_call(RecordKind::Care, c),
        Command::Reminders { months } => ApiCall::Reminders { months },
        Command::EmergencyNumbers => ApiCall::EmergencyNumbers,
        Command::Doc(DocCmd::Add {
            file,
            category,
            type_code,
            title,
            date,
            author,
        }) => ApiCall::DocAdd {
            doc: NewDocument {
                path: abs(file)?,
                title,
                category,
                type_code,
                date,
                author,
                ..Default::default()
            },
        },
        Command::Doc(DocCmd::List { limit }) => ApiCall::DocSearch {
            query: DocQuery {
                limit,
                ..Default::default()
            },
        },
        Command::Doc(DocCmd::Search {
            words,
            category,
            type_code,
            author,
            from,
            to,
            limit,
        }) => ApiCall::DocSearch {
            query: DocQuery {
                text: words.join(" "),
                category,
                type_code,
                author,
                from,
                to,
                hidden: None,
                limit,
                excerpts: false,
            },
        },
        Command::Doc(DocCmd::Get { id, out }) => ApiCall::DocGet { id, out: abs(out)? },
        Command::Doc(DocCmd::Hide { id }) => ApiCall::DocHide { id, hidden: true },
        Command::Doc(DocCmd::Unhide { id }) => ApiCall::DocHide { id, hidden: false },
        Command::Doc(DocCmd::ShowToParents { id, confirm }) => ApiCall::DocShowToRepresentatives {
            id,
            confirmed: confirm,
        },
        Command::Measure(MeasureCmd::Add { kind, value, at }) => ApiCall::MeasureAdd {
            points: vec![Measurement {
                kind,
                value,
                at: if at.is_empty() {
                    jiff::Zoned::now()
                        .datetime()
                        .strftime("%Y-%m-%dT%H:%M")
                        .to_string()
                } else {
                    at
                },
                ..Default::default()
            }],
        },
        Command::Measure(MeasureCmd::List { kind, from, to }) => ApiCall::MeasureList {
            query: MeasureQuery { kind, from, to },
        },
        Command::Agenda(AgendaCmd::Add {
            at,
            title,
            with,
            place,
            minutes,
            notes,
        }) => ApiCall::RecordEdit {
            kind: RecordKind::Agenda,
            edit: RecordEdit::Put {
                section: "appointments".into(),
                record: serde_json::json!({
                    "at": at, "title": title, "with": with, "place": place,
                    "minutes": minutes, "notes": notes,
                    "source": { "kind": "person", "name": "" },
                })
                .to_string(),
            },
        },
        Command::Agenda(AgendaCmd::List { from, months }) => ApiCall::AgendaList { from, months },
        Command::Agenda(AgendaCmd::Rm { id }) => ApiCall::RecordEdit {
            kind: RecordKind::Agenda,
            edit: RecordEdit::Remove {
                section: "appointments".into(),
                id,
            },
        },
        Command::Message(MessageCmd::List) => ApiCall::RecordGet {
            kind: RecordKind::Messages,
        },
        Command::Message(MessageCmd::Reply {
            thread,
            text,
            attach,
        }) => ApiCall::MessagePost {
            message: Message {
                thread,
                body: text,
                attachments: attach,
                ..Default::default()
            },
            subject: String::new(),
        },
        Command::Message(MessageCmd::New { subject, text }) => ApiCall::MessagePost {
            message: Message {
                body: text,
                ..Default::default()
            },
            subject,
        },
        Command::Message(MessageCmd::Read { id }) => ApiCall::MessageRead { id },
        Command::Export { dir } => ApiCall::Export { out: abs(dir)? },
        Command::ImportFhir { path } => ApiCall::ImportFhir { path: abs(path)? },
        Command::Log(LogCmd::Append { text }) => ApiCall::LogAppend { text },
        Command::Log(LogCmd::Read) => ApiCall::LogRead,
        Command::Inbox(InboxCmd::Drop { text }) => ApiCall::InboxDrop { text },
        Command::Inbox(InboxCmd::Read) => ApiCall::InboxRead,
        Command::Spaces(SpacesCmd::List) => ApiCall::ListSpaces,
        Command::Spaces(SpacesCmd::Create { label }) => ApiCall::CreateSpace { label },
        Command::Pair(PairCmd::Start) => ApiCall::PairStart,
        Command::Pair(PairCmd::Join {
            code,
            code_fd,
            name,
        }) => ApiCall::PairJoin {
            code: code_from(code, code_fd, "Code d'appairage / pairing code")?,
            device_name: name,
        },
        Command::Devices(DevicesCmd::List) => ApiCall::ListDevices,
        Command::Devices(DevicesCmd::Revoke { device }) => ApiCall::RevokeDevice { device },
        Command::Consent(ConsentCmd::Give { rpps, except }) => ApiCall::Consent { rpps, except },
        Command::Consent(ConsentCmd::Withdraw { principal }) => ApiCall::Withdraw { principal },
        Command::Consent(ConsentCmd::List) => ApiCall::Consents,
        Command::Services(ServicesCmd::List) => ApiCall::Catalogue,
        Command::Services(ServicesCmd::Allow { service, data }) => {
            ApiCall::AllowService { service, data }
        }
        Command::Services(ServicesCmd::Revoke { service }) => ApiCall::RevokeService { service },
        Command::Consent(ConsentCmd::Block { rpps, structure }) => {
            ApiCall::Block { rpps, structure }
        }
        Command::Consent(ConsentCmd::Unblock { rpps, structure }) => {
            ApiCall::Unblock { rpps, structure }
        }
        Command::Consent(ConsentCmd::Blocks) => ApiCall::Blocks,
        Command::Consent(ConsentCmd::Delegate {
            principal,
            role,
            volumes,
            until,
        }) => ApiCall::Delegate {
            principal,
            role: match role {
                DelegateRole::Read => mes_protocol::access::membership::Role::Read,
                DelegateRole::Write => mes_protocol::access::membership::Role::Write,
                DelegateRole::Admin => mes_protocol::access::membership::Role::Admin,
            },
            volumes,
            until,
        },
        Command::Consent(ConsentCmd::Guardian { principal, until }) => ApiCall::Delegate {
            principal,
            role: mes_protocol::access::membership::Role::Admin,
            volumes: Vec::new(),
            until: Some(until),
        },
        Command::Minor(MinorCmd::AddParent { principal }) => ApiCall::Delegate {
            principal,
            role: mes_protocol::access::membership::Role::Admin,
            volumes: Vec::new(),
            until: None,
        },
        Command::Minor(MinorCmd::Handover { to, recipient }) => ApiCall::HandOver { to, recipient },
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
                EnrolCmd::Profiles => unreachable!("answered above"),
            };
            match profile {
                Some(profile) => ApiCall::EnrolFor { profile, request },
                None => ApiCall::Enrol { request },
            }
        }
        Command::Doc(DocCmd::HideFromParents { id }) => ApiCall::DocHideFromParents { id },
        Command::Consent(ConsentCmd::Team { structure, except }) => {
            ApiCall::ConsentTeam { structure, except }
        }
        Command::Consent(ConsentCmd::Requests) => ApiCall::ConsentRequests,
        Command::Consent(ConsentCmd::Attending {
            rpps,
            policy,
            except,
        }) => ApiCall::Attending {
            rpps,
            policy,
            except,
        },
        Command::Access(AccessCmd::History) => ApiCall::AccessHistory,
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
        Command::Recovery(RecoveryCmd::Kit {
            out,
            passphrase_fd,
            split,
        }) => ApiCall::RecoveryKit {
            out: abs(out)?,
            passphrase: passphrase(passphrase_fd)?,
            split,
        },
        Command::Recovery(RecoveryCmd::Restore {
            kit,
            passphrase_fd,
            share,
        }) => ApiCall::Restore {
            kit: abs(kit)?,
            passphrase: passphrase(passphrase_fd)?,
            shares: share
                .iter()
                .map(std::fs::read_to_string)
                .collect::<Result<_, _>>()?,
        },
        Command::Research(ResearchCmd::OptIn) => ApiCall::Research { share: true },
        Command::Research(ResearchCmd::OptOut) => ApiCall::Research { share: false },
        Command::Research(ResearchCmd::Export { dir }) => {
            ApiCall::ResearchExport { out: abs(dir)? }
        }
        Command::Pro(ProCmd::Patients) => ApiCall::Patients,
        Command::Pro(ProCmd::SendDoc(doc)) => ApiCall::SendDocument {
            doc: doc.new_document()?,
        },
        Command::Pro(ProCmd::Message { subject, body }) => ApiCall::SendMessage { subject, body },
        Command::Pro(ProCmd::HoldDoc { nir, doc }) => ApiCall::HoldDocument {
            nir,
            doc: doc.new_document()?,
        },
        Command::Pro(ProCmd::HoldMessage { nir, subject, body }) => {
            ApiCall::HoldMessage { nir, subject, body }
        }
        Command::Pro(ProCmd::Held) => ApiCall::Held,
        Command::Pro(ProCmd::DeliverHeld) => ApiCall::DeliverHeld,
        Command::Pro(ProCmd::Appointment {
            at,
            title,
            place,
            minutes,
        }) => ApiCall::SendAppointment {
            appointment: mes_protocol::record::agenda::Appointment {
                at,
                title,
                place,
                minutes,
                ..Default::default()
            },
        },
        Command::Pro(ProCmd::AskConsent { note }) => ApiCall::AskConsent { note },
        Command::Pro(ProCmd::Emergency { mode }) => ApiCall::EmergencyAccess { mode: mode.into() },
        Command::Access(AccessCmd::Flag { seq }) => ApiCall::FlagAccess { seq },
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
