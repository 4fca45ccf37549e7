//! The relay's shared state and its request handler: membership cache, store, hub.
//!
//! [`Relay::handle`] turns one authenticated request into a reply; it checks the caller's
//! rights ([`crate::access`]), every record's signature, and every bundle's binding and
//! author signature before anything is stored. A refused request changes nothing.

use mes_protocol::catalogue::CatalogueEntry;
use mes_protocol::codec;
use mes_protocol::ids::{DeviceId, PrincipalId, Seq, SpaceId, VolumeId};
use mes_protocol::keys::DeviceCert;
use mes_protocol::membership::{DeviceRevocation, Membership, Signed};
use mes_protocol::pairing::{PairingCode, PairingExchange};
use mes_protocol::seal::SealedBundle;
use mes_protocol::wire::{ErrorCode, Reply, Request, WireError, MAX_FETCH, MAX_HISTORY};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mes_protocol::habilitation::Matrix;
use mes_protocol::history::{AccessMode, AccessTarget};
use mes_protocol::keys::SigningSecret;
use mes_protocol::membership::{Grant, Role};
use mes_protocol::principal::{DirectoryEntry, Professional, Rpps};

use crate::access::{authorize, Need};
use crate::access_history::{AccessHistory, Accessor};
use crate::defaults::{MAX_APPEND_BUNDLES, MAX_BLOB_CHUNK};
use crate::escrow::Escrow;
use crate::hub::{Hub, Outbox};
use crate::store::{RecordKind, Store, StoreError};
use mes_protocol::choices::AttendingPolicy;
use mes_protocol::escrow::{EscrowMode, ESCROWED_LABEL, RELEASE_MILLIS};

/// Switches that make a relay misbehave on purpose, for the tests' controls only.
#[derive(Clone, Debug, Default)]
pub struct Misbehaviour {
    /// Replace each side's first pairing message with the relay's own SPAKE2 message
    /// (a man in the middle): pairing must then fail.
    pub tamper_pairing: bool,
    /// Acknowledge the `n`-th appended bundle (counted from 1 across all appends) but
    /// silently never store it: the simulator's planted bug, which its checker must catch.
    pub drop_bundle: Option<u64>,
    /// Bundles appended so far while `drop_bundle` is set, shared by every relay built
    /// from clones of this value: a restarted relay goes on counting, and the simulator
    /// holds it far beyond `drop_bundle` during its setup and sets it to zero once the
    /// setup is done, so the drop falls among the edits.
    pub appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bundles dropped so far (the simulator's report says whether the bug was planted).
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Skip every access decision (the authorisation matrix test's control).
    pub skip_access_check: bool,
    /// Accept grants to professionals beyond the habilitation matrix (its control).
    pub skip_matrix_check: bool,
    /// Show this device a different (validly signed and chained) access history than the
    /// other devices: the fork the owner's devices must catch.
    pub fork_history_for: Option<DeviceId>,
    /// Store any key envelope from anyone (a hub planting keys): devices must refuse to
    /// adopt a key from someone who may not choose it.
    pub accept_any_envelope: bool,
    /// Serve the catalogue with every suspension lifted, without signing again (a hub
    /// vouching for a service it suspended): devices must refuse the list.
    pub unsuspend_catalogue: bool,
    /// Let a space declare a volume id another space holds (issue 22, finding 1's
    /// control): the stranger's fetch must then reach the victim's log.
    pub skip_volume_binding: bool,
    /// Store any admin's volume declaration as it comes, relabelled or not (finding 2's
    /// control): the owner's devices must still refuse it.
    pub accept_any_declaration: bool,
    /// Admit any device its principal certified, listed or not (finding 3's control): a
    /// revoked device holding the principal's keys then comes back under a new name.
    pub admit_any_certified_device: bool,
    /// Let any space claim a committed blob (finding 8's control).
    pub skip_blob_binding: bool,
    /// Store bundles sealed with the null cipher (the confidentiality tests' control;
    /// a production relay refuses them, finding 10).
    pub accept_null_cipher: bool,
}

/// The relay's own keys.
pub struct RelayKeys {
    /// Signs the directory and the access history.
    pub signing: SigningSecret,
    /// The emergency escrow identities.
    pub escrow: Escrow,
}

/// The deployment's policies.
#[derive(Clone, Copy, Debug)]
pub struct HubPolicy {
    /// What a médecin traitant reads when the person chose no policy (F7.3).
    pub attending: AttendingPolicy,
    /// Bytes of files one space may hold at the hub, committed or being uploaded
    /// (`serve.file_bytes_per_space`; issue 22 finding 6).
    pub file_bytes_per_space: u64,
}

impl Default for HubPolicy {
    fn default() -> Self {
        HubPolicy {
            attending: AttendingPolicy::default(),
            file_bytes_per_space: crate::defaults::FILE_BYTES_PER_SPACE,
        }
    }
}

/// An authenticated connection's identity.
pub struct Caller {
    /// The device.
    pub device: DeviceId,
    /// Its principal.
    pub principal: PrincipalId,
    /// Where pushes for it go.
    pub outbox: Arc<Outbox>,
    /// The address the connection came from (none in the simulator).
    pub source: Option<std::net::IpAddr>,
    /// Files this connection read lately, so each read is logged once (finding 8).
    pub blob_reads: BlobReads,
    /// The certificate of a principal's first device, admitted but not yet listed
    /// (finding 6): listed at its first request that succeeds and is not
    /// `stateless`, so a fresh identity that only knocks leaves nothing durable.
    pub first_device: FirstDevice,
}

/// A first device waiting to be listed ([`Caller::first_device`]).
#[derive(Default)]
pub struct FirstDevice(std::sync::Mutex<Option<DeviceCert>>);

impl FirstDevice {
    /// A first device admitted with `cert`.
    pub fn new(cert: DeviceCert) -> Self {
        FirstDevice(std::sync::Mutex::new(Some(cert)))
    }

    fn pending(&self) -> Option<DeviceCert> {
        self.0.lock().expect("first device lock").clone()
    }

    /// Whether the device is admitted but not listed yet.
    pub fn is_pending(&self) -> bool {
        self.0.lock().expect("first device lock").is_some()
    }

    fn listed(&self) {
        *self.0.lock().expect("first device lock") = None;
    }
}

/// How a device was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It is on its person's list.
    Listed,
    /// Its principal has no listed device: it will start the list at its first request
    /// that needs one ([`Caller::first_device`]).
    FirstDevice,
}

/// Requests whose handler needs the caller's device listed already (it wraps keys to the
/// caller's devices, or extends or trims their list): a first device is listed before
/// them; after any other request only once it succeeded.
fn lists_first(kind: mes_protocol::wire::RequestKind) -> bool {
    use mes_protocol::wire::RequestKind as K;
    matches!(
        kind,
        K::EmergencyAccess | K::Enrol | K::ListDevice | K::RevokeDevice
    )
}

/// Requests that touch nothing of the caller's and leave nothing durable: a first device
/// asking only these is never listed (finding 6). `ListSpaces` lists it when it finds a
/// space.
fn stateless(kind: mes_protocol::wire::RequestKind) -> bool {
    use mes_protocol::wire::RequestKind as K;
    matches!(
        kind,
        K::GetHubInfo
            | K::FindProfessional
            | K::PairOpen
            | K::PairSend
            | K::GetCatalogue
            | K::ListStructure
            | K::ListSpaces
    )
}

/// The files a connection read lately: a read is logged at its first chunk, or at the
/// first chunk a connection fetches of a file it was not logged for within
/// [`BlobReads::FOR`]. Bounded to [`BlobReads::MAX`] files (the oldest forgotten).
#[derive(Default)]
pub struct BlobReads(
    std::sync::Mutex<std::collections::VecDeque<(mes_protocol::ids::BlobId, std::time::Instant)>>,
);

impl BlobReads {
    /// Files remembered per connection.
    pub const MAX: usize = 256;
    /// How long a logged read covers further chunks of the same file.
    pub const FOR: std::time::Duration = std::time::Duration::from_secs(600);

