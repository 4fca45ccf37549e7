//! The catalogue of approved services (F6): services the authorities reference, each with
//! the referencing criteria it met (technical, ethical, security, interoperability, its
//! eco-score), where it is hosted and who controls it. The hub signs each entry; a service
//! hosted or controlled outside the European Union is suspended until it comes back
//! (seed 003: "suspendue le temps de sa régularisation"), and the relay then refuses it
//! everything. Which data a person lets a service exchange lives in the person's space as
//! grants (F6.2).

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

use crate::access::membership::SignedBody;
use crate::ids::PrincipalId;
use crate::time::UnixMillis;

/// The member states of the European Union (ISO 3166-1 alpha-2).
pub const EU_MEMBER_STATES: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The eco-scores, best first.
pub const ECO_SCORES: [&str; 5] = ["A", "B", "C", "D", "E"];

/// The referencing criteria (seed 003), as the referencing committee assessed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Criteria {
    /// Technical requirements of the Agence du numérique en santé.
    pub technical: bool,
    /// Ethical criteria (Haute autorité de santé, ethics and inclusion experts).
    pub ethical: bool,
    /// Security criteria (integrity, confidentiality, availability, auditability).
    pub security: bool,
    /// Interoperability rules.
    pub interoperability: bool,
    /// Ecological impact, `A` (best) to `E`.
    pub eco_score: String,
}

/// A service as the operator lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Service {
    /// Short stable id: lower case letters, digits and dashes (`tensio-suivi`).
    pub id: String,
    /// The service's principal (its devices authenticate as it).
    pub principal: PrincipalId,
    /// Name shown to people.
    pub name: String,
    /// Who publishes it.
    pub editor: String,
    /// What it does, in French.
    pub description_fr: String,
    /// What it does, in English.
    pub description_en: String,
    /// Where to find it.
    pub url: String,
    /// Country hosting its data (ISO 3166-1 alpha-2).
    pub hosting_country: String,
    /// Country of the company controlling it.
    pub controller_country: String,
    /// What it may exchange with a space: record sections (`profile`, `emergency`,
    /// `prevention`, `care`, `measurements`, `agenda`) or document groups
    /// (`documents/care`, ...). A person allows all of it or part of it.
    pub data: Vec<String>,
    /// The referencing criteria.
    pub criteria: Criteria,
}

/// Why a listed service is suspended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Suspension {
    /// Its data are hosted outside the EU.
    HostingOutsideEu {
        /// Where.
        country: String,
    },
    /// A company outside the EU controls it.
    ControllerOutsideEu {
        /// Whose.
        country: String,
    },
    /// The operator took it out of the catalogue.
    Withdrawn,
}

impl Suspension {
    /// In French.
    pub fn fr(&self) -> String {
        match self {
            Suspension::HostingOutsideEu { country } => {
                format!("suspendu : données hébergées hors de l'Union européenne ({country})")
            }
            Suspension::ControllerOutsideEu { country } => format!(
                "suspendu : contrôlé par une entreprise hors de l'Union européenne ({country})"
            ),
            Suspension::Withdrawn => "retiré du catalogue".into(),
        }
    }

    /// In English.
    pub fn en(&self) -> String {
        match self {
            Suspension::HostingOutsideEu { country } => {
                format!("suspended: data hosted outside the European Union ({country})")
            }
            Suspension::ControllerOutsideEu { country } => {
                format!("suspended: controlled by a company outside the European Union ({country})")
            }
            Suspension::Withdrawn => "withdrawn from the catalogue".into(),
        }
    }
}

impl std::fmt::Display for Suspension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.en())
    }
}

/// A hub-signed catalogue entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CatalogueEntry {
    /// The service.
    pub service: Service,
    /// When the operator listed it (this version).
    pub listed_at: UnixMillis,
    /// Why it is suspended, if it is.
    pub suspended: Option<Suspension>,
}

impl SignedBody for CatalogueEntry {
    const CONTEXT: &'static [u8] = b"mes/catalogue-entry/v1";
}

fn is_eu(country: &str) -> bool {
    EU_MEMBER_STATES.contains(&country)
}

fn check_country(what: &str, c: &str) -> Result<(), Invalid> {
    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "{what} {c:?} is not an ISO 3166-1 alpha-2 code (FR, DE, US, ...)"
        )))
    }
}

/// Whether a data item names something a space holds: a record section or a document
/// group other than the hidden documents.
fn check_data(item: &str) -> Result<(), Invalid> {
    let known = match item.strip_prefix("documents/") {
        Some(g) => crate::record::codes::DOC_GROUPS.contains(&g),
        None => crate::access::habilitation::SECTIONS.contains(&item),
    };
    if known {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "data {item:?} is neither a record section ({}) nor a document group (documents/{})",
            crate::access::habilitation::SECTIONS.join(", "),
            crate::record::codes::DOC_GROUPS.join(", documents/")
        )))
    }
}

/// Whether `item` (a section or document group) covers the volume labelled `label`.
pub fn data_covers(item: &str, label: &str) -> bool {
    item == label || (item == "measurements" && label.starts_with("measurements/"))
}

