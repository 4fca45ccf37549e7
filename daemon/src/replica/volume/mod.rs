//! Volume replicas, pure state without IO: what a volume holds and how bundles change it.
//!
//! A bundle's plaintext is a [`Payload`]: changes (automerge bytes, log entries, one inbox
//! drop) or a snapshot of the whole state. Applying is idempotent, because uploads are
//! at-least-once: a bundle re-sent after a crash changes nothing the second time.

pub mod doc;
pub mod inbox;
pub mod log;

use mes_protocol::ids::{Seq, VolumeKind};
use serde::{Deserialize, Serialize};

/// What a bundle carries once opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Incremental changes in the volume kind's format.
    Changes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The whole state in the volume kind's format.
    Snapshot(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Why a payload could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("volume payload: {0}")]
pub struct ApplyError(pub String);

/// A replica of one volume.
pub enum Replica {
    /// Automerge document (notes).
    Doc(doc::DocReplica),
    /// Chained log (journal).
    Log(log::LogReplica),
    /// Inbox of sealed drops.
    Inbox(inbox::InboxReplica),
}

impl Replica {
    /// An empty replica of `kind`; `actor` is this device's automerge actor id.
    pub fn new(kind: VolumeKind, actor: &[u8]) -> Self {
        match kind {
            VolumeKind::Automerge => Replica::Doc(doc::DocReplica::new(actor)),
            VolumeKind::ChainedLog => Replica::Log(log::LogReplica::default()),
            VolumeKind::Inbox => Replica::Inbox(inbox::InboxReplica::default()),
        }
    }

    /// Applies payloads fetched from the relay, in relay order, in one go.
    pub fn apply_remote(&mut self, items: &[(Seq, Payload)]) -> Result<(), ApplyError> {
        match self {
            Replica::Doc(d) => d.apply(items.iter().map(|(_, p)| p)),
            Replica::Log(l) => l.apply(items),
            Replica::Inbox(i) => i.apply(items),
        }
    }

    /// Re-applies a locally authored payload (when reopening the replica).
    pub fn apply_local(&mut self, payload: &Payload) -> Result<(), ApplyError> {
        match self {
            Replica::Doc(d) => d.apply(std::iter::once(payload)),
            Replica::Log(l) => l.apply_local(payload),
            Replica::Inbox(_) => Ok(()),
        }
    }

    /// The whole state, as a snapshot payload body.
    pub fn snapshot(&mut self) -> Vec<u8> {
        match self {
            Replica::Doc(d) => d.save(),
            Replica::Log(l) => l.save(),
            Replica::Inbox(i) => i.save(),
        }
    }

    /// A fingerprint of the visible state: equal on two replicas iff they converged.
    pub fn digest(&mut self) -> String {
        match self {
            Replica::Doc(d) => d.digest(),
            Replica::Log(l) => l.digest(),
            Replica::Inbox(i) => i.digest(),
        }
    }
}

/// Encodes a payload (the plaintext of a bundle).
pub fn encode(p: &Payload) -> Vec<u8> {
    mes_protocol::wire::codec::to_bytes(p)
}

/// Decodes a payload.
pub fn decode(bytes: &[u8]) -> Result<Payload, ApplyError> {
    mes_protocol::wire::codec::from_bytes(bytes).map_err(|e| ApplyError(e.to_string()))
}
