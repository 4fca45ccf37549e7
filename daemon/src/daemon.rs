//! The daemon handle: the in-memory state of the replica (spaces, volumes, keys), the
//! events the API streams, the relay client, and the local changes every operation goes
//! through (acknowledged only once durable). The operations live with their concern:
//! `record/` (notes, typed record documents, documents, measurements, threads),
//! `access/` (membership and keys, consent, minors, emergency, history), `devices/`
//! (listing, revocation, pairing, recovery) and `sync/` (the upload and catch-up
//! pipeline, sealing, the sans-IO step core).
//!
//! Components and locks: the handle holds components that each own their state and take
//! only their own locks, never another's: `devices::Devices` (this device's identity and
//! the pairings under way), `sync::link::Link` (the relay connection, online exactly while
//! there is one), `access::Access` (its one-at-a-time locks, what the hub said, who each
//! device is), `record::doc_index::Cache` (hydrated document volumes). The replica's state
//! (`State`: spaces with their memberships, volumes, epoch keys) is the data every domain
//! reads and changes; it is one std mutex on purpose, never held across an await (sled
//! flushes and relay requests happen outside it): a change touches a space, a volume and
//! the keyring at once, a bundle is sealed under the key of the membership it was checked
//! against, and all of it must be seen whole.
//!
//! Import circle: the handle's fields are the state types of `replica::spaces`, `replica::blobs`, `record::doc_index` and `access::emergency`, whose modules extend the handle with their operations (`impl Daemon`); this is the handle pattern, kept to these modules.

