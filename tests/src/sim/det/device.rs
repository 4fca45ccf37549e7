//! A simulated device: the daemon's sync decisions on the real cores (the sans-IO
//! [`VolumeProgress`], automerge [`Replica`], bundle sealing and [`OpenContext`] opening),
//! over a simulated disk that a crash reduces to what was flushed.

use mes_daemon::replica::volume::{self, Payload, Replica};
use mes_daemon::sync::opening::OpenContext;
use mes_daemon::sync::sealing::{SealWith, Sealing};
use mes_daemon::sync::step::{Backoff, VolumeProgress};
use mes_protocol::crypto::keys::{DeviceCert, KeyPair};
use mes_protocol::crypto::seal::{BundleLink, CipherSuite, SealedBundle, SymmetricKey};
use mes_protocol::ids::{Epoch, Generation, Seq, SpaceId, VolumeId, VolumeKind};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::Duration;

/// What survives a crash: flushed local changes, applied remote changes and the cursor.
#[derive(Default)]
pub struct VolumeDisk {
    /// Local changes `1..=len`, flushed.
    pub local: Vec<Payload>,
    /// Remote payloads applied and flushed, in relay order.
    pub applied: Vec<Payload>,
    /// Last relay seq applied and flushed.
    pub cursor: Seq,
    /// Local changes acknowledged by the relay (an optimisation: after a crash, older
    /// values only cause harmless re-uploads).
    pub uploaded: u64,
}

/// One volume of a device.
pub struct SimVolume {
    /// Its id.
    pub id: VolumeId,
    /// The epoch key (shared by the space's devices out of band in the simulation).
    pub key: SymmetricKey,
    /// Durable state.
    pub disk: VolumeDisk,
    /// The replica in memory.
    pub replica: Replica,
    /// The sync core's progress.
    pub progress: VolumeProgress,
    /// Edits made but not flushed yet: `(key, value)` with their payloads.
    pub unflushed: Vec<(String, String, Payload)>,
    /// Link of the last uploaded bundle.
    pub chain: Option<BundleLink>,
}

/// A request this device waits for the answer of.
#[derive(Clone, Debug)]
pub enum Pending {
    /// Append of local changes up to `to`; the last bundle's link.
    Upload {
        /// Volume index.
        volume: usize,
        /// Last local change sent.
        to: u64,
        /// Link of the last bundle sent.
        link: Option<BundleLink>,
    },
    /// Fetch past `after`.
    Fetch {
        /// Volume index.
        volume: usize,
        /// Cursor asked from.
        after: Seq,
    },
    /// Subscription at connection time.
    Subscribe,
}

/// A simulated device.
pub struct SimDevice {
    /// Index in the world.
    pub index: usize,
    /// Its person.
    pub person: usize,
    /// Its keys.
    pub keys: KeyPair,
    /// Its certificate.
    pub cert: DeviceCert,
    /// Its person's space.
    pub space: SpaceId,
    /// Volumes of the space.
    pub volumes: Vec<SimVolume>,
    /// The process runs.
    pub up: bool,
    /// Bumped at each crash: events of an earlier life are ignored.
    pub incarnation: u64,
    /// The live connection, if any.
    pub conn: Option<u64>,
    /// A connection attempt is scheduled.
    pub connecting: bool,
    /// Reconnection backoff (the daemon's core).
    pub backoff: Backoff,
    /// Requests in flight on the live connection.
    pub pending: HashMap<u64, Pending>,
    /// Cut from the relay until this time (partition or offline).
    pub cut_until: u64,
    /// A flush is scheduled.
    pub flush_scheduled: bool,
}

/// Largest fetch the simulated devices ask for (small, so catching up takes many rounds).
pub const SIM_FETCH: u32 = 64;

impl SimDevice {
    /// A new device with empty volumes.
    pub fn new(
        index: usize,
        person: usize,
        keys: KeyPair,
        cert: DeviceCert,
        space: SpaceId,
        volumes: &[(VolumeId, [u8; 32])],
    ) -> Self {
        let actor = keys.device_id().0;
        SimDevice {
            index,
            person,
            space,
            volumes: volumes
                .iter()
                .map(|(id, key)| SimVolume {
                    id: *id,
                    key: SymmetricKey::from_bytes(*key),
                    disk: VolumeDisk::default(),
                    replica: Replica::new(VolumeKind::Automerge, &actor),
                    progress: VolumeProgress::default(),
                    unflushed: Vec::new(),
                    chain: None,
                })
                .collect(),
            keys,
            cert,
            up: true,
            incarnation: 0,
            conn: None,
            connecting: false,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            pending: HashMap::new(),
            cut_until: 0,
            flush_scheduled: false,
        }
    }

