//! The hub's enrolment operations (F1) over its tables: import, campaign, the person's
//! activation, opposition, closure, reopening and new codes, the clock's sweep and the
//! statistics. Each person's change commits in one batch with what it implies (queue,
//! due index, outbox), so a crash leaves either the old state or the new, never half.
//! The state machine is [`crate::enrolment`]; the tables [`crate::enrolment::store`].
//!
//! Over 600 lines: the enrolment operations and the sweep over the tables, each with its transaction rule.

use mes_protocol::enrolment::nir::Nir;
use mes_protocol::ids::SpaceId;
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::enrolment::behalf;
use crate::enrolment::population;
use crate::enrolment::provisional_code;
use crate::enrolment::store::{
    Account, ApplyError, CodeRecord, DueChunk, EnrolmentTables, Found, Insured, Loc, MessageKind,
    Op, Outgoing, Person,
};
use crate::enrolment::{next_reminder, Policy, Status};
use crate::store::StoreError;

/// Consecutive failures after which a NIR is locked for a while (F1.3).
pub const MAX_FAILURES: u32 = 5;
/// The first lock; each further failure doubles it.
pub const LOCK_MINUTES: u64 = 15;
/// Minutes between two new codes for one person (F1.7).
pub const REGENERATE_INTERVAL_MINUTES: u64 = 15;
/// People per durable batch in bulk operations.
pub const BATCH: usize = 10_000;

/// Why a person's request was refused: what they read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown NIR, or the serial does not match.
    #[error("this NIR and carte Vitale serial do not match anyone on file")]
    Unknown,
    /// The NIR itself is malformed.
    #[error("NIR: {0}")]
    BadNir(String),
    /// A wrong code (counted).
    #[error("this provisional code is not the one sent for this NIR ({left} attempt(s) left before a pause)")]
    WrongCode {
        /// Attempts before the lock.
        left: u32,
    },
    /// A malformed code.
    #[error("{0}")]
    MalformedCode(String),
    /// The code expired.
    #[error("this provisional code expired on {0}: ask for a new one")]
    Expired(String),
    /// No code is live (used already, or never sent).
    #[error("no provisional code is valid for this NIR (a code is used once): ask for a new one")]
    NoCode,
    /// Too many failures.
    #[error("too many failed attempts: try again after {0}")]
    Locked(String),
    /// A wrong identifier or password: the same words whether the identifier exists.
    #[error("wrong identifier or password")]
    WrongPassword,
    /// A new code was sent a moment ago (F1.7, issue 22 finding 4).
    #[error("a new code was sent to the email on file at {0}: another can be asked from {1}")]
    TooSoon(String, String),
    /// The transition is not allowed.
    #[error("{0}")]
    State(String),
    /// An account rule is broken.
    #[error("{0}")]
    Rule(String),
    /// The identifier is taken.
    #[error("the identifier {0:?} is taken: choose another")]
    IdentifierTaken(String),
    /// No email on file for a new code.
    #[error(
        "a new code is sent by email only, and no email is on file: ask your health insurance fund"
    )]
    NoEmail,
    /// The hub's tables failed.
    #[error("{0}")]
    Storage(String),
    /// The person's record changed while the request was served (run again inside; seen
    /// only when it kept changing).
    #[error("this enrolment changed while the request was served: try again")]
    Changed,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Storage(e.to_string())
    }
}

impl From<ApplyError> for Refusal {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Conflict => Refusal::Changed,
            ApplyError::Store(e) => e.into(),
        }
    }
}

/// Runs a request again while the person changed under it (each run reads afresh).
fn retrying<T>(mut request: impl FnMut() -> Result<T, Refusal>) -> Result<T, Refusal> {
    for _ in 0..8 {
        match request() {
            Err(Refusal::Changed) => continue,
            other => return other,
        }
    }
    Err(Refusal::Changed)
}

/// The hub secret that keys code hashes, and the password hash's cost.
#[derive(Clone)]
pub struct Secrets {
    /// Keys the code hashes.
    pub code_key: [u8; 32],
    /// Argon2id cost.
    pub argon: argon2::Params,
}

