//! The medical profile (F2.1–F2.3, F2.6–F2.9) as one automerge document of the `profile`
//! volume (docs/health-record.md). Lists are keyed by stable ids (`#[key]`), so concurrent
//! edits to different records or fields merge; concurrent edits to one field are kept by
//! automerge and reported by [`super::conflicts`].

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// Who entered a piece of information (F2.1: the source is kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Source {
    /// "person", "professional", "service".
    pub kind: String,
    /// Who, as shown (a professional's name and RPPS, a service's name).
    pub name: String,
}

/// A disease, health topic, or personal or family history item (F2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Condition {
    /// Stable id.
    #[key]
    pub id: String,
    /// What.
    pub label: String,
    /// "personal" or "family" history, or "current".
    pub history: String,
    /// For family history: who ("mother").
    pub relative: String,
    /// Since (YYYY-MM-DD or YYYY).
    pub since: String,
    /// Source.
    pub source: Source,
}

/// A treatment (F2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Treatment {
    /// Stable id.
    #[key]
    pub id: String,
    /// Medicine or treatment.
    pub label: String,
    /// Dose and rhythm.
    pub dosage: String,
    /// Since.
    pub since: String,
    /// Until (empty while ongoing).
    pub until: String,
    /// An anticoagulant (copied to the emergency section).
    pub anticoagulant: bool,
    /// Source.
    pub source: Source,
}

/// An allergy (F2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Allergy {
    /// Stable id.
    #[key]
    pub id: String,
    /// Substance.
    pub substance: String,
    /// Reaction.
    pub reaction: String,
    /// Major (copied to the emergency section).
    pub major: bool,
    /// Source.
    pub source: Source,
}

/// A hospitalisation, with its documents (F2.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Hospitalisation {
    /// Stable id.
    #[key]
    pub id: String,
    /// Establishment.
    pub establishment: String,
    /// Reason.
    pub reason: String,
    /// From.
    pub from: String,
    /// Until.
    pub until: String,
    /// Ids of linked documents.
    pub documents: Vec<String>,
}

/// A person around the patient (F2.8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Contact {
    /// Stable id.
    #[key]
    pub id: String,
    /// "trusted_person", "emergency_contact", "caregiver", "cared_for".
    pub role: String,
    /// Name.
    pub name: String,
    /// Phone.
    pub phone: String,
    /// Relationship.
    pub relationship: String,
}

/// Wishes (F2.7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Wishes {
    /// Advance directives (text, or the id of the document holding them); not for minors.
    pub advance_directives: String,
    /// Position on organ and tissue donation: "", "yes", "no", "some".
    pub organ_donation: String,
    /// Personal or religious wishes (e.g. refusal of transfusion).
    pub personal: String,
}

/// Socio-economic situation (F2.9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Situation {
    /// Lives alone.
    pub lives_alone: bool,
    /// Home help.
    pub home_help: bool,
    /// Floor of the home.
    pub floor: String,
    /// A lift.
    pub lift: bool,
    /// Economic difficulty.
    pub economic_difficulty: bool,
}

/// The whole profile document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Profile {
    /// F2.1.
    pub conditions: Vec<Condition>,
    /// F2.2.
    pub treatments: Vec<Treatment>,
    /// F2.3.
    pub allergies: Vec<Allergy>,
    /// F2.6.
    pub hospitalisations: Vec<Hospitalisation>,
    /// F2.7.
    pub wishes: Wishes,
    /// F2.8.
    pub contacts: Vec<Contact>,
    /// F2.9.
    pub situation: Situation,
}
