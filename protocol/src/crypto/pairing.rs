//! Adding a device to a person: SPAKE2 over a short code shown on an existing device.
//!
//! The code is `NNNN-PPPPPPPP` in Crockford base32: the 4-character nameplate picks the
//! rendezvous at the relay (so the relay learns 20 bits), the whole code is the SPAKE2
//! password. Both sides run the symmetric SPAKE2 through the relay, derive a key, and
//! prove it with a confirmation MAC before anything secret moves; a relay that swaps the
//! SPAKE2 messages ends up with different keys on each side and pairing fails with
//! [`PairingError::Confirmation`]. One guess per code: a failed exchange burns the code.

use serde::{Deserialize, Serialize};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::crypto::seal::SymmetricKey;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const SPAKE_IDENTITY: &[u8] = b"mes/pairing/v1";

/// What the two sides of a pairing send each other through the relay (postcard-encoded,
/// opaque to the relay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairMessage {
    /// The SPAKE2 message.
    Spake(Vec<u8>),
    /// Key confirmation from one side.
    Confirm {
        /// Who confirms.
        role: PairingRole,
        /// MAC from [`PairingKey::confirmation`].
        mac: [u8; 32],
    },
    /// A payload sealed under [`PairingKey::channel_key`] (device keys one way, the
    /// principal's keys and certificate the other).
    Sealed(Vec<u8>),
    /// The sender gives up, with a reason.
    Abort(String),
}

/// A pairing code.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode {
    text: String,
}

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PairingCode({}-…)", &self.text[..4])
    }
}

/// Why pairing failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    /// The code is not of the form `NNNN-PPPPPPPP`.
    #[error("malformed pairing code {0:?}: expected 4 + 8 characters like 7KQ2-9XMB3TFA")]
    MalformedCode(String),
    /// The peer's SPAKE2 message is malformed.
    #[error("pairing message malformed")]
    Malformed,
    /// The keys differ: wrong code, or someone in the middle.
    #[error("pairing failed: the code does not match on both devices, or the relay tampered with the exchange")]
    Confirmation,
}

impl PairingCode {
    /// A fresh random code.
    pub fn generate(rng: &mut impl rand::RngCore) -> Self {
        let mut text = String::with_capacity(13);
        for i in 0..12 {
            if i == 4 {
                text.push('-');
            }
            text.push(ALPHABET[(rng.next_u32() % 32) as usize] as char);
        }
        PairingCode { text }
    }

    /// Parses a code typed by a person: case-insensitive, `O`→`0`, `I`/`L`→`1`, dashes and
    /// spaces ignored.
    pub fn parse(s: &str) -> Result<Self, PairingError> {
        let cleaned: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            })
            .collect();
        if cleaned.len() != 12 || !cleaned.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(PairingError::MalformedCode(s.to_string()));
        }
        Ok(PairingCode {
            text: format!("{}-{}", &cleaned[..4], &cleaned[4..]),
        })
    }

    /// The code as shown.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The rendezvous at the relay, derived from the nameplate only.
    pub fn rendezvous(&self) -> [u8; 16] {
        let h = blake3::derive_key("mes/pairing/rendezvous/v1", &self.text.as_bytes()[..4]);
        h[..16].try_into().expect("16 bytes")
    }
}

/// One side of the exchange in progress.
pub struct PairingExchange {
    spake: Spake2<Ed25519Group>,
}

/// The role of a side, for confirmation MACs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairingRole {
    /// The existing device, which showed the code.
    Existing,
    /// The new device, which typed it.
    Joining,
}

impl PairingExchange {
    /// Starts; returns the message to send to the other side.
    pub fn start(
        code: &PairingCode,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> (Self, Vec<u8>) {
        let (spake, msg) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
            &Password::new(code.text.as_bytes()),
            &Identity::new(SPAKE_IDENTITY),
            rng,
        );
        (PairingExchange { spake }, msg)
    }

    /// Finishes with the other side's message; the key is not yet confirmed.
    pub fn finish(self, peer_message: &[u8]) -> Result<PairingKey, PairingError> {
        let key = self
            .spake
            .finish(peer_message)
            .map_err(|_| PairingError::Malformed)?;
        Ok(PairingKey(SymmetricKey::from_bytes(blake3::derive_key(
            "mes/pairing/key/v1",
            &key,
        ))))
    }
}

/// The shared key of a finished exchange.
pub struct PairingKey(SymmetricKey);

impl PairingKey {
    /// The confirmation MAC a side sends.
    pub fn confirmation(&self, role: PairingRole) -> [u8; 32] {
        let label = match role {
            PairingRole::Existing => b"existing".as_slice(),
            PairingRole::Joining => b"joining".as_slice(),
        };
        *blake3::keyed_hash(self.0.derive("mes/pairing/confirm/v1").as_bytes(), label).as_bytes()
    }

    /// Checks the peer's confirmation in constant time.
    pub fn check(&self, peer_role: PairingRole, mac: &[u8; 32]) -> Result<(), PairingError> {
        let expected = blake3::Hash::from(self.confirmation(peer_role));
        if expected == blake3::Hash::from(*mac) {
            Ok(())
        } else {
            Err(PairingError::Confirmation)
        }
    }

    /// The key that seals what moves after confirmation.
    pub fn channel_key(&self) -> SymmetricKey {
        self.0.derive("mes/pairing/channel/v1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_code_agrees_other_code_or_swap_fails() {
        let mut rng = rand::thread_rng();
        let code = PairingCode::generate(&mut rng);
        let typed = PairingCode::parse(&code.as_str().to_lowercase()).unwrap();
        assert_eq!(typed, code);
        let (a, ma) = PairingExchange::start(&code, &mut rng);
        let (b, mb) = PairingExchange::start(&typed, &mut rng);
        let ka = a.finish(&mb).unwrap();
        let kb = b.finish(&ma).unwrap();
        kb.check(
            PairingRole::Existing,
            &ka.confirmation(PairingRole::Existing),
        )
        .unwrap();

        // A man in the middle runs its own exchange with each side, guessing the code.
        let guess = PairingCode::generate(&mut rng);
        let (a, _ma) = PairingExchange::start(&code, &mut rng);
        let (m, mm) = PairingExchange::start(&guess, &mut rng);
        let ka = a.finish(&mm).unwrap();
        let _km = m.finish(&[0u8; 33]).err();
        let (b, mb) = PairingExchange::start(&guess, &mut rng);
        let _ = mb;
        let kb = b
            .finish(&PairingExchange::start(&guess, &mut rng).1)
            .unwrap();
        assert_eq!(
            kb.check(
                PairingRole::Existing,
                &ka.confirmation(PairingRole::Existing)
            ),
            Err(PairingError::Confirmation)
        );
        assert!(matches!(
            PairingCode::parse("abc"),
            Err(PairingError::MalformedCode(_))
        ));
    }
}
