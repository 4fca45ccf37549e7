//! The habilitation matrix as data (`protocol/data/habilitations.toml`, F7.1): which
//! document types and record sections each profession (TRE_G15) may read. Deny by
//! default. Document volumes follow it (docs/sources.md): a consent wraps the keys of exactly the
//! volumes [`Matrix::may_read_volume`] allows, and the relay refuses any grant beyond it.

use crate::invalid::Invalid;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::record::codes::{Codes, DOC_GROUPS};

/// Record sections a consent can open, by volume label (`measurements` stands for every
/// `measurements/<kind>/<year>` partition).
pub const SECTIONS: &[&str] = &[
    "profile",
    "emergency",
    "prevention",
    "care",
    "measurements",
    "agenda",
];

/// The TRE_G15 code of physicians: only a physician can be médecin traitant (F7.3).
pub const PHYSICIAN: &str = "10";

/// The label of the volume of hidden documents, which no consent opens.
pub const HIDDEN: &str = "documents/hidden";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    code: String,
    fr: String,
    en: String,
    reads: String,
    #[serde(default)]
    except: Vec<String>,
    sections: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    profession: Vec<Row>,
}

/// What one profession may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profession {
    /// TRE_G15 code.
    pub code: String,
    /// Label, French.
    pub fr: String,
    /// Label, English.
    pub en: String,
    /// Document type codes allowed.
    pub types: BTreeSet<String>,
    /// Habilitation groups allowed (every type of the group is allowed).
    pub groups: BTreeSet<String>,
    /// Record sections allowed.
    pub sections: BTreeSet<String>,
}

/// The whole matrix.
#[derive(Clone, Debug)]
pub struct Matrix {
    professions: BTreeMap<String, Profession>,
}