/// Paris date of a time, for messages ("13/04/2026").
pub fn paris_date(t: UnixMillis) -> String {
    let ts = jiff::Timestamp::from_millisecond(t.0 as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let tz = crate::enrolment::paris();
    ts.to_zoned(tz).strftime("%d/%m/%Y").to_string()
}

fn paris_time(t: UnixMillis) -> String {
    let ts = jiff::Timestamp::from_millisecond(t.0 as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let tz = crate::enrolment::paris();
    ts.to_zoned(tz).strftime("%d/%m/%Y %H:%M").to_string()
}

fn insured(i: &population::Insured) -> Insured {
    Insured {
        nir: i.nir.as_str().to_string(),
        vitale_serial: i.vitale_serial.clone(),
        last_name: i.last_name.clone(),
        first_names: i.first_names.clone(),
        birth_date: i.birth_date.to_string(),
        email: i.email.clone(),
        postal_address: i.postal_address.clone(),
        departement: i.departement.clone(),
        representatives: i
            .representatives
            .iter()
            .map(|n| n.as_str().to_string())
            .collect(),
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportReport {
    /// People imported.
    pub imported: usize,
    /// People of an interrupted earlier import rolled back first.
    pub rolled_back: usize,
}

/// Rolls back an import that was interrupted (its people are removed), if any.
pub fn roll_back_interrupted(t: &EnrolmentTables) -> Result<usize, StoreError> {
    t.roll_back()
}

/// Imports checked rows (F1.1): refused whole if anyone is already on file; written in
/// durable batches under an import id, so an interrupted import is rolled back by the
/// next one and nothing is ever half-imported. People are stored by département, in the
/// campaign's order (F1.2), then as the file lists them. `progress` is told of each
/// batch.
pub fn import(
    t: &EnrolmentTables,
    rows: &[population::Insured],
    progress: impl FnMut(usize),
) -> Result<ImportReport, Vec<String>> {
    let store = |e: StoreError| vec![e.to_string()];
    let rolled_back = roll_back_interrupted(t).map_err(store)?;
    let nirs: Vec<&str> = rows.iter().map(|r| r.nir.as_str()).collect();
    let already = t.on_file(&nirs).map_err(store)?;
    if !already.is_empty() {
        return Err(already
            .iter()
            .map(|n| format!("NIR {} is already on file", Nir::with_key(n)))
            .collect());
    }
    let id = t.next_seq().map_err(store)?;
    let mut people: Vec<Person> = rows
        .iter()
        .map(|r| Person::imported(insured(r), id))
        .collect();
    // Stable: within a département, the file's order.
    people.sort_by(|a, b| {
        departement_order(&a.insured.departement).cmp(&departement_order(&b.insured.departement))
    });
    t.import(id, people, BATCH, progress).map_err(store)?;
    Ok(ImportReport {
        imported: rows.len(),
        rolled_back,
    })
}

/// The campaign's order of départements (F1.2), as the queue's keys sort them: two
/// characters before three (overseas last), then by character (2A and 2B after 29).
fn departement_order(d: &str) -> (usize, &str) {
    (d.len(), d)
}

/// The message for a person, addressed to them or, for a minor, to the first legal
/// representative on file with a contact (F1.10).
fn message_for(
    t: &EnrolmentTables,
    p: &Person,
    kind: MessageKind,
    code: Option<(u64, UnixMillis)>,
    deadline: Option<UnixMillis>,
) -> Result<Outgoing, StoreError> {
    let i = &p.insured;
    let name = format!("{} {}", i.first_names, i.last_name);
    let mut to = (name.clone(), i.email.clone(), i.postal_address.clone());
    let minor = !i.representatives.is_empty();
    for r in &i.representatives {
        if let Some(rep) = t.person(r)? {
            let rep = rep.insured;
            to = (
                format!("{} {}", rep.first_names, rep.last_name),
                rep.email.clone(),
                rep.postal_address.clone(),
            );
            break;
        }
    }
    let (code_issue, code_expires) = match code {
        Some((c, e)) => (Some(c), Some(e)),
        None => (None, None),
    };
    Ok(Outgoing {
        kind,
        about: i.nir.clone(),
        addressee: to.0,
        email: to.1,
        postal_address: to.2,
        for_name: name,
        minor,
        code_issue,
        code_expires,
        deadline,
        departement: i.departement.clone(),
    })
}

/// The due entry to add when a person's due time changes; the old entry stays, stale,
/// and the sweep skips it (the record names the live one).
fn due_ops(loc: Loc, old: Option<UnixMillis>, new: Option<UnixMillis>) -> Option<Op> {
    match new {
        Some(n) if old != new => Some(Op::Due(n, loc)),
        _ => None,
    }
}

/// When the clock next changes this person: the deadline, the archive's end, or the next
/// reminder, whichever comes first.
fn next_due(p: &Person, policy: &Policy) -> Option<UnixMillis> {
    let event = match &p.status {
        Status::Notified { deadline, .. } => Some(*deadline),
        Status::Closed { purge_at, .. } => Some(*purge_at),
        _ => None,
    };
    let reminder = next_reminder(&p.status, p.reminders_off, p.last_reminder, policy);
    match (event, reminder) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Moves a person's due index (from the entry `p.due` names) to their next event.
fn reschedule(loc: Loc, p: &mut Person, policy: &Policy, ops: &mut Vec<Op>) {
    let old_due = p.due;
    p.due = next_due(p, policy);
    ops.extend(due_ops(loc, old_due, p.due));
}

/// Writes a person back with `ops`, in one durable batch, if nobody changed them since
/// `read` ([`Refusal::Changed`] otherwise).
fn commit(
    t: &EnrolmentTables,
    read: &Found,
    mut p: Person,
    policy: &Policy,
    mut ops: Vec<Op>,
) -> Result<(), Refusal> {
    reschedule(read.loc, &mut p, policy, &mut ops);
    ops.push(read.write_back(p));
    Ok(t.apply(ops, true)?)
}

/// A person's next code: its issue number (for the message) and its record.
fn fresh_code(
    p: &mut Person,
    secrets: &Secrets,
    now: UnixMillis,
    policy: &Policy,
) -> (u64, CodeRecord) {
    p.code_issue += 1;
    let code = provisional_code::derive(&secrets.code_key, &p.insured.nir, p.code_issue);
    let expires = crate::enrolment::after(now, jiff::ToSpan::days(policy.code_validity_days));
    let hash = provisional_code::hash(&secrets.code_key, &code);
    (p.code_issue, CodeRecord { hash, expires })
}

/// What a campaign run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CampaignReport {
    /// People notified.
    pub notified: usize,
    /// People taken from the queue but not notified: they decided before their letter
    /// (an opposition passed on for them, F1.4), or a run interrupted halfway had
    /// notified them already.
    #[serde(default)]
    pub skipped: usize,
}

/// What a campaign run covers.
#[derive(Debug, Clone)]
pub struct CampaignRun {
    /// Only these départements (in their order), or all.
    pub departements: Option<Vec<String>>,
    /// At most this many people.
    pub limit: usize,
    /// At most this many messages per second.
    pub rate: Option<u32>,
}

impl Default for CampaignRun {
    fn default() -> Self {
        CampaignRun {
            departements: None,
            limit: usize::MAX,
            rate: None,
        }
    }
}

/// Notifies imported people (F1.2) in département order, as `run` says: each gets a
/// code and a message in the outbox, committed with their status in one durable batch.
pub fn campaign(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    run: &CampaignRun,
    mut now: impl FnMut() -> UnixMillis,
    mut progress: impl FnMut(usize),
) -> Result<CampaignReport, StoreError> {
    let (departements, limit, rate) = (run.departements.as_deref(), run.limit, run.rate);
    let started = std::time::Instant::now();
    let (mut notified, mut taken_total) = (0, 0);
    while taken_total < limit {
        let step = match rate {
            Some(r) => BATCH.min(r.max(1) as usize),
            None => BATCH,
        }
        .min(limit - taken_total);
        // Whole chunks, the last one cut at `step`: what is left of it is written back.
        let mut queue_ops = Vec::new();
        let mut queued = Vec::with_capacity(step);
        for (_, chunk, locs) in t.queued(departements, step)? {
            let take = locs.len().min(step - queued.len());
            let rest = locs[take..].to_vec();
            queued.extend(locs.into_iter().take(take));
            queue_ops.push(Op::QueueChunk(chunk, Some(rest)));
        }
        if queued.is_empty() {
            break;
        }
        let taken = queued.len();
        if let Some(r) = rate {
            // Pace: the n-th message leaves no earlier than n / rate seconds after start.
            let due = std::time::Duration::from_secs_f64(taken_total as f64 / r.max(1) as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let at = now();
        // The people of a batch are neighbours (pages of one département): each worker
        // rewrites whole pages, each person's status, code, due entry and message in one
        // atomic batch; the queue chunks go once every worker committed (a person already
        // notified is skipped, so a batch interrupted halfway is finished, not repeated).
        let sent = std::sync::atomic::AtomicUsize::new(0);
        in_parallel(&by_pages(queued), |runs| {
            runs.iter().try_for_each(|locs| {
                t.update(locs, Vec::new(), true, |loc, p, ops| {
                    let Ok(status) = p.status.notify(at, policy) else {
                        return Ok(false);
                    };
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Status::Notified { deadline, .. } = status else {
                        unreachable!("notify gives Notified")
                    };
                    let (code, record) = fresh_code(p, secrets, at, policy);
                    let expires = record.expires;
                    p.status = status;
                    p.code = Some(record);
                    let m = message_for(
                        t,
                        p,
                        MessageKind::Notification,
                        Some((code, expires)),
                        Some(deadline),
                    )?;
                    ops.push(Op::Message(Box::new(m)));
                    reschedule(loc, p, policy, ops);
                    Ok(true)
                })
            })
        })?;
        t.apply(queue_ops, true)?;
        let sent = sent.into_inner();
        taken_total += taken;
        notified += sent;
        progress(taken);
    }
    Ok(CampaignReport {
        notified,
        skipped: taken_total - notified,
    })
}

/// Places sorted, cut into one contiguous run per worker at page boundaries.
fn by_pages(mut locs: Vec<Loc>) -> Vec<Vec<Loc>> {
    locs.sort_unstable();
    let per = locs.len().div_ceil(workers()).max(1);
    let mut runs: Vec<Vec<Loc>> = Vec::new();
    for l in locs {
        match runs.last_mut() {
            Some(r) if r.len() < per || r.last().is_some_and(|x| x.page() == l.page()) => r.push(l),
            _ => runs.push(vec![l]),
        }
    }
    runs
}

/// Looks a person up by NIR and serial, and refuses while locked.
pub(crate) fn find(
    t: &EnrolmentTables,
    nir: &str,
    serial: &str,
    now: UnixMillis,
) -> Result<Found, Refusal> {
    let found = find_unlocked(t, nir, serial)?;
    if let Some(until) = found.person.locked_until.filter(|u| *u > now) {
        return Err(Refusal::Locked(paris_time(until)));
    }
    Ok(found)
}

/// Looks a person up by NIR and serial, locked or not.
fn find_unlocked(t: &EnrolmentTables, nir: &str, serial: &str) -> Result<Found, Refusal> {
    let nir = Nir::parse(nir).map_err(|e| Refusal::BadNir(e.to_string()))?;
    let found = t.find(nir.as_str())?.ok_or(Refusal::Unknown)?;
    if !found
        .person
        .insured
        .vitale_serial
        .eq_ignore_ascii_case(serial.trim())
    {
        return Err(Refusal::Unknown);
    }
    Ok(found)
}

/// Counts a failure on the person's record (a wrong code or password): the
/// [`MAX_FAILURES`]th in a row locks it for [`LOCK_MINUTES`], each further one doubles it.
fn count_failure(p: &mut Person, now: UnixMillis) {
    p.failures += 1;
    if p.failures >= MAX_FAILURES {
        let minutes = LOCK_MINUTES << (p.failures - MAX_FAILURES).min(10);
        p.locked_until = Some(UnixMillis(now.0 + minutes * 60_000));
    }
}

/// Checks the code; a wrong one is counted (and may lock the NIR), durably.
fn check_code(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    found: &Found,
    typed: &str,
    now: UnixMillis,
) -> Result<(), Refusal> {
    provisional_code::normalise(typed).map_err(|e| Refusal::MalformedCode(e.0))?;
    let Some(code) = &found.person.code else {
        return Err(Refusal::NoCode);
    };
    if !provisional_code::matches(&secrets.code_key, typed, &code.hash) {
        let mut p = found.person.clone();
        count_failure(&mut p, now);
        let left = MAX_FAILURES.saturating_sub(p.failures);
        commit(t, found, p, policy, Vec::new())?;
        return Err(Refusal::WrongCode { left });
    }
    if code.expires <= now {
        return Err(Refusal::Expired(paris_date(code.expires)));
    }
    Ok(())
}

/// What a person sends to activate (F1.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activation {
    /// The provisional code.
    pub code: String,
    /// The NIR with or without its key.
    pub nir: String,
    /// Carte Vitale serial.
    pub vitale_serial: String,
    /// Identifier chosen.
    pub identifier: String,
    /// Password chosen.
    pub password: String,
    /// The email confirmed or changed ("" keeps none).
    pub email: String,
    /// The space the first device created for the person.
    pub space: SpaceId,
}

/// Hashes a password with Argon2id.
pub fn hash_password(password: &str, params: &argon2::Params) -> Result<String, Refusal> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    )
    .hash_password(password.as_bytes(), &salt)
    .map(|h| h.to_string())
    .map_err(|e| Refusal::Storage(format!("password hash: {e}")))
}

/// Whether a password is the one behind a PHC hash. At most [`ARGON2_AT_ONCE`] checks
/// run at once in the process (each takes tens of MiB and a core for tens of ms): a
/// flood of guesses queues instead of exhausting the hub (issue 22, finding 4).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let _slot = ARGON2_SLOTS.take();
    PASSWORD_CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Password checks that may run at once.
pub const ARGON2_AT_ONCE: usize = 2;
static ARGON2_SLOTS: Slots = Slots::new(ARGON2_AT_ONCE);

/// A blocking counting semaphore for work on blocking threads.
struct Slots {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Slots {
    const fn new(n: usize) -> Self {
        Slots {
            free: std::sync::Mutex::new(n),
            freed: std::sync::Condvar::new(),
        }
    }
    fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().expect("slots lock");
        while *free == 0 {
            free = self.freed.wait(free).expect("slots lock");
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().expect("slots lock") += 1;
        self.0.freed.notify_one();
    }
}

/// An Argon2id hash of no password anyone has, at the hub's cost, checked for an
/// unknown identifier so that it costs what a known one costs.
fn decoy_hash(params: &argon2::Params) -> String {
    static DECOYS: std::sync::Mutex<Vec<(argon2::Params, String)>> =
        std::sync::Mutex::new(Vec::new());
    let mut decoys = DECOYS.lock().expect("decoys lock");
    if let Some((_, h)) = decoys.iter().find(|(p, _)| p == params) {
        return h.clone();
    }
    let h =
        hash_password("decoy: no account has this password", params).expect("hashing the decoy");
    decoys.push((params.clone(), h.clone()));
    h
}

/// Password checks run since start (a test shows an unknown identifier costs one too).
pub fn password_checks() -> u64 {
    PASSWORD_CHECKS.load(std::sync::atomic::Ordering::Relaxed)
}
static PASSWORD_CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Activates (F1.3): every check first (code, NIR, serial, rules, identifier), then one
/// durable batch: the status, the account, the identifier; the code is spent.
pub fn activate(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    a: &Activation,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    let email = Some(a.email.trim().to_string()).filter(|e| !e.is_empty());
    // Hashed once, whatever the retries.
    let mut password_hash = None;
    retrying(|| {
        let found = find(t, &a.nir, &a.vitale_serial, now)?;
        check_code(t, policy, secrets, &found, &a.code, now)?;
        let mut p = found.person.clone();
        let status = p
            .status
            .activate(now)
            .map_err(|e| Refusal::State(e.to_string()))?;
        mes_protocol::enrolment::nir::check_identifier(&a.identifier)
            .map_err(|e| Refusal::Rule(e.0))?;
        mes_protocol::enrolment::nir::check_password(&a.password)
            .map_err(|e| Refusal::Rule(e.0))?;
        if let Some(e) = &email {
            let at = e.find('@');
            if !at.is_some_and(|i| i > 0 && e[i + 1..].contains('.')) {
                return Err(Refusal::Rule(format!("email {e:?} is not an address")));
            }
        }
        if t.identifier(&a.identifier)?.is_some() {
            return Err(Refusal::IdentifierTaken(a.identifier.clone()));
        }
        let hash = match &password_hash {
            Some(h) => Clone::clone(h),
            None => password_hash
                .insert(hash_password(&a.password, &secrets.argon)?)
                .clone(),
        };
        let nir = p.insured.nir.clone();
        p.status = status.clone();
        p.code = None;
        p.failures = 0;
        p.locked_until = None;
        p.account = Some(Account {
            identifier: a.identifier.clone(),
            password_hash: hash,
            space: a.space,
            email: email.clone(),
        });
        commit(
            t,
            &found,
            p,
            policy,
            vec![Op::Identifier(a.identifier.clone(), Some(nir))],
        )?;
        Ok(status)
    })
}

/// Opposes (F1.4) with the code, NIR and serial; the code stays valid to activate later.
pub fn oppose(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    code: &str,
    nir: &str,
    serial: &str,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    retrying(|| {
        // A stranger who knows the NIR and serial could lock them by guessing codes: the
        // lock never stands between a person and their opposition (the guesser is
        // counted and locked by device and source, `EnrolmentHub::admit`).
        let found = find_unlocked(t, nir, serial)?;
        check_code(t, policy, secrets, &found, code, now)?;
        let mut p = found.person.clone();
        let status = p
            .status
            .oppose(now)
            .map_err(|e| Refusal::State(e.to_string()))?;
        p.status = status.clone();
        p.failures = 0;
        p.locked_until = None;
        commit(t, &found, p, policy, Vec::new())?;
        Ok(status)
    })
}

/// Records an opposition or a closure on a person's behalf (F1.4, seed 001), passed on by
/// `by` under `reference`: kept with the person's enrolment, told to them by email or
/// letter, shown in their status. An opposition is for someone without a space yet
/// (imported, notified) or whose space was created without them; its message carries a
/// fresh code, so the person can undo it by activating. A closure is for someone with a
/// space (activated, or created automatically): archived as any closure, undone by
/// reopening with the hub account.
pub fn on_behalf(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    nir: &str,
    decision: (behalf::Action, &str, &str),
    now: UnixMillis,
) -> Result<Status, Refusal> {
    let (action, by, reference) = decision;
    behalf::check_text("--by", by).map_err(|e| Refusal::Rule(e.0))?;
    behalf::check_text("--reference", reference).map_err(|e| Refusal::Rule(e.0))?;
    let nir = Nir::parse(nir).map_err(|e| Refusal::BadNir(e.to_string()))?;
    retrying(|| {
        let found = t.find(nir.as_str())?.ok_or(Refusal::Unknown)?;
        let mut p = found.person.clone();
        let (status, kind, code) = match (action, &p.status) {
            (
                behalf::Action::Oppose,
                Status::Imported
                | Status::Notified { .. }
                | Status::AutoCreated { .. }
                | Status::Undeliverable { .. },
            ) => {
                let (issue, record) = fresh_code(&mut p, secrets, now, policy);
                let expires = record.expires;
                p.code = Some(record);
                (
                    Status::Opposed { at: now },
                    MessageKind::OpposedForYou,
                    Some((issue, expires)),
                )
            }
            (behalf::Action::Close, Status::Activated { .. } | Status::AutoCreated { .. }) => (
                p.status
                    .close(now, false, policy)
                    .map_err(|e| Refusal::State(e.to_string()))?,
                MessageKind::ClosedForYou,
                None,
            ),
            (behalf::Action::Oppose, other) => {
                return Err(Refusal::State(format!(
                    "an opposition is recorded for someone without a space yet, and this enrolment is {}{}",
                    other.name(),
                    if matches!(other, Status::Activated { .. }) {
                        ": close it instead (on-behalf close)"
                    } else {
                        ""
                    }
                )))
            }
            (behalf::Action::Close, other) => {
                return Err(Refusal::State(format!(
                    "a closure is recorded for someone with a space, and this enrolment is {}{}",
                    other.name(),
                    if matches!(
                        other,
                        Status::Imported | Status::Notified { .. } | Status::Undeliverable { .. }
                    ) {
                        ": record an opposition instead (on-behalf oppose)"
                    } else {
                        ""
                    }
                )))
            }
        };
        p.status = status.clone();
        let entries: Vec<behalf::Behalf> = match t.meta(&behalf::meta_name(nir.as_str()))? {
            Some(v) => crate::enrolment::store::decode(&v)?,
            None => Vec::new(),
        };
        let entries = behalf::appended(
            entries,
            behalf::Behalf {
                action,
                by: by.trim().to_owned(),
                reference: reference.trim().to_owned(),
                at: now,
            },
        );
        let message = message_for(t, &p, kind, code, None)?;
        let ops = vec![
            Op::Meta(
                behalf::meta_name(nir.as_str()),
                Some(mes_protocol::wire::codec::to_bytes(&entries)),
            ),
            Op::Message(Box::new(message)),
        ];
        commit(t, &found, p, policy, ops)?;
        Ok(status)
    })
}

/// What recording a returned letter did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Returned {
    /// An email is known: the person is notified by email, their deadline from now.
    Emailed,
    /// No email: marked undeliverable, no deadline runs until someone is told.
    Undeliverable,
}

/// Records that the letter notifying someone came back (NPAI, F1.2, seed 001): the code it
/// carried is void (nobody opened it), and the deadline it started is withdrawn, since
/// nobody was told. With an email on file (theirs, or any of their representatives' for a
/// minor) they are notified again by email, the deadline running from now; without one
/// they are undeliverable: counted apart, no space created, until someone reaches them.
pub fn letter_returned(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    nir: &str,
    now: UnixMillis,
) -> Result<Returned, Refusal> {
    let nir = Nir::parse(nir).map_err(|e| Refusal::BadNir(e.to_string()))?;
    retrying(|| {
        let found = t.find(nir.as_str())?.ok_or(Refusal::Unknown)?;
        let mut p = found.person.clone();
        if !matches!(p.status, Status::Notified { .. }) {
            return Err(Refusal::State(format!(
                "no notification awaits an answer: this enrolment is {}",
                p.status.name()
            )));
        }
        p.code = None;
        let email = email_contact(t, &p)?;
        let Some((addressee, email)) = email else {
            p.status = Status::Undeliverable { at: now };
            commit(t, &found, p, policy, Vec::new())?;
            return Ok(Returned::Undeliverable);
        };
        let status = Status::Imported
            .notify(now, policy)
            .map_err(|e| Refusal::State(e.to_string()))?;
        let Status::Notified { deadline, .. } = status else {
            unreachable!("notify answers Notified")
        };
        let (issue, record) = fresh_code(&mut p, secrets, now, policy);
        let mut m = message_for(
            t,
            &p,
            MessageKind::Notification,
            Some((issue, record.expires)),
            Some(deadline),
        )?;
        m.addressee = addressee;
        m.email = Some(email);
        m.postal_address = None;
        p.code = Some(record);
        p.status = status;
        commit(t, &found, p, policy, vec![Op::Message(Box::new(m))])?;
        Ok(Returned::Emailed)
    })
}

/// Someone to email about `p`: the person, else any of their legal representatives on
/// file with an email (a minor's second parent when the first one's letter came back).
fn email_contact(t: &EnrolmentTables, p: &Person) -> Result<Option<(String, String)>, StoreError> {
    let i = &p.insured;
    if let Some(email) = &i.email {
        return Ok(Some((
            format!("{} {}", i.first_names, i.last_name),
            email.clone(),
        )));
    }
    for r in &i.representatives {
        if let Some(rep) = t.person(r)? {
            let rep = rep.insured;
            if let Some(email) = rep.email {
                return Ok(Some((
                    format!("{} {}", rep.first_names, rep.last_name),
                    email,
                )));
            }
        }
    }
    Ok(None)
}

/// The latest decision recorded on the person's behalf, if any.
pub fn latest_behalf(t: &EnrolmentTables, nir: &str) -> Result<Option<behalf::Behalf>, StoreError> {
    Ok(match t.meta(&behalf::meta_name(nir))? {
        Some(v) => crate::enrolment::store::decode::<Vec<behalf::Behalf>>(&v)?.pop(),
        None => None,
    })
}

/// A new code sent to the email on file (F1.7); never in the reply.
pub fn regenerate(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    nir: &str,
    serial: &str,
    now: UnixMillis,
) -> Result<(), Refusal> {
    retrying(|| {
        let found = find(t, nir, serial, now)?;
        let mut p = found.person.clone();
        // Someone with a hub account asks for a code to set a new password (F12.4): it
        // goes to the address on file, by letter when no email is known.
        let resetting = p.account.is_some()
            && matches!(
                p.status,
                Status::Activated { .. }
                    | Status::Closed {
                        had_space: true,
                        ..
                    }
            );
        if !resetting
            && !matches!(
                p.status,
                Status::Notified { .. } | Status::Opposed { .. } | Status::AutoCreated { .. }
            )
        {
            return Err(Refusal::State(format!(
                "no new code for an enrolment that is {}",
                p.status.name()
            )));
        }
        // Each new code sends an email and replaces the live code: one per person per
        // interval after the first new one, whoever asks (issue 22, finding 4). The
        // campaign's code (issue 1) does not count: a letter lost on arrival is replaced.
        let too_soon = p
            .code
            .as_ref()
            .filter(|_| p.code_issue > 1)
            .and_then(|live| {
                let issued = crate::enrolment::after(
                    live.expires,
                    jiff::ToSpan::days(-policy.code_validity_days),
                );
                let next = UnixMillis(issued.0 + REGENERATE_INTERVAL_MINUTES * 60_000);
                (now < next && issued <= now)
                    .then(|| Refusal::TooSoon(paris_time(issued), paris_time(next)))
            });
        let (code, record) = fresh_code(&mut p, secrets, now, policy);
        let deadline = match p.status {
            Status::Notified { deadline, .. } => Some(deadline),
            _ => None,
        };
        let mut m = message_for(
            t,
            &p,
            MessageKind::Regenerated,
            Some((code, record.expires)),
            deadline,
        )?;
        if let Some(email) = p.account.as_ref().and_then(|a| a.email.clone()) {
            m.email = Some(email);
        }
        if m.email.is_none() && !resetting {
            return Err(Refusal::NoEmail);
        }
        if let Some(refusal) = too_soon {
            return Err(refusal);
        }
        p.code = Some(record);
        commit(t, &found, p, policy, vec![Op::Message(Box::new(m))])
    })
}

/// Sets a new hub password with the code sent to the address on file (F12.4, the
/// letter's path): the code is checked as for activation (wrong ones counted, single
/// use), the password against the rules of activation; a lock from wrong passwords goes.
/// The hub alone cannot: it never holds a live code in clear.
pub fn reset_password(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    holder: &mes_protocol::enrolment::CardHolder,
    code: &str,
    password: &str,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    mes_protocol::enrolment::nir::check_password(password).map_err(|e| Refusal::Rule(e.0))?;
    let hash = hash_password(password, &secrets.argon)?;
    retrying(|| {
        let found = find(t, &holder.nir, &holder.vitale_serial, now)?;
        if found.person.account.is_none() {
            return Err(Refusal::State(format!(
                "no hub account to set a password for: this enrolment is {} (activate first)",
                found.person.status.name()
            )));
        }
        check_code(t, policy, secrets, &found, code, now)?;
        let mut p = found.person.clone();
        p.account.as_mut().expect("checked above").password_hash = hash.clone();
        p.code = None;
        p.failures = 0;
        p.locked_until = None;
        let status = p.status.clone();
        commit(t, &found, p, policy, Vec::new())?;
        Ok(status)
    })
}

/// Sets a new hub password for the account of `space`, asked by a device of the person
/// who owns that space (F12.4): the relay checked the caller owns it, which a device
/// restored from a recovery kit proves with the person's keys. The identifier must be
/// that space's account's, else the same refusal as a wrong password.
pub fn reset_password_as_owner(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    (identifier, space): (&str, SpaceId),
    password: &str,
) -> Result<Status, Refusal> {
    mes_protocol::enrolment::nir::check_password(password).map_err(|e| Refusal::Rule(e.0))?;
    let hash = hash_password(password, &secrets.argon)?;
    retrying(|| {
        let found = match t.identifier(identifier)? {
            Some(nir) => t.find(&nir)?,
            None => None,
        };
        let Some(found) =
            found.filter(|f| f.person.account.as_ref().is_some_and(|a| a.space == space))
        else {
            return Err(Refusal::WrongPassword);
        };
        let mut p = found.person.clone();
        p.account.as_mut().expect("filtered").password_hash = hash.clone();
        p.failures = 0;
        p.locked_until = None;
        let status = p.status.clone();
        commit(t, &found, p, policy, Vec::new())?;
        Ok(status)
    })
}

/// The person who activated `space`, found by their account (issue 22, finding 4):
/// - a known and an unknown identifier get the same refusal after the same Argon2 work;
/// - a wrong password is counted on the account, durably (both backends, every
///   instance), and [`MAX_FAILURES`] in a row lock it for [`LOCK_MINUTES`], doubling with
///   each further failure; while locked even the right password is refused, with the
///   time it opens again. The lock keeps the code path open (opposition never waits
///   for it) and the way back is the right password after the pause.
fn by_space(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    identifier: &str,
    password: &str,
    now: UnixMillis,
) -> Result<Found, Refusal> {
    let found = match t.identifier(identifier)? {
        Some(nir) => t.find(&nir)?,
        None => None,
    };
    let Some(found) = found.filter(|f| f.person.account.is_some()) else {
        verify_password(password, &decoy_hash(&secrets.argon));
        return Err(Refusal::WrongPassword);
    };
    if let Some(until) = found.person.locked_until.filter(|u| *u > now) {
        return Err(Refusal::Locked(paris_time(until)));
    }
    let hash = &found
        .person
        .account
        .as_ref()
        .expect("filtered")
        .password_hash;
    if verify_password(password, hash) {
        if found.person.failures > 0 {
            let mut p = found.person.clone();
            p.failures = 0;
            p.locked_until = None;
            commit(t, &found, p, policy, Vec::new())?;
        }
        return Ok(found);
    }
    let mut p = found.person.clone();
    count_failure(&mut p, now);
    commit(t, &found, p, policy, Vec::new())?;
    Err(Refusal::WrongPassword)
}

/// Closes (F1.6) with the hub account: archived for the policy's years, or deleted
/// within the express delay.
pub fn close(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    identifier: &str,
    password: &str,
    express: bool,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    account_change(t, policy, secrets, identifier, password, now, |s| {
        s.close(now, express, policy)
    })
}

/// Reopens a closed space (F1.6): what is archived is restored.
pub fn reopen(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    identifier: &str,
    password: &str,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    account_change(t, policy, secrets, identifier, password, now, |s| {
        s.reopen(now)
    })
}

/// A change of status asked with the hub account.
fn account_change(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    identifier: &str,
    password: &str,
    now: UnixMillis,
    change: impl Fn(&Status) -> Result<Status, crate::enrolment::EnrolError>,
) -> Result<Status, Refusal> {
    // The password is checked once (it is slow); a retry only reads the record again.
    let nir = retrying(|| by_space(t, policy, secrets, identifier, password, now))?
        .person
        .insured
        .nir;
    retrying(|| {
        let found = t.find(&nir)?.ok_or(Refusal::Unknown)?;
        let mut p = found.person.clone();
        let status = change(&p.status).map_err(|e| Refusal::State(e.to_string()))?;
        p.status = status.clone();
        commit(t, &found, p, policy, Vec::new())?;
        Ok(status)
    })
}

/// Turns reminders off or on (F1.8), with the code, NIR and serial.
pub fn set_reminders(
    t: &EnrolmentTables,
    policy: &Policy,
    secrets: &Secrets,
    card: &mes_protocol::enrolment::CardHolder,
    code: &str,
    off: bool,
    now: UnixMillis,
) -> Result<(), Refusal> {
    retrying(|| {
        let found = find(t, &card.nir, &card.vitale_serial, now)?;
        check_code(t, policy, secrets, &found, code, now)?;
        let mut p = found.person.clone();
        p.reminders_off = off;
        commit(t, &found, p, policy, Vec::new())
    })
}

/// What a sweep did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SweepReport {
    /// Spaces created at the deadline (F1.5).
    pub auto_created: usize,
    /// Archives deleted at their end or on express request (F1.6).
    pub deleted: usize,
    /// Reminders queued (F1.8).
    pub reminders: usize,
}

/// How many threads share bulk work (notify, sweep): sled takes concurrent batches on
/// different keys, and a batch's cost is mostly CPU (node copies).
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Runs `work` over `items` split into [`workers`] contiguous parts, one thread each;
/// the first error wins.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&[T]) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    let part = items.len().div_ceil(workers()).max(1);
    std::thread::scope(|scope| {
        let jobs: Vec<_> = items
            .chunks(part)
            .map(|c| scope.spawn(|| work(c)))
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .map_err(|_| StoreError::unavailable("a worker thread panicked"))?
            })
            .collect()
    })
}

