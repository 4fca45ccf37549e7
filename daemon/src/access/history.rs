//! The owner's side of the access history (F8.1, F8.3): fetch the relay's entries for the
//! spaces this person owns, verify the chain, keep it sealed in the replica, raise an
//! alarm on a gap, a reordering or an altered entry, and compare chain heads with the
//! person's other devices through the (sealed) notes volume, so a relay showing devices
//! different histories is caught.
//!
//! [`HistoryLog`] is the pure core; the `impl Daemon` block is its shell.

use mes_protocol::access::history::{
    compare_heads, link, verify_prefix, HistoryEntry, HistoryError, HistoryHead,
};
use mes_protocol::access::membership::Signed;
use mes_protocol::ids::{PrincipalId, SpaceId};
use mes_protocol::wire::api::ApiEvent;
use mes_protocol::wire::codec;
use mes_protocol::wire::{Reply, Request};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::daemon::{Daemon, SyncError};
use crate::sync::relay_client::RelayClient;

/// Sealed-store namespace of the logs, by space.
const NAMESPACE: &str = "history";

/// Notes key prefix under which each device publishes its verified head.
pub const HEAD_NOTE_PREFIX: &str = "_history-head/";

/// A space's verified access history as this device holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryLog {
    /// The relay key pinned at the first entry.
    pub relay_key: Option<PrincipalId>,
    /// Last verified entry.
    pub head: HistoryHead,
    /// Verified entries, ascending from 1.
    pub entries: Vec<Signed<HistoryEntry>>,
    /// The first problem found; it stays until the person looks into it.
    pub alarm: Option<HistoryError>,
    /// Entries the person flagged as suspicious (F8.3).
    pub suspicious: BTreeSet<u64>,
    /// Per other device (hex id), the highest of its heads found equal to this chain.
    pub agreed: BTreeMap<String, u64>,
}

impl HistoryLog {
    /// Accepts newly fetched entries; on a problem, keeps what was verified before it and
    /// raises the alarm. Returns how many entries were added.
    pub fn extend(
        &mut self,
        relay_key: PrincipalId,
        space: SpaceId,
        entries: &[Signed<HistoryEntry>],
    ) -> Result<usize, HistoryError> {
        if entries.is_empty() {
            return Ok(0);
        }
        match self.relay_key {
            Some(k) if k != relay_key => return Err(self.raise(HistoryError::RelayKeyChanged)),
            _ => {}
        }
        let (head, n, problem) = verify_prefix(self.head, &relay_key, space, entries);
        if n > 0 {
            self.relay_key = Some(relay_key);
            self.head = head;
            self.entries.extend_from_slice(&entries[..n]);
        }
        match problem {
            None => Ok(n),
            Some(e) => Err(self.raise(e)),
        }
    }

    /// Compares another device's head; a fork raises the alarm.
    pub fn check_peer(&mut self, other: HistoryHead) -> Result<(), HistoryError> {
        let links: Vec<[u8; 32]> = self.entries.iter().map(link).collect();
        compare_heads(&links, other).map_err(|e| self.raise(e))
    }

    fn raise(&mut self, e: HistoryError) -> HistoryError {
        if self.alarm.is_none() {
            self.alarm = Some(e.clone());
        }
        e
    }
}

/// A notification's text for an access (F8.2).
fn access_notice(e: &HistoryEntry) -> (String, String) {
    let who = match &e.professional {
        Some(p) => format!("{} (RPPS {})", p.name, p.rpps),
        None => e.actor.short(),
    };
    let what = match &e.target {
        mes_protocol::access::history::AccessTarget::Volume { label, .. } => label.clone(),
        mes_protocol::access::history::AccessTarget::Blob { blob } => {
            format!("file {}", blob.short())
        }
    };
    let mode = e.mode.name();
    (
        format!("{who} a consulté {what} ({mode})"),
        format!("{who} read {what} ({mode})"),
    )
}

