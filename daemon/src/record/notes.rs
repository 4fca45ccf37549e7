//! Free-form volumes of a space: notes (key and value, automerge), the journal (a chained log) and the inbox (drops only the owner opens, F7.6).

use crate::daemon::{check_key, storage, Daemon, INBOX, JOURNAL, NOTES};
use crate::replica::volume::{self, inbox::Drop, log::LogEntry, Payload, Replica};
use mes_protocol::ids::{Seq, SpaceId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode, NoteEntry};

impl Daemon {
    /// Sets a note.
    pub async fn note_set(&self, space: SpaceId, key: &str, value: &str) -> Result<(), ApiError> {
        check_key(key)?;
        self.note_set_internal(space, key, value).await
    }

    /// Sets a note, reserved keys included (blob references, the space label).
    pub(crate) async fn note_set_internal(
        &self,
        space: SpaceId,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        self.local_change(space, NOTES, |v, _| match v.replica().map_err(storage)? {
            Replica::Doc(d) => d
                .set(key, value)
                .map(Some)
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string())),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "notes volume is not a document",
            )),
        })
        .await
        .map(|_| ())
    }

    /// Deletes a note; NotFound if absent.
    pub async fn note_delete(&self, space: SpaceId, key: &str) -> Result<(), ApiError> {
        check_key(key)?;
        let changed = self
            .local_change(space, NOTES, |v, _| match v.replica().map_err(storage)? {
                Replica::Doc(d) => d
                    .delete(key)
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string())),
                _ => Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "notes volume is not a document",
                )),
            })
            .await?;
        if changed {
            Ok(())
        } else {
            Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("no note {key:?}"),
            ))
        }
    }

    pub(crate) fn with_doc<T>(
        &self,
        space: SpaceId,
        f: impl FnOnce(&mut volume::doc::DocReplica) -> T,
    ) -> Result<T, ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, NOTES)? {
            Replica::Doc(d) => Ok(f(d)),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "notes volume is not a document",
            )),
        }
    }

    /// A note's values (several on conflict); NotFound if absent.
    pub fn note_get(&self, space: SpaceId, key: &str) -> Result<Vec<String>, ApiError> {
        let values = self.with_doc(space, |d| d.get(key))?;
        if values.is_empty() {
            Err(ApiError::new(
                ApiErrorCode::NotFound,
                format!("no note {key:?}"),
            ))
        } else {
            Ok(values)
        }
    }

    /// One note's settled value (the greatest when concurrent edits left several),
    /// reserved keys included; `None` when absent.
    pub(crate) fn note_value(&self, space: SpaceId, key: &str) -> Option<String> {
        self.with_doc(space, |d| d.get(key))
            .ok()
            .and_then(|v| v.into_iter().max())
    }

    /// Every note, reserved keys included (blob references, the label, history heads).
    pub fn note_list_all(&self, space: SpaceId) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        self.with_doc(space, |d| {
            d.keys()
                .into_iter()
                .map(|k| {
                    let v = d.get(&k);
                    (k, v)
                })
                .collect()
        })
    }

    /// The notes whose keys start with `prefix`, without reading the others.
    pub fn note_list_prefix(
        &self,
        space: SpaceId,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        self.with_doc(space, |d| d.with_prefix(prefix))
    }

    /// Every note.
    pub fn note_list(&self, space: SpaceId) -> Result<Vec<NoteEntry>, ApiError> {
        Ok(self
            .note_list_all(space)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(key, values)| NoteEntry { key, values })
            .collect())
    }

    /// Appends to the journal.
    pub async fn log_append(&self, space: SpaceId, text: &str) -> Result<(), ApiError> {
        self.local_change(space, JOURNAL, |v, device| {
            v.meta.log_counter += 1;
            let e = LogEntry {
                author: device,
                counter: v.meta.log_counter,
                at: UnixMillis::now().0,
                text: text.into(),
            };
            match v.replica().map_err(storage)? {
                Replica::Log(l) => Ok(Some(l.append(e))),
                _ => Err(ApiError::new(
                    ApiErrorCode::Internal,
                    "journal volume is not a log",
                )),
            }
        })
        .await
        .map(|_| ())
    }

    /// The journal: applied entries, then pending ones marked.
    pub fn log_read(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        let mut st = self.state();
        match Self::replica_of(&mut st, space, JOURNAL)? {
            Replica::Log(l) => {
                let (applied, pending) = l.entries();
                let mut out: Vec<String> = applied
                    .iter()
                    .map(|(s, e)| format!("#{} {}", s.0, e.text))
                    .collect();
                out.extend(pending.iter().map(|e| format!("(pending) {}", e.text)));
                Ok(out)
            }
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "journal volume is not a log",
            )),
        }
    }

    /// Drops a message into the space's inbox.
    pub async fn inbox_drop(&self, space: SpaceId, text: &str) -> Result<(), ApiError> {
        self.local_change(space, INBOX, |_, device| {
            Ok(Some(Payload::Changes(mes_protocol::wire::codec::to_bytes(
                &Drop {
                    seq: Seq(0),
                    from: device,
                    text: text.into(),
                },
            ))))
        })
        .await
        .map(|_| ())
    }

    /// The inbox (owner only).
    pub fn inbox_read(&self, space: SpaceId) -> Result<Vec<String>, ApiError> {
        let mut st = self.state();
        Self::volume_of(&st, space, INBOX)?;
        if st.spaces[&space].owner() != self.identity().principal.principal_id() {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "only the space's owner reads its inbox",
            ));
        }
        match Self::replica_of(&mut st, space, INBOX)? {
            Replica::Inbox(i) => Ok(i
                .drops()
                .iter()
                .map(|d| format!("#{} from {}: {}", d.seq.0, d.from.short(), d.text))
                .collect()),
            _ => Err(ApiError::new(
                ApiErrorCode::Internal,
                "inbox volume is not an inbox",
            )),
        }
    }
}
