//! Documents (F3): adding a file (checked, sealed into the blob cache, metadata written
//! to the document volume of its type's habilitation group), listing and search over a
//! cache of hydrated volumes, writing a file out, hiding and showing again.
//!
//! Over 600 lines: every operation on a document (add, file, hide, search, send) keeps the same document-volume invariants.

use mes_protocol::crypto::blob::BlobRef;
use mes_protocol::ids::{BlobId, SpaceId, VolumeId};
use mes_protocol::record::codes::Codes;
use mes_protocol::record::documents::{
    DocQuery, DocumentMeta, Folded, ImportCheck, NewDocument, RowProblem,
};
use mes_protocol::record::Source;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::daemon::{documents_label, Daemon, DOCUMENTS_HIDDEN};
use crate::record::doc_index::{self, Entry, Indexed};
use crate::replica::store::StoreError;
use crate::replica::volume::Replica;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorCode::BadRequest, m)
}

fn internal(m: impl ToString) -> ApiError {
    ApiError::new(ApiErrorCode::Internal, m.to_string())
}

/// A document as a list or search shows it: without its key, and without its first KiB
/// of text unless asked (a list of ten thousand documents stays a few MiB).
fn listed(d: &DocumentMeta, excerpt: bool) -> DocumentMeta {
    DocumentMeta {
        id: d.id.clone(),
        title: d.title.clone(),
        date: d.date.clone(),
        author: d.author.clone(),
        category: d.category.clone(),
        class_code: d.class_code.clone(),
        type_code: d.type_code.clone(),
        media_type: d.media_type.clone(),
        file_name: d.file_name.clone(),
        source: d.source.clone(),
        visibility: d.visibility.clone(),
        size: d.size,
        ciphertext_len: d.ciphertext_len,
        blob: d.blob.clone(),
        blob_key: String::new(),
        excerpt: if excerpt {
            d.excerpt.clone()
        } else {
            String::new()
        },
        added_at: d.added_at.clone(),
    }
}

/// What `add` checked: the metadata to write and its volume label.
pub(crate) fn checked_meta(new: &NewDocument) -> Result<DocumentMeta, ApiError> {
    let codes = Codes::builtin();
    let cat = codes.category(&new.category).map_err(bad)?;
    let type_code = if new.type_code.is_empty() {
        cat.type_codes[0].clone()
    } else {
        codes.doc_type(&new.type_code).map_err(bad)?.code.clone()
    };
    let class_code = if new.class_code.is_empty() {
        cat.class_codes[0].clone()
    } else if cat.class_codes.contains(&new.class_code) {
        new.class_code.clone()
    } else {
        return Err(bad(format!(
            "class code {:?} does not belong to category {}; its codes: {}",
            new.class_code,
            cat.id,
            cat.class_codes.join(", ")
        )));
    };
    new.date
        .parse::<jiff::civil::Date>()
        .map_err(|_| bad(format!("date {:?} is not a date like 2026-11-24", new.date)))?;
    let path = Path::new(&new.path);
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(DocumentMeta {
        id: new.id.clone(),
        title: if new.title.trim().is_empty() {
            file_name.clone()
        } else {
            new.title.trim().to_string()
        },
        date: new.date.clone(),
        author: new.author.clone(),
        category: cat.id.clone(),
        class_code,
        type_code,
        media_type: media_type(&file_name).into(),
        file_name,
        source: if new.source.kind.is_empty() {
            Source {
                kind: "person".into(),
                name: String::new(),
            }
        } else {
            new.source.clone()
        },
        ..Default::default()
    })
}

/// The media type from a file name's extension.
pub fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("md") => "text/markdown",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("html" | "htm") => "text/html",
        Some("csv") => "text/csv",
        Some("dcm") => "application/dicom",
        _ => "application/octet-stream",
    }
}

/// The first KiB of a text file, for search and preview.
pub(crate) fn excerpt(path: &Path, media: &str) -> String {
    if !media.starts_with("text/") {
        return String::new();
    }
    let mut buf = vec![0u8; 1024];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut buf))
        .unwrap_or(0);
    let s = String::from_utf8_lossy(&buf[..n]).into_owned();
    s.trim_end_matches('\u{FFFD}').to_string()
}

