//! Consent enforced by keys (F7.1, F7.2 soon, F9.2): the person consents to a professional
//! of the relay's directory, and this daemon signs per-volume grants for exactly the
//! volumes the habilitation matrix allows their profession, minus what the person keeps
//! from them; the keys of those volumes are then wrapped to the professional's devices
//! and to nobody else. Withdrawing removes every grant and starts a new key epoch on
//! every volume the principal could read, so nothing written afterwards opens for them.

use mes_protocol::access::consent::{AccessEntryView, AccessHistoryView, ConsentView};
use mes_protocol::access::escrow::ESCROWED_LABEL;
use mes_protocol::access::habilitation::{Matrix, HIDDEN};
use mes_protocol::access::history::AccessTarget;
use mes_protocol::access::membership::{Grant, Membership, Role, Signed};
use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::enrolment::principal::DirectoryEntry;
use mes_protocol::ids::{Epoch, PrincipalId, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::Request;
use rand::rngs::OsRng;
use std::collections::BTreeSet;

use crate::daemon::{Daemon, INBOX};

/// Sealed-store namespace of the directory entries seen, by principal.
const DIRECTORY: &str = "directory";

/// Sealed-store namespace of the lapsed grants already rotated away from.
const LAPSED: &str = "lapsed-grants";

/// The volumes a consent for `profession` opens, minus `except` (labels or groups).
pub fn consent_volumes(
    m: &Membership,
    profession: &str,
    except: &[String],
) -> Vec<(VolumeId, String)> {
    let matrix = Matrix::builtin();
    m.volumes
        .values()
        .map(|d| &d.body)
        .filter(|d| d.kind == VolumeKind::Automerge)
        .filter(|d| matrix.may_read_volume(profession, &d.label))
        .filter(|d| {
            !except.iter().any(|e| {
                *e == d.label
                    || d.label.strip_prefix("documents/") == Some(e.as_str())
                    || (e == "measurements" && d.label.starts_with("measurements/"))
            })
        })
        .map(|d| (d.volume, d.label.clone()))
        .collect()
}

impl Daemon {
    pub fn membership_of(&self, space: SpaceId) -> Result<Membership, ApiError> {
        self.state()
            .spaces
            .get(&space)
            .and_then(|s| s.membership.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::Offline,
                    "the membership of this space is not synced yet",
                )
            })
    }

    pub(crate) fn signed_grant(
        &self,
        m: &Membership,
        principal: PrincipalId,
        volume: Option<VolumeId>,
        role: Option<Role>,
    ) -> Signed<Grant> {
        let now = UnixMillis::now();
        let version = m
            .grants
            .get(&(principal, volume))
            .map_or(now.0, |g| g.body.version.max(now.0 - 1) + 1);
        Signed::sign(
            Grant {
                space: m.space(),
                volume,
                principal,
                role,
                version,
                issued_at: now,
                expires_at: None,
            },
            &self.identity().principal.signing,
        )
    }

    /// Consents to the professional with this RPPS number (see [`consent_volumes`]).
    pub async fn consent(
        &self,
        space: SpaceId,
        rpps: &str,
        except: &[String],
    ) -> Result<ConsentView, ApiError> {
        let entry = self.find_professional(rpps).await?;
        let attending =
            self.membership_of(space)?.person_choices().attending == Some(entry.body.principal);
        self.consent_as(space, &entry, except, attending).await
    }

    /// Refuses unless this device's principal manages the space: the person, or who
    /// manages it with them (a guardian within a measure, a legal representative).
    pub(crate) fn require_manager(&self, m: &Membership, does: &str) -> Result<(), ApiError> {
        let me = self.identity().principal.principal_id();
        if m.at(UnixMillis::now()).role(me, None) == Some(Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!(
                    "only the person whose space it is, or who manages it with them, can {does}"
                ),
            ))
        }
    }

    /// Keeps a verified directory entry, for names in views and structures in blocks.
    pub(crate) fn remember_professional(
        &self,
        entry: &Signed<DirectoryEntry>,
    ) -> Result<(), ApiError> {
        let mut batch = self.store.batch();
        batch.put(
            DIRECTORY,
            &entry.body.principal.0,
            &mes_protocol::wire::codec::to_bytes(entry),
        );
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))
    }

    /// Grants a verified professional what the matrix allows (and the hidden documents
    /// when they are the médecin traitant), minus `except`.
    pub(crate) async fn consent_as(
        &self,
        space: SpaceId,
        entry: &Signed<DirectoryEntry>,
        except: &[String],
        attending: bool,
    ) -> Result<ConsentView, ApiError> {
        let c = self.online_client("consenting")?;
        let m = self.membership_of(space)?;
        // The person, or who manages the space with them: a guardian within a measure
        // (F9.3), a legal representative (F9.1).
        self.require_manager(&m, "consent")?;
        let principal = entry.body.principal;
        let profession = entry.body.professional.profession.clone();
        for e in except {
            // F2.10: the emergency section is never kept back; whoever may read it reads it.
            if e == ESCROWED_LABEL {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "the emergency section cannot be kept back (F2.10): whoever you consent to reads it, as emergency services do / la section urgence ne peut pas être masquée",
                ));
            }
            let known = m
                .volumes
                .values()
                .any(|d| d.body.label == *e || d.body.label == format!("documents/{e}"))
                || e == "measurements";
            if !known {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    format!("nothing to keep back named {e:?}: give a volume label (documents/mental) or a group (mental)"),
                ));
            }
        }
        let mut reads = consent_volumes(&m, &profession, except);
        if attending && !except.iter().any(|e| e == "hidden" || e == HIDDEN) {
            reads.extend(
                m.volumes
                    .values()
                    .filter(|d| d.body.label == HIDDEN)
                    .map(|d| (d.body.volume, d.body.label.clone())),
            );
        }
        let inbox = m
            .volumes
            .values()
            .find(|d| d.body.label == INBOX)
            .map(|d| d.body.volume);
        // What they held before and no longer may read is withdrawn (tightening).
        let keep: BTreeSet<VolumeId> = reads.iter().map(|(v, _)| *v).collect();
        let mut grants = Vec::new();
        let mut dropped = Vec::new();
        for ((p, scope), g) in &m.grants {
            if *p == principal && g.body.role.is_some_and(Role::can_read) {
                match scope {
                    Some(v) if !keep.contains(v) => {
                        grants.push(self.signed_grant(&m, principal, Some(*v), None));
                        dropped.push(*v);
                    }
                    None => grants.push(self.signed_grant(&m, principal, None, None)),
                    _ => {}
                }
            }
        }
        for (v, _) in &reads {
            if m.role(principal, Some(*v)) != Some(Role::Read) {
                grants.push(self.signed_grant(&m, principal, Some(*v), Some(Role::Read)));
            }
        }
        if let Some(inbox) = inbox {
            if m.role(principal, Some(inbox)).is_none() {
                grants.push(self.signed_grant(&m, principal, Some(inbox), Some(Role::Append)));
            }
        }
        for grant in grants {
            c.request(Request::PutGrant { grant })
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        }
        self.remember_professional(entry)?;
        self.start_epochs(&dropped)?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
        Ok(self
            .consents(space)?
            .into_iter()
            .find(|v| v.principal == principal)
            .expect("the consent just given"))
    }

    /// Withdraws every right of `principal` on the space and starts new epochs on what
    /// they could read.
    pub async fn withdraw(&self, space: SpaceId, principal: PrincipalId) -> Result<(), ApiError> {
        let c = self.online_client("withdrawing")?;
        let m = self.membership_of(space)?;
        let readable: Vec<VolumeId> = m
            .volumes
            .keys()
            .filter(|v| m.role(principal, Some(**v)).is_some_and(Role::can_read))
            .copied()
            .collect();
        let grants: Vec<Signed<Grant>> = m
            .grants
            .iter()
            .filter(|((p, _), g)| *p == principal && g.body.role.is_some())
            .map(|((_, scope), _)| self.signed_grant(&m, principal, *scope, None))
            .collect();
        if grants.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("{principal:?} holds no right on this space"),
            ));
        }
        for grant in grants {
            c.request(Request::PutGrant { grant })
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        }
        self.start_epochs(&readable)?;
        self.store
            .flush()
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }

    /// Grants to a relative, trusted person, caregiver or guardian (F9.2, F9.3): `role` on
    /// the volumes labelled `volumes` (partial access), or on the whole space when none
    /// is named (full access), until `until` if given. Revocable with [`Daemon::withdraw`].
    pub async fn delegate(
        &self,
        space: SpaceId,
        principal: PrincipalId,
        role: Role,
        volumes: &[String],
        until: Option<UnixMillis>,
    ) -> Result<(), ApiError> {
        let c = self.online_client("delegating")?;
        let m = self.membership_of(space)?;
        if until.is_some_and(|t| t <= UnixMillis::now()) {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "the end of the access is already past",
            ));
        }
        let mut scopes = Vec::new();
        for label in volumes {
            let d = m
                .volumes
                .values()
                .find(|d| d.body.label == *label)
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorCode::BadRequest,
                        format!("no volume {label:?} in this space"),
                    )
                })?;
            scopes.push(Some(d.body.volume));
        }
        if scopes.is_empty() {
            scopes.push(None);
        }
        for scope in scopes {
            let mut g = self.signed_grant(&m, principal, scope, Some(role));
            if until.is_some() {
                g.body.expires_at = until;
                g = Signed::sign(g.body, &self.identity().principal.signing);
            }
            c.request(Request::PutGrant { grant: g })
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        }
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }

    /// Starts a new epoch, once, on what each lapsed grant covered (F9.2) and on every
    /// volume of a space a court removed someone from (F9.4): what is written after is
    /// sealed under keys they never get.
    pub(crate) fn rotate_lapsed(&self, space: SpaceId, m: &Membership) -> Result<bool, ApiError> {
        let now = UnixMillis::now();
        let mut todo = Vec::new();
        let mut batch = self.store.batch();
        for r in m.removals.values() {
            let key = [
                space.0.as_slice(),
                r.body.principal.0.as_slice(),
                b"court",
                &r.body.recorded_at.0.to_be_bytes(),
            ]
            .concat();
            if self.store.get(LAPSED, &key).ok().flatten().is_none() {
                batch.put(LAPSED, &key, &[1]);
                todo.extend(m.volumes.keys().copied());
            }
        }
        for g in m.lapsed(now) {
            let key = [
                space.0.as_slice(),
                g.body.principal.0.as_slice(),
                &g.body.version.to_be_bytes(),
            ]
            .concat();
            if self.store.get(LAPSED, &key).ok().flatten().is_some() {
                continue;
            }
            batch.put(LAPSED, &key, &[1]);
            match g.body.volume {
                Some(v) => todo.push(v),
                None => todo.extend(m.volumes.keys().copied()),
            }
        }
        // Inbox drops are sealed to the owner's inbox recipient, not to epoch keys.
        todo.retain(|v| m.volume(*v).is_some_and(|d| d.kind != VolumeKind::Inbox));
        if todo.is_empty() {
            return Ok(false);
        }
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        todo.sort();
        todo.dedup();
        self.start_derived_epochs(&todo)?;
        Ok(true)
    }

    /// Before uploading: rotates away from lapsed grants in every space this principal
    /// administers, and wraps the new keys to who remains.
    pub async fn rotate_all_lapsed(
        &self,
        c: &crate::sync::relay_client::RelayClient,
    ) -> Result<(), crate::daemon::SyncError> {
        // Run before every upload: clone only the memberships with a lapsed grant.
        let now = UnixMillis::now();
        let spaces: Vec<(SpaceId, Membership)> = {
            let st = self.state();
            let me = self.identity().principal.principal_id();
            st.spaces
                .values()
                .filter_map(|s| s.membership.as_ref().map(|m| (s.id(), m)))
                // The owner's devices only: they derive the same new keys (below), where
                // two admins drawing keys each would split an epoch in two.
                .filter(|(_, m)| (m.lapsed_any(now) || !m.removals.is_empty()) && m.owner() == me)
                .map(|(id, m)| (id, m.clone()))
                .collect()
        };
        for (space, m) in spaces {
            if self
                .rotate_lapsed(space, &m)
                .map_err(|e| crate::daemon::SyncError::Refused(e.message))?
            {
                self.store.flush().await?;
                self.refresh_space(c, space).await?;
            }
        }
        Ok(())
    }

    /// Starts a new key epoch on each volume (its current generation); the next refresh
    /// wraps it to the volume's readers as they are now.
    pub(crate) fn start_epochs(&self, volumes: &[VolumeId]) -> Result<(), ApiError> {
        self.start_epochs_with(volumes, false)
    }

    /// Like [`Daemon::start_epochs`], each new key derived (see [`rotation_key`]): every
    /// device of the owner rotating on the same departure picks the same key, and nobody
    /// else can derive it.
    fn start_derived_epochs(&self, volumes: &[VolumeId]) -> Result<(), ApiError> {
        self.start_epochs_with(volumes, true)
    }

    fn start_epochs_with(&self, volumes: &[VolumeId], derived: bool) -> Result<(), ApiError> {
        let mut st = self.state();
        let secret = derived.then(|| self.identity().principal.age.to_secret_string());
        let mut batch = self.store.batch();
        for volume in volumes {
            let Some(v) = st.volumes.get(volume) else {
                continue;
            };
            let (space, generation) = (v.meta.space, v.meta.generation);
            let current = st.keys.current(*volume, generation);
            let slot = KeySlot {
                space,
                volume: *volume,
                generation,
                epoch: current.map(|(e, _)| Epoch(e.0 + 1)).unwrap_or(Epoch(0)),
            };
            let key = match (&secret, current) {
                (Some(secret), Some((_, previous))) => rotation_key(secret, previous, &slot),
                // Nothing to chain from: a fresh key (the owner's other devices adopt
                // whichever reaches them first).
                _ => SymmetricKey::generate(&mut OsRng),
            };
            st.keys.insert(slot, key, &mut batch);
        }
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))
    }

    pub(crate) fn directory_entry(&self, principal: PrincipalId) -> Option<Signed<DirectoryEntry>> {
        self.store.get_decoded(DIRECTORY, &principal.0)
    }

    /// Who holds which rights on the space.
    pub fn consents(&self, space: SpaceId) -> Result<Vec<ConsentView>, ApiError> {
        let m = self.membership_of(space)?;
        let label = |v: &VolumeId| {
            m.volume(*v)
                .map(|d| d.label.clone())
                .unwrap_or_else(|| v.short())
        };
        let principals: BTreeSet<PrincipalId> = m
            .former_owner()
            .into_iter()
            .chain(m.grants.keys().map(|(p, _)| *p))
            .collect();
        let mut out = Vec::new();
        for p in principals {
            let mut reads = Vec::new();
            let mut appends = Vec::new();
            for v in m.volumes.keys() {
                match m.role(p, Some(*v)) {
                    Some(r) if r.can_read() => reads.push(label(v)),
                    Some(Role::Append) => appends.push(label(v)),
                    _ => {}
                }
            }
            if reads.is_empty() && appends.is_empty() {
                continue;
            }
            reads.sort();
            appends.sort();
            let pro = self.directory_entry(p).map(|e| e.body.professional);
            let service = self.known_service(p).map(|e| e.service.name);
            out.push(ConsentView {
                principal: p,
                name: pro.as_ref().map(|p| p.name.clone()).or(service),
                rpps: pro.as_ref().map(|p| p.rpps.to_string()),
                profession: pro.as_ref().map(|p| p.profession.clone()),
                reads,
                appends,
                space_role: m.role(p, None).map(|r| format!("{r:?}").to_lowercase()),
            });
        }
        Ok(out)
    }

    /// The verified access history of the space, as the API shows it.
    pub fn access_history(&self, space: SpaceId) -> AccessHistoryView {
        let log = self.history(space);
        AccessHistoryView {
            entries: log
                .entries
                .iter()
                .map(|e| {
                    let b = &e.body;
                    let pro = b.professional.as_ref();
                    AccessEntryView {
                        seq: b.seq,
                        at: b.at,
                        actor: b.actor,
                        name: pro
                            .map(|p| p.name.clone())
                            .or_else(|| self.known_service(b.actor).map(|e| e.service.name)),
                        profession: pro.map(|p| p.profession.clone()),
                        specialty: pro.and_then(|p| p.specialty.clone()),
                        structure: pro.and_then(|p| p.structure.clone()),
                        target: match &b.target {
                            AccessTarget::Volume { label, .. } => label.clone(),
                            AccessTarget::Blob { blob } => format!("file {}", blob.short()),
                        },
                        mode: b.mode.name().to_string(),
                        suspicious: log.suspicious.contains(&b.seq),
                    }
                })
                .collect(),
            alarm: log.alarm.map(|a| a.to_string()),
        }
    }
}

/// The key of a rotation away from a lapsed grant (F9.2), derived from the owner's
/// principal secret, the volume's key before it and the slot (threat model, finding 3).
/// Both inputs are needed: the lapsed grantee holds the previous key but not the secret;
/// a revoked device holds the secret but not the random key its revocation started, so
/// it derives no key of a rotation that follows its revocation.
pub fn rotation_key(
    principal_secret: &str,
    previous: &SymmetricKey,
    slot: &KeySlot,
) -> SymmetricKey {
    let mut h = blake3::Hasher::new_derive_key("mes rotation epoch key v2");
    h.update(principal_secret.as_bytes());
    h.update(previous.as_bytes());
    h.update(&mes_protocol::wire::codec::to_bytes(slot));
    SymmetricKey::from_bytes(*h.finalize().as_bytes())
}