    /// Whether fetching chunk `index` of `blob` starts a read to log (and remembers it).
    pub fn starts_read(&self, blob: mes_protocol::ids::BlobId, index: u32) -> bool {
        let now = std::time::Instant::now();
        let mut reads = self.0.lock().expect("blob reads lock");
        reads.retain(|(_, at)| now.duration_since(*at) < Self::FOR);
        let known = reads.iter().any(|(b, _)| *b == blob);
        if index != 0 && known {
            return false;
        }
        reads.retain(|(b, _)| *b != blob);
        if reads.len() >= Self::MAX {
            reads.pop_front();
        }
        reads.push_back((blob, now));
        true
    }
}

impl Caller {
    /// Who a failed enrolment request is counted against (issue 22, finding 4).
    fn guessers(&self) -> Vec<crate::enrolment::service::Guesser> {
        use crate::enrolment::service::Guesser;
        let mut g = vec![Guesser::Device(self.device)];
        g.extend(self.source.map(Guesser::Source));
        g
    }
}

/// Relay state shared by all connections.
pub struct Relay {
    pub(crate) store: Arc<dyn Store>,
    /// Signs the directory and the access history.
    pub(crate) key: SigningSecret,
    /// The emergency escrow identities (F7.5).
    escrow: Escrow,
    policy: HubPolicy,
    history: AccessHistory,
    /// Requests refused so far (each is also logged).
    refusals: std::sync::atomic::AtomicU64,
    /// Subscriptions and rendezvous.
    pub hub: Arc<Hub>,
    memberships: RwLock<HashMap<SpaceId, Membership>>,
    misbehaviour: Misbehaviour,
    /// Appends share a volume's lock; a generation switch takes it alone.
    volume_locks: crate::pruned_map::LockMap<VolumeId, tokio::sync::RwLock<()>>,
    /// A space's membership changes are read-modify-write: one at a time per space, or
    /// two devices declaring volumes at once would each save a copy missing the other's.
    membership_locks: crate::pruned_map::LockMap<SpaceId, tokio::sync::Mutex<()>>,
    /// Volume bindings are checked and written one at a time.
    binding_lock: tokio::sync::Mutex<()>,
    /// The hub's enrolment (F1), when this relay runs one.
    pub enrolment: std::sync::OnceLock<Arc<crate::enrolment::service::EnrolmentHub>>,
    /// Spaces their person closed (F1.6): archived, refused to everyone until reopened.
    closed: RwLock<std::collections::HashSet<SpaceId>>,
    /// What the relay counts (served on the metrics port).
    pub metrics: crate::metrics::Metrics,
    /// The catalogue of approved services (F6), by service principal.
    pub(crate) catalogue: RwLock<HashMap<PrincipalId, Signed<CatalogueEntry>>>,
    /// Bundle signatures of concurrent appends, checked in one batch.
    signatures: crate::group_commit::AsyncCombiner<Vec<mes_protocol::keys::Check>, Vec<bool>>,
    /// Bytes of frames all connections hold at once (issue 22 finding 5).
    pub budgets: crate::server::byte_budget::RelayBudgets,
    /// First devices admitted but not listed yet (finding 6), by principal, the oldest
    /// forgotten past [`FIRST_DEVICES`]: a grant naming their principal lists them.
    first_devices: std::sync::Mutex<(
        HashMap<PrincipalId, DeviceCert>,
        std::collections::VecDeque<PrincipalId>,
    )>,
}

/// First devices remembered until their principal is granted something.
const FIRST_DEVICES: usize = 4096;

fn internal(e: StoreError) -> WireError {
    WireError::new(ErrorCode::Internal, e.to_string())
}

/// Refuses anyone but the space's owner: "only the person whose space it is {does}".
/// The owner passes; another member is told why not; anyone else is answered as for a
/// space that does not exist (no existence oracle, finding 10).
fn owner_only(m: &Membership, who: PrincipalId, does: &str) -> Result<(), WireError> {
    if who == m.owner() {
        Ok(())
    } else if crate::access::authorize(m, who, Need::AnyRole).is_err() {
        Err(crate::access::not_member(m.space(), who))
    } else {
        Err(WireError::new(
            ErrorCode::Forbidden,
            format!("only the person whose space it is {does}"),
        ))
    }
}

/// The marker of a finished one-time backfill, in the kind it fills.
const BACKFILLED: &[u8] = b"backfilled-v1";

/// The key of a device's record: principal || device.
fn device_key(principal: PrincipalId, device: DeviceId) -> Vec<u8> {
    [principal.0.as_slice(), device.0.as_slice()].concat()
}

fn volume_taken(volume: VolumeId) -> WireError {
    WireError::new(
        ErrorCode::Conflict,
        format!(
            "volume id {} belongs to another space; a volume id is bound to one space for ever",
            volume.short()
        ),
    )
}

fn bad_record(e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::BadRecord, e.to_string())
}

impl Relay {
    /// Loads the membership cache and wires the store's notify hook to the hub.
    pub async fn new(
        store: Arc<dyn Store>,
        keys: RelayKeys,
        policy: HubPolicy,
        misbehaviour: Misbehaviour,
    ) -> Result<Arc<Self>, StoreError> {
        let mut memberships = HashMap::new();
        for (_, v) in store.scan_records(RecordKind::Membership, &[]).await? {
            let m: Membership =
                codec::from_bytes(&v).map_err(|e| StoreError(format!("stored membership: {e}")))?;
            memberships.insert(m.space(), m);
        }
        let mut catalogue = HashMap::new();
        for (_, v) in store.scan_records(RecordKind::Catalogue, &[]).await? {
            let e: Signed<CatalogueEntry> = codec::from_bytes(&v)
                .map_err(|e| StoreError(format!("stored catalogue entry: {e}")))?;
            catalogue.insert(e.body.service.principal, e);
        }
        let closed = store
            .scan_records(RecordKind::Closed, &[])
            .await?
            .into_iter()
            .filter_map(|(k, _)| Some(SpaceId(k.try_into().ok()?)))
            .collect();
        let hub = Arc::new(Hub::default());
        let h = hub.clone();
        store.set_notify(Box::new(move |volume, head| h.publish_head(volume, head)));
        let relay = Arc::new(Relay {
            history: AccessHistory::new(store.clone()),
            store,
            key: keys.signing,
            escrow: keys.escrow,
            policy,
            refusals: Default::default(),
            hub,
            memberships: RwLock::new(memberships),
            misbehaviour,
            volume_locks: Default::default(),
            membership_locks: Default::default(),
            binding_lock: Default::default(),
            enrolment: Default::default(),
            catalogue: RwLock::new(catalogue),
            signatures: Default::default(),
            metrics: Default::default(),
            closed: RwLock::new(closed),
            budgets: Default::default(),
            first_devices: Default::default(),
        });
        relay.backfill_volume_bindings().await?;
        relay.backfill_blob_bindings().await?;
        relay.backfill_current_certs().await?;
        relay.backfill_structure_index().await?;
        // Another instance on a shared backend changed a record this one caches.
        let weak = Arc::downgrade(&relay);
        relay.store.set_record_hook(Box::new(move |kind, key| {
            let (Some(r), key) = (weak.upgrade(), key.to_vec()) else {
                return;
            };
            tokio::spawn(async move {
                if let Err(e) = r.reload_cached(kind, key).await {
                    tracing::warn!("refreshing a {kind:?} record changed elsewhere: {e}");
                }
            });
        }));
        Ok(relay)
    }

