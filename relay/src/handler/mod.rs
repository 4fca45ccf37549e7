//! The relay's shared state and its request handler: membership cache, store, pushes.
//!
//! [`Relay::handle`] turns one authenticated request into a reply; it checks the caller's
//! rights ([`crate::access`]), every record's signature, and every bundle's binding and
//! author signature before anything is stored. A refused request changes nothing.

mod backfill;
mod caller;
mod catalogue;
mod closure;
mod devices;
mod directory;
mod emergency;
mod enrolment;
mod envelopes;
mod faults;
pub mod file_quota;
mod files;
mod history;
mod log;
mod membership;
mod pairing;

use caller::{lists_first, stateless};
pub use caller::{Admission, BlobReads, Caller, FirstDevice};
pub use catalogue::CatalogueReport;
pub use faults::{Faults, Honest, Misbehaviour, Rule};

use crate::access::Need;
use crate::access_history::AccessHistory;
use crate::escrow::Escrow;
use crate::push::Pushes;
use crate::store::{Store, StoreError, Table};
use mes_protocol::access::choices::AttendingPolicy;
use mes_protocol::access::membership::{Membership, Signed};
use mes_protocol::crypto::keys::DeviceCert;
use mes_protocol::crypto::keys::SigningSecret;
use mes_protocol::enrolment::catalogue::CatalogueEntry;
use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId};
use mes_protocol::time::{Clock, SystemClock};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, Request, WireError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use directory::structure_key;
use envelopes::envelope_key;

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
    pub pushes: Arc<Pushes>,
    memberships: RwLock<HashMap<SpaceId, Membership>>,
    /// Where the tests' controls make it misbehave ([`Honest`] in production).
    faults: Arc<dyn Faults>,
    /// Where the relay reads the time.
    pub(crate) clock: Arc<dyn Clock>,
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
    signatures:
        crate::group_commit::AsyncCombiner<Vec<mes_protocol::crypto::keys::Check>, Vec<bool>>,
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
pub(super) const FIRST_DEVICES: usize = 4096;

/// A storage failure as devices read it: `Busy` ("retry later") while the database or
/// the object store is away (issue 27, item 1), `Internal` otherwise; nothing changed.
pub(crate) fn internal(e: StoreError) -> WireError {
    if e.retryable() {
        WireError::new(
            ErrorCode::Busy,
            format!("the hub's storage is unavailable for a moment, retry later / stockage du relais momentanément indisponible, réessayez : {e}"),
        )
    } else {
        WireError::new(ErrorCode::Internal, e.to_string())
    }
}

/// Refuses anyone but the space's owner: "only the person whose space it is {does}".
/// The owner passes; another member is told why not; anyone else is answered as for a
/// space that does not exist (no existence oracle, finding 10).
pub(super) fn owner_only(m: &Membership, who: PrincipalId, does: &str) -> Result<(), WireError> {
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

pub(super) fn bad_record(e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::BadRecord, e.to_string())
}

impl Relay {
    /// Loads the membership cache and wires the store's notify hook to the pushes.
    pub async fn new(
        store: Arc<dyn Store>,
        keys: RelayKeys,
        policy: HubPolicy,
        misbehaviour: Misbehaviour,
    ) -> Result<Arc<Self>, StoreError> {
        Self::with_clock(
            store,
            keys,
            policy,
            misbehaviour.into_faults(),
            Arc::new(SystemClock),
        )
        .await
    }

