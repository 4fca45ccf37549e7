//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`): the protocol's decoders
//! ([`mes_protocol::fuzzing`]) and the one that needs a replica, so that kept crashers and
//! the seed corpus are replayed by an ordinary test (`daemon/tests/fuzz_replay.rs`) on
//! every run, without cargo-fuzz.

pub use mes_protocol::fuzzing::Target;

use crate::replica::volume::{self, Replica};

/// Every fuzz target, by name (as in `fuzz/Cargo.toml`).
pub fn targets() -> Vec<(&'static str, Target)> {
    let mut t = mes_protocol::fuzzing::DECODERS.to_vec();
    t.push(("volume_payload", volume_payload));
    t
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
