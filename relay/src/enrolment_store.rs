//! The hub's enrolment tables (F1), on the embedded sled store: one tree whose key
//! prefixes are the tables, so that every change to one person (their record, the
//! campaign queue, the due index, the outbox) commits in one atomic, durable batch.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `p` | NIR | [`Person`] |
//! | `q` | département (3 bytes) ‖ NIR | campaign queue: imported, not yet notified |
//! | `d` | due time (ms, big-endian) ‖ NIR | the next time the clock changes the person |
//! | `o` | outbox seq (big-endian) | [`Outgoing`]: a message to deliver |
//! | `i` | identifier | NIR: identifiers are unique |
//! | `m` | name | metadata (the import in progress) |

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
    /// Adds to or removes from the campaign queue.
    Queue(String, String, bool),
    /// Adds to or removes from the due index.
    Due(UnixMillis, String, bool),
    /// Adds or removes an outbox message.
    Outbox(u64, Option<Box<Outgoing>>),
    /// Claims or frees an identifier.
    Identifier(String, Option<String>),
    /// Writes or removes metadata.
    Meta(String, Option<Vec<u8>>),
}

/// The enrolment tables.
#[derive(Clone)]
pub struct EnrolmentTables {
    db: sled::Db,
    tree: sled::Tree,
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

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    mes_protocol::codec::from_bytes(v).map_err(|e| StoreError(format!("enrolment record: {e}")))
}

impl EnrolmentTables {
    /// Opens the tables in the relay's database.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(EnrolmentTables {
            db: db.clone(),
            tree: db.open_tree("enrolment")?,
        })
    }

    /// Applies `ops` atomically; durable when `durable` (else at the next flush).
    pub fn apply(&self, ops: Vec<Op>, durable: bool) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for op in ops {
            match op {
                Op::Person(nir, p) => match p {
                    Some(p) => b.insert(
                        key(b'p', &[nir.as_bytes()]),
                        mes_protocol::codec::to_bytes(&*p),
                    ),
                    None => b.remove(key(b'p', &[nir.as_bytes()])),
                },
                Op::Queue(d, nir, on) => {
                    let k = key(b'q', &[&dept_key(&d), nir.as_bytes()]);
                    if on {
                        b.insert(k, &[][..])
                    } else {
                        b.remove(k)
                    }
                }
                Op::Due(at, nir, on) => {
                    let k = key(b'd', &[&at.0.to_be_bytes(), nir.as_bytes()]);
                    if on {
                        b.insert(k, &[][..])
                    } else {
                        b.remove(k)
                    }
                }
                Op::Outbox(seq, m) => match m {
                    Some(m) => b.insert(
                        key(b'o', &[&seq.to_be_bytes()]),
                        mes_protocol::codec::to_bytes(&*m),
                    ),
                    None => b.remove(key(b'o', &[&seq.to_be_bytes()])),
                },
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
        self.tree.apply_batch(b)?;
        if durable {
            self.tree.flush()?;
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

    /// Up to `limit` people waiting for the campaign, in département order, from
    /// `departements` only when given, after `after` (a cursor: each scan starts where
    /// the last ended instead of walking again over what was removed).
    pub fn queued(
        &self,
        departements: Option<&[String]>,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        use std::ops::Bound::{Excluded, Included};
        let split = |k: &[u8]| {
            let d = String::from_utf8_lossy(&k[1..4]).trim_end().to_string();
            (d, String::from_utf8_lossy(&k[4..]).into_owned())
        };
        let from = after.map(|(d, n)| key(b'q', &[&dept_key(d), n.as_bytes()]));
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = match departements {
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
        if let Some(f) = &from {
            ranges.retain(|(_, end)| f < end);
        }
        let mut out = Vec::new();
        for (start, end) in ranges {
            let lower = match &from {
                Some(f) if *f >= start => Excluded(f.clone()),
                _ => Included(start),
            };
            for k in self.tree.range::<Vec<u8>, _>((lower, Excluded(end))).keys() {
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(split(&k?));
            }
        }
        Ok(out)
    }

    /// Up to `limit` due entries at or before `upto`, earliest first, after `after`.
    pub fn due(
        &self,
        upto: UnixMillis,
        after: Option<&(UnixMillis, String)>,
        limit: usize,
    ) -> Result<Vec<(UnixMillis, String)>, StoreError> {
        use std::ops::Bound::{Excluded, Included};
        let mut out = Vec::new();
        let end = key(b'd', &[&upto.0.saturating_add(1).to_be_bytes()]);
        let lower = match after {
            Some((at, nir)) => Excluded(key(b'd', &[&at.0.to_be_bytes(), nir.as_bytes()])),
            None => Included(vec![b'd']),
        };
        for kv in self
            .tree
            .range::<Vec<u8>, _>((lower, Excluded(end)))
            .keys()
            .take(limit)
        {
            let k = kv?;
            let at = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
            out.push((
                UnixMillis(at),
                String::from_utf8_lossy(&k[9..]).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Up to `limit` outbox messages, oldest first, after the sequence number `after`.
    pub fn outbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Outgoing)>, StoreError> {
        use std::ops::Bound::{Excluded, Included};
        let lower = match after {
            Some(seq) => Excluded(key(b'o', &[&seq.to_be_bytes()])),
            None => Included(vec![b'o']),
        };
        let mut out = Vec::new();
        for kv in self
            .tree
            .range::<Vec<u8>, _>((lower, Excluded(vec![b'p'])))
            .take(limit)
        {
            let (k, v) = kv?;
            out.push((
                u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")),
                decode(&v)?,
            ));
        }
        Ok(out)
    }

    /// Messages waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.tree.scan_prefix([b'o']).count()
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
