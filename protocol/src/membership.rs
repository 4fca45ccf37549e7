//! Who may do what in a space: records signed by the space's owner or an admin.
//!
//! - [`SpaceGenesis`]: creates a space and names its owner and inbox recipient;
//! - [`VolumeDecl`]: declares a volume of the space with its kind and generation;
//! - [`Grant`]: gives (or with `role: None`, removes) a principal's role on the whole space
//!   or one volume; the highest `version` per (principal, scope) wins;
//! - [`DeviceRevocation`]: a principal disowns one of its devices.
//!
//! [`Membership`] folds records into the current state; both the relay (which enforces it)
//! and daemons (which verify it before wrapping keys) run the same code.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::choices::PersonChoices;
use crate::codec;
use crate::escrow::EscrowMode;
use crate::ids::{DeviceId, Generation, PrincipalId, SpaceId, VolumeId, VolumeKind};
use crate::keys::{verify, AgeRecipient, Signature, SignatureError, SigningSecret};
use crate::time::UnixMillis;

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

/// A body with a fixed signature context.
pub trait SignedBody: Serialize {
    /// Domain separation for the signature.
    const CONTEXT: &'static [u8];
}

/// A body signed by a principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is stated.
    pub body: T,
    /// Who states it.
    pub signer: PrincipalId,
    /// Signature over the encoded body.
    pub signature: Signature,
}

impl<T: SignedBody> Signed<T> {
    /// Signs a body.
    pub fn sign(body: T, key: &SigningSecret) -> Self {
        let signature = key.sign(T::CONTEXT, &codec::to_bytes(&body));
        Signed {
            body,
            signer: PrincipalId(key.public()),
            signature,
        }
    }
    /// Checks the signature (not whether the signer had the right to sign).
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify(
            &self.signer.0,
            T::CONTEXT,
            &codec::to_bytes(&self.body),
            &self.signature,
            "membership record",
        )
    }
}

/// Creates a space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceGenesis {
    /// The space.
    pub space: SpaceId,
    /// Its owner: the person whose health space it is (or the hub for an auto-created one).
    pub owner: PrincipalId,
    /// Recipient to which write-only contributors seal inbox drops (F7.6).
    pub inbox_recipient: AgeRecipient,
    /// When.
    pub created_at: UnixMillis,
}
impl SignedBody for SpaceGenesis {
    const CONTEXT: &'static [u8] = b"mes/space-genesis/v1";
}

/// Declares a volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDecl {
    /// Space.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// Kind.
    pub kind: VolumeKind,
    /// Current generation (a new declaration with a higher generation starts one).
    pub generation: Generation,
    /// A label for logs; not sensitive ("notes", "journal", "inbox").
    pub label: String,
}
impl SignedBody for VolumeDecl {
    const CONTEXT: &'static [u8] = b"mes/volume-decl/v1";
}

/// Gives or removes a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Space.
    pub space: SpaceId,
    /// One volume, or the whole space when `None`.
    pub volume: Option<VolumeId>,
    /// Who receives the role.
    pub principal: PrincipalId,
    /// The role; `None` removes it.
    pub role: Option<Role>,
    /// Version per (principal, scope); the highest wins.
    pub version: u64,
    /// When.
    pub issued_at: UnixMillis,
    /// When it lapses (a trusted person's or a guardian's access for a while, F9.2,
    /// F9.3); `None` lasts until removed.
    pub expires_at: Option<UnixMillis>,
}
impl SignedBody for Grant {
    const CONTEXT: &'static [u8] = b"mes/grant/v1";
}

/// A principal disowns a device: the relay refuses it from then on and the principal's
/// other devices start new epochs without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRevocation {
    /// The device.
    pub device: DeviceId,
    /// When.
    pub revoked_at: UnixMillis,
}
impl SignedBody for DeviceRevocation {
    const CONTEXT: &'static [u8] = b"mes/device-revocation/v1";
}

