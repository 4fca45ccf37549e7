//! The document list of each document volume, kept hydrated so listing and searching scan
//! memory only (`Indexed`: the documents, their folded search text computed on the first
//! keyword search). Each cache `Entry` says what it reflects: the automerge heads when
//! known, and the volume's `Version` (generation, cursor, local change count).
//!
//! - A local write patches the entry in place (`Daemon::patch_index`).
//! - This device's own changes coming back from the relay move the cursor but not the
//!   heads: the entry is kept.
//! - Any other change rebuilds it from the replica.
//! - At shutdown every current entry is stored sealed in the replica with its version; a
//!   daemon started cold uses it while the volume's version is unchanged, so ten thousand
//!   documents are listed without loading automerge. A stale or missing stored list (the
//!   daemon was killed, or the volume changed since) is simply rebuilt.

use mes_protocol::ids::VolumeId;
use mes_protocol::record::documents::{folded, DocumentMeta, Folded};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::replica::spaces::LoadedVolume;
use crate::replica::store::{Batch, SealedStore, StoreError};

/// What a volume's content is at: (generation, cursor, local change count). Content
/// cannot change without one of them changing.
pub type Version = (u32, u64, u64);

/// A volume's version now.
pub fn version(v: &LoadedVolume) -> Version {
    (v.meta.generation.0, v.meta.cursor.0, v.meta.last_local)
}

/// A hydrated document volume.
#[derive(Clone, Default)]
pub struct Indexed {
    /// Documents (keys included).
    pub docs: Vec<DocumentMeta>,
    /// Folded searchable text by position, computed on first use.
    text: OnceLock<Vec<Folded>>,
    /// Position by document id.
    by_id: HashMap<String, usize>,
}

impl Indexed {
    /// An index of `docs`.
    pub fn new(docs: Vec<DocumentMeta>) -> Self {
        let by_id = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        Indexed {
            docs,
            text: OnceLock::new(),
            by_id,
        }
    }

    /// The folded text of each document, by position.
    pub fn text(&self) -> &[Folded] {
        self.text
            .get_or_init(|| self.docs.iter().map(folded).collect())
    }

    /// Adds or replaces one document.
    pub fn upsert(&mut self, d: &DocumentMeta) {
        let i = match self.by_id.get(&d.id) {
            Some(&i) => {
                self.docs[i] = d.clone();
                i
            }
            None => {
                self.by_id.insert(d.id.clone(), self.docs.len());
                self.docs.push(d.clone());
                self.docs.len() - 1
            }
        };
        if let Some(text) = self.text.get_mut() {
            match text.get_mut(i) {
                Some(t) => *t = folded(d),
                None => text.push(folded(d)),
            }
        }
    }

    /// Removes one document.
    pub fn remove(&mut self, id: &str) {
        let Some(i) = self.by_id.remove(id) else {
            return;
        };
        self.docs.swap_remove(i);
        if let Some(text) = self.text.get_mut() {
            text.swap_remove(i);
        }
        if let Some(moved) = self.docs.get(i) {
            self.by_id.insert(moved.id.clone(), i);
        }
    }

    /// A document by id.
    pub fn get(&self, id: &str) -> Option<&DocumentMeta> {
        self.by_id.get(id).map(|&i| &self.docs[i])
    }
}

/// A cached index and what it reflects.
pub struct Entry {
    /// The replica's heads it was built or patched at, when known.
    pub heads: Option<String>,
    /// The volume's version then.
    pub version: Version,
    /// The index.
    pub index: Arc<Indexed>,
}

impl Entry {
    /// Whether it reflects a volume at `version` whose replica has `heads` (when loaded):
    /// the heads decide when both are known, the version otherwise.
    pub fn reflects(&self, version: Version, heads: Option<&str>) -> bool {
        match (&self.heads, heads) {
            (Some(a), Some(b)) => a == b,
            _ => self.version == version,
        }
    }
}

/// The cache: one entry per document volume hydrated so far. Its lock is the record
/// component's, taken only in `record/`.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<VolumeId, Entry>>);

impl Cache {
    pub(in crate::record) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VolumeId, Entry>> {
        self.0.lock().expect("document cache lock")
    }
}

/// The stored form.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: Version,
    docs: Vec<DocumentMeta>,
}

fn namespace(volume: VolumeId) -> String {
    format!("v/{volume}/index")
}

/// The stored index of `volume` if it reflects `version`.
pub fn load(
    store: &SealedStore,
    volume: VolumeId,
    version: Version,
) -> Result<Option<Indexed>, StoreError> {
    let Some(bytes) = store.get(&namespace(volume), &[])? else {
        return Ok(None);
    };
    let stored: Stored = mes_protocol::wire::codec::from_bytes(&bytes)
        .map_err(|e| StoreError::corrupt(format!("stored document index: {e}")))?;
    Ok((stored.version == version).then(|| Indexed::new(stored.docs)))
}

/// Stores an entry's index under its version.
pub fn save(batch: &mut Batch<'_>, volume: VolumeId, entry: &Entry) {
    let stored = Stored {
        version: entry.version,
        docs: entry.index.docs.clone(),
    };
    batch.put(
        &namespace(volume),
        &[],
        &mes_protocol::wire::codec::to_bytes(&stored),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, title: &str) -> DocumentMeta {
        DocumentMeta {
            id: id.into(),
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn patches_keep_positions_ids_and_text_in_step() {
        let mut ix = Indexed::new(vec![
            doc("a", "Ordonnance"),
            doc("b", "Radio"),
            doc("c", "Bilan"),
        ]);
        assert!(ix.text()[1].text.contains("radio"));
        ix.remove("a");
        assert_eq!(ix.get("c").unwrap().title, "Bilan");
        assert!(ix.get("a").is_none());
        ix.upsert(&doc("b", "Échographie"));
        ix.upsert(&doc("d", "Certificat"));
        for (i, d) in ix.docs.iter().enumerate() {
            assert_eq!(ix.get(&d.id).unwrap().id, d.id);
            assert_eq!(ix.text()[i], folded(d), "text of {} follows it", d.id);
        }
        assert_eq!(ix.docs.len(), 3);
    }

    #[test]
    fn heads_decide_when_known_and_the_version_otherwise() {
        let e = Entry {
            heads: Some("h1".into()),
            version: (0, 5, 7),
            index: Arc::default(),
        };
        assert!(
            e.reflects((0, 9, 7), Some("h1")),
            "an echo moves the cursor only"
        );
        assert!(!e.reflects((0, 5, 7), Some("h2")));
        assert!(e.reflects((0, 5, 7), None));
        assert!(
            !e.reflects((0, 6, 7), None),
            "not loaded: a moved cursor may mean news"
        );
        let stored = Entry { heads: None, ..e };
        assert!(stored.reflects((0, 5, 7), Some("h9")));
        assert!(!stored.reflects((1, 5, 7), Some("h9")));
    }
}
