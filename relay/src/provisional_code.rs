//! Provisional codes (F1.2, F1.3): 12 characters from digits and upper-case letters
//! (`123456789ABC`), drawn from the OS generator, single use, kept only as a keyed hash
//! (the hub's secret as key), so a copy of the store gives no working code.

use rand::Rng;

/// The alphabet of codes: digits and upper-case letters.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Length of a code.
pub const LEN: usize = 12;

/// A fresh code.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Normalises what a person typed (spaces, dashes, lower case) or says what is wrong.
pub fn normalise(typed: &str) -> Result<String, String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.chars().count() != LEN {
        return Err(format!(
            "a provisional code has {LEN} characters, this one {}",
            code.chars().count()
        ));
    }
    if let Some(bad) = code
        .chars()
        .find(|c| !ALPHABET.contains(&(*c as u8)) || !c.is_ascii())
    {
        return Err(format!(
            "a provisional code has digits and letters only, not {bad:?}"
        ));
    }
    Ok(code)
}

/// The keyed hash kept in place of a code.
pub fn hash(secret: &[u8; 32], code: &str) -> [u8; 32] {
    *blake3::keyed_hash(secret, code.as_bytes()).as_bytes()
}

/// Whether `typed` is the code behind `stored` (constant time).
pub fn matches(secret: &[u8; 32], typed: &str, stored: &[u8; 32]) -> bool {
    normalise(typed).is_ok_and(|c| {
        blake3::keyed_hash(secret, c.as_bytes()) == blake3::Hash::from_bytes(*stored)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_characters_hashed_and_checked_as_typed() {
        let secret = [7u8; 32];
        let c = generate();
        assert_eq!(c.len(), LEN);
        assert!(normalise(&c).is_ok());
        assert_ne!(generate(), c);
        let stored = hash(&secret, &c);
        let typed = format!("{}-{} {}", &c[0..4], &c[4..8], &c[8..12]).to_lowercase();
        assert!(matches(&secret, &typed, &stored));
        assert!(!matches(&[8u8; 32], &c, &stored), "another hub's key");
        assert!(!matches(&secret, "123456789ABD", &stored));
        assert!(normalise("12345").unwrap_err().contains("12 characters"));
        assert!(normalise("12345678É9AB")
            .unwrap_err()
            .contains("digits and letters"));
    }
}
