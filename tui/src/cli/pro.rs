//! A professional's commands: patients, documents and messages sent or held, appointments, consent requests, emergency access.

use clap::Subcommand;
use mes_protocol::wire::api::ApiCall;
use std::path::PathBuf;

use super::*;

/// A document a professional sends or holds.
#[derive(clap::Args)]
pub struct ProDoc {
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
    pub fn new_document(self) -> CliResult<mes_protocol::record::documents::NewDocument> {
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
pub enum ProCmd {
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

impl ProCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            ProCmd::Patients => ApiCall::Patients,
            ProCmd::SendDoc(doc) => ApiCall::SendDocument {
                doc: doc.new_document()?,
            },
            ProCmd::Message { subject, body } => ApiCall::SendMessage { subject, body },
            ProCmd::HoldDoc { nir, doc } => ApiCall::HoldDocument {
                nir,
                doc: doc.new_document()?,
            },
            ProCmd::HoldMessage { nir, subject, body } => {
                ApiCall::HoldMessage { nir, subject, body }
            }
            ProCmd::Held => ApiCall::Held,
            ProCmd::DeliverHeld => ApiCall::DeliverHeld,
            ProCmd::Appointment {
                at,
                title,
                place,
                minutes,
            } => ApiCall::SendAppointment {
                appointment: mes_protocol::record::agenda::Appointment {
                    at,
                    title,
                    place,
                    minutes,
                    ..Default::default()
                },
            },
            ProCmd::AskConsent { note } => ApiCall::AskConsent { note },
            ProCmd::Emergency { mode } => ApiCall::EmergencyAccess { mode: mode.into() },
        })
    }
}
