//! The hub's enrolment tables (F1): the people, the campaign queue, the due index, the
//! outbox, identifiers and metadata, on the relay's backend: the embedded sled store
//! ([`crate::enrolment::tables::sled_tables`]) or PostgreSQL ([`crate::enrolment::tables::pg_tables`]). Every change to
//! one person (their record, the queue, the due index, the outbox) commits in one atomic,
//! durable batch.
//!
//! What both backends share is here: the operations the service calls, and the small
//! tables, kept as the same ordered keys on both:
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `q` | département (3 bytes) ‖ chunk seq | places of people imported, not yet notified |
//! | `d` | due time (ms, big-endian) ‖ chunk seq | places of people the clock may change then |
//! | `o` | chunk seq (big-endian) | count ‖ [`Outgoing`] messages to deliver |
//! | `i` | identifier | NIR: identifiers are unique |
//! | `m` | name | metadata (the import in progress, the next page) |
//!
//! People have a place ([`Loc`]: page and slot) given at import and never changed: an
//! import takes fresh pages, each of one département, in the campaign's order, so the
//! people notified together are neighbours, and the queue and due chunks hold places,
//! not NIRs. On sled the page is the unit of storage (docs/enrolment.md, "Storage"); on
//! PostgreSQL a person is a row keyed by place, with a unique index on the NIR. What one
//! batch adds to the queue, the due index or the outbox is one key. A due entry is never
//! removed one by one: the person's record names its live due time (`Person::due`), and
//! the sweep skips the stale ones.
//!
//! Concurrency: the campaign and the sweep change people in place, each read fresh
//! under a lock; a request that read a person earlier writes back only if the person's
//! bytes are still those it read, and claims an identifier only if it is free or already
//! theirs ([`ApplyError::Conflict`] otherwise: the service runs it again).
//!
//! Over 600 lines: the enrolment tables' trait and the checks every backend shares (a fifth is tests).
//!
//! Import circle: with `tables::sled_tables`, the backends implement this module's `Backend`, and `EnrolmentTables::open` picks the sled one for the relay's embedded database.

use mes_protocol::ids::SpaceId;
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::enrolment::pages::Loc;
use crate::enrolment::pages::PAGE;
use crate::enrolment::Status;
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

