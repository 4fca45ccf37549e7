//! The hub's enrolment tables (F1), on the embedded sled store: one tree whose key
//! prefixes are the tables, so that every change to one person (their record, the
//! campaign queue, the due index, the outbox) commits in one atomic, durable batch.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `r` | page (u64, big-endian) | a roster page: up to [`PAGE`] [`Person`]s of one import and one département |
//! | `x` | first NIR of the leaf | an index leaf: NIR → [`Loc`], sorted |
//! | `q` | département (3 bytes) ‖ chunk seq | places of people imported, not yet notified |
//! | `d` | due time (ms, big-endian) ‖ chunk seq | places of people the clock may change then |
//! | `o` | chunk seq (big-endian) | count ‖ [`Outgoing`] messages to deliver |
//! | `i` | identifier | NIR: identifiers are unique |
//! | `m` | name | metadata (the import in progress, the next page) |
//!
//! Bulk work goes by page, not by person: sled copies a node on every insert, and that
//! copy is what a campaign of millions costs. An import writes its people in fresh pages,
//! grouped by département in the campaign's order, and its NIRs into the index leaves in
//! one merge; the campaign and the sweep rewrite whole pages, since the people notified
//! together are neighbours. A person never moves, so the queue and due chunks hold places
//! ([`Loc`]), not NIRs. A due entry is never removed one by one: the person's record names
//! its live due time (`Person::due`), and the sweep skips the stale ones.
//!
//! Concurrency: a page is rewritten under its lock (taken all at once for a batch, so
//! two batches never wait on each other in a cycle), from what is on disk at that moment.
//! A request that read a person earlier writes back only if the person's bytes are still
//! those it read ([`ApplyError::Conflict`] otherwise: the service runs it again). Index
//! lookups wait while an import merges new leaves.

use mes_protocol::ids::SpaceId;
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::enrolment::Status;
pub use crate::enrolment_pages::Loc;
use crate::enrolment_pages::{
    cut_leaves, encode_page, leaf_entries, leaf_find, merge_sorted, IndexEntry, NirBytes, PageView,
    PAGE,
};
use crate::store::StoreError;

/// One insured person as stored (the checked population row, as plain values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insured {
    /// NIR, 13 characters (key checked at import).
    pub nir: String,
    /// Carte Vitale serial.
    pub vitale_serial: String,
    /// Last name.
    pub last_name: String,
    /// First names.
    pub first_names: String,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Email on file.
    pub email: Option<String>,
    /// Postal address on file.
    pub postal_address: Option<String>,
    /// Département ("69", "2A", "974").
    pub departement: String,
    /// A minor's legal representatives (NIRs).
    pub representatives: Vec<String>,
}

/// A provisional code, kept as its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Keyed BLAKE3 hash of the code.
    pub hash: [u8; 32],
    /// Valid until.
    pub expires: UnixMillis,
}

/// The hub account of a person who activated (F1.3); the password only authenticates
/// to the hub and never yields keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Identifier chosen.
    pub identifier: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// The space created at activation.
    pub space: SpaceId,
    /// The contact email confirmed (or changed) at activation.
    pub email: Option<String>,
}

/// One person's enrolment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Who.
    pub insured: Insured,
    /// Where the enrolment stands.
    pub status: Status,
    /// The live provisional code, if any (cleared at use: single use).
    pub code: Option<CodeRecord>,
    /// Failed attempts in a row (reset on success).
    pub failures: u32,
    /// Refused until then after too many failures.
    pub locked_until: Option<UnixMillis>,
    /// The person turned reminders off (F1.8).
    pub reminders_off: bool,
    /// The last reminder sent.
    pub last_reminder: Option<UnixMillis>,
    /// The entry of the due index (so it can be moved).
    pub due: Option<UnixMillis>,
    /// Set once activated.
    pub account: Option<Account>,
    /// The import that brought the person in.
    pub import: u64,
    /// How many codes were issued (the live one is derived from this number).
    pub code_issue: u64,
}

/// What a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// The campaign's first message: code, deadline, how to activate or oppose (F1.2).
    Notification,
    /// A new code asked for (F1.7).
    Regenerated,
    /// A reminder to someone who never activated (F1.8).
    Reminder,
}

/// A message waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// What for.
    pub kind: MessageKind,
    /// The person it is about (a child, for a minor).
    pub about: String,
    /// Email to send to, if any (else a postal letter).
    pub email: Option<String>,
    /// Postal address, for a letter.
    pub postal_address: Option<String>,
    /// Who it is addressed to ("Camille Martin"; the legal representative for a minor).
    pub addressee: String,
    /// The person the code is for ("Lola Martin").
    pub for_name: String,
    /// Whether it is about a minor (sent to a representative).
    pub minor: bool,
    /// Which of the person's codes it carries (derived again at delivery with the hub's
    /// key: no code is ever stored, not even here).
    pub code_issue: Option<u64>,
    /// Code valid until.
    pub code_expires: Option<UnixMillis>,
    /// Opposition deadline.
    pub deadline: Option<UnixMillis>,
    /// Département, to group letters into print files.
    pub departement: String,
}