impl Matrix {
    /// Parses a matrix and checks it against the document types of `codes`: every code
    /// known, every section known, and no habilitation group split.
    pub fn parse(text: &str, codes: &Codes) -> Result<Matrix, Invalid> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let all: BTreeSet<String> = codes.doc_type.iter().map(|t| t.code.clone()).collect();
        let group_of = |code: &str| {
            codes
                .doc_type
                .iter()
                .find(|t| t.code == code)
                .map(|t| t.group.clone())
        };
        let mut professions = BTreeMap::new();
        for row in file.profession {
            let mut types: BTreeSet<String> = match row.reads.as_str() {
                "all" => all.clone(),
                "none" => BTreeSet::new(),
                list => {
                    let mut s = BTreeSet::new();
                    for item in list.split('+').map(str::trim) {
                        if DOC_GROUPS.contains(&item) {
                            s.extend(
                                codes
                                    .doc_type
                                    .iter()
                                    .filter(|t| t.group == item)
                                    .map(|t| t.code.clone()),
                            );
                        } else if all.contains(item) {
                            s.insert(item.to_string());
                        } else {
                            return Err(Invalid::from(format!(
                                "profession {}: {item:?} is neither a habilitation group ({}) nor a document type",
                                row.code,
                                DOC_GROUPS.join(", ")
                            )));
                        }
                    }
                    s
                }
            };
            for e in &row.except {
                if !types.remove(e) {
                    return Err(Invalid::from(format!(
                        "profession {}: except {e:?} is not a type it reads",
                        row.code
                    )));
                }
            }
            for s in &row.sections {
                if !SECTIONS.contains(&s.as_str()) {
                    return Err(Invalid::from(format!(
                        "profession {}: unknown section {s:?}; known: {}",
                        row.code,
                        SECTIONS.join(", ")
                    )));
                }
            }
            let groups = types.iter().filter_map(|t| group_of(t)).collect();
            let p = Profession {
                code: row.code.clone(),
                fr: row.fr,
                en: row.en,
                types,
                groups,
                sections: row.sections.into_iter().collect(),
            };
            if professions.insert(row.code.clone(), p).is_some() {
                return Err(Invalid::from(format!(
                    "profession {} is listed twice",
                    row.code
                )));
            }
        }
        // Types sharing a volume must share their readers.
        for group in DOC_GROUPS {
            let mut readers: Option<(String, BTreeSet<&str>)> = None;
            for t in codes.doc_type.iter().filter(|t| t.group == *group) {
                let who: BTreeSet<&str> = professions
                    .values()
                    .filter(|p| p.types.contains(&t.code))
                    .map(|p| p.code.as_str())
                    .collect();
                match &readers {
                    None => readers = Some((t.code.clone(), who)),
                    Some((first, r)) if *r != who => {
                        return Err(Invalid::from(format!(
                            "group {group} is split: types {first} and {} have different readers ({r:?} vs {who:?}); they share a volume and its key",
                            t.code
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Matrix { professions })
    }

    /// The matrix shipped in `protocol/data/habilitations.toml`.
    pub fn builtin() -> &'static Matrix {
        static M: OnceLock<Matrix> = OnceLock::new();
        M.get_or_init(|| {
            Matrix::parse(
                include_str!("../../data/habilitations.toml"),
                Codes::builtin(),
            )
            .expect("the built-in habilitation matrix is valid")
        })
    }

    /// A profession's row, or an error naming the unknown code.
    pub fn profession(&self, code: &str) -> Result<&Profession, Invalid> {
        self.professions.get(code).ok_or_else(|| {
            Invalid(format!(
                "unknown profession code {code:?} (TRE_G15); known: {}",
                self.professions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Every profession, by code.
    pub fn professions(&self) -> impl Iterator<Item = &Profession> {
        self.professions.values()
    }

    /// Whether the profession may read documents of this type.
    pub fn may_read_type(&self, profession: &str, type_code: &str) -> bool {
        self.professions
            .get(profession)
            .is_some_and(|p| p.types.contains(type_code))
    }

    /// Whether a consent for the profession may open the volume labelled `label`.
    pub fn may_read_volume(&self, profession: &str, label: &str) -> bool {
        let Some(p) = self.professions.get(profession) else {
            return false;
        };
        if label == HIDDEN {
            return false;
        }
        if let Some(group) = label.strip_prefix("documents/") {
            return p.groups.contains(group);
        }
        if label.starts_with("measurements/") {
            return p.sections.contains("measurements");
        }
        p.sections.contains(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> &'static Matrix {
        Matrix::builtin()
    }

    #[test]
    fn the_rules_of_the_issue_hold() {
        // Physicians read everything but the residence certificate.
        for t in &Codes::builtin().doc_type {
            assert_eq!(
                m().may_read_type("10", &t.code),
                t.code != "MES-RESIDENCE",
                "physician and {}",
                t.code
            );
        }
        // Dentists: no psychiatric or psychological reports, no advance directives.
        assert!(!m().may_read_type("40", "MES-PSY"));
        assert!(!m().may_read_type("40", "42348-3"));
        assert!(m().may_read_type("40", "11502-2"));
        // Podiatrists: no birth reports.
        assert!(!m().may_read_type("80", "MES-BIRTH"));
        assert!(m().may_read_type("80", "18748-4"));
        // Deny by default.
        assert!(!m().may_read_type("86", "11502-2"));
        assert!(!m().may_read_type("99", "11502-2"));
        assert!(!m().may_read_volume("99", "emergency"));
    }

    #[test]
    fn volumes_follow_the_groups_and_hidden_is_never_opened() {
        assert!(m().may_read_volume("10", "documents/mental"));
        assert!(!m().may_read_volume("10", "documents/residence"));
        assert!(!m().may_read_volume("10", HIDDEN));
        assert!(!m().may_read_volume("40", "documents/directives"));
        assert!(m().may_read_volume("10", "measurements/weight/2026"));
        assert!(!m().may_read_volume("21", "measurements/weight/2026"));
        assert!(!m().may_read_volume("10", "notes"));
        assert!(!m().may_read_volume("10", "messages"));
    }

    #[test]
    fn a_matrix_that_splits_a_group_or_names_unknowns_is_refused() {
        let codes = Codes::builtin();
        let text = include_str!("../../data/habilitations.toml");
        // Dentists reading one care type but not the others would split `care`.
        let split = text.replace(
            "except = [\"MES-PSY\", \"42348-3\", \"MES-RESIDENCE\"]",
            "except = [\"MES-PSY\", \"42348-3\", \"MES-RESIDENCE\", \"11502-2\"]",
        );
        let e = Matrix::parse(&split, codes).unwrap_err();
        assert!(e.contains("group care is split"), "{e}");
        let unknown = text.replace("reads = \"care+birth\"", "reads = \"care+teeth\"");
        assert!(Matrix::parse(&unknown, codes)
            .unwrap_err()
            .contains("\"teeth\""));
        let section = text.replace(
            "sections = [\"emergency\", \"measurements\"]",
            "sections = [\"emergency\", \"diary\"]",
        );
        assert!(Matrix::parse(&section, codes)
            .unwrap_err()
            .contains("unknown section \"diary\""));
    }
}
