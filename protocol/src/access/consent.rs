//! What the local API shows of consents and the access history: plain views, computed by
//! the daemon from verified membership records, directory entries and history entries.

use serde::{Deserialize, Serialize};

use crate::ids::PrincipalId;
use crate::time::UnixMillis;

/// One principal's rights on a space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConsentView {
    /// The principal.
    pub principal: PrincipalId,
    /// The directory's name for them, when a listed professional.
    pub name: Option<String>,
    /// RPPS number, when a professional.
    pub rpps: Option<String>,
    /// TRE_G15 profession code, when a professional.
    pub profession: Option<String>,
    /// Volumes they may read, by label.
    pub reads: Vec<String>,
    /// Volumes they may only append to (the inbox).
    pub appends: Vec<String>,
    /// A role on the whole space (relatives, delegates), if any.
    pub space_role: Option<String>,
}

/// One access, as the owner's device verified it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AccessEntryView {
    /// Position in the history, from 1.
    pub seq: u64,
    /// When the relay served it.
    pub at: UnixMillis,
    /// Who.
    pub actor: PrincipalId,
    /// Name, profession (TRE_G15), specialty (TRE_R38), structure, when a professional.
    pub name: Option<String>,
    /// Profession code.
    pub profession: Option<String>,
    /// Specialty code.
    pub specialty: Option<String>,
    /// Structure.
    pub structure: Option<String>,
    /// What: a volume label or `file <blob>`.
    pub target: String,
    /// How: `normal`, `care-team`, `centre-15`, `break-glass`, `delegate`, `service`.
    pub mode: String,
    /// Flagged as suspicious by the person (F8.3).
    pub suspicious: bool,
}

/// The access history of a space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AccessHistoryView {
    /// Verified entries, oldest first.
    pub entries: Vec<AccessEntryView>,
    /// The alarm, when the relay's history failed a check (gap, reordering, alteration,
    /// fork): what the person must be told.
    pub alarm: Option<String>,
}

/// The kinds of notification the person can turn on or off (F8.2).
pub const NOTIFICATION_KINDS: &[&str] = &["access", "document", "device"];

/// One notification (F8.2), in both languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NotificationView {
    /// When it was raised.
    pub at: UnixMillis,
    /// `access` (a professional's access), `document` (added or modified by someone
    /// else), `device` (a new device of the person).
    pub kind: String,
    /// French text.
    pub fr: String,
    /// English text.
    pub en: String,
}
