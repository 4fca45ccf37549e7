//! Documents (F3): metadata kept in the `documents/<group>` volumes (one per habilitation
//! group, plus `documents/hidden`), the file itself an encrypted content-addressed blob
//! whose key travels in the metadata. Search queries and their filters (F3.5).

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::record::Source;

/// The DMP visibility flags (F3.3, F3.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct Visibility {
    /// `MASQUE_PS`: hidden from professionals by the person.
    #[autosurgeon(missing = "Default::default")]
    pub hidden_from_professionals: bool,
    /// `INVISIBLE_PATIENT`: held back from the patient until the announcement consultation.
    #[autosurgeon(missing = "Default::default")]
    pub invisible_to_patient: bool,
    /// `INVISIBLE_REPRESENTANTS_LEGAUX`: not shown to a minor's legal representatives.
    #[autosurgeon(missing = "Default::default")]
    pub invisible_to_legal_representatives: bool,
}

/// Why a visibility change was refused (the DMP rules, F3.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisibilityError {
    /// `MASQUE_PS` and `INVISIBLE_PATIENT` together.
    #[error("MASQUE_PS and INVISIBLE_PATIENT are exclusive: a document held back from the patient cannot also be hidden from professionals")]
    Exclusive,
    /// Making a document visible to legal representatives without confirming.
    #[error("making a document visible to the legal representatives cannot be undone: confirm it (--confirm)")]
    NeedsConfirmation,
    /// Hiding again from legal representatives a document they could see.
    #[error("this document is visible to the legal representatives; it cannot be made invisible to them again")]
    Irreversible,
}

impl Visibility {
    /// Checks a change of flags by the person against the DMP rules: never `MASQUE_PS`
    /// with `INVISIBLE_PATIENT`; clearing `INVISIBLE_REPRESENTANTS_LEGAUX` is irreversible
    /// and must be confirmed; setting it again is refused (the flag is set by the
    /// professional who adds the document).
    pub fn check_change(&self, new: &Visibility, confirmed: bool) -> Result<(), VisibilityError> {
        if new.hidden_from_professionals && new.invisible_to_patient {
            return Err(VisibilityError::Exclusive);
        }
        match (
            self.invisible_to_legal_representatives,
            new.invisible_to_legal_representatives,
        ) {
            (true, false) if !confirmed => Err(VisibilityError::NeedsConfirmation),
            (false, true) => Err(VisibilityError::Irreversible),
            _ => Ok(()),
        }
    }

    /// The flags a document dropped by a professional may carry (made consistent:
    /// `INVISIBLE_PATIENT` wins over `MASQUE_PS`).
    pub fn from_professional(v: &Visibility) -> Visibility {
        Visibility {
            hidden_from_professionals: v.hidden_from_professionals && !v.invisible_to_patient,
            ..v.clone()
        }
    }
}

#[cfg(test)]
mod visibility_tests {
    use super::*;

    #[test]
    fn the_dmp_rules_hold() {
        let plain = Visibility::default();
        let both = Visibility {
            hidden_from_professionals: true,
            invisible_to_patient: true,
            ..Default::default()
        };
        assert_eq!(
            plain.check_change(&both, true),
            Err(VisibilityError::Exclusive)
        );
        let from_parents = Visibility {
            invisible_to_legal_representatives: true,
            ..Default::default()
        };
        assert_eq!(
            from_parents.check_change(&plain, false),
            Err(VisibilityError::NeedsConfirmation)
        );
        assert_eq!(from_parents.check_change(&plain, true), Ok(()));
        assert_eq!(
            plain.check_change(&from_parents, true),
            Err(VisibilityError::Irreversible)
        );
        assert!(!Visibility::from_professional(&both).hidden_from_professionals);
    }
}