/// The clock's effect on the people of due chunks, in one durable batch with the chunks'
/// removal: what it did, and how many entries it went through.
fn sweep_chunks(
    t: &EnrolmentTables,
    policy: &Policy,
    now: UnixMillis,
    chunks: &[DueChunk],
) -> Result<(SweepReport, usize), StoreError> {
    let mut report = SweepReport::default();
    let mut due_at: std::collections::HashMap<Loc, Vec<UnixMillis>> = Default::default();
    let mut removals = Vec::with_capacity(chunks.len());
    for (at, chunk, locs) in chunks {
        removals.push(Op::DueChunk(chunk.clone()));
        for l in locs {
            due_at.entry(*l).or_default().push(*at);
        }
    }
    let seen = chunks.iter().map(|c| c.2.len()).sum();
    let locs: Vec<Loc> = due_at.keys().copied().collect();
    t.update(&locs, removals, true, |loc, p, ops| {
        // A stale entry: the person's due time moved since.
        if !p.due.is_some_and(|d| due_at[&loc].contains(&d)) {
            return Ok(false);
        }
        p.due = None;
        if let Some(s) = p.status.tick(now) {
            match s {
                Status::AutoCreated { .. } => report.auto_created += 1,
                Status::Deleted { .. } => report.deleted += 1,
                _ => {}
            }
            p.status = s;
        }
        if let Some(r) = next_reminder(&p.status, p.reminders_off, p.last_reminder, policy) {
            if r <= now
                && matches!(
                    p.status,
                    Status::Notified { .. } | Status::AutoCreated { .. }
                )
            {
                let m = message_for(t, p, MessageKind::Reminder, None, None)?;
                ops.push(Op::Message(Box::new(m)));
                p.last_reminder = Some(now);
                report.reminders += 1;
            }
        }
        if let Status::Deleted { .. } = p.status {
            // The archive's end: only the fact of the deletion stays, no identity.
            p.account = None;
            p.code = None;
        }
        reschedule(loc, p, policy, ops);
        Ok(true)
    })?;
    Ok((report, seen))
}

