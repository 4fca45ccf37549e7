//! The health record's types, shared by the daemon (which keeps them in automerge
//! volumes with autosurgeon) and its clients (docs/health-record.md).
//!
//! The medical profile (F2.1–F2.3, F2.6–F2.9) is one document of the `profile` volume.
//! Lists are keyed by stable ids (`#[key]`), so concurrent edits to different records or
//! fields merge; concurrent edits to one field are kept by automerge and reported as a
//! [`Conflict`]. Every field tolerates its absence, so a document written by an older
//! build (without a newer field) still reads.

pub mod agenda;
pub mod care;
pub mod codes;
pub mod documents;
pub mod emergency;
pub mod inbox;
pub mod measurements;
pub mod messages;
pub mod prevention;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// Who entered a piece of information (F2.1: the source is kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Source {
    /// "person", "professional", "service".
    #[autosurgeon(missing = "Default::default")]
    pub kind: String,
    /// Who, as shown (a professional's name and RPPS, a service's name).
    #[autosurgeon(missing = "Default::default")]
    pub name: String,
}

/// A disease, health topic, or personal or family history item (F2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Condition {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// What.
    #[autosurgeon(missing = "Default::default")]
    pub label: String,
    /// "personal" or "family" history, or "current".
    #[autosurgeon(missing = "Default::default")]
    pub history: String,
    /// For family history: who ("mother").
    #[autosurgeon(missing = "Default::default")]
    pub relative: String,
    /// Since (YYYY-MM-DD or YYYY).
    #[autosurgeon(missing = "Default::default")]
    pub since: String,
    /// A chronic disease (copied to the emergency section).
    #[autosurgeon(missing = "Default::default")]
    pub chronic: bool,
    /// Source.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
}

/// A treatment (F2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Treatment {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Medicine or treatment.
    #[autosurgeon(missing = "Default::default")]
    pub label: String,
    /// Dose and rhythm.
    #[autosurgeon(missing = "Default::default")]
    pub dosage: String,
    /// Since.
    #[autosurgeon(missing = "Default::default")]
    pub since: String,
    /// Until (empty while ongoing).
    #[autosurgeon(missing = "Default::default")]
    pub until: String,
    /// An anticoagulant (copied to the emergency section).
    #[autosurgeon(missing = "Default::default")]
    pub anticoagulant: bool,
    /// Source.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
}

/// An allergy (F2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Allergy {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Substance.
    #[autosurgeon(missing = "Default::default")]
    pub substance: String,
    /// Reaction.
    #[autosurgeon(missing = "Default::default")]
    pub reaction: String,
    /// Major (copied to the emergency section).
    #[autosurgeon(missing = "Default::default")]
    pub major: bool,
    /// Source.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
}

/// A hospitalisation, with its documents (F2.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Hospitalisation {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Establishment.
    #[autosurgeon(missing = "Default::default")]
    pub establishment: String,
    /// Reason.
    #[autosurgeon(missing = "Default::default")]
    pub reason: String,
    /// From.
    #[autosurgeon(missing = "Default::default")]
    pub from: String,
    /// Until.
    #[autosurgeon(missing = "Default::default")]
    pub until: String,
    /// Ids of linked documents.
    #[autosurgeon(missing = "Default::default")]
    pub documents: Vec<String>,
}

/// A person around the patient (F2.8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Contact {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// "trusted_person", "emergency_contact", "caregiver", "cared_for".
    #[autosurgeon(missing = "Default::default")]
    pub role: String,
    /// Name.
    #[autosurgeon(missing = "Default::default")]
    pub name: String,
    /// Phone.
    #[autosurgeon(missing = "Default::default")]
    pub phone: String,
    /// Relationship.
    #[autosurgeon(missing = "Default::default")]
    pub relationship: String,
}

/// Wishes (F2.7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Wishes {
    /// Advance directives (text, or the id of the document holding them); not for minors.
    #[autosurgeon(missing = "Default::default")]
    pub advance_directives: String,
    /// Position on organ and tissue donation: "", "yes", "no", "some".
    #[autosurgeon(missing = "Default::default")]
    pub organ_donation: String,
    /// Personal or religious wishes (e.g. refusal of transfusion).
    #[autosurgeon(missing = "Default::default")]
    pub personal: String,
}