impl Person {
    /// Someone just imported by import `import`: not notified, no code, no account.
    pub fn imported(insured: Insured, import: u64) -> Person {
        Person {
            insured,
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
    /// An opposition recorded on the person's behalf (F1.4), with a code to undo it.
    OpposedForYou,
    /// A closure recorded on the person's behalf (F1.6).
    ClosedForYou,
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
            .map(|i| crate::enrolment::provisional_code::derive(key, &self.about, i))
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
    /// Claims (if free or already theirs: else a conflict) or frees an identifier.
    Identifier(String, Option<String>),
    /// Writes or removes metadata.
    Meta(String, Option<Vec<u8>>),
    /// Records (true) or forgets a hold of items for a person (F1.5), by its key.
    Hold(Vec<u8>, bool),
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A person changed since the request read them, or an identifier it claims is
    /// someone else's: nothing was written.
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
            ApplyError::Conflict => StoreError::backend(e.to_string()),
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

    /// A person as stored at `loc`.
    pub fn decode(loc: Loc, bytes: &[u8]) -> Result<Found, StoreError> {
        Ok(Found {
            loc,
            person: decode(bytes)?,
            read: bytes.to_vec(),
        })
    }
}

/// A person to write: where, the bytes the slot must still hold (when checked), the new
/// bytes.
pub struct PersonWrite {
    /// Where.
    pub loc: Loc,
    /// What must still be there.
    pub was: Option<Vec<u8>>,
    /// The new record's bytes.
    pub now: Vec<u8>,
}

/// A write to the small tables: `None` removes; a claim holds only if the key is absent
/// or already holds the value.
pub struct KvWrite {
    /// The key (with its table's prefix).
    pub key: Vec<u8>,
    /// The new value.
    pub value: Option<Vec<u8>>,
    /// Whether it is a claim.
    pub claim: bool,
}

/// A person's change made under the lock of a bulk update: whether it changed them, and
/// what goes with it.
pub type Change<'a> = dyn FnMut(Loc, &mut Person, &mut Vec<Op>) -> Result<bool, StoreError> + 'a;

/// A visitor of small-table entries (key, value): whether to go on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// What a backend provides: people by place and by NIR, and the small tables as ordered
/// keys. Every write is atomic; `durable` ones are on disk when they return.
pub trait Backend: Send + Sync {
    /// Where a person lives, by NIR (13 characters).
    fn locate(&self, nir: &str) -> Result<Option<Loc>, StoreError>;
    /// The person at a place.
    fn at(&self, loc: Loc) -> Result<Option<Found>, StoreError>;
    /// Which of these NIRs are on file.
    fn on_file(&self, nirs: &[&str]) -> Result<Vec<String>, StoreError>;
    /// Writes people and small-table entries in one atomic batch; a `was` that no longer
    /// holds, or a claim on someone else's key, refuses it whole.
    fn write(
        &self,
        people: Vec<PersonWrite>,
        kv: Vec<KvWrite>,
        durable: bool,
    ) -> Result<(), ApplyError>;
    /// Runs `f` on each person at `locs`, read fresh under their lock; writes the people
    /// it changed with the ops it added and `extra`, in one atomic batch.
    fn update(
        &self,
        locs: &[Loc],
        extra: Vec<Op>,
        durable: bool,
        f: &mut Change<'_>,
    ) -> Result<(), StoreError>;
    /// Adds new people in their pages, with small-table writes, atomically and durably.
    fn insert_people(
        &self,
        import: u64,
        pages: &[(u64, Vec<Person>)],
        kv: Vec<KvWrite>,
    ) -> Result<(), StoreError>;
    /// Makes the people inserted since the last call findable by NIR (sled merges its
    /// index leaves; PostgreSQL's index is kept by every insert).
    fn index_people(&self, entries: Vec<(String, Loc)>) -> Result<(), StoreError>;
    /// Removes the people of every page from `first_page` on (an import rolled back);
    /// how many there were.
    fn remove_people_from(&self, first_page: u64) -> Result<usize, StoreError>;
    /// Visits every person in place order.
    fn each_person(&self, f: &mut dyn FnMut(Loc, Person)) -> Result<(), StoreError>;
    /// Visits the small-table entries from `start` to before `end` in key order, while
    /// `visit` says to go on.
    fn kv_range(&self, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// One small-table entry.
    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// A fresh sequence number (monotonic across restarts).
    fn next_seq(&self) -> Result<u64, StoreError>;
}

const IMPORT_IN_PROGRESS: &str = "import-in-progress";
const NEXT_PAGE: &str = "next-page";

/// A key of the small tables.
pub fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn dept_key(d: &str) -> [u8; 3] {
    let mut k = [b' '; 3];
    // Two-character codes sort before the overseas three-digit ones, as numbers would.
    k[..d.len().min(3)].copy_from_slice(&d.as_bytes()[..d.len().min(3)]);
    k
}

/// An outbox chunk: its message count (so the outbox is counted without decoding), then
/// the messages.
fn outbox_value(messages: &[Outgoing]) -> Vec<u8> {
    let mut v = (messages.len() as u32).to_be_bytes().to_vec();
    v.extend(mes_protocol::wire::codec::to_bytes(&messages));
    v
}

/// Decodes a stored value.
pub fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    mes_protocol::wire::codec::from_bytes(v)
        .map_err(|e| StoreError::corrupt(format!("enrolment record: {e}")))
}

/// A big-endian u64 at the start of `v` (0 when shorter).
pub fn read_u64(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Splits ops into people writes and small-table writes; due entries and messages go
/// into one new chunk each (per due time, one outbox chunk), numbered by `seq`.
pub fn split_ops(
    ops: Vec<Op>,
    mut seq: impl FnMut() -> Result<u64, StoreError>,
) -> Result<(Vec<PersonWrite>, Vec<KvWrite>), StoreError> {
    let mut people = Vec::new();
    let mut kv = Vec::new();
    let put = |k: Vec<u8>, v: Option<Vec<u8>>| KvWrite {
        key: k,
        value: v,
        claim: false,
    };
    let mut due: BTreeMap<u64, Vec<Loc>> = BTreeMap::new();
    let mut messages: Vec<Outgoing> = Vec::new();
    for op in ops {
        match op {
            Op::Person { loc, was, person } => people.push(PersonWrite {
                loc,
                was,
                now: mes_protocol::wire::codec::to_bytes(&*person),
            }),
            Op::QueueChunk(k, rest) => kv.push(put(
                k,
                rest.filter(|r| !r.is_empty())
                    .map(|r| mes_protocol::wire::codec::to_bytes(&r)),
            )),
            Op::Due(at, loc) => due.entry(at.0).or_default().push(loc),
            Op::DueChunk(k) => kv.push(put(k, None)),
            Op::Message(m) => messages.push(*m),
            Op::OutboxChunk(seq, rest) => kv.push(put(
                key(b'o', &[&seq.to_be_bytes()]),
                rest.filter(|r| !r.is_empty()).map(|r| outbox_value(&r)),
            )),
            Op::Identifier(id, nir) => kv.push(KvWrite {
                key: key(b'i', &[id.as_bytes()]),
                claim: nir.is_some(),
                value: nir.map(String::into_bytes),
            }),
            Op::Meta(name, v) => kv.push(put(key(b'm', &[name.as_bytes()]), v)),
            Op::Hold(k, on) => kv.push(put(k, on.then(Vec::new))),
        }
    }
    for (at, locs) in due {
        kv.push(put(
            key(b'd', &[&at.to_be_bytes(), &seq()?.to_be_bytes()]),
            Some(mes_protocol::wire::codec::to_bytes(&locs)),
        ));
    }
    if !messages.is_empty() {
        kv.push(put(
            key(b'o', &[&seq()?.to_be_bytes()]),
            Some(outbox_value(&messages)),
        ));
    }
    Ok((people, kv))
}

/// The enrolment tables, on either backend.
#[derive(Clone)]
pub struct EnrolmentTables {
    backend: Arc<dyn Backend>,
}

impl EnrolmentTables {
    /// The tables in the relay's sled database.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self::on(
            crate::enrolment::tables::sled_tables::SledTables::open(db)?,
        ))
    }

