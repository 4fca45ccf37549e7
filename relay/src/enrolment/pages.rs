//! The byte layouts of the enrolment tables' pages (sans IO): roster pages that hold the
//! people one import brought in, and index leaves that map NIRs to their place.
//!
//! sled copies a tree node on every insert, so a table written one key per person pays
//! that copy millions of times per campaign pass; pages of [`PAGE`] people and leaves of
//! [`LEAF`] NIRs pay it once per page (docs/enrolment.md, "Storage").
//!
//! - A roster page: `count: u16`, then `count` end offsets (`u32`), then the entries
//!   back to back. One entry is read without decoding the others, and replacing one copies
//!   the others' bytes as they are.
//! - An index leaf: sorted fixed-width entries, NIR (13 bytes) then [`Loc`] (8 bytes, big
//!   endian), found by binary search in place.

/// People per roster page.
pub const PAGE: usize = 32;
/// NIRs per index leaf, when a run of them is cut into leaves.
pub const LEAF: usize = 1024;
/// A NIR as stored: its 13 characters (without the key).
pub type NirBytes = [u8; 13];
const LEAF_ENTRY: usize = 13 + 8;

/// Where a person lives: their page and their slot in it. A person never moves.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Loc(pub u64);

impl Loc {
    /// The place of slot `slot` of page `page`.
    pub fn new(page: u64, slot: usize) -> Self {
        debug_assert!(slot < PAGE);
        Loc(page * PAGE as u64 + slot as u64)
    }
    /// The page.
    pub fn page(self) -> u64 {
        self.0 / PAGE as u64
    }
    /// The slot in the page.
    pub fn slot(self) -> usize {
        (self.0 % PAGE as u64) as usize
    }
}

/// A page that does not parse: the tables are damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enrolment page damaged: {0}")]
pub struct Damaged(pub String);

/// Builds a roster page from its entries.
pub fn encode_page<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let body: usize = entries.iter().map(|e| e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(2 + 4 * entries.len() + body);
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    let mut end = 0u32;
    for e in entries {
        end += e.as_ref().len() as u32;
        out.extend_from_slice(&end.to_be_bytes());
    }
    for e in entries {
        out.extend_from_slice(e.as_ref());
    }
    out
}

/// A roster page, read in place.
pub struct PageView<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> PageView<'a> {
    /// Checks the header and the offsets.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Damaged> {
        let count = bytes
            .get(..2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
            .ok_or_else(|| Damaged("shorter than its header".into()))?;
        let head = 2 + 4 * count;
        if bytes.len() < head {
            return Err(Damaged(format!("{count} offsets do not fit")));
        }
        let v = PageView { bytes, count };
        let last = if count == 0 { 0 } else { v.end(count - 1) };
        if head + last != bytes.len() {
            return Err(Damaged(format!(
                "entries end at {} in a page of {}",
                head + last,
                bytes.len()
            )));
        }
        if (1..count).any(|i| v.end(i) < v.end(i - 1)) {
            return Err(Damaged("offsets go backwards".into()));
        }
        Ok(v)
    }

    fn end(&self, i: usize) -> usize {
        let o = 2 + 4 * i;
        u32::from_be_bytes(self.bytes[o..o + 4].try_into().expect("4 bytes")) as usize
    }

    /// Entries in the page.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the page is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `slot`.
    pub fn entry(&self, slot: usize) -> Option<&'a [u8]> {
        if slot >= self.count {
            return None;
        }
        let head = 2 + 4 * self.count;
        let start = if slot == 0 { 0 } else { self.end(slot - 1) };
        Some(&self.bytes[head + start..head + self.end(slot)])
    }

    /// Every entry, in slot order.
    pub fn entries(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.count).filter_map(|i| self.entry(i))
    }

    /// The page with some entries replaced (`(slot, bytes)`, slots in the page).
    pub fn replaced(&self, changes: &[(usize, Vec<u8>)]) -> Vec<u8> {
        let entries: Vec<&[u8]> = (0..self.count)
            .map(|i| {
                changes
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == i)
                    .map_or_else(|| self.entry(i).expect("slot in page"), |(_, b)| b)
            })
            .collect();
        encode_page(&entries)
    }
}

/// An index entry: a NIR and where its person lives.
pub type IndexEntry = (NirBytes, Loc);

/// Builds a leaf from entries sorted by NIR.
pub fn encode_leaf(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * LEAF_ENTRY);
    for (nir, loc) in entries {
        out.extend_from_slice(nir);
        out.extend_from_slice(&loc.0.to_be_bytes());
    }
    out
}

/// A leaf's entries.
pub fn leaf_entries(leaf: &[u8]) -> Result<Vec<IndexEntry>, Damaged> {
    if !leaf.len().is_multiple_of(LEAF_ENTRY) {
        return Err(Damaged(format!(
            "an index leaf of {} bytes is not whole entries",
            leaf.len()
        )));
    }
    Ok(leaf.chunks_exact(LEAF_ENTRY).map(split_entry).collect())
}

