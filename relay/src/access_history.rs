//! The relay's side of the access history (F8.1): one hash-chained, relay-signed entry
//! per access by anyone but the space's owner, stored durably before the data is served,
//! and pushed to the owner's devices. Entries are records `History`, keyed
//! `space || seq (big-endian)`.

use mes_protocol::access::history::{link, AccessMode, AccessTarget, HistoryEntry, HistoryHead};
use mes_protocol::access::membership::Signed;
use mes_protocol::crypto::keys::SigningSecret;
use mes_protocol::enrolment::principal::Professional;
use mes_protocol::ids::{DeviceId, PrincipalId, SpaceId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::codec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{Store, StoreError, Table};

/// Appends and serves access histories.
pub struct AccessHistory {
    store: Arc<dyn Store>,
    heads: Mutex<HashMap<SpaceId, HistoryHead>>,
    locks: Mutex<HashMap<SpaceId, Arc<tokio::sync::Mutex<()>>>>,
}

fn key(space: SpaceId, seq: u64) -> Vec<u8> {
    [space.0.as_slice(), &seq.to_be_bytes()].concat()
}

fn decode(bytes: &[u8]) -> Result<Signed<HistoryEntry>, StoreError> {
    codec::from_bytes(bytes).map_err(|e| StoreError::corrupt(format!("stored history entry: {e}")))
}

/// Who accessed, as the relay knows them.
pub struct Accessor {
    /// Principal.
    pub actor: PrincipalId,
    /// Device.
    pub device: DeviceId,
    /// The directory's entry, if listed.
    pub professional: Option<Professional>,
    /// How.
    pub mode: AccessMode,
}

impl AccessHistory {
    /// Over a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        AccessHistory {
            store,
            heads: Mutex::default(),
            locks: Mutex::default(),
        }
    }

    async fn head(&self, space: SpaceId) -> Result<HistoryHead, StoreError> {
        if let Some(h) = self.heads.lock().expect("history heads").get(&space) {
            return Ok(*h);
        }
        let last = self
            .store
            .scan_records(Table::History, &space.0)
            .await?
            .last()
            .map(|(_, v)| decode(v))
            .transpose()?;
        let head = last
            .map(|e| HistoryHead {
                seq: e.body.seq,
                link: link(&e),
            })
            .unwrap_or_default();
        self.heads
            .lock()
            .expect("history heads")
            .insert(space, head);
        Ok(head)
    }

    /// Appends one entry, durably; returns its seq.
    pub async fn append(
        &self,
        key_: &SigningSecret,
        space: SpaceId,
        who: Accessor,
        target: AccessTarget,
        at: UnixMillis,
    ) -> Result<u64, StoreError> {
        let lock = self
            .locks
            .lock()
            .expect("history locks")
            .entry(space)
            .or_default()
            .clone();
        let _one = lock.lock().await;
        let head = self.head(space).await?;
        let entry = Signed::sign(
            HistoryEntry {
                space,
                seq: head.seq + 1,
                prev: head.link,
                at,
                actor: who.actor,
                device: who.device,
                professional: who.professional,
                target,
                mode: who.mode,
            },
            key_,
        );
        self.store
            .put_record(
                Table::History,
                key(space, entry.body.seq),
                codec::to_bytes(&entry),
            )
            .await?;
        let new = HistoryHead {
            seq: entry.body.seq,
            link: link(&entry),
        };
        self.heads.lock().expect("history heads").insert(space, new);
        Ok(new.seq)
    }

    /// Entries with seq > after, ascending, at most `max`.
    pub async fn after(
        &self,
        space: SpaceId,
        after: u64,
        max: usize,
    ) -> Result<Vec<Signed<HistoryEntry>>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan_records(Table::History, &space.0).await? {
            let seq = u64::from_be_bytes(k[16..24].try_into().expect("history key"));
            if seq > after {
                out.push(decode(&v)?);
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The misbehaving relay of the fork test: the same history, every entry shifted by
    /// one millisecond and re-signed and re-linked, a valid chain that differs from the
    /// honest one.
    pub async fn forked(
        &self,
        key_: &SigningSecret,
        space: SpaceId,
        after: u64,
    ) -> Result<Vec<Signed<HistoryEntry>>, StoreError> {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        for e in self.after(space, 0, usize::MAX).await? {
            let mut body = e.body;
            body.at = UnixMillis(body.at.0 + 1);
            body.prev = prev;
            let signed = Signed::sign(body, key_);
            prev = link(&signed);
            if signed.body.seq > after {
                out.push(signed);
            }
        }
        Ok(out)
    }
}
