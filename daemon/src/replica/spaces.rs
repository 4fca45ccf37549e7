//! Spaces and volumes as this device holds them, and how they are stored.
//!
//! Per volume the store keeps: its metadata (cursor, upload progress), a base state
//! (compacted), the batches applied from the relay since the base, and the changes
//! authored here (`local/n`, kept until folded into the base and acknowledged).
//! Reopening rebuilds the replica from base + applied + local; everything is idempotent.

use mes_protocol::access::membership::{Membership, Signed, SpaceGenesis, VolumeDecl};
use mes_protocol::crypto::seal::BundleLink;
use mes_protocol::ids::{Generation, PrincipalId, Seq, SpaceId, VolumeId, VolumeKind};
use serde::{Deserialize, Serialize};

use crate::replica::store::{seq_suffix, suffix_seq, Batch, SealedStore, StoreError};
use crate::replica::volume::{self, Payload, Replica};
use crate::sync::step::VolumeProgress;

/// Applied batches kept before the volume is compacted into its base.
pub const COMPACT_AFTER: usize = 64;

/// A space as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpaceRecord {
    /// The owner-signed genesis.
    pub genesis: Signed<SpaceGenesis>,
    /// Local label (never sent to the relay in clear).
    pub label: String,
    /// Known to the relay.
    pub registered: bool,
    /// Volume declarations.
    pub decls: Vec<Signed<VolumeDecl>>,
    /// Volumes declared here (partitions) the relay has not acknowledged yet.
    pub pending_decls: Vec<Signed<VolumeDecl>>,
}

/// A space in memory.
pub struct Space {
    /// What is stored.
    pub record: SpaceRecord,
    /// The verified membership, once fetched from the relay.
    pub membership: Option<Membership>,
}

impl Space {
    /// Id.
    pub fn id(&self) -> SpaceId {
        self.record.genesis.body.space
    }
    /// The owner: as the verified membership says (a minor after a handover, F9.1), else
    /// the creator named in the genesis.
    pub fn owner(&self) -> PrincipalId {
        self.membership.as_ref().map_or(
            self.record.genesis.body.owner,
            mes_protocol::access::membership::Membership::owner,
        )
    }
    /// The recipient inbox drops are sealed to.
    pub fn inbox_recipient(&self) -> &mes_protocol::crypto::keys::AgeRecipient {
        self.membership
            .as_ref()
            .map_or(&self.record.genesis.body.inbox_recipient, |m| {
                m.inbox_recipient()
            })
    }
    /// Persists the record.
    pub fn save(&self, batch: &mut Batch<'_>) {
        batch.put(
            "spaces",
            &self.id().0,
            &mes_protocol::wire::codec::to_bytes(&self.record),
        );
    }
}

/// A volume's stored metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// Space.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// Kind.
    pub kind: VolumeKind,
    /// Label ("notes", "journal", "inbox").
    pub label: String,
    /// Current generation.
    pub generation: Generation,
    /// Last relay seq applied and stored.
    pub cursor: Seq,
    /// Local changes acknowledged by the relay.
    pub uploaded: u64,
    /// Last local change number assigned.
    pub last_local: u64,
    /// Relay's pruned point last seen.
    pub pruned: Seq,
    /// Counter of the next chained-log entry authored here.
    pub log_counter: u64,
}

impl VolumeMeta {
    /// An empty replica of this volume: nothing but the seed every device derives alike
    /// for a record volume (`record::seed_change`).
    pub fn empty_replica(&self, actor: &[u8]) -> Replica {
        let mut replica = Replica::new(self.kind, actor);
        if let (Replica::Doc(d), Some(seed)) =
            (&mut replica, crate::record::seed_change(&self.label))
        {
            d.apply(std::iter::once(&Payload::Changes(seed)))
                .expect("the seed applies to an empty document");
        }
        replica
    }

    /// A new volume at generation 0, nothing synced or written yet.
    pub fn new(space: SpaceId, volume: VolumeId, kind: VolumeKind, label: &str) -> Self {
        VolumeMeta {
            space,
            volume,
            kind,
            label: label.into(),
            generation: Generation(0),
            cursor: Seq(0),
            uploaded: 0,
            last_local: 0,
            pruned: Seq(0),
            log_counter: 0,
        }
    }
}

/// A volume loaded in memory: its metadata, sync progress and (on first use) replica.
pub struct LoadedVolume {
    /// Metadata.
    pub meta: VolumeMeta,
    /// State, rebuilt from the store on first use (`replica()`): a daemon opens with
    /// every volume's metadata and loads only the volumes it is asked about, so a space
    /// with years of measurement partitions opens as fast as an empty one.
    replica: Option<Replica>,
    /// Where to rebuild the replica from: the store and this device's actor id.
    source: Option<(SealedStore, Vec<u8>)>,
    /// Sync progress.
    pub progress: VolumeProgress,
    /// Link of the last bundle this device uploaded to the volume: the next one names it
    /// (in memory only: after a restart the chain simply starts again).
    pub chain: Option<BundleLink>,
    applied_records: usize,
}

