//! Opt-in sharing of anonymised data for research (F12.3). The person opts in (and out,
//! at any time); while opted in, `research_export` writes `research.json`: a pseudonym
//! keyed by a salt drawn at opt-in (opting out and in again gives an unlinkable one), the
//! birth year and sex, measurements by month, document types by year, vaccination rules
//! by year, and counts of conditions, treatments and allergies. No name, no date of
//! birth, no free text (titles, authors, labels, notes, messages), no identifier of the
//! person, their devices or their space.

use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use serde::Serialize;
use std::path::Path;

use super::fhir::SpaceRecords;
use crate::daemon::Daemon;

/// Notes key holding the opt-in and its salt (`opt-in:<hex>`); absent means no.
pub const RESEARCH_KEY: &str = "_research";

/// One measurement, to the month.
#[derive(Serialize, Debug, PartialEq)]
pub struct ResearchMeasurement {
    /// Kind id.
    pub kind: String,
    /// Value in the kind's unit.
    pub value: f64,
    /// YYYY-MM.
    pub month: String,
}

/// One document, by type and year.
#[derive(Serialize, Debug, PartialEq)]
pub struct ResearchDocument {
    /// Type code (LOINC or `MES-*`).
    pub type_code: String,
    /// DMP class code.
    pub class_code: String,
    /// YYYY.
    pub year: String,
}

/// What a research export holds.
#[derive(Serialize, Debug, PartialEq)]
pub struct ResearchRecord {
    /// Stable while opted in, unlinkable across opt-ins.
    pub pseudonym: String,
    /// YYYY, or empty.
    pub birth_year: String,
    /// As declared.
    pub sex: String,
    /// Measurements.
    pub measurements: Vec<ResearchMeasurement>,
    /// Documents.
    pub documents: Vec<ResearchDocument>,
    /// Vaccination rules given, with their year.
    pub vaccinations: Vec<(String, String)>,
    /// How many conditions, chronic ones, treatments, allergies.
    pub counts: [usize; 4],
}

fn year(date: &str) -> String {
    date.get(..4).unwrap_or_default().to_string()
}

/// The anonymised view of a space's records (pure).
pub fn anonymise(r: &SpaceRecords, pseudonym: String) -> ResearchRecord {
    let p = &r.profile;
    ResearchRecord {
        pseudonym,
        birth_year: year(&p.person.birth_date),
        sex: p.person.sex.clone(),
        measurements: r
            .measurements
            .iter()
            .map(|m| ResearchMeasurement {
                kind: m.kind.clone(),
                value: m.value,
                month: m.at.get(..7).unwrap_or_default().to_string(),
            })
            .collect(),
        documents: r
            .documents
            .iter()
            .filter(|d| !d.visibility.hidden_from_professionals)
            .map(|d| ResearchDocument {
                type_code: d.type_code.clone(),
                class_code: d.class_code.clone(),
                year: year(&d.date),
            })
            .collect(),
        vaccinations: r
            .prevention
            .doses
            .iter()
            .map(|d| (d.rule.clone(), year(&d.date)))
            .collect(),
        counts: [
            p.conditions.len(),
            p.conditions.iter().filter(|c| c.chronic).count(),
            p.treatments.len(),
            p.allergies.len(),
        ],
    }
}

impl Daemon {
    /// Opts in (a fresh salt) or out (the salt is forgotten) of research sharing.
    pub async fn set_research(&self, space: SpaceId, share: bool) -> Result<(), ApiError> {
        if share {
            let salt = hex::encode(rand::Rng::gen::<[u8; 16]>(&mut rand::rngs::OsRng));
            self.note_set_internal(space, RESEARCH_KEY, &format!("opt-in:{salt}"))
                .await
        } else {
            self.note_set_internal(space, RESEARCH_KEY, "opt-out").await
        }
    }

    /// The salt while opted in.
    fn research_salt(&self, space: SpaceId) -> Option<String> {
        self.note_value(space, RESEARCH_KEY)
            .and_then(|v| v.strip_prefix("opt-in:").map(str::to_string))
    }

    /// Writes `dir/research.json` if the person opted in; refuses otherwise.
    pub async fn research_export(&self, space: SpaceId, dir: &Path) -> Result<String, ApiError> {
        let Some(salt) = self.research_salt(space) else {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "research sharing is off for this space: opt in first (mes research opt-in)",
            ));
        };
        let (records, _) = self.space_records(space)?;
        let key = blake3::derive_key("mes research pseudonym v1", salt.as_bytes());
        let pseudonym = blake3::keyed_hash(&key, &space.0).to_hex()[..16].to_string();
        let r = anonymise(&records, pseudonym);
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, format!("{}: {e}", dir.display())))?;
        let path = dir.join("research.json");
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| {
            ApiError::new(ApiErrorCode::Storage, format!("{}: {e}", path.display()))
        })?;
        Ok(path.to_string_lossy().into_owned())
    }
}
