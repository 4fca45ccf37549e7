//! Typed identifiers. Random ids are 16 bytes; key-derived ids are the 32-byte public key.
//!
//! Every id prints as lowercase hex and parses back from it, so scripts can pass them around.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error parsing an id from text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind}: expected {expected} hex characters, got {got:?}")]
pub struct ParseIdError {
    /// Which id kind was being parsed.
    pub kind: &'static str,
    /// How many hex characters were expected.
    pub expected: usize,
    /// The text received.
    pub got: String,
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $label:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub struct $name(pub [u8; $len]);

        /// Hex text in human-readable formats (JSON for scripts), raw bytes in postcard.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_string())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(d).map(Self)
                }
            }
        }

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            /// A fresh random id from the given source.
            pub fn random(rng: &mut impl rand::RngCore) -> Self {
                let mut b = [0u8; $len];
                rng.fill_bytes(&mut b);
                Self(b)
            }
            /// First 8 hex characters, for logs and screens.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError { kind: $label, expected: $len * 2, got: s.to_string() };
                let bytes = hex::decode(s.trim()).map_err(|_| err())?;
                let arr: [u8; $len] = bytes.try_into().map_err(|_| err())?;
                Ok(Self(arr))
            }
        }
    };
}

byte_id!(
    /// One person's "Mon espace santé" (F1): random.
    SpaceId, 16, "space id"
);
byte_id!(
    /// A volume: the unit of sync, encryption and sharing: random.
    VolumeId, 16, "volume id"
);
byte_id!(
    /// A principal (citizen, professional, relative, service, hub): its Ed25519 public key.
    PrincipalId, 32, "principal id"
);
byte_id!(
    /// A device of a principal: its Ed25519 public key.
    DeviceId, 32, "device id"
);
byte_id!(
    /// A blob (encrypted document file): BLAKE3 hash of its ciphertext.
    BlobId, 32, "blob id"
);

/// Relay-assigned sequence number in a volume's log: dense, starting at 1; 0 means "nothing".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Seq(pub u64);

impl Seq {
    /// The next sequence number.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Key epoch of a volume: a new epoch (new key) starts whenever a member is removed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Epoch(pub u32);

/// Generation of a volume: a compacted fresh document; the old log is dropped once every
/// member has moved to the new generation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Generation(pub u32);

/// What a volume holds, which decides how it syncs and who may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum VolumeKind {
    /// An automerge document (profile, notes, agenda, settings, document metadata...).
    Automerge,
    /// A hash-chained log of entries (the access journal).
    ChainedLog,
    /// Append-only drops sealed to the space's inbox recipient by writers who cannot read.
    Inbox,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        let id = SpaceId([7; 16]);
        assert_eq!(id.to_string().parse::<SpaceId>().unwrap(), id);
        let err = "zz".parse::<VolumeId>().unwrap_err();
        assert!(err.to_string().contains("volume id"), "{err}");
    }

    #[test]
    fn ids_are_hex_in_json_and_bytes_in_postcard() {
        let id = DeviceId([0xab; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DeviceId>("\"abc\"").is_err());
        let bin = crate::wire::codec::to_bytes(&id);
        assert_eq!(bin.len(), 32);
        assert_eq!(
            crate::wire::codec::from_bytes::<DeviceId>(&bin).unwrap(),
            id
        );
    }
}
