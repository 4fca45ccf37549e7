//! Chained logs: append-only entries in the relay's order, hash-chained as they are
//! applied, so two replicas that agree on the chain head hold the same log.
//!
//! Entries carry an id (author device, author counter) so a re-sent bundle is applied
//! once. Local entries not yet seen back from the relay are shown as pending.

use mes_protocol::ids::{DeviceId, Seq};
use serde::{Deserialize, Serialize};

use super::{ApplyError, Payload};

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Author device.
    pub author: DeviceId,
    /// Author's counter.
    pub counter: u64,
    /// Author's clock (milliseconds since the epoch).
    pub at: u64,
    /// Text.
    pub text: String,
}

/// Saved state: applied entries and the chain head.
#[derive(Default, Serialize, Deserialize)]
pub struct LogReplica {
    entries: Vec<(Seq, LogEntry)>,
    chain: [u8; 32],
    #[serde(skip)]
    pending: Vec<LogEntry>,
}

impl LogReplica {
    fn seen(&self, e: &LogEntry) -> bool {
        self.entries
            .iter()
            .rev()
            .any(|(_, x)| x.author == e.author && x.counter == e.counter)
    }

    /// Applies fetched payloads in relay order.
    pub fn apply(&mut self, items: &[(Seq, Payload)]) -> Result<(), ApplyError> {
        for (seq, p) in items {
            match p {
                Payload::Changes(b) => {
                    let batch: Vec<LogEntry> = decode(b)?;
                    for e in batch {
                        if self.seen(&e) {
                            continue;
                        }
                        let bytes = mes_protocol::wire::codec::to_bytes(&e);
                        self.chain = *blake3::Hasher::new()
                            .update(&self.chain)
                            .update(&bytes)
                            .finalize()
                            .as_bytes();
                        self.pending
                            .retain(|x| !(x.author == e.author && x.counter == e.counter));
                        self.entries.push((*seq, e));
                    }
                }
                Payload::Snapshot(b) => {
                    let s: LogReplica = decode(b)?;
                    let pending = std::mem::take(&mut self.pending);
                    *self = s;
                    self.pending = pending.into_iter().filter(|e| !self.seen(e)).collect();
                }
            }
        }
        Ok(())
    }

    /// Records a locally authored payload as pending until it comes back from the relay.
    pub fn apply_local(&mut self, p: &Payload) -> Result<(), ApplyError> {
        if let Payload::Changes(b) = p {
            for e in decode::<Vec<LogEntry>>(b)? {
                if !self.seen(&e) && !self.pending.contains(&e) {
                    self.pending.push(e);
                }
            }
        }
        Ok(())
    }

    /// Authors an entry.
    pub fn append(&mut self, e: LogEntry) -> Payload {
        let p = Payload::Changes(mes_protocol::wire::codec::to_bytes(&vec![e.clone()]));
        self.pending.push(e);
        p
    }

    /// Applied entries (with relay seq), then pending ones.
    pub fn entries(&self) -> (Vec<&(Seq, LogEntry)>, Vec<&LogEntry>) {
        (self.entries.iter().collect(), self.pending.iter().collect())
    }

    /// The state as a snapshot body.
    pub fn save(&self) -> Vec<u8> {
        mes_protocol::wire::codec::to_bytes(self)
    }

    /// The chain head.
    pub fn digest(&self) -> String {
        hex::encode(self.chain)
    }
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApplyError> {
    mes_protocol::wire::codec::from_bytes(b).map_err(|e| ApplyError(format!("log entries: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> LogEntry {
        LogEntry {
            author: DeviceId([n as u8; 32]),
            counter: n,
            at: n,
            text: format!("entry {n}"),
        }
    }

    #[test]
    fn duplicates_apply_once_and_chains_agree() {
        let mut a = LogReplica::default();
        let mut b = LogReplica::default();
        let p1 = a.append(entry(1));
        let p2 = b.append(entry(2));
        let order = vec![(Seq(1), p1.clone()), (Seq(2), p2), (Seq(3), p1)];
        a.apply(&order).unwrap();
        b.apply(&order[..2]).unwrap();
        b.apply(&order[2..]).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.entries().0.len(), 2);
        assert!(a.entries().1.is_empty());
        let mut c = LogReplica::default();
        c.apply(&[(Seq(2), Payload::Snapshot(a.save()))]).unwrap();
        assert_eq!(c.digest(), a.digest());
    }
}
