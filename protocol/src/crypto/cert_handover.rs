//! A relay's certificate handover (issue 27, item 7): devices pin the relay's certificate
//! by its SHA-256 fingerprint, so a new certificate would cut every pinned device off.
//! The relay's signing key (the one the `Welcome` of a pinned connection names) signs
//! "certificate `old` is followed by `new`", and the relay sends its handovers as extra
//! entries of its TLS chain. A device whose pinned certificate is no longer presented
//! accepts the presented one only through an unbroken run of handovers, each signed by
//! the relay key it learned over the pinned connection, from its pin to what is
//! presented ([`follows`]); it then pins the new one. A stranger's certificate, or a
//! handover signed by any other key, is refused as before.

use crate::crypto::signed::{Signed, SignedBody};
use crate::ids::PrincipalId;
use crate::time::UnixMillis;
use crate::wire::codec;
use serde::{Deserialize, Serialize};

/// "The certificate `old` is followed by `new`" (SHA-256 fingerprints, lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertHandover {
    /// The fingerprint devices pinned.
    pub old: String,
    /// The fingerprint that replaces it.
    pub new: String,
    /// When the relay's operator rotated.
    pub at: UnixMillis,
}

impl SignedBody for CertHandover {
    const CONTEXT: &'static [u8] = b"mes/relay-cert-handover/v1";
}

/// What starts a handover's entry in the TLS chain (an entry no X.509 parser takes for
/// a certificate: DER starts with a SEQUENCE tag, 0x30).
pub const MARKER: &[u8] = b"MES-CERT-HANDOVER\0";

/// Most handovers a device follows from its pin (one per rotation kept at the relay).
pub const MAX_HOPS: usize = 16;

/// A handover as an entry of the relay's TLS chain.
pub fn to_chain_entry(h: &Signed<CertHandover>) -> Vec<u8> {
    [MARKER, &codec::to_bytes(h)].concat()
}

/// A chain entry read back as a handover (`None` for anything else).
pub fn from_chain_entry(entry: &[u8]) -> Option<Signed<CertHandover>> {
    codec::from_bytes(entry.strip_prefix(MARKER)?).ok()
}

/// Whether `presented` follows `pinned` through `handovers` each signed by `relay_key`.
pub fn follows(
    pinned: &str,
    presented: &str,
    relay_key: &PrincipalId,
    handovers: &[Signed<CertHandover>],
) -> bool {
    let mut current = pinned.to_ascii_lowercase();
    for _ in 0..MAX_HOPS {
        if current == presented {
            return true;
        }
        let next = handovers
            .iter()
            .find(|h| h.body.old == current && h.signer == *relay_key && h.verify().is_ok());
        match next {
            Some(h) => current = h.body.new.to_ascii_lowercase(),
            None => return false,
        }
    }
    current == presented
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeyPair;

    fn handover(key: &KeyPair, old: &str, new: &str) -> Signed<CertHandover> {
        Signed::sign(
            CertHandover {
                old: old.into(),
                new: new.into(),
                at: UnixMillis(1),
            },
            &key.signing,
        )
    }

    #[test]
    fn only_an_unbroken_run_signed_by_the_relay_key_is_followed() {
        let mut rng = rand::rngs::OsRng;
        let relay = KeyPair::generate(&mut rng);
        let stranger = KeyPair::generate(&mut rng);
        let key = PrincipalId(relay.signing.public());
        let chain = [handover(&relay, "aa", "bb"), handover(&relay, "bb", "cc")];
        assert!(follows("aa", "aa", &key, &[]), "the pin itself");
        assert!(follows("aa", "cc", &key, &chain), "two rotations");
        assert!(!follows("aa", "dd", &key, &chain), "not in the run");
        assert!(
            !follows("aa", "bb", &key, &[handover(&stranger, "aa", "bb")]),
            "another key"
        );
        let mut forged = handover(&relay, "aa", "bb");
        forged.body.new = "ee".into();
        assert!(!follows("aa", "ee", &key, &[forged]), "an altered handover");
        let entry = to_chain_entry(&chain[0]);
        assert_eq!(from_chain_entry(&entry), Some(chain[0].clone()));
        assert_eq!(from_chain_entry(&entry[1..]), None);
    }
}
