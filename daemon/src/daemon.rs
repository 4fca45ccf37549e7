//! The daemon's state and operations: local calls from the API (acknowledged only once
//! durable) and the sync operations the engine runs against the relay (upload, fetch,
//! snapshot, membership and key refresh).
//!
//! Locking: one std mutex over the in-memory state, never held across an await; sled
//! flushes and relay requests happen outside it.

use mes_protocol::access::membership::{
    DeviceRevocation, Grant, Membership, Role, Signed, SpaceGenesis, VolumeDecl,
};
use mes_protocol::crypto::envelope::{KeyEnvelope, KeySlot};
use mes_protocol::crypto::keys::{AgeSecret, DeviceCert};
use mes_protocol::crypto::seal::{BundleHeader, CipherSuite, SealedBundle, SymmetricKey};
use mes_protocol::ids::{
    DeviceId, Epoch, Generation, PrincipalId, Seq, SpaceId, VolumeId, VolumeKind,
};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{
    ApiError, ApiErrorCode, ApiEvent, DeviceSummary, NoteEntry, SpaceSummary, StatusReport,
    VolumeStatus,
};
use mes_protocol::wire::{Reply, Request, MAX_FETCH};
use rand::rngs::OsRng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc, Notify};

use crate::devices::identity::Identity;
use crate::opening::{OpenContext, Opened};
use crate::replica::keyring::Keyring;
use crate::replica::spaces::{load_all, LoadedVolume, Space, SpaceRecord, VolumeMeta};
use crate::replica::store::{SealedStore, StoreError};
use crate::replica::volume::{self, inbox::Drop, log::LogEntry, Payload, Replica};
use crate::sync::relay_client::{ClientError, RelayClient};

/// A batch opened by the fetching stage, for the applier.
struct OpenedBatch {
    opened: Opened,
    upto: Seq,
    head: Seq,
}

/// Bundles per upload request.
pub const MAX_UPLOAD: u64 = 1024;

/// The in-memory state.
pub struct State {
    /// Keys of this daemon.
    pub identity: Identity,
    /// Spaces.
    pub spaces: BTreeMap<SpaceId, Space>,
    /// Volumes.
    pub volumes: BTreeMap<VolumeId, LoadedVolume>,
    /// Epoch keys.
    pub keys: Keyring,
    /// Connected to the relay.
    pub online: bool,
    /// (slot, device) pairs wrapped during this run.
    pub(crate) wrapped: BTreeSet<(KeySlot, DeviceId)>,
}