/// Runs the clock up to `now` (F1.5, F1.6, F1.8), in durable batches (one per worker at
/// a time: a chunk's people and its removal commit together).
pub fn sweep(
    t: &EnrolmentTables,
    policy: &Policy,
    now: UnixMillis,
    mut progress: impl FnMut(usize),
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    // What this sweep indexes is left to the next one.
    let before = t.next_seq()?;
    loop {
        let chunks = t.due(now, before, BATCH * workers())?;
        if chunks.is_empty() {
            return Ok(report);
        }
        // Each worker takes whole chunks.
        let per = chunks.len().div_ceil(workers()).max(1);
        let groups: Vec<&[DueChunk]> = chunks.chunks(per).collect();
        for (r, seen) in in_parallel(&groups, |gs| {
            gs.iter()
                .map(|g| sweep_chunks(t, policy, now, g))
                .collect::<Result<Vec<_>, _>>()
        })?
        .into_iter()
        .flatten()
        {
            report.auto_created += r.auto_created;
            report.deleted += r.deleted;
            report.reminders += r.reminders;
            progress(seen);
        }
    }
}

/// Campaign statistics (F1.9), as the pilot's table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// People on file.
    pub people: u64,
    /// Imported, not yet notified.
    pub pending_notification: u64,
    /// Notified (every one sent, whatever happened since).
    pub notified: u64,
    /// Notified, no decision yet, deadline not passed.
    pub awaiting_decision: u64,
    /// Activated.
    pub activated: u64,
    /// Opposed.
    pub opposed: u64,
    /// Created at the deadline without a decision.
    pub auto_created: u64,
    /// Closed (archived).
    pub closed: u64,
    /// Deleted.
    pub deleted: u64,
    /// Their letter came back and no email is known: nobody told, no deadline running.
    pub undeliverable: u64,
    /// Activated / notified, percent.
    pub activation_rate: f64,
    /// Opposed / notified, percent.
    pub opposition_rate: f64,
    /// Messages waiting in the outbox.
    pub outbox: u64,
}