    /// Admits a device at authentication (issue 22, finding 3): it must be on its person's
    /// list, which a principal's first device starts, a listed device extends
    /// ([`Request::ListDevice`], pairing) and a recovery kit's admission key extends
    /// (`vouch`); a revoked device never comes back. The principal's signature on a
    /// certificate is not enough: every device of a person holds the principal's keys,
    /// so a stolen device could certify a new one.
    pub async fn admit(
        &self,
        cert: &DeviceCert,
        vouch: Option<&mes_protocol::recovery::AdmissionVouch>,
    ) -> Result<Admission, WireError> {
        if self.is_revoked(cert.body.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                format!(
                    "device {} was revoked by its principal",
                    cert.body.device.short()
                ),
            ));
        }
        let principal = cert.body.principal;
        let listed = self
            .store
            .get_record(RecordKind::Device, &device_key(principal, cert.body.device))
            .await
            .map_err(internal)?
            .is_some();
        if listed || self.misbehaviour.admit_any_certified_device {
            return self.list_device(cert).await.map(|()| Admission::Listed);
        }
        if let Some(v) = vouch {
            let registered = self
                .store
                .get_record(RecordKind::AdmissionKey, &principal.0)
                .await
                .map_err(internal)?;
            if registered.as_deref() != Some(v.key.0.as_slice()) {
                return Err(WireError::new(
                    ErrorCode::Unauthenticated,
                    "this recovery kit is not the person's current one: make a new kit from one of their devices",
                ));
            }
            v.verify(cert)
                .map_err(|e| WireError::new(ErrorCode::Unauthenticated, e.to_string()))?;
            return self.list_device(cert).await.map(|()| Admission::Listed);
        }
        let has_devices = !self
            .store
            .scan_records(RecordKind::Device, &principal.0)
            .await
            .map_err(internal)?
            .is_empty();
        // Checked again: a concurrent connection of this same first device may have just
        // started the list with it.
        let listed_since = has_devices
            && self
                .store
                .get_record(RecordKind::Device, &device_key(principal, cert.body.device))
                .await
                .map_err(internal)?
                .is_some();
        if has_devices && !listed_since {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "device {} is not on its person's list: pair it from one of their devices (mes pair), or restore it from their recovery kit",
                    cert.body.device.short()
                ),
            ));
        }
        // A principal's first device starts its list, at its first request that needs
        // one or when a grant names its principal: nothing durable for a stranger who
        // only knocks (finding 6).
        let mut waiting = self.first_devices.lock().expect("first devices lock");
        let (certs, order) = &mut *waiting;
        if certs.insert(principal, cert.clone()).is_none() {
            order.push_back(principal);
            while order.len() > FIRST_DEVICES {
                if let Some(old) = order.pop_front() {
                    certs.remove(&old);
                }
            }
        }
        Ok(Admission::FirstDevice)
    }

    /// Lists the waiting first devices of the principals `m` grants something.
    async fn list_first_devices_of(&self, m: &Membership) -> Result<(), WireError> {
        let granted: Vec<DeviceCert> = {
            let mut waiting = self.first_devices.lock().expect("first devices lock");
            let (certs, order) = &mut *waiting;
            let granted: Vec<PrincipalId> = certs
                .keys()
                .filter(|p| authorize(m, **p, Need::AnyRole).is_ok())
                .copied()
                .collect();
            order.retain(|p| !granted.contains(p));
            granted.iter().filter_map(|p| certs.remove(p)).collect()
        };
        for cert in granted {
            if let Err(e) = self.list_first_device(&cert).await {
                tracing::info!("a granted first device was not listed: {e}");
            }
        }
        Ok(())
    }

    /// Lists the caller's device if it is a first device not listed yet.
    async fn list_pending_first_device(&self, caller: &Caller) -> Result<(), WireError> {
        let Some(cert) = caller.first_device.pending() else {
            return Ok(());
        };
        self.list_first_device(&cert).await?;
        caller.first_device.listed();
        self.first_devices
            .lock()
            .expect("first devices lock")
            .0
            .remove(&caller.principal);
        Ok(())
    }

    /// Lists a first device ([`Admission::FirstDevice`]), unless another device of its
    /// principal started the list meanwhile.
    async fn list_first_device(&self, cert: &DeviceCert) -> Result<(), WireError> {
        let principal = cert.body.principal;
        let key = device_key(principal, cert.body.device);
        let others = self
            .store
            .scan_records(RecordKind::Device, &principal.0)
            .await
            .map_err(internal)?;
        if !others.is_empty() && !others.iter().any(|(k, _)| *k == key) {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "another device started this person's list; device {} must be paired from it (mes pair)",
                    cert.body.device.short()
                ),
            ));
        }
        self.list_device(cert).await
    }

    /// Puts a certified device on its principal's list (first device, pairing, recovery).
    pub async fn list_device(&self, cert: &DeviceCert) -> Result<(), WireError> {
        if self.is_revoked(cert.body.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                format!("device {} is revoked", cert.body.device.short()),
            ));
        }
        let key = device_key(cert.body.principal, cert.body.device);
        if self
            .store
            .get_record(RecordKind::Device, &key)
            .await
            .map_err(internal)?
            .is_none()
        {
            self.store
                .put_record(RecordKind::Device, key, codec::to_bytes(cert))
                .await
                .map_err(internal)?;
            self.note_current(cert).await?;
            // A new device of a member: admins must wrap keys to it.
            for s in self.spaces_of(cert.body.principal) {
                self.hub.publish_membership(s);
            }
        }
        Ok(())
    }

    /// Spaces where `principal` holds any role.
    fn spaces_of(&self, principal: PrincipalId) -> Vec<SpaceId> {
        self.memberships
            .read()
            .expect("membership lock")
            .values()
            .filter(|m| authorize(m, principal, Need::AnyRole).is_ok())
            .map(Membership::space)
            .collect()
    }

    fn membership(&self, space: SpaceId) -> Result<Membership, WireError> {
        self.memberships
            .read()
            .expect("membership lock")
            .get(&space)
            .cloned()
            .ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, format!("no space {}", space.short()))
            })
    }

    async fn authorize(
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
        if self.misbehaviour.skip_access_check {
            return Ok(m);
        }
        if self.closed.read().expect("closed lock").contains(&space) {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!(
                    "space {} is closed (F1.6): archived and refused to everyone; its person may reopen it (mes enrol reopen)",
                    space.short()
                ),
            ));
        }
        if self.blocked(&m, who).await? {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("{who:?} is blocked by the person whose space it is"),
            ));
        }
        self.refuse_suspended(who)?;
        // Lapsed grants open nothing (F9.2).
        match authorize(&m.at(mes_protocol::time::UnixMillis::now()), who, need) {
            Ok(_) => Ok(m),
            // A live emergency release opens the emergency volume, and only it.
            Err(e) => match need {
                Need::AnyRole if self.release(space, who).await?.is_some() => Ok(m),
                Need::Read(v)
                    if m.volume(v).is_some_and(|d| d.label == ESCROWED_LABEL)
                        && self.release(space, who).await?.is_some() =>
                {
                    Ok(m)
                }
                _ => Err(e),
            },
        }
    }

    /// Whether the person blocked this principal, directly or through the structure the
    /// directory lists them under (F7.2). The owner is never blocked.
    async fn blocked(&self, m: &Membership, who: PrincipalId) -> Result<bool, WireError> {
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
    fn attending_policy(&self, m: &Membership) -> AttendingPolicy {
        m.choices
            .as_ref()
            .and_then(|c| c.body.policy)
            .unwrap_or(self.policy.attending)
    }

    /// The live emergency release of a principal on a space, if any.
    async fn release(
        &self,
        space: SpaceId,
        who: PrincipalId,
    ) -> Result<Option<EscrowMode>, WireError> {
        let key = [space.0.as_slice(), who.0.as_slice()].concat();
        let Some(v) = self
            .store
            .get_record(RecordKind::Release, &key)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let (mode, until): (EscrowMode, u64) =
            codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string())))?;
        Ok((mes_protocol::time::UnixMillis::now().0 < until).then_some(mode))
    }

    /// The spaces whose emergency volume is released to `who` now (one scan of the
    /// releases, whatever the number of spaces).
    async fn released_to(
        &self,
        who: PrincipalId,
    ) -> Result<std::collections::HashSet<SpaceId>, WireError> {
        let now = mes_protocol::time::UnixMillis::now().0;
        let mut out = std::collections::HashSet::new();
        for (k, v) in self
            .store
            .scan_records(RecordKind::Release, &[])
            .await
            .map_err(internal)?
        {
            if k.len() != 48 || k[16..] != who.0 {
                continue;
            }
            let (_, until): (EscrowMode, u64) =
                codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string())))?;
            if now < until {
                out.insert(SpaceId(k[..16].try_into().expect("16 bytes")));
            }
        }
        Ok(out)
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
            mes_protocol::authority::CourtRemoval {
                space,
                principal,
                reference: reference.trim().to_string(),
                recorded_at: mes_protocol::time::UnixMillis::now(),
            },
            &self.key,
        );
        m.remove_by_court(removal, self.public_key())
            .map_err(bad_record)?;
        self.save_membership(m).await
    }

    /// The relay's public signing key.
    pub fn public_key(&self) -> PrincipalId {
        PrincipalId(self.key.public())
    }

    /// How many spaces the relay knows.
    pub fn space_count(&self) -> usize {
        self.memberships.read().expect("membership lock").len()
    }

    /// Whether the store answers a read (the `/health` check).
    pub async fn health(&self) -> Result<(), StoreError> {
        self.store
            .get_record(RecordKind::Membership, b"health-check")
            .await
            .map(|_| ())
    }

    /// How many requests were refused since start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn save_membership(&self, m: Membership) -> Result<(), WireError> {
        self.store
            .put_record(
                RecordKind::Membership,
                m.space().0.to_vec(),
                codec::to_bytes(&m),
            )
            .await
            .map_err(internal)?;
        self.membership_changed(m.clone());
        self.list_first_devices_of(&m).await?;
        self.recheck_subscriptions(&m).await
    }

    /// Ends the subscriptions a membership change took away (a consent withdrawn, a
    /// block placed, a grant lapsed): pushes stop at once, not at the next reconnect
    /// (issue 22, finding 10). A live emergency release keeps the emergency volume's.
    async fn recheck_subscriptions(&self, m: &Membership) -> Result<(), WireError> {
        let now = mes_protocol::time::UnixMillis::now();
        let current = m.at(now);
        for (volume, who, out) in self.hub.subscriptions_of(m.space()) {
            let readable = authorize(&current, who, Need::Read(volume)).is_ok()
                && !self.blocked(m, who).await?;
            let released = !readable
                && m.volume(volume).is_some_and(|d| d.label == ESCROWED_LABEL)
                && self.release(m.space(), who).await?.is_some();
            if !readable && !released {
                self.hub.unsubscribe(volume, &out);
            }
        }
        Ok(())
    }

    /// Refreshes a cached record another instance changed (a shared backend's hook).
    async fn reload_cached(&self, kind: RecordKind, key: Vec<u8>) -> Result<(), StoreError> {
        let value = self.store.get_record(kind, &key).await?;
        match kind {
            RecordKind::Membership => {
                if let Some(v) = value {
                    let m: Membership = codec::from_bytes(&v)
                        .map_err(|e| StoreError(format!("stored membership: {e}")))?;
                    self.membership_changed(m.clone());
                    self.recheck_subscriptions(&m)
                        .await
                        .map_err(|e| StoreError(e.to_string()))?;
                }
            }
            RecordKind::Catalogue => {
                if let Some(v) = value {
                    let e: Signed<CatalogueEntry> = codec::from_bytes(&v)
                        .map_err(|e| StoreError(format!("stored catalogue entry: {e}")))?;
                    self.catalogue
                        .write()
                        .expect("catalogue lock")
                        .insert(e.body.service.principal, e);
                }
            }
            RecordKind::Closed => {
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
    fn membership_changed(&self, m: Membership) {
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
        self.hub.publish_membership(space);
        for p in members {
            self.hub
                .publish_to_principal(p, mes_protocol::wire::Push::MembershipChanged { space });
        }
    }

    async fn is_revoked(&self, device: DeviceId) -> Result<bool, WireError> {
        Ok(self
            .store
            .get_record(RecordKind::Revocation, &device.0)
            .await
            .map_err(internal)?
            .is_some())
    }

    /// Live device certificates of a principal.
    pub async fn devices_of(&self, principal: PrincipalId) -> Result<Vec<DeviceCert>, WireError> {
        let mut out = Vec::new();
        for (_, v) in self
            .store
            .scan_records(RecordKind::Device, &principal.0)
            .await
            .map_err(internal)?
        {
            let cert: DeviceCert =
                codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string())))?;
            if !self.is_revoked(cert.body.device).await? {
                out.push(cert);
            }
        }
        Ok(out)
    }

    /// Binding, author and generation checked, and the author's signature.
    fn check_bundle(
        &self,
        b: &SealedBundle,
        space: SpaceId,
        volume: VolumeId,
        caller: &Caller,
        m: &Membership,
    ) -> Result<(), WireError> {
        self.check_binding(b, space, volume, caller, m)?;
        b.verify_author().map_err(bad_record)
    }

    /// Binding, author and generation checked (signatures are checked apart, in batch).
    fn check_binding(
        &self,
        b: &SealedBundle,
        space: SpaceId,
        volume: VolumeId,
        caller: &Caller,
        m: &Membership,
    ) -> Result<(), WireError> {
        let h = &b.header;
        if h.suite == mes_protocol::seal::CipherSuite::Null && !self.misbehaviour.accept_null_cipher
        {
            return Err(bad_record(
                "bundle sealed with the null cipher: this relay stores ciphertext only",
            ));
        }
        if h.space != space || h.volume != volume {
            return Err(bad_record(format!(
                "bundle is bound to {}/{}, not {}/{}",
                h.space.short(),
                h.volume.short(),
                space.short(),
                volume.short()
            )));
        }
        if h.author != caller.device {
            return Err(bad_record(format!(
                "bundle author {} is not the connected device",
                h.author.short()
            )));
        }
        let current = m.volume(volume).map(|d| d.generation).unwrap_or_default();
        if h.generation != current {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "volume {} is at generation {}, bundle is for {}",
                    volume.short(),
                    current.0,
                    h.generation.0
                ),
            ));
        }
        Ok(())
    }

    /// Handles one request from an authenticated caller; every refusal is logged (and
    /// counted, [`Relay::refusals`]).
    pub async fn handle(&self, caller: &Caller, req: Request) -> Result<Reply, WireError> {
        let kind = mes_protocol::wire::RequestKind::from(&req);
        let what: &'static str = kind.into();
        // A first device is listed before a request whose handler needs it, otherwise
        // once a request succeeded: a stranger who only knocks, reads what anyone may or
        // is refused leaves nothing durable (finding 6).
        let mut outcome = if lists_first(kind) {
            match self.list_pending_first_device(caller).await {
                Ok(()) => self.handle_inner(caller, req).await,
                Err(e) => Err(e),
            }
        } else {
            self.handle_inner(caller, req).await
        };
        if let Ok(reply) = &outcome {
            let found = matches!(reply, Reply::Spaces { spaces } if !spaces.is_empty());
            if !stateless(kind) || found {
                if let Err(e) = self.list_pending_first_device(caller).await {
                    outcome = Err(e);
                }
            }
        }
        self.metrics.request(
            what,
            outcome
                .as_ref()
                .err()
                .map(|e| format!("{:?}", e.code))
                .as_deref(),
        );
        if let Err(e) = &outcome {
            self.refusals
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(
                principal = %caller.principal.short(),
                device = %caller.device.short(),
                request = what,
                "refused: {e}"
            );
        }
        outcome
    }

    async fn handle_inner(&self, caller: &Caller, req: Request) -> Result<Reply, WireError> {
        if self.is_revoked(caller.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                "this device was revoked by its principal",
            ));
        }
        match req {
            Request::RegisterSpace { genesis } => {
                if genesis.body.owner != caller.principal {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        "a space can only be registered by its owner",
                    ));
                }
                let space = genesis.body.space;
                let lock = self.membership_lock(space);
                let _one_writer = lock.lock().await;
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
            Request::DeclareVolume { decl } => {
                let lock = self.membership_lock(decl.body.space);
                let _one_writer = lock.lock().await;
                let mut m = self
                    .authorize(decl.body.space, caller.principal, Need::Admin)
                    .await?;
                if m.volumes.get(&decl.body.volume) == Some(&decl) {
                    return Ok(Reply::Done);
                }
                if self.misbehaviour.accept_any_declaration {
                    m.volumes.insert(decl.body.volume, decl.clone());
                } else {
                    m.declare(decl.clone()).map_err(bad_record)?;
                }
                if !self.misbehaviour.skip_volume_binding {
                    self.bind_volume(decl.body.space, decl.body.volume).await?;
                }
                self.save_membership(m).await?;
                Ok(Reply::Done)
            }
            Request::PutGrant { grant } => {
                let lock = self.membership_lock(grant.body.space);
                let _one_writer = lock.lock().await;
                let mut m = self
                    .authorize(grant.body.space, caller.principal, Need::Admin)
                    .await?;
                if !self.misbehaviour.skip_matrix_check {
                    self.check_matrix(&m, &grant.body).await?;
                }
                m.grant(grant).map_err(bad_record)?;
                self.save_membership(m).await?;
                Ok(Reply::Done)
            }
            Request::RevokeDevice { revocation } => self.revoke(caller, revocation).await,
            Request::ListDevice { cert } => {
                cert.verify().map_err(bad_record)?;
                if cert.body.principal != caller.principal {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        "a device lists devices of its own person only",
                    ));
                }
                self.list_device(&cert).await?;
                Ok(Reply::Done)
            }
            Request::SetAdmissionKey { key } => {
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
                        RecordKind::AdmissionKey,
                        caller.principal.0.to_vec(),
                        key.0.to_vec(),
                    )
                    .await
                    .map_err(internal)?;
                Ok(Reply::Done)
            }
            Request::GetMembership { space } => {
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
            Request::ListSpaces => {
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
            Request::Append {
                space,
                volume,
                bundles,
            } => {
                let lock = self.volume_lock(volume);
                let _shared = lock.read().await;
                let m = self
                    .authorize(space, caller.principal, Need::Write(volume))
                    .await?;
                if bundles.is_empty() || bundles.len() > MAX_APPEND_BUNDLES {
                    return Err(WireError::new(
                        ErrorCode::BadFrame,
                        format!(
                            "append carries {} bundles; 1 to {MAX_APPEND_BUNDLES} allowed",
                            bundles.len()
                        ),
                    ));
                }
                for b in &bundles {
                    self.check_binding(b, space, volume, caller, &m)?;
                }
                // Signatures in one batch, one per author chain (a device back from a
                // week offline uploads thousands at once), with the other appends
                // arriving at the same moment (docs/benchmarks.md, `ingest`).
                self.verify_authors(&bundles).await?;
                let mut encoded: Vec<Vec<u8>> = bundles.iter().map(codec::to_bytes).collect();
                if let Some(n) = self.misbehaviour.drop_bundle {
                    let before = self
                        .misbehaviour
                        .appended
                        .fetch_add(encoded.len() as u64, std::sync::atomic::Ordering::SeqCst);
                    if (before + 1..=before + encoded.len() as u64).contains(&n) {
                        encoded.remove((n - before - 1) as usize);
                        self.misbehaviour
                            .dropped
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if encoded.is_empty() {
                            let head = self.store.head(volume).await.map_err(internal)?;
                            return Ok(Reply::Appended {
                                first: head.next(),
                                last: head,
                            });
                        }
                    }
                }
                let (first, last) = self.store.append(volume, encoded).await.map_err(internal)?;
                Ok(Reply::Appended { first, last })
            }
            Request::NewGeneration {
                decl,
                after,
                snapshot,
            } => self.new_generation(caller, decl, after, snapshot).await,
            Request::Fetch {
                space,
                volume,
                after,
                max,
            } => {
                let m = self
                    .authorize(space, caller.principal, Need::Read(volume))
                    .await?;
                let r = self
                    .store
                    .read(volume, after, max.clamp(1, MAX_FETCH) as usize)
                    .await
                    .map_err(internal)?;
                if !r.items.is_empty() {
                    self.record_volume_access(&m, caller, volume).await?;
                }
                let mut items = Vec::with_capacity(r.items.len());
                for (seq, bytes) in r.items {
                    let b: SealedBundle = codec::from_bytes(&bytes)
                        .map_err(|e| internal(StoreError(e.to_string())))?;
                    items.push((seq, b));
                }
                Ok(Reply::Bundles {
                    items,
                    head: r.head,
                    pruned_upto: r.pruned_upto,
                })
            }
            Request::PutSnapshot {
                space,
                volume,
                upto,
                snapshot,
                prune,
            } => {
                // A snapshot replaces what fresh devices load and may prune the log:
                // the space's owner or an admin only, never a writer alone (finding 1).
                self.authorize(space, caller.principal, Need::Admin).await?;
                let m = self
                    .authorize(space, caller.principal, Need::Write(volume))
                    .await?;
                self.check_bundle(&snapshot, space, volume, caller, &m)?;
                let head = self.store.head(volume).await.map_err(internal)?;
                if upto > head {
                    return Err(WireError::new(
                        ErrorCode::Conflict,
                        format!("snapshot claims seq {upto}, the log is at {head}"),
                    ));
                }
                self.store
                    .put_snapshot(volume, upto, codec::to_bytes(&snapshot), prune)
                    .await
                    .map_err(internal)?;
                Ok(Reply::Done)
            }
            Request::GetSnapshot { space, volume } => {
                let m = self
                    .authorize(space, caller.principal, Need::Read(volume))
                    .await?;
                match self.store.get_snapshot(volume).await.map_err(internal)? {
                    Some((upto, bytes)) => {
                        self.record_volume_access(&m, caller, volume).await?;
                        let snapshot = codec::from_bytes(&bytes)
                            .map_err(|e| internal(StoreError(e.to_string())))?;
                        Ok(Reply::Snapshot { upto, snapshot })
                    }
                    None => Ok(Reply::NoSnapshot),
                }
            }
            Request::Subscribe { space, volumes } => {
                for v in &volumes {
                    self.authorize(space, caller.principal, Need::Read(*v))
                        .await?;
                }
                for v in volumes {
                    self.hub.subscribe(space, v, &caller.outbox);
                    let head = self.store.head(v).await.map_err(internal)?;
                    if head > Seq(0) {
                        caller.outbox.head(space, v, head);
                    }
                }
                Ok(Reply::Done)
            }
            Request::PutEnvelopes { envelopes } => {
                // Envelopes for a device revoked since the admin listed the devices are
                // dropped: revocation wins that race; anything else wrong is refused.
                let mut live = Vec::with_capacity(envelopes.len());
                for e in envelopes {
                    if !self.is_revoked(e.recipient).await? {
                        live.push(e);
                    }
                }
                let envelopes = live;
                let checked = if self.misbehaviour.accept_any_envelope {
                    &[][..]
                } else {
                    &envelopes[..]
                };
                for e in checked {
                    let m = self
                        .authorize(e.slot.space, caller.principal, Need::Admin)
                        .await?;
                    // Only the owner chooses a private volume's keys (F9.1).
                    if m.is_private(e.slot.volume) && caller.principal != m.owner() {
                        return Err(WireError::new(
                            ErrorCode::Forbidden,
                            "only the owner wraps the keys of a private volume",
                        ));
                    }
                    if e.recipient == mes_protocol::recovery::recovery_device(m.owner()) {
                        continue;
                    }
                    if let Some(mode) = EscrowMode::of_device(e.recipient) {
                        let label = m.volume(e.slot.volume).map(|d| d.label.as_str());
                        if label != Some(ESCROWED_LABEL) {
                            return Err(WireError::new(
                                ErrorCode::Forbidden,
                                format!(
                                    "only the emergency volume is escrowed, not {}",
                                    label.unwrap_or("an unknown volume")
                                ),
                            ));
                        }
                        if m.refuses(mode) {
                            return Err(WireError::new(
                                ErrorCode::Forbidden,
                                format!("the person refused {} access", mode.name()),
                            ));
                        }
                        continue;
                    }
                    let cert = self.live_cert(e.recipient).await?;
                    let now = mes_protocol::time::UnixMillis::now();
                    authorize(&m.at(now), cert.body.principal, Need::Read(e.slot.volume)).map_err(
                        |err| {
                            WireError::new(
                                ErrorCode::Forbidden,
                                format!(
                                    "envelope recipient {} may not read: {}",
                                    e.recipient.short(),
                                    err.message
                                ),
                            )
                        },
                    )?;
                }
                let mut spaces = Vec::new();
                for e in envelopes {
                    let key = envelope_key(e.slot.space, e.recipient, &codec::to_bytes(&e.slot));
                    self.store
                        .put_record(RecordKind::Envelope, key, codec::to_bytes(&e))
                        .await
                        .map_err(internal)?;
                    if !spaces.contains(&e.slot.space) {
                        spaces.push(e.slot.space);
                    }
                }
                // Recipients learn that keys are waiting for them.
                for s in spaces {
                    self.hub.publish_membership(s);
                }
                Ok(Reply::Done)
            }
            Request::GetEnvelopes { space } => {
                self.authorize(space, caller.principal, Need::AnyRole)
                    .await?;
                Ok(Reply::Envelopes {
                    envelopes: self.envelopes_for(space, caller.device).await?,
                })
            }
            Request::ListDevices { principal } => {
                if principal != caller.principal {
                    let shares = self
                        .memberships
                        .read()
                        .expect("membership lock")
                        .values()
                        .any(|m| {
                            authorize(m, caller.principal, Need::Admin).is_ok()
                                && authorize(m, principal, Need::AnyRole).is_ok()
                        });
                    if !shares {
                        return Err(WireError::new(ErrorCode::Forbidden, "devices are listed only for yourself or members of a space you administer"));
                    }
                }
                Ok(Reply::Devices {
                    certs: self.devices_of(principal).await?,
                })
            }
            Request::PutBlobChunk {
                space,
                volume,
                blob,
                index,
                last,
                data,
            } => {
                // Finding 8: a file is uploaded for the volume whose entries reference it,
                // by someone who may write there.
                self.authorize(space, caller.principal, Need::Write(volume))
                    .await?;
                // A committed blob belongs to the space that committed it (finding 8): a
                // member of another space who learnt its id cannot claim it there.
                let committed_here = self.blob_bound_here(space, blob).await?;
                if data.len() > MAX_BLOB_CHUNK {
                    return Err(WireError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "blob chunk of {} bytes, the limit is {MAX_BLOB_CHUNK}",
                            data.len()
                        ),
                    ));
                }
                if index as usize >= crate::defaults::MAX_BLOB_CHUNKS {
                    return Err(WireError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "chunk {index}: a file has at most {} chunks",
                            crate::defaults::MAX_BLOB_CHUNKS
                        ),
                    ));
                }
                if !committed_here {
                    self.reserve_chunk(space, blob, index).await?;
                }
                self.store
                    .put_blob_chunk(&blob.0, index, &data)
                    .await
                    .map_err(internal)?;
                if last {
                    if !self
                        .store
                        .commit_blob(blob.0, index + 1)
                        .await
                        .map_err(internal)?
                    {
                        return Err(bad_record(format!(
                            "blob {} does not match its hash or misses chunks",
                            blob.short()
                        )));
                    }
                    self.bind_blob(space, blob).await?;
                    // Bound to its volume before it counts as committed here (read by
                    // `blob_committed_in`): no moment where it is committed and bound to
                    // no volume, which reads as a file from before bindings.
                    self.bind_blob_to_volume(space, volume, blob).await?;
                    let size = crate::file_quota::chunk_bytes(index) + data.len() as u64;
                    self.upload_committed(space, blob, index + 1, size).await?;
                }
                Ok(Reply::Done)
            }
            Request::BindBlob {
                space,
                volume,
                blob,
            } => {
                let m = self.authorize(space, caller.principal, Need::Admin).await?;
                if m.volume(volume).is_none() {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no volume {} in space {}", volume.short(), space.short()),
                    ));
                }
                if !self.blob_committed_in(space, blob).await? {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no blob {} in space {}", blob.short(), space.short()),
                    ));
                }
                self.bind_blob_to_volume(space, volume, blob).await?;
                Ok(Reply::Done)
            }
            Request::GetBlobChunk {
                space,
                volume,
                blob,
                index,
            } => {
                let m = self
                    .authorize(space, caller.principal, Need::Read(volume))
                    .await?;
                if !self.blob_committed_in(space, blob).await? {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no blob {} in space {}", blob.short(), space.short()),
                    ));
                }
                // Finding 8: read only through a volume the file is bound to. A file
                // committed before bindings existed (bound to none) stays readable by any
                // member, as it was.
                if !self.misbehaviour.skip_access_check
                    && !self.blob_readable_through(space, volume, blob).await?
                {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!(
                            "blob {} is not referenced by volume {}",
                            blob.short(),
                            volume.short()
                        ),
                    ));
                }
                match self
                    .store
                    .get_blob_chunk(&blob.0, index)
                    .await
                    .map_err(internal)?
                {
                    Some((data, last)) => {
                        // One entry per read of the file: at its first chunk, or at
                        // whichever chunk a connection starts a file it was not logged
                        // for lately (a reader skipping chunk 0 is logged too, finding 8).
                        if caller.blob_reads.starts_read(blob, index) {
                            self.record_access(&m, caller, AccessTarget::Blob { blob })
                                .await?;
                        }
                        Ok(Reply::BlobChunk { data, last })
                    }
                    None => Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("blob {} has no chunk {index}", blob.short()),
                    )),
                }
            }
            Request::PutChoices { choices } => {
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
                        .scan_records(RecordKind::Envelope, &prefix)
                        .await
                        .map_err(internal)?
                    {
                        self.store
                            .remove_record(RecordKind::Envelope, k)
                            .await
                            .map_err(internal)?;
                    }
                }
                self.save_membership(m).await?;
                Ok(Reply::Done)
            }
            Request::HandOver { handover } => {
                let space = handover.body.space;
                let lock = self.membership_lock(space);
                let _one_writer = lock.lock().await;
                let mut m = self.membership(space)?;
                owner_only(&m, caller.principal, "hands it over")?;
                m.hand_over(handover).map_err(bad_record)?;
                self.save_membership(m).await?;
                Ok(Reply::Done)
            }
            Request::Enrol { request } => self.enrol(caller, request).await,
            Request::GetCatalogue => {
                let mut entries = self.catalogue_entries();
                if self.misbehaviour.unsuspend_catalogue {
                    for e in &mut entries {
                        e.body.suspended = None;
                    }
                }
                Ok(Reply::Catalogue { entries })
            }
            Request::GetRecoveryEnvelopes { space } => {
                let m = self.membership(space)?;
                owner_only(&m, caller.principal, "reads the recovery envelopes")?;
                Ok(Reply::Envelopes {
                    envelopes: self
                        .envelopes_for(space, mes_protocol::recovery::recovery_device(m.owner()))
                        .await?,
                })
            }
            Request::GetHubInfo => Ok(Reply::HubInfo {
                centre15: self.escrow.recipient(EscrowMode::Centre15),
                break_glass: self.escrow.recipient(EscrowMode::BreakGlass),
                attending_policy: self.policy.attending,
            }),
            Request::EmergencyAccess { space, mode } => {
                self.emergency_access(caller, space, mode).await
            }
            Request::GetHistory { space, after } => {
                self.authorize(space, caller.principal, Need::Admin).await?;
                let entries = if self.misbehaviour.fork_history_for == Some(caller.device) {
                    self.history.forked(&self.key, space, after).await
                } else {
                    self.history.after(space, after, MAX_HISTORY).await
                }
                .map_err(internal)?;
                Ok(Reply::History { entries })
            }
            Request::ListStructure { structure } => {
                // One structure's index lines, then each listed entry (finding 6).
                let prefix = [b"s".as_slice(), structure.as_bytes(), &[0]].concat();
                let mut entries = Vec::new();
                for (_, v) in self
                    .store
                    .scan_records(RecordKind::Directory, &prefix)
                    .await
                    .map_err(internal)?
                {
                    let Ok(p) = <[u8; 32]>::try_from(v.as_slice()) else {
                        continue;
                    };
                    if let Some(e) = self.professional(PrincipalId(p)).await? {
                        if e.body.professional.structure.as_deref() == Some(structure.as_str()) {
                            entries.push(e);
                        }
                    }
                }
                Ok(Reply::Professionals { entries })
            }
            Request::FindProfessional { rpps } => {
                let rpps = Rpps::parse(&rpps)
                    .map_err(|e| WireError::new(ErrorCode::BadRecord, e.to_string()))?;
                let principal = self
                    .store
                    .get_record(RecordKind::Directory, &rpps_key(&rpps))
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        WireError::new(
                            ErrorCode::NotFound,
                            format!("no professional with RPPS {rpps} in the directory"),
                        )
                    })?;
                let principal =
                    PrincipalId(principal.as_slice().try_into().map_err(|_| {
                        internal(StoreError("directory index holds a bad key".into()))
                    })?);
                let entry = self.professional(principal).await?.ok_or_else(|| {
                    internal(StoreError(format!(
                        "directory index names {principal:?} but no entry"
                    )))
                })?;
                Ok(Reply::Professional { entry })
            }
            Request::PairOpen { rendezvous } => {
                self.hub.join_rendezvous(rendezvous, &caller.outbox)?;
                Ok(Reply::Done)
            }
            Request::PairSend { rendezvous, body } => {
                if !caller.outbox.count_pairing_message() {
                    return Err(WireError::new(
                        ErrorCode::Busy,
                        format!(
                            "a connection sends at most {} pairing messages",
                            crate::defaults::MAX_PAIRING_MESSAGES_PER_CONNECTION
                        ),
                    ));
                }
                if body.len() > crate::defaults::MAX_PAIRING_MESSAGE {
                    return Err(WireError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "a pairing message is at most {} bytes; this one is {}",
                            crate::defaults::MAX_PAIRING_MESSAGE,
                            body.len()
                        ),
                    ));
                }
                let body = if self.misbehaviour.tamper_pairing {
                    self.tamper(body)
                } else {
                    body
                };
                self.hub.forward_pairing(rendezvous, &caller.outbox, body);
                Ok(Reply::Done)
            }
        }
    }

    /// Checks the author signatures an append needs, batched with the concurrent appends'
    /// checks; names the first bad bundle.
    async fn verify_authors(&self, bundles: &[SealedBundle]) -> Result<(), WireError> {
        let (index, checks): (Vec<usize>, Vec<mes_protocol::keys::Check>) =
            SealedBundle::author_checks(bundles).into_iter().unzip();
        let held = self
            .signatures
            .run(checks, |all: Vec<Vec<mes_protocol::keys::Check>>| {
                let flat: Vec<mes_protocol::keys::Check> = all.iter().flatten().cloned().collect();
                let mut ok = mes_protocol::keys::verify_checks(&flat).into_iter();
                all.iter()
                    .map(|c| ok.by_ref().take(c.len()).collect())
                    .collect()
            })
            .await;
        match held.iter().position(|ok| !ok) {
            Some(k) => Err(bad_record(format!(
                "bundle {} of the append: {}",
                index[k],
                mes_protocol::keys::SignatureError::Mismatch { what: "bundle" }
            ))),
            None => Ok(()),
        }
    }

    /// Binds a volume id to its space for ever (issue 22, finding 1): the log, heads and
    /// snapshots are keyed by volume id, so an id another space declared is refused, and
    /// a space may declare its own id again. The binding is durable and outlives the
    /// space's deletion; ids are drawn at random by their owner's device, so two spaces
    /// never legitimately race for one.
    async fn bind_volume(&self, space: SpaceId, volume: VolumeId) -> Result<(), WireError> {
        let _one_binding = self.binding_lock.lock().await;
        let bound = self
            .store
            .get_record(RecordKind::VolumeSpace, &volume.0)
            .await
            .map_err(internal)?;
        match bound {
            Some(owner) if owner.as_slice() == space.0.as_slice() => Ok(()),
            Some(_) => Err(volume_taken(volume)),
            None => self
                .store
                .put_record(RecordKind::VolumeSpace, volume.0.to_vec(), space.0.to_vec())
                .await
                .map_err(internal),
        }
    }

    /// Whether the one-time backfill of an index kind was done (its marker key, which no
    /// id of 16 or 32 bytes can be).
    /// Indexes the directory by structure once, for directories imported before the
    /// index existed.
    async fn backfill_structure_index(&self) -> Result<(), StoreError> {
        if self.backfilled(RecordKind::Directory).await? {
            return Ok(());
        }
        for (_, v) in self.store.scan_records(RecordKind::Directory, b"p").await? {
            let e: Signed<DirectoryEntry> =
                codec::from_bytes(&v).map_err(|e| StoreError(e.to_string()))?;
            if let Some(structure) = &e.body.professional.structure {
                self.store
                    .put_record(
                        RecordKind::Directory,
                        structure_key(structure, e.body.principal),
                        e.body.principal.0.to_vec(),
                    )
                    .await?;
            }
        }
        self.mark_backfilled(RecordKind::Directory).await
    }

    async fn backfilled(&self, kind: RecordKind) -> Result<bool, StoreError> {
        Ok(self.store.get_record(kind, BACKFILLED).await?.is_some())
    }

    async fn mark_backfilled(&self, kind: RecordKind) -> Result<(), StoreError> {
        self.store
            .put_record(kind, BACKFILLED.to_vec(), Vec::new())
            .await
    }

    /// Records the binding of every declared volume once, for stores written before
    /// bindings existed; a volume two spaces declared is bound to neither and logged.
    async fn backfill_volume_bindings(&self) -> Result<(), StoreError> {
        if self.backfilled(RecordKind::VolumeSpace).await? {
            return Ok(());
        }
        let mut owners: HashMap<VolumeId, Vec<SpaceId>> = HashMap::new();
        for m in self.memberships.read().expect("membership lock").values() {
            for v in m.volumes.keys() {
                owners.entry(*v).or_default().push(m.space());
            }
        }
        for (volume, spaces) in owners {
            // A volume two spaces declared is bound to no space (an empty owner): every
            // further declaration of it is refused.
            let owner = match spaces[..] {
                [space] => space.0.to_vec(),
                _ => {
                    tracing::error!(
                        "volume {} is declared by {} spaces; every further declaration is refused",
                        volume.short(),
                        spaces.len()
                    );
                    Vec::new()
                }
            };
            self.store
                .put_record(RecordKind::VolumeSpace, volume.0.to_vec(), owner)
                .await?;
        }
        self.mark_backfilled(RecordKind::VolumeSpace).await
    }

    /// Binds blobs committed before bindings existed to the one space that holds each.
    async fn backfill_blob_bindings(&self) -> Result<(), StoreError> {
        if self.backfilled(RecordKind::BlobSpace).await? {
            return Ok(());
        }
        let mut blob_spaces: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        for (k, _) in self.store.scan_records(RecordKind::BlobOwner, &[]).await? {
            if k.len() == 48 {
                blob_spaces
                    .entry(k[16..].to_vec())
                    .or_default()
                    .push(k[..16].to_vec());
            }
        }
        for (blob, spaces) in blob_spaces {
            if let [space] = &spaces[..] {
                self.store
                    .put_record(RecordKind::BlobSpace, blob, space.clone())
                    .await?;
            }
        }
        self.mark_backfilled(RecordKind::BlobSpace).await
    }

    /// Refuses a blob id another space committed (issue 22, finding 8).
    /// Refuses a blob committed by another space; says whether `space` committed it.
    async fn blob_bound_here(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        if self.misbehaviour.skip_blob_binding {
            return Ok(false);
        }
        match self
            .store
            .get_record(RecordKind::BlobSpace, &blob.0)
            .await
            .map_err(internal)?
        {
            Some(owner) if owner.as_slice() != space.0.as_slice() => Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "blob {} belongs to another space; a blob is bound to the space that committed it",
                    blob.short()
                ),
            )),
            owner => Ok(owner.is_some()),
        }
    }

    /// Whether `blob` was committed for `space`.
    async fn blob_committed_in(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        let key = [space.0.as_slice(), blob.0.as_slice()].concat();
        Ok(self
            .store
            .get_record(RecordKind::BlobOwner, &key)
            .await
            .map_err(internal)?
            .is_some())
    }

    /// Binds a committed blob to a volume of its space (finding 8).
    async fn bind_blob_to_volume(
        &self,
        space: SpaceId,
        volume: VolumeId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<(), WireError> {
        let key = [space.0.as_slice(), blob.0.as_slice(), volume.0.as_slice()].concat();
        self.store
            .put_record(RecordKind::BlobVolume, key, Vec::new())
            .await
            .map_err(internal)
    }

    /// Whether a blob of `space` may be read through `volume`: bound to it (one read, the
    /// path of every chunk), or bound to no volume at all (committed before bindings
    /// existed: a prefix scan, only when the first read missed).
    async fn blob_readable_through(
        &self,
        space: SpaceId,
        volume: VolumeId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<bool, WireError> {
        let prefix = [space.0.as_slice(), blob.0.as_slice()].concat();
        let key = [prefix.as_slice(), volume.0.as_slice()].concat();
        if self
            .store
            .get_record(RecordKind::BlobVolume, &key)
            .await
            .map_err(internal)?
            .is_some()
        {
            return Ok(true);
        }
        Ok(self
            .store
            .scan_records(RecordKind::BlobVolume, &prefix)
            .await
            .map_err(internal)?
            .is_empty())
    }

    /// Binds a committed blob to its space for ever (first commit wins).
    async fn bind_blob(
        &self,
        space: SpaceId,
        blob: mes_protocol::ids::BlobId,
    ) -> Result<(), WireError> {
        let _one_binding = self.binding_lock.lock().await;
        self.blob_bound_here(space, blob).await?;
        self.store
            .put_record(RecordKind::BlobSpace, blob.0.to_vec(), space.0.to_vec())
            .await
            .map_err(internal)
    }

    /// The deployment's policies.
    pub(crate) fn policy(&self) -> &HubPolicy {
        &self.policy
    }

    fn membership_lock(&self, space: SpaceId) -> Arc<tokio::sync::Mutex<()>> {
        self.membership_locks.get(space)
    }

    fn volume_lock(&self, volume: VolumeId) -> Arc<tokio::sync::RwLock<()>> {
        self.volume_locks.get(volume)
    }

    async fn new_generation(
        &self,
        caller: &Caller,
        decl: Signed<mes_protocol::membership::VolumeDecl>,
        after: Seq,
        snapshot: SealedBundle,
    ) -> Result<Reply, WireError> {
        let (space, volume) = (decl.body.space, decl.body.volume);
        let lock = self.volume_lock(volume);
        let _alone = lock.write().await;
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        let mut m = self.authorize(space, caller.principal, Need::Admin).await?;
        let current = m
            .volume(volume)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::NotFound,
                    format!("no volume {} in space {}", volume.short(), space.short()),
                )
            })?
            .generation;
        if decl.body.generation.0 != current.0 + 1 {
            return Err(bad_record(format!(
                "volume {} is at generation {}; the next is {}, not {}",
                volume.short(),
                current.0,
                current.0 + 1,
                decl.body.generation.0
            )));
        }
        let head = self.store.head(volume).await.map_err(internal)?;
        if head != after {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "the log of volume {} moved to {} past the snapshot's {}; sync and retry",
                    volume.short(),
                    head.0,
                    after.0
                ),
            ));
        }
        m.declare(decl).map_err(bad_record)?;
        self.check_bundle(&snapshot, space, volume, caller, &m)?;
        self.save_membership(m).await?;
        let bytes = codec::to_bytes(&snapshot);
        let (first, last) = self
            .store
            .append(volume, vec![bytes.clone()])
            .await
            .map_err(internal)?;
        self.store
            .put_snapshot(volume, last, bytes, true)
            .await
            .map_err(internal)?;
        Ok(Reply::Appended { first, last })
    }

    async fn live_cert(&self, device: DeviceId) -> Result<DeviceCert, WireError> {
        if self.is_revoked(device).await? {
            // `Revoked` is kept for "you, the caller, are revoked"; this is about another device.
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("device {} is revoked", device.short()),
            ));
        }
        // A device that joined a person through pairing has a newer certificate under that
        // person's principal; the newest certificate is the device's current one, kept by
        // device id when it is listed (no scan of every device, finding 6).
        match self.current_cert(device).await? {
            Some(cert) => Ok(cert),
            None => Err(WireError::new(
                ErrorCode::NotFound,
                format!("unknown device {}", device.short()),
            )),
        }
    }

    /// The newest certificate listed for a device.
    async fn current_cert(&self, device: DeviceId) -> Result<Option<DeviceCert>, WireError> {
        self.store
            .get_record(RecordKind::DeviceCurrent, &device.0)
            .await
            .map_err(internal)?
            .map(|v| codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string()))))
            .transpose()
    }

    /// Keeps `cert` as its device's current certificate if it is the newest.
    async fn note_current(&self, cert: &DeviceCert) -> Result<(), WireError> {
        let newer = self
            .current_cert(cert.body.device)
            .await?
            .is_none_or(|c| cert.body.issued_at > c.body.issued_at);
        if newer {
            self.store
                .put_record(
                    RecordKind::DeviceCurrent,
                    cert.body.device.0.to_vec(),
                    codec::to_bytes(cert),
                )
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    /// Indexes the current certificate of every device listed before the index existed.
    async fn backfill_current_certs(&self) -> Result<(), StoreError> {
        if self.backfilled(RecordKind::DeviceCurrent).await? {
            return Ok(());
        }
        let mut newest: HashMap<DeviceId, DeviceCert> = HashMap::new();
        for (_, v) in self.store.scan_records(RecordKind::Device, &[]).await? {
            let cert: DeviceCert =
                codec::from_bytes(&v).map_err(|e| StoreError(format!("stored device: {e}")))?;
            let e = newest
                .entry(cert.body.device)
                .or_insert_with(|| cert.clone());
            if cert.body.issued_at > e.body.issued_at {
                *e = cert;
            }
        }
        for (device, cert) in newest {
            self.store
                .put_record(
                    RecordKind::DeviceCurrent,
                    device.0.to_vec(),
                    codec::to_bytes(&cert),
                )
                .await?;
        }
        self.mark_backfilled(RecordKind::DeviceCurrent).await
    }

    async fn revoke(
        &self,
        caller: &Caller,
        revocation: Signed<DeviceRevocation>,
    ) -> Result<Reply, WireError> {
        revocation.verify().map_err(bad_record)?;
        if revocation.signer != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "a device can only be revoked by its own principal",
            ));
        }
        let cert = self.live_cert(revocation.body.device).await?;
        if cert.body.principal != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "that device belongs to another principal",
            ));
        }
        self.store
            .put_record(
                RecordKind::Revocation,
                revocation.body.device.0.to_vec(),
                codec::to_bytes(&revocation),
            )
            .await
            .map_err(internal)?;
        self.hub
            .revoke_device(caller.principal, revocation.body.device);
        for s in self.spaces_of(caller.principal) {
            self.hub.publish_membership(s);
        }
        Ok(Reply::Done)
    }

    /// Releases the escrowed emergency keys of a space to a listed professional's
    /// devices, for [`RELEASE_MILLIS`], unless the person refused the mode; the release
    /// is the first access history entry of the episode.
    async fn emergency_access(
        &self,
        caller: &Caller,
        space: SpaceId,
        mode: EscrowMode,
    ) -> Result<Reply, WireError> {
        let m = self.membership(space)?;
        if self.professional(caller.principal).await?.is_none() {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "emergency access is for professionals listed in the directory",
            ));
        }
        if m.refuses(mode) {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("the person refused {} access", mode.name()),
            ));
        }
        if self.blocked(&m, caller.principal).await? {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "this professional is blocked by the person whose space it is",
            ));
        }
        let emergency = m
            .volumes
            .values()
            .find(|d| d.body.label == ESCROWED_LABEL)
            .map(|d| d.body.volume)
            .ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, "this space has no emergency volume")
            })?;
        let escrowed = self.envelopes_for(space, mode.device()).await?;
        if escrowed.is_empty() {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no {} key escrowed for this space yet", mode.name()),
            ));
        }
        let devices = self.devices_of(caller.principal).await?;
        for e in escrowed {
            if e.slot.volume != emergency {
                continue;
            }
            let key = e
                .unwrap(self.escrow.secret(mode))
                .map_err(|err| internal(StoreError(err.to_string())))?;
            for cert in &devices {
                let wrapped = mes_protocol::envelope::KeyEnvelope::wrap(
                    e.slot,
                    &key,
                    cert.body.device,
                    &cert.body.recipient,
                    &self.key,
                )
                .map_err(|err| internal(StoreError(err.to_string())))?;
                self.store
                    .put_record(
                        RecordKind::Envelope,
                        envelope_key(space, cert.body.device, &codec::to_bytes(&e.slot)),
                        codec::to_bytes(&wrapped),
                    )
                    .await
                    .map_err(internal)?;
            }
        }
        let until = mes_protocol::time::UnixMillis::now().0 + RELEASE_MILLIS;
        self.store
            .put_record(
                RecordKind::Release,
                [space.0.as_slice(), caller.principal.0.as_slice()].concat(),
                codec::to_bytes(&(mode, until)),
            )
            .await
            .map_err(internal)?;
        self.record_volume_access(&m, caller, emergency).await?;
        self.hub.publish_to_principal(
            caller.principal,
            mes_protocol::wire::Push::MembershipChanged { space },
        );
        Ok(Reply::Done)
    }

    /// The envelopes of a space addressed to one (pseudo-)device.
    async fn envelopes_for(
        &self,
        space: SpaceId,
        device: DeviceId,
    ) -> Result<Vec<mes_protocol::envelope::KeyEnvelope>, WireError> {
        self.store
            .scan_records(RecordKind::Envelope, &envelope_key(space, device, &[]))
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(_, v)| codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string()))))
            .collect()
    }

    /// The directory's entry for a principal, if listed.
    pub async fn professional(
        &self,
        principal: PrincipalId,
    ) -> Result<Option<Signed<DirectoryEntry>>, WireError> {
        self.store
            .get_record(RecordKind::Directory, &principal_key(principal))
            .await
            .map_err(internal)?
            .map(|v| codec::from_bytes(&v).map_err(|e| internal(StoreError(e.to_string()))))
            .transpose()
    }

    /// An enrolment request (F1.3-F1.8): refused while the device failed too often;
    /// activation binds the space the caller owns.
    async fn enrol(
        &self,
        caller: &Caller,
        request: mes_protocol::enrol::EnrolRequest,
    ) -> Result<Reply, WireError> {
        use crate::enrolment::service::Refusal;
        let hub =
            self.enrolment.get().cloned().ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, "this relay runs no enrolment")
            })?;
        if matches!(
            request,
            mes_protocol::enrol::EnrolRequest::Hold { .. }
                | mes_protocol::enrol::EnrolRequest::HeldReady { .. }
                | mes_protocol::enrol::EnrolRequest::Holders { .. }
        ) {
            return self.enrol_holds(caller, hub, request).await;
        }
        if let mes_protocol::enrol::EnrolRequest::Activate { space, .. } = &request {
            let m = self.membership(*space)?;
            if m.owner() != caller.principal {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "a space is activated by the device of the person who created it",
                ));
            }
        }
        let now = mes_protocol::time::UnixMillis::now();
        let guessers = caller.guessers();
        let account_space = {
            let hub = hub.clone();
            move |identifier: &str| -> Option<SpaceId> {
                let nir = hub.tables.identifier(identifier).ok()??;
                Some(hub.tables.person(&nir).ok()??.account?.space)
            }
        };
        let closing = match &request {
            mes_protocol::enrol::EnrolRequest::Close { identifier, .. } => {
                Some((identifier.clone(), true))
            }
            mes_protocol::enrol::EnrolRequest::Reopen { identifier, .. } => {
                Some((identifier.clone(), false))
            }
            _ => None,
        };
        let answer = tokio::task::spawn_blocking(move || {
            hub.admit(&guessers, now)?;
            let r = hub.serve(&request, now);
            if matches!(
                r,
                Err(Refusal::Unknown
                    | Refusal::WrongCode { .. }
                    | Refusal::WrongPassword
                    | Refusal::BadNir(_)
                    | Refusal::MalformedCode(_))
            ) {
                hub.failed(&guessers, now);
            }
            r
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?;
        if let (Ok(_), Some((identifier, close))) = (&answer, closing) {
            if let Some(space) = account_space(&identifier) {
                self.set_closed(space, close).await?;
            }
        }
        match answer {
            Ok(s) => Ok(Reply::Enrolment {
                status: mes_protocol::enrol::EnrolStatus {
                    status: s.name().into(),
                    detail: crate::enrolment::service::describe(&s),
                },
            }),
            Err(e) => Err(refusal_error(e)),
        }
    }

    /// Holds of items for people without a device yet (F1.5): a listed professional
    /// records or releases a hold and asks which are ready; the person, from the device
    /// that owns the activated space, asks who holds items for them.
    async fn enrol_holds(
        &self,
        caller: &Caller,
        hub: Arc<crate::enrolment::service::EnrolmentHub>,
        request: mes_protocol::enrol::EnrolRequest,
    ) -> Result<Reply, WireError> {
        use crate::enrolment::holds;
        use crate::enrolment::service::Refusal;
        use mes_protocol::enrol::{EnrolRequest as R, Hold};
        let by = caller.principal;
        if matches!(request, R::Hold { .. } | R::HeldReady { .. })
            && self.professional(by).await?.is_none()
        {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "only a professional listed in the directory holds items for a person",
            ));
        }
        let now = mes_protocol::time::UnixMillis::now();
        let guessers = caller.guessers();
        let asked = tokio::task::spawn_blocking(move || {
            let t = &hub.tables;
            match &request {
                R::Hold { nir, release } => {
                    if !*release {
                        hub.count_hold(by, now)?;
                    }
                    holds::hold(t, nir, by, *release).map(|h| (vec![h], None))
                }
                R::HeldReady { nirs } => holds::ready(t, nirs, by).map(|h| (h, None)),
                R::Holders { holder } => {
                    hub.admit(&guessers, now)?;
                    // The serial is checked as for every request naming a card holder.
                    let found =
                        crate::enrolment::service::find(t, &holder.nir, &holder.vitale_serial, now)
                            .inspect_err(|e| {
                                if matches!(e, Refusal::Unknown | Refusal::BadNir(_)) {
                                    hub.failed(&guessers, now);
                                }
                            })?;
                    let nir = mes_protocol::nir::Nir::with_key(&found.person.insured.nir);
                    let (who, space) = holds::holders(t, &nir)?;
                    let held = who
                        .into_iter()
                        .map(|principal| Hold {
                            nir: nir.clone(),
                            principal,
                            space: Some(space),
                            rpps: String::new(),
                        })
                        .collect();
                    Ok((held, Some(space)))
                }
                _ => unreachable!("only hold requests come here"),
            }
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(refusal_error)?;
        let (mut holds, owned) = asked;
        if let Some(space) = owned {
            if self.membership(space)?.owner() != by {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "who holds items for a person is told only to the device that owns their space",
                ));
            }
            for h in &mut holds {
                if let Some(e) = self.professional(h.principal).await? {
                    h.rpps = e.body.professional.rpps.as_str().to_string();
                }
            }
        }
        Ok(Reply::Holds { holds })
    }

    /// Marks a space closed (refused to everyone) or reopened, durably.
    async fn set_closed(&self, space: SpaceId, closed: bool) -> Result<(), WireError> {
        if closed {
            self.store
                .put_record(RecordKind::Closed, space.0.to_vec(), Vec::new())
                .await
                .map_err(internal)?;
            self.closed.write().expect("closed lock").insert(space);
        } else {
            self.store
                .remove_record(RecordKind::Closed, space.0.to_vec())
                .await
                .map_err(internal)?;
            self.closed.write().expect("closed lock").remove(&space);
        }
        Ok(())
    }

    /// Imports checked directory rows (see [`crate::directory::parse`]), each signed with
    /// the relay's key; a professional listed again replaces their entry. Returns how many.
    pub async fn import_directory(
        &self,
        rows: Vec<(PrincipalId, Professional)>,
    ) -> Result<usize, StoreError> {
        let n = rows.len();
        for (principal, professional) in rows {
            // A principal whose RPPS changed loses the old index line.
            if let Some(old) = self
                .professional(principal)
                .await
                .map_err(|e| StoreError(e.message))?
            {
                if old.body.professional.rpps != professional.rpps {
                    self.store
                        .put_record(
                            RecordKind::Directory,
                            rpps_key(&old.body.professional.rpps),
                            Vec::new(),
                        )
                        .await?;
                }
                if let Some(left) = old.body.professional.structure.as_deref() {
                    if Some(left) != professional.structure.as_deref() {
                        self.store
                            .put_record(
                                RecordKind::Directory,
                                structure_key(left, principal),
                                Vec::new(),
                            )
                            .await?;
                    }
                }
            }
            if let Some(structure) = &professional.structure {
                self.store
                    .put_record(
                        RecordKind::Directory,
                        structure_key(structure, principal),
                        principal.0.to_vec(),
                    )
                    .await?;
            }
            let rk = rpps_key(&professional.rpps);
            let entry = Signed::sign(
                DirectoryEntry {
                    principal,
                    professional,
                    listed_at: mes_protocol::time::UnixMillis::now(),
                },
                &self.key,
            );
            self.store
                .put_record(
                    RecordKind::Directory,
                    principal_key(principal),
                    codec::to_bytes(&entry),
                )
                .await?;
            self.store
                .put_record(RecordKind::Directory, rk, principal.0.to_vec())
                .await?;
        }
        Ok(n)
    }

    /// A grant to a listed professional must stay inside the habilitation matrix: per
    /// volume, on volumes their profession may read (append on the inbox is always fine),
    /// never admin. Removals always pass.
    async fn check_matrix(&self, m: &Membership, g: &Grant) -> Result<(), WireError> {
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
                && (label == mes_protocol::habilitation::HIDDEN
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
        if label.starts_with(mes_protocol::messages::THREADS_PREFIX) && role <= Role::Write {
            return Ok(());
        }
        if g.volume.is_none() {
            return refuse(format!(
                "a consent names volumes; {role:?} on the whole space goes beyond the habilitation matrix"
            ));
        }
        let hidden_for_attending = label == mes_protocol::habilitation::HIDDEN
            && attending
            && profession == mes_protocol::habilitation::PHYSICIAN;
        if hidden_for_attending || Matrix::builtin().may_read_volume(profession, label) {
            Ok(())
        } else {
            refuse(format!(
                "the habilitation matrix does not let this profession read {label:?}"
            ))
        }
    }

    async fn record_volume_access(
        &self,
        m: &Membership,
        caller: &Caller,
        volume: VolumeId,
    ) -> Result<(), WireError> {
        let label = m
            .volume(volume)
            .map(|d| d.label.clone())
            .unwrap_or_default();
        self.record_access(m, caller, AccessTarget::Volume { volume, label })
            .await
    }

    /// Appends an access history entry when someone other than the owner accesses the
    /// space, durably before the data goes out, and tells the owner's devices.
    async fn record_access(
        &self,
        m: &Membership,
        caller: &Caller,
        target: AccessTarget,
    ) -> Result<(), WireError> {
        if caller.principal == m.owner() {
            return Ok(());
        }
        let professional = self.professional(caller.principal).await?;
        let holds_grant = authorize(m, caller.principal, Need::AnyRole).is_ok();
        let in_team = |p: &Signed<DirectoryEntry>| {
            m.choices.as_ref().is_some_and(|c| {
                p.body
                    .professional
                    .structure
                    .as_ref()
                    .is_some_and(|s| c.body.care_teams.contains(s))
            })
        };
        let mode = match self.release(m.space(), caller.principal).await? {
            Some(r) if !holds_grant => r.access_mode(),
            _ if self.service(caller.principal).is_some() => AccessMode::Service,
            _ => match &professional {
                Some(p) if in_team(p) => AccessMode::CareTeam,
                Some(_) => AccessMode::Normal,
                None => AccessMode::Delegate,
            },
        };
        let seq = self
            .history
            .append(
                &self.key,
                m.space(),
                Accessor {
                    actor: caller.principal,
                    device: caller.device,
                    professional: professional.map(|p| p.body.professional),
                    mode,
                },
                target,
            )
            .await
            .map_err(internal)?;
        self.hub.publish_to_principal(
            m.owner(),
            mes_protocol::wire::Push::History {
                space: m.space(),
                head: seq,
            },
        );
        Ok(())
    }

    /// The man in the middle of the tests' control: answers each side with a SPAKE2
    /// message of its own, for a code it had to guess.
    fn tamper(&self, body: Vec<u8>) -> Vec<u8> {
        let mut rng = rand::thread_rng();
        match codec::from_bytes::<mes_protocol::pairing::PairMessage>(&body) {
            Ok(mes_protocol::pairing::PairMessage::Spake(_)) => {
                let guess = PairingCode::generate(&mut rng);
                let (_, msg) = PairingExchange::start(&guess, &mut rng);
                codec::to_bytes(&mes_protocol::pairing::PairMessage::Spake(msg))
            }
            _ => body,
        }
    }
}