/// One document's metadata and the reference to its file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields, default)]
pub struct DocumentMeta {
    /// Stable id.
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// Title.
    #[autosurgeon(missing = "Default::default")]
    pub title: String,
    /// Date of the document (YYYY-MM-DD).
    #[autosurgeon(missing = "Default::default")]
    pub date: String,
    /// Author as shown (a professional, the person, a service).
    #[autosurgeon(missing = "Default::default")]
    pub author: String,
    /// Product category id (protocol/data/codes.toml).
    #[autosurgeon(missing = "Default::default")]
    pub category: String,
    /// DMP class code.
    #[autosurgeon(missing = "Default::default")]
    pub class_code: String,
    /// Type code (LOINC or `MES-*`).
    #[autosurgeon(missing = "Default::default")]
    pub type_code: String,
    /// Visibility flags.
    #[autosurgeon(missing = "Default::default")]
    pub visibility: Visibility,
    /// Original file name.
    #[autosurgeon(missing = "Default::default")]
    pub file_name: String,
    /// Media type ("application/pdf").
    #[autosurgeon(missing = "Default::default")]
    pub media_type: String,
    /// Plaintext size in bytes.
    #[autosurgeon(missing = "Default::default")]
    pub size: u64,
    /// Blob id (hex of the BLAKE3 of its ciphertext).
    #[autosurgeon(missing = "Default::default")]
    pub blob: String,
    /// Blob key (hex); emptied in API listings.
    #[autosurgeon(missing = "Default::default")]
    pub blob_key: String,
    /// Ciphertext size.
    #[autosurgeon(missing = "Default::default")]
    pub ciphertext_len: u64,
    /// Extracted text of a text document (first KiB), for search and preview.
    #[autosurgeon(missing = "Default::default")]
    pub excerpt: String,
    /// Who added it.
    #[autosurgeon(missing = "Default::default")]
    pub source: Source,
    /// When it was added (RFC 3339).
    #[autosurgeon(missing = "Default::default")]
    pub added_at: String,
}

/// A document volume: its documents by id at the document's root (a map that exists from
/// the start, so two devices adding concurrently never create rival containers; adding
/// one is one small change whatever the volume's size).
pub type DocumentVolume = BTreeMap<String, DocumentMeta>;

/// What a person gives when adding a document (`mes doc add`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NewDocument {
    /// Absolute path of the file.
    pub path: String,
    /// Title (default: the file name).
    pub title: String,
    /// Category id.
    pub category: String,
    /// Type code (default: the category's first).
    pub type_code: String,
    /// Class code (default: the category's first).
    pub class_code: String,
    /// Date (YYYY-MM-DD).
    pub date: String,
    /// Author (default: the person).
    pub author: String,
    /// A fixed id (bulk import: re-running adds nothing twice); empty for a new one.
    pub id: String,
    /// Who is adding it.
    pub source: Source,
}

/// What checking a bulk import found (F3.7): problems by row (0-based, in the order
/// given), and the rows whose document the space already holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ImportCheck {
    /// Each bad row and why.
    pub problems: Vec<RowProblem>,
    /// Rows already imported (same id, same document): re-running skips them.
    pub present: Vec<u32>,
}

/// One bad row of a bulk import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RowProblem {
    /// Row index, 0-based, in the order given.
    pub row: u32,
    /// What is wrong.
    pub reason: String,
}

/// A search (F3.5): keywords over titles and metadata, and filters. Empty fields do not
/// filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DocQuery {
    /// Keywords, all of which must match (case and accent insensitive).
    pub text: String,
    /// Category id.
    pub category: String,
    /// Type code.
    pub type_code: String,
    /// Author (substring, case and accent insensitive).
    pub author: String,
    /// From date, inclusive (YYYY-MM-DD).
    pub from: String,
    /// To date, inclusive.
    pub to: String,
    /// Hidden documents only (true), visible only (false), both (None).
    pub hidden: Option<bool>,
    /// At most this many results (0: all), newest first.
    pub limit: u32,
    /// With each document's first KiB of text (a preview); lists leave it out.
    pub excerpts: bool,
}