/// Why a membership record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Bad signature.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed by someone who is neither the owner nor an admin.
    #[error("{signer:?} may not manage membership of space {space}")]
    NotAdmin {
        /// Space.
        space: SpaceId,
        /// Signer.
        signer: PrincipalId,
    },
    /// Record for another space.
    #[error("record is for space {got}, not {expected}")]
    WrongSpace {
        /// Space named in the record.
        got: SpaceId,
        /// Space expected.
        expected: SpaceId,
    },
    /// Not newer than what is known.
    #[error("stale grant version {got}, current is {current}")]
    Stale {
        /// Version received.
        got: u64,
        /// Version known.
        current: u64,
    },
    /// A generation going backwards, or a volume changing kind.
    #[error("volume {volume} declaration conflicts: {reason}")]
    VolumeConflict {
        /// Volume.
        volume: VolumeId,
        /// Reason.
        reason: &'static str,
    },
    /// The owner's role cannot be changed.
    #[error("the owner's role cannot be changed")]
    Owner,
}

/// The current membership of one space, folded from verified records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The genesis record.
    pub genesis: Signed<SpaceGenesis>,
    /// Volumes by id.
    pub volumes: BTreeMap<VolumeId, Signed<VolumeDecl>>,
    /// Grants by (principal, scope).
    pub grants: BTreeMap<(PrincipalId, Option<VolumeId>), Signed<Grant>>,
    /// The person's own choices (emergency refusals, blocks, médecin traitant).
    pub choices: Option<Signed<PersonChoices>>,
}

impl Membership {
    /// Starts from a verified genesis signed by its owner.
    pub fn new(genesis: Signed<SpaceGenesis>) -> Result<Self, MembershipError> {
        genesis.verify()?;
        if genesis.signer != genesis.body.owner {
            return Err(MembershipError::NotAdmin {
                space: genesis.body.space,
                signer: genesis.signer,
            });
        }
        Ok(Membership {
            genesis,
            volumes: BTreeMap::new(),
            grants: BTreeMap::new(),
            choices: None,
        })
    }

    /// The space.
    pub fn space(&self) -> SpaceId {
        self.genesis.body.space
    }

    /// The owner.
    pub fn owner(&self) -> PrincipalId {
        self.genesis.body.owner
    }

    fn check_admin(&self, space: SpaceId, signer: PrincipalId) -> Result<(), MembershipError> {
        if space != self.space() {
            return Err(MembershipError::WrongSpace {
                got: space,
                expected: self.space(),
            });
        }
        if signer == self.owner() || self.role(signer, None) == Some(Role::Admin) {
            Ok(())
        } else {
            Err(MembershipError::NotAdmin { space, signer })
        }
    }

    /// Adds or updates a volume declaration.
    pub fn declare(&mut self, decl: Signed<VolumeDecl>) -> Result<(), MembershipError> {
        decl.verify()?;
        self.check_admin(decl.body.space, decl.signer)?;
        if let Some(old) = self.volumes.get(&decl.body.volume) {
            if old.body.kind != decl.body.kind {
                return Err(MembershipError::VolumeConflict {
                    volume: decl.body.volume,
                    reason: "kind changed",
                });
            }
            if decl.body.generation < old.body.generation {
                return Err(MembershipError::VolumeConflict {
                    volume: decl.body.volume,
                    reason: "generation went backwards",
                });
            }
        }
        self.volumes.insert(decl.body.volume, decl);
        Ok(())
    }

    /// Applies a grant or removal.
    pub fn grant(&mut self, g: Signed<Grant>) -> Result<(), MembershipError> {
        g.verify()?;
        self.check_admin(g.body.space, g.signer)?;
        if g.body.principal == self.owner() {
            return Err(MembershipError::Owner);
        }
        let key = (g.body.principal, g.body.volume);
        if let Some(old) = self.grants.get(&key) {
            if g.body.version <= old.body.version {
                return Err(MembershipError::Stale {
                    got: g.body.version,
                    current: old.body.version,
                });
            }
        }
        self.grants.insert(key, g);
        Ok(())
    }

    /// Sets the person's choices: the owner only, never a delegate.
    pub fn set_choices(&mut self, p: Signed<PersonChoices>) -> Result<(), MembershipError> {
        p.verify()?;
        if p.body.space != self.space() {
            return Err(MembershipError::WrongSpace {
                got: p.body.space,
                expected: self.space(),
            });
        }
        if p.signer != self.owner() {
            return Err(MembershipError::NotAdmin {
                space: self.space(),
                signer: p.signer,
            });
        }
        if let Some(old) = &self.choices {
            if p.body.version <= old.body.version {
                return Err(MembershipError::Stale {
                    got: p.body.version,
                    current: old.body.version,
                });
            }
        }
        self.choices = Some(p);
        Ok(())
    }