impl Outgoing {
    /// The code the message carries, derived with the hub's key.
    pub fn code(&self, key: &[u8; 32]) -> Option<String> {
        self.code_issue
            .map(|i| crate::provisional_code::derive(key, &self.about, i))
    }
}

/// One change, applied with others in one atomic batch.
pub enum Op {
    /// Writes a person back at their place; with `was`, only if their bytes are still
    /// those (else the whole batch is refused with [`ApplyError::Conflict`]).
    Person {
        /// Where.
        loc: Loc,
        /// The bytes read, when the change was computed from them.
        was: Option<Vec<u8>>,
        /// The new record.
        person: Box<Person>,
    },
    /// Rewrites a queue chunk with what is left of it, or removes it.
    QueueChunk(Vec<u8>, Option<Vec<Loc>>),
    /// Indexes a person as due then.
    Due(UnixMillis, Loc),
    /// Removes a due chunk the sweep went through.
    DueChunk(Vec<u8>),
    /// Adds a message to the outbox.
    Message(Box<Outgoing>),
    /// Rewrites an outbox chunk with what is left of it, or removes it.
    OutboxChunk(u64, Option<Vec<Outgoing>>),
    /// Claims or frees an identifier.
    Identifier(String, Option<String>),
    /// Writes or removes metadata.
    Meta(String, Option<Vec<u8>>),
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A person changed since the request read them: nothing was written.
    #[error("a person's record changed while the request was served")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for ApplyError {
    fn from(e: sled::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

impl From<ApplyError> for StoreError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Store(e) => e,
            ApplyError::Conflict => StoreError(e.to_string()),
        }
    }
}

/// A campaign queue chunk: département, its key, the places it holds.
pub type QueueChunk = (String, Vec<u8>, Vec<Loc>);

/// A due chunk: the due time, its key, the places it holds.
pub type DueChunk = (UnixMillis, Vec<u8>, Vec<Loc>);

/// A person as read: where they live, their record, and its bytes (what a write back
/// checks is unchanged).
#[derive(Clone, Debug)]
pub struct Found {
    /// Where.
    pub loc: Loc,
    /// The record.
    pub person: Person,
    /// Its bytes as read.
    pub read: Vec<u8>,
}

impl Found {
    /// The write of `person` back in this one's place, if nothing changed since the read.
    pub fn write_back(&self, person: Person) -> Op {
        Op::Person {
            loc: self.loc,
            was: Some(self.read.clone()),
            person: Box::new(person),
        }
    }
}

/// Pages being rewritten; a batch takes all its pages at once or waits.
#[derive(Default)]
struct PageLocks {
    held: Mutex<HashSet<u64>>,
    freed: Condvar,
}

struct PagesHeld<'a> {
    locks: &'a PageLocks,
    pages: Vec<u64>,
}

impl PageLocks {
    fn lock(&self, pages: Vec<u64>) -> PagesHeld<'_> {
        let mut held = self.held.lock().expect("page locks");
        while pages.iter().any(|p| held.contains(p)) {
            held = self.freed.wait(held).expect("page locks");
        }
        held.extend(pages.iter().copied());
        PagesHeld { locks: self, pages }
    }
}

impl Drop for PagesHeld<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().expect("page locks");
        for p in &self.pages {
            held.remove(p);
        }
        self.locks.freed.notify_all();
    }
}

/// The enrolment tables.
#[derive(Clone)]
pub struct EnrolmentTables {
    db: sled::Db,
    tree: sled::Tree,
    commits: Arc<crate::group_commit::GroupCommit>,
    pages: Arc<PageLocks>,
    combiner: Arc<crate::group_commit::Combiner<Commit, Result<(), ApplyError>>>,
    /// Held to read the index; taken alone while an import merges its leaves.
    index: Arc<RwLock<()>>,
}

const IMPORT_IN_PROGRESS: &str = "import-in-progress";
const NEXT_PAGE: &str = "next-page";

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn page_key(page: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&page.to_be_bytes());
    k
}

fn dept_key(d: &str) -> [u8; 3] {
    let mut k = [b' '; 3];
    // Two-character codes sort before the overseas three-digit ones, as numbers would.
    k[..d.len().min(3)].copy_from_slice(&d.as_bytes()[..d.len().min(3)]);
    k
}

/// The 13 characters of a NIR as the index keys them, if it has 13.
fn nir_bytes(nir: &str) -> Option<NirBytes> {
    nir.as_bytes().get(..13)?.try_into().ok()
}