impl Service {
    /// Checks a listing: id, names, countries, data, and that it met every criterion
    /// (a service that did not is not referenced).
    pub fn check(&self) -> Result<(), Invalid> {
        let id_ok = (2..=40).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(Invalid::from(format!(
                "id {:?} must be 2 to 40 lower case letters, digits or dashes",
                self.id
            )));
        }
        for (what, v) in [
            ("name", &self.name),
            ("editor", &self.editor),
            ("description_fr", &self.description_fr),
            ("description_en", &self.description_en),
        ] {
            if v.trim().is_empty() {
                return Err(Invalid::from(format!("{what} is empty")));
            }
        }
        if !self.url.starts_with("https://") {
            return Err(Invalid::from(format!(
                "url {:?} must start with https://",
                self.url
            )));
        }
        check_country("hosting_country", &self.hosting_country)?;
        check_country("controller_country", &self.controller_country)?;
        if self.data.is_empty() {
            return Err(Invalid::from(
                "data is empty: say what the service exchanges",
            ));
        }
        for d in &self.data {
            check_data(d)?;
        }
        let c = &self.criteria;
        for (met, name) in [
            (c.technical, "technical"),
            (c.ethical, "ethical"),
            (c.security, "security"),
            (c.interoperability, "interoperability"),
        ] {
            if !met {
                return Err(Invalid::from(format!(
                    "it does not meet the {name} criteria: a service is referenced only when it meets them all"
                )));
            }
        }
        if !ECO_SCORES.contains(&c.eco_score.as_str()) {
            return Err(Invalid::from(format!(
                "eco_score {:?} is not one of A, B, C, D, E",
                c.eco_score
            )));
        }
        Ok(())
    }

    /// Why the service must be suspended now, if it must (F6.3).
    pub fn suspension(&self) -> Option<Suspension> {
        if !is_eu(&self.hosting_country) {
            Some(Suspension::HostingOutsideEu {
                country: self.hosting_country.clone(),
            })
        } else if !is_eu(&self.controller_country) {
            Some(Suspension::ControllerOutsideEu {
                country: self.controller_country.clone(),
            })
        } else {
            None
        }
    }

    /// Whether the service may exchange the volume labelled `label`.
    pub fn offers(&self, label: &str) -> bool {
        self.data.iter().any(|d| data_covers(d, label))
    }
}

/// What the local API shows of a catalogue entry, for one space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ServiceView {
    /// The service as listed.
    pub service: Service,
    /// Why it is suspended, in French, if it is.
    pub suspended_fr: Option<String>,
    /// Why it is suspended, in English, if it is.
    pub suspended_en: Option<String>,
    /// What this person allows it to exchange (data items), empty when not allowed.
    pub allowed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            id: "tensio-suivi".into(),
            principal: PrincipalId([3; 32]),
            name: "Tensio Suivi".into(),
            editor: "Tensio SAS".into(),
            description_fr: "Suivi de la tension".into(),
            description_en: "Blood pressure follow-up".into(),
            url: "https://tensio.example".into(),
            hosting_country: "FR".into(),
            controller_country: "FR".into(),
            data: vec!["measurements".into(), "agenda".into()],
            criteria: Criteria {
                technical: true,
                ethical: true,
                security: true,
                interoperability: true,
                eco_score: "B".into(),
            },
        }
    }

    #[test]
    fn a_good_listing_passes_and_each_fault_is_named() {
        assert_eq!(service().check(), Ok(()));
        let bad = |f: fn(&mut Service), named: &str| {
            let mut s = service();
            f(&mut s);
            let e = s.check().unwrap_err();
            assert!(e.contains(named), "{named}: {e}");
        };
        bad(|s| s.id = "Tensio".into(), "id \"Tensio\"");
        bad(|s| s.name = " ".into(), "name is empty");
        bad(|s| s.url = "http://x".into(), "https://");
        bad(|s| s.hosting_country = "France".into(), "hosting_country");
        bad(
            |s| s.data = vec!["documents/hidden".into()],
            "documents/hidden",
        );
        bad(|s| s.data = vec!["wallet".into()], "\"wallet\"");
        bad(|s| s.data.clear(), "data is empty");
        bad(|s| s.criteria.ethical = false, "ethical criteria");
        bad(|s| s.criteria.eco_score = "F".into(), "eco_score");
    }

    #[test]
    fn hosting_or_control_outside_the_eu_suspends() {
        assert_eq!(service().suspension(), None);
        let mut s = service();
        s.hosting_country = "US".into();
        assert_eq!(
            s.suspension(),
            Some(Suspension::HostingOutsideEu {
                country: "US".into()
            })
        );
        let mut s = service();
        s.controller_country = "CN".into();
        assert!(s
            .suspension()
            .unwrap()
            .fr()
            .contains("hors de l'Union européenne (CN)"));
        // The United Kingdom left the EU.
        let mut s = service();
        s.hosting_country = "GB".into();
        assert!(s.suspension().is_some());
    }

    #[test]
    fn data_items_cover_their_volumes() {
        let s = service();
        assert!(s.offers("measurements/weight/2026"));
        assert!(s.offers("agenda"));
        assert!(!s.offers("profile"));
        assert!(!s.offers("documents/hidden"));
    }
}