    /// The person's choices (all defaults when none were signed).
    pub fn person_choices(&self) -> PersonChoices {
        self.choices
            .as_ref()
            .map(|c| c.body.clone())
            .unwrap_or_else(|| PersonChoices::none(self.space()))
    }

    /// Whether the person refused an emergency access mode.
    pub fn refuses(&self, mode: EscrowMode) -> bool {
        self.choices.as_ref().is_some_and(|p| p.body.refuses(mode))
    }

    /// The membership as it stands at `now`: grants that lapsed are left out.
    /// Borrowed as is when no grant has lapsed (the common case, on every request).
    pub fn at(&self, now: UnixMillis) -> std::borrow::Cow<'_, Membership> {
        if self.lapsed_any(now) {
            let mut m = self.clone();
            m.grants
                .retain(|_, g| g.body.expires_at.is_none_or(|t| now < t));
            std::borrow::Cow::Owned(m)
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// Whether any grant lapsed by `now`.
    pub fn lapsed_any(&self, now: UnixMillis) -> bool {
        self.grants
            .values()
            .any(|g| g.body.expires_at.is_some_and(|t| now >= t))
    }

    /// Grants that lapsed by `now`.
    pub fn lapsed(&self, now: UnixMillis) -> impl Iterator<Item = &Signed<Grant>> {
        self.grants
            .values()
            .filter(move |g| g.body.role.is_some() && g.body.expires_at.is_some_and(|t| now >= t))
    }

    /// The role of a principal on a volume (or on the space when `volume` is `None`):
    /// the owner is admin; a volume grant overrides a space grant.
    pub fn role(&self, who: PrincipalId, volume: Option<VolumeId>) -> Option<Role> {
        if who == self.owner() {
            return Some(Role::Admin);
        }
        if let Some(v) = volume {
            if let Some(g) = self.grants.get(&(who, Some(v))) {
                return g.body.role;
            }
        }
        self.grants.get(&(who, None)).and_then(|g| g.body.role)
    }

    /// Every principal with a read role on the volume, the owner first.
    pub fn readers(&self, volume: VolumeId) -> BTreeSet<PrincipalId> {
        let mut out = BTreeSet::from([self.owner()]);
        for (p, _) in self.grants.keys() {
            if self.role(*p, Some(volume)).is_some_and(Role::can_read) {
                out.insert(*p);
            }
        }
        out
    }

    /// The kind and generation of a declared volume.
    pub fn volume(&self, volume: VolumeId) -> Option<&VolumeDecl> {
        self.volumes.get(&volume).map(|d| &d.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AgeSecret, KeyPair};

    #[test]
    fn only_owner_or_admin_manage_and_versions_only_go_up() {
        let mut rng = rand::thread_rng();
        let owner = KeyPair::generate(&mut rng);
        let rel = KeyPair::generate(&mut rng);
        let space = SpaceId([9; 16]);
        let genesis = Signed::sign(
            SpaceGenesis {
                space,
                owner: owner.principal_id(),
                inbox_recipient: AgeSecret::generate().recipient(),
                created_at: UnixMillis(0),
            },
            &owner.signing,
        );
        let mut m = Membership::new(genesis).unwrap();
        let g = |role, version, key: &SigningSecret| {
            Signed::sign(
                Grant {
                    space,
                    volume: None,
                    principal: rel.principal_id(),
                    role,
                    version,
                    issued_at: UnixMillis(0),
                    expires_at: None,
                },
                key,
            )
        };
        assert!(matches!(
            m.grant(g(Some(Role::Admin), 1, &rel.signing)),
            Err(MembershipError::NotAdmin { .. })
        ));
        m.grant(g(Some(Role::Read), 1, &owner.signing)).unwrap();
        assert_eq!(m.role(rel.principal_id(), None), Some(Role::Read));
        assert!(matches!(
            m.grant(g(None, 1, &owner.signing)),
            Err(MembershipError::Stale { .. })
        ));
        m.grant(g(None, 2, &owner.signing)).unwrap();
        assert_eq!(m.role(rel.principal_id(), None), None);
        let mut forged = g(Some(Role::Admin), 3, &owner.signing);
        forged.body.version = 4;
        assert!(matches!(
            m.grant(forged),
            Err(MembershipError::Signature(_))
        ));
    }
}
