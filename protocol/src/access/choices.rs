//! The person's own choices about who may reach their space, signed by the owner and by
//! nobody else, not even a delegate with the admin role: refusals of emergency access
//! (F7.5), blocked professionals and establishments (F7.2), and the médecin traitant with
//! the policy that applies to them (F7.3). The relay keeps the latest in the membership
//! and enforces it.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::access::escrow::EscrowMode;
use crate::crypto::signed::SignedBody;
use crate::ids::{PrincipalId, SpaceId};
use crate::time::UnixMillis;

/// What the médecin traitant reads (F7.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum AttendingPolicy {
    /// The law of 2022: everything, hidden documents included; the person cannot restrict
    /// it (they can designate another médecin traitant).
    #[default]
    Law2022,
    /// The citizen committee's wish (seed 004): the person may restrict it, warned of the
    /// consequences.
    CitizenCommittee,
}

impl AttendingPolicy {
    /// The configuration and command-line name.
    pub fn name(self) -> &'static str {
        match self {
            AttendingPolicy::Law2022 => "law-2022",
            AttendingPolicy::CitizenCommittee => "citizen-committee",
        }
    }

    /// Parses a name given by [`AttendingPolicy::name`].
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "law-2022" => Ok(AttendingPolicy::Law2022),
            "citizen-committee" => Ok(AttendingPolicy::CitizenCommittee),
            other => Err(Invalid::from(format!(
                "unknown médecin traitant policy {other:?}; known: law-2022, citizen-committee"
            ))),
        }
    }

    /// The age from which a minor manages their own space (F9.1): 16 by the law, 15 as
    /// the committee suggests.
    pub fn handover_age(self) -> u8 {
        match self {
            AttendingPolicy::Law2022 => 16,
            AttendingPolicy::CitizenCommittee => 15,
        }
    }
}

/// The person's choices; the highest version wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonChoices {
    /// The space.
    pub space: SpaceId,
    /// Higher wins.
    pub version: u64,
    /// When.
    pub issued_at: UnixMillis,
    /// Refuses SAMU-Centre 15 (F7.5).
    pub refuse_centre15: bool,
    /// Refuses break-glass (F7.5).
    pub refuse_break_glass: bool,
    /// Blocked professionals (F7.2).
    pub blocked: BTreeSet<PrincipalId>,
    /// Blocked establishments, by the structure the directory names (F7.2).
    pub blocked_structures: BTreeSet<String>,
    /// The médecin traitant the person designated (F7.3).
    pub attending: Option<PrincipalId>,
    /// The policy the person chose for them; the deployment's when `None`.
    pub policy: Option<AttendingPolicy>,
    /// Establishments whose care team the person consented to once (F7.4): each member
    /// still gets their own grants and every access is logged by name, mode care team.
    pub care_teams: BTreeSet<String>,
}

impl SignedBody for PersonChoices {
    const CONTEXT: &'static [u8] = b"mes/person-choices/v1";
}

impl PersonChoices {
    /// No choice made yet: nothing refused, nobody blocked, no médecin traitant.
    pub fn none(space: SpaceId) -> Self {
        PersonChoices {
            space,
            version: 0,
            issued_at: UnixMillis(0),
            refuse_centre15: false,
            refuse_break_glass: false,
            blocked: BTreeSet::new(),
            blocked_structures: BTreeSet::new(),
            attending: None,
            policy: None,
            care_teams: BTreeSet::new(),
        }
    }

    /// Whether the person refused this emergency mode.
    pub fn refuses(&self, mode: EscrowMode) -> bool {
        match mode {
            EscrowMode::Centre15 => self.refuse_centre15,
            EscrowMode::BreakGlass => self.refuse_break_glass,
        }
    }

    /// Whether a principal is blocked, directly or through their structure.
    pub fn blocks(&self, who: PrincipalId, structure: Option<&str>) -> bool {
        self.blocked.contains(&who)
            || structure.is_some_and(|s| self.blocked_structures.contains(s))
    }
}
