//! The emergency and help numbers directory (F10), as data:
//! `protocol/data/emergency-numbers.toml`.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// One number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(deny_unknown_fields)]
pub struct EmergencyNumber {
    /// What to dial.
    pub number: String,
    /// What it is for, French.
    pub fr: String,
    /// What it is for, English.
    pub en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Directory {
    number: Vec<EmergencyNumber>,
}

/// Parses a directory file; the error names what is wrong.
pub fn parse(text: &str) -> Result<Vec<EmergencyNumber>, String> {
    let d: Directory = toml::from_str(text).map_err(|e| e.to_string())?;
    for n in &d.number {
        if n.number.is_empty() || !n.number.chars().all(|c| c.is_ascii_digit() || c == ' ') {
            return Err(format!("{:?} is not a phone number", n.number));
        }
    }
    Ok(d.number)
}

/// The directory shipped with this build.
pub fn builtin() -> &'static [EmergencyNumber] {
    static D: OnceLock<Vec<EmergencyNumber>> = OnceLock::new();
    D.get_or_init(|| {
        parse(include_str!("../../data/emergency-numbers.toml"))
            .expect("protocol/data/emergency-numbers.toml is checked by a test")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_holds_the_national_numbers() {
        let d = builtin();
        for n in [
            "15", "17", "18", "112", "114", "115", "119", "3114", "116 117",
        ] {
            assert!(d.iter().any(|e| e.number == n), "{n} missing");
        }
        assert!(d.iter().all(|e| !e.fr.is_empty() && !e.en.is_empty()));
        let bad = "[[number]]\nnumber = \"15a\"\nfr = \"x\"\nen = \"x\"\n";
        assert!(parse(bad).unwrap_err().contains("15a"));
    }
}