/// Counts every status.
pub fn stats(t: &EnrolmentTables) -> Result<Stats, StoreError> {
    let mut s = Stats::default();
    t.for_each_person(|_, p| {
        s.people += 1;
        match p.status {
            Status::Imported => s.pending_notification += 1,
            Status::Notified { .. } => s.awaiting_decision += 1,
            Status::Activated { .. } => s.activated += 1,
            Status::Opposed { .. } => s.opposed += 1,
            Status::AutoCreated { .. } => s.auto_created += 1,
            Status::Closed { .. } => s.closed += 1,
            Status::Deleted { .. } => s.deleted += 1,
            Status::Undeliverable { .. } => s.undeliverable += 1,
        }
    })?;
    // Someone whose letter came back was never told: counted apart, not as notified.
    s.notified = s.people - s.pending_notification - s.undeliverable;
    if s.notified > 0 {
        let pct = |n: u64| (n as f64 * 10_000.0 / s.notified as f64).round() / 100.0;
        s.activation_rate = pct(s.activated);
        s.opposition_rate = pct(s.opposed);
    }
    s.outbox = t.outbox_len() as u64;
    Ok(s)
}

/// A person's status, for their own view (the profile switcher's "En attente de
/// décision"), with the code, NIR and serial.
pub fn status_of(
    t: &EnrolmentTables,
    nir: &str,
    serial: &str,
    now: UnixMillis,
) -> Result<Status, Refusal> {
    Ok(find(t, nir, serial, now)?.person.status)
}