/// A document's blob reference.
pub fn blob_ref(d: &DocumentMeta) -> Result<BlobRef, ApiError> {
    let id: BlobId = d.blob.parse().map_err(internal)?;
    let key: [u8; 32] = hex::decode(&d.blob_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| internal(format!("document {} has a malformed blob key", d.id)))?;
    Ok(BlobRef {
        id,
        key,
        plaintext_len: d.size,
        ciphertext_len: d.ciphertext_len,
    })
}

/// The volume label a document lives in.
pub fn label_of(d: &DocumentMeta) -> Result<String, ApiError> {
    if d.visibility.hidden_from_professionals {
        return Ok(DOCUMENTS_HIDDEN.into());
    }
    let t = Codes::builtin().doc_type(&d.type_code).map_err(bad)?;
    Ok(documents_label(&t.group))
}

impl Daemon {
    /// The volume label a document lives in here: a document kept from the legal
    /// representatives (`INVISIBLE_REPRESENTANTS_LEGAUX`) goes to the private volume once
    /// the space was handed over to the minor (F9.1), declared on first use; before the
    /// handover the parents own the space and the flag is shown, as in the DMP.
    pub(crate) fn doc_label(&self, space: SpaceId, d: &DocumentMeta) -> Result<String, ApiError> {
        if d.visibility.invisible_to_legal_representatives {
            let handed_over = self
                .membership_of(space)
                .is_ok_and(|m| m.handover.is_some());
            if handed_over {
                self.ensure_private_volume(space)?;
                return Ok(mes_protocol::access::authority::DOCUMENTS_PRIVATE.into());
            }
        }
        label_of(d)
    }

