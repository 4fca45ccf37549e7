//! Automerge volumes: a map of keys to text values (notes), with conflicts kept visible.
//!
//! Each device writes with its own actor id; remote changes are applied in one
//! `load_incremental` call per fetched batch (automerge is ~500x faster that way).

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ReadDoc, ScalarValue, Value, ROOT};

use super::{ApplyError, Payload};

/// An automerge replica.
pub struct DocReplica {
    doc: Box<AutoCommit>,
}

fn err(e: automerge::AutomergeError) -> ApplyError {
    ApplyError(e.to_string())
}

impl DocReplica {
    /// An empty document written by `actor`.
    pub fn new(actor: &[u8]) -> Self {
        DocReplica {
            doc: Box::new(AutoCommit::new().with_actor(ActorId::from(actor))),
        }
    }

    /// Applies payloads (changes or snapshots; both merge).
    pub fn apply<'a>(
        &mut self,
        payloads: impl Iterator<Item = &'a Payload>,
    ) -> Result<(), ApplyError> {
        let mut all = Vec::new();
        for p in payloads {
            match p {
                Payload::Changes(b) | Payload::Snapshot(b) => all.extend_from_slice(b),
            }
        }
        if !all.is_empty() {
            self.doc.load_incremental(&all).map_err(err)?;
        }
        Ok(())
    }

    /// The document as a typed value (the type's default while the document is empty).
    pub fn hydrate<T: autosurgeon::Hydrate + Default>(&self) -> Result<T, ApplyError> {
        if self.doc.length(ROOT) == 0 {
            return Ok(T::default());
        }
        autosurgeon::hydrate(&*self.doc).map_err(|e| ApplyError(e.to_string()))
    }

    /// Makes the document equal to `value` with the smallest change (keyed lists keep
    /// their records' identity); the change as a payload, `None` when nothing changed.
    pub fn reconcile<T: autosurgeon::Reconcile>(
        &mut self,
        value: &T,
    ) -> Result<Option<Payload>, ApplyError> {
        let heads = self.doc.get_heads();
        autosurgeon::reconcile(&mut *self.doc, value).map_err(|e| ApplyError(e.to_string()))?;
        let change = self.doc.save_after(&heads);
        Ok((self.doc.get_heads() != heads).then_some(Payload::Changes(change)))
    }

    /// One entry of the root map, hydrated; `None` when absent.
    pub fn hydrate_key<T: autosurgeon::Hydrate>(&self, key: &str) -> Result<Option<T>, ApplyError> {
        if self.doc.get(ROOT, key).map_err(err)?.is_none() {
            return Ok(None);
        }
        autosurgeon::hydrate_prop(&*self.doc, ROOT, key)
            .map(Some)
            .map_err(|e| ApplyError(e.to_string()))
    }

    /// Writes one entry of the root map with the smallest change (one record of a large
    /// volume: documents, measurement points) and answers the change, `None` if equal.
    pub fn reconcile_key<T: autosurgeon::Reconcile>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<Option<Payload>, ApplyError> {
        self.reconcile_keys(std::iter::once((key, value)))
    }

    /// Writes several entries of the root map as one change.
    pub fn reconcile_keys<'a, T: autosurgeon::Reconcile + 'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<Option<Payload>, ApplyError> {
        let heads = self.doc.get_heads();
        for (key, value) in entries {
            autosurgeon::reconcile_prop(&mut *self.doc, ROOT, key, value)
                .map_err(|e| ApplyError(e.to_string()))?;
        }
        let change = self.doc.save_after(&heads);
        Ok((self.doc.get_heads() != heads).then_some(Payload::Changes(change)))
    }

    /// Fields left with several values by concurrent edits.
    pub fn conflicts(&self) -> Vec<crate::record::Conflict> {
        crate::record::conflicts(&*self.doc)
    }

    /// Sets `key` to `value`; returns the change as a payload.
    pub fn set(&mut self, key: &str, value: &str) -> Result<Payload, ApplyError> {
        let heads = self.doc.get_heads();
        self.doc.put(ROOT, key, value).map_err(err)?;
        Ok(Payload::Changes(self.doc.save_after(&heads)))
    }

    /// Deletes `key` (a value or a record); `None` if it was absent.
    pub fn delete(&mut self, key: &str) -> Result<Option<Payload>, ApplyError> {
        if self.doc.get(ROOT, key).map_err(err)?.is_none() {
            return Ok(None);
        }
        let heads = self.doc.get_heads();
        self.doc.delete(ROOT, key).map_err(err)?;
        Ok(Some(Payload::Changes(self.doc.save_after(&heads))))
    }

    /// The values of `key`: one, or several when concurrent writes conflict (sorted).
    pub fn get(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .doc
            .get_all(ROOT, key)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(v, _)| match v {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(t) => Some(t.to_string()),
                    other => Some(other.to_string()),
                },
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    /// The value automerge picks when concurrent writes conflict.
    pub fn winner(&self, key: &str) -> Option<String> {
        match self.doc.get(ROOT, key).ok().flatten()?.0 {
            Value::Scalar(s) => Some(match s.as_ref() {
                ScalarValue::Str(t) => t.to_string(),
                other => other.to_string(),
            }),
            _ => None,
        }
    }

    /// Whether every entry of the root map is a plain value (notes), not a record.
    pub fn is_flat(&self) -> bool {
        self.doc
            .map_range(ROOT, ..)
            .all(|item| matches!(item.value, automerge::ValueRef::Scalar(_)))
    }

    /// The keys starting with `prefix`, in order, with their values: a range of the
    /// root map (automerge keeps its keys sorted), not a walk of every key.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, Vec<String>)> {
        self.doc
            .map_range(ROOT, prefix.to_string()..)
            .map(|item| item.key.to_string())
            .take_while(|k| k.starts_with(prefix))
            .map(|k| {
                let v = self.get(&k);
                (k, v)
            })
            .collect()
    }

    /// Every key in order.
    pub fn keys(&self) -> Vec<String> {
        self.doc.keys(ROOT).collect()
    }

    /// The whole document.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Number of changes in the history.
    pub fn change_count(&mut self) -> usize {
        self.doc.get_changes(&[]).len()
    }

    /// Fingerprint: the sorted heads.
    pub fn digest(&mut self) -> String {
        let mut heads: Vec<String> = self
            .doc
            .get_heads()
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        heads.sort();
        heads.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_edits_merge_and_replay_is_idempotent() {
        let mut a = DocReplica::new(b"device-a");
        let mut b = DocReplica::new(b"device-b");
        let pa = a.set("allergy", "penicillin").unwrap();
        let pb = b.set("allergy", "none").unwrap();
        let pb2 = b.set("blood", "O+").unwrap();
        a.apply([&pb, &pb2].into_iter()).unwrap();
        b.apply([&pa, &pa].into_iter()).unwrap();
        b.apply(std::iter::once(&pb)).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.get("allergy"), vec!["none", "penicillin"]);
        assert_eq!(b.get("blood"), vec!["O+"]);
        assert_eq!(a.keys(), vec!["allergy", "blood"]);
    }
}
