//! The person's own choices (F7.2, F7.3, F7.5), signed by the owner's principal key and
//! by nobody else: blocking professionals or establishments, designating the médecin
//! traitant under a policy, refusing emergency modes ([`crate::access::emergency`]). Blocking
//! also withdraws what the blocked held, with new epochs.

use mes_protocol::access::choices::{AttendingPolicy, PersonChoices};
use mes_protocol::access::consent::ConsentView;
use mes_protocol::access::membership::Signed;
use mes_protocol::enrolment::principal::DirectoryEntry;
use mes_protocol::ids::{PrincipalId, SpaceId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};

use crate::daemon::Daemon;

/// Whom to block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockTarget {
    /// A professional, by RPPS number.
    Professional(String),
    /// An establishment, by the structure name the directory lists.
    Structure(String),
}

/// The warning shown when the person restricts their médecin traitant under the
/// citizen-committee policy (seed 004 asks for one).
pub const RESTRICT_WARNING: &str = "Votre médecin traitant ne verra pas ces documents : il \
pourrait manquer d'informations utiles à votre prise en charge. / Your médecin traitant \
will not see these documents and may lack information your care needs.";

impl Daemon {
    /// Signs and sends new choices made from the current ones; returns (old, new).
    pub(crate) async fn update_choices(
        &self,
        space: SpaceId,
        f: impl FnOnce(&mut PersonChoices) -> Result<(), ApiError>,
    ) -> Result<(PersonChoices, PersonChoices), ApiError> {
        let c = self.client().ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Offline,
                "these choices go to the relay, and the daemon is offline",
            )
        })?;
        let m = self.membership_of(space)?;
        let (old, signed) = {
            if m.owner() != self.identity().principal.principal_id() {
                return Err(ApiError::new(
                    ApiErrorCode::Forbidden,
                    "only the person whose space it is makes these choices",
                ));
            }
            let old = m.person_choices();
            let mut new = old.clone();
            f(&mut new)?;
            let now = UnixMillis::now();
            new.version = old.version.max(now.0 - 1) + 1;
            new.issued_at = now;
            (old, Signed::sign(new, &self.identity().principal.signing))
        };
        let new = signed.body.clone();
        c.request(Request::PutChoices { choices: signed })
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        Ok((old, new))
    }

    /// Refreshes a space's membership now (after a change this daemon made).
    pub(crate) async fn refresh_online(&self, space: SpaceId) -> Result<(), ApiError> {
        let c = self
            .client()
            .ok_or_else(|| ApiError::new(ApiErrorCode::Offline, "the daemon went offline"))?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }

    /// The relay's verified directory entry for an RPPS number.
    pub(crate) async fn find_professional(
        &self,
        rpps: &str,
    ) -> Result<Signed<DirectoryEntry>, ApiError> {
        let c = self.client().ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Offline,
                "the relay's directory is needed, and the daemon is offline",
            )
        })?;
        let entry = match c
            .request(Request::FindProfessional { rpps: rpps.into() })
            .await
        {
            Ok(Reply::Professional { entry }) => entry,
            Ok(r) => {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    format!("unexpected {r:?}"),
                ))
            }
            Err(e) => return Err(ApiError::new(ApiErrorCode::NotFound, e.to_string())),
        };
        // The hub's word, checked: signed by the pinned relay key, for this RPPS.
        if entry.signer != c.relay_key
            || entry.verify().is_err()
            || entry.body.professional.rpps.as_str() != rpps.trim()
        {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!("the relay's directory entry for RPPS {rpps} does not verify"),
            ));
        }
        self.remember_professional(&entry)?;
        Ok(entry)
    }

    /// Blocks a professional or an establishment (F7.2): the relay refuses them from then
    /// on, and whatever they held is withdrawn with new epochs. The designated médecin
    /// traitant cannot be blocked (designate another first, seed 003).
    pub async fn block(&self, space: SpaceId, target: BlockTarget) -> Result<(), ApiError> {
        let pro = match &target {
            BlockTarget::Professional(rpps) => Some(self.find_professional(rpps).await?),
            BlockTarget::Structure(s) if s.trim().is_empty() => {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "the establishment name is empty",
                ))
            }
            BlockTarget::Structure(_) => None,
        };
        let (_, new) = self
            .update_choices(space, |c| {
                match (&target, &pro) {
                    (BlockTarget::Professional(_), Some(p)) => {
                        if c.attending == Some(p.body.principal) {
                            return Err(ApiError::new(
                                ApiErrorCode::BadRequest,
                                "this is your designated médecin traitant: designate another one before blocking them",
                            ));
                        }
                        c.blocked.insert(p.body.principal);
                    }
                    (BlockTarget::Structure(s), _) => {
                        c.blocked_structures.insert(s.trim().to_string());
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        // Whatever the blocked held goes, with new epochs.
        let holders: Vec<PrincipalId> = self
            .consents(space)?
            .into_iter()
            .filter(|v| {
                let structure = self
                    .directory_entry(v.principal)
                    .and_then(|e| e.body.professional.structure);
                new.blocks(v.principal, structure.as_deref())
            })
            .map(|v| v.principal)
            .collect();
        for p in holders {
            self.withdraw(space, p).await?;
        }
        self.refresh_online(space).await
    }

    /// What the person blocked, in words.
    pub fn blocks(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        let c = self.membership_of(space)?.person_choices();
        let mut out: Vec<String> = c
            .blocked
            .iter()
            .map(|p| match self.directory_entry(*p) {
                Some(e) => format!(
                    "{} (RPPS {})",
                    e.body.professional.name, e.body.professional.rpps
                ),
                None => p.to_string(),
            })
            .collect();
        out.extend(
            c.blocked_structures
                .iter()
                .map(|s| format!("établissement / establishment: {s}")),
        );
        Ok(out)
    }

    /// Consents once to an establishment's care team (F7.4): every professional the
    /// directory lists under it gets what the matrix allows their profession (minus
    /// `except`), and each access is logged by name with mode care team. Run again to
    /// include members listed since.
    pub async fn consent_team(
        &self,
        space: SpaceId,
        structure: &str,
        except: &[String],
    ) -> Result<Vec<ConsentView>, ApiError> {
        let structure = structure.trim();
        let c = self
            .client()
            .ok_or_else(|| ApiError::new(ApiErrorCode::Offline, "the daemon is offline"))?;
        let entries = match c
            .request(Request::ListStructure {
                structure: structure.into(),
            })
            .await
        {
            Ok(Reply::Professionals { entries }) => entries,
            Ok(r) => {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    format!("unexpected {r:?}"),
                ))
            }
            Err(e) => return Err(ApiError::new(ApiErrorCode::Forbidden, e.to_string())),
        };
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| e.signer == c.relay_key && e.verify().is_ok())
            .collect();
        if entries.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("the directory lists nobody under {structure:?}"),
            ));
        }
        self.update_choices(space, |c| {
            if c.blocked_structures.contains(structure) {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "this establishment is blocked: unblock it first",
                ));
            }
            c.care_teams.insert(structure.to_string());
            Ok(())
        })
        .await?;
        self.refresh_online(space).await?;
        let attending = self
            .state()
            .spaces
            .get(&space)
            .and_then(|s| s.membership.as_ref())
            .and_then(|m| m.person_choices().attending);
        let mut out = Vec::new();
        for e in &entries {
            let is_attending = attending == Some(e.body.principal);
            out.push(self.consent_as(space, e, except, is_attending).await?);
        }
        Ok(out)
    }

    /// Lifts a block.
    pub async fn unblock(&self, space: SpaceId, target: BlockTarget) -> Result<(), ApiError> {
        let principal = match &target {
            BlockTarget::Professional(rpps) => {
                Some(self.find_professional(rpps).await?.body.principal)
            }
            BlockTarget::Structure(_) => None,
        };
        self.update_choices(space, |c| {
            let removed = match (&target, principal) {
                (BlockTarget::Professional(_), Some(p)) => c.blocked.remove(&p),
                (BlockTarget::Structure(s), _) => c.blocked_structures.remove(s.trim()),
                _ => false,
            };
            if removed {
                Ok(())
            } else {
                Err(ApiError::new(
                    ApiErrorCode::NotFound,
                    "nothing blocked by that name",
                ))
            }
        })
        .await?;
        self.refresh_online(space).await
    }

    /// Designates the médecin traitant (F7.3) under a policy (the deployment's when
    /// `None`): under `law-2022` they read everything the matrix allows a physician and
    /// the hidden documents, and nothing can be kept from them; under `citizen-committee`
    /// the person may keep volumes from them (`except`), and the reply carries a warning.
    pub async fn designate_attending(
        &self,
        space: SpaceId,
        rpps: &str,
        policy: Option<AttendingPolicy>,
        except: &[String],
    ) -> Result<(ConsentView, Option<String>), ApiError> {
        let entry = self.find_professional(rpps).await?;
        if entry.body.professional.profession != mes_protocol::access::habilitation::PHYSICIAN {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                format!("RPPS {rpps} is not a physician (profession 10): only a physician can be médecin traitant"),
            ));
        }
        let effective = policy.unwrap_or_else(|| self.hub_attending_policy());
        if effective == AttendingPolicy::Law2022 && !except.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "under the law-2022 policy the médecin traitant reads everything, hidden documents included; nothing can be kept from them (the citizen-committee policy allows it)",
            ));
        }
        let principal = entry.body.principal;
        self.update_choices(space, |c| {
            if c.blocks(principal, entry.body.professional.structure.as_deref()) {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "this professional is blocked: unblock them first",
                ));
            }
            c.attending = Some(principal);
            c.policy = policy;
            Ok(())
        })
        .await?;
        self.refresh_online(space).await?;
        let view = self.consent_as(space, &entry, except, true).await?;
        let warning = (!except.is_empty()).then(|| RESTRICT_WARNING.to_string());
        Ok((view, warning))
    }
}
