//! The NIR (numéro d'inscription au répertoire, the social security number) and the rules
//! an activation checks (F1.3): 13 characters and a 2-digit key, key = 97 - (number mod
//! 97), Corsica's départements 2A and 2B counting as 19 and 18 in the arithmetic; the
//! identifier and password rules of the hub's account.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

/// A NIR whose key checked, kept as its 13 characters (the key is derived).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Nir(String);

/// Why a NIR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NirError {
    /// Not 15 characters once spaces are removed.
    #[error("a NIR has 13 characters and a 2-digit key (15 in all), not {0}")]
    Length(usize),
    /// A character out of place.
    #[error("NIR character {position} is {found:?}: {expected}")]
    Character {
        /// 1-based position.
        position: usize,
        /// What was found.
        found: char,
        /// What is allowed there.
        expected: &'static str,
    },
    /// The key does not match.
    #[error("NIR key {found:02} is wrong (the number gives {expected:02})")]
    Key {
        /// Key given.
        found: u64,
        /// Key computed.
        expected: u64,
    },
}

impl Nir {
    /// Parses a NIR with its key, spaces allowed ("2 84 05 2A 004 017 96").
    pub fn parse(text: &str) -> Result<Nir, NirError> {
        let s: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let n = s.chars().count();
        if n != 15 {
            return Err(NirError::Length(n));
        }
        for (i, c) in s.chars().enumerate() {
            let ok = match i {
                0 => matches!(c, '1' | '2' | '3' | '4' | '7' | '8'),
                5 => c.is_ascii_digit(),
                6 => c.is_ascii_digit() || (s.as_bytes()[5] == b'2' && matches!(c, 'A' | 'B')),
                _ => c.is_ascii_digit(),
            };
            if !ok {
                return Err(NirError::Character {
                    position: i + 1,
                    found: c,
                    expected: match i {
                        0 => "the sex digit is 1 or 2 (3, 4, 7, 8 for provisional numbers)",
                        6 => "a digit, or A/B after 2 for Corsica",
                        _ => "a digit",
                    },
                });
            }
        }
        let (body, key) = s.split_at(13);
        let found: u64 = key.parse().expect("two digits checked");
        let expected = Self::key_of(body);
        if found != expected {
            return Err(NirError::Key { found, expected });
        }
        Ok(Nir(body.to_string()))
    }

    /// The 15 characters of a 13-character body with its key (test data, populations).
    pub fn with_key(body: &str) -> String {
        format!("{body}{:02}", Self::key_of(body))
    }

    fn key_of(body: &str) -> u64 {
        let digits = body.replace("2A", "19").replace("2B", "18");
        let number: u64 = digits.parse().expect("13 digits once Corsica is mapped");
        97 - number % 97
    }

    /// The 13 characters, without the key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 15 characters, with the key.
    pub fn full(&self) -> String {
        Self::with_key(&self.0)
    }

    /// The key.
    pub fn key(&self) -> u64 {
        Self::key_of(&self.0)
    }

    /// The NIR with its key, grouped as on a carte Vitale ("2 84 05 2A 004 017 96").
    pub fn display(&self) -> String {
        let s = &self.0;
        format!(
            "{} {} {} {} {} {} {:02}",
            &s[0..1],
            &s[1..3],
            &s[3..5],
            &s[5..7],
            &s[7..10],
            &s[10..13],
            self.key()
        )
    }
}

/// Checks an account identifier (F1.3): at least 8 characters, not an email address.
pub fn check_identifier(id: &str) -> Result<(), Invalid> {
    if id.chars().count() < 8 {
        return Err(Invalid::from("the identifier needs at least 8 characters"));
    }
    if id.contains('@') {
        return Err(Invalid::from("the identifier must not be an email address"));
    }
    if id.chars().any(char::is_whitespace) {
        return Err(Invalid::from("the identifier must not contain spaces"));
    }
    Ok(())
}

/// Checks a password (F1.3): at least 8 characters with an upper case, a lower case, a
/// digit and a special character; every missing rule is named.
pub fn check_password(p: &str) -> Result<(), Invalid> {
    let mut missing = Vec::new();
    if p.chars().count() < 8 {
        missing.push("at least 8 characters");
    }
    if !p.chars().any(char::is_uppercase) {
        missing.push("an upper case letter");
    }
    if !p.chars().any(char::is_lowercase) {
        missing.push("a lower case letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if !p.chars().any(|c| !c.is_alphanumeric()) {
        missing.push("a special character");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Invalid::from(format!(
            "the password needs {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(body: &str) -> String {
        format!("{body}{:02}", Nir::key_of(body))
    }

    #[test]
    fn keys_check_with_corsica_counted_as_19_and_18() {
        // 1 84 12 76 451 089: 1841276451089 mod 97 = 51, key 46.
        let n = Nir::parse("1 84 12 76 451 089 46").unwrap();
        assert_eq!(n.key(), 46);
        assert_eq!(n.display(), "1 84 12 76 451 089 46");
        assert_eq!(
            Nir::parse("1 84 12 76 451 089 47"),
            Err(NirError::Key {
                found: 47,
                expected: 46
            })
        );
        for body in ["284052A004017", "284052B004017"] {
            let n = Nir::parse(&with_key(body)).unwrap();
            let mapped: u64 = body
                .replace("2A", "19")
                .replace("2B", "18")
                .parse()
                .unwrap();
            assert_eq!(n.key(), 97 - mapped % 97);
        }
        assert_ne!(
            Nir::key_of("284052A004017"),
            Nir::key_of("284052B004017"),
            "2A and 2B give different keys"
        );
        assert!(matches!(
            Nir::parse("5 84 12 76 451 089 46"),
            Err(NirError::Character { position: 1, .. })
        ));
        assert!(matches!(
            Nir::parse("1 84 12 7A 451 089 46"),
            Err(NirError::Character { position: 7, .. })
        ));
        assert_eq!(Nir::parse("1841276451089"), Err(NirError::Length(13)));
    }

    #[test]
    fn identifier_and_password_rules_name_what_is_missing() {
        assert!(check_identifier("inaya.m84").is_ok());
        assert!(check_identifier("short").is_err());
        assert!(check_identifier("inaya@example.fr")
            .unwrap_err()
            .contains("email"));
        assert!(check_password("Sant3!eux").is_ok());
        let e = check_password("santé").unwrap_err();
        for rule in ["8 characters", "upper case", "digit", "special"] {
            assert!(e.contains(rule), "{e}");
        }
        assert!(!e.contains("lower case"));
    }
}
