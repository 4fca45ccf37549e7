//! The medical agenda (F5): appointments entered by the person, a professional or an
//! allowed service, in the `agenda` volume; prevention reminders (F5.2) are not stored
//! but computed from the profile and the prevention record and shown beside them.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::record::Source;

/// An appointment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Appointment {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Start, civil date-time "2026-12-03T14:30".
    #[autosurgeon(missing = "Default::default")]
    pub at: String,
    /// Duration in minutes.
    #[autosurgeon(missing = "Default::default")]
    pub minutes: u32,
    /// What.
    #[autosurgeon(missing = "Default::default")]
    pub title: String,
    /// With whom (a professional or a structure).
    #[autosurgeon(missing = "Default::default")]
    pub with: String,
    /// Where.
    #[autosurgeon(missing = "Default::default")]
    pub place: String,
    /// Notes.
    #[autosurgeon(missing = "Default::default")]
    pub notes: String,
    /// Minutes before to remind (0: no reminder).
    #[autosurgeon(missing = "Default::default")]
    pub remind_minutes: u32,
    /// Who entered it.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
}

/// The agenda volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Agenda {
    /// Appointments.
    #[autosurgeon(missing = "Default::default")]
    pub appointments: Vec<Appointment>,
}

/// The agenda's list sections.
pub const AGENDA_LISTS: &[&str] = &["appointments"];

/// One line of the agenda as `mes agenda list` shows it: an appointment or a reminder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum AgendaItem {
    /// An appointment.
    Appointment(Appointment),
    /// A vaccination or screening reminder.
    Reminder(crate::record::ReminderItem),
}

impl AgendaItem {
    /// When, for ordering (date or date-time text).
    pub fn when(&self) -> &str {
        match self {
            AgendaItem::Appointment(a) => &a.at,
            AgendaItem::Reminder(r) => &r.from,
        }
    }
}