use mes_protocol::access::membership::{Membership, Role, Signed, SpaceGenesis, VolumeDecl};
use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::{CipherSuite, SymmetricKey};
use mes_protocol::ids::{DeviceId, Epoch, Generation, PrincipalId, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{
    ApiError, ApiErrorCode, ApiEvent, SpaceSummary, StatusReport, VolumeStatus,
};
use mes_protocol::wire::Reply;
use rand::rngs::OsRng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

use crate::devices::identity::Identity;
use crate::replica::keyring::Keyring;
use crate::replica::spaces::{load_all, LoadedVolume, Space, SpaceRecord, VolumeMeta};
use crate::replica::store::{SealedStore, StoreError};
use crate::replica::volume::{Payload, Replica};
use crate::sync::relay_client::{ClientError, RelayClient};

/// The replica's in-memory state: spaces with their memberships, the loaded volumes and
/// the epoch keys. One lock on purpose: a change touches a space, a volume and the keyring
/// at once (a bundle is sealed under the key of the membership it was checked against),
/// and must be seen whole.
pub struct State {
    /// The spaces this device holds, with their memberships.
    pub spaces: BTreeMap<SpaceId, Space>,
    /// The loaded volumes of those spaces.
    pub volumes: BTreeMap<VolumeId, LoadedVolume>,
    /// Epoch keys, by volume and generation.
    pub keys: Keyring,
    /// (slot, device) pairs wrapped during this run.
    pub(crate) wrapped: BTreeSet<(KeySlot, DeviceId)>,
}

/// The daemon: a handle over its components. Each owns its state and takes its own
/// locks: the replica (`State`, the sealed store and the blob files), `devices` (this
/// device's identity, pairings), `link` (the relay connection, in `sync/`), `access`
/// (its one-at-a-time locks, what the hub said, who each device is) and the record's
/// document index cache.
pub struct Daemon {
    /// The sealed store.
    pub store: SealedStore,
    state: Mutex<State>,
    events: broadcast::Sender<ApiEvent>,
    pub(crate) suite: CipherSuite,
    /// This device's identity and the pairings under way.
    pub devices: crate::devices::Devices,
    /// The link to the relay.
    pub link: crate::sync::link::Link,
    /// The access component's own state.
    pub access: crate::access::Access,
    /// The blob cache and the document size limit.
    pub files: crate::replica::blobs::Files,
    /// Hydrated document volumes, by volume, valid while the volume's heads are unchanged
    /// (search and listing never hydrate 10,000 documents per query).
    pub(crate) doc_cache: crate::record::doc_index::Cache,
}

/// Errors of sync operations.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The relay refused or the connection dropped.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Local storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bundle or record was refused.
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn storage(e: StoreError) -> ApiError {
    ApiError::new(ApiErrorCode::Storage, e.to_string())
}

pub(crate) fn unexpected(r: Reply) -> SyncError {
    SyncError::Refused(format!("unexpected reply from the relay: {r:?}"))
}

/// Labels of the volumes every space starts with.
pub const NOTES: &str = "notes";
/// Chained log.
pub const JOURNAL: &str = "journal";
/// Inbox.
pub const INBOX: &str = "inbox";
/// Label of the medical profile volume (docs/health-record.md).
pub const PROFILE: &str = "profile";
/// Label of the prevention volume: vaccine doses and screenings.
pub const PREVENTION: &str = "prevention";
/// Label of the emergency section's volume (F2.10).
pub const EMERGENCY: &str = "emergency";
/// Label of the agenda volume (F5).
pub const AGENDA: &str = "agenda";
/// Label of the messages volume (F4).
pub const MESSAGES: &str = "messages";
/// Label of the care history volume (F3.8).
pub const CARE: &str = "care";
/// Label of the volume of documents hidden from professionals (F3.3).
pub const DOCUMENTS_HIDDEN: &str = "documents/hidden";

/// The label of a habilitation group's document volume.
pub fn documents_label(group: &str) -> String {
    format!("documents/{group}")
}

/// The volumes every space is created with (partitions such as measurements come later).
pub fn fixed_volumes() -> Vec<(VolumeKind, String)> {
    let mut v: Vec<(VolumeKind, String)> = [
        (VolumeKind::Automerge, NOTES),
        (VolumeKind::ChainedLog, JOURNAL),
        (VolumeKind::Inbox, INBOX),
        (VolumeKind::Automerge, PROFILE),
        (VolumeKind::Automerge, PREVENTION),
        (VolumeKind::Automerge, EMERGENCY),
        (VolumeKind::Automerge, AGENDA),
        (VolumeKind::Automerge, MESSAGES),
        (VolumeKind::Automerge, CARE),
        (VolumeKind::Automerge, DOCUMENTS_HIDDEN),
    ]
    .into_iter()
    .map(|(k, l)| (k, l.to_string()))
    .collect();
    v.extend(
        mes_protocol::record::codes::DOC_GROUPS
            .iter()
            .map(|g| (VolumeKind::Automerge, documents_label(g))),
    );
    v
}

impl Daemon {
    /// Opens the daemon state from its store, creating an identity on first start.
    pub fn open(
        store: SealedStore,
        name: &str,
        suite: CipherSuite,
        relay_label: String,
        files: crate::replica::blobs::Files,
    ) -> Result<Arc<Self>, StoreError> {
        let identity = match Identity::load(&store)? {
            Some(i) => i,
            None => {
                let i = Identity::create(name);
                let mut b = store.batch();
                i.save(&mut b);
                store.apply(b)?;
                i
            }
        };
        let actor = identity.device.device_id().0;
        let (spaces, volumes) = load_all(&store, &actor)?;
        let keys = Keyring::load(&store)?;
        let state = State {
            spaces: spaces.into_iter().map(|s| (s.id(), s)).collect(),
            volumes: volumes.into_iter().map(|v| (v.meta.volume, v)).collect(),
            keys,
            wrapped: BTreeSet::new(),
        };
        Ok(Arc::new(Daemon {
            store,
            state: Mutex::new(state),
            events: broadcast::channel(1024).0,
            suite,
            devices: crate::devices::Devices::new(identity),
            link: crate::sync::link::Link::new(relay_label),
            access: crate::access::Access::default(),
            files,
            doc_cache: Default::default(),
        }))
    }

    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("daemon state lock")
    }

    /// Subscribes to events.
    pub fn events(&self) -> broadcast::Receiver<ApiEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, e: ApiEvent) {
        let _ = self.events.send(e);
    }

    /// The cipher suite bundles are sealed with.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The live relay connection, if any.
    pub fn client(&self) -> Option<Arc<RelayClient>> {
        self.link.client()
    }

    /// This device's identity.
    pub fn identity(&self) -> Arc<Identity> {
        self.devices.identity()
    }

    /// The relay connection, or an Offline error saying that `what` needs it.
    pub(crate) fn online_client(&self, what: &str) -> Result<Arc<RelayClient>, ApiError> {
        self.client().ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Offline,
                format!("{what} needs the relay, and the daemon is offline"),
            )
        })
    }

    /// Status of every volume.
    pub fn status(&self) -> StatusReport {
        let st = self.state();
        StatusReport {
            slow_store_operations: crate::replica::store::WATCHDOG.slow_total(),
            online: self.link.online(),
            relay: self.link.label().to_owned(),
            volumes: st
                .volumes
                .values()
                .map(|v| VolumeStatus {
                    space: v.meta.space,
                    volume: v.meta.volume,
                    label: v.meta.label.clone(),
                    kind: v.meta.kind,
                    generation: v.meta.generation.0,
                    epoch: st
                        .keys
                        .current(v.meta.volume, v.meta.generation)
                        .map(|(e, _)| e.0)
                        .unwrap_or(0),
                    cursor: v.progress.cursor,
                    head: v.progress.head,
                    pending_uploads: v.meta.last_local - v.progress.uploaded,
                })
                .collect(),
        }
    }

    /// Creates a space with its three volumes; durable on return.
    pub async fn create_space(&self, label: &str) -> Result<SpaceId, ApiError> {
        if label.trim().is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "a space needs a non-empty label",
            ));
        }
        let space = {
            let mut st = self.state();
            let mut rng = OsRng;
            let space = SpaceId::random(&mut rng);
            let principal = &self.identity().principal;
            let genesis = Signed::sign(
                SpaceGenesis {
                    space,
                    owner: principal.principal_id(),
                    inbox_recipient: principal.age.recipient(),
                    created_at: UnixMillis::now(),
                },
                &principal.signing,
            );
            let kinds = fixed_volumes();
            let decls: Vec<Signed<VolumeDecl>> = kinds
                .iter()
                .map(|(kind, vlabel)| {
                    let d = VolumeDecl {
                        space,
                        volume: VolumeId::random(&mut rng),
                        kind: *kind,
                        generation: Generation(0),
                        label: vlabel.clone(),
                    };
                    Signed::sign(d, &principal.signing)
                })
                .collect();
            let mut batch = self.store.batch();
            for ((kind, vlabel), decl) in kinds.into_iter().zip(&decls) {
                let volume = decl.body.volume;
                let meta = VolumeMeta::new(space, volume, kind, &vlabel);
                let mut v = LoadedVolume::create(meta, &self.identity().device.device_id().0);
                v.save_meta(&mut batch);
                if kind != VolumeKind::Inbox {
                    let slot = KeySlot {
                        space,
                        volume,
                        generation: Generation(0),
                        epoch: Epoch(0),
                    };
                    st.keys
                        .insert(slot, SymmetricKey::generate(&mut rng), &mut batch);
                }
                if vlabel == NOTES {
                    if let Replica::Doc(d) = v.replica().map_err(storage)? {
                        let p = d
                            .set(LABEL_KEY, label)
                            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
                        v.record_local(&p, &mut batch);
                    }
                }
                st.volumes.insert(volume, v);
            }
            let s = Space {
                record: SpaceRecord {
                    genesis,
                    label: label.into(),
                    registered: false,
                    decls,
                    pending_decls: Vec::new(),
                },
                membership: None,
            };
            s.save(&mut batch);
            st.spaces.insert(space, s);
            self.store.apply(batch).map_err(storage)?;
            space
        };
        self.made_durable(space).await?;
        Ok(space)
    }

    /// Flushes, then marks every local change written so far durable and wakes sync.
    async fn made_durable(&self, space: SpaceId) -> Result<(), ApiError> {
        self.store.flush().await.map_err(storage)?;
        let mut st = self.state();
        for v in st.volumes.values_mut().filter(|v| v.meta.space == space) {
            v.progress.on_durable(v.meta.last_local);
        }
        drop(st);
        self.link.wake.notify_one();
        Ok(())
    }

    /// The space a call acts on: the one named, or this person's first space (created as
    /// "personal" if there is none yet).
    pub async fn resolve_space(&self, space: Option<SpaceId>) -> Result<SpaceId, ApiError> {
        if let Some(s) = space {
            return if self.state().spaces.contains_key(&s) {
                Ok(s)
            } else {
                Err(ApiError::new(
                    ApiErrorCode::NotFound,
                    format!("this daemon holds no space {s}"),
                ))
            };
        }
        let me = self.identity().principal.principal_id();
        let found = {
            let st = self.state();
            let mut own: Vec<_> = st
                .spaces
                .values()
                .filter(|s| s.owner() == me)
                .map(|s| (s.record.genesis.body.created_at, s.id()))
                .collect();
            own.sort();
            own.first().map(|(_, s)| *s)
        };
        match found {
            Some(s) => Ok(s),
            None => self.create_space("personal").await,
        }
    }

    /// The replica of the volume labelled `label` in `space`, loaded if it was not.
    pub(crate) fn replica_of<'a>(
        st: &'a mut State,
        space: SpaceId,
        label: &str,
    ) -> Result<&'a mut Replica, ApiError> {
        let volume = Self::volume_of(st, space, label)?;
        let v = st.volumes.get_mut(&volume).expect("volume exists");
        v.replica().map_err(storage)
    }

    pub(crate) fn volume_of(st: &State, space: SpaceId, label: &str) -> Result<VolumeId, ApiError> {
        st.volumes
            .values()
            .find(|v| v.meta.space == space && v.meta.label == label)
            .map(|v| v.meta.volume)
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::NotFound,
                    format!(
                        "space {} has no {label} volume here yet (not synced?)",
                        space.short()
                    ),
                )
            })
    }

    fn check_writable(
        st: &State,
        me: PrincipalId,
        space: SpaceId,
        volume: VolumeId,
    ) -> Result<(), ApiError> {
        let s = &st.spaces[&space];
        let kind = st.volumes[&volume].meta.kind;
        let role = match &s.membership {
            Some(m) => m.role(me, Some(volume)),
            None if s.owner() == me => Some(Role::Admin),
            None => None,
        };
        match role {
            Some(r) if r.can_write(kind) => Ok(()),
            _ => Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!(
                    "you may not write to the {} volume of this space",
                    st.volumes[&volume].meta.label
                ),
            )),
        }
    }

    /// Applies a local change to a volume and acknowledges once durable.
    pub(crate) async fn local_change(
        &self,
        space: SpaceId,
        label: &str,
        change: impl FnOnce(&mut LoadedVolume, DeviceId) -> Result<Option<Payload>, ApiError>,
    ) -> Result<bool, ApiError> {
        {
            let mut st = self.state();
            let volume = Self::volume_of(&st, space, label)?;
            Self::check_writable(&st, self.identity().principal.principal_id(), space, volume)?;
            let device = self.identity().device.device_id();
            let v = st.volumes.get_mut(&volume).expect("volume exists");
            let Some(payload) = change(v, device)? else {
                return Ok(false);
            };
            let mut batch = self.store.batch();
            v.record_local(&payload, &mut batch);
            self.store.apply(batch).map_err(storage)?;
            self.emit(ApiEvent::VolumeChanged { space, volume });
        }
        self.made_durable(space).await?;
        Ok(true)
    }

    /// Spaces held here.
    pub fn list_spaces(&self) -> Vec<SpaceSummary> {
        let mut guard = self.state();
        let st = &mut *guard;
        st.spaces
            .values()
            .map(|s| {
                let label = st
                    .volumes
                    .values_mut()
                    .find(|v| v.meta.space == s.id() && v.meta.label == NOTES)
                    .and_then(|v| match v.replica().ok()? {
                        Replica::Doc(d) => d.get(LABEL_KEY).into_iter().next(),
                        _ => None,
                    })
                    .unwrap_or_else(|| s.record.label.clone());
                SpaceSummary {
                    space: s.id(),
                    label,
                    owner: s.owner(),
                }
            })
            .collect()
    }

    /// A fingerprint of a volume's state (tests compare replicas with it).
    pub fn digest(&self, volume: VolumeId) -> Option<String> {
        self.state().volumes.get_mut(&volume).and_then(|v| {
            v.replica()
                .ok()
                .map(super::replica::volume::Replica::digest)
        })
    }
}