    /// SIGKILL: memory is gone, the disk stays.
    pub fn crash(&mut self) {
        self.up = false;
        self.incarnation += 1;
        self.conn = None;
        self.connecting = false;
        self.pending.clear();
        self.flush_scheduled = false;
        for v in &mut self.volumes {
            v.unflushed.clear();
        }
    }

    /// Restart: every replica rebuilt from the disk, progress from the stored cursor.
    pub fn restart(&mut self) -> Result<(), String> {
        let actor = self.keys.device_id().0;
        for v in &mut self.volumes {
            let mut replica = Replica::new(VolumeKind::Automerge, &actor);
            let applied: Vec<(Seq, Payload)> =
                v.disk.applied.iter().map(|p| (Seq(0), p.clone())).collect();
            replica.apply_remote(&applied).map_err(|e| e.to_string())?;
            for p in &v.disk.local {
                replica.apply_local(p).map_err(|e| e.to_string())?;
            }
            v.replica = replica;
            v.progress = VolumeProgress {
                cursor: v.disk.cursor,
                head: v.disk.cursor,
                uploaded: v.disk.uploaded,
                durable: v.disk.local.len() as u64,
                ..Default::default()
            };
            v.chain = None;
        }
        self.up = true;
        Ok(())
    }

    /// The connection dropped: what was in flight is redone on the next one.
    pub fn disconnected(&mut self) {
        self.conn = None;
        self.pending.clear();
        for v in &mut self.volumes {
            v.progress.on_disconnected();
        }
    }

    /// An edit, applied to the replica; durable only after [`SimDevice::flush`].
    pub fn edit(&mut self, volume: usize, key: &str, value: &str) -> Result<(), String> {
        let v = &mut self.volumes[volume];
        let Replica::Doc(doc) = &mut v.replica else {
            return Err("the simulation only writes automerge volumes".into());
        };
        let p = doc.set(key, value).map_err(|e| e.to_string())?;
        v.unflushed.push((key.to_string(), value.to_string(), p));
        Ok(())
    }

    /// Flushes every unflushed edit; returns them `(volume, key, value)`.
    pub fn flush(&mut self) -> Vec<(usize, String, String)> {
        self.flush_scheduled = false;
        let mut out = Vec::new();
        for (i, v) in self.volumes.iter_mut().enumerate() {
            for (k, val, p) in v.unflushed.drain(..) {
                v.disk.local.push(p);
                out.push((i, k, val));
            }
            v.progress.on_durable(v.disk.local.len() as u64);
        }
        out
    }

    /// Seals local changes `from..=to` of a volume as the daemon's upload does: one
    /// bundle per change, chained.
    pub fn seal_upload(
        &self,
        volume: usize,
        from: u64,
        to: u64,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<SealedBundle>, Option<BundleLink>) {
        let v = &self.volumes[volume];
        let sealing = Sealing {
            suite: CipherSuite::XChaCha20Poly1305,
            space: self.space,
            volume: v.id,
            generation: Generation(0),
            author: self.keys.device_id(),
            signing: &self.keys.signing,
            with: SealWith::Epoch(Epoch(0), &v.key),
        };
        let changes = (from..=to).map(|n| volume::encode(&v.disk.local[(n - 1) as usize]));
        sealing
            .seal(v.chain, changes, rng)
            .expect("sealing under an epoch key never fails")
    }

    /// Opens, applies and stores fetched bundles (the daemon's fetch, minus the
    /// pipelining); the new cursor.
    pub fn apply_fetched(
        &mut self,
        volume: usize,
        after: Seq,
        items: &[(Seq, SealedBundle)],
    ) -> Result<Seq, String> {
        if let Some((first, _)) = items.first() {
            if *first != after.next() {
                return Err(format!("relay skipped from {} to {}", after.0, first.0));
            }
        }
        let v = &mut self.volumes[volume];
        let ctx = OpenContext {
            space: self.space,
            volume: v.id,
            generation: Generation(0),
            kind: VolumeKind::Automerge,
            keys: HashMap::from([((Generation(0), Epoch(0)), v.key.duplicate())]),
            inbox: None,
            allow_null: false,
        };
        let payloads = ctx.open(items).map_err(|e| e.to_string())?.payloads;
        v.replica
            .apply_remote(&payloads)
            .map_err(|e| e.to_string())?;
        v.disk.applied.extend(payloads.into_iter().map(|(_, p)| p));
        let cursor = items.last().map(|(s, _)| *s).unwrap_or(after);
        v.disk.cursor = v.disk.cursor.max(cursor);
        Ok(cursor)
    }

    /// The values of `key` in a volume (several while a conflict is unresolved).
    pub fn get(&self, volume: usize, key: &str) -> Vec<String> {
        match &self.volumes[volume].replica {
            Replica::Doc(d) => d.get(key),
            _ => Vec::new(),
        }
    }
}
