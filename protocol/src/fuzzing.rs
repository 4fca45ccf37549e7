//! Entry points of the fuzz targets of the protocol's decoders (`fuzz/fuzz_targets/`),
//! one per decoder of untrusted bytes, so that kept crashers and the seed corpus are
//! replayed by an ordinary test (`daemon/tests/fuzz_replay.rs`) without cargo-fuzz. The
//! daemon adds the targets that need a replica (`mes_daemon::fuzzing`).
//!
//! Each must never panic, whatever the input: a decoder answers with an error that names
//! the problem.

use crate::access::membership::Membership;
use crate::crypto::envelope::KeyEnvelope;
use crate::crypto::keys::AgeSecret;
use crate::crypto::pairing::PairMessage;
use crate::crypto::seal::{SealedBundle, SymmetricKey};
use crate::ids::{Epoch, Generation, SpaceId, VolumeId};
use crate::wire::api::{ApiFrame, ApiRequest};
use crate::wire::codec::{decode, MAX_API_FRAME, MAX_WIRE_FRAME};
use crate::wire::{ClientFrame, RelayFrame};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The protocol's decoder targets, by name (as in `fuzz/Cargo.toml`).
pub const DECODERS: &[(&str, Target)] = &[
    ("wire_client_frame", wire_client_frame),
    ("wire_relay_frame", wire_relay_frame),
    ("api_request", api_request),
    ("api_frame", api_frame),
    ("envelope", envelope),
    ("bundle", bundle),
    ("membership", membership),
    ("pair_message", pair_message),
];

/// A device → relay frame.
pub fn wire_client_frame(data: &[u8]) {
    let _ = decode::<ClientFrame>(data, MAX_WIRE_FRAME);
}

/// A relay → device frame.
pub fn wire_relay_frame(data: &[u8]) {
    let _ = decode::<RelayFrame>(data, MAX_WIRE_FRAME);
}

/// A local API request (from any process that can open the socket).
pub fn api_request(data: &[u8]) {
    let _ = decode::<ApiRequest>(data, MAX_API_FRAME);
}

/// A local API response or event.
pub fn api_frame(data: &[u8]) {
    let _ = decode::<ApiFrame>(data, MAX_API_FRAME);
}

/// A key envelope, decoded then unwrapped with an identity (age's parser on hostile
/// bytes).
pub fn envelope(data: &[u8]) {
    if let Ok(e) = crate::wire::codec::from_bytes::<KeyEnvelope>(data) {
        static IDENTITY: std::sync::OnceLock<AgeSecret> = std::sync::OnceLock::new();
        let _ = e.unwrap(IDENTITY.get_or_init(AgeSecret::generate));
    }
}

/// A sealed bundle, decoded, verified and opened.
pub fn bundle(data: &[u8]) {
    if let Ok(b) = crate::wire::codec::from_bytes::<SealedBundle>(data) {
        let _ = SealedBundle::verify_authors([&b]);
        let key = SymmetricKey::from_bytes([7; 32]);
        let _ = b.open(
            &key,
            (SpaceId([1; 16]), VolumeId([2; 16]), Generation(0), Epoch(0)),
            false,
        );
    }
}

/// A membership as the relay returns it, decoded and re-verified record by record (what
/// a daemon does before wrapping keys).
pub fn membership(data: &[u8]) {
    if let Ok(m) = crate::wire::codec::from_bytes::<Membership>(data) {
        let _ = m.verified(Some(crate::ids::PrincipalId([7; 32])));
    }
}

/// A pairing message from the other side of a rendezvous.
pub fn pair_message(data: &[u8]) {
    let _ = crate::wire::codec::from_bytes::<PairMessage>(data);
}
