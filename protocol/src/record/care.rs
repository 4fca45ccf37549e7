//! Care history (F3.8, seed 001 "Mon historique des soins"): acts and medicines
//! reimbursed, fed by the insurer's service, in the `care` volume.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// One reimbursed act or medicine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct CareItem {
    /// Stable id.
    #[key]
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Date (YYYY-MM-DD).
    #[autosurgeon(missing = "Default::default")]
    pub date: String,
    /// What ("Radiographie membre inférieur").
    #[autosurgeon(missing = "Default::default")]
    pub label: String,
    /// Category as the insurer gives it ("Radiologie", "Médicaments", ...).
    #[autosurgeon(missing = "Default::default")]
    pub category: String,
}

/// The care history volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct CareHistory {
    /// Items.
    #[autosurgeon(missing = "Default::default")]
    pub items: Vec<CareItem>,
}

/// The care history's list sections.
pub const CARE_LISTS: &[&str] = &["items"];