fn rpps_key(rpps: &Rpps) -> Vec<u8> {
    [b"r".as_slice(), rpps.as_str().as_bytes()].concat()
}

/// The structure index of the directory: `s` || structure || 0 || principal, whose value
/// is the principal while it works there, empty once it left (finding 6: `ListStructure`
/// reads one structure, not the whole directory).
fn structure_key(structure: &str, p: PrincipalId) -> Vec<u8> {
    [b"s".as_slice(), structure.as_bytes(), &[0], p.0.as_slice()].concat()
}

fn principal_key(p: PrincipalId) -> Vec<u8> {
    [b"p".as_slice(), p.0.as_slice()].concat()
}

fn envelope_key(space: SpaceId, device: DeviceId, slot: &[u8]) -> Vec<u8> {
    [space.0.as_slice(), device.0.as_slice(), slot].concat()
}

/// The wire error a refused enrolment request answers.
fn refusal_error(e: crate::enrolment::service::Refusal) -> WireError {
    use crate::enrolment::service::Refusal;
    let code = match &e {
        Refusal::Storage(_) => ErrorCode::Internal,
        Refusal::Locked(_) | Refusal::Changed | Refusal::TooSoon(..) => ErrorCode::Busy,
        Refusal::IdentifierTaken(_) | Refusal::State(_) => ErrorCode::Conflict,
        Refusal::NoEmail => ErrorCode::NotFound,
        Refusal::BadNir(_) | Refusal::MalformedCode(_) | Refusal::Rule(_) => ErrorCode::BadRecord,
        Refusal::Unknown
        | Refusal::WrongCode { .. }
        | Refusal::NoCode
        | Refusal::Expired(_)
        | Refusal::WrongPassword => ErrorCode::Forbidden,
    };
    WireError::new(code, e.to_string())
}
