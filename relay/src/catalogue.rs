//! The catalogue file the operator imports (F6): a TOML list of `[[service]]` tables
//! (see `docs/catalogue.example.toml`), checked whole before anything is stored. Each bad
//! service is reported with the line its table starts on and the reason; a file with any
//! bad service imports nothing.

use mes_protocol::enrolment::catalogue::Service;
use std::collections::BTreeSet;

pub use crate::checked_csv::BadRow;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    service: Vec<toml::Spanned<toml::Table>>,
}

fn line_of(text: &str, offset: usize) -> u64 {
    text[..offset.min(text.len())].matches('\n').count() as u64 + 1
}

/// Parses a catalogue file into services, or every bad one.
pub fn parse(text: &str) -> Result<Vec<Service>, Vec<BadRow>> {
    let file: File = toml::from_str(text).map_err(|e| {
        vec![BadRow {
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            reason: e.message().to_string(),
        }]
    })?;
    let mut ids = BTreeSet::new();
    let mut principals = BTreeSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for table in file.service {
        let line = line_of(text, table.span().start);
        let checked = toml::Value::Table(table.into_inner())
            .try_into::<Service>()
            .map_err(|e| e.message().to_string())
            .and_then(|s| {
                s.check().map_err(|e| format!("service {:?}: {e}", s.id))?;
                if !ids.insert(s.id.clone()) {
                    return Err(format!("service id {:?} is listed twice", s.id));
                }
                if !principals.insert(s.principal) {
                    return Err(format!("principal {} is listed twice", s.principal));
                }
                Ok(s)
            });
        match checked {
            Ok(s) => good.push(s),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let text = include_str!("../../docs/catalogue.example.toml");
        let services = parse(text).unwrap();
        assert!(services.len() >= 3);
        assert!(services.iter().any(|s| s.suspension().is_some()));
    }

    #[test]
    fn every_bad_service_is_named_with_its_line() {
        let good = include_str!("../../docs/catalogue.example.toml");
        let first = parse(good).unwrap().remove(0);
        let twice = format!(
            "{good}\n[[service]]\nid = \"{}\"\nprincipal = \"{}\"\nname = \"X\"\neditor = \"X\"\ndescription_fr = \"x\"\ndescription_en = \"x\"\nurl = \"https://x\"\nhosting_country = \"FR\"\ncontroller_country = \"FR\"\ndata = [\"agenda\"]\ncriteria = {{ technical = true, ethical = false, security = true, interoperability = true, eco_score = \"A\" }}\n",
            first.id,
            hex::encode([9u8; 32]),
        );
        let errs = parse(&twice).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, good.lines().count() as u64 + 2, "{errs:?}");
        assert!(errs[0].reason.contains("ethical criteria"), "{errs:?}");
        let errs = parse("[[service]]\nid = \"x1\"\n").unwrap_err();
        assert!(errs[0].reason.contains("missing field"), "{errs:?}");
        let errs = parse("[[service]\n").unwrap_err();
        assert_eq!(errs[0].line, 1, "{errs:?}");
    }
}
