//! The French codes of the health record, as data (`protocol/data/codes.toml`): DMP class
//! codes, the product's document categories mapped onto them, and measurement kinds with
//! LOINC codes and UCUM units (F2.5, F3.1). Lookups answer with errors that name the
//! unknown value and list the known ones.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// A DMP class code (JDV_J57-ClassCode-DMP).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassCode {
    /// The code ("10").
    pub code: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
}

/// A document category as the product shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Stable id ("biology").
    pub id: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// DMP class codes behind it (the first is the default).
    pub class_codes: Vec<String>,
    /// Typical LOINC type codes.
    pub type_codes: Vec<String>,
}

/// A document type (LOINC, or a product-local `MES-*` code) and its habilitation group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocType {
    /// The code ("11502-2").
    pub code: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Habilitation group: the document volume it lives in (`documents/<group>`).
    pub group: String,
}

impl DocType {
    /// The FHIR coding system of the code.
    pub fn system(&self) -> &'static str {
        if self.code.starts_with("MES-") {
            "urn:mes:doc-type"
        } else {
            "http://loinc.org"
        }
    }
}

/// The habilitation groups, in the order their volumes are declared.
pub const DOC_GROUPS: &[&str] = &["care", "mental", "directives", "birth", "residence"];

/// A kind of health measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementKind {
    /// Stable id ("weight").
    pub id: String,
    /// LOINC code.
    pub loinc: String,
    /// UCUM unit.
    pub unit: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Plausible values; anything outside is refused as a typing error.
    pub range: [f64; 2],
    /// LOINC panel grouping it with others (blood pressure).
    pub panel: Option<String>,
}

/// Every code list.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Codes {
    /// DMP class codes.
    pub class_code: Vec<ClassCode>,
    /// Document categories.
    pub category: Vec<Category>,
    /// Document types.
    pub doc_type: Vec<DocType>,
    /// Measurement kinds.
    pub measurement: Vec<MeasurementKind>,
}

fn unknown(what: &str, value: &str, known: impl Iterator<Item = String>) -> Invalid {
    let known: Vec<String> = known.collect();
    Invalid(format!(
        "unknown {what} {value:?}; known: {}",
        known.join(", ")
    ))
}

impl Codes {
    /// Parses and cross-checks a codes file.
    pub fn parse(text: &str) -> Result<Codes, Invalid> {
        let c: Codes = toml::from_str(text).map_err(|e| e.to_string())?;
        for cat in &c.category {
            if cat.class_codes.is_empty() {
                return Err(Invalid::from(format!(
                    "category {} has no class code",
                    cat.id
                )));
            }
            for code in &cat.class_codes {
                c.class_code(code)
                    .map_err(|e| format!("category {}: {e}", cat.id))?;
            }
            if cat.type_codes.is_empty() {
                return Err(Invalid::from(format!(
                    "category {} has no type code",
                    cat.id
                )));
            }
            for code in &cat.type_codes {
                c.doc_type(code)
                    .map_err(|e| format!("category {}: {e}", cat.id))?;
            }
        }
        for t in &c.doc_type {
            if !DOC_GROUPS.contains(&t.group.as_str()) {
                return Err(Invalid::from(format!(
                    "document type {} has unknown group {:?}; known: {}",
                    t.code,
                    t.group,
                    DOC_GROUPS.join(", ")
                )));
            }
        }
        for m in &c.measurement {
            if m.range[0] >= m.range[1] {
                return Err(Invalid::from(format!(
                    "measurement {} has an empty range",
                    m.id
                )));
            }
        }
        Ok(c)
    }

    /// The codes shipped with this build.
    pub fn builtin() -> &'static Codes {
        static C: OnceLock<Codes> = OnceLock::new();
        C.get_or_init(|| {
            Codes::parse(include_str!("../../data/codes.toml"))
                .expect("protocol/data/codes.toml is checked by a test")
        })
    }

    /// A class code by code.
    pub fn class_code(&self, code: &str) -> Result<&ClassCode, Invalid> {
        self.class_code
            .iter()
            .find(|c| c.code == code)
            .ok_or_else(|| {
                unknown(
                    "class code",
                    code,
                    self.class_code.iter().map(|c| c.code.clone()),
                )
            })
    }

    /// A category by id.
    pub fn category(&self, id: &str) -> Result<&Category, Invalid> {
        self.category
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| unknown("category", id, self.category.iter().map(|c| c.id.clone())))
    }

    /// A document type by code.
    pub fn doc_type(&self, code: &str) -> Result<&DocType, Invalid> {
        self.doc_type
            .iter()
            .find(|t| t.code == code)
            .ok_or_else(|| {
                unknown(
                    "document type",
                    code,
                    self.doc_type.iter().map(|t| t.code.clone()),
                )
            })
    }

    /// A measurement kind by id or LOINC code, without a value check.
    pub fn measurement_kind(&self, kind: &str) -> Result<&MeasurementKind, Invalid> {
        self.measurement
            .iter()
            .find(|m| m.id == kind || m.loinc == kind)
            .ok_or_else(|| {
                unknown(
                    "measurement",
                    kind,
                    self.measurement.iter().map(|m| m.id.clone()),
                )
            })
    }

    /// A measurement kind by id or LOINC code; the value is checked against its range.
    pub fn measurement(&self, kind: &str, value: f64) -> Result<&MeasurementKind, Invalid> {
        let m = self.measurement_kind(kind)?;
        if !(m.range[0]..=m.range[1]).contains(&value) {
            return Err(Invalid::from(format!(
                "{} of {value} {} is outside {}..{} {}",
                m.id, m.unit, m.range[0], m.range[1], m.unit
            )));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_codes_cover_the_product_and_refuse_unknowns_by_name() {
        let c = Codes::builtin();
        assert_eq!(c.category.len(), 10, "the ten categories of the product");
        for code in [
            "10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95",
        ] {
            c.class_code(code).unwrap();
        }
        assert_eq!(c.category("biology").unwrap().fr, "Résultats de biologie");
        let e = c.category("biologie").unwrap_err();
        assert!(e.contains("\"biologie\"") && e.contains("biology"), "{e}");
        assert_eq!(c.measurement("29463-7", 70.0).unwrap().id, "weight");
        assert_eq!(
            c.measurement("systolic", 120.0).unwrap().panel.as_deref(),
            Some("85354-9")
        );
        let e = c.measurement("weight", 7000.0).unwrap_err();
        assert!(e.contains("7000") && e.contains("kg"), "{e}");
        assert_eq!(c.doc_type("MES-PSY").unwrap().group, "mental");
        assert_eq!(c.doc_type("11502-2").unwrap().system(), "http://loinc.org");
        let bad =
            include_str!("../../data/codes.toml").replace("group = \"birth\"", "group = \"x\"");
        assert!(Codes::parse(&bad).unwrap_err().contains("\"x\""));
        let bad = include_str!("../../data/codes.toml")
            .replace("class_codes = [\"31\"]", "class_codes = [\"33\"]");
        assert!(Codes::parse(&bad).unwrap_err().contains("\"33\""));
    }
}