fn split_entry(e: &[u8]) -> IndexEntry {
    (
        e[..13].try_into().expect("13 bytes"),
        Loc(u64::from_be_bytes(e[13..].try_into().expect("8 bytes"))),
    )
}

/// Finds a NIR in a leaf by binary search, in place.
pub fn leaf_find(leaf: &[u8], nir: &NirBytes) -> Option<Loc> {
    let n = leaf.len() / LEAF_ENTRY;
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let e = &leaf[mid * LEAF_ENTRY..(mid + 1) * LEAF_ENTRY];
        match e[..13].cmp(nir.as_slice()) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(split_entry(e).1),
        }
    }
    None
}

/// Merges two sorted runs of entries (a NIR in both keeps the newer place).
pub fn merge_sorted(old: Vec<IndexEntry>, new: &[IndexEntry]) -> Vec<IndexEntry> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut a, mut b) = (old.into_iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => out.push(a.next().expect("peeked")),
                std::cmp::Ordering::Greater => out.push(*b.next().expect("peeked")),
                std::cmp::Ordering::Equal => {
                    a.next();
                    out.push(*b.next().expect("peeked"));
                }
            },
            (Some(_), None) => out.push(a.next().expect("peeked")),
            (None, Some(_)) => out.push(*b.next().expect("peeked")),
            (None, None) => return out,
        }
    }
}

/// Cuts a sorted run into leaves of at most [`LEAF`] entries: (first NIR, leaf bytes).
pub fn cut_leaves(entries: &[IndexEntry]) -> Vec<(NirBytes, Vec<u8>)> {
    entries
        .chunks(LEAF)
        .map(|c| (c[0].0, encode_leaf(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nir(i: u64) -> NirBytes {
        format!("{i:013}").as_bytes().try_into().unwrap()
    }

    #[test]
    fn a_page_reads_and_replaces_one_entry_in_place() {
        let entries = vec![b"alpha".to_vec(), Vec::new(), b"gamma!".to_vec()];
        let page = encode_page(&entries);
        let v = PageView::parse(&page).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.entry(0), Some(&b"alpha"[..]));
        assert_eq!(v.entry(1), Some(&b""[..]));
        assert_eq!(v.entry(2), Some(&b"gamma!"[..]));
        assert_eq!(v.entry(3), None);
        let changed = v.replaced(&[(1, b"beta".to_vec())]);
        let w = PageView::parse(&changed).unwrap();
        let all: Vec<&[u8]> = w.entries().collect();
        assert_eq!(all, vec![&b"alpha"[..], b"beta", b"gamma!"]);
    }

    #[test]
    fn a_damaged_page_is_refused_not_misread() {
        let page = encode_page(&[b"one".to_vec(), b"two".to_vec()]);
        assert!(PageView::parse(&page[..page.len() - 1]).is_err());
        assert!(PageView::parse(&[0]).is_err());
        let mut bad = page.clone();
        bad[1] = 9; // nine offsets claimed
        assert!(PageView::parse(&bad).is_err());
        assert!(PageView::parse(&encode_page::<Vec<u8>>(&[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn places_pack_page_and_slot() {
        let l = Loc::new(7, 31);
        assert_eq!((l.page(), l.slot()), (7, 31));
        assert!(Loc::new(7, 31) < Loc::new(8, 0));
    }

    #[test]
    fn leaves_find_every_entry_and_only_those() {
        let entries: Vec<IndexEntry> = (0..3000).map(|i| (nir(i * 2), Loc(i))).collect();
        let leaves = cut_leaves(&entries);
        assert_eq!(leaves.len(), 3);
        for (i, (n, loc)) in entries.iter().enumerate() {
            let leaf = &leaves[i / LEAF].1;
            assert_eq!(leaf_find(leaf, n), Some(*loc));
            assert_eq!(leaf_find(leaf, &nir(i as u64 * 2 + 1)), None);
        }
        assert_eq!(leaf_entries(&leaves[2].1).unwrap().len(), 3000 - 2 * LEAF);
        assert!(leaf_entries(&leaves[0].1[1..]).is_err());
    }

    #[test]
    fn merging_keeps_order_and_the_newer_place() {
        let old = vec![(nir(1), Loc(1)), (nir(3), Loc(3)), (nir(5), Loc(5))];
        let new = [(nir(0), Loc(10)), (nir(3), Loc(30)), (nir(9), Loc(90))];
        let m = merge_sorted(old, &new);
        let nirs: Vec<NirBytes> = m.iter().map(|e| e.0).collect();
        assert_eq!(nirs, vec![nir(0), nir(1), nir(3), nir(5), nir(9)]);
        assert_eq!(m[2].1, Loc(30));
    }
}