/// Key under which a space's label is kept in its notes document.
pub const LABEL_KEY: &str = "_label";

pub(crate) fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.starts_with('_') || key.len() > 256 {
        Err(ApiError::new(
            ApiErrorCode::BadRequest,
            format!("note key {key:?} must be 1 to 256 bytes and not start with '_'"),
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn client_api(e: ClientError) -> ApiError {
    match e {
        ClientError::Closed(m) => ApiError::new(ApiErrorCode::Offline, m),
        ClientError::Refused(w) => ApiError::new(ApiErrorCode::Forbidden, w.to_string()),
    }
}

pub(crate) fn sync_api(e: SyncError) -> ApiError {
    match e {
        SyncError::Client(c) => client_api(c),
        SyncError::Store(s) => storage(s),
        SyncError::Refused(m) => ApiError::new(ApiErrorCode::Internal, m),
    }
}

/// Re-verifies every signature and right of a membership the relay sent, `hub` being the
/// relay's pinned signing key (see [`Membership::verified`]).
pub fn verify_membership(m: &Membership, hub: PrincipalId) -> Result<Membership, SyncError> {
    m.verified(Some(hub)).map_err(|e| {
        SyncError::Refused(format!(
            "membership of space {} does not verify: {e}",
            m.space().short()
        ))
    })
}