/// An outbox chunk: its message count (so the outbox is counted without decoding), then
/// the messages.
fn outbox_value(messages: &[Outgoing]) -> Vec<u8> {
    let mut v = (messages.len() as u32).to_be_bytes().to_vec();
    v.extend(mes_protocol::codec::to_bytes(&messages));
    v
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    mes_protocol::codec::from_bytes(v).map_err(|e| StoreError(format!("enrolment record: {e}")))
}

fn damaged(e: crate::enrolment_pages::Damaged) -> StoreError {
    StoreError(e.to_string())
}

fn read_u64(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// One caller's commit, ready for [`EnrolmentTables::apply`]'s combiner: the people it
/// writes (place, bytes the slot must still hold, new bytes) and its other ops.
pub struct Commit {
    writes: Vec<(Loc, Option<Vec<u8>>, Vec<u8>)>,
    rest: Vec<Op>,
    durable: bool,
}

impl EnrolmentTables {
    /// Opens the tables in the relay's database.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("enrolment")?;
        // The first layout kept one key per person under `p`: refuse it rather than
        // misread it (nothing converts it; import the population again).
        if tree.scan_prefix([b'p']).next().is_some() {
            return Err(StoreError(
                "the enrolment tables use an older layout (one key per person); \
                 import the population into a new data directory"
                    .into(),
            ));
        }
        Ok(EnrolmentTables {
            db: db.clone(),
            tree,
            commits: Default::default(),
            pages: Default::default(),
            combiner: Default::default(),
            index: Default::default(),
        })
    }

    /// Applies `ops` atomically; durable when `durable` (else at the next flush). The
    /// due entries and messages of one call go into one new chunk each (per due time, one
    /// outbox chunk). Refused whole with [`ApplyError::Conflict`] if a person written with
    /// `was` changed since, or an identifier claimed is someone else's.
    ///
    /// Concurrent calls are combined: one caller writes them all in one sled batch and
    /// one flush (sled seals and writes a buffer per atomic batch, so one batch per
    /// request would cost a write each).
    pub fn apply(&self, ops: Vec<Op>, durable: bool) -> Result<(), ApplyError> {
        let mut writes = Vec::new();
        let mut rest = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Person { loc, was, person } => {
                    writes.push((loc, was, mes_protocol::codec::to_bytes(&*person)))
                }
                other => rest.push(other),
            }
        }
        let work = Commit {
            writes,
            rest,
            durable,
        };
        self.combiner.run(work, |works| self.commit_all(works))
    }

    /// Writes the commits that still apply in one batch: each checked against what is on
    /// disk and what the commits before it in the group wrote.
    fn commit_all(&self, works: Vec<Commit>) -> Vec<Result<(), ApplyError>> {
        let failed = |e: StoreError, n: usize| {
            (0..n)
                .map(|_| Err(StoreError(e.0.clone()).into()))
                .collect()
        };
        let n = works.len();
        let pages: std::collections::BTreeSet<u64> = works
            .iter()
            .flat_map(|w| w.writes.iter().map(|(l, ..)| l.page()))
            .collect();
        let held = self.pages.lock(pages.iter().copied().collect());
        let mut images: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for page in pages {
            let image = self
                .tree
                .get(page_key(page))
                .map_err(StoreError::from)
                .and_then(|b| {
                    let b =
                        b.ok_or_else(|| StoreError(format!("enrolment page {page} is missing")))?;
                    let view = PageView::parse(&b).map_err(damaged)?;
                    Ok(view.entries().map(<[u8]>::to_vec).collect())
                });
            match image {
                Ok(i) => images.insert(page, i),
                Err(e) => return failed(e, n),
            };
        }
        let mut claimed: std::collections::HashMap<String, Option<String>> = Default::default();
        let mut results = Vec::with_capacity(n);
        let mut rest = Vec::new();
        let mut durable = false;
        for w in works {
            match self.check(&w, &images, &claimed) {
                Ok(true) => {}
                Ok(false) => {
                    results.push(Err(ApplyError::Conflict));
                    continue;
                }
                Err(e) => {
                    results.push(Err(e.into()));
                    continue;
                }
            }
            for (loc, _, bytes) in w.writes {
                images.get_mut(&loc.page()).expect("page loaded")[loc.slot()] = bytes;
            }
            for op in &w.rest {
                if let Op::Identifier(id, nir) = op {
                    claimed.insert(id.clone(), nir.clone());
                }
            }
            rest.extend(w.rest);
            durable |= w.durable;
            results.push(Ok(()));
        }
        let mut b = sled::Batch::default();
        for (page, entries) in &images {
            b.insert(&page_key(*page)[..], encode_page(entries));
        }
        let written = self
            .add_ops(&mut b, rest)
            .and_then(|()| Ok(self.tree.apply_batch(b)?));
        drop(held);
        if let Err(e) = written.and_then(|()| if durable { self.durable() } else { Ok(()) }) {
            return failed(e, n);
        }
        results
    }

    /// Whether a commit still applies: the people it read unchanged, the identifiers it
    /// claims free or already theirs.
    fn check(
        &self,
        w: &Commit,
        images: &BTreeMap<u64, Vec<Vec<u8>>>,
        claimed: &std::collections::HashMap<String, Option<String>>,
    ) -> Result<bool, StoreError> {
        for (loc, was, _) in &w.writes {
            let current = images[&loc.page()].get(loc.slot()).ok_or_else(|| {
                StoreError(format!("no slot {} in page {}", loc.slot(), loc.page()))
            })?;
            if was.as_ref().is_some_and(|w| w != current) {
                return Ok(false);
            }
        }
        for op in &w.rest {
            if let Op::Identifier(id, Some(nir)) = op {
                let holder = match claimed.get(id) {
                    Some(h) => h.clone(),
                    None => self.identifier(id)?,
                };
                if holder.is_some_and(|h| h != *nir) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Runs `f` on each person at `locs`, read fresh under their pages' locks; the people
    /// `f` changed (it returns true) are written back with the ops it added and `extra`,
    /// in one atomic batch, durable when `durable`. `f` must not add [`Op::Person`].
    pub fn update(
        &self,
        locs: &[Loc],
        extra: Vec<Op>,
        durable: bool,
        mut f: impl FnMut(Loc, &mut Person, &mut Vec<Op>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut by_page: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for l in locs {
            by_page.entry(l.page()).or_default().push(l.slot());
        }
        let held = self.pages.lock(by_page.keys().copied().collect());
        let mut b = sled::Batch::default();
        let mut ops = extra;
        for (page, mut slots) in by_page {
            slots.sort_unstable();
            slots.dedup();
            let Some(bytes) = self.tree.get(page_key(page))? else {
                continue; // rolled back since it was queued
            };
            let view = PageView::parse(&bytes).map_err(damaged)?;
            let mut replaced = Vec::new();
            for slot in slots {
                let Some(entry) = view.entry(slot) else {
                    continue;
                };
                let mut p: Person = decode(entry)?;
                if f(Loc::new(page, slot), &mut p, &mut ops)? {
                    replaced.push((slot, mes_protocol::codec::to_bytes(&p)));
                }
            }
            if !replaced.is_empty() {
                b.insert(&page_key(page)[..], view.replaced(&replaced));
            }
        }
        if ops.iter().any(|o| matches!(o, Op::Person { .. })) {
            return Err(StoreError("a page update cannot write other people".into()));
        }
        self.add_ops(&mut b, ops)?;
        self.tree.apply_batch(b)?;
        drop(held);
        if durable {
            self.durable()?;
        }
        Ok(())
    }

    /// Everything applied so far, on disk; concurrent callers share one flush.
    fn durable(&self) -> Result<(), StoreError> {
        self.commits.wait_durable(|| self.tree.flush().map(drop))?;
        Ok(())
    }

    /// Adds the ops other than people to a batch (due entries and messages chunked).
    fn add_ops(&self, b: &mut sled::Batch, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut due: BTreeMap<u64, Vec<Loc>> = BTreeMap::new();
        let mut messages: Vec<Outgoing> = Vec::new();
        for op in ops {
            match op {
                Op::Person { .. } => unreachable!("people are written by page"),
                Op::QueueChunk(k, rest) => match rest {
                    Some(rest) if !rest.is_empty() => {
                        b.insert(k, mes_protocol::codec::to_bytes(&rest))
                    }
                    _ => b.remove(k),
                },
                Op::Due(at, loc) => due.entry(at.0).or_default().push(loc),
                Op::DueChunk(k) => b.remove(k),
                Op::Message(m) => messages.push(*m),
                Op::OutboxChunk(seq, rest) => {
                    let k = key(b'o', &[&seq.to_be_bytes()]);
                    match rest {
                        Some(rest) if !rest.is_empty() => b.insert(k, outbox_value(&rest)),
                        _ => b.remove(k),
                    }
                }
                Op::Identifier(id, nir) => match nir {
                    Some(n) => b.insert(key(b'i', &[id.as_bytes()]), n.as_bytes()),
                    None => b.remove(key(b'i', &[id.as_bytes()])),
                },
                Op::Meta(name, v) => match v {
                    Some(v) => b.insert(key(b'm', &[name.as_bytes()]), v),
                    None => b.remove(key(b'm', &[name.as_bytes()])),
                },
            }
        }
        for (at, locs) in due {
            let seq = self.next_seq()?;
            b.insert(
                key(b'd', &[&at.to_be_bytes(), &seq.to_be_bytes()]),
                mes_protocol::codec::to_bytes(&locs),
            );
        }
        if !messages.is_empty() {
            let seq = self.next_seq()?;
            b.insert(key(b'o', &[&seq.to_be_bytes()]), outbox_value(&messages));
        }
        Ok(())
    }

    /// Makes everything applied so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Where a person lives, by NIR (13 characters).
    pub fn locate(&self, nir: &str) -> Result<Option<Loc>, StoreError> {
        let Some(n) = nir_bytes(nir) else {
            return Ok(None);
        };
        let _reading = self.index.read().expect("index lock");
        let Some(kv) = self.tree.range(vec![b'x']..=key(b'x', &[&n])).next_back() else {
            return Ok(None);
        };
        Ok(leaf_find(&kv?.1, &n))
    }

    /// The person at a place.
    pub fn at(&self, loc: Loc) -> Result<Option<Found>, StoreError> {
        let Some(bytes) = self.tree.get(page_key(loc.page()))? else {
            return Ok(None);
        };
        let view = PageView::parse(&bytes).map_err(damaged)?;
        let Some(entry) = view.entry(loc.slot()) else {
            return Ok(None);
        };
        Ok(Some(Found {
            loc,
            person: decode(entry)?,
            read: entry.to_vec(),
        }))
    }

    /// A person by NIR, with their place and bytes.
    pub fn find(&self, nir: &str) -> Result<Option<Found>, StoreError> {
        match self.locate(nir)? {
            Some(loc) => self.at(loc),
            None => Ok(None),
        }
    }

    /// A person by NIR (13 characters).
    pub fn person(&self, nir: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(nir)?.map(|f| f.person))
    }

    /// Which of these NIRs are on file already (any order).
    pub fn on_file(&self, nirs: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut wanted: Vec<NirBytes> = nirs.iter().filter_map(|n| nir_bytes(n)).collect();
        wanted.sort_unstable();
        let (Some(first), Some(last)) = (wanted.first(), wanted.last()) else {
            return Ok(Vec::new());
        };
        let _reading = self.index.read().expect("index lock");
        // From the leaf that would hold the first wanted NIR to the last leaf that starts
        // at or before the last one.
        let start = self
            .tree
            .range(vec![b'x']..=key(b'x', &[first]))
            .next_back()
            .transpose()?
            .map_or_else(|| vec![b'x'], |(k, _)| k.to_vec());
        let mut found = Vec::new();
        let mut w = wanted.iter().peekable();
        for kv in self.tree.range(start..=key(b'x', &[last])) {
            let (_, leaf) = kv?;
            for (nir, _) in leaf_entries(&leaf).map_err(damaged)? {
                while w.peek().is_some_and(|x| **x < nir) {
                    w.next();
                }
                if w.peek().is_some_and(|x| **x == nir) {
                    found.push(String::from_utf8_lossy(&nir).into_owned());
                    w.next();
                }
            }
        }
        Ok(found)
    }

    /// Who holds an identifier.
    pub fn identifier(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(key(b'i', &[id.as_bytes()]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Adds the people of import `id`, in the order given (the campaign's: by
    /// département, then as listed), in fresh pages and durable batches of about `batch`
    /// people with their queue chunks, then their NIRs to the index in one merge. The
    /// import is marked in progress throughout: [`EnrolmentTables::roll_back`] undoes an
    /// interrupted one. `progress` is told of each batch written.
    pub fn import(
        &self,
        id: u64,
        people: Vec<Person>,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<(), StoreError> {
        let first_page = self.meta(NEXT_PAGE)?.map_or(0, |v| read_u64(&v));
        let mut mark = id.to_be_bytes().to_vec();
        mark.extend_from_slice(&first_page.to_be_bytes());
        self.apply(vec![Op::Meta(IMPORT_IN_PROGRESS.into(), Some(mark))], true)?;
        // Pages of one département each.
        let mut pages: Vec<Vec<Person>> = Vec::new();
        for p in people {
            match pages.last_mut() {
                Some(last)
                    if last.len() < PAGE
                        && last[0].insured.departement == p.insured.departement =>
                {
                    last.push(p)
                }
                _ => pages.push(vec![p]),
            }
        }
        let mut index: Vec<IndexEntry> = Vec::new();
        let mut next = first_page;
        let per_batch = batch.div_ceil(PAGE).max(1);
        for group in pages.chunks(per_batch) {
            let mut b = sled::Batch::default();
            let mut queue: BTreeMap<[u8; 3], Vec<Loc>> = BTreeMap::new();
            let mut people = 0;
            for page in group {
                let entries: Vec<Vec<u8>> =
                    page.iter().map(mes_protocol::codec::to_bytes).collect();
                for (slot, p) in page.iter().enumerate() {
                    let loc = Loc::new(next, slot);
                    queue
                        .entry(dept_key(&p.insured.departement))
                        .or_default()
                        .push(loc);
                    if let Some(n) = nir_bytes(&p.insured.nir) {
                        index.push((n, loc));
                    }
                }
                people += page.len();
                b.insert(&page_key(next)[..], encode_page(&entries));
                next += 1;
            }
            for (d, locs) in queue {
                let seq = self.next_seq()?;
                b.insert(
                    key(b'q', &[&d, &seq.to_be_bytes()]),
                    mes_protocol::codec::to_bytes(&locs),
                );
            }
            b.insert(key(b'm', &[NEXT_PAGE.as_bytes()]), &next.to_be_bytes());
            self.tree.apply_batch(b)?;
            self.durable()?;
            progress(people);
        }
        index.sort_unstable();
        self.merge_index(&index)?;
        self.apply(vec![Op::Meta(IMPORT_IN_PROGRESS.into(), None)], true)?;
        Ok(())
    }

    /// Merges sorted entries into the index leaves, durably.
    fn merge_index(&self, new: &[IndexEntry]) -> Result<(), StoreError> {
        let _alone = self.index.write().expect("index lock");
        let leaves: Vec<(Vec<u8>, NirBytes)> = self
            .tree
            .scan_prefix([b'x'])
            .keys()
            .map(|k| {
                let k = k?;
                let first = k[1..]
                    .try_into()
                    .map_err(|_| StoreError(format!("index leaf key of {} bytes", k.len())))?;
                Ok((k.to_vec(), first))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut b = sled::Batch::default();
        let mut pending = 0;
        let mut rest = new;
        for (i, (k, _)) in leaves.iter().enumerate() {
            // Leaf i takes what sorts before leaf i+1 (the first takes what sorts before
            // every leaf too).
            let take = match leaves.get(i + 1) {
                Some((_, next)) => rest.partition_point(|e| e.0 < *next),
                None => rest.len(),
            };
            let (mine, after) = rest.split_at(take);
            rest = after;
            if mine.is_empty() {
                continue;
            }
            let old = self.tree.get(k)?.map(|v| leaf_entries(&v)).transpose();
            let merged = merge_sorted(old.map_err(damaged)?.unwrap_or_default(), mine);
            b.remove(k.as_slice());
            for (first, leaf) in cut_leaves(&merged) {
                b.insert(key(b'x', &[&first]), leaf);
            }
            pending += 1;
            if pending >= 256 {
                self.tree.apply_batch(std::mem::take(&mut b))?;
                pending = 0;
            }
        }
        if leaves.is_empty() {
            for (first, leaf) in cut_leaves(rest) {
                b.insert(key(b'x', &[&first]), leaf);
            }
        }
        self.tree.apply_batch(b)?;
        self.durable()
    }

    /// Rolls back an import that was interrupted: its pages, index entries and queue
    /// entries go. Returns how many people it had written.
    pub fn roll_back(&self) -> Result<usize, StoreError> {
        let Some(mark) = self.meta(IMPORT_IN_PROGRESS)? else {
            return Ok(0);
        };
        let first_page = read_u64(mark.get(8..).unwrap_or_default());
        let doomed = |l: &Loc| l.page() >= first_page;
        let mut removed = 0;
        {
            let _alone = self.index.write().expect("index lock");
            let mut b = sled::Batch::default();
            for kv in self.tree.scan_prefix([b'x']) {
                let (k, v) = kv?;
                let entries = leaf_entries(&v).map_err(damaged)?;
                let kept: Vec<IndexEntry> = entries
                    .iter()
                    .copied()
                    .filter(|(_, l)| !doomed(l))
                    .collect();
                if kept.len() != entries.len() {
                    b.remove(k);
                    for (first, leaf) in cut_leaves(&kept) {
                        b.insert(key(b'x', &[&first]), leaf);
                    }
                }
            }
            self.tree.apply_batch(b)?;
        }
        let mut b = sled::Batch::default();
        for kv in self.tree.scan_prefix([b'q']) {
            let (k, v) = kv?;
            let locs: Vec<Loc> = decode(&v)?;
            let kept: Vec<Loc> = locs.iter().copied().filter(|l| !doomed(l)).collect();
            if kept.is_empty() {
                b.remove(k);
            } else if kept.len() != locs.len() {
                b.insert(k, mes_protocol::codec::to_bytes(&kept));
            }
        }
        for kv in self.tree.range(page_key(first_page)..=page_key(u64::MAX)) {
            let (k, v) = kv?;
            removed += PageView::parse(&v).map_err(damaged)?.len();
            b.remove(k);
        }
        b.remove(key(b'm', &[IMPORT_IN_PROGRESS.as_bytes()]));
        self.tree.apply_batch(b)?;
        self.durable()?;
        Ok(removed)
    }

    /// Queue chunks in département order (from `departements` only, when given), until
    /// they hold at least `limit` people: (département, chunk key, places).
    pub fn queued(
        &self,
        departements: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<QueueChunk>, StoreError> {
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = match departements {
            None => vec![(vec![b'q'], vec![b'r'])],
            Some(ds) => {
                let mut ds: Vec<[u8; 3]> = ds.iter().map(|d| dept_key(d)).collect();
                ds.sort();
                ds.dedup();
                ds.iter()
                    .map(|d| {
                        let mut end = key(b'q', &[d]);
                        *end.last_mut().expect("3 bytes") += 1;
                        (key(b'q', &[d]), end)
                    })
                    .collect()
            }
        };
        let mut out = Vec::new();
        let mut people = 0;
        for (start, end) in ranges {
            for kv in self.tree.range(start..end) {
                if people >= limit {
                    return Ok(out);
                }
                let (k, v) = kv?;
                let d = String::from_utf8_lossy(&k[1..4]).trim_end().to_string();
                let locs: Vec<Loc> = decode(&v)?;
                people += locs.len();
                out.push((d, k.to_vec(), locs));
            }
        }
        Ok(out)
    }

    /// Due chunks at or before `upto`, earliest first, until they hold at least `limit`
    /// people, and only chunks older than `before` (a sequence number: what a sweep
    /// adds is left to the next one): (due time, chunk key, places).
    pub fn due(
        &self,
        upto: UnixMillis,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DueChunk>, StoreError> {
        let end = key(b'd', &[&upto.0.saturating_add(1).to_be_bytes()]);
        let mut out = Vec::new();
        let mut people = 0;
        for kv in self.tree.range(vec![b'd']..end) {
            if people >= limit {
                break;
            }
            let (k, v) = kv?;
            let at = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
            let seq = u64::from_be_bytes(k[9..17].try_into().expect("8 bytes"));
            if seq >= before {
                continue;
            }
            let locs: Vec<Loc> = decode(&v)?;
            people += locs.len();
            out.push((UnixMillis(at), k.to_vec(), locs));
        }
        Ok(out)
    }

    /// Outbox chunks, oldest first, until they hold at least `limit` messages.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, Vec<Outgoing>)>, StoreError> {
        let mut out = Vec::new();
        let mut messages = 0;
        for kv in self.tree.range(vec![b'o']..vec![b'p']) {
            if messages >= limit {
                break;
            }
            let (k, v) = kv?;
            let chunk: Vec<Outgoing> = decode(v.get(4..).unwrap_or_default())?;
            messages += chunk.len();
            out.push((
                u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")),
                chunk,
            ));
        }
        Ok(out)
    }

    /// The first `limit` messages of the outbox, oldest first.
    pub fn outbox_messages(&self, limit: usize) -> Result<Vec<Outgoing>, StoreError> {
        Ok(self
            .outbox(limit)?
            .into_iter()
            .flat_map(|(_, c)| c)
            .take(limit)
            .collect())
    }

    /// Messages waiting in the outbox (each chunk's count, without decoding it).
    pub fn outbox_len(&self) -> usize {
        self.tree
            .scan_prefix([b'o'])
            .values()
            .filter_map(|v| v.ok())
            .map(|v| {
                v.get(..4).map_or(0, |c| {
                    u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize
                })
            })
            .sum()
    }

    /// A fresh sequence number (monotonic across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Visits every person, page by page.
    pub fn for_each_person(&self, mut f: impl FnMut(Loc, Person)) -> Result<(), StoreError> {
        for kv in self.tree.scan_prefix([b'r']) {
            let (k, v) = kv?;
            let page = read_u64(&k[1..]);
            let view = PageView::parse(&v).map_err(damaged)?;
            for (slot, e) in view.entries().enumerate() {
                f(Loc::new(page, slot), decode(e)?);
            }
        }
        Ok(())
    }

    /// Metadata.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(key(b'm', &[name.as_bytes()]))?
            .map(|v| v.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(i: usize, dept: &str, import: u64) -> Person {
        Person {
            insured: Insured {
                nir: format!("{}{:012}", 1 + i % 2, i),
                vitale_serial: format!("V{i}"),
                last_name: format!("Nom{i}"),
                first_names: "Prénom".into(),
                birth_date: "1980-01-01".into(),
                email: None,
                postal_address: Some("1 rue Haute".into()),
                departement: dept.into(),
                representatives: Vec::new(),
            },
            status: Status::Imported,
            code: None,
            failures: 0,
            locked_until: None,
            reminders_off: false,
            last_reminder: None,
            due: None,
            account: None,
            import,
            code_issue: 0,
        }
    }

    /// People of two départements, grouped as the service hands them over.
    fn people(range: std::ops::Range<usize>, import: u64) -> Vec<Person> {
        let mut v: Vec<Person> = range
            .map(|i| person(i, if i % 3 == 0 { "01" } else { "2A" }, import))
            .collect();
        v.sort_by(|a, b| a.insured.departement.cmp(&b.insured.departement));
        v
    }

    fn queued_people(t: &EnrolmentTables) -> usize {
        t.queued(None, usize::MAX)
            .unwrap()
            .iter()
            .map(|c| c.2.len())
            .sum()
    }

    #[test]
    fn an_import_is_found_by_nir_and_queued_by_departement() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = EnrolmentTables::open(&sled::open(dir.path())?)?;
        t.import(1, people(0..5000, 1), 700, |_| {})?;
        for i in (0..5000).step_by(97) {
            let p = person(i, "", 1);
            let found = t.find(&p.insured.nir)?.expect("on file");
            assert_eq!(found.person.insured.vitale_serial, p.insured.vitale_serial);
        }
        assert!(t.find("1999999999999")?.is_none());
        // Pages never mix départements: every queue chunk's people share theirs.
        for (d, _, locs) in t.queued(None, usize::MAX)? {
            for l in locs {
                assert_eq!(t.at(l)?.unwrap().person.insured.departement, d);
            }
        }
        assert_eq!(queued_people(&t), 5000);
        let nirs: Vec<String> = (4990..5010).map(|i| person(i, "", 0).insured.nir).collect();
        let refs: Vec<&str> = nirs.iter().map(String::as_str).collect();
        assert_eq!(t.on_file(&refs)?.len(), 10);
        Ok(())
    }

    /// An import interrupted after some of its batches are durable (here a panic in the
    /// progress report) is undone whole by the roll back, and the earlier import stays.
    #[test]
    fn an_interrupted_import_rolls_back_whole() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = EnrolmentTables::open(&sled::open(dir.path())?)?;
        t.import(1, people(0..3000, 1), 1000, |_| {})?;
        let mut batches = 0;
        let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.import(2, people(3000..6000, 2), 1000, |_| {
                batches += 1;
                assert!(batches < 2, "interrupted after the first batch");
            })
        }));
        assert!(interrupted.is_err());
        assert!(t.meta(IMPORT_IN_PROGRESS)?.is_some());
        assert!(queued_people(&t) > 3000, "batches are on disk");
        let removed = t.roll_back()?;
        // Two batches were durable when the second report panicked: the 1,000 of 01,
        // then 32 pages of 2A.
        assert_eq!(removed, 1000 + 32 * PAGE);
        assert_eq!(queued_people(&t), 3000);
        assert!(t.meta(IMPORT_IN_PROGRESS)?.is_none());
        let mut left = 0;
        t.for_each_person(|_, p| {
            assert_eq!(p.import, 1);
            left += 1;
        })?;
        assert_eq!(left, 3000);

        // Interrupted after its index merge: the roll back takes its NIRs out of the
        // leaves too, and leaves the first import's.
        let first_page = t.meta(NEXT_PAGE)?.map_or(0, |v| read_u64(&v));
        t.import(3, people(3000..6000, 3), 1000, |_| {})?;
        let mark = [3u64.to_be_bytes(), first_page.to_be_bytes()];
        t.apply(
            vec![Op::Meta(IMPORT_IN_PROGRESS.into(), Some(mark.concat()))],
            true,
        )?;
        let p = |i| person(i, "", 0).insured.nir;
        assert!(t.find(&p(4000))?.is_some());
        t.roll_back()?;
        assert!(t.find(&p(4000))?.is_none());
        assert!(t.find(&p(2999))?.is_some());
        // Nothing half-imported is left to refuse the same people again.
        t.import(4, people(3000..6000, 4), 1000, |_| {})?;
        assert_eq!(t.find(&p(4000))?.unwrap().person.import, 4);
        Ok(())
    }

    /// A write computed from an earlier read is refused once someone else changed the
    /// person; a page update sees what is on disk.
    #[test]
    fn a_write_back_after_a_change_is_a_conflict() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = EnrolmentTables::open(&sled::open(dir.path())?)?;
        t.import(1, people(0..40, 1), 1000, |_| {})?;
        let nir = person(5, "", 0).insured.nir;
        let read = t.find(&nir)?.unwrap();
        let mut neighbour = t.find(&person(6, "", 0).insured.nir)?.unwrap();
        neighbour.person.failures = 3;
        t.apply(vec![neighbour.write_back(neighbour.person.clone())], true)?;
        // A neighbour in the same page changed: not this person, so no conflict.
        let mut p = read.person.clone();
        p.failures = 1;
        t.apply(vec![read.write_back(p.clone())], true)?;
        // This person changed since `read`: refused, nothing written.
        p.failures = 2;
        assert!(matches!(
            t.apply(vec![read.write_back(p)], true),
            Err(ApplyError::Conflict)
        ));
        assert_eq!(t.person(&nir)?.unwrap().failures, 1);
        assert_eq!(
            t.person(&person(6, "", 0).insured.nir)?.unwrap().failures,
            3
        );
        t.update(&[read.loc], Vec::new(), true, |_, p, _| {
            assert_eq!(p.failures, 1, "the update reads what is on disk");
            p.failures = 0;
            Ok(true)
        })?;
        assert_eq!(t.person(&nir)?.unwrap().failures, 0);
        Ok(())
    }
}
