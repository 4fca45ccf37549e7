//! The enrolment tables on the embedded sled store (one tree, `enrolment`, in the relay's
//! database): the small tables of [`crate::enrolment::store`] under their keys, and the
//! people by page:
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `r` | page (u64, big-endian) | a roster page: up to [`crate::enrolment::pages::PAGE`] people of one import and one département |
//! | `x` | first NIR of the leaf | an index leaf: NIR → [`Loc`], sorted |
//!
//! sled copies a tree node on every insert, and at the scale of a campaign that copy is
//! the cost: pages of 32 people and leaves of 1,024 NIRs pay it once per page
//! (docs/enrolment.md, "Storage").
//!
//! Concurrency: a page is rewritten under its lock, from what is on disk then; a batch
//! takes all its pages' locks at once (never some then wait: no cycle). Concurrent
//! writes are combined: one caller writes them all in one batch and one flush. Batches are
//! journaled (`store::sled_batch`), never sled's `apply_batch` (issue 23). Index lookups wait while an import
//! merges new leaves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Condvar, Mutex, RwLock};

use crate::enrolment::pages::{
    cut_leaves, encode_page, leaf_entries, leaf_find, merge_sorted, IndexEntry, NirBytes, PageView,
};
use crate::enrolment::store::{
    decode, key, read_u64, split_ops, ApplyError, Backend, Change, Found, KvWrite, Loc, Op, Person,
    PersonWrite, Visit,
};
use crate::store::sled_batch::{Batch, Journal};
use crate::store::StoreError;
use mes_protocol::close_later::CloseLater;

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

/// One caller's write, for the combiner.
struct Commit {
    people: Vec<PersonWrite>,
    kv: Vec<KvWrite>,
    durable: bool,
}

/// The enrolment tables on sled.
pub struct SledTables {
    db: sled::Db,
    tree: sled::Tree,
    /// Atomic batches without sled's `apply_batch` (issue 23, `store::sled_batch`).
    journal: Journal,
    commits: crate::group_commit::GroupCommit,
    pages: PageLocks,
    combiner: crate::group_commit::Combiner<Commit, Result<(), ApplyError>>,
    /// Held to read the index; taken alone while an import merges its leaves.
    index: RwLock<()>,
    /// The last handle, closed on a thread of its own (`close_later`, issue 23).
    _close: CloseLater<sled::Db>,
}

fn page_key(page: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&page.to_be_bytes());
    k
}

/// The 13 characters of a NIR as the index keys them, if it has 13.
fn nir_bytes(nir: &str) -> Option<NirBytes> {
    nir.as_bytes().get(..13)?.try_into().ok()
}

fn damaged(e: crate::enrolment::pages::Damaged) -> StoreError {
    StoreError::backend(e.to_string())
}

