//! Relay storage behind a trait, so the embedded sled store and a database backend serve
//! the same relay code.
//!
//! Contract, for every backend:
//! - [`Store::append`] assigns dense sequence numbers per volume, in call order, to a
//!   batch of bundles, and returns once they are durable;
//! - entries become visible to [`Store::read`] only once durable, and in order: a reader
//!   at cursor N never sees N+2 before N+1;
//! - the notify hook ([`Store::set_notify`]) is called with each volume's new visible head;
//! - records (spaces, membership, certificates, envelopes) and blob chunks are keyed
//!   byte strings;
//! - a committed blob is immutable: chunks sent for it again are ignored and a second
//!   commit changes nothing (blob ids are content hashes; anyone may upload the same one).
//!
//! [`object_blobs::ObjectBlobs`] wraps any store to keep blobs in an S3-compatible object
//! store instead.

pub mod object_blobs;
pub mod pg_connect;
pub mod postgres_store;
pub mod sled_batch;
pub mod sled_store;

use mes_protocol::ids::{Seq, VolumeId};
use std::future::Future;
use std::pin::Pin;

/// The store operations in flight in this process (issue 23): flushes and batches of the
/// embedded stores; [`watch_stores`] logs any that runs longer than
/// [`mes_protocol::watchdog::SLOW`], and the metrics serve the count
/// (`mes_relay_store_slow_operations`).
pub static WATCHDOG: mes_protocol::watchdog::Watchdog = mes_protocol::watchdog::Watchdog::new();

/// Starts, once per process, the thread that logs store operations running too long.
pub fn watch_stores() {
    let logged = WATCHDOG.watch(|what, ran| {
        tracing::warn!(
            "relay store: {what} has been running for {:.1} s (a store that stops making progress; see docs/architecture.md, \"The embedded stores\")",
            ran.as_secs_f64()
        );
    });
    if let Err(e) = logged {
        tracing::warn!("the store watchdog did not start: {e}");
    }
}

/// A boxed future, for dyn-compatible async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

mes_protocol::store_error!(
    /// A storage failure of the relay; the operation changed nothing visible.
    "relay storage failed"
);
pub use mes_protocol::store_error::StoreErrorKind;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::backend(e.to_string())
    }
}

/// Callback receiving (volume, new visible head).
pub type NotifyHook = Box<dyn Fn(VolumeId, Seq) + Send + Sync>;

/// Callback receiving a record changed by another relay instance (kind, key), for the
/// caches a relay keeps (memberships, catalogue, closed spaces).
pub type RecordHook = Box<dyn Fn(Table, &[u8]) + Send + Sync>;

/// A stored snapshot: (covers up to, bytes).
pub type Snapshot = (Seq, Vec<u8>);

/// A committed blob's chunk: (bytes, is the last).
pub type BlobChunk = (Vec<u8>, bool);

/// A stored record: (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// A table of the store: one kind of record, its own key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Space membership (genesis, volumes, grants), by space id.
    Membership,
    /// Device certificates, by device id.
    Device,
    /// Device revocations, by device id.
    Revocation,
    /// Key envelopes, by space || recipient device || slot.
    Envelope,
    /// Which space a blob was uploaded for, by space || blob.
    BlobOwner,
    /// Relay-signed professional directory entries, by principal.
    Directory,
    /// Access history entries, by space || seq (big-endian).
    History,
    /// Emergency releases (F7.5), by space || principal: mode and expiry.
    Release,
    /// Pushes-signed catalogue entries (F6), by service principal.
    Catalogue,
    /// Spaces closed by their person (F1.6), archived and refused, by space id.
    Closed,
    /// The space a volume id belongs to, for ever, by volume id (issue 22, finding 1):
    /// the log, snapshots and heads are keyed by volume alone, so an id is never
    /// declared by a second space.
    VolumeSpace,
    /// The admission key of a person's recovery kit (issue 22, finding 3), by principal.
    AdmissionKey,
    /// The space a committed blob belongs to, for ever, by blob id (issue 22, finding 8).
    BlobSpace,
    /// A device's current certificate (the newest its principals issued), by device id:
    /// found without scanning every device (issue 22, finding 6).
    DeviceCurrent,
    /// The volumes a committed blob is bound to (issue 22, finding 8), by space || blob
    /// || volume: a file is read only through a volume that references it.
    BlobVolume,
    /// An upload not committed yet, by space || blob: the chunks it reserved against the
    /// space's quota and when it last grew (issue 22 finding 6; `file_quota`).
    BlobPending,
    /// What stays of an erased space (F1.6, `crate::erase`): by a keyed hash of the
    /// space's or a volume's id, never the id itself, the day it was erased; its ids are
    /// never taken again.
    Erased,
}