/// Folds text for matching: lower case, French accents removed.
pub fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'á' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' => 'i',
            'ô' | 'ö' | 'ó' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ç' => 'c',
            'ÿ' => 'y',
            other => other,
        })
        .collect()
}

impl DocQuery {
    /// The query with its keywords and author folded once, ready to run over many
    /// documents.
    pub fn prepare(&self) -> Prepared<'_> {
        Prepared {
            query: self,
            words: fold(&self.text)
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            author: fold(&self.author),
        }
    }
}

/// A document's folded text: what keywords are searched in (`haystack`), and its author.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Title, author, file name, labels, date, excerpt.
    pub text: String,
    /// The author alone.
    pub author: String,
}

/// A document's folded text.
pub fn folded(d: &DocumentMeta) -> Folded {
    Folded {
        text: haystack(d),
        author: fold(&d.author),
    }
}

/// A query ready to run (`DocQuery::prepare`).
pub struct Prepared<'a> {
    query: &'a DocQuery,
    words: Vec<String>,
    author: String,
}

impl Prepared<'_> {
    /// Whether matching reads the documents' folded text (keywords or an author).
    pub fn needs_text(&self) -> bool {
        !self.words.is_empty() || !self.author.is_empty()
    }

    /// Whether a document passes the filters; `folded` is its folded text (any value when
    /// `needs_text` is false).
    pub fn matches(&self, d: &DocumentMeta, folded: &Folded) -> bool {
        let q = self.query;
        (q.category.is_empty() || d.category == q.category)
            && (q.type_code.is_empty() || d.type_code == q.type_code)
            && (q.from.is_empty() || d.date.as_str() >= q.from.as_str())
            && (q.to.is_empty() || d.date.as_str() <= q.to.as_str())
            && q.hidden
                .is_none_or(|h| d.visibility.hidden_from_professionals == h)
            && (self.author.is_empty() || folded.author.contains(self.author.as_str()))
            && self.words.iter().all(|w| folded.text.contains(w.as_str()))
    }
}

/// The text a document is searched by: title, author, file name, category and type
/// labels, excerpt; folded.
pub fn haystack(d: &DocumentMeta) -> String {
    let codes = crate::record::codes::Codes::builtin();
    let cat = codes
        .category(&d.category)
        .map(|c| format!("{} {}", c.fr, c.en))
        .unwrap_or_default();
    let ty = codes
        .doc_type(&d.type_code)
        .map(|t| format!("{} {}", t.fr, t.en))
        .unwrap_or_default();
    fold(&format!(
        "{} {} {} {} {} {} {}",
        d.title, d.author, d.file_name, cat, ty, d.date, d.excerpt
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_filters_combine_and_ignore_case_and_accents() {
        let d = DocumentMeta {
            title: "Résultats_AnalyseMed_Inaya-Michel".into(),
            date: "2021-01-27".into(),
            author: "Hun Nguyen".into(),
            category: "biology".into(),
            type_code: "11502-2".into(),
            ..Default::default()
        };
        let h = folded(&d);
        let q = |text: &str, f: fn(&mut DocQuery)| {
            let mut q = DocQuery {
                text: text.into(),
                ..Default::default()
            };
            f(&mut q);
            q.prepare().matches(&d, &h)
        };
        assert!(q("resultats nguyen", |_| {}));
        assert!(q("biologie", |_| {}), "the category's label is searched");
        assert!(q("", |q| q.category = "biology".into()));
        assert!(!q("", |q| q.category = "imaging".into()));
        assert!(q("", |q| {
            q.from = "2021-01-01".into();
            q.to = "2021-01-31".into();
        }));
        assert!(!q("", |q| q.from = "2021-02-01".into()));
        assert!(q("", |q| q.author = "NGUYÉN".into()));
        assert!(!q("radio", |_| {}));
        assert!(q("", |q| q.hidden = Some(false)));
        assert!(!q("", |q| q.hidden = Some(true)));
    }
}
