//! The hub's enrolment tables (F1), on the embedded sled store: one tree whose key
//! prefixes are the tables, so that every change to one person (their record, the
//! campaign queue, the due index, the outbox) commits in one atomic, durable batch.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `p` | NIR | [`Person`] |
//! | `q` | département (3 bytes) ‖ chunk seq | NIRs imported, not yet notified |
//! | `d` | due time (ms, big-endian) ‖ chunk seq | NIRs the clock may change then |
//! | `o` | chunk seq (big-endian) | count ‖ [`Outgoing`] messages to deliver |
//! | `i` | identifier | NIR: identifiers are unique |
//! | `m` | name | metadata (the import in progress) |
//!
//! The queue, the due index and the outbox are stored as chunks: every entry one batch
//! adds goes into one key (per département, per due time), so a campaign of millions
//! writes one key per batch of ten thousand rather than one per person; sled copies a
//! node on every insert, and that copy is what bulk work costs. A due entry is never
//! removed one by one: the person's record names its live due time (`Person::due`), and
//! the sweep skips the stale ones when their chunk comes up.

use mes_protocol::ids::SpaceId;
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};

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
    /// Writes (or removes) a person.
    Person(String, Option<Box<Person>>),
    /// Queues a person (département, NIR) for the campaign.
    Queue(String, String),
    /// Rewrites a queue chunk with what is left of it, or removes it.
    QueueChunk(Vec<u8>, Option<Vec<String>>),
    /// Indexes a person (NIR) as due then.
    Due(UnixMillis, String),
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

/// A campaign queue chunk: département, its key, the NIRs it holds.
pub type QueueChunk = (String, Vec<u8>, Vec<String>);

/// A due chunk: the due time, its key, the NIRs it holds.
pub type DueChunk = (UnixMillis, Vec<u8>, Vec<String>);

/// The enrolment tables.
#[derive(Clone)]
pub struct EnrolmentTables {
    db: sled::Db,
    tree: sled::Tree,
    commits: std::sync::Arc<crate::group_commit::GroupCommit>,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
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
    v.extend(mes_protocol::codec::to_bytes(&messages));
    v
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    mes_protocol::codec::from_bytes(v).map_err(|e| StoreError(format!("enrolment record: {e}")))
}

impl EnrolmentTables {
    /// Opens the tables in the relay's database.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(EnrolmentTables {
            db: db.clone(),
            tree: db.open_tree("enrolment")?,
            commits: Default::default(),
        })
    }

    /// Applies `ops` atomically; durable when `durable` (else at the next flush). The
    /// queue entries, due entries and messages of one call go into one new chunk each
    /// (per département, per due time, one outbox chunk).
    pub fn apply(&self, ops: Vec<Op>, durable: bool) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        let mut queue: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut due: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        let mut messages: Vec<Outgoing> = Vec::new();
        for op in ops {
            match op {
                Op::Person(nir, p) => match p {
                    Some(p) => b.insert(
                        key(b'p', &[nir.as_bytes()]),
                        mes_protocol::codec::to_bytes(&*p),
                    ),
                    None => b.remove(key(b'p', &[nir.as_bytes()])),
                },
                Op::Queue(d, nir) => queue.entry(d).or_default().push(nir),
                Op::QueueChunk(k, rest) => match rest {
                    Some(rest) if !rest.is_empty() => {
                        b.insert(k, mes_protocol::codec::to_bytes(&rest))
                    }
                    _ => b.remove(k),
                },
                Op::Due(at, nir) => due.entry(at.0).or_default().push(nir),
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
        for (d, nirs) in queue {
            let seq = self.next_seq()?;
            b.insert(
                key(b'q', &[&dept_key(&d), &seq.to_be_bytes()]),
                mes_protocol::codec::to_bytes(&nirs),
            );
        }
        for (at, nirs) in due {
            let seq = self.next_seq()?;
            b.insert(
                key(b'd', &[&at.to_be_bytes(), &seq.to_be_bytes()]),
                mes_protocol::codec::to_bytes(&nirs),
            );
        }
        if !messages.is_empty() {
            let seq = self.next_seq()?;
            b.insert(key(b'o', &[&seq.to_be_bytes()]), outbox_value(&messages));
        }
        self.tree.apply_batch(b)?;
        if durable {
            self.commits.wait_durable(|| self.tree.flush().map(drop))?;
        }
        Ok(())
    }

    /// Makes everything applied so far durable; concurrent callers share one flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush_async().await?;
        Ok(())
    }

    /// A person by NIR (13 characters).
    pub fn person(&self, nir: &str) -> Result<Option<Person>, StoreError> {
        self.tree
            .get(key(b'p', &[nir.as_bytes()]))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Whether a person is on file.
    pub fn contains(&self, nir: &str) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key(b'p', &[nir.as_bytes()]))?)
    }

    /// Who holds an identifier.
    pub fn identifier(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(key(b'i', &[id.as_bytes()]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Queue chunks in département order (from `departements` only, when given), until
    /// they hold at least `limit` people: (département, chunk key, NIRs).
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
                let nirs: Vec<String> = decode(&v)?;
                people += nirs.len();
                out.push((d, k.to_vec(), nirs));
            }
        }
        Ok(out)
    }

    /// Removes these people from the queue (an interrupted import rolled back).
    pub fn unqueue(&self, doomed: &std::collections::HashSet<String>) -> Result<(), StoreError> {
        let mut ops = Vec::new();
        for kv in self.tree.scan_prefix([b'q']) {
            let (k, v) = kv?;
            let nirs: Vec<String> = decode(&v)?;
            let kept: Vec<String> = nirs
                .iter()
                .filter(|n| !doomed.contains(*n))
                .cloned()
                .collect();
            if kept.len() != nirs.len() {
                ops.push(Op::QueueChunk(k.to_vec(), Some(kept)));
            }
        }
        self.apply(ops, true)
    }

    /// Due chunks at or before `upto`, earliest first, until they hold at least `limit`
    /// people, and only chunks older than `before` (a sequence number: what a sweep
    /// adds is left to the next one): (due time, chunk key, NIRs).
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
            let nirs: Vec<String> = decode(&v)?;
            people += nirs.len();
            out.push((UnixMillis(at), k.to_vec(), nirs));
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

    /// A fresh outbox sequence number (monotonic across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Visits every person.
    pub fn for_each_person(&self, mut f: impl FnMut(Person)) -> Result<(), StoreError> {
        for kv in self.tree.scan_prefix([b'p']).values() {
            f(decode(&kv?)?);
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