/// Socio-economic situation (F2.9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Situation {
    /// Lives alone.
    #[autosurgeon(missing = "Default::default")]
    pub lives_alone: bool,
    /// Home help.
    #[autosurgeon(missing = "Default::default")]
    pub home_help: bool,
    /// Floor of the home.
    #[autosurgeon(missing = "Default::default")]
    pub floor: String,
    /// A lift.
    #[autosurgeon(missing = "Default::default")]
    pub lift: bool,
    /// Economic difficulty.
    #[autosurgeon(missing = "Default::default")]
    pub economic_difficulty: bool,
}

/// Who the profile is about (what prevention rules need; the hub's enrolment fills it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Person {
    #[autosurgeon(missing = "Default::default")]
    /// Name as shown.
    pub name: String,
    #[autosurgeon(missing = "Default::default")]
    /// Birth date, YYYY-MM-DD.
    pub birth_date: String,
    #[autosurgeon(missing = "Default::default")]
    /// "F" or "M".
    pub sex: String,
}

/// A vaccine dose (F2.4); `rule` names the calendar's vaccine (protocol/data/prevention.toml).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct VaccineDose {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    #[autosurgeon(missing = "Default::default")]
    /// Calendar rule id ("hexa", "mmr", "dtp_adult").
    pub rule: String,
    #[autosurgeon(missing = "Default::default")]
    /// Date given, YYYY-MM-DD.
    pub date: String,
    #[autosurgeon(missing = "Default::default")]
    /// Product name.
    pub product: String,
    #[autosurgeon(missing = "Default::default")]
    /// Lot number.
    pub lot: String,
    #[autosurgeon(missing = "Default::default")]
    /// Who recorded it.
    pub source: Source,
}

/// A screening or check-up done (F10); `rule` names the programme.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct PreventionAct {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    #[autosurgeon(missing = "Default::default")]
    /// Programme rule id ("breast", "colorectal").
    pub rule: String,
    #[autosurgeon(missing = "Default::default")]
    /// Date done, YYYY-MM-DD.
    pub date: String,
    #[autosurgeon(missing = "Default::default")]
    /// Result as told.
    pub result: String,
}

/// The prevention record: vaccine doses and screening acts (the `prevention` volume).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct PreventionRecord {
    #[autosurgeon(missing = "Default::default")]
    /// Vaccine doses.
    pub doses: Vec<VaccineDose>,
    #[autosurgeon(missing = "Default::default")]
    /// Screenings and check-ups.
    pub acts: Vec<PreventionAct>,
}

/// A reminder as the API carries it (dates as YYYY-MM-DD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ReminderItem {
    /// Rule id.
    pub rule: String,
    /// Dose number of a series.
    pub dose: Option<u32>,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Due from.
    pub from: String,
    /// Late after.
    pub until: Option<String>,
    /// "Upcoming", "Due" or "Late".
    pub status: String,
}

/// The whole profile document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// F2.1.
    #[autosurgeon(missing = "Default::default")]
    pub conditions: Vec<Condition>,
    /// F2.2.
    #[autosurgeon(missing = "Default::default")]
    pub treatments: Vec<Treatment>,
    /// F2.3.
    #[autosurgeon(missing = "Default::default")]
    pub allergies: Vec<Allergy>,
    /// F2.6.
    #[autosurgeon(missing = "Default::default")]
    pub hospitalisations: Vec<Hospitalisation>,
    /// F2.7.
    #[autosurgeon(missing = "Default::default")]
    pub wishes: Wishes,
    /// F2.8.
    #[autosurgeon(missing = "Default::default")]
    pub contacts: Vec<Contact>,
    /// F2.9.
    #[autosurgeon(missing = "Default::default")]
    pub situation: Situation,
    /// Who it is about.
    #[autosurgeon(missing = "Default::default")]
    pub person: Person,
}

/// What the person declares in the emergency section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct EmergencyCard {
    /// Blood group and rhesus ("A+", "O-").
    #[autosurgeon(missing = "Default::default")]
    pub blood_group: String,
    /// Phenotype ("C+ E- c+ e+ K-").
    #[autosurgeon(missing = "Default::default")]
    pub phenotype: String,
    /// Anything a first responder must know.
    #[autosurgeon(missing = "Default::default")]
    pub notes: String,
}