/// The hub's enrolment, as the serving relay holds it.
pub struct EnrolmentHub {
    /// The tables.
    pub tables: EnrolmentTables,
    /// Deadlines.
    pub policy: Policy,
    /// Code key and password cost.
    pub secrets: Secrets,
    /// Failed requests per guesser in the current hour (a device guessing across NIRs,
    /// or one address behind many fresh device identities); bounded, see [`MAX_GUESSERS`].
    failures: HourlyCounts<Guesser>,
    /// Holds asked per professional in the current hour (issue 22, finding 7).
    holds_asked: HourlyCounts<mes_protocol::ids::PrincipalId>,
}

/// Counts per key within the current hour, bounded to [`MAX_GUESSERS`] keys (past it the
/// previous hours' go first, then all: an attacker filling it loses its own counts too).
struct HourlyCounts<K>(std::sync::Mutex<std::collections::HashMap<K, (u32, u64)>>);

impl<K> Default for HourlyCounts<K> {
    fn default() -> Self {
        HourlyCounts(Default::default())
    }
}

impl<K: std::hash::Hash + Eq + Copy> HourlyCounts<K> {
    /// The count of `k` in `hour`.
    fn get(&self, k: &K, hour: u64) -> u32 {
        match self.0.lock().expect("counts lock").get(k) {
            Some((n, h)) if *h == hour => *n,
            _ => 0,
        }
    }

