//! Health measurements (F2.5): one point per reading, kept in volumes partitioned by kind
//! and year (`measurements/<kind>/<year>`) so that no volume's history grows without
//! bound. Points are a map by id: adding one is one small change.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::record::Source;

/// One reading.
#[derive(Clone, Debug, Default, PartialEq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Measurement {
    /// Stable id.
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Kind id (protocol/data/codes.toml: "weight", "systolic", ...).
    #[autosurgeon(missing = "Default::default")]
    pub kind: String,
    /// When (RFC 3339 civil date-time "2026-11-24T08:30", or a date).
    #[autosurgeon(missing = "Default::default")]
    pub at: String,
    /// Value in the kind's UCUM unit.
    #[autosurgeon(missing = "Default::default")]
    #[cfg_attr(test, proptest(strategy = "-1e6f64..1e6"))]
    pub value: f64,
    /// Who measured it.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
}

/// A partition of a series: points by id at the document's root.
pub type SeriesVolume = BTreeMap<String, Measurement>;

/// The volume label of a kind's year.
pub fn partition_label(kind: &str, year: i16) -> String {
    format!("measurements/{kind}/{year}")
}

/// Which points `mes measure list` wants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MeasureQuery {
    /// Kind id (empty: every kind).
    pub kind: String,
    /// From (inclusive, a prefix of `at`: "2025", "2025-03").
    pub from: String,
    /// To (inclusive, compared on the same prefix length).
    pub to: String,
}

impl MeasureQuery {
    /// Whether a point falls in the query's range.
    pub fn matches(&self, m: &Measurement) -> bool {
        (self.kind.is_empty() || m.kind == self.kind)
            && (self.from.is_empty() || m.at.as_str() >= self.from.as_str())
            && (self.to.is_empty() || &m.at[..self.to.len().min(m.at.len())] <= self.to.as_str())
    }
}