impl SledTables {
    /// Opens the tables in the relay's database.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("enrolment")?;
        // The first layout kept one key per person under `p`: refuse it rather than
        // misread it (nothing converts it; import the population again).
        if tree.scan_prefix([b'p']).next().is_some() {
            return Err(StoreError::corrupt(
                "the enrolment tables use an older layout (one key per person); \
                 import the population into a new data directory"
                    .to_owned(),
            ));
        }
        let (journal, replayed) = Journal::open(db, tree.clone())?;
        if replayed > 0 {
            tracing::info!("enrolment tables: replayed {replayed} batch(es) a crash cut short");
        }
        Ok(SledTables {
            db: db.clone(),
            tree,
            journal,
            commits: Default::default(),
            pages: Default::default(),
            combiner: Default::default(),
            index: Default::default(),
            _close: CloseLater::new(
                "enrolment tables close",
                db.clone(),
                &crate::store::WATCHDOG,
            ),
        })
    }

    /// Everything applied so far, on disk; concurrent callers share one flush.
    fn durable(&self) -> Result<(), StoreError> {
        self.commits.wait_durable(|| {
            let _watched =
                crate::store::WATCHDOG.begin("enrolment flush", std::time::Instant::now());
            self.tree.flush().map(drop)
        })?;
        Ok(())
    }

    fn add_kv(b: &mut Batch, kv: Vec<KvWrite>) {
        for w in kv {
            match w.value {
                Some(v) => b.insert(w.key, v),
                None => b.remove(w.key),
            }
        }
    }

    /// Writes the commits that still hold in one batch: each checked against what is on
    /// disk and what the commits before it in the group wrote.
    fn commit_all(&self, works: Vec<Commit>) -> Vec<Result<(), ApplyError>> {
        let failed = |e: StoreError, n: usize| (0..n).map(|_| Err(e.clone().into())).collect();
        let n = works.len();
        let pages: std::collections::BTreeSet<u64> = works
            .iter()
            .flat_map(|w| w.people.iter().map(|p| p.loc.page()))
            .collect();
        let held = self.pages.lock(pages.iter().copied().collect());
        let mut images: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for page in pages {
            let image = self
                .tree
                .get(page_key(page))
                .map_err(StoreError::from)
                .and_then(|b| {
                    let b = b.ok_or_else(|| {
                        StoreError::corrupt(format!("enrolment page {page} is missing"))
                    })?;
                    let view = PageView::parse(&b).map_err(damaged)?;
                    Ok(view.entries().map(<[u8]>::to_vec).collect())
                });
            match image {
                Ok(i) => images.insert(page, i),
                Err(e) => return failed(e, n),
            };
        }
        let mut claimed: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        let mut results = Vec::with_capacity(n);
        let mut b = Batch::default();
        let mut durable = false;
        for w in works {
            match self.holds(&w, &images, &claimed) {
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
            for p in w.people {
                images.get_mut(&p.loc.page()).expect("page loaded")[p.loc.slot()] = p.now;
            }
            for k in &w.kv {
                claimed.insert(k.key.clone(), k.value.clone());
            }
            Self::add_kv(&mut b, w.kv);
            durable |= w.durable;
            results.push(Ok(()));
        }
        for (page, entries) in &images {
            b.insert(&page_key(*page)[..], encode_page(entries));
        }
        let written = self.journal.apply(b).map_err(StoreError::from);
        drop(held);
        if let Err(e) = written.and_then(|()| if durable { self.durable() } else { Ok(()) }) {
            return failed(e, n);
        }
        results
    }

    /// Whether a commit still holds: the people it read unchanged, its claims free or
    /// already its own.
    fn holds(
        &self,
        w: &Commit,
        images: &BTreeMap<u64, Vec<Vec<u8>>>,
        claimed: &HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<bool, StoreError> {
        for p in &w.people {
            let current = images[&p.loc.page()].get(p.loc.slot()).ok_or_else(|| {
                StoreError::corrupt(format!("no slot {} in page {}", p.loc.slot(), p.loc.page()))
            })?;
            if p.was.as_ref().is_some_and(|w| w != current) {
                return Ok(false);
            }
        }
        for k in w.kv.iter().filter(|k| k.claim) {
            let holder = match claimed.get(&k.key) {
                Some(h) => h.clone(),
                None => self.tree.get(&k.key)?.map(|v| v.to_vec()),
            };
            if holder.is_some_and(|h| Some(&h) != k.value.as_ref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Backend for SledTables {
    fn locate(&self, nir: &str) -> Result<Option<Loc>, StoreError> {
        let Some(n) = nir_bytes(nir) else {
            return Ok(None);
        };
        let _reading = self.index.read().expect("index lock");
        let Some(kv) = self.tree.range(vec![b'x']..=key(b'x', &[&n])).next_back() else {
            return Ok(None);
        };
        Ok(leaf_find(&kv?.1, &n))
    }

    fn at(&self, loc: Loc) -> Result<Option<Found>, StoreError> {
        let Some(bytes) = self.tree.get(page_key(loc.page()))? else {
            return Ok(None);
        };
        let view = PageView::parse(&bytes).map_err(damaged)?;
        view.entry(loc.slot())
            .map(|e| Found::decode(loc, e))
            .transpose()
    }

    fn on_file(&self, nirs: &[&str]) -> Result<Vec<String>, StoreError> {
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

    fn write(
        &self,
        people: Vec<PersonWrite>,
        kv: Vec<KvWrite>,
        durable: bool,
    ) -> Result<(), ApplyError> {
        let work = Commit {
            people,
            kv,
            durable,
        };
        self.combiner.run(work, |works| self.commit_all(works))
    }

    fn update(
        &self,
        locs: &[Loc],
        extra: Vec<Op>,
        durable: bool,
        f: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let mut by_page: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for l in locs {
            by_page.entry(l.page()).or_default().push(l.slot());
        }
        let held = self.pages.lock(by_page.keys().copied().collect());
        let mut b = Batch::default();
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
                    replaced.push((slot, mes_protocol::wire::codec::to_bytes(&p)));
                }
            }
            if !replaced.is_empty() {
                b.insert(&page_key(page)[..], view.replaced(&replaced));
            }
        }
        let (people, kv) = split_ops(ops, || self.next_seq())?;
        if !people.is_empty() {
            return Err(StoreError::backend(
                "a page update cannot write other people",
            ));
        }
        Self::add_kv(&mut b, kv);
        self.journal.apply(b)?;
        drop(held);
        if durable {
            self.durable()?;
        }
        Ok(())
    }

    fn insert_people(
        &self,
        _import: u64,
        pages: &[(u64, Vec<Person>)],
        kv: Vec<KvWrite>,
    ) -> Result<(), StoreError> {
        let mut b = Batch::default();
        for (page, people) in pages {
            let entries: Vec<Vec<u8>> = people
                .iter()
                .map(mes_protocol::wire::codec::to_bytes)
                .collect();
            b.insert(&page_key(*page)[..], encode_page(&entries));
        }
        Self::add_kv(&mut b, kv);
        self.journal.apply(b)?;
        self.durable()
    }

    fn index_people(&self, entries: Vec<(String, Loc)>) -> Result<(), StoreError> {
        let mut new: Vec<IndexEntry> = entries
            .iter()
            .filter_map(|(n, l)| Some((nir_bytes(n)?, *l)))
            .collect();
        new.sort_unstable();
        let _alone = self.index.write().expect("index lock");
        let leaves: Vec<(Vec<u8>, NirBytes)> = self
            .tree
            .scan_prefix([b'x'])
            .keys()
            .map(|k| {
                let k = k?;
                let first = k[1..].try_into().map_err(|_| {
                    StoreError::corrupt(format!("index leaf key of {} bytes", k.len()))
                })?;
                Ok((k.to_vec(), first))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut b = Batch::default();
        let mut pending = 0;
        let mut rest = new.as_slice();
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
                self.journal.apply(std::mem::take(&mut b))?;
                pending = 0;
            }
        }
        if leaves.is_empty() {
            for (first, leaf) in cut_leaves(rest) {
                b.insert(key(b'x', &[&first]), leaf);
            }
        }
        self.journal.apply(b)?;
        self.durable()
    }

    fn remove_people_from(&self, first_page: u64) -> Result<usize, StoreError> {
        let doomed = |l: &Loc| l.page() >= first_page;
        {
            let _alone = self.index.write().expect("index lock");
            let mut b = Batch::default();
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
            self.journal.apply(b)?;
        }
        let mut removed = 0;
        let mut b = Batch::default();
        for kv in self.tree.range(page_key(first_page)..=page_key(u64::MAX)) {
            let (k, v) = kv?;
            removed += PageView::parse(&v).map_err(damaged)?.len();
            b.remove(k);
        }
        self.journal.apply(b)?;
        self.durable()?;
        Ok(removed)
    }

    fn each_person(&self, f: &mut dyn FnMut(Loc, Person)) -> Result<(), StoreError> {
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

    fn kv_range(&self, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        for kv in self.tree.range(start..end) {
            let (k, v) = kv?;
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }
}
