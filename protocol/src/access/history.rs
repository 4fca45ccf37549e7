//! The access history (F8.1): entries the relay appends for every access by anyone but
//! the space's owner, signed with the relay's key and hash-chained, and the pure checks
//! the owner's devices run on them.
//!
//! Entry `n` (from 1) names the link of entry `n - 1` (`[0; 32]` for the first); a link is
//! the BLAKE3 hash of the signed entry's encoding. [`verify_next`] extends a verified head
//! with newly fetched entries and names the first problem: a bad signature (an entry
//! altered after signing), a gap, a reordering or repetition, a broken link (an entry
//! replaced and re-signed). [`compare_heads`] tells two devices' views apart: the relay
//! showed them different histories.

use serde::{Deserialize, Serialize};

use crate::crypto::signed::{Signed, SignedBody};
use crate::enrolment::principal::Professional;
use crate::ids::{BlobId, DeviceId, PrincipalId, SpaceId, VolumeId};
use crate::time::UnixMillis;
use crate::wire::codec;

/// How an access was made (F8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    /// A professional with the person's consent.
    Normal,
    /// A member of a care team under the team's consent (F7.4).
    CareTeam,
    /// SAMU-Centre 15 (F7.5).
    Centre15,
    /// Break-glass (F7.5).
    BreakGlass,
    /// A relative, trusted person or guardian with a delegation (F9).
    Delegate,
    /// An approved service (F6).
    Service,
}

impl AccessMode {
    /// The wire and screen name.
    pub fn name(self) -> &'static str {
        match self {
            AccessMode::Normal => "normal",
            AccessMode::CareTeam => "care-team",
            AccessMode::Centre15 => "centre-15",
            AccessMode::BreakGlass => "break-glass",
            AccessMode::Delegate => "delegate",
            AccessMode::Service => "service",
        }
    }
}

/// What was accessed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessTarget {
    /// A volume's log or snapshot (a record section or a document group).
    Volume {
        /// The volume.
        volume: VolumeId,
        /// Its structural label (`documents/care`, `emergency`).
        label: String,
    },
    /// A document file.
    Blob {
        /// The blob.
        blob: BlobId,
    },
}

/// One entry of a space's access history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The space.
    pub space: SpaceId,
    /// Position, from 1, dense.
    pub seq: u64,
    /// Link of the previous entry (`[0; 32]` for the first).
    pub prev: [u8; 32],
    /// When the relay served it.
    pub at: UnixMillis,
    /// Who.
    pub actor: PrincipalId,
    /// From which device.
    pub device: DeviceId,
    /// The directory's word on who the actor is, when listed.
    pub professional: Option<Professional>,
    /// What.
    pub target: AccessTarget,
    /// How.
    pub mode: AccessMode,
}

impl SignedBody for HistoryEntry {
    const CONTEXT: &'static [u8] = b"mes/access-history/v1";
}

/// The link of a signed entry: what the next entry names.
pub fn link(entry: &Signed<HistoryEntry>) -> [u8; 32] {
    *blake3::hash(&codec::to_bytes(entry)).as_bytes()
}

/// The last verified entry of a history (`seq` 0 and zero link when empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryHead {
    /// Last seq.
    pub seq: u64,
    /// Its link.
    pub link: [u8; 32],
}

/// What is wrong with a history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HistoryError {
    /// Not signed by the relay, or altered after signing.
    #[error("access history entry {seq} is not signed by the relay or was altered after signing")]
    Altered {
        /// The entry.
        seq: u64,
    },
    /// Entries missing.
    #[error("access history has a gap: expected entry {expected}, got {got}")]
    Gap {
        /// Expected seq.
        expected: u64,
        /// Received seq.
        got: u64,
    },
    /// An entry out of order or repeated.
    #[error("access history is reordered: expected entry {expected}, got {got}")]
    Reordered {
        /// Expected seq.
        expected: u64,
        /// Received seq.
        got: u64,
    },
    /// An entry does not name its predecessor: something before it was replaced.
    #[error("access history entry {seq} does not follow entry {}: an entry was replaced", seq - 1)]
    BrokenLink {
        /// The entry.
        seq: u64,
    },
    /// An entry of another space.
    #[error("access history entry {seq} belongs to another space")]
    WrongSpace {
        /// The entry.
        seq: u64,
    },
    /// The relay signs with another key than the one first seen for this space.
    #[error("the relay now signs the access history with another key than before")]
    RelayKeyChanged,
    /// Two devices of the owner were shown different histories.
    #[error("the relay showed this person's devices different access histories (they differ at entry {seq})")]
    Forked {
        /// First entry where they differ.
        seq: u64,
    },
}

/// Extends a verified `head` with `entries` (ascending), checking each against the relay's
/// key; returns the new head, or the first problem (nothing is accepted past it).
pub fn verify_next(
    head: HistoryHead,
    relay: &PrincipalId,
    space: SpaceId,
    entries: &[Signed<HistoryEntry>],
) -> Result<HistoryHead, HistoryError> {
    match verify_prefix(head, relay, space, entries) {
        (head, _, None) => Ok(head),
        (_, _, Some(e)) => Err(e),
    }
}

