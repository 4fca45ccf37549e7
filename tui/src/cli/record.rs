//! The record's commands: notes, the typed record documents, measurements, agenda, messages, the journal and the inbox.

use clap::Subcommand;
use mes_protocol::record::measurements::{MeasureQuery, Measurement};
use mes_protocol::record::messages::Message;
use mes_protocol::record::{RecordEdit, RecordKind};
use mes_protocol::wire::api::ApiCall;

use super::CliResult;

#[derive(Subcommand)]
pub enum NoteCmd {
    /// Set a note.
    Set { key: String, value: String },
    /// Print a note (several values if concurrent edits conflict).
    Get { key: String },
    /// List notes.
    List,
    /// Delete a note.
    Rm { key: String },
}

impl NoteCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            NoteCmd::Set { key, value } => ApiCall::NoteSet { key, value },
            NoteCmd::Get { key } => ApiCall::NoteGet { key },
            NoteCmd::List => ApiCall::NoteList,
            NoteCmd::Rm { key } => ApiCall::NoteDelete { key },
        })
    }
}

#[derive(Subcommand)]
pub enum RecordCmd {
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
pub enum MeasureCmd {
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

impl MeasureCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            MeasureCmd::Add { kind, value, at } => ApiCall::MeasureAdd {
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
            MeasureCmd::List { kind, from, to } => ApiCall::MeasureList {
                query: MeasureQuery { kind, from, to },
            },
        })
    }
}

#[derive(Subcommand)]
pub enum AgendaCmd {
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

impl AgendaCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            AgendaCmd::Add {
                at,
                title,
                with,
                place,
                minutes,
                notes,
            } => ApiCall::RecordEdit {
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
            AgendaCmd::List { from, months } => ApiCall::AgendaList { from, months },
            AgendaCmd::Rm { id } => ApiCall::RecordEdit {
                kind: RecordKind::Agenda,
                edit: RecordEdit::Remove {
                    section: "appointments".into(),
                    id,
                },
            },
        })
    }
}

#[derive(Subcommand)]
pub enum MessageCmd {
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

impl MessageCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            MessageCmd::List => ApiCall::RecordGet {
                kind: RecordKind::Messages,
            },
            MessageCmd::Reply {
                thread,
                text,
                attach,
            } => ApiCall::MessagePost {
                message: Message {
                    thread,
                    body: text,
                    attachments: attach,
                    ..Default::default()
                },
                subject: String::new(),
            },
            MessageCmd::New { subject, text } => ApiCall::MessagePost {
                message: Message {
                    body: text,
                    ..Default::default()
                },
                subject,
            },
            MessageCmd::Read { id } => ApiCall::MessageRead { id },
        })
    }
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Append an entry.
    Append { text: String },
    /// Print the journal.
    Read,
}

impl LogCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            LogCmd::Append { text } => ApiCall::LogAppend { text },
            LogCmd::Read => ApiCall::LogRead,
        })
    }
}

#[derive(Subcommand)]
pub enum InboxCmd {
    /// Drop a message.
    Drop { text: String },
    /// Read the inbox (owner).
    Read,
}

impl InboxCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            InboxCmd::Drop { text } => ApiCall::InboxDrop { text },
            InboxCmd::Read => ApiCall::InboxRead,
        })
    }
}

pub fn record_call(kind: RecordKind, c: RecordCmd) -> ApiCall {
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
