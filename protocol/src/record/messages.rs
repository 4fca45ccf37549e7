//! Secure messaging (F4): threads started by a professional (or the person's services),
//! replies, documents attached by id, and read receipts a sender can ask for, in the
//! `messages` volume. Messages are a map by id, so each new one is one small change.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Thread {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Subject.
    #[autosurgeon(missing = "Default::default")]
    pub subject: String,
    /// Who takes part, as shown ("Dr Antoine Robert (RPPS 10001234567)").
    #[autosurgeon(missing = "Default::default")]
    pub participants: Vec<String>,
    /// Started (RFC 3339).
    #[autosurgeon(missing = "Default::default")]
    pub started_at: String,
}

/// A message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Message {
    /// Stable id.
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Thread id.
    #[autosurgeon(missing = "Default::default")]
    pub thread: String,
    /// Sender as shown; "me" for the person.
    #[autosurgeon(missing = "Default::default")]
    pub from: String,
    /// Sent (RFC 3339).
    #[autosurgeon(missing = "Default::default")]
    pub at: String,
    /// Text.
    #[autosurgeon(missing = "Default::default")]
    pub body: String,
    /// Attached document ids.
    #[autosurgeon(missing = "Default::default")]
    pub attachments: Vec<String>,
    /// The sender asked for a read receipt (F4.3).
    #[autosurgeon(missing = "Default::default")]
    pub receipt_requested: bool,
    /// When the person read it (RFC 3339; empty while unread).
    #[autosurgeon(missing = "Default::default")]
    pub read_at: String,
    /// An agenda event sent by message (F4.3): an appointment id in the agenda.
    #[autosurgeon(missing = "Default::default")]
    pub appointment: String,
}

/// The messages volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Messages {
    /// Threads.
    #[autosurgeon(missing = "Default::default")]
    pub threads: Vec<Thread>,
    /// Messages by id.
    #[autosurgeon(missing = "Default::default")]
    pub messages: BTreeMap<String, Message>,
}

/// The messages volume's list sections.
pub const MESSAGES_LISTS: &[&str] = &["threads", "messages"];

/// Label prefix of a thread's own volume (`threads/<thread id>`): a thread a professional
/// started, readable by them and the person only (F4.2).
pub const THREADS_PREFIX: &str = "threads/";

/// The volume label of a thread.
pub fn thread_label(thread: &str) -> String {
    format!("{THREADS_PREFIX}{thread}")
}
