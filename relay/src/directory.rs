//! The professional directory the operator imports (F7, F8.1): a CSV of
//! `rpps,principal,name,profession,specialty,structure`, checked whole before anything is
//! stored. Every bad row is reported with its line and reason, and a file with any bad row
//! imports nothing.

use mes_protocol::access::habilitation::Matrix;
use mes_protocol::enrolment::principal::{check_specialty, Professional, Rpps};
use mes_protocol::ids::PrincipalId;
use std::collections::BTreeSet;

pub use crate::checked_csv::BadRow;

/// The expected header.
pub const HEADER: &[&str] = &[
    "rpps",
    "principal",
    "name",
    "profession",
    "specialty",
    "structure",
];

/// Parses a directory file into (principal, professional) rows, or every bad row.
pub fn parse(text: &str) -> Result<Vec<(PrincipalId, Professional)>, Vec<BadRow>> {
    let matrix = Matrix::builtin();
    let mut seen_rpps = BTreeSet::new();
    let mut seen_principal = BTreeSet::new();
    crate::checked_csv::parse(text, HEADER, |_, field| {
        let rpps = Rpps::parse(&field(0)).map_err(|e| e.to_string())?;
        let principal: PrincipalId = field(1).parse().map_err(|e| format!("principal: {e}"))?;
        let name = field(2);
        if name.is_empty() {
            return Err("the name is empty".to_string());
        }
        matrix.profession(&field(3))?;
        let specialty = match field(4).as_str() {
            "" => None,
            s => {
                check_specialty(s)?;
                Some(s.to_string())
            }
        };
        let structure = Some(field(5)).filter(|s| !s.is_empty());
        if !seen_rpps.insert(rpps.clone()) {
            return Err(format!("RPPS {rpps} is listed twice"));
        }
        if !seen_principal.insert(principal) {
            return Err(format!("principal {principal} is listed twice"));
        }
        Ok((
            principal,
            Professional {
                rpps,
                name,
                profession: field(3),
                specialty,
                structure,
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_parse_and_every_bad_row_is_named_with_its_line() {
        let rpps = Rpps::with_check_digit("1000000001").unwrap();
        let rpps2 = Rpps::with_check_digit("1000000002").unwrap();
        let p = hex::encode([7u8; 32]);
        let q = hex::encode([8u8; 32]);
        let good = format!(
            "rpps,principal,name,profession,specialty,structure\n{rpps},{p},Dr Claire Martin,10,SM26,Cabinet du Parc\n{rpps2},{q},Paul Durand,40,,\n"
        );
        let rows = parse(&good).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.specialty.as_deref(), Some("SM26"));
        assert_eq!(rows[1].1.structure, None);

        let bad = format!(
            "rpps,principal,name,profession,specialty,structure\n{rpps},{p},Dr Claire Martin,10,SM26,\n12345678901,{q},X,10,,\n{rpps2},zz,Y,10,,\n{rpps2},{q},Z,77,,\n{rpps2},{q},Z,10,XX1,\n{rpps},{q},Dup,10,,\n"
        );
        let errs = parse(&bad).unwrap_err();
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7], "{errs:?}");
        assert!(errs[0].reason.contains("check digit"), "{errs:?}");
        assert!(errs[1].reason.contains("principal"), "{errs:?}");
        assert!(
            errs[2].reason.contains("unknown profession code \"77\""),
            "{errs:?}"
        );
        assert!(errs[3].reason.contains("TRE_R38"), "{errs:?}");
        assert!(errs[4].reason.contains("listed twice"), "{errs:?}");
        assert_eq!(parse("a,b\n").unwrap_err()[0].line, 1);
    }
}
