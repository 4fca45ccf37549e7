//! Spaces and their membership: registering a space, declaring volumes, grants, choices, hand-over, closure; the membership cache and its locks.

use super::{bad_record, envelope_key, internal, owner_only, Caller, Relay, Rule};
use crate::access::{authorize, Need};
use crate::access::{decide, release_may_open, Facts};
use crate::store::{StoreError, Table};
use mes_protocol::access::choices::AttendingPolicy;
use mes_protocol::access::escrow::{EscrowMode, ESCROWED_LABEL};
use mes_protocol::access::habilitation::Matrix;
use mes_protocol::access::membership::{Grant, Role};
use mes_protocol::access::membership::{Membership, Signed};
use mes_protocol::enrolment::catalogue::CatalogueEntry;
use mes_protocol::ids::{PrincipalId, SpaceId};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError};
use std::sync::Arc;

use mes_protocol::access::authority::Handover;
use mes_protocol::access::choices::PersonChoices;
use mes_protocol::access::membership::{SpaceGenesis, VolumeDecl};

impl Relay {
    /// Creates a space (first come; the genesis names the owner).
    pub(super) async fn register_space(
        &self,
        caller: &Caller,
        genesis: Signed<SpaceGenesis>,
    ) -> Result<Reply, WireError> {
        if genesis.body.owner != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "a space can only be registered by its owner",
            ));
        }
        let space = genesis.body.space;
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        if crate::erase::was_erased(&*self.store, &space.0)
            .await
            .map_err(internal)?
        {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "space {} was erased at its person's request (F1.6); its id is never used again",
                    space.short()
                ),
            ));
        }
        if let Ok(existing) = self.membership(space) {
            return if existing.genesis == genesis {
                Ok(Reply::Done)
            } else {
                Err(WireError::new(
                    ErrorCode::Conflict,
                    format!("space {} already exists", space.short()),
                ))
            };
        }
        // Finding 6: what one principal may make the relay keep is bounded.
        let owned = self
            .memberships
            .read()
            .expect("membership lock")
            .values()
            .filter(|m| m.owner() == caller.principal)
            .count();
        if owned >= crate::defaults::MAX_SPACES_PER_PRINCIPAL {
            return Err(WireError::new(
                ErrorCode::Busy,
                format!(
                    "a person owns at most {} spaces at this hub",
                    crate::defaults::MAX_SPACES_PER_PRINCIPAL
                ),
            ));
        }
        let m = Membership::new(genesis).map_err(bad_record)?;
        self.save_membership(m).await?;
        Ok(Reply::Done)
    }

    /// Declares a volume or a new generation of one.
    pub(super) async fn declare_volume(
        &self,
        caller: &Caller,
        decl: Signed<VolumeDecl>,
    ) -> Result<Reply, WireError> {
        let lock = self.membership_lock(decl.body.space);
        let _one_writer = lock.lock().await;
        let mut m = self
            .authorize(decl.body.space, caller.principal, Need::Admin)
            .await?;
        if m.volumes.get(&decl.body.volume) == Some(&decl) {
            return Ok(Reply::Done);
        }
        if self.faults.skips(Rule::Declaration) {
            m.volumes.insert(decl.body.volume, decl.clone());
        } else {
            m.declare(decl.clone()).map_err(bad_record)?;
        }
        if !self.faults.skips(Rule::VolumeBinding) {
            self.bind_volume(decl.body.space, decl.body.volume).await?;
        }
        self.save_membership(m).await?;
        Ok(Reply::Done)
    }

    /// Gives or removes a role.
    pub(super) async fn put_grant(
        &self,
        caller: &Caller,
        grant: Signed<Grant>,
    ) -> Result<Reply, WireError> {
        let lock = self.membership_lock(grant.body.space);
        let _one_writer = lock.lock().await;
        let mut m = self
            .authorize(grant.body.space, caller.principal, Need::Admin)
            .await?;
        if !self.faults.skips(Rule::Matrix) {
            self.check_matrix(&m, &grant.body).await?;
        }
        m.grant(grant).map_err(bad_record)?;
        self.save_membership(m).await?;
        Ok(Reply::Done)
    }

    /// The membership of a space and the certificates of its readers' devices.
    pub(super) async fn get_membership(
        &self,
        caller: &Caller,
        space: SpaceId,
    ) -> Result<Reply, WireError> {
        let m = self
            .authorize(space, caller.principal, Need::AnyRole)
            .await?;
        if let Some(view) = crate::access::feeder_view(&m, caller.principal) {
            // A feeder sees what it needs to drop into the inbox, and no more
            // (issue 22, finding 7): no one else's grants, no choices, no court
            // references, no volume but those it writes, no device.
            return Ok(Reply::Membership {
                membership: Box::new(view),
                devices: Vec::new(),
            });
        }
        let mut devices = self.devices_of(m.owner()).await?;
        let mut seen = vec![m.owner()];
        for p in m
            .former_owner()
            .iter()
            .chain(m.grants.keys().map(|(p, _)| p))
        {
            if !seen.contains(p) {
                seen.push(*p);
                devices.extend(self.devices_of(*p).await?);
            }
        }
        Ok(Reply::Membership {
            membership: Box::new(m),
            devices,
        })
    }

    /// Spaces in which the caller's principal has a role.
    pub(super) async fn list_spaces(&self, caller: &Caller) -> Result<Reply, WireError> {
        // Finding 6: one pass over the cached memberships, cloning only the
        // caller's, and one scan of the live releases, never a read per space.
        let released = self.released_to(caller.principal).await?;
        let mut spaces: Vec<_> = self
            .memberships
            .read()
            .expect("membership lock")
            .values()
            .filter(|m| {
                authorize(m, caller.principal, Need::AnyRole).is_ok()
                    || released.contains(&m.space())
            })
            .map(|m| m.genesis.clone())
            .collect();
        spaces.sort_by_key(|g| g.body.space);
        Ok(Reply::Spaces { spaces })
    }

    /// Sets the person's choices (owner only): emergency refusals, blocks, médecin
    /// traitant.
    pub(super) async fn put_choices(
        &self,
        caller: &Caller,
        choices: Signed<PersonChoices>,
    ) -> Result<Reply, WireError> {
        let space = choices.body.space;
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        let mut m = self.membership(space)?;
        owner_only(&m, caller.principal, "makes these choices")?;
        m.set_choices(choices).map_err(bad_record)?;
        // What a refused mode held is dropped now.
        for mode in EscrowMode::ALL.into_iter().filter(|md| m.refuses(*md)) {
            let prefix = envelope_key(space, mode.device(), &[]);
            for (k, _) in self
                .store
                .scan_records(Table::Envelope, &prefix)
                .await
                .map_err(internal)?
            {
                self.store
                    .remove_record(Table::Envelope, k)
                    .await
                    .map_err(internal)?;
            }
        }
        self.save_membership(m).await?;
        Ok(Reply::Done)
    }

    /// Hands a minor's space over to the minor (F9.1; the owner only, once).
    pub(super) async fn hand_over(
        &self,
        caller: &Caller,
        handover: Signed<Handover>,
    ) -> Result<Reply, WireError> {
        let space = handover.body.space;
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        let mut m = self.membership(space)?;
        owner_only(&m, caller.principal, "hands it over")?;
        m.hand_over(handover).map_err(bad_record)?;
        self.save_membership(m).await?;
        Ok(Reply::Done)
    }

    /// Registers the admission key of the caller's person's recovery kit (replacing the
    /// previous one): a device restored from that kit is admitted on its word.
    pub(super) async fn set_admission_key(
        &self,
        caller: &Caller,
        key: PrincipalId,
    ) -> Result<Reply, WireError> {
        // Finding 6: a recovery kit restores a person who has something here; a
        // fresh identity with no space leaves nothing durable.
        if self.spaces_of(caller.principal).is_empty() {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "a recovery kit is for a person with a space at this hub: create or join one first",
            ));
        }
        self.store
            .put_record(
                Table::AdmissionKey,
                caller.principal.0.to_vec(),
                key.0.to_vec(),
            )
            .await
            .map_err(internal)?;
        Ok(Reply::Done)
    }

    /// Spaces where `principal` holds any role.
    pub(super) fn spaces_of(&self, principal: PrincipalId) -> Vec<SpaceId> {
        self.memberships
            .read()
            .expect("membership lock")
            .values()
            .filter(|m| authorize(m, principal, Need::AnyRole).is_ok())
            .map(Membership::space)
            .collect()
    }

    pub(super) fn membership(&self, space: SpaceId) -> Result<Membership, WireError> {
        self.memberships
            .read()
            .expect("membership lock")
            .get(&space)
            .cloned()
            .ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, format!("no space {}", space.short()))
            })
    }

    pub(super) async fn authorize(
        &self,
        space: SpaceId,
        who: PrincipalId,
        need: Need,
    ) -> Result<Membership, WireError> {
        // An unknown space answers as one the caller is not a member of: a stranger
        // cannot tell which space ids exist (finding 10).
        let m = self
            .membership(space)
            .map_err(|_| crate::access::not_member(space, who))?;
        if self.faults.skips(Rule::Access) {
            return Ok(m);
        }
        let closed = self.closed.read().expect("closed lock").contains(&space);
        let mut facts = Facts {
            now: self.clock.now(),
            closed,
            // A closed space refuses before a block is looked at (`decide`).
            blocked: !closed && self.blocked(&m, who).await?,
            suspended: self.refuse_suspended(who).err().map(|e| e.message),
            released: false,
        };
        match decide(&m, who, need, &facts) {
            Ok(()) => Ok(m),
            Err(e) if !release_may_open(&m, need) => Err(e),
            Err(_) => {
                facts.released = self.release(space, who).await?.is_some();
                decide(&m, who, need, &facts).map(|()| m)
            }
        }
    }

    /// Whether the person blocked this principal, directly or through the structure the
    /// directory lists them under (F7.2). The owner is never blocked.
    pub(super) async fn blocked(
        &self,
        m: &Membership,
        who: PrincipalId,
    ) -> Result<bool, WireError> {
        let Some(c) = &m.choices else {
            return Ok(false);
        };
        if who == m.owner() {
            return Ok(false);
        }
        if c.body.blocked.contains(&who) {
            return Ok(true);
        }
        if c.body.blocked_structures.is_empty() {
            return Ok(false);
        }
        let structure = self
            .professional(who)
            .await?
            .and_then(|e| e.body.professional.structure);
        Ok(c.body.blocks(who, structure.as_deref()))
    }

    /// The médecin traitant policy that applies to a space.
    pub(super) fn attending_policy(&self, m: &Membership) -> AttendingPolicy {
        m.choices
            .as_ref()
            .and_then(|c| c.body.policy)
            .unwrap_or(self.policy.attending)
    }

    /// Records a court decision removing `principal`'s rights on `space` (F9.4), signed
    /// with the hub's key; the person's devices then start new epochs without them.
    pub async fn record_court_removal(
        &self,
        space: SpaceId,
        principal: PrincipalId,
        reference: &str,
    ) -> Result<(), WireError> {
        if reference.trim().is_empty() {
            return Err(WireError::new(
                ErrorCode::BadFrame,
                "a court removal needs the decision's reference",
            ));
        }
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        let mut m = self.membership(space)?;
        if m.role(principal, None).is_none() && !m.grants.keys().any(|(p, _)| *p == principal) {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("{principal:?} holds no right on space {}", space.short()),
            ));
        }
        let removal = Signed::sign(
            mes_protocol::access::authority::CourtRemoval {
                space,
                principal,
                reference: reference.trim().to_string(),
                recorded_at: self.clock.now(),
            },
            &self.key,
        );
        m.remove_by_court(removal, self.public_key())
            .map_err(bad_record)?;
        self.save_membership(m).await
    }

    /// How many spaces the relay knows.
    pub fn space_count(&self) -> usize {
        self.memberships.read().expect("membership lock").len()
    }

    pub(super) async fn save_membership(&self, m: Membership) -> Result<(), WireError> {
        self.store
            .put_record(Table::Membership, m.space().0.to_vec(), codec::to_bytes(&m))
            .await
            .map_err(internal)?;
        self.membership_changed(m.clone());
        self.list_first_devices_of(&m).await?;
        self.recheck_subscriptions(&m).await
    }

    /// Ends the subscriptions a membership change took away (a consent withdrawn, a
    /// block placed, a grant lapsed): pushes stop at once, not at the next reconnect
    /// (issue 22, finding 10). A live emergency release keeps the emergency volume's.
    pub(super) async fn recheck_subscriptions(&self, m: &Membership) -> Result<(), WireError> {
        let now = self.clock.now();
        let current = m.at(now);
        for (volume, who, out) in self.pushes.subscriptions_of(m.space()) {
            let readable = authorize(&current, who, Need::Read(volume)).is_ok()
                && !self.blocked(m, who).await?;
            let released = !readable
                && m.volume(volume).is_some_and(|d| d.label == ESCROWED_LABEL)
                && self.release(m.space(), who).await?.is_some();
            if !readable && !released {
                self.pushes.unsubscribe(volume, &out);
            }
        }
        Ok(())
    }

    /// Refreshes a cached record another instance changed (a shared backend's hook).
    pub(super) async fn reload_cached(&self, kind: Table, key: Vec<u8>) -> Result<(), StoreError> {
        let value = self.store.get_record(kind, &key).await?;
        match kind {
            Table::Membership => {
                if value.is_none() {
                    // Erased by another instance (F1.6).
                    if let Ok(id) = <[u8; 16]>::try_from(key.as_slice()) {
                        self.memberships
                            .write()
                            .expect("membership lock")
                            .remove(&SpaceId(id));
                    }
                }
                if let Some(v) = value {
                    let m: Membership = codec::from_bytes(&v)
                        .map_err(|e| StoreError::corrupt(format!("stored membership: {e}")))?;
                    self.membership_changed(m.clone());
                    self.recheck_subscriptions(&m)
                        .await
                        .map_err(|e| StoreError::backend(e.to_string()))?;
                }
            }
            Table::Catalogue => {
                if let Some(v) = value {
                    let e: Signed<CatalogueEntry> = codec::from_bytes(&v)
                        .map_err(|e| StoreError::corrupt(format!("stored catalogue entry: {e}")))?;
                    self.catalogue
                        .write()
                        .expect("catalogue lock")
                        .insert(e.body.service.principal, e);
                }
            }
            Table::Closed => {
                if let Ok(id) = <[u8; 16]>::try_from(key.as_slice()) {
                    let mut closed = self.closed.write().expect("closed lock");
                    if value.is_some() {
                        closed.insert(SpaceId(id));
                    } else {
                        closed.remove(&SpaceId(id));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Caches a membership and tells its members' devices.
    pub(super) fn membership_changed(&self, m: Membership) {
        let space = m.space();
        // Every member's devices hear of it, subscribed or not yet (a space whose volumes
        // were just declared has no subscribers).
        let mut members = vec![m.owner()];
        members.extend(m.former_owner());
        members.extend(m.removals.keys().copied());
        members.extend(m.grants.keys().map(|(p, _)| *p));
        members.sort();
        members.dedup();
        self.memberships
            .write()
            .expect("membership lock")
            .insert(space, m);
        self.pushes.publish_membership(space);
        for p in members {
            self.pushes
                .publish_to_principal(p, mes_protocol::wire::Push::MembershipChanged { space });
        }
    }

    pub(super) fn membership_lock(&self, space: SpaceId) -> Arc<tokio::sync::Mutex<()>> {
        self.membership_locks.get(space)
    }

    /// A grant to a listed professional must stay inside the habilitation matrix: per
    /// volume, on volumes their profession may read (append on the inbox is always fine),
    /// never admin. Removals always pass.
    pub(super) async fn check_matrix(&self, m: &Membership, g: &Grant) -> Result<(), WireError> {
        if let Some(service) = self.service(g.principal) {
            return self.check_service_grant(m, g, &service.body);
        }
        let Some(pro) = self.professional(g.principal).await? else {
            return Ok(());
        };
        let profession = &pro.body.professional.profession;
        let label = g
            .volume
            .and_then(|v| m.volume(v))
            .map(|d| d.label.as_str())
            .unwrap_or("");
        let attending = m.choices.as_ref().and_then(|c| c.body.attending) == Some(g.principal);
        let Some(role) = g.role else {
            // Under the law of 2022 the médecin traitant's reading cannot be narrowed.
            if attending
                && self.attending_policy(m) == AttendingPolicy::Law2022
                && (label == mes_protocol::access::habilitation::HIDDEN
                    || Matrix::builtin().may_read_volume(profession, label))
            {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "under the law-2022 policy the médecin traitant reads everything; {label:?} cannot be withdrawn while they are designated"
                    ),
                ));
            }
            return Ok(());
        };
        if role != Role::Append && self.blocked(m, g.principal).await? {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!(
                    "professional {} is blocked by the person",
                    pro.body.professional.rpps
                ),
            ));
        }
        let refuse = |why: String| {
            Err(WireError::new(
                ErrorCode::Forbidden,
                format!(
                    "professional {} (profession {profession}): {why}",
                    pro.body.professional.rpps
                ),
            ))
        };
        if role == Role::Admin {
            return refuse("a professional cannot administer a space".into());
        }
        if role == Role::Append {
            return Ok(());
        }
        // A thread the professional started has a volume of its own (F4.2).
        if label.starts_with(mes_protocol::record::messages::THREADS_PREFIX) && role <= Role::Write
        {
            return Ok(());
        }
        if g.volume.is_none() {
            return refuse(format!(
                "a consent names volumes; {role:?} on the whole space goes beyond the habilitation matrix"
            ));
        }
        let hidden_for_attending = label == mes_protocol::access::habilitation::HIDDEN
            && attending
            && profession == mes_protocol::access::habilitation::PHYSICIAN;
        if hidden_for_attending || Matrix::builtin().may_read_volume(profession, label) {
            Ok(())
        } else {
            refuse(format!(
                "the habilitation matrix does not let this profession read {label:?}"
            ))
        }
    }
}
