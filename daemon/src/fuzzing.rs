//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`), one per decoder of untrusted
//! bytes. They live here so that kept crashers and the seed corpus are replayed by an
//! ordinary test (`daemon/tests/fuzz_replay.rs`) on every run, without cargo-fuzz.
//!
//! Each must never panic, whatever the input: a decoder answers with an error that names
//! the problem.

use mes_protocol::api::{ApiFrame, ApiRequest};
use mes_protocol::codec::{decode, MAX_API_FRAME, MAX_WIRE_FRAME};
use mes_protocol::envelope::KeyEnvelope;
use mes_protocol::ids::{Epoch, Generation, SpaceId, VolumeId};
use mes_protocol::keys::AgeSecret;
use mes_protocol::membership::Membership;
use mes_protocol::pairing::PairMessage;
use mes_protocol::seal::{SealedBundle, SymmetricKey};
use mes_protocol::wire::{ClientFrame, RelayFrame};

use crate::replica::volume::{self, Replica};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (as in `fuzz/Cargo.toml`).
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_client_frame", wire_client_frame),
    ("wire_relay_frame", wire_relay_frame),
    ("api_request", api_request),
    ("api_frame", api_frame),
    ("envelope", envelope),
    ("bundle", bundle),
    ("membership", membership),
    ("pair_message", pair_message),
    ("volume_payload", volume_payload),
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
    if let Ok(e) = mes_protocol::codec::from_bytes::<KeyEnvelope>(data) {
        static IDENTITY: std::sync::OnceLock<AgeSecret> = std::sync::OnceLock::new();
        let _ = e.unwrap(IDENTITY.get_or_init(AgeSecret::generate));
    }
}

/// A sealed bundle, decoded, verified and opened.
pub fn bundle(data: &[u8]) {
    if let Ok(b) = mes_protocol::codec::from_bytes::<SealedBundle>(data) {
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
    if let Ok(m) = mes_protocol::codec::from_bytes::<Membership>(data) {
        let _ = crate::daemon::verify_membership(&m, mes_protocol::ids::PrincipalId([7; 32]));
    }
}

/// A pairing message from the other side of a rendezvous.
pub fn pair_message(data: &[u8]) {
    let _ = mes_protocol::codec::from_bytes::<PairMessage>(data);
}

/// A decrypted bundle's payload, decoded and applied to a replica of each kind (the
/// automerge change parser and the log and inbox decoders).
pub fn volume_payload(data: &[u8]) {
    if let Ok(p) = volume::decode(data) {
        for kind in [
            mes_protocol::ids::VolumeKind::Automerge,
            mes_protocol::ids::VolumeKind::ChainedLog,
            mes_protocol::ids::VolumeKind::Inbox,
        ] {
            let mut r = Replica::new(kind, &[1; 32]);
            let _ = r.apply_remote(&[(mes_protocol::ids::Seq(1), p.clone())]);
            let _ = r.digest();
        }
    }
}