/// The emergency section (F2.10), in its own volume so that it can be read in an
/// emergency without the rest and can never be hidden: what the person declares, and
/// copies the daemon keeps in step with the profile (anticoagulants, chronic diseases,
/// major allergies, emergency contacts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Emergency {
    /// Declared by the person.
    #[autosurgeon(missing = "Default::default")]
    pub card: EmergencyCard,
    /// Anticoagulant treatments (from the profile).
    #[autosurgeon(missing = "Default::default")]
    pub anticoagulants: Vec<String>,
    /// Chronic diseases (from the profile).
    #[autosurgeon(missing = "Default::default")]
    pub chronic_conditions: Vec<String>,
    /// Major allergies, with the reaction (from the profile).
    #[autosurgeon(missing = "Default::default")]
    pub major_allergies: Vec<String>,
    /// Emergency contacts and trusted person, with phone (from the profile).
    #[autosurgeon(missing = "Default::default")]
    pub contacts: Vec<String>,
}

impl Emergency {
    /// The copies this section keeps of a profile.
    pub fn copy_from(&mut self, p: &Profile) {
        let live = |t: &&Treatment| t.anticoagulant && t.until.is_empty();
        self.anticoagulants = p
            .treatments
            .iter()
            .filter(live)
            .map(|t| format!("{} {}", t.label, t.dosage).trim().to_string())
            .collect();
        self.chronic_conditions = p
            .conditions
            .iter()
            .filter(|c| c.chronic && c.history != "family")
            .map(|c| c.label.clone())
            .collect();
        self.major_allergies = p
            .allergies
            .iter()
            .filter(|a| a.major)
            .map(|a| {
                if a.reaction.is_empty() {
                    a.substance.clone()
                } else {
                    format!("{} ({})", a.substance, a.reaction)
                }
            })
            .collect();
        self.contacts = p
            .contacts
            .iter()
            .filter(|c| c.role == "trusted_person" || c.role == "emergency_contact")
            .map(|c| {
                format!("{} — {} {}", c.name, c.relationship, c.phone)
                    .trim()
                    .to_string()
            })
            .collect();
    }
}

/// The emergency section's single-record sections.
pub const EMERGENCY_FIELDS: &[&str] = &["card"];

/// The kinds of record document the API reads and edits alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The medical profile (`profile` volume).
    Profile,
    /// Vaccine doses and screenings (`prevention`).
    Prevention,
    /// The emergency section (`emergency`).
    Emergency,
    /// Appointments (`agenda`).
    Agenda,
    /// Threads and messages (`messages`).
    Messages,
    /// Care history (`care`).
    Care,
}

/// A record document as the API carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum RecordBody {
    /// The medical profile.
    Profile(Box<Profile>),
    /// The prevention record.
    Prevention(Box<PreventionRecord>),
    /// The emergency section.
    Emergency(Box<Emergency>),
    /// The agenda.
    Agenda(Box<crate::record::agenda::Agenda>),
    /// Messages.
    Messages(Box<crate::record::messages::Messages>),
    /// Care history.
    Care(Box<crate::record::care::CareHistory>),
}

/// A field that concurrent edits left with several values: the person resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Conflict {
    /// Where: map keys and list indexes from the root ("allergies/0/reaction").
    pub path: String,
    /// The competing values, as text, sorted.
    pub values: Vec<String>,
}

/// The list sections of the profile, as the API and `mes profile` name them.
pub const PROFILE_LISTS: &[&str] = &[
    "conditions",
    "treatments",
    "allergies",
    "hospitalisations",
    "contacts",
];

/// The single-record sections, whose fields are set one by one.
pub const PROFILE_FIELDS: &[&str] = &["person", "wishes", "situation"];

/// The list sections of the prevention record.
pub const PREVENTION_LISTS: &[&str] = &["doses", "acts"];

/// An edit of a record document (the profile, the prevention record). Records travel as JSON text (checked against the types, so a
/// misspelt field or a wrong type is refused with its name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordEdit {
    /// Adds a record to a list section, or replaces the one with the same `id` (a new id
    /// is given when it is empty or missing).
    Put {
        /// One of [`PROFILE_LISTS`].
        section: String,
        /// The record, as JSON.
        record: String,
    },
    /// Removes a record from a list section.
    Remove {
        /// One of [`PROFILE_LISTS`].
        section: String,
        /// Its id.
        id: String,
    },
    /// Sets one field of a single-record section ("situation.lives_alone" = "true").
    Set {
        /// `section.field`, section one of [`PROFILE_FIELDS`].
        field: String,
        /// The value, as JSON (a bare word is taken as a string).
        value: String,
    },
}