/// The daemon.
pub struct Daemon {
    /// The sealed store.
    pub store: SealedStore,
    state: Mutex<State>,
    events: broadcast::Sender<ApiEvent>,
    /// Wakes the sync engine.
    pub wake: Notify,
    /// Restarts the sync session (identity changed through pairing).
    pub reconnect: Notify,
    client: Mutex<Option<Arc<RelayClient>>>,
    suite: CipherSuite,
    pub(crate) pairings: Mutex<HashMap<[u8; 16], mpsc::UnboundedSender<Vec<u8>>>>,
    relay_label: String,
    /// The blob cache and the document size limit.
    pub files: crate::blobs::Files,
    /// Hydrated document volumes, by volume, valid while the volume's heads are unchanged
    /// (search and listing never hydrate 10,000 documents per query).
    pub(crate) doc_cache: crate::record::doc_index::Cache,
    /// One membership refresh at a time: two running at once could store an older
    /// membership over a newer one (a push-driven refresh finishing after a consent's).
    refresh_lock: tokio::sync::Mutex<()>,
    /// One delivery of held items at a time (F1.5), so none is dropped twice.
    pub(crate) held_lock: tokio::sync::Mutex<()>,
    /// Access history logs are read, extended and saved one at a time, so an alarm is
    /// never overwritten by a save that started before it.
    pub(crate) history_lock: tokio::sync::Mutex<()>,
    /// What the hub said of itself (escrow recipients, policy), asked once per run.
    pub(crate) hub_info: Mutex<Option<crate::access::emergency::HubInfo>>,
    /// The relay this daemon syncs with (what a recovery kit names).
    pub relay_target: Mutex<Option<crate::sync::relay_client::RelayTarget>>,
    /// Verified device certificates seen in memberships: who a dropping device is.
    pub(crate) device_principals: Mutex<BTreeMap<DeviceId, PrincipalId>>,
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

fn storage(e: StoreError) -> ApiError {
    ApiError::new(ApiErrorCode::Storage, e.to_string())
}

fn unexpected(r: Reply) -> SyncError {
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
        files: crate::blobs::Files,
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
            identity,
            spaces: spaces.into_iter().map(|s| (s.id(), s)).collect(),
            volumes: volumes.into_iter().map(|v| (v.meta.volume, v)).collect(),
            keys,
            online: false,
            wrapped: BTreeSet::new(),
        };
        Ok(Arc::new(Daemon {
            store,
            state: Mutex::new(state),
            events: broadcast::channel(1024).0,
            wake: Notify::new(),
            reconnect: Notify::new(),
            client: Mutex::new(None),
            suite,
            pairings: Mutex::new(HashMap::new()),
            relay_label,
            files,
            doc_cache: Default::default(),
            refresh_lock: Default::default(),
            held_lock: Default::default(),
            history_lock: Default::default(),
            hub_info: Default::default(),
            relay_target: Default::default(),
            device_principals: Default::default(),
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
        self.client.lock().expect("client lock").clone()
    }

    pub(crate) fn set_client(&self, c: Option<Arc<RelayClient>>) {
        let online = c.is_some();
        *self.client.lock().expect("client lock") = c;
        let mut st = self.state();
        for v in st.volumes.values_mut() {
            v.progress.stalled = false;
        }
        if st.online != online {
            st.online = online;
            if !online {
                for v in st.volumes.values_mut() {
                    v.progress.on_disconnected();
                }
            }
            drop(st);
            self.emit(ApiEvent::Connection { online });
        }
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

    // ----- local operations -------------------------------------------------------------

    /// Status of every volume.
    pub fn status(&self) -> StatusReport {
        let st = self.state();
        StatusReport {
            slow_store_operations: crate::replica::store::WATCHDOG.slow_total(),
            online: st.online,
            relay: self.relay_label.clone(),
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
            let principal = &st.identity.principal;
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
                let mut v = LoadedVolume::create(meta, &st.identity.device.device_id().0);
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
        self.wake.notify_one();
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
        let found = {
            let st = self.state();
            let me = st.identity.principal.principal_id();
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

    fn check_writable(st: &State, space: SpaceId, volume: VolumeId) -> Result<(), ApiError> {
        let s = &st.spaces[&space];
        let me = st.identity.principal.principal_id();
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
            Self::check_writable(&st, space, volume)?;
            let device = st.identity.device.device_id();
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

    /// A record document (the profile, the prevention record) and its conflicts.
    pub fn record_get<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
    ) -> Result<(T, Vec<crate::record::Conflict>), ApiError> {
        self.record_get_in::<T>(space, T::LABEL)
    }

    /// A record document kept in the volume `label` (a thread volume holds messages).
    pub fn record_get_in<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        label: &str,
    ) -> Result<(T, Vec<crate::record::Conflict>), ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, label)? {
            Replica::Doc(d) => Ok((
                d.hydrate()
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?,
                d.conflicts(),
            )),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("{} volume is not a document", T::LABEL),
            )),
        }
    }

    /// Edits a record document, checked against its type and [`RecordDoc::check`];
    /// acknowledged after the flush. The id of the record touched.
    ///
    /// [`RecordDoc::check`]: crate::record::RecordDoc::check
    pub async fn record_edit<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        edit: &mes_protocol::record::RecordEdit,
    ) -> Result<String, ApiError> {
        self.record_update::<T>(space, |current| {
            let (edited, id) = crate::record::edit::apply(&*current, &T::SECTIONS, edit, || {
                hex::encode(rand::Rng::gen::<[u8; 6]>(&mut OsRng))
            })
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))?;
            *current = edited;
            Ok(id)
        })
        .await
    }

    /// Changes a record document through `f` (which answers what it touched), checks it
    /// with [`RecordDoc::check`] and writes the difference; nothing is written on error.
    /// A profile change brings the emergency section's copies up to date.
    ///
    /// [`RecordDoc::check`]: crate::record::RecordDoc::check
    pub async fn record_update<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        f: impl FnOnce(&mut T) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        self.record_update_in::<T>(space, T::LABEL, f).await
    }

    /// [`Daemon::record_update`] on the volume `label`.
    pub async fn record_update_in<T: crate::record::RecordDoc>(
        &self,
        space: SpaceId,
        label: &str,
        f: impl FnOnce(&mut T) -> Result<String, ApiError>,
    ) -> Result<String, ApiError> {
        let mut touched = String::new();
        self.local_change(space, label, |v, _| {
            let Replica::Doc(d) = v.replica().map_err(storage)? else {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    format!("{} volume is not a document", T::LABEL),
                ));
            };
            let mut doc: T = d
                .hydrate()
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            touched = f(&mut doc)?;
            doc.check()
                .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))?;
            d.reconcile(&doc)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
        })
        .await?;
        if T::LABEL == PROFILE {
            // The emergency section keeps copies of the profile (F2.10).
            self.emergency_follow_profile(space).await?;
        }
        Ok(touched)
    }

    /// Brings the emergency section's copies of the profile up to date (F2.10).
    pub async fn emergency_follow_profile(&self, space: SpaceId) -> Result<(), ApiError> {
        let (profile, _) = self.record_get::<mes_protocol::record::Profile>(space)?;
        self.local_change(space, EMERGENCY, |v, _| {
            let Replica::Doc(d) = v.replica().map_err(storage)? else {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "emergency is not a document",
                ));
            };
            let mut e: mes_protocol::record::Emergency = d
                .hydrate()
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            e.copy_from(&profile);
            d.reconcile(&e)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
        })
        .await
        .map(|_| ())
    }

    /// Reminders due by `today + months`, from the profile's person and the prevention
    /// record.
    pub fn reminders(
        &self,
        space: SpaceId,
        today: jiff::civil::Date,
        months: u32,
    ) -> Result<Vec<mes_protocol::record::ReminderItem>, ApiError> {
        let (profile, _) = self.record_get(space)?;
        let (record, _) = self.record_get(space)?;
        crate::record::check::reminders(&profile, &record, today, months)
            .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, e))
    }

    /// Sets a note.
    pub async fn note_set(&self, space: SpaceId, key: &str, value: &str) -> Result<(), ApiError> {
        check_key(key)?;
        self.note_set_internal(space, key, value).await
    }

    /// Sets a note, reserved keys included (blob references, the space label).
    pub(crate) async fn note_set_internal(
        &self,
        space: SpaceId,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        self.local_change(space, NOTES, |v, _| match v.replica().map_err(storage)? {
            Replica::Doc(d) => d
                .set(key, value)
                .map(Some)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string())),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "notes volume is not a document",
            )),
        })
        .await
        .map(|_| ())
    }

    /// Deletes a note; NotFound if absent.
    pub async fn note_delete(&self, space: SpaceId, key: &str) -> Result<(), ApiError> {
        check_key(key)?;
        let changed = self
            .local_change(space, NOTES, |v, _| match v.replica().map_err(storage)? {
                Replica::Doc(d) => d
                    .delete(key)
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string())),
                _ => Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "notes volume is not a document",
                )),
            })
            .await?;
        if changed {
            Ok(())
        } else {
            Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("no note {key:?}"),
            ))
        }
    }

    fn with_doc<T>(
        &self,
        space: SpaceId,
        f: impl FnOnce(&mut volume::doc::DocReplica) -> T,
    ) -> Result<T, ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, NOTES)? {
            Replica::Doc(d) => Ok(f(d)),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "notes volume is not a document",
            )),
        }
    }

    /// A note's values (several on conflict); NotFound if absent.
    pub fn note_get(&self, space: SpaceId, key: &str) -> Result<Vec<String>, ApiError> {
        let values = self.with_doc(space, |d| d.get(key))?;
        if values.is_empty() {
            Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("no note {key:?}"),
            ))
        } else {
            Ok(values)
        }
    }

    /// One note's settled value (the greatest when concurrent edits left several),
    /// reserved keys included; `None` when absent.
    pub(crate) fn note_value(&self, space: SpaceId, key: &str) -> Option<String> {
        self.with_doc(space, |d| d.get(key))
            .ok()
            .and_then(|v| v.into_iter().max())
    }

    /// Every note, reserved keys included (blob references, the label, history heads).
    pub fn note_list_all(&self, space: SpaceId) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        self.with_doc(space, |d| {
            d.keys()
                .into_iter()
                .map(|k| {
                    let v = d.get(&k);
                    (k, v)
                })
                .collect()
        })
    }

    /// The notes whose keys start with `prefix`, without reading the others.
    pub fn note_list_prefix(
        &self,
        space: SpaceId,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        self.with_doc(space, |d| d.with_prefix(prefix))
    }

    /// Every note.
    pub fn note_list(&self, space: SpaceId) -> Result<Vec<NoteEntry>, ApiError> {
        Ok(self
            .note_list_all(space)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(key, values)| NoteEntry { key, values })
            .collect())
    }

    /// Appends to the journal.
    pub async fn log_append(&self, space: SpaceId, text: &str) -> Result<(), ApiError> {
        self.local_change(space, JOURNAL, |v, device| {
            v.meta.log_counter += 1;
            let e = LogEntry {
                author: device,
                counter: v.meta.log_counter,
                at: UnixMillis::now().0,
                text: text.into(),
            };
            match v.replica().map_err(storage)? {
                Replica::Log(l) => Ok(Some(l.append(e))),
                _ => Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "journal volume is not a log",
                )),
            }
        })
        .await
        .map(|_| ())
    }

    /// The journal: applied entries, then pending ones marked.
    pub fn log_read(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, JOURNAL)? {
            Replica::Log(l) => {
                let (applied, pending) = l.entries();
                let mut out: Vec<String> = applied
                    .iter()
                    .map(|(s, e)| format!("#{} {}", s.0, e.text))
                    .collect();
                out.extend(pending.iter().map(|e| format!("(pending) {}", e.text)));
                Ok(out)
            }
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "journal volume is not a log",
            )),
        }
    }

    /// Drops a message into the space's inbox.
    pub async fn inbox_drop(&self, space: SpaceId, text: &str) -> Result<(), ApiError> {
        self.local_change(space, INBOX, |_, device| {
            Ok(Some(Payload::Changes(mes_protocol::wire::codec::to_bytes(
                &Drop {
                    seq: Seq(0),
                    from: device,
                    text: text.into(),
                },
            ))))
        })
        .await
        .map(|_| ())
    }

    /// The inbox (owner only).
    pub fn inbox_read(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        let mut st = self.state();
        Self::volume_of(&st, space, INBOX)?;
        if st.spaces[&space].owner() != st.identity.principal.principal_id() {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "only the space's owner reads its inbox",
            ));
        }
        match Self::replica_of(&mut st, space, INBOX)? {
            Replica::Inbox(i) => Ok(i
                .drops()
                .iter()
                .map(|d| format!("#{} from {}: {}", d.seq.0, d.from.short(), d.text))
                .collect()),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "inbox volume is not an inbox",
            )),
        }
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
        self.state()
            .volumes
            .get_mut(&volume)
            .and_then(|v| v.replica().ok().map(|r| r.digest()))
    }

    // ----- membership and keys ----------------------------------------------------------

    /// This person's devices, as the relay knows them.
    pub async fn list_devices(&self) -> Result<Vec<DeviceSummary>, ApiError> {
        let c = self.online_client("this")?;
        let (me, this) = {
            let st = self.state();
            (
                st.identity.principal.principal_id(),
                st.identity.device.device_id(),
            )
        };
        match c
            .request(Request::ListDevices { principal: me })
            .await
            .map_err(client_api)?
        {
            Reply::Devices { certs } => Ok(certs
                .into_iter()
                .filter(|c| c.verify().is_ok() && c.body.principal == me)
                .map(|c| DeviceSummary {
                    device: c.body.device,
                    name: c.body.name,
                    this_device: c.body.device == this,
                })
                .collect()),
            r => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("unexpected reply {r:?}"),
            )),
        }
    }

    /// Revokes one of this person's devices and starts a new key epoch on every volume
    /// this person administers, wrapped to the remaining devices only.
    pub async fn revoke_device(&self, device: DeviceId) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let revocation = {
            let st = self.state();
            if device == st.identity.device.device_id() {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "a device cannot revoke itself; revoke it from another device",
                ));
            }
            Signed::sign(
                DeviceRevocation {
                    device,
                    revoked_at: UnixMillis::now(),
                },
                &st.identity.principal.signing,
            )
        };
        c.request(Request::RevokeDevice { revocation })
            .await
            .map_err(client_api)?;
        let spaces: Vec<SpaceId> = {
            let mut st = self.state();
            let me = st.identity.principal.principal_id();
            let mut batch = self.store.batch();
            let admin: Vec<(SpaceId, Vec<(VolumeId, Generation)>)> = st
                .spaces
                .values()
                .filter(|s| {
                    s.owner() == me
                        || s.membership
                            .as_ref()
                            .is_some_and(|m| m.role(me, None) == Some(Role::Admin))
                })
                .map(|s| {
                    (
                        s.id(),
                        st.volumes
                            .values()
                            .filter(|v| v.meta.space == s.id() && v.meta.kind != VolumeKind::Inbox)
                            .map(|v| (v.meta.volume, v.meta.generation))
                            .collect(),
                    )
                })
                .collect();
            for (space, vols) in &admin {
                for (volume, generation) in vols {
                    let next = st
                        .keys
                        .current(*volume, *generation)
                        .map(|(e, _)| Epoch(e.0 + 1))
                        .unwrap_or(Epoch(0));
                    let slot = KeySlot {
                        space: *space,
                        volume: *volume,
                        generation: *generation,
                        epoch: next,
                    };
                    st.keys
                        .insert(slot, SymmetricKey::generate(&mut OsRng), &mut batch);
                }
            }
            self.store.apply(batch).map_err(storage)?;
            admin.into_iter().map(|(s, _)| s).collect()
        };
        self.store.flush().await.map_err(storage)?;
        for s in spaces {
            self.refresh_space(&c, s).await.map_err(sync_api)?;
        }
        Ok(())
    }

    /// Grants a role on a space to another principal (None removes it).
    pub async fn grant(
        &self,
        space: SpaceId,
        principal: PrincipalId,
        role: Option<Role>,
    ) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let grant = {
            let st = self.state();
            let now = UnixMillis::now();
            Signed::sign(
                Grant {
                    space,
                    volume: None,
                    principal,
                    role,
                    version: now.0,
                    issued_at: now,
                    expires_at: None,
                },
                &st.identity.principal.signing,
            )
        };
        c.request(Request::PutGrant { grant })
            .await
            .map_err(client_api)?;
        self.refresh_space(&c, space).await.map_err(sync_api)
    }

    /// Uploads a snapshot of a volume at its cursor, letting the relay prune behind it.
    pub async fn put_snapshot(&self, space: SpaceId, label: &str) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let (volume, upto, bundle) = {
            let mut st = self.state();
            let volume = Self::volume_of(&st, space, label)?;
            let device = &st.identity.device;
            let header_author = device.device_id();
            let v = &st.volumes[&volume];
            let (generation, upto) = (v.meta.generation, v.progress.cursor);
            let Some((epoch, key)) = st.keys.current(volume, generation) else {
                return Err(ApiError::new(
                    ApiErrorCode::Forbidden,
                    "no key for this volume yet",
                ));
            };
            let key = key.duplicate();
            let body = st
                .volumes
                .get_mut(&volume)
                .expect("volume")
                .replica()
                .map_err(storage)?
                .snapshot();
            let header = BundleHeader {
                suite: self.suite,
                space,
                volume,
                generation,
                epoch,
                author: header_author,
                nonce: [0; 24],
                prev: None,
            };
            let b = SealedBundle::seal(
                &key,
                header,
                &st.identity.device.signing,
                &mut OsRng,
                &volume::encode(&Payload::Snapshot(body)),
            );
            (volume, upto, b)
        };
        if upto == Seq(0) {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "nothing synced yet: the volume's cursor is 0",
            ));
        }
        c.request(Request::PutSnapshot {
            space,
            volume,
            upto,
            snapshot: bundle,
            prune: true,
        })
        .await
        .map_err(client_api)?;
        Ok(())
    }

    /// Registers spaces created here that the relay does not know yet, and volumes
    /// declared here since (partitions).
    pub async fn register_pending(&self, c: &RelayClient) -> Result<(), SyncError> {
        let partitions: Vec<(SpaceId, Vec<Signed<VolumeDecl>>)> = self
            .state()
            .spaces
            .values()
            .filter(|s| s.record.registered && !s.record.pending_decls.is_empty())
            .map(|s| (s.id(), s.record.pending_decls.clone()))
            .collect();
        for (space, decls) in partitions {
            for decl in &decls {
                c.request(Request::DeclareVolume { decl: decl.clone() })
                    .await?;
            }
            {
                let mut st = self.state();
                let mut batch = self.store.batch();
                if let Some(s) = st.spaces.get_mut(&space) {
                    s.record.pending_decls.retain(|d| !decls.contains(d));
                    s.save(&mut batch);
                }
                self.store.apply(batch)?;
            }
            self.refresh_space(c, space).await?;
        }
        let unregistered: Vec<SpaceRecord> = self
            .state()
            .spaces
            .values()
            .filter(|s| !s.record.registered)
            .map(|s| s.record.clone())
            .collect();
        for rec in unregistered {
            c.request(Request::RegisterSpace {
                genesis: rec.genesis.clone(),
            })
            .await?;
            for decl in rec.decls.iter().chain(&rec.pending_decls) {
                c.request(Request::DeclareVolume { decl: decl.clone() })
                    .await?;
            }
            {
                let mut st = self.state();
                let mut batch = self.store.batch();
                if let Some(s) = st.spaces.get_mut(&rec.genesis.body.space) {
                    s.record.registered = true;
                    s.record.pending_decls.clear();
                    s.save(&mut batch);
                }
                self.store.apply(batch)?;
            }
            self.refresh_space(c, rec.genesis.body.space).await?;
        }
        Ok(())
    }

    /// Registers local spaces the relay does not know, discovers the person's other spaces,
    /// refreshes membership and keys, and subscribes to every volume.
    pub async fn bootstrap(&self, c: &RelayClient) -> Result<(), SyncError> {
        self.register_pending(c).await?;
        let Reply::Spaces { spaces } = c.request(Request::ListSpaces).await? else {
            return Err(SyncError::Refused(
                "ListSpaces answered something else".into(),
            ));
        };
        for genesis in spaces {
            if genesis.verify().is_err() || genesis.signer != genesis.body.owner {
                tracing::warn!(
                    "ignoring space {} with a bad genesis signature",
                    genesis.body.space.short()
                );
                continue;
            }
            let mut st = self.state();
            if !st.spaces.contains_key(&genesis.body.space) {
                let label = format!("space {}", genesis.body.space.short());
                let s = Space {
                    record: SpaceRecord {
                        genesis,
                        label,
                        registered: true,
                        decls: Vec::new(),
                        pending_decls: Vec::new(),
                    },
                    membership: None,
                };
                let mut batch = self.store.batch();
                s.save(&mut batch);
                st.spaces.insert(s.id(), s);
                self.store.apply(batch)?;
            }
        }
        let ids: Vec<SpaceId> = self
            .state()
            .spaces
            .values()
            .filter(|s| s.record.registered)
            .map(|s| s.id())
            .collect();
        for s in ids {
            match self.refresh_space(c, s).await {
                Err(e @ SyncError::Client(ClientError::Closed(_))) => return Err(e),
                Err(e) => tracing::warn!("space {} not refreshed: {e}", s.short()),
                Ok(()) => {}
            }
        }
        self.store.flush().await?;
        Ok(())
    }

    /// Fetches and verifies a space's membership, learns new volumes, wraps keys for new
    /// member devices (if admin), collects keys wrapped for this device, and subscribes.
    pub async fn refresh_space(&self, c: &RelayClient, space: SpaceId) -> Result<(), SyncError> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        self.learn_hub(c).await?;
        let recovery_recipient = self.recovery_recipient(space);
        let (membership, devices) = match c.request(Request::GetMembership { space }).await? {
            Reply::Membership {
                membership,
                devices,
            } => (verify_membership(&membership, c.relay_key)?, devices),
            r => return Err(unexpected(r)),
        };
        self.check_labels_kept(&membership)?;
        {
            let mut known = self.device_principals.lock().expect("device principals");
            for cert in devices.iter().filter(|c| c.verify().is_ok()) {
                known.insert(cert.body.device, cert.body.principal);
            }
        }
        // The owner's devices rotate away from who left (they derive the same keys).
        if membership.owner() == self.state().identity.principal.principal_id() {
            self.rotate_lapsed(space, &membership)
                .map_err(|e| SyncError::Refused(e.message))?;
        }
        if membership.owner() == self.state().identity.principal.principal_id() {
            let mine: Vec<(DeviceId, String)> = devices
                .iter()
                .filter(|c| c.body.principal == membership.owner() && c.verify().is_ok())
                .map(|c| (c.body.device, c.body.name.clone()))
                .collect();
            self.notice_devices(space, &mine);
        }
        let (envelopes, volumes) = {
            let mut st = self.state();
            let actor = st.identity.device.device_id().0;
            let me = st.identity.principal.principal_id();
            let mut batch = self.store.batch();
            for decl in membership.volumes.values() {
                let d = &decl.body;
                match st.volumes.get_mut(&d.volume) {
                    Some(v) => {
                        if d.generation > v.meta.generation {
                            // The switch happens when the snapshot is fetched.
                            tracing::debug!(
                                "volume {} moved to generation {}",
                                d.volume.short(),
                                d.generation.0
                            );
                        }
                    }
                    None => {
                        let meta = VolumeMeta {
                            space,
                            volume: d.volume,
                            kind: d.kind,
                            label: d.label.clone(),
                            generation: d.generation,
                            cursor: Seq(0),
                            uploaded: 0,
                            last_local: 0,
                            pruned: Seq(0),
                            log_counter: 0,
                        };
                        let mut v = LoadedVolume::create(meta, &actor);
                        v.save_meta(&mut batch);
                        st.volumes.insert(d.volume, v);
                    }
                }
            }
            let envelopes = if membership.role(me, None) == Some(Role::Admin) {
                let mut e = self.wrap_missing(&mut st, &membership, &devices);
                e.extend(self.wrap_escrow(&mut st, &membership));
                e.extend(crate::devices::recovery::wrap_recovery(
                    &mut st,
                    &membership,
                    recovery_recipient.as_ref(),
                ));
                e
            } else {
                Vec::new()
            };
            let volumes: Vec<VolumeId> = membership
                .volumes
                .values()
                .filter(|d| {
                    membership
                        .role(me, Some(d.body.volume))
                        .is_some_and(Role::can_read)
                })
                .map(|d| d.body.volume)
                .collect();
            if let Some(s) = st.spaces.get_mut(&space) {
                s.record.decls = membership.volumes.values().cloned().collect();
                let known = &membership.volumes;
                s.record
                    .pending_decls
                    .retain(|d| known.get(&d.body.volume) != Some(d));
                s.membership = Some(membership);
                s.save(&mut batch);
            }
            self.store.apply(batch)?;
            (envelopes, volumes)
        };
        for chunk in envelopes.chunks(512) {
            c.request(Request::PutEnvelopes {
                envelopes: chunk.to_vec(),
            })
            .await?;
            // Marked only once stored, so a refused batch is wrapped again next time.
            let mut st = self.state();
            for e in chunk {
                st.wrapped.insert((e.slot, e.recipient));
            }
        }
        self.collect_envelopes(c, space).await?;
        self.collect_recovery_envelopes(c, space).await?;
        // Volumes opened without a role: an emergency release (F7.5) wraps keys only.
        let volumes = {
            let st = self.state();
            let mut volumes = volumes;
            for v in st.volumes.values().filter(|v| v.meta.space == space) {
                if !volumes.contains(&v.meta.volume)
                    && st.keys.current(v.meta.volume, v.meta.generation).is_some()
                {
                    volumes.push(v.meta.volume);
                }
            }
            volumes
        };
        if !volumes.is_empty() {
            match c.request(Request::Subscribe { space, volumes }).await? {
                Reply::Done => {}
                r => return Err(unexpected(r)),
            }
        }
        self.sync_history(c, space).await
    }

    fn wrap_missing(
        &self,
        st: &mut State,
        m: &Membership,
        devices: &[DeviceCert],
    ) -> Vec<KeyEnvelope> {
        let mut out = Vec::new();
        let me = st.identity.device.device_id();
        let live = m.at(UnixMillis::now());
        for decl in m.volumes.values() {
            let d = &decl.body;
            if d.kind == VolumeKind::Inbox {
                continue;
            }
            let readers = live.readers(d.volume);
            for cert in devices {
                // Daemons verify what the relay says before wrapping keys to anyone.
                if cert.body.device == me
                    || !readers.contains(&cert.body.principal)
                    || cert.verify().is_err()
                {
                    continue;
                }
                for (slot, key) in st.keys.slots(d.volume, d.generation) {
                    if st.wrapped.contains(&(slot, cert.body.device)) {
                        continue;
                    }
                    match KeyEnvelope::wrap(
                        slot,
                        key,
                        cert.body.device,
                        &cert.body.recipient,
                        &st.identity.principal.signing,
                    ) {
                        Ok(e) => out.push(e),
                        Err(e) => tracing::warn!(
                            "cannot wrap to device {}: {e}",
                            cert.body.device.short()
                        ),
                    }
                }
            }
        }
        out
    }

    /// Opens the key envelopes the relay holds for this device.
    pub async fn collect_envelopes(
        &self,
        c: &RelayClient,
        space: SpaceId,
    ) -> Result<usize, SyncError> {
        let Reply::Envelopes { envelopes } = c.request(Request::GetEnvelopes { space }).await?
        else {
            return Err(SyncError::Refused(
                "GetEnvelopes answered something else".into(),
            ));
        };
        self.open_envelopes(space, envelopes, None, c.relay_key)
            .await
    }

    /// Opens envelopes with this device's key (or `identity`, the recovery identity),
    /// keeps the keys not held yet, and wakes the volumes that waited for them.
    pub(crate) async fn open_envelopes(
        &self,
        space: SpaceId,
        envelopes: Vec<KeyEnvelope>,
        identity: Option<&AgeSecret>,
        hub: PrincipalId,
    ) -> Result<usize, SyncError> {
        let added = {
            let mut st = self.state();
            let Some(m) = st.spaces.get(&space).and_then(|s| s.membership.clone()) else {
                return Ok(0);
            };
            let now = UnixMillis::now();
            let m = m.at(now);
            let mut batch = self.store.batch();
            let mut added = 0;
            for e in envelopes {
                if st
                    .keys
                    .get(e.slot.volume, e.slot.generation, e.slot.epoch)
                    .is_some()
                {
                    continue;
                }
                // Only a key someone may choose is adopted (a hub's own key is not).
                if let Err(why) = mes_protocol::crypto::envelope::may_adopt(&e, &m, hub) {
                    tracing::warn!(
                        "envelope for {} refused on {}: {why}",
                        e.slot.volume.short(),
                        st.identity.name()
                    );
                    continue;
                }
                if st
                    .keys
                    .get(e.slot.volume, e.slot.generation, e.slot.epoch)
                    .is_some()
                {
                    continue;
                }
                match e.unwrap(identity.unwrap_or(&st.identity.device.age)) {
                    Ok(k) => {
                        if st.keys.insert(e.slot, k, &mut batch) {
                            added += 1;
                        }
                    }
                    Err(err) => tracing::warn!("{err}"),
                }
            }
            self.store.apply(batch)?;
            if added > 0 {
                for v in st.volumes.values_mut().filter(|v| v.meta.space == space) {
                    v.progress.stalled = false;
                }
            }
            added
        };
        if added > 0 {
            self.store.flush().await?;
            self.wake.notify_one();
        }
        Ok(added)
    }

    // ----- sync steps -------------------------------------------------------------------

    /// Uploads local changes `from..=to` of a volume.
    pub async fn upload(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        from: u64,
        to: u64,
    ) -> Result<(), SyncError> {
        let (space, bundles, link) = {
            let st = self.state();
            let v = &st.volumes[&volume];
            let space = v.meta.space;
            let author = st.identity.device.device_id();
            let header = |epoch, prev| BundleHeader {
                suite: self.suite,
                space,
                volume,
                generation: v.meta.generation,
                epoch,
                author,
                nonce: [0; 24],
                prev,
            };
            let mut prev = v.chain;
            let mut bundles = Vec::with_capacity((to - from + 1) as usize);
            for n in from..=to {
                let plain = volume::encode(&v.local(&self.store, n)?);
                let b = if v.meta.kind == VolumeKind::Inbox {
                    let inbox = st.spaces[&space].inbox_recipient();
                    SealedBundle::seal_drop(
                        inbox,
                        header(Epoch(0), None),
                        &st.identity.device.signing,
                        &plain,
                    )
                    .map_err(|e| SyncError::Refused(e.to_string()))?
                } else {
                    let Some((epoch, key)) = st.keys.current(volume, v.meta.generation) else {
                        return Err(SyncError::Refused(format!(
                            "no key yet for volume {}",
                            volume.short()
                        )));
                    };
                    SealedBundle::seal(
                        key,
                        header(epoch, prev),
                        &st.identity.device.signing,
                        &mut OsRng,
                        &plain,
                    )
                };
                prev = Some(b.link());
                bundles.push(b);
            }
            (space, bundles, prev)
        };
        let last = match c
            .request(Request::Append {
                space,
                volume,
                bundles,
            })
            .await?
        {
            Reply::Appended { last, .. } => last,
            r => return Err(unexpected(r)),
        };
        let mut st = self.state();
        let v = st.volumes.get_mut(&volume).expect("volume");
        v.progress.on_uploaded(to, last);
        v.chain = link;
        let mut batch = self.store.batch();
        v.save_meta(&mut batch);
        self.store.apply(batch)?;
        Ok(())
    }

    /// What opening bundles of a volume needs; fetches key envelopes once if some keys
    /// are missing.
    async fn open_context(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        items: &[(Seq, SealedBundle)],
    ) -> Result<OpenContext, SyncError> {
        let mut ctx = self.snapshot_keys(volume, items);
        if ctx.misses_keys(items) {
            self.collect_envelopes(c, ctx.space).await?;
            ctx = self.snapshot_keys(volume, items);
        }
        Ok(ctx)
    }

    fn snapshot_keys(&self, volume: VolumeId, items: &[(Seq, SealedBundle)]) -> OpenContext {
        let st = self.state();
        let v = &st.volumes[&volume];
        let mut keys = HashMap::new();
        for (_, b) in items {
            let h = &b.header;
            if let Some(k) = st.keys.get(volume, h.generation, h.epoch) {
                keys.entry((h.generation, h.epoch))
                    .or_insert_with(|| k.duplicate());
            }
        }
        let owner = st.spaces[&v.meta.space].owner() == st.identity.principal.principal_id();
        let inbox = owner.then(|| {
            AgeSecret::parse(&st.identity.principal.age.to_secret_string())
                .expect("own age key parses")
        });
        OpenContext {
            space: v.meta.space,
            volume,
            generation: v.meta.generation,
            kind: v.meta.kind,
            keys,
            inbox,
            allow_null: self.suite == CipherSuite::Null,
        }
    }

    /// Opens bundles fetched for a volume.
    async fn open_all(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        items: Vec<(Seq, SealedBundle)>,
    ) -> Result<Opened, SyncError> {
        let ctx = self.open_context(c, volume, &items).await?;
        tokio::task::block_in_place(|| ctx.open(&items))
    }

    /// Fetches and applies bundles after `after`; the cursor moves only once they are
    /// stored.
    ///
    /// Two stages run in parallel: this task fetches (the next batch already on the wire)
    /// and opens batches (verification and decryption on a blocking thread), and an
    /// applier task applies and stores whatever has been opened since it last ran, in one
    /// automerge call (automerge applies large batches far faster than small ones).
    pub async fn fetch(
        self: &Arc<Self>,
        c: &Arc<RelayClient>,
        volume: VolumeId,
        after: Seq,
    ) -> Result<(), SyncError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<OpenedBatch>(8);
        let applier = tokio::spawn(self.clone().apply_opened(volume, rx));
        let fetched = self.fetch_and_open(c, volume, after, tx).await;
        let applied = applier
            .await
            .map_err(|e| SyncError::Refused(format!("applier task: {e}")))?;
        let pruned = fetched?;
        applied?;
        if let Some((upto, head, pruned)) = pruned {
            let mut st = self.state();
            let v = st.volumes.get_mut(&volume).expect("volume");
            v.progress.on_fetched(upto, head, pruned);
        }
        Ok(())
    }

    /// The fetching and opening stage; returns `(cursor, head, pruned point)` when the
    /// relay answered that the log behind the cursor was pruned.
    async fn fetch_and_open(
        &self,
        c: &Arc<RelayClient>,
        volume: VolumeId,
        after: Seq,
        tx: tokio::sync::mpsc::Sender<OpenedBatch>,
    ) -> Result<Option<(Seq, Seq, Seq)>, SyncError> {
        let space = self.state().volumes[&volume].meta.space;
        let request = move |after| Request::Fetch {
            space,
            volume,
            after,
            max: MAX_FETCH,
        };
        let mut reply = c.request(request(after)).await?;
        let mut asked = after;
        let mut ctx: Option<Arc<OpenContext>> = None;
        loop {
            let (items, head, pruned) = match reply {
                Reply::Bundles {
                    items,
                    head,
                    pruned_upto,
                } => (items, head, pruned_upto),
                r => return Err(unexpected(r)),
            };
            if let Some(p) = pruned.filter(|p| *p > asked) {
                return Ok(Some((asked, head, p)));
            }
            let cursor = items.last().map(|(s, _)| *s).unwrap_or(asked);
            if let Some((first, _)) = items.first() {
                if *first != asked.next() {
                    return Err(SyncError::Refused(format!(
                        "relay skipped from {} to {}",
                        asked.0, first.0
                    )));
                }
            }
            let next = (!items.is_empty() && cursor < head).then(|| {
                let c = c.clone();
                tokio::spawn(async move { c.request(request(cursor)).await })
            });
            // The keys are copied once per fetch (not per batch: the applier holds the
            // state while it applies), and again only when a bundle needs a new one.
            if ctx
                .as_ref()
                .is_none_or(|k: &Arc<OpenContext>| k.misses_keys(&items))
            {
                ctx = Some(Arc::new(self.open_context(c, volume, &items).await?));
            }
            let batch_ctx = ctx.clone().expect("set above");
            let opened = tokio::task::spawn_blocking(move || batch_ctx.open(&items))
                .await
                .map_err(|e| SyncError::Refused(format!("bundle opening task: {e}")))??;
            if tx
                .send(OpenedBatch {
                    opened,
                    upto: cursor,
                    head,
                })
                .await
                .is_err()
            {
                // The applier stopped on an error, which it reports.
                return Ok(None);
            }
            match next {
                Some(n) => {
                    reply = n
                        .await
                        .map_err(|e| SyncError::Refused(format!("prefetch task: {e}")))??;
                    asked = cursor;
                }
                None => return Ok(None),
            }
        }
    }

    /// The applying stage: merges every batch opened since it last ran (a new generation
    /// is applied on its own) and stores them.
    async fn apply_opened(
        self: Arc<Self>,
        volume: VolumeId,
        mut rx: tokio::sync::mpsc::Receiver<OpenedBatch>,
    ) -> Result<(), SyncError> {
        while let Some(first) = rx.recv().await {
            let mut waiting = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            let mut merged: Option<OpenedBatch> = None;
            for b in waiting {
                match &mut merged {
                    Some(m)
                        if m.opened.new_generation.is_none()
                            && b.opened.new_generation.is_none() =>
                    {
                        m.opened.payloads.extend(b.opened.payloads);
                        m.opened.quarantined.extend(b.opened.quarantined);
                        m.upto = b.upto;
                        m.head = m.head.max(b.head);
                    }
                    _ => {
                        if let Some(m) = merged.take() {
                            self.apply_fetched(volume, m.opened, m.upto, m.head, Seq(0))
                                .await?;
                        }
                        merged = Some(b);
                    }
                }
            }
            if let Some(m) = merged {
                self.apply_fetched(volume, m.opened, m.upto, m.head, Seq(0))
                    .await?;
            }
        }
        Ok(())
    }

    /// Converges from the relay's snapshot when the log behind it was pruned.
    pub async fn fetch_snapshot(&self, c: &RelayClient, volume: VolumeId) -> Result<(), SyncError> {
        let space = self.state().volumes[&volume].meta.space;
        let (upto, bundle) = match c.request(Request::GetSnapshot { space, volume }).await? {
            Reply::Snapshot { upto, snapshot } => (upto, snapshot),
            r => return Err(unexpected(r)),
        };
        let opened = self.open_all(c, volume, vec![(upto, bundle)]).await?;
        let pruned = self.state().volumes[&volume].progress.pruned;
        self.apply_fetched(volume, opened, upto, upto, pruned).await
    }

    async fn apply_fetched(
        &self,
        volume: VolumeId,
        Opened {
            payloads,
            new_generation,
            quarantined,
        }: Opened,
        cursor: Seq,
        head: Seq,
        pruned: Seq,
    ) -> Result<(), SyncError> {
        // CPU-heavy (automerge): let the runtime move other tasks off this thread.
        let space = tokio::task::block_in_place(|| {
            let mut st = self.state();
            let actor = st.identity.device.device_id().0;
            let v = st.volumes.get_mut(&volume).expect("volume");
            let mut batch = self.store.batch();
            match new_generation {
                Some(g) => {
                    v.switch_generation(&self.store, g, &payloads, cursor, &actor, &mut batch)?
                }
                None => {
                    v.replica()?
                        .apply_remote(&payloads)
                        .map_err(|e| SyncError::Refused(e.to_string()))?;
                    v.record_applied(&payloads, cursor, &mut batch);
                }
            }
            self.store.apply(batch)?;
            Ok::<_, SyncError>(v.meta.space)
        })?;
        self.store.flush().await?;
        {
            let mut st = self.state();
            let v = st.volumes.get_mut(&volume).expect("volume");
            v.progress.on_fetched(cursor, head, pruned);
            // Changes carried over a generation switch were flushed just above.
            v.progress.on_durable(v.meta.last_local);
            v.compact_if_needed(&self.store)?;
        }
        for (seq, why) in &quarantined {
            // Set aside, past the cursor: the person hears of it once (issue 22, finding 7).
            tracing::warn!(
                "inbox drop {} of space {} set aside: {why}",
                seq.0,
                space.short()
            );
            self.notify(
                space,
                "document",
                format!(
                    "Un dépôt dans votre boîte (n° {}) n'a pas pu être ouvert ; il est mis de côté : {why}",
                    seq.0
                ),
                format!(
                    "A drop in your inbox (no. {}) could not be opened; it is set aside: {why}",
                    seq.0
                ),
            );
        }
        if !payloads.is_empty() {
            let label = self
                .state()
                .volumes
                .get(&volume)
                .map(|v| v.meta.label.clone())
                .unwrap_or_default();
            if label == INBOX {
                if let Err(e) = self.file_inbox(space).await {
                    tracing::warn!("filing the inbox of {}: {}", space.short(), e.message);
                }
            }
            // Clients hear of the change before the history heads are compared: that is
            // housekeeping, not what they wait for (issue 23's latency).
            self.emit(ApiEvent::VolumeChanged { space, volume });
            if label == NOTES {
                // Another device may have published its access history head.
                self.recheck_history(space).await;
            }
        }
        Ok(())
    }
}