    /// The tables on a backend.
    pub fn on(backend: impl Backend + 'static) -> Self {
        EnrolmentTables {
            backend: Arc::new(backend),
        }
    }

    /// Applies `ops` atomically; durable when `durable` (else at the next flush). The
    /// due entries and messages of one call go into one new chunk each (per due time, one
    /// outbox chunk). Refused whole with [`ApplyError::Conflict`] if a person written
    /// with `was` changed since, or an identifier claimed is someone else's.
    pub fn apply(&self, ops: Vec<Op>, durable: bool) -> Result<(), ApplyError> {
        let (people, kv) = split_ops(ops, || self.backend.next_seq())?;
        self.backend.write(people, kv, durable)
    }

    /// Runs `f` on each person at `locs`, read fresh under their lock; the people `f`
    /// changed (it returns true) are written back with the ops it added and `extra`, in
    /// one atomic batch, durable when `durable`. `f` must not add [`Op::Person`].
    pub fn update(
        &self,
        locs: &[Loc],
        extra: Vec<Op>,
        durable: bool,
        mut f: impl FnMut(Loc, &mut Person, &mut Vec<Op>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.backend.update(locs, extra, durable, &mut f)
    }

    /// Where a person lives, by NIR (13 characters).
    pub fn locate(&self, nir: &str) -> Result<Option<Loc>, StoreError> {
        self.backend.locate(nir)
    }

    /// The person at a place.
    pub fn at(&self, loc: Loc) -> Result<Option<Found>, StoreError> {
        self.backend.at(loc)
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
        self.backend.on_file(nirs)
    }

    /// Who holds an identifier.
    pub fn identifier(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .backend
            .kv_get(&key(b'i', &[id.as_bytes()]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Adds the people of import `id`, in the order given (the campaign's: by
    /// département, then as listed), in fresh pages and durable batches of about `batch`
    /// people with their queue chunks, then makes them findable by NIR. The import is
    /// marked in progress throughout: [`EnrolmentTables::roll_back`] undoes an
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
        let mut pages: Vec<(u64, Vec<Person>)> = Vec::new();
        for p in people {
            match pages.last_mut() {
                Some((_, last))
                    if last.len() < PAGE
                        && last[0].insured.departement == p.insured.departement =>
                {
                    last.push(p);
                }
                _ => pages.push((first_page + pages.len() as u64, vec![p])),
            }
        }
        let mut index = Vec::new();
        for group in pages.chunks(batch.div_ceil(PAGE).max(1)) {
            let mut queue: BTreeMap<[u8; 3], Vec<Loc>> = BTreeMap::new();
            for (page, people) in group {
                for (slot, p) in people.iter().enumerate() {
                    let loc = Loc::new(*page, slot);
                    queue
                        .entry(dept_key(&p.insured.departement))
                        .or_default()
                        .push(loc);
                    index.push((p.insured.nir.clone(), loc));
                }
            }
            let mut ops = Vec::new();
            for (d, locs) in queue {
                let k = key(b'q', &[&d, &self.next_seq()?.to_be_bytes()]);
                ops.push(Op::QueueChunk(k, Some(locs)));
            }
            let next = group.last().map_or(first_page, |(p, _)| p + 1);
            ops.push(Op::Meta(
                NEXT_PAGE.into(),
                Some(next.to_be_bytes().to_vec()),
            ));
            let (_, kv) = split_ops(ops, || self.backend.next_seq())?;
            self.backend.insert_people(id, group, kv)?;
            progress(group.iter().map(|(_, p)| p.len()).sum());
        }
        self.backend.index_people(index)?;
        self.apply(vec![Op::Meta(IMPORT_IN_PROGRESS.into(), None)], true)?;
        Ok(())
    }

    /// Rolls back an import that was interrupted: its people and queue entries go.
    /// Returns how many people it had written.
    pub fn roll_back(&self) -> Result<usize, StoreError> {
        let Some(mark) = self.meta(IMPORT_IN_PROGRESS)? else {
            return Ok(0);
        };
        let first_page = read_u64(mark.get(8..).unwrap_or_default());
        let removed = self.backend.remove_people_from(first_page)?;
        let mut ops = Vec::new();
        self.backend.kv_range(b"q", b"r", &mut |k, v| {
            let locs: Vec<Loc> = decode(v)?;
            let kept: Vec<Loc> = locs
                .iter()
                .copied()
                .filter(|l| l.page() < first_page)
                .collect();
            if kept.len() != locs.len() {
                ops.push(Op::QueueChunk(k.to_vec(), Some(kept)));
            }
            Ok(true)
        })?;
        ops.push(Op::Meta(IMPORT_IN_PROGRESS.into(), None));
        self.apply(ops, true)?;
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
            self.backend.kv_range(&start, &end, &mut |k, v| {
                if people >= limit {
                    return Ok(false);
                }
                let d = String::from_utf8_lossy(&k[1..4]).trim_end().to_string();
                let locs: Vec<Loc> = decode(v)?;
                people += locs.len();
                out.push((d, k.to_vec(), locs));
                Ok(true)
            })?;
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
        self.backend.kv_range(b"d", &end, &mut |k, v| {
            if people >= limit {
                return Ok(false);
            }
            let at = read_u64(&k[1..]);
            let seq = read_u64(&k[9..]);
            if seq < before {
                let locs: Vec<Loc> = decode(v)?;
                people += locs.len();
                out.push((UnixMillis(at), k.to_vec(), locs));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Outbox chunks, oldest first, until they hold at least `limit` messages.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, Vec<Outgoing>)>, StoreError> {
        self.outbox_from(0, limit)
    }

    /// Outbox chunks numbered `first` or later, oldest first, until they hold at least
    /// `limit` messages.
    pub fn outbox_from(
        &self,
        first: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<Outgoing>)>, StoreError> {
        let mut out = Vec::new();
        let mut messages = 0;
        let start = key(b'o', &[&first.to_be_bytes()]);
        self.backend.kv_range(&start, b"p", &mut |k, v| {
            if messages >= limit {
                return Ok(false);
            }
            let chunk: Vec<Outgoing> = decode(v.get(4..).unwrap_or_default())?;
            messages += chunk.len();
            out.push((read_u64(&k[1..]), chunk));
            Ok(true)
        })?;
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
        let mut n = 0;
        let _ = self.backend.kv_range(b"o", b"p", &mut |_, v| {
            n += v.get(..4).map_or(0, |c| {
                u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize
            });
            Ok(true)
        });
        n
    }

    /// A fresh sequence number (monotonic across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        self.backend.next_seq()
    }

    /// Visits every person, in place order.
    pub fn for_each_person(&self, mut f: impl FnMut(Loc, Person)) -> Result<(), StoreError> {
        self.backend.each_person(&mut f)
    }

    /// Metadata.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.kv_get(&key(b'm', &[name.as_bytes()]))
    }

    /// A value of the small tables.
    pub fn kv(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.kv_get(key)
    }

    /// Visits the small tables' keys in `start..end`, in order, while `visit` says so.
    pub fn kv_scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        self.backend.kv_range(start, end, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(i: usize, dept: &str, import: u64) -> Person {
        Person::imported(
            Insured {
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
            import,
        )
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