/// Like [`verify_next`], but also says how far it got: the head after the entries that
/// verified, how many they are, and the problem that stopped it, if any.
pub fn verify_prefix(
    head: HistoryHead,
    relay: &PrincipalId,
    space: SpaceId,
    entries: &[Signed<HistoryEntry>],
) -> (HistoryHead, usize, Option<HistoryError>) {
    let mut head = head;
    for (i, e) in entries.iter().enumerate() {
        let seq = e.body.seq;
        let expected = head.seq + 1;
        let problem = if e.signer != *relay || e.verify().is_err() {
            Some(HistoryError::Altered { seq })
        } else if seq > expected {
            // The missing entry further on is a reordering; nowhere, a gap.
            let later = entries[i..].iter().any(|l| l.body.seq == expected);
            Some(if later {
                HistoryError::Reordered { expected, got: seq }
            } else {
                HistoryError::Gap { expected, got: seq }
            })
        } else if seq < expected {
            Some(HistoryError::Reordered { expected, got: seq })
        } else if e.body.space != space {
            Some(HistoryError::WrongSpace { seq })
        } else if e.body.prev != head.link {
            Some(HistoryError::BrokenLink { seq })
        } else {
            None
        };
        if let Some(p) = problem {
            return (head, i, Some(p));
        }
        head = HistoryHead { seq, link: link(e) };
    }
    (head, entries.len(), None)
}

/// Compares another device's head with this device's links (`links[i]` is entry `i + 1`'s):
/// a mismatch at a seq both hold is a fork. A head past ours says nothing yet (fetch more).
pub fn compare_heads(links: &[[u8; 32]], other: HistoryHead) -> Result<(), HistoryError> {
    if other.seq == 0 {
        return Ok(());
    }
    match links.get(other.seq as usize - 1) {
        Some(l) if *l != other.link => Err(HistoryError::Forked { seq: other.seq }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::SigningSecret;

    fn chain(relay: &SigningSecret, n: u64) -> Vec<Signed<HistoryEntry>> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let e = Signed::sign(
                    HistoryEntry {
                        space: SpaceId([1; 16]),
                        seq,
                        prev,
                        at: UnixMillis(seq),
                        actor: PrincipalId([2; 32]),
                        device: DeviceId([3; 32]),
                        professional: None,
                        target: AccessTarget::Blob {
                            blob: BlobId([4; 32]),
                        },
                        mode: AccessMode::Normal,
                    },
                    relay,
                );
                prev = link(&e);
                e
            })
            .collect()
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let relay = SigningSecret::generate(&mut rand::thread_rng());
        let key = PrincipalId(relay.public());
        let space = SpaceId([1; 16]);
        let c = chain(&relay, 5);
        let head = verify_next(HistoryHead::default(), &key, space, &c).unwrap();
        assert_eq!(head.seq, 5);
        // Verified in two pieces, the same head.
        let h2 = verify_next(HistoryHead::default(), &key, space, &c[..2]).unwrap();
        assert_eq!(verify_next(h2, &key, space, &c[2..]).unwrap(), head);

        let mut altered = c.clone();
        altered[2].body.mode = AccessMode::BreakGlass;
        assert_eq!(
            verify_next(HistoryHead::default(), &key, space, &altered),
            Err(HistoryError::Altered { seq: 3 })
        );
        let gap: Vec<_> = c.iter().filter(|e| e.body.seq != 3).cloned().collect();
        assert_eq!(
            verify_next(HistoryHead::default(), &key, space, &gap),
            Err(HistoryError::Gap {
                expected: 3,
                got: 4
            })
        );
        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert_eq!(
            verify_next(HistoryHead::default(), &key, space, &reordered),
            Err(HistoryError::Reordered {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            verify_next(h2, &key, space, &c[1..]),
            Err(HistoryError::Reordered {
                expected: 3,
                got: 2
            })
        );
        // Replaced and re-signed by the relay: the next link breaks.
        let mut replaced = c.clone();
        replaced[1].body.at = UnixMillis(99);
        replaced[1] = Signed::sign(replaced[1].body.clone(), &relay);
        assert_eq!(
            verify_next(HistoryHead::default(), &key, space, &replaced),
            Err(HistoryError::BrokenLink { seq: 3 })
        );
        // Someone else's key.
        let other = SigningSecret::generate(&mut rand::thread_rng());
        assert_eq!(
            verify_next(
                HistoryHead::default(),
                &PrincipalId(other.public()),
                space,
                &c
            ),
            Err(HistoryError::Altered { seq: 1 })
        );
        assert_eq!(
            verify_next(HistoryHead::default(), &key, SpaceId([9; 16]), &c),
            Err(HistoryError::WrongSpace { seq: 1 })
        );
    }

    #[test]
    fn heads_of_a_forked_history_disagree() {
        let relay = SigningSecret::generate(&mut rand::thread_rng());
        let honest: Vec<[u8; 32]> = chain(&relay, 4).iter().map(link).collect();
        let fork = chain(&relay, 4);
        let mut forked = fork.clone();
        forked[3].body.at = UnixMillis(1000);
        let forked = Signed::sign(forked[3].body.clone(), &relay);
        assert_eq!(
            compare_heads(
                &honest,
                HistoryHead {
                    seq: 4,
                    link: link(&forked)
                }
            ),
            Err(HistoryError::Forked { seq: 4 })
        );
        assert!(compare_heads(
            &honest,
            HistoryHead {
                seq: 4,
                link: honest[3]
            }
        )
        .is_ok());
        assert!(compare_heads(
            &honest,
            HistoryHead {
                seq: 9,
                link: [7; 32]
            }
        )
        .is_ok());
        assert!(compare_heads(&honest, HistoryHead::default()).is_ok());
    }
}
