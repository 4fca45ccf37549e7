//! The versioned compact binary codec: one version byte, then a postcard body.
//!
//! Every decode takes an explicit size limit, and errors name what is wrong (too large,
//! wrong version, malformed body) so a peer sending garbage gets a useful answer.
//! Streams carry frames as a 4-byte big-endian length, then the encoded frame.

use serde::{de::DeserializeOwned, Serialize};

use crate::PROTOCOL_VERSION;

/// Largest relay wire frame (a batch of bundles or a blob chunk): 8 MiB.
pub const MAX_WIRE_FRAME: usize = 8 * 1024 * 1024;
/// Largest local API frame: 16 MiB (notes, document metadata, file paths; files go by path).
pub const MAX_API_FRAME: usize = 16 * 1024 * 1024;
/// Largest pairing message.
pub const MAX_PAIRING_MESSAGE: usize = 64 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is larger than the limit for its channel.
    #[error("frame too large: {len} bytes, the limit is {max}")]
    TooLarge {
        /// Announced or actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Empty input.
    #[error("empty frame: no version byte")]
    Empty,
    /// A version this build does not speak.
    #[error("unsupported protocol version {got}, this build speaks {expected}")]
    Version {
        /// The version byte received.
        got: u8,
        /// The version this build speaks.
        expected: u8,
    },
    /// The body does not decode as the expected type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The type expected.
        what: &'static str,
        /// postcard's reason.
        reason: String,
    },
    /// Bytes left over after a complete value.
    #[error("malformed {what}: {extra} trailing bytes")]
    Trailing {
        /// The type expected.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
}

/// Encodes a value: version byte then postcard body.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![PROTOCOL_VERSION];
    // postcard only fails on types it cannot represent (none of ours) or IO errors (none here).
    out.extend(postcard::to_stdvec(value).expect("protocol types are postcard-encodable"));
    out
}

/// Decodes a value, refusing anything over `max` bytes, of another version, or malformed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    let what = short_type_name::<T>();
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::Version {
            got: version,
            expected: PROTOCOL_VERSION,
        });
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes a value unversioned, for bytes that are hashed, signed or sealed (their
/// version is carried by the enclosing structure).
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("protocol types are postcard-encodable")
}

/// Decodes an unversioned value produced by [`to_bytes`].
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let what = short_type_name::<T>();
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Prefixes an encoded frame with its 4-byte big-endian length, for streams.
pub fn length_prefixed(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
    out
}

/// Checks an announced stream frame length against the limit before reading the body.
pub fn check_length(len: u32, max: usize) -> Result<usize, DecodeError> {
    let len = len as usize;
    if len > max {
        return Err(DecodeError::TooLarge { len, max });
    }
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    Ok(len)
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_problem() {
        let bytes = encode(&(1u32, "x".to_string()));
        assert!(matches!(
            decode::<(u32, String)>(&bytes, 2),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        let err = decode::<(u32, String)>(&wrong, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unsupported protocol version 99, this build speaks {PROTOCOL_VERSION}")
        );
        let err = decode::<crate::wire::ClientFrame>(&[PROTOCOL_VERSION, 200, 1], 100).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed ClientFrame"),
            "{err}"
        );
        assert_eq!(decode::<u8>(&[], 10), Err(DecodeError::Empty));
        let mut extra = encode(&5u8);
        extra.push(0);
        assert!(matches!(
            decode::<u8>(&extra, 10),
            Err(DecodeError::Trailing { extra: 1, .. })
        ));
        assert!(check_length(u32::MAX, MAX_WIRE_FRAME).is_err());
    }
}