/// Encodes a head as a note value: `seq:hexlink`.
pub fn encode_head(h: HistoryHead) -> String {
    format!("{}:{}", h.seq, hex::encode(h.link))
}

/// Decodes a note value written by [`encode_head`].
pub fn decode_head(s: &str) -> Option<HistoryHead> {
    let (seq, l) = s.split_once(':')?;
    let bytes = hex::decode(l).ok()?;
    Some(HistoryHead {
        seq: seq.parse().ok()?,
        link: bytes.try_into().ok()?,
    })
}

impl Daemon {
    /// The stored access history of a space (empty if none yet).
    pub fn history(&self, space: SpaceId) -> HistoryLog {
        self.store
            .get_decoded(NAMESPACE, &space.0)
            .unwrap_or_default()
    }

    fn save_history(&self, space: SpaceId, log: &HistoryLog) -> Result<(), SyncError> {
        let mut batch = self.store.batch();
        batch.put(NAMESPACE, &space.0, &codec::to_bytes(log));
        self.store.apply(batch)?;
        Ok(())
    }

    fn owns(&self, space: SpaceId) -> bool {
        let st = self.state();
        let me = self.identity().principal.principal_id();
        st.spaces.get(&space).is_some_and(|s| s.owner() == me)
    }

    /// Fetches, verifies and stores new history entries of a space this person owns,
    /// publishes this device's head, and compares the other devices' heads.
    pub async fn sync_history(&self, c: &RelayClient, space: SpaceId) -> Result<(), SyncError> {
        if !self.owns(space) {
            return Ok(());
        }
        let _one = self.access.history.lock().await;
        let mut log = self.history(space);
        let (head_before, alarm_before) = (log.head, log.alarm.clone());
        while log.alarm.is_none() {
            let entries = match c
                .request(Request::GetHistory {
                    space,
                    after: log.head.seq,
                })
                .await?
            {
                Reply::History { entries } => entries,
                r => return Err(SyncError::Refused(format!("GetHistory answered {r:?}"))),
            };
            let n = entries.len();
            let before_len = log.entries.len();
            if let Err(e) = log.extend(c.relay_key, space, &entries) {
                tracing::error!("access history of space {}: {e}", space.short());
            }
            for e in &log.entries[before_len..] {
                let (fr, en) = access_notice(&e.body);
                self.notify(space, "access", fr, en);
            }
            if n < mes_protocol::wire::MAX_HISTORY {
                break;
            }
        }
        self.compare_peer_heads(space, &mut log);
        self.save_history(space, &log)?;
        self.store.flush().await?;
        if log.head != head_before || log.alarm != alarm_before {
            self.emit(ApiEvent::AccessHistory { space });
        }
        if log.head != head_before && log.head.seq > 0 {
            let device = self.identity().device.device_id();
            self.note_set_internal(
                space,
                &format!("{HEAD_NOTE_PREFIX}{device}"),
                &encode_head(log.head),
            )
            .await
            .map_err(|e| SyncError::Refused(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the heads the person's other devices published and compares them.
    fn compare_peer_heads(&self, space: SpaceId, log: &mut HistoryLog) {
        let me = self.identity().device.device_id().to_string();
        // Only the heads' notes: a notes volume of ten thousand keys is not walked on each
        // change (it was, and cost the edit-to-visible latency, issue 23).
        let Ok(notes) = self.note_list_prefix(space, HEAD_NOTE_PREFIX) else {
            return;
        };
        for (key, values) in notes {
            let Some(device) = key.strip_prefix(HEAD_NOTE_PREFIX) else {
                continue;
            };
            if device == me {
                continue;
            }
            for v in values {
                let Some(h) = decode_head(&v) else { continue };
                match log.check_peer(h) {
                    Err(e) => tracing::error!("access history of space {}: {e}", space.short()),
                    Ok(()) if h.seq <= log.head.seq => {
                        let seen = log.agreed.entry(device.to_string()).or_default();
                        *seen = (*seen).max(h.seq);
                    }
                    Ok(()) => {}
                }
            }
        }
    }

    /// Re-compares heads after the notes volume changed (another device published one).
    pub(crate) async fn recheck_history(&self, space: SpaceId) {
        if !self.owns(space) {
            return;
        }
        let _one = self.access.history.lock().await;
        let mut log = self.history(space);
        let before = (log.alarm.clone(), log.agreed.clone());
        self.compare_peer_heads(space, &mut log);
        if (log.alarm.clone(), log.agreed.clone()) != before {
            if let Err(e) = self.save_history(space, &log) {
                tracing::error!("saving the access history alarm: {e}");
            }
            self.emit(ApiEvent::AccessHistory { space });
        }
    }

    /// Flags an entry as suspicious (F8.3); the flag lives in the replica.
    pub async fn flag_access(&self, space: SpaceId, seq: u64) -> Result<(), SyncError> {
        let _one = self.access.history.lock().await;
        let mut log = self.history(space);
        if seq == 0 || seq > log.head.seq {
            return Err(SyncError::Refused(format!(
                "no access history entry {seq}; the history has {} entries",
                log.head.seq
            )));
        }
        log.suspicious.insert(seq);
        self.save_history(space, &log)?;
        self.store.flush().await?;
        self.emit(ApiEvent::AccessHistory { space });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mes_protocol::access::history::{AccessMode, AccessTarget};
    use mes_protocol::crypto::keys::SigningSecret;
    use mes_protocol::ids::{BlobId, DeviceId};
    use mes_protocol::time::UnixMillis;

    fn entry(relay: &SigningSecret, seq: u64, prev: [u8; 32]) -> Signed<HistoryEntry> {
        Signed::sign(
            HistoryEntry {
                space: SpaceId([1; 16]),
                seq,
                prev,
                at: UnixMillis(0),
                actor: PrincipalId([2; 32]),
                device: DeviceId([3; 32]),
                professional: None,
                target: AccessTarget::Blob {
                    blob: BlobId([4; 32]),
                },
                mode: AccessMode::Normal,
            },
            relay,
        )
    }

    #[test]
    fn the_alarm_stays_and_nothing_past_the_problem_is_kept() {
        let relay = SigningSecret::generate(&mut rand::thread_rng());
        let key = PrincipalId(relay.public());
        let space = SpaceId([1; 16]);
        let e1 = entry(&relay, 1, [0; 32]);
        let e2 = entry(&relay, 2, link(&e1));
        let e3 = entry(&relay, 3, link(&e2));
        let mut log = HistoryLog::default();
        assert_eq!(log.extend(key, space, std::slice::from_ref(&e1)), Ok(1));
        assert_eq!(
            log.extend(key, space, std::slice::from_ref(&e3)),
            Err(HistoryError::Gap {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(log.head.seq, 1);
        // What verified before a problem in the same batch is kept.
        let mut prefix = HistoryLog::default();
        let mut bad = e3.clone();
        bad.body.at = UnixMillis(5);
        assert!(prefix
            .extend(key, space, &[e1.clone(), e2.clone(), bad])
            .is_err());
        assert_eq!(prefix.head.seq, 2);
        assert!(log.alarm.is_some());
        // A later good batch does not clear the alarm.
        assert_eq!(log.extend(key, space, &[e2, e3]), Ok(2));
        assert!(matches!(log.alarm, Some(HistoryError::Gap { .. })));
        let other = SigningSecret::generate(&mut rand::thread_rng());
        let mut fresh = HistoryLog::default();
        fresh.extend(key, space, &[e1]).unwrap();
        assert_eq!(
            fresh.extend(
                PrincipalId(other.public()),
                space,
                &[entry(&other, 2, [0; 32])]
            ),
            Err(HistoryError::RelayKeyChanged)
        );
        assert_eq!(decode_head(&encode_head(log.head)), Some(log.head));
        assert_eq!(decode_head("x"), None);
    }
}
