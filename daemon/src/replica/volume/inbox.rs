//! Inboxes: append-only drops sealed to the space's inbox recipient, so principals with
//! only the append role (a laboratory, a hospital) can deposit without reading anything.

use mes_protocol::ids::{DeviceId, Seq};
use serde::{Deserialize, Serialize};

use super::{ApplyError, Payload};

/// One drop once opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drop {
    /// Relay sequence.
    pub seq: Seq,
    /// Depositing device.
    pub from: DeviceId,
    /// Content.
    pub text: String,
}

/// Opened drops, in relay order.
#[derive(Default, Serialize, Deserialize)]
pub struct InboxReplica {
    drops: Vec<Drop>,
}

impl InboxReplica {
    /// Applies opened drops (a `Changes` payload holds an encoded [`Drop`]).
    pub fn apply(&mut self, items: &[(Seq, Payload)]) -> Result<(), ApplyError> {
        for (seq, p) in items {
            match p {
                Payload::Changes(b) => {
                    let d: Drop = mes_protocol::wire::codec::from_bytes(b)
                        .map_err(|e| ApplyError(format!("inbox drop: {e}")))?;
                    if !self.drops.iter().any(|x| x.seq == *seq) {
                        self.drops.push(Drop { seq: *seq, ..d });
                    }
                }
                Payload::Snapshot(b) => {
                    *self = mes_protocol::wire::codec::from_bytes(b)
                        .map_err(|e| ApplyError(format!("inbox snapshot: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Drops in order.
    pub fn drops(&self) -> &[Drop] {
        &self.drops
    }

    /// The state as a snapshot body.
    pub fn save(&self) -> Vec<u8> {
        mes_protocol::wire::codec::to_bytes(self)
    }

    /// Fingerprint.
    pub fn digest(&self) -> String {
        hex::encode(blake3::hash(&self.save()).as_bytes())
    }
}