    /// Adds one to each key's count in `hour`.
    fn add(&self, keys: &[K], hour: u64) {
        let mut m = self.0.lock().expect("counts lock");
        if m.len() + keys.len() > MAX_GUESSERS {
            m.retain(|_, (_, h)| *h == hour);
            if m.len() + keys.len() > MAX_GUESSERS {
                m.clear();
            }
        }
        for k in keys {
            let e = m.entry(*k).or_insert((0, hour));
            if e.1 != hour {
                *e = (0, hour);
            }
            e.0 += 1;
        }
    }
}

/// Holds one professional may ask per hour (a lab's backlog fits; a scan of the
/// population does not).
pub const HOLDS_PER_HOUR: u32 = 10_000;

/// Who a failed request is counted against: the device, and the network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guesser {
    /// A device identity (cheap to make anew).
    Device(mes_protocol::ids::DeviceId),
    /// The address the connection came from (the guesser behind fresh identities).
    Source(std::net::IpAddr),
}

/// Guessers tracked at once; past it, the previous hours' entries are dropped first,
/// then the map is cleared (an attacker filling it loses its own counts too).
pub const MAX_GUESSERS: usize = 100_000;
/// Failed enrolment requests one network address may make per hour.
pub const SOURCE_FAILURES_PER_HOUR: u32 = 100;

/// Failed enrolment requests a device may make per hour.
pub const DEVICE_FAILURES_PER_HOUR: u32 = 20;