fn ns(volume: VolumeId, what: &str) -> String {
    format!("v/{volume}/{what}")
}

impl LoadedVolume {
    /// A new, empty volume.
    pub fn create(meta: VolumeMeta, actor: &[u8]) -> Self {
        let replica = meta.empty_replica(actor);
        LoadedVolume {
            meta,
            replica: Some(replica),
            source: None,
            progress: VolumeProgress::default(),
            chain: None,
            applied_records: 0,
        }
    }

    /// A stored volume: its metadata now, its replica rebuilt on first use.
    pub fn open(store: &SealedStore, meta: VolumeMeta, actor: &[u8]) -> Self {
        let progress = VolumeProgress {
            cursor: meta.cursor,
            head: meta.cursor,
            uploaded: meta.uploaded,
            durable: meta.last_local,
            pruned: meta.pruned,
            ..Default::default()
        };
        LoadedVolume {
            meta,
            replica: None,
            source: Some((store.clone(), actor.to_vec())),
            progress,
            chain: None,
            applied_records: 0,
        }
    }

    /// The replica, rebuilt from its stored base, applied batches and local changes the
    /// first time it is needed.
    pub fn replica(&mut self) -> Result<&mut Replica, StoreError> {
        if self.replica.is_none() {
            let (store, actor) = self
                .source
                .as_ref()
                .expect("a volume without a replica was opened from a store");
            let (replica, applied_records) = rebuild(store, &self.meta, actor, u64::MAX)?;
            self.applied_records = applied_records;
            self.replica = Some(replica);
        }
        Ok(self.replica.as_mut().expect("just loaded"))
    }

    /// Whether the replica is in memory.
    pub fn is_loaded(&self) -> bool {
        self.replica.is_some()
    }
    /// Moves to a newer generation from its snapshot (the first of `payloads`): a fresh
    /// replica, the old history dropped, and the changes made here that the relay never
    /// acknowledged re-authored on top, so nothing written on this device is lost.
    pub fn switch_generation(
        &mut self,
        store: &SealedStore,
        generation: Generation,
        payloads: &[(Seq, Payload)],
        cursor: Seq,
        actor: &[u8],
        batch: &mut Batch<'_>,
    ) -> Result<(), StoreError> {
        let meta = self.meta.clone();
        let uploaded = self.progress.uploaded;
        let bad = |e: volume::ApplyError| {
            StoreError::corrupt(format!("volume {}: {e}", meta.volume.short()))
        };
        let mut fresh = meta.empty_replica(actor);
        fresh.apply_remote(payloads).map_err(bad)?;
        let mut carried = Vec::new();
        if meta.last_local > uploaded {
            match (&mut fresh, &*self.replica()?) {
                (Replica::Doc(new), Replica::Doc(full)) => {
                    let (acknowledged, _) = rebuild(store, &meta, actor, uploaded)?;
                    let Replica::Doc(before) = acknowledged else {
                        unreachable!("same kind")
                    };
                    let mut keys = full.keys();
                    keys.extend(before.keys());
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        if full.get(&k) == before.get(&k) {
                            continue;
                        }
                        let change = match full.winner(&k) {
                            Some(v) => Some(new.set(&k, &v).map_err(bad)?),
                            None => new.delete(&k).map_err(bad)?,
                        };
                        carried.extend(change);
                    }
                }
                (Replica::Log(new), Replica::Log(old)) => {
                    for e in old.entries().1 {
                        carried.push(new.append(e.clone()));
                    }
                }
                _ => {}
            }
        }
        for what in ["base", "applied", "local"] {
            for (k, _) in store.scan(&ns(self.meta.volume, what))? {
                batch.remove(&ns(self.meta.volume, what), &k);
            }
        }
        self.replica = Some(fresh);
        self.meta.generation = generation;
        self.progress.uploaded = self.meta.last_local;
        self.progress.durable = self.meta.last_local;
        self.applied_records = 0;
        self.record_applied(payloads, cursor, batch);
        for p in &carried {
            self.record_local(p, batch);
        }
        Ok(())
    }

    /// Persists the metadata (with the live progress).
    pub fn save_meta(&mut self, batch: &mut Batch<'_>) {
        self.meta.cursor = self.progress.cursor;
        self.meta.uploaded = self.progress.uploaded;
        self.meta.pruned = self.progress.pruned;
        batch.put(
            "volumes",
            &self.meta.volume.0,
            &mes_protocol::wire::codec::to_bytes(&self.meta),
        );
    }

    /// Records a local change; returns its number.
    pub fn record_local(&mut self, payload: &Payload, batch: &mut Batch<'_>) -> u64 {
        self.meta.last_local += 1;
        let n = self.meta.last_local;
        batch.put(
            &ns(self.meta.volume, "local"),
            &seq_suffix(n),
            &volume::encode(payload),
        );
        self.save_meta(batch);
        n
    }

    /// A local change by number.
    pub fn local(&self, store: &SealedStore, n: u64) -> Result<Payload, StoreError> {
        let bytes = store
            .get(&ns(self.meta.volume, "local"), &seq_suffix(n))?
            .ok_or_else(|| {
                StoreError::corrupt(format!(
                    "local change {n} of volume {} is missing",
                    self.meta.volume.short()
                ))
            })?;
        volume::decode(&bytes).map_err(|e| StoreError::corrupt(e.to_string()))
    }

    /// Records a batch applied from the relay, moving the cursor.
    pub fn record_applied(&mut self, items: &[(Seq, Payload)], cursor: Seq, batch: &mut Batch<'_>) {
        if !items.is_empty() {
            batch.put(
                &ns(self.meta.volume, "applied"),
                &seq_suffix(cursor.0),
                &mes_protocol::wire::codec::to_bytes(&items),
            );
            self.applied_records += 1;
        }
        self.progress.cursor = self.progress.cursor.max(cursor);
        self.save_meta(batch);
    }

    /// Folds applied batches and acknowledged local changes into the base once there are
    /// many (call after the previous writes are durable).
    pub fn compact_if_needed(&mut self, store: &SealedStore) -> Result<bool, StoreError> {
        if self.applied_records < COMPACT_AFTER {
            return Ok(false);
        }
        let Some(replica) = self.replica.as_mut() else {
            return Ok(false);
        };
        let is_doc = matches!(replica, Replica::Doc(_));
        let mut batch = store.batch();
        batch.put(&ns(self.meta.volume, "base"), &[], &replica.snapshot());
        for (k, _) in store.scan(&ns(self.meta.volume, "applied"))? {
            batch.remove(&ns(self.meta.volume, "applied"), &k);
        }
        // Local changes already at the relay come back through the cursor if the base
        // missed them; only automerge bases contain them for sure.
        if is_doc {
            for (k, _) in store.scan(&ns(self.meta.volume, "local"))? {
                if suffix_seq(&k)? <= self.progress.uploaded {
                    batch.remove(&ns(self.meta.volume, "local"), &k);
                }
            }
        }
        store.apply(batch)?;
        self.applied_records = 0;
        Ok(true)
    }
}

