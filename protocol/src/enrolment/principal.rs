//! Principals other than the person (F7, F8.1): professionals as the relay's directory
//! lists them, and the directory entry the relay signs with its own key.
//!
//! A professional is identified by an RPPS number (11 digits, the last a Luhn check
//! digit), a profession code of TRE_G15, an optional specialty of TRE_R38 (`SM26`), and
//! a structure. The operator imports the directory (`mes-relay directory import`); the
//! relay signs each entry, binding the RPPS and attributes to the professional's principal
//! key, so a daemon deciding what to wrap to whom trusts the hub's word only as far as the
//! hub's signature goes.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::crypto::signed::SignedBody;
use crate::ids::PrincipalId;
use crate::time::UnixMillis;

/// An RPPS number, checked.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rpps(String);

/// Why an RPPS number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RppsError {
    /// Not 11 digits.
    #[error("RPPS {0:?} must be 11 digits")]
    Shape(String),
    /// The Luhn check digit does not match.
    #[error("RPPS {0:?} fails its check digit (Luhn)")]
    CheckDigit(String),
}

impl Rpps {
    /// Parses and checks an RPPS number.
    pub fn parse(text: &str) -> Result<Rpps, RppsError> {
        let t = text.trim();
        if t.len() != 11 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RppsError::Shape(t.to_string()));
        }
        if !luhn_ok(t) {
            return Err(RppsError::CheckDigit(t.to_string()));
        }
        Ok(Rpps(t.to_string()))
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Completes 10 digits with their Luhn check digit (fixtures and sandbox data).
    pub fn with_check_digit(first_ten: &str) -> Result<Rpps, RppsError> {
        for d in 0..10u8 {
            let candidate = format!("{first_ten}{d}");
            if let Ok(r) = Rpps::parse(&candidate) {
                return Ok(r);
            }
        }
        Err(RppsError::Shape(first_ten.to_string()))
    }
}

impl fmt::Display for Rpps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Rpps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rpps({})", self.0)
    }
}

fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A professional as the directory lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Professional {
    /// RPPS number.
    pub rpps: Rpps,
    /// Display name ("Dr Claire Martin").
    pub name: String,
    /// TRE_G15 profession code ("10" médecin).
    pub profession: String,
    /// TRE_R38 specialty ("SM26"), if any.
    pub specialty: Option<String>,
    /// Structure (establishment, practice), if any.
    pub structure: Option<String>,
}

/// One line of the relay's directory: this principal key is this professional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// The professional's principal.
    pub principal: PrincipalId,
    /// Who they are.
    pub professional: Professional,
    /// When the operator listed them.
    pub listed_at: UnixMillis,
}

impl SignedBody for DirectoryEntry {
    const CONTEXT: &'static [u8] = b"mes/directory-entry/v1";
}

/// Checks a TRE_R38 specialty code's shape (`SM01`..`SM95`, `SCD01`.., `SI01`..).
pub fn check_specialty(code: &str) -> Result<(), Invalid> {
    let digits = code
        .strip_prefix("SCD")
        .or_else(|| code.strip_prefix("SM"))
        .or_else(|| code.strip_prefix("SI"));
    match digits {
        Some(d) if d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(Invalid::from(format!(
            "specialty {code:?} is not a TRE_R38 code (SM01..SM95, SCD01.., SI01..)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpps_needs_eleven_digits_and_its_luhn_digit() {
        let good = Rpps::with_check_digit("1000000001").unwrap();
        assert_eq!(Rpps::parse(good.as_str()).unwrap(), good);
        let mut wrong = good.as_str().to_string();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '9' {
            '0'
        } else {
            (last as u8 + 1) as char
        });
        assert!(matches!(Rpps::parse(&wrong), Err(RppsError::CheckDigit(_))));
        assert!(matches!(Rpps::parse("123"), Err(RppsError::Shape(_))));
        assert!(matches!(
            Rpps::parse("1000000000a"),
            Err(RppsError::Shape(_))
        ));
    }

    #[test]
    fn specialties_are_checked_by_shape() {
        assert!(check_specialty("SM26").is_ok());
        assert!(check_specialty("SCD01").is_ok());
        assert!(check_specialty("SM2").is_err());
        assert!(check_specialty("XX26").is_err());
    }
}