impl Table {
    /// Every kind, in code order (the code is the discriminant).
    pub const ALL: [Table; 17] = [
        Table::Membership,
        Table::Device,
        Table::Revocation,
        Table::Envelope,
        Table::BlobOwner,
        Table::Directory,
        Table::History,
        Table::Release,
        Table::Catalogue,
        Table::Closed,
        Table::VolumeSpace,
        Table::AdmissionKey,
        Table::BlobSpace,
        Table::DeviceCurrent,
        Table::BlobVolume,
        Table::BlobPending,
        Table::Erased,
    ];

    /// Kinds a relay keeps in memory, which other instances must hear about.
    pub fn cached(self) -> bool {
        matches!(self, Table::Membership | Table::Catalogue | Table::Closed)
    }
}

/// What a read returns.
#[derive(Debug, Default)]
pub struct ReadResult {
    /// Entries with seq > after, ascending and dense.
    pub items: Vec<(Seq, Vec<u8>)>,
    /// The visible head.
    pub head: Seq,
    /// Set when entries after the cursor were pruned up to this seq.
    pub pruned_upto: Option<Seq>,
}

/// A relay storage backend.
pub trait Store: Send + Sync + 'static {
    /// Appends a batch durably; returns (first, last) seq.
    fn append<'a>(
        &'a self,
        volume: VolumeId,
        bundles: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(Seq, Seq), StoreError>>;
    /// Entries past `after`, at most `max` and about [`mes_protocol::wire::MAX_FETCH_BYTES`]
    /// (never fewer than one).
    fn read(
        &self,
        volume: VolumeId,
        after: Seq,
        max: usize,
    ) -> BoxFuture<'_, Result<ReadResult, StoreError>>;
    /// The visible head.
    fn head(&self, volume: VolumeId) -> BoxFuture<'_, Result<Seq, StoreError>>;
    /// Stores a snapshot covering up to `upto`; prunes the log behind it when asked.
    fn put_snapshot<'a>(
        &'a self,
        volume: VolumeId,
        upto: Seq,
        snapshot: Vec<u8>,
        prune: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The latest snapshot.
    fn get_snapshot(&self, volume: VolumeId)
        -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>>;
    /// Removes a record durably (absent is fine).
    fn remove_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Writes a record durably.
    fn put_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Reads a record.
    fn get_record<'a>(
        &'a self,
        kind: Table,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    /// Records whose key starts with `prefix`.
    fn scan_records<'a>(
        &'a self,
        kind: Table,
        prefix: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    /// Stores a blob chunk (not yet committed).
    fn put_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Commits a blob once all chunks are in and the hash matches; durable on return.
    fn commit_blob<'a>(
        &'a self,
        blob: [u8; 32],
        chunks: u32,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Removes the chunks `from..to` of a blob, durably; a committed blob keeps those it
    /// is made of (an upload never committed, or chunks sent past a file's end, are
    /// swept: issue 22 finding 6).
    fn remove_blob_chunks<'a>(
        &'a self,
        blob: &'a [u8; 32],
        from: u32,
        to: u32,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Erases a volume for real (F1.6, issue 27 item 3): its log, snapshot, head and
    /// pruned mark, durably; absent is fine, and a second call finishes what a crash
    /// interrupted.
    fn remove_volume(&self, volume: VolumeId) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Erases a blob for real, committed or not: its commit mark first (it is no longer
    /// served), then every chunk, durably; absent is fine.
    fn remove_blob<'a>(&'a self, blob: &'a [u8; 32]) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Reads a committed blob's chunk; `None` if missing. Returns (data, last).
    fn get_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
    ) -> BoxFuture<'a, Result<Option<BlobChunk>, StoreError>>;
    /// Installs the notify hook, replacing any earlier one (a relay restarted over the
    /// same store must be the one notified).
    fn set_notify(&self, hook: NotifyHook);
    /// Installs the hook told of cached records changed elsewhere (a backend shared by
    /// several instances); a single-process backend never calls it.
    fn set_record_hook(&self, hook: RecordHook) {
        drop(hook);
    }
}