    /// Keeps a document from the legal representatives (F9.1): only the minor who owns a
    /// handed-over space; the file is re-sealed under a new key and the metadata moves to
    /// the private volume, whose keys the parents never get.
    pub async fn doc_hide_from_parents(
        &self,
        space: SpaceId,
        id: &str,
    ) -> Result<DocumentMeta, ApiError> {
        let m = self.membership_of(space)?;
        if m.handover.is_none() || m.owner() != self.identity().principal.principal_id() {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "only a minor whose space was handed over to them keeps documents from the parents",
            ));
        }
        let mut d = self.doc_find(space, id)?;
        let from = self.doc_label(space, &d)?;
        if d.visibility.invisible_to_legal_representatives
            && from == mes_protocol::access::authority::DOCUMENTS_PRIVATE
        {
            d.blob_key.clear();
            return Ok(d);
        }
        let mut moved = d.clone();
        moved.visibility.invisible_to_legal_representatives = true;
        let to = self.doc_label(space, &moved)?;
        self.reseal(space, &mut d, &to).await?;
        d.visibility.invisible_to_legal_representatives = true;
        self.doc_write(space, &to, &d).await?;
        self.doc_remove(space, &from, id).await?;
        d.blob_key.clear();
        Ok(d)
    }

    /// Re-seals a document's file under a fresh key, queued for upload to the volume of
    /// `to` (the label it moves to), so a key read before opens nothing of what comes
    /// next.
    async fn reseal(&self, space: SpaceId, d: &mut DocumentMeta, to: &str) -> Result<(), ApiError> {
        let r = blob_ref(d)?;
        crate::replica::blobs::ensure_cached(self, space, &self.blob_volumes(space, d)?, &r)
            .await?;
        let fresh = crate::replica::blobs::rekey(&self.files, &r)?;
        let target = Daemon::volume_of(&self.state(), space, to)?;
        crate::replica::blobs::mark_pending(&self.files, space, target, fresh.id)?;
        d.blob = fresh.id.to_string();
        d.blob_key = hex::encode(fresh.key);
        d.ciphertext_len = fresh.ciphertext_len;
        Ok(())
    }

    /// The volumes to fetch a document's file through: its own volume's, then the inbox
    /// (a filed inbox document, before its binding reached the relay: only an admin
    /// reads there).
    fn blob_volumes(&self, space: SpaceId, d: &DocumentMeta) -> Result<Vec<VolumeId>, ApiError> {
        let label = self.doc_label(space, d)?;
        let st = self.state();
        let mut v = vec![Daemon::volume_of(&st, space, &label)?];
        v.extend(Daemon::volume_of(&st, space, crate::daemon::INBOX).ok());
        Ok(v)
    }

    /// Queues the binding of a document's file to the volume of `label`, where its entry
    /// now lives (finding 8; sent by an admin's device).
    pub(crate) fn bind_to(
        &self,
        space: SpaceId,
        label: &str,
        d: &DocumentMeta,
    ) -> Result<(), ApiError> {
        if d.blob.is_empty() {
            return Ok(());
        }
        let blob = d.blob.parse().map_err(internal)?;
        let volume = Daemon::volume_of(&self.state(), space, label)?;
        crate::replica::blobs::mark_bind(&self.files, space, volume, blob)
    }

    /// The volume whose documents reference `blob` (a queue marker written before
    /// version 9), or the notes for a bare blob.
    pub(crate) fn volume_referencing(&self, space: SpaceId, blob: BlobId) -> Option<VolumeId> {
        let wanted = blob.to_string();
        for v in self.document_volumes(space) {
            let ix = self.indexed(v).ok()?;
            if ix.docs.iter().any(|d| d.blob == wanted) {
                return Some(v);
            }
        }
        Daemon::volume_of(&self.state(), space, crate::daemon::NOTES).ok()
    }

    /// The document volumes of a space.
    fn document_volumes(&self, space: SpaceId) -> Vec<VolumeId> {
        self.state()
            .volumes
            .values()
            .filter(|v| v.meta.space == space && v.meta.label.starts_with("documents/"))
            .map(|v| v.meta.volume)
            .collect()
    }

    /// A document volume's index: the cached one while it reflects the volume, else the
    /// stored one while the replica is not loaded and it reflects the volume (a cold
    /// start), else hydrated from the replica.
    fn indexed(&self, volume: VolumeId) -> Result<Arc<Indexed>, ApiError> {
        let mut st = self.state();
        let v = st.volumes.get_mut(&volume).expect("document volume exists");
        let version = doc_index::version(v);
        let mut cache = self.doc_cache.lock();
        if !v.is_loaded() {
            if let Some(e) = cache.get(&volume).filter(|e| e.reflects(version, None)) {
                return Ok(e.index.clone());
            }
            if let Some(ix) = doc_index::load(&self.store, volume, version).map_err(internal)? {
                let index = Arc::new(ix);
                let entry = Entry {
                    heads: None,
                    version,
                    index: index.clone(),
                };
                cache.insert(volume, entry);
                return Ok(index);
            }
        }
        let Replica::Doc(doc) = v.replica().map_err(internal)? else {
            return Err(internal("a document volume is not a document"));
        };
        let heads = doc.digest();
        if let Some(e) = cache.get_mut(&volume) {
            if e.reflects(version, Some(&heads)) {
                e.heads = Some(heads);
                e.version = version;
                return Ok(e.index.clone());
            }
        }
        let map: mes_protocol::record::documents::DocumentVolume =
            doc.hydrate().map_err(internal)?;
        let index = Arc::new(Indexed::new(map.into_values().collect()));
        let entry = Entry {
            heads: Some(heads),
            version,
            index: index.clone(),
        };
        cache.insert(volume, entry);
        Ok(index)
    }

    /// Keeps a volume's cache entry current across a local change about to be recorded
    /// (the document moved from heads `before` to `after`; `last_local` goes up by one):
    /// patched in place rather than hydrated again, so adding the 10,000th document costs
    /// what adding the first did. An entry that did not reflect the volume is left to be
    /// rebuilt.
    fn patch_index(
        &self,
        v: &crate::replica::spaces::LoadedVolume,
        before: &str,
        after: String,
        patch: impl FnOnce(&mut Indexed),
    ) {
        let version = doc_index::version(v);
        let mut cache = self.doc_cache.lock();
        if let Some(e) = cache.get_mut(&v.meta.volume) {
            if e.reflects(version, Some(before)) {
                patch(Arc::make_mut(&mut e.index));
                e.heads = Some(after);
                e.version = (version.0, version.1, version.2 + 1);
            }
        }
    }

    /// Stores every cached index that reflects its volume, so the next start lists
    /// documents without loading automerge (called at shutdown, before the last flush).
    pub fn save_document_indexes(&self) -> Result<(), StoreError> {
        let mut st = self.state();
        let cache = self.doc_cache.lock();
        let mut batch = self.store.batch();
        for (volume, entry) in cache.iter() {
            let Some(v) = st.volumes.get_mut(volume) else {
                continue;
            };
            let version = doc_index::version(v);
            let heads = match v.is_loaded() {
                true => match v.replica()? {
                    Replica::Doc(doc) => Some(doc.digest()),
                    _ => None,
                },
                false => None,
            };
            if entry.reflects(version, heads.as_deref()) {
                let current = Entry {
                    heads: None,
                    version,
                    index: entry.index.clone(),
                };
                doc_index::save(&mut batch, *volume, &current);
            }
        }
        self.store.apply(batch)
    }

    /// Every document, keys included (export, hiding).
    pub fn documents_all(&self, space: SpaceId) -> Result<Vec<DocumentMeta>, ApiError> {
        let mut out = Vec::new();
        for v in self.document_volumes(space) {
            out.extend(self.indexed(v)?.docs.iter().cloned());
        }
        Ok(out)
    }

    /// How many documents match a query, and the first `limit` of them (all when 0),
    /// newest first, keys stripped (F3.5). Only the page is sorted in full and copied.
    pub fn doc_search(
        &self,
        space: SpaceId,
        q: &DocQuery,
    ) -> Result<(u32, Vec<DocumentMeta>), ApiError> {
        for (what, d) in [("from", &q.from), ("to", &q.to)] {
            if !d.is_empty() && d.parse::<jiff::civil::Date>().is_err() {
                return Err(bad(format!("{what} {d:?} is not a date like 2026-11-24")));
            }
        }
        if !q.category.is_empty() {
            Codes::builtin().category(&q.category).map_err(bad)?;
        }
        if !q.type_code.is_empty() {
            Codes::builtin().doc_type(&q.type_code).map_err(bad)?;
        }
        let prepared = q.prepare();
        let none = Folded::default();
        let indexes = self
            .document_volumes(space)
            .into_iter()
            .map(|v| self.indexed(v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hits: Vec<&DocumentMeta> = Vec::new();
        for ix in &indexes {
            let text = prepared.needs_text().then(|| ix.text());
            for (i, d) in ix.docs.iter().enumerate() {
                if prepared.matches(d, text.map_or(&none, |t| &t[i])) {
                    hits.push(d);
                }
            }
        }
        let total = hits.len() as u32;
        let newest_first = |a: &&DocumentMeta, b: &&DocumentMeta| {
            (b.date.as_str(), a.title.as_str(), a.id.as_str()).cmp(&(
                a.date.as_str(),
                b.title.as_str(),
                b.id.as_str(),
            ))
        };
        let page = q.limit as usize;
        if page > 0 && page < hits.len() {
            hits.select_nth_unstable_by(page - 1, newest_first);
            hits.truncate(page);
        }
        hits.sort_unstable_by(newest_first);
        Ok((
            total,
            hits.into_iter().map(|d| listed(d, q.excerpts)).collect(),
        ))
    }

    /// A document by id, with the label of its volume.
    pub fn doc_find(&self, space: SpaceId, id: &str) -> Result<DocumentMeta, ApiError> {
        for v in self.document_volumes(space) {
            if let Some(d) = self.indexed(v)?.get(id) {
                return Ok(d.clone());
            }
        }
        Err(ApiError::new(
            ApiErrorCode::NotFound,
            format!("no document {id:?} in this space"),
        ))
    }

    /// Writes one document's metadata into `label`'s volume.
    pub(crate) async fn doc_write(
        &self,
        space: SpaceId,
        label: &str,
        d: &DocumentMeta,
    ) -> Result<(), ApiError> {
        self.local_change(space, label, |v, _| {
            let Replica::Doc(doc) = v.replica().map_err(internal)? else {
                return Err(internal("a document volume is not a document"));
            };
            let before = doc.digest();
            let change = doc.reconcile_key(&d.id, d).map_err(internal)?;
            if change.is_some() {
                let after = doc.digest();
                self.patch_index(v, &before, after, |ix| ix.upsert(d));
            }
            Ok(change)
        })
        .await
        .map(|_| ())
    }

    /// Removes a document's metadata from `label`'s volume.
    async fn doc_remove(&self, space: SpaceId, label: &str, id: &str) -> Result<(), ApiError> {
        self.local_change(space, label, |v, _| {
            let Replica::Doc(doc) = v.replica().map_err(internal)? else {
                return Err(internal("a document volume is not a document"));
            };
            let before = doc.digest();
            let change = doc.delete(id).map_err(internal)?;
            if change.is_some() {
                let after = doc.digest();
                self.patch_index(v, &before, after, |ix| ix.remove(id));
            }
            Ok(change)
        })
        .await
        .map(|_| ())
    }

    /// Adds a document (F3.1): nothing is written unless every check passes. With a fixed
    /// id (bulk import), adding the same file again changes nothing.
    pub async fn doc_add(
        &self,
        space: SpaceId,
        new: &NewDocument,
    ) -> Result<DocumentMeta, ApiError> {
        let mut meta = checked_meta(new)?;
        let path = Path::new(&new.path);
        if let Some(existing) = self.already_added(space, &meta, path)? {
            return Ok(DocumentMeta {
                blob_key: String::new(),
                ..existing
            });
        }
        if meta.id.is_empty() {
            meta.id = hex::encode(rand::Rng::gen::<[u8; 8]>(&mut rand::rngs::OsRng));
        }
        let label = self.doc_label(space, &meta)?;
        let volume = Daemon::volume_of(&self.state(), space, &label)?;
        self.attach_file(space, volume, &mut meta, path)?;
        self.doc_write(space, &label, &meta).await?;
        meta.blob_key.clear();
        Ok(meta)
    }

    /// Seals a document's file into the blob cache, queues it for upload to `volume` of
    /// `space` (the volume whose entry references it), and fills in what the metadata
    /// says of it (size, blob, key, excerpt, time added).
    pub(crate) fn attach_file(
        &self,
        space: SpaceId,
        volume: VolumeId,
        meta: &mut DocumentMeta,
        path: &Path,
    ) -> Result<(), ApiError> {
        let id = self.seal_file(meta, path)?;
        crate::replica::blobs::mark_pending(&self.files, space, volume, id)
    }

    /// Seals a document's file into this device's cache under a fresh key, recorded in
    /// its metadata (not queued for any space yet).
    pub(crate) fn seal_file(
        &self,
        meta: &mut DocumentMeta,
        path: &Path,
    ) -> Result<mes_protocol::ids::BlobId, ApiError> {
        let r = crate::replica::blobs::seal_into_cache(&self.files, path)?;
        meta.excerpt = excerpt(path, &meta.media_type);
        meta.size = r.plaintext_len;
        meta.ciphertext_len = r.ciphertext_len;
        meta.blob = r.id.to_string();
        meta.blob_key = hex::encode(r.key);
        meta.added_at = jiff::Timestamp::now().to_string();
        Ok(r.id)
    }

    /// The document a fixed id already names, when it is this same document (bulk import
    /// re-run); an error when the id names another one; `None` for a new document.
    fn already_added(
        &self,
        space: SpaceId,
        meta: &DocumentMeta,
        path: &Path,
    ) -> Result<Option<DocumentMeta>, ApiError> {
        if meta.id.is_empty() {
            return Ok(None);
        }
        let Ok(existing) = self.doc_find(space, &meta.id) else {
            return Ok(None);
        };
        let same = std::fs::metadata(path).map(|m| m.len()).ok() == Some(existing.size)
            && existing.title == meta.title
            && existing.date == meta.date
            && existing.type_code == meta.type_code;
        if same {
            Ok(Some(existing))
        } else {
            Err(bad(format!(
                "document id {:?} already holds another document ({:?})",
                meta.id, existing.title
            )))
        }
    }

    /// Checks documents before a bulk import (F3.7), writing nothing: every row's
    /// problems (category, type, date, file unreadable or too large, an id given twice or
    /// already holding another document) and the rows the space already holds.
    pub fn doc_check(&self, space: SpaceId, docs: &[NewDocument]) -> Result<ImportCheck, ApiError> {
        let mut check = ImportCheck::default();
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for (row, new) in (0u32..).zip(docs) {
            let problem = |reason: String| RowProblem { row, reason };
            if !new.id.is_empty() {
                if let Some(first) = seen.insert(&new.id, row) {
                    check.problems.push(problem(format!(
                        "id {:?} is also the id of row {first}",
                        new.id
                    )));
                    continue;
                }
            }
            let outcome = checked_meta(new).and_then(|meta| {
                crate::replica::blobs::open_checked(&self.files, Path::new(&new.path))?;
                self.already_added(space, &meta, Path::new(&new.path))
            });
            match outcome {
                Ok(Some(_)) => check.present.push(row),
                Ok(None) => {}
                Err(e) => check.problems.push(problem(e.message)),
            }
        }
        Ok(check)
    }

    /// Writes a document's file to `out` (absolute), fetching it first if needed (F3.6).
    pub async fn doc_get(&self, space: SpaceId, id: &str, out: &Path) -> Result<u64, ApiError> {
        if !out.is_absolute() {
            return Err(bad(format!("{} is not an absolute path", out.display())));
        }
        let d = self.doc_find(space, id)?;
        let r = blob_ref(&d)?;
        crate::replica::blobs::ensure_cached(self, space, &self.blob_volumes(space, &d)?, &r)
            .await?;
        crate::replica::blobs::decrypt_cached(&self.files, &r, out)
    }

    /// Hides a document from professionals or shows it again (F3.3): its metadata moves to
    /// the hidden volume (or back to its group's) and, when hiding, its file is re-sealed
    /// under a new key, so a key read before cannot open what is hidden now.
    /// Makes a document visible to a minor's legal representatives (clears
    /// `INVISIBLE_REPRESENTANTS_LEGAUX`): irreversible, so it must be confirmed (F3.4).
    pub async fn doc_show_to_representatives(
        &self,
        space: SpaceId,
        id: &str,
        confirmed: bool,
    ) -> Result<DocumentMeta, ApiError> {
        let mut d = self.doc_find(space, id)?;
        let new = mes_protocol::record::documents::Visibility {
            invisible_to_legal_representatives: false,
            ..d.visibility.clone()
        };
        d.visibility
            .check_change(&new, confirmed)
            .map_err(|e| bad(e.to_string()))?;
        if d.visibility != new {
            let from = self.doc_label(space, &d)?;
            d.visibility = new;
            let to = self.doc_label(space, &d)?;
            if to != from {
                self.bind_to(space, &to, &d)?;
            }
            self.doc_write(space, &to, &d).await?;
            if to != from {
                self.doc_remove(space, &from, id).await?;
            }
        }
        d.blob_key.clear();
        Ok(d)
    }

    pub async fn doc_hide(
        &self,
        space: SpaceId,
        id: &str,
        hidden: bool,
    ) -> Result<DocumentMeta, ApiError> {
        let mut d = self.doc_find(space, id)?;
        if d.visibility.hidden_from_professionals == hidden {
            d.blob_key.clear();
            return Ok(d);
        }
        if hidden && d.visibility.invisible_to_patient {
            return Err(bad(
                "a document held back from the patient cannot also be hidden from professionals (MASQUE_PS and INVISIBLE_PATIENT are exclusive)",
            ));
        }
        let from = self.doc_label(space, &d)?;
        let mut moved = d.clone();
        moved.visibility.hidden_from_professionals = hidden;
        let to = self.doc_label(space, &moved)?;
        if hidden {
            self.reseal(space, &mut d, &to).await?;
        } else {
            // Shown again: the same file, now read through its group's volume.
            self.bind_to(space, &to, &d)?;
        }
        d.visibility.hidden_from_professionals = hidden;
        // Written to its new volume before it leaves the old one: a crash in between
        // leaves it in both (shown once), never in neither.
        self.doc_write(space, &to, &d).await?;
        self.doc_remove(space, &from, id).await?;
        d.blob_key.clear();
        Ok(d)
    }
}