    /// [`Relay::new`] with its faults and its clock given (tests and the simulator move
    /// time themselves; the relay never reads the wall clock but through `clock`).
    pub async fn with_clock(
        store: Arc<dyn Store>,
        keys: RelayKeys,
        policy: HubPolicy,
        faults: Arc<dyn Faults>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, StoreError> {
        let mut memberships = HashMap::new();
        for (_, v) in store.scan_records(Table::Membership, &[]).await? {
            let m: Membership = codec::from_bytes(&v)
                .map_err(|e| StoreError::corrupt(format!("stored membership: {e}")))?;
            memberships.insert(m.space(), m);
        }
        let mut catalogue = HashMap::new();
        for (_, v) in store.scan_records(Table::Catalogue, &[]).await? {
            let e: Signed<CatalogueEntry> = codec::from_bytes(&v)
                .map_err(|e| StoreError::corrupt(format!("stored catalogue entry: {e}")))?;
            catalogue.insert(e.body.service.principal, e);
        }
        let closed = store
            .scan_records(Table::Closed, &[])
            .await?
            .into_iter()
            .filter_map(|(k, _)| Some(SpaceId(k.try_into().ok()?)))
            .collect();
        let pushes = Arc::new(Pushes::default());
        let h = pushes.clone();
        store.set_notify(Box::new(move |volume, head| h.publish_head(volume, head)));
        let relay = Arc::new(Relay {
            history: AccessHistory::new(store.clone()),
            store,
            key: keys.signing,
            escrow: keys.escrow,
            policy,
            refusals: Default::default(),
            pushes,
            memberships: RwLock::new(memberships),
            faults,
            clock,
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

    /// The relay's public signing key.
    pub fn public_key(&self) -> PrincipalId {
        PrincipalId(self.key.public())
    }

    /// The store (operator tools and tests read it as the relay does).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Whether the store answers a read (the `/health` check).
    pub async fn health(&self) -> Result<(), StoreError> {
        self.store
            .get_record(Table::Membership, b"health-check")
            .await
            .map(|_| ())
    }

    /// How many requests were refused since start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(std::sync::atomic::Ordering::SeqCst)
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

    /// One line per request: each request's rules live in the module of its concern.
    async fn handle_inner(&self, caller: &Caller, req: Request) -> Result<Reply, WireError> {
        if self.is_revoked(caller.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                "this device was revoked by its principal",
            ));
        }
        match req {
            Request::RegisterSpace { genesis } => self.register_space(caller, genesis).await,
            Request::DeclareVolume { decl } => self.declare_volume(caller, decl).await,
            Request::PutGrant { grant } => self.put_grant(caller, grant).await,
            Request::GetMembership { space } => self.get_membership(caller, space).await,
            Request::ListSpaces => self.list_spaces(caller).await,
            Request::PutChoices { choices } => self.put_choices(caller, choices).await,
            Request::HandOver { handover } => self.hand_over(caller, handover).await,
            Request::SetAdmissionKey { key } => self.set_admission_key(caller, key).await,
            Request::ListDevice { cert } => self.list_device_for_person(caller, cert).await,
            Request::ListDevices { principal } => self.list_devices(caller, principal).await,
            Request::RevokeDevice { revocation } => self.revoke(caller, revocation).await,
            Request::Append {
                space,
                volume,
                bundles,
            } => self.append(caller, space, volume, bundles).await,
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
            } => self.fetch(caller, space, volume, after, max).await,
            Request::PutSnapshot {
                space,
                volume,
                upto,
                snapshot,
                prune,
            } => {
                self.put_snapshot(caller, space, volume, upto, snapshot, prune)
                    .await
            }
            Request::GetSnapshot { space, volume } => {
                self.get_snapshot(caller, space, volume).await
            }
            Request::Subscribe { space, volumes } => self.subscribe(caller, space, volumes).await,
            Request::PutEnvelopes { envelopes } => self.put_envelopes(caller, envelopes).await,
            Request::GetEnvelopes { space } => self.get_envelopes(caller, space).await,
            Request::GetRecoveryEnvelopes { space } => {
                self.get_recovery_envelopes(caller, space).await
            }
            Request::PutBlobChunk {
                space,
                volume,
                blob,
                index,
                last,
                data,
            } => {
                self.put_blob_chunk(
                    caller,
                    space,
                    volume,
                    blob,
                    files::Chunk { index, last, data },
                )
                .await
            }
            Request::BindBlob {
                space,
                volume,
                blob,
            } => self.bind_blob_to(caller, space, volume, blob).await,
            Request::GetBlobChunk {
                space,
                volume,
                blob,
                index,
            } => {
                self.get_blob_chunk(caller, space, volume, blob, index)
                    .await
            }
            Request::GetHubInfo => self.hub_info().await,
            Request::EmergencyAccess { space, mode } => {
                self.emergency_access(caller, space, mode).await
            }
            Request::ListStructure { structure } => self.list_structure(structure).await,
            Request::FindProfessional { rpps } => self.find_professional(rpps).await,
            Request::GetCatalogue => self.get_catalogue().await,
            Request::Enrol { request } => self.enrol(caller, request).await,
            Request::PairOpen { rendezvous } => self.pair_open(caller, rendezvous).await,
            Request::PairSend { rendezvous, body } => {
                self.pair_send(caller, rendezvous, body).await
            }
            Request::GetHistory { space, after } => self.get_history(caller, space, after).await,
        }
    }

    /// The deployment's policies.
    pub(crate) fn policy(&self) -> &HubPolicy {
        &self.policy
    }
}