/// The person's reading of a status, French then English, dates in the time zone of their
/// département (overseas ones have their own).
pub fn describe(s: &Status, departement: &str) -> String {
    let date = |t: UnixMillis| mes_protocol::time::local_date(t, departement);
    match s {
        Status::Imported => "Pas encore notifié / Not notified yet".into(),
        Status::Notified { deadline, .. } => format!(
            "En attente de décision : création automatique le {0} / Awaiting a decision: created automatically on {0}",
            date(*deadline)
        ),
        Status::Opposed { at } => format!(
            "Opposé le {0} ; vous pouvez activer à tout moment / Opposed on {0}; you may activate at any time",
            date(*at)
        ),
        Status::AutoCreated { at } => format!(
            "Créé automatiquement le {0} ; activez-le pour y accéder / Created automatically on {0}; activate it to use it",
            date(*at)
        ),
        Status::Activated { at } => format!("Activé le {0} / Activated on {0}", date(*at)),
        Status::Closed { purge_at, .. } => format!(
            "Clôturé ; archivé jusqu'au {0}, réouvrable d'ici là / Closed; archived until {0}, can be reopened until then",
            date(*purge_at)
        ),
        Status::Deleted { at } => format!("Supprimé le {0} / Deleted on {0}", date(*at)),
        Status::Undeliverable { .. } => "Courrier revenu (n'habite pas à l'adresse indiquée) : rien n'est créé tant que vous n'êtes pas prévenu / Letter returned (not at this address): nothing is created until you are told".into(),
    }
}

impl EnrolmentHub {
    /// The hub's enrolment over its tables.
    pub fn new(tables: EnrolmentTables, policy: Policy, secrets: Secrets) -> Self {
        EnrolmentHub {
            tables,
            policy,
            secrets,
            failures: Default::default(),
            holds_asked: Default::default(),
        }
    }

    /// Counts a hold a professional asks, refusing past [`HOLDS_PER_HOUR`].
    pub fn count_hold(
        &self,
        by: mes_protocol::ids::PrincipalId,
        now: UnixMillis,
    ) -> Result<(), Refusal> {
        let hour = now.0 / 3_600_000;
        if self.holds_asked.get(&by, hour) >= HOLDS_PER_HOUR {
            return Err(Refusal::Locked(paris_time(UnixMillis(
                (hour + 1) * 3_600_000,
            ))));
        }
        self.holds_asked.add(&[by], hour);
        Ok(())
    }

    /// Refuses a device, or an address, that failed too often this hour.
    pub fn admit(&self, guessers: &[Guesser], now: UnixMillis) -> Result<(), Refusal> {
        let hour = now.0 / 3_600_000;
        for g in guessers {
            let limit = match g {
                Guesser::Device(_) => DEVICE_FAILURES_PER_HOUR,
                Guesser::Source(_) => SOURCE_FAILURES_PER_HOUR,
            };
            if self.failures.get(g, hour) >= limit {
                return Err(Refusal::Locked(paris_time(UnixMillis(
                    (hour + 1) * 3_600_000,
                ))));
            }
        }
        Ok(())
    }

    /// Counts a failed request against each of its guessers.
    pub fn failed(&self, guessers: &[Guesser], now: UnixMillis) {
        self.failures.add(guessers, now.0 / 3_600_000);
    }

    /// Serves `r` and says the status in the person's words, with the latest decision
    /// recorded on their behalf while it still stands (F1.4).
    pub fn serve_described(
        &self,
        r: &mes_protocol::enrolment::EnrolRequest,
        now: UnixMillis,
    ) -> Result<(Status, String), Refusal> {
        use mes_protocol::enrolment::EnrolRequest as R;
        let status = self.serve(r, now)?;
        let nir = match r {
            R::Activate { holder, .. }
            | R::Oppose { holder, .. }
            | R::Regenerate { holder }
            | R::Reminders { holder, .. }
            | R::Status { holder }
            | R::ResetPassword { holder, .. } => {
                Nir::parse(&holder.nir).ok().map(|n| n.as_str().to_owned())
            }
            R::Close { identifier, .. }
            | R::Reopen { identifier, .. }
            | R::ResetPasswordAsOwner { identifier, .. } => self.tables.identifier(identifier)?,
            R::Hold { .. } | R::HeldReady { .. } | R::Holders { .. } => None,
        };
        let departement = match &nir {
            Some(n) => self
                .tables
                .person(n)?
                .map(|p| p.insured.departement)
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut detail = describe(&status, &departement);
        let standing = |b: &behalf::Behalf| match (b.action, &status) {
            (behalf::Action::Oppose, Status::Opposed { at }) => *at == b.at,
            (behalf::Action::Close, Status::Closed { at, .. }) => *at == b.at,
            _ => false,
        };
        if let Some(b) = nir
            .map(|n| latest_behalf(&self.tables, &n))
            .transpose()?
            .flatten()
            .filter(standing)
        {
            detail = format!("{detail}\n{}", behalf::describe(&b, &departement));
        }
        Ok((status, detail))
    }

    /// Serves one request (blocking: password hashing and a durable write).
    pub fn serve(
        &self,
        r: &mes_protocol::enrolment::EnrolRequest,
        now: UnixMillis,
    ) -> Result<Status, Refusal> {
        use mes_protocol::enrolment::EnrolRequest as R;
        let (t, p, s) = (&self.tables, &self.policy, &self.secrets);
        match r {
            R::Activate {
                holder,
                code,
                identifier,
                password,
                email,
                space,
            } => activate(
                t,
                p,
                s,
                &Activation {
                    code: code.clone(),
                    nir: holder.nir.clone(),
                    vitale_serial: holder.vitale_serial.clone(),
                    identifier: identifier.clone(),
                    password: password.clone(),
                    email: email.clone(),
                    space: *space,
                },
                now,
            ),
            R::Oppose { holder, code } => {
                oppose(t, p, s, code, &holder.nir, &holder.vitale_serial, now)
            }
            R::Regenerate { holder } => {
                regenerate(t, p, s, &holder.nir, &holder.vitale_serial, now)?;
                status_of(t, &holder.nir, &holder.vitale_serial, now)
            }
            R::Reminders { holder, code, off } => {
                set_reminders(t, p, s, holder, code, *off, now)?;
                status_of(t, &holder.nir, &holder.vitale_serial, now)
            }
            R::Status { holder } => status_of(t, &holder.nir, &holder.vitale_serial, now),
            R::Close {
                identifier,
                password,
                express,
            } => close(t, p, s, identifier, password, *express, now),
            R::Reopen {
                identifier,
                password,
            } => reopen(t, p, s, identifier, password, now),
            R::ResetPassword {
                holder,
                code,
                password,
            } => reset_password(t, p, s, holder, code, password, now),
            R::ResetPasswordAsOwner {
                identifier,
                password,
                space,
            } => reset_password_as_owner(t, p, s, (identifier, *space), password),
            R::Hold { .. } | R::HeldReady { .. } | R::Holders { .. } => Err(Refusal::State(
                "holds are answered with holds (crate::enrolment::holds), not a status".into(),
            )),
        }
    }
}
