//! Who may do what in a space: records signed by the space's owner or an admin.
//!
//! - [`SpaceGenesis`]: creates a space and names its owner and inbox recipient;
//! - [`VolumeDecl`]: declares a volume of the space with its kind and generation;
//! - [`Grant`]: gives (or with `role: None`, removes) a principal's role on the whole space
//!   or one volume; the highest `version` per (principal, scope) wins;
//! - [`DeviceRevocation`]: a principal disowns one of its devices.
//!
//! - [`Handover`] and [`CourtRemoval`] (see [`crate::access::authority`]): a minor becomes the
//!   owner; a court removes a principal.
//!
//! [`Membership`] folds records into the current state; both the relay (which enforces it)
//! and daemons (which verify it before wrapping keys) run the same code.
//!
//! Over 600 lines: the membership rules (declare, grant, hand over, verify) as one state machine, and their tests.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::access::authority::{is_private, CourtRemoval, Handover};
use crate::access::choices::PersonChoices;
use crate::access::escrow::EscrowMode;
use crate::crypto::keys::{AgeRecipient, SignatureError};
use crate::ids::{DeviceId, Generation, PrincipalId, SpaceId, VolumeId, VolumeKind};
use crate::time::UnixMillis;

pub use crate::access::role::Role;
pub use crate::crypto::signed::{Signed, SignedBody};

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
    /// A private volume's readers are named by the owner alone (F9.1).
    #[error("only the owner names who reads the private volume {volume}")]
    Private {
        /// Volume.
        volume: VolumeId,
    },
    /// The space was handed over already.
    #[error("space {space} was handed over already")]
    HandedOver {
        /// Space.
        space: SpaceId,
    },
    /// A court removed this principal's rights on the space (F9.4).
    #[error("{principal:?} lost every right on this space by a court decision")]
    Removed {
        /// Who.
        principal: PrincipalId,
    },
    /// A record only the hub signs, signed by someone else.
    #[error("a court removal must be signed by the hub's key")]
    NotHub,
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
    /// The handover to the minor the space belongs to (F9.1), once signed.
    pub handover: Option<Signed<Handover>>,
    /// Court removals the hub recorded (F9.4), by principal.
    pub removals: BTreeMap<PrincipalId, Signed<CourtRemoval>>,
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
            handover: None,
            removals: BTreeMap::new(),
        })
    }

    /// The space.
    pub fn space(&self) -> SpaceId {
        self.genesis.body.space
    }

    /// The owner: the minor once the space was handed over to them, else its creator.
    pub fn owner(&self) -> PrincipalId {
        self.handover
            .as_ref()
            .map_or(self.genesis.body.owner, |h| h.body.to)
    }

    /// The owner before a handover (a parent), if the space was handed over.
    pub fn former_owner(&self) -> Option<PrincipalId> {
        self.handover.as_ref().map(|_| self.genesis.body.owner)
    }

    /// The recipient inbox drops are sealed to (the owner's, F7.6).
    pub fn inbox_recipient(&self) -> &AgeRecipient {
        self.handover
            .as_ref()
            .map_or(&self.genesis.body.inbox_recipient, |h| {
                &h.body.inbox_recipient
            })
    }

    /// Whether a volume is private (only the owner names its readers, F9.1).
    pub fn is_private(&self, volume: VolumeId) -> bool {
        self.volume(volume).is_some_and(|d| is_private(&d.label))
    }

    /// Hands the space over to the minor it belongs to (F9.1): signed by the owner, once.
    pub fn hand_over(&mut self, h: Signed<Handover>) -> Result<(), MembershipError> {
        h.verify()?;
        if h.body.space != self.space() {
            return Err(MembershipError::WrongSpace {
                got: h.body.space,
                expected: self.space(),
            });
        }
        if self.handover.is_some() {
            return Err(MembershipError::HandedOver {
                space: self.space(),
            });
        }
        if h.signer != self.owner() {
            return Err(MembershipError::NotAdmin {
                space: self.space(),
                signer: h.signer,
            });
        }
        if h.body.to == h.signer {
            return Err(MembershipError::Owner);
        }
        if self.removals.contains_key(&h.body.to) {
            return Err(MembershipError::Removed {
                principal: h.body.to,
            });
        }
        // The minor's own grants (if a parent gave them some) give way to ownership.
        self.grants.retain(|(p, _), _| *p != h.body.to);
        self.handover = Some(h);
        Ok(())
    }

    /// Records a court removal signed by the hub's key `hub` (F9.4).
    pub fn remove_by_court(
        &mut self,
        r: Signed<CourtRemoval>,
        hub: PrincipalId,
    ) -> Result<(), MembershipError> {
        r.verify()?;
        if r.signer != hub {
            return Err(MembershipError::NotHub);
        }
        if r.body.space != self.space() {
            return Err(MembershipError::WrongSpace {
                got: r.body.space,
                expected: self.space(),
            });
        }
        if r.body.principal == self.owner() {
            return Err(MembershipError::Owner);
        }
        self.removals.insert(r.body.principal, r);
        Ok(())
    }

    fn check_admin(&self, space: SpaceId, signer: PrincipalId) -> Result<(), MembershipError> {
        if space != self.space() {
            return Err(MembershipError::WrongSpace {
                got: space,
                expected: self.space(),
            });
        }
        if self.role(signer, None) == Some(Role::Admin) {
            Ok(())
        } else {
            Err(MembershipError::NotAdmin { space, signer })
        }
    }

    /// Adds or updates a volume declaration.
    pub fn declare(&mut self, decl: Signed<VolumeDecl>) -> Result<(), MembershipError> {
        decl.verify()?;
        self.check_admin(decl.body.space, decl.signer)?;
        if is_private(&decl.body.label) && decl.signer != self.owner() {
            return Err(MembershipError::Private {
                volume: decl.body.volume,
            });
        }
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
            check_relabel(&old.body, &decl.body, decl.signer == self.owner())?;
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
        if g.body.role.is_some() && self.removals.contains_key(&g.body.principal) {
            return Err(MembershipError::Removed {
                principal: g.body.principal,
            });
        }
        if let Some(v) = g.body.volume.filter(|v| self.is_private(*v)) {
            if g.signer != self.owner() {
                return Err(MembershipError::Private { volume: v });
            }
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
    /// the owner is admin; nobody a court removed holds any; a private volume is read
    /// only under a grant of that volume the owner signed; otherwise a volume grant
    /// overrides a space grant, and the former owner of a handed-over space keeps the
    /// role the handover left them.
    pub fn role(&self, who: PrincipalId, volume: Option<VolumeId>) -> Option<Role> {
        if who == self.owner() {
            return Some(Role::Admin);
        }
        if self.removals.contains_key(&who) {
            return None;
        }
        if let Some(v) = volume {
            let g = self.grants.get(&(who, Some(v)));
            if self.is_private(v) {
                return g
                    .filter(|g| g.signer == self.owner())
                    .and_then(|g| g.body.role);
            }
            if let Some(g) = g {
                return g.body.role;
            }
        }
        if let Some(g) = self.grants.get(&(who, None)) {
            return g.body.role;
        }
        match &self.handover {
            Some(h) if who == self.genesis.body.owner => h.body.former_owner_role,
            _ => None,
        }
    }

    /// Re-checks every signature and right of a membership received from the relay,
    /// `hub` being the relay's pinned signing key (court removals). Records are replayed
    /// until none more applies (an admin's grant needs their own first; the handover
    /// changes who may sign); one that never applies fails the whole membership.
    pub fn verified(&self, hub: Option<PrincipalId>) -> Result<Membership, MembershipError> {
        enum Rec {
            Grant(Signed<Grant>),
            Decl(Signed<VolumeDecl>),
            Choices(Signed<PersonChoices>),
        }
        let mut out = Membership::new(self.genesis.clone())?;
        let mut grants: Vec<_> = self.grants.values().cloned().collect();
        grants.sort_by_key(|g| (g.signer != self.genesis.body.owner, g.body.issued_at));
        let mut todo: Vec<Rec> = grants.into_iter().map(Rec::Grant).collect();
        todo.extend(self.volumes.values().cloned().map(Rec::Decl));
        todo.extend(self.choices.iter().cloned().map(Rec::Choices));
        let mut handover = self.handover.clone();
        loop {
            let mut left = Vec::new();
            let mut last_err = None;
            let before = todo.len();
            for r in todo {
                let res = match &r {
                    Rec::Grant(g) => out.grant(g.clone()),
                    Rec::Decl(d) => out.declare(d.clone()),
                    Rec::Choices(c) => out.set_choices(c.clone()),
                };
                if let Err(e) = res {
                    if let MembershipError::Signature(_) = e {
                        return Err(e);
                    }
                    last_err = Some(e);
                    left.push(r);
                }
            }
            todo = left;
            if todo.is_empty() && handover.is_none() {
                break;
            }
            if todo.len() == before {
                match handover.take() {
                    Some(h) => out.hand_over(h)?,
                    None => return Err(last_err.expect("a record failed")),
                }
            }
        }
        // Replayed before its volume was declared, a grant of a private volume signed by
        // someone else would have slipped in.
        if let Some(g) = out
            .grants
            .values()
            .find(|g| g.body.volume.is_some_and(|v| out.is_private(v)) && g.signer != out.owner())
        {
            return Err(MembershipError::Private {
                volume: g.body.volume.expect("scoped"),
            });
        }
        if !self.removals.is_empty() {
            let hub = hub.ok_or(MembershipError::NotHub)?;
            for r in self.removals.values() {
                out.remove_by_court(r.clone(), hub)?;
            }
        }
        Ok(out)
    }

    /// Every principal with a read role on the volume, the owner first.
    pub fn readers(&self, volume: VolumeId) -> BTreeSet<PrincipalId> {
        let mut out = BTreeSet::from([self.owner()]);
        for p in self
            .former_owner()
            .iter()
            .chain(self.grants.keys().map(|(p, _)| p))
        {
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

/// A volume's label (and with it its privacy and whether the hub escrows it) changes only
/// by the space's owner, and a private volume never becomes shared (issue 22, finding 2):
/// otherwise a former owner relabels a minor's private volume and the minor's own devices
/// wrap its keys to the parents, or an admin relabels a volume `emergency` to have it
/// escrowed to the hub.
pub fn check_relabel(
    old: &VolumeDecl,
    new: &VolumeDecl,
    by_owner: bool,
) -> Result<(), MembershipError> {
    if old.label == new.label {
        return Ok(());
    }
    let reason = if is_private(&old.label) && !is_private(&new.label) {
        "a private volume never becomes shared"
    } else if old.label == crate::access::escrow::ESCROWED_LABEL {
        "the emergency section keeps its label: under another it would leave break-glass and centre 15 (F2.10)"
    } else if !by_owner {
        "only the space's owner changes a volume's label"
    } else {
        return Ok(());
    };
    Err(MembershipError::VolumeConflict {
        volume: new.volume,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::authority::DOCUMENTS_PRIVATE as DOCUMENTS_PRIVATE_LABEL;
    use crate::crypto::keys::{AgeSecret, KeyPair, SigningSecret};

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

    /// Issue 22, finding 2: an admin who is not the owner relabels nothing (the private
    /// volume as shared, the notes as the escrowed emergency volume), and a private volume
    /// never becomes shared, even by its owner. Control: the same declarations are taken
    /// as first declarations, and the owner relabels a shared volume.
    #[test]
    fn a_label_changes_only_by_the_owner_and_never_from_private_to_shared() {
        let mut rng = rand::thread_rng();
        let owner = KeyPair::generate(&mut rng);
        let admin = KeyPair::generate(&mut rng);
        let space = SpaceId([8; 16]);
        let mut m = Membership::new(Signed::sign(
            SpaceGenesis {
                space,
                owner: owner.principal_id(),
                inbox_recipient: AgeSecret::generate().recipient(),
                created_at: UnixMillis(0),
            },
            &owner.signing,
        ))
        .unwrap();
        m.grant(Signed::sign(
            Grant {
                space,
                volume: None,
                principal: admin.principal_id(),
                role: Some(Role::Admin),
                version: 1,
                issued_at: UnixMillis(0),
                expires_at: None,
            },
            &owner.signing,
        ))
        .unwrap();
        m.declare(decl(space, 1, DOCUMENTS_PRIVATE_LABEL, &owner.signing))
            .unwrap();
        m.declare(decl(space, 2, "notes", &admin.signing)).unwrap();
        let conflict = |r| matches!(r, Err(MembershipError::VolumeConflict { .. }));
        let mut fresh = m.clone();
        assert!(conflict(m.declare(decl(
            space,
            1,
            "documents/care",
            &admin.signing
        ))));
        assert!(conflict(m.declare(decl(
            space,
            2,
            crate::access::escrow::ESCROWED_LABEL,
            &admin.signing
        ))));
        assert!(conflict(m.declare(decl(
            space,
            1,
            "documents/care",
            &owner.signing
        ))));
        assert!(m.is_private(VolumeId([1; 16])));
        // Control: new volumes take those labels, and the owner renames a shared one.
        fresh
            .declare(decl(space, 3, "documents/care", &admin.signing))
            .unwrap();
        fresh
            .declare(decl(
                space,
                4,
                crate::access::escrow::ESCROWED_LABEL,
                &admin.signing,
            ))
            .unwrap();
        fresh
            .declare(decl(space, 2, "notes/renamed", &owner.signing))
            .unwrap();
        fresh
            .declare(decl(space, 1, "private/other", &owner.signing))
            .unwrap();
    }

    fn decl(space: SpaceId, n: u8, label: &str, key: &SigningSecret) -> Signed<VolumeDecl> {
        Signed::sign(
            VolumeDecl {
                space,
                volume: VolumeId([n; 16]),
                kind: VolumeKind::Automerge,
                generation: Generation(0),
                label: label.into(),
            },
            key,
        )
    }

    fn grant_to(
        space: SpaceId,
        who: PrincipalId,
        volume: Option<VolumeId>,
        role: Role,
        at: u64,
        key: &SigningSecret,
    ) -> Signed<Grant> {
        Signed::sign(
            Grant {
                space,
                volume,
                principal: who,
                role: Some(role),
                version: at,
                issued_at: UnixMillis(at),
                expires_at: None,
            },
            key,
        )
    }

    /// F9.1, F9.4: after a handover the minor owns the space, the parents keep what the
    /// handover left them but never reach a private volume, even through a grant they
    /// sign themselves; a court removal takes everything from a parent; the replay a
    /// daemon runs on what the relay sent accepts exactly this and refuses a forgery.
    #[test]
    fn a_handed_over_space_keeps_private_volumes_from_the_parents() {
        let mut rng = rand::thread_rng();
        let [parent, other_parent, minor, gyn, hub] =
            std::array::from_fn(|_| KeyPair::generate(&mut rng));
        let space = SpaceId([3; 16]);
        let mut m = Membership::new(Signed::sign(
            SpaceGenesis {
                space,
                owner: parent.principal_id(),
                inbox_recipient: AgeSecret::generate().recipient(),
                created_at: UnixMillis(0),
            },
            &parent.signing,
        ))
        .unwrap();
        m.declare(decl(space, 1, "documents/general", &parent.signing))
            .unwrap();
        m.grant(grant_to(
            space,
            other_parent.principal_id(),
            None,
            Role::Admin,
            1,
            &parent.signing,
        ))
        .unwrap();
        // Only the owner hands over, and not before it owns the space.
        let handover = |key: &SigningSecret| {
            Signed::sign(
                Handover {
                    space,
                    to: minor.principal_id(),
                    inbox_recipient: AgeSecret::generate().recipient(),
                    former_owner_role: Some(Role::Admin),
                    at: UnixMillis(10),
                },
                key,
            )
        };
        assert!(matches!(
            m.hand_over(handover(&other_parent.signing)),
            Err(MembershipError::NotAdmin { .. })
        ));
        m.hand_over(handover(&parent.signing)).unwrap();
        assert!(matches!(
            m.hand_over(handover(&minor.signing)),
            Err(MembershipError::HandedOver { .. })
        ));
        assert_eq!(m.owner(), minor.principal_id());
        assert_eq!(m.former_owner(), Some(parent.principal_id()));
        assert_eq!(m.role(parent.principal_id(), None), Some(Role::Admin));
        // A parent cannot declare a private volume; the minor can.
        assert!(matches!(
            m.declare(decl(space, 2, DOCUMENTS_PRIVATE_LABEL, &parent.signing)),
            Err(MembershipError::Private { .. })
        ));
        m.declare(decl(space, 2, DOCUMENTS_PRIVATE_LABEL, &minor.signing))
            .unwrap();
        let private = VolumeId([2; 16]);
        let general = VolumeId([1; 16]);
        for p in [&parent, &other_parent] {
            assert_eq!(m.role(p.principal_id(), Some(general)), Some(Role::Admin));
            assert_eq!(m.role(p.principal_id(), Some(private)), None);
            assert!(!m.readers(private).contains(&p.principal_id()));
        }
        // A parent's grant of the private volume is refused, to themselves or anyone.
        assert!(matches!(
            m.grant(grant_to(
                space,
                gyn.principal_id(),
                Some(private),
                Role::Read,
                20,
                &other_parent.signing
            )),
            Err(MembershipError::Private { .. })
        ));
        // The minor's own grant opens it.
        m.grant(grant_to(
            space,
            gyn.principal_id(),
            Some(private),
            Role::Read,
            21,
            &minor.signing,
        ))
        .unwrap();
        assert_eq!(m.role(gyn.principal_id(), Some(private)), Some(Role::Read));
        // A court removes the other parent: only the hub's key does it, never the owner.
        let removal = |who: PrincipalId, key: &SigningSecret| {
            Signed::sign(
                CourtRemoval {
                    space,
                    principal: who,
                    reference: "TJ Lyon 26/0042".into(),
                    recorded_at: UnixMillis(30),
                },
                key,
            )
        };
        assert!(matches!(
            m.remove_by_court(
                removal(other_parent.principal_id(), &parent.signing),
                hub.principal_id()
            ),
            Err(MembershipError::NotHub)
        ));
        assert!(matches!(
            m.remove_by_court(
                removal(minor.principal_id(), &hub.signing),
                hub.principal_id()
            ),
            Err(MembershipError::Owner)
        ));
        m.remove_by_court(
            removal(other_parent.principal_id(), &hub.signing),
            hub.principal_id(),
        )
        .unwrap();
        assert_eq!(m.role(other_parent.principal_id(), Some(general)), None);
        assert!(matches!(
            m.grant(grant_to(
                space,
                other_parent.principal_id(),
                None,
                Role::Read,
                40,
                &minor.signing
            )),
            Err(MembershipError::Removed { .. })
        ));
        // The daemon's replay accepts the honest membership as it is.
        assert_eq!(m.verified(Some(hub.principal_id())).unwrap(), m);
        assert!(m.verified(None).is_err());
        // A relay slipping in a parent-signed private grant is caught by the replay.
        let mut forged = m.clone();
        let g = grant_to(
            space,
            parent.principal_id(),
            Some(private),
            Role::Read,
            50,
            &parent.signing,
        );
        forged
            .grants
            .insert((parent.principal_id(), Some(private)), g);
        assert!(matches!(
            forged.verified(Some(hub.principal_id())),
            Err(MembershipError::Private { .. })
        ));
        // And a relay dropping the handover cannot keep the minor's records valid.
        let mut undone = m.clone();
        undone.handover = None;
        assert!(undone.verified(Some(hub.principal_id())).is_err());
    }

    /// F2.10: nobody relabels the emergency volume, not even its owner (it would leave
    /// break-glass and centre 15); another volume the owner may relabel (control).
    #[test]
    fn the_emergency_section_keeps_its_label() {
        let decl = |label: &str| VolumeDecl {
            space: SpaceId([1; 16]),
            volume: VolumeId([2; 16]),
            kind: VolumeKind::Automerge,
            generation: Generation(0),
            label: label.into(),
        };
        let emergency = crate::access::escrow::ESCROWED_LABEL;
        let e = check_relabel(&decl(emergency), &decl("private/emergency"), true).unwrap_err();
        assert!(e.to_string().contains("F2.10"), "{e}");
        assert!(check_relabel(&decl(emergency), &decl("notes"), true).is_err());
        assert!(check_relabel(&decl("notes"), &decl("private/notes"), true).is_ok());
        assert!(check_relabel(&decl(emergency), &decl(emergency), false).is_ok());
    }
}
