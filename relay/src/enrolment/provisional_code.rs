//! Provisional codes (F1.2, F1.3): 12 characters from digits and upper-case letters
//! (`123456789ABC`), derived from the hub's key (a PRF), single use, kept only as a keyed hash
//! (the hub's secret as key), so a copy of the store gives no working code.

use mes_protocol::invalid::Invalid;
/// The alphabet of codes: digits and upper-case letters.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Length of a code.
pub const LEN: usize = 12;

/// The `issue`-th code of a person: a keyed BLAKE3 stream over the NIR and the issue
/// number, mapped onto the alphabet without bias. The outbox keeps only the issue
/// number, so neither the outbox nor the store's old log segments ever hold a code:
/// delivery derives it again with the hub's key.
pub fn derive(secret: &[u8; 32], nir: &str, issue: u64) -> String {
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(b"mes provisional code v1\0");
    h.update(nir.as_bytes());
    h.update(&issue.to_be_bytes());
    let mut stream = h.finalize_xof();
    let mut out = String::with_capacity(LEN);
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    while out.len() < LEN {
        let mut b = [0u8; 16];
        stream.fill(&mut b);
        for x in b {
            if x < limit && out.len() < LEN {
                out.push(ALPHABET[x as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// Normalises what a person typed (spaces, dashes, lower case) or says what is wrong.
pub fn normalise(typed: &str) -> Result<String, Invalid> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.chars().count() != LEN {
        return Err(Invalid::from(format!(
            "a provisional code has {LEN} characters, this one {}",
            code.chars().count()
        )));
    }
    if let Some(bad) = code
        .chars()
        .find(|c| !ALPHABET.contains(&(*c as u8)) || !c.is_ascii())
    {
        return Err(Invalid::from(format!(
            "a provisional code has digits and letters only, not {bad:?}"
        )));
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
        let c = derive(&secret, "2900175001001", 1);
        assert_eq!(c.len(), LEN);
        assert!(normalise(&c).is_ok());
        let d = derive(&secret, "1800569123456", 1);
        assert!(normalise(&d).is_ok());
        assert_eq!(d, derive(&secret, "1800569123456", 1));
        assert_ne!(d, derive(&secret, "1800569123456", 2));
        assert_ne!(d, derive(&[8u8; 32], "1800569123456", 1));
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