/// Rebuilds a replica from its stored base, applied batches, and the local changes up to
/// `local_upto`; returns it with the number of applied batches.
fn rebuild(
    store: &SealedStore,
    meta: &VolumeMeta,
    actor: &[u8],
    local_upto: u64,
) -> Result<(Replica, usize), StoreError> {
    let bad =
        |e: volume::ApplyError| StoreError::corrupt(format!("volume {}: {e}", meta.volume.short()));
    let mut replica = meta.empty_replica(actor);
    if let Some(base) = store.get(&ns(meta.volume, "base"), &[])? {
        replica
            .apply_remote(&[(Seq(0), Payload::Snapshot(base))])
            .map_err(bad)?;
    }
    let applied = store.scan(&ns(meta.volume, "applied"))?;
    for (_, v) in &applied {
        let items: Vec<(Seq, Payload)> = mes_protocol::wire::codec::from_bytes(v)
            .map_err(|e| StoreError::corrupt(format!("applied batch: {e}")))?;
        replica.apply_remote(&items).map_err(bad)?;
    }
    for (k, v) in store.scan(&ns(meta.volume, "local"))? {
        if suffix_seq(&k)? <= local_upto {
            replica
                .apply_local(&volume::decode(&v).map_err(bad)?)
                .map_err(bad)?;
        }
    }
    Ok((replica, applied.len()))
}

/// Loads every space and volume.
pub fn load_all(
    store: &SealedStore,
    actor: &[u8],
) -> Result<(Vec<Space>, Vec<LoadedVolume>), StoreError> {
    let mut spaces = Vec::new();
    for (_, v) in store.scan("spaces")? {
        let record: SpaceRecord = mes_protocol::wire::codec::from_bytes(&v)
            .map_err(|e| StoreError::corrupt(format!("stored space: {e}")))?;
        spaces.push(Space {
            record,
            membership: None,
        });
    }
    let mut volumes = Vec::new();
    for (_, v) in store.scan("volumes")? {
        let meta: VolumeMeta = mes_protocol::wire::codec::from_bytes(&v)
            .map_err(|e| StoreError::corrupt(format!("stored volume: {e}")))?;
        volumes.push(LoadedVolume::open(store, meta, actor));
    }
    Ok((spaces, volumes))
}
