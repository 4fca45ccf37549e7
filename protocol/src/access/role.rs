//! Roles on a space or a volume, from appending to administering: what each may do with
//! a volume of each kind.

use crate::ids::VolumeKind;
use serde::{Deserialize, Serialize};

/// A role on a space or a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Role {
    /// Append drops to the inbox only; cannot read.
    Append,
    /// Read.
    Read,
    /// Read and write.
    Write,
    /// Read, write, and manage membership.
    Admin,
}

impl Role {
    /// May read the volume's log.
    pub fn can_read(self) -> bool {
        self >= Role::Read
    }
    /// May append bundles to the volume (inbox drops need only [`Role::Append`]).
    pub fn can_write(self, kind: VolumeKind) -> bool {
        match kind {
            VolumeKind::Inbox => true,
            _ => self >= Role::Write,
        }
    }
}
