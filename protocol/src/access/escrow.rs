//! Emergency access without prior consent (F7.5): SAMU-Centre 15 and break-glass, two
//! modes the person refuses separately. For each mode not refused, the owner's daemon
//! wraps the keys of the emergency volume, and of it only, to an escrow key the hub's
//! emergency service holds; the hub re-wraps them to a listed professional who asks, for a
//! limited time, logs the release and every read in the access history, and the person's
//! devices hear of it. Refusing a mode drops its envelopes and starts a new epoch the
//! escrow never gets. docs/threat-model.md says what this lets the hub do.

use serde::{Deserialize, Serialize};

use crate::access::history::AccessMode;
use crate::ids::DeviceId;

/// How long a release lasts.
pub const RELEASE_MILLIS: u64 = 24 * 3600 * 1000;

/// The label of the only volume escrowed.
pub const ESCROWED_LABEL: &str = "emergency";

/// An emergency access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum EscrowMode {
    /// SAMU-Centre 15: the regulating physician.
    Centre15,
    /// Bris de glace: an emergency team on site.
    BreakGlass,
}

impl EscrowMode {
    /// Both modes.
    pub const ALL: [EscrowMode; 2] = [EscrowMode::Centre15, EscrowMode::BreakGlass];

    /// The pseudo-device its envelopes are addressed to.
    pub fn device(self) -> DeviceId {
        let tag: &[u8] = match self {
            EscrowMode::Centre15 => b"mes/escrow/centre-15",
            EscrowMode::BreakGlass => b"mes/escrow/break-glass",
        };
        DeviceId(*blake3::hash(tag).as_bytes())
    }

    /// The access history mode of a release.
    pub fn access_mode(self) -> AccessMode {
        match self {
            EscrowMode::Centre15 => AccessMode::Centre15,
            EscrowMode::BreakGlass => AccessMode::BreakGlass,
        }
    }

    /// The mode whose pseudo-device this is.
    pub fn of_device(d: DeviceId) -> Option<EscrowMode> {
        Self::ALL.into_iter().find(|m| m.device() == d)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            EscrowMode::Centre15 => "centre-15",
            EscrowMode::BreakGlass => "break-glass",
        }
    }
}