impl Daemon {
    /// Refuses a membership that relabels a volume this device knows, unless the owner
    /// signed it, and any that makes a private volume shared (issue 22, finding 2): a
    /// relay can serve a former owner's relabelling as if it were the first declaration,
    /// so the labels this device first saw are the reference, not the relay's copy.
    fn check_labels_kept(&self, m: &Membership) -> Result<(), SyncError> {
        let st = self.state();
        for decl in m.volumes.values() {
            let Some(known) = st.volumes.get(&decl.body.volume) else {
                continue;
            };
            let old = mes_protocol::access::membership::VolumeDecl {
                label: known.meta.label.clone(),
                ..decl.body.clone()
            };
            mes_protocol::access::membership::check_relabel(
                &old,
                &decl.body,
                decl.signer == m.owner(),
            )
            .map_err(|e| {
                SyncError::Refused(format!(
                    "membership of space {} refused: {e}",
                    m.space().short()
                ))
            })?;
        }
        Ok(())
    }
}

/// Key under which a space's label is kept in its notes document.
pub const LABEL_KEY: &str = "_label";

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.starts_with('_') || key.len() > 256 {
        Err(ApiError::new(
            ApiErrorCode::BadRequest,
            format!("note key {key:?} must be 1 to 256 bytes and not start with '_'"),
        ))
    } else {
        Ok(())
    }
}

fn client_api(e: ClientError) -> ApiError {
    match e {
        ClientError::Closed(m) => ApiError::new(ApiErrorCode::Offline, m),
        ClientError::Refused(w) => ApiError::new(ApiErrorCode::Forbidden, w.to_string()),
    }
}

fn sync_api(e: SyncError) -> ApiError {
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
