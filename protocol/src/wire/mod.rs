//! Frames between a daemon and the relay, over one bidirectional QUIC stream per connection.
//!
//! Flow: the relay sends [`RelayFrame::Challenge`]; the device answers
//! [`ClientFrame::Hello`] with its certificate and a signature over the challenge and the
//! relay's certificate fingerprint; the relay answers [`RelayFrame::Welcome`] or
//! [`RelayFrame::Fatal`]. Then the device sends [`ClientFrame::Request`]s, each answered by
//! a [`RelayFrame::Response`] with the same id, while the relay also sends
//! [`RelayFrame::Push`]es: volume heads (coalesced per volume, never dropped) and pairing
//! messages. Frames are length-prefixed ([`crate::wire::codec::length_prefixed`]) and at most
//! [`crate::wire::codec::MAX_WIRE_FRAME`] bytes.
//!
//! Over 600 lines: every relay request and reply in one enum, and its tests (400 lines).

pub mod api;
pub mod api_text;
pub mod codec;
pub mod framing;

use serde::{Deserialize, Serialize};

use crate::access::history::HistoryEntry;
use crate::access::membership::{
    DeviceRevocation, Grant, Membership, Signed, SpaceGenesis, VolumeDecl,
};
use crate::crypto::envelope::KeyEnvelope;
use crate::crypto::keys::{DeviceCert, Signature};
use crate::crypto::seal::SealedBundle;
use crate::enrolment::principal::DirectoryEntry;
use crate::ids::{BlobId, DeviceId, PrincipalId, Seq, SpaceId, VolumeId};
use crate::time::UnixMillis;

/// Most access history entries a relay returns to one `GetHistory`.
pub const MAX_HISTORY: usize = 4096;

/// Most bundles a relay returns to one fetch.
pub const MAX_FETCH: u32 = 16384;

/// Most bundle bytes the relay puts in one `Bundles` reply (it always sends at least one
/// bundle), so a reply stays well inside [`crate::wire::codec::MAX_WIRE_FRAME`].
pub const MAX_FETCH_BYTES: usize = 4 * 1024 * 1024;

/// A frame from a device to the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ClientFrame {
    /// Authenticates: the certificate and the signature over the challenge.
    Hello {
        /// The device certificate, signed by its principal.
        #[cfg_attr(test, proptest(strategy = "crate::wire::arb::cert()"))]
        cert: DeviceCert,
        /// Signature by the device key over challenge || relay fingerprint.
        #[cfg_attr(test, proptest(strategy = "crate::wire::arb::signature()"))]
        signature: Signature,
        /// For a device restored from a recovery kit and not yet on its person's list:
        /// the kit's word for it (issue 22, finding 3).
        #[cfg_attr(test, proptest(strategy = "crate::wire::arb::vouch()"))]
        vouch: Option<crate::crypto::recovery::AdmissionVouch>,
    },
    /// Liveness.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// A request, answered by a response with the same id.
    Request {
        /// Request id, chosen by the device.
        id: u64,
        /// What is asked.
        #[cfg_attr(test, proptest(strategy = "crate::wire::arb::request()"))]
        body: Request,
    },
}

/// What a device asks of the relay. [`RequestKind`] names each variant (the relay's logs
/// and metrics, and the authorization matrix, which must list every kind).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(RequestKind),
    derive(
        strum::EnumIter,
        strum::IntoStaticStr,
        strum::EnumString,
        Hash,
        PartialOrd,
        Ord
    )
)]
pub enum Request {
    /// Creates a space (first come; the genesis names the owner).
    RegisterSpace {
        /// Owner-signed genesis.
        genesis: Signed<SpaceGenesis>,
    },
    /// Declares a volume or a new generation of one.
    DeclareVolume {
        /// Admin-signed declaration.
        decl: Signed<VolumeDecl>,
    },
    /// Gives or removes a role.
    PutGrant {
        /// Admin-signed grant.
        grant: Signed<Grant>,
    },
    /// Disowns a device of the caller's principal.
    RevokeDevice {
        /// Principal-signed revocation.
        revocation: Signed<DeviceRevocation>,
    },
    /// The membership of a space and the certificates of its readers' devices.
    GetMembership {
        /// Space.
        space: SpaceId,
    },
    /// Spaces in which the caller's principal has a role.
    ListSpaces,
    /// Appends sealed bundles to a volume's log; answered once durable.
    Append {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
        /// Bundles, in order.
        bundles: Vec<SealedBundle>,
    },
    /// Bundles past a cursor.
    Fetch {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
        /// Return bundles with seq > after.
        after: Seq,
        /// At most this many (capped at [`MAX_FETCH`]).
        max: u32,
    },
    /// Stores a snapshot covering the log up to `upto`, and optionally prunes the log
    /// behind it.
    PutSnapshot {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
        /// Last seq the snapshot includes.
        upto: Seq,
        /// The sealed full document.
        snapshot: SealedBundle,
        /// Drop log entries up to `upto`.
        prune: bool,
    },
    /// Starts a new generation of a volume atomically: declares it, appends the snapshot
    /// of the current state as its first bundle, and drops the old log. Refused with
    /// `Conflict` unless the log's head is still `after` (what the snapshot covers), so no
    /// acknowledged change can be left out.
    NewGeneration {
        /// The owner-signed declaration with the next generation.
        decl: Signed<VolumeDecl>,
        /// The head the snapshot covers.
        after: Seq,
        /// The snapshot, sealed under the new generation's first epoch key.
        snapshot: SealedBundle,
    },
    /// The latest snapshot of a volume.
    GetSnapshot {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
    },
    /// Subscribes to head pushes for volumes of a space.
    Subscribe {
        /// Space.
        space: SpaceId,
        /// Volumes.
        volumes: Vec<VolumeId>,
    },
    /// Stores key envelopes (for members' devices).
    PutEnvelopes {
        /// Envelopes.
        envelopes: Vec<KeyEnvelope>,
    },
    /// The envelopes of a space addressed to the calling device.
    GetEnvelopes {
        /// Space.
        space: SpaceId,
    },
    /// The live (unrevoked) device certificates of a principal.
    ListDevices {
        /// Principal.
        principal: PrincipalId,
    },
    /// Uploads one chunk of a blob; the last chunk commits it if the hash matches, and
    /// binds it to `volume` (issue 22 finding 8: a file is read through the volume that
    /// references it). Needs write access to `volume`.
    PutBlobChunk {
        /// Space the blob belongs to.
        space: SpaceId,
        /// The volume whose entries reference the file.
        volume: VolumeId,
        /// Claimed id (hash of the whole ciphertext).
        blob: BlobId,
        /// Chunk index, from 0.
        index: u32,
        /// Whether this is the last chunk.
        last: bool,
        /// Ciphertext.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Downloads one chunk of a blob bound to `volume`; needs read access to it.
    GetBlobChunk {
        /// Space.
        space: SpaceId,
        /// A volume the blob is bound to.
        volume: VolumeId,
        /// Blob.
        blob: BlobId,
        /// Chunk index.
        index: u32,
    },
    /// Joins a pairing rendezvous.
    PairOpen {
        /// Rendezvous id (from the code's nameplate).
        rendezvous: [u8; 16],
    },
    /// Sets the person's choices (owner only): emergency refusals, blocks, médecin
    /// traitant.
    PutChoices {
        /// Owner-signed choices.
        choices: Signed<crate::access::choices::PersonChoices>,
    },
    /// Hands a minor's space over to the minor (F9.1; the owner only, once).
    HandOver {
        /// Owner-signed handover.
        handover: Signed<crate::access::authority::Handover>,
    },
    /// The hub's escrow recipients and its deployment's médecin traitant policy.
    GetHubInfo,
    /// An enrolment request (F1.3-F1.8); its failures are counted and rate-limited.
    Enrol {
        /// What is asked.
        request: crate::enrolment::EnrolRequest,
    },
    /// The envelopes of a space addressed to its owner's recovery pseudo-device (F12.4);
    /// the owner's principal only.
    GetRecoveryEnvelopes {
        /// Space.
        space: SpaceId,
    },
    /// A listed professional asks for emergency access to a space (F7.5): the relay
    /// re-wraps the escrowed keys of its emergency volume to the caller's devices, unless
    /// the person refused that mode; logged and notified.
    EmergencyAccess {
        /// Space.
        space: SpaceId,
        /// Mode.
        mode: crate::access::escrow::EscrowMode,
    },
    /// The access history of a space past `after` (owner and admins only, F8.1).
    GetHistory {
        /// Space.
        space: SpaceId,
        /// Return entries with seq > after.
        after: u64,
    },
    /// The directory's signed entries of everyone listed under a structure (a care team).
    ListStructure {
        /// Structure name, as the directory lists it.
        structure: String,
    },
    /// The directory's signed entry for a professional, by RPPS number.
    FindProfessional {
        /// RPPS number.
        rpps: String,
    },
    /// Sends a pairing message to the other side of the rendezvous.
    PairSend {
        /// Rendezvous id.
        rendezvous: [u8; 16],
        /// Opaque message.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// The hub's catalogue of approved services (F6), suspended ones included.
    GetCatalogue,
    /// Puts a device on the caller's person's list (pairing, issue 22 finding 3): only a
    /// listed device of the same principal does, and only a listed device is admitted.
    ListDevice {
        /// The new device's certificate, signed by the principal.
        cert: DeviceCert,
    },
    /// Registers the admission key of the caller's person's recovery kit (replacing the
    /// previous one): a device restored from that kit is admitted on its word.
    SetAdmissionKey {
        /// The kit's admission public key.
        key: PrincipalId,
    },
    /// Binds a blob already committed in the space to another of its volumes (an admin
    /// filing an inbox document, showing a hidden one again): readers of that volume may
    /// then fetch it.
    BindBlob {
        /// Space.
        space: SpaceId,
        /// The volume that now references the file.
        volume: VolumeId,
        /// Blob.
        blob: BlobId,
    },
}

/// A frame from the relay to a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RelayFrame {
    /// Sent first: what the device must sign.
    Challenge {
        /// Random challenge.
        nonce: [u8; 32],
        /// Relay time, for display of clock skew.
        now: UnixMillis,
    },
    /// Authentication succeeded.
    Welcome {
        /// The device.
        device: DeviceId,
        /// Its principal.
        principal: PrincipalId,
        /// The relay's own signing key (directory and access history), authentic because
        /// the connection is pinned to the relay's certificate.
        relay_key: PrincipalId,
    },
    /// Liveness answer.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Answer to a request.
    Response {
        /// The request id.
        id: u64,
        /// Result.
        #[cfg_attr(test, proptest(strategy = "crate::wire::arb::reply()"))]
        result: Result<Reply, WireError>,
    },
    /// Unsolicited news.
    Push(Push),
    /// The connection is being closed, and why.
    Fatal(WireError),
}

/// Answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to return.
    Done,
    /// A space's membership and the certificates of its readers' devices.
    Membership {
        /// Current membership.
        membership: Box<Membership>,
        /// Live device certificates of every principal with a role.
        devices: Vec<DeviceCert>,
    },
    /// Spaces with a role for the caller.
    Spaces {
        /// Their genesis records.
        spaces: Vec<Signed<SpaceGenesis>>,
    },
    /// Bundles appended with these seqs, durable.
    Appended {
        /// First seq assigned.
        first: Seq,
        /// Last seq assigned.
        last: Seq,
    },
    /// Bundles past the cursor.
    Bundles {
        /// (seq, bundle), dense and ascending.
        items: Vec<(Seq, SealedBundle)>,
        /// The volume's head.
        head: Seq,
        /// Set when bundles after the cursor were pruned: fetch the snapshot first.
        pruned_upto: Option<Seq>,
    },
    /// A snapshot.
    Snapshot {
        /// Last seq it includes.
        upto: Seq,
        /// The sealed document.
        snapshot: SealedBundle,
    },
    /// No snapshot exists.
    NoSnapshot,
    /// Envelopes for the caller.
    Envelopes {
        /// Envelopes.
        envelopes: Vec<KeyEnvelope>,
    },
    /// Device certificates.
    Devices {
        /// Certificates.
        certs: Vec<DeviceCert>,
    },
    /// What a daemon needs to know of the hub.
    HubInfo {
        /// Escrow recipient of SAMU-Centre 15.
        centre15: crate::crypto::keys::AgeRecipient,
        /// Escrow recipient of break-glass.
        break_glass: crate::crypto::keys::AgeRecipient,
        /// The deployment's médecin traitant policy (a person may choose another).
        attending_policy: crate::access::choices::AttendingPolicy,
    },
    /// Where an enrolment stands after a request.
    Enrolment {
        /// The status.
        status: crate::enrolment::EnrolStatus,
    },
    /// Holds of items for people without a device yet (F1.5).
    Holds {
        /// The holds asked about.
        holds: Vec<crate::enrolment::Hold>,
    },
    /// Access history entries, ascending.
    History {
        /// Relay-signed entries.
        entries: Vec<Signed<HistoryEntry>>,
    },
    /// Directory entries.
    Professionals {
        /// Relay-signed entries.
        entries: Vec<Signed<DirectoryEntry>>,
    },
    /// A directory entry.
    Professional {
        /// Relay-signed entry.
        entry: Signed<DirectoryEntry>,
    },
    /// A blob chunk.
    BlobChunk {
        /// Ciphertext.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Whether it is the last chunk.
        last: bool,
    },
    /// The catalogue (F6), by service id.
    Catalogue {
        /// Hub-signed entries.
        entries: Vec<Signed<crate::enrolment::catalogue::CatalogueEntry>>,
    },
}

/// Unsolicited news from the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Push {
    /// A volume's log reached `head` (coalesced: only the latest head is sent).
    Head {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
        /// New head.
        head: Seq,
    },
    /// A message from the other side of a pairing rendezvous.
    Pair {
        /// Rendezvous.
        rendezvous: [u8; 16],
        /// Opaque message.
        body: Vec<u8>,
    },
    /// The membership of a space changed (grant, revocation, new generation).
    MembershipChanged {
        /// Space.
        space: SpaceId,
    },
    /// The access history of a space the caller owns grew to `head`.
    History {
        /// Space.
        space: SpaceId,
        /// Last entry.
        head: u64,
    },
}

/// An error the relay reports, with a code scripts can match on and a message people read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[error("{code:?}: {message}")]
pub struct WireError {
    /// Kind.
    pub code: ErrorCode,
    /// Explanation naming what is wrong.
    pub message: String,
}

impl WireError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

/// Error kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ErrorCode {
    /// The frame did not decode or was out of place.
    BadFrame,
    /// The frame exceeds the size limit.
    TooLarge,
    /// Authentication failed or has not happened.
    Unauthenticated,
    /// The device was revoked by its principal.
    Revoked,
    /// The caller is not a member of the space or volume.
    NotMember,
    /// The caller's role does not allow this.
    Forbidden,
    /// A signature does not verify or a record is not acceptable.
    BadRecord,
    /// No such space, volume, snapshot or blob.
    NotFound,
    /// Conflicts with existing state (space exists, stale version).
    Conflict,
    /// Too many requests or queue full; retry later.
    Busy,
    /// The relay failed internally; nothing was changed.
    Internal,
}

#[cfg(test)]
pub(crate) mod arb {
    //! proptest strategies for frame fields that derive cannot build.
    use super::*;
    use crate::crypto::keys::{AgeRecipient, DeviceCertBody};
    use crate::crypto::seal::{BundleHeader, CipherSuite};
    use crate::ids::{Epoch, Generation};
    use proptest::prelude::*;

    pub fn vouch() -> impl Strategy<Value = Option<crate::crypto::recovery::AdmissionVouch>> {
        proptest::option::of((any::<[u8; 32]>(), signature()).prop_map(|(k, signature)| {
            crate::crypto::recovery::AdmissionVouch {
                key: PrincipalId(k),
                signature,
            }
        }))
    }

    pub fn signature() -> impl Strategy<Value = Signature> {
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&a);
            s[32..].copy_from_slice(&b);
            Signature(s)
        })
    }

    pub fn cert() -> impl Strategy<Value = DeviceCert> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            ".{0,20}",
            any::<u64>(),
            signature(),
        )
            .prop_map(|(p, d, name, t, signature)| DeviceCert {
                body: DeviceCertBody {
                    principal: PrincipalId(p),
                    device: DeviceId(d),
                    recipient: AgeRecipient(format!("age1{name}")),
                    name,
                    issued_at: UnixMillis(t),
                },
                signature,
            })
    }

    pub fn bundle() -> impl Strategy<Value = SealedBundle> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<[u8; 24]>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            signature(),
            any::<bool>(),
            any::<Option<[u8; 32]>>(),
        )
            .prop_map(|(s, v, e, a, nonce, ciphertext, signature, null, prev)| {
                SealedBundle {
                    header: BundleHeader {
                        suite: if null {
                            CipherSuite::Null
                        } else {
                            CipherSuite::XChaCha20Poly1305
                        },
                        space: SpaceId(s),
                        volume: VolumeId(v),
                        generation: Generation(e / 2),
                        epoch: Epoch(e),
                        author: DeviceId(a),
                        nonce,
                        prev,
                    },
                    ciphertext,
                    signature,
                }
            })
    }

    fn signed<T: std::fmt::Debug + Clone>(
        body: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Signed<T>> {
        (body, any::<[u8; 32]>(), signature()).prop_map(|(body, p, signature)| Signed {
            body,
            signer: PrincipalId(p),
            signature,
        })
    }

    fn kind() -> impl Strategy<Value = crate::ids::VolumeKind> {
        prop_oneof![
            Just(crate::ids::VolumeKind::Automerge),
            Just(crate::ids::VolumeKind::ChainedLog),
            Just(crate::ids::VolumeKind::Inbox)
        ]
    }

    pub fn genesis() -> impl Strategy<Value = Signed<SpaceGenesis>> {
        signed(
            (
                any::<[u8; 16]>(),
                any::<[u8; 32]>(),
                "[a-z0-9]{0,8}",
                any::<u64>(),
            )
                .prop_map(|(s, o, r, t)| SpaceGenesis {
                    space: SpaceId(s),
                    owner: PrincipalId(o),
                    inbox_recipient: AgeRecipient(format!("age1{r}")),
                    created_at: UnixMillis(t),
                }),
        )
    }

    pub fn decl() -> impl Strategy<Value = Signed<VolumeDecl>> {
        signed(
            (
                any::<[u8; 16]>(),
                any::<[u8; 16]>(),
                kind(),
                any::<u32>(),
                ".{0,12}",
            )
                .prop_map(|(s, v, kind, g, label)| VolumeDecl {
                    space: SpaceId(s),
                    volume: VolumeId(v),
                    kind,
                    generation: Generation(g),
                    label,
                }),
        )
    }

    pub fn grant() -> impl Strategy<Value = Signed<Grant>> {
        signed(
            (
                any::<[u8; 16]>(),
                any::<Option<[u8; 16]>>(),
                any::<[u8; 32]>(),
                any::<Option<crate::access::membership::Role>>(),
                any::<u64>(),
            )
                .prop_map(|(s, v, p, role, version)| Grant {
                    space: SpaceId(s),
                    volume: v.map(VolumeId),
                    principal: PrincipalId(p),
                    role,
                    version,
                    issued_at: UnixMillis(version / 2),
                    expires_at: None,
                }),
        )
    }

    pub fn envelope() -> impl Strategy<Value = KeyEnvelope> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u32>(),
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<u8>(), 0..48),
        )
            .prop_map(|(s, v, e, d, wrapped)| KeyEnvelope {
                slot: crate::crypto::envelope::KeySlot {
                    space: SpaceId(s),
                    volume: VolumeId(v),
                    generation: Generation(e / 3),
                    epoch: Epoch(e),
                },
                recipient: DeviceId(d),
                wrapped,
                signer: PrincipalId(d),
                signature: crate::crypto::keys::Signature([e as u8; 64]),
            })
    }

    pub fn membership() -> impl Strategy<Value = Membership> {
        (
            genesis(),
            proptest::collection::vec(decl(), 0..3),
            proptest::collection::vec(grant(), 0..3),
        )
            .prop_map(|(genesis, decls, grants)| Membership {
                genesis,
                volumes: decls.into_iter().map(|d| (d.body.volume, d)).collect(),
                grants: grants
                    .into_iter()
                    .map(|g| ((g.body.principal, g.body.volume), g))
                    .collect(),
                choices: None,
                handover: None,
                removals: Default::default(),
            })
    }

    pub fn request() -> impl Strategy<Value = Request> {
        let ids =
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, v)| (SpaceId(s), VolumeId(v)));
        prop_oneof![
            genesis().prop_map(|genesis| Request::RegisterSpace { genesis }),
            decl().prop_map(|decl| Request::DeclareVolume { decl }),
            (decl(), any::<u64>(), bundle()).prop_map(|(decl, a, snapshot)| {
                Request::NewGeneration {
                    decl,
                    after: Seq(a),
                    snapshot,
                }
            }),
            grant().prop_map(|grant| Request::PutGrant { grant }),
            signed(
                (any::<[u8; 32]>(), any::<u64>()).prop_map(|(d, t)| DeviceRevocation {
                    device: DeviceId(d),
                    revoked_at: UnixMillis(t)
                })
            )
            .prop_map(|revocation| Request::RevokeDevice { revocation }),
            proptest::collection::vec(envelope(), 0..3)
                .prop_map(|envelopes| Request::PutEnvelopes { envelopes }),
            any::<[u8; 16]>().prop_map(|s| Request::GetEnvelopes { space: SpaceId(s) }),
            Just(Request::ListSpaces),
            cert().prop_map(|cert| Request::ListDevice { cert }),
            any::<[u8; 32]>().prop_map(|k| Request::SetAdmissionKey {
                key: PrincipalId(k)
            }),
            any::<[u8; 16]>().prop_map(|s| Request::GetMembership { space: SpaceId(s) }),
            (ids.clone(), proptest::collection::vec(bundle(), 0..4)).prop_map(
                |((space, volume), bundles)| Request::Append {
                    space,
                    volume,
                    bundles
                }
            ),
            (ids.clone(), any::<u64>(), any::<u32>()).prop_map(|((space, volume), a, max)| {
                Request::Fetch {
                    space,
                    volume,
                    after: Seq(a),
                    max,
                }
            }),
            (ids.clone(), any::<u64>(), bundle(), any::<bool>()).prop_map(
                |((space, volume), u, snapshot, prune)| {
                    Request::PutSnapshot {
                        space,
                        volume,
                        upto: Seq(u),
                        snapshot,
                        prune,
                    }
                }
            ),
            ids.clone()
                .prop_map(|(space, volume)| Request::GetSnapshot { space, volume }),
            (
                ids.clone(),
                proptest::collection::vec(any::<[u8; 16]>(), 0..4)
            )
                .prop_map(|((space, _), v)| Request::Subscribe {
                    space,
                    volumes: v.into_iter().map(VolumeId).collect()
                }),
            any::<[u8; 32]>().prop_map(|p| Request::ListDevices {
                principal: PrincipalId(p)
            }),
            (
                ids.clone(),
                any::<[u8; 32]>(),
                any::<u32>(),
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|((space, volume), b, index, last, data)| {
                    Request::PutBlobChunk {
                        space,
                        volume,
                        blob: BlobId(b),
                        index,
                        last,
                        data,
                    }
                }),
            (ids.clone(), any::<[u8; 32]>()).prop_map(|((space, volume), b)| {
                Request::BindBlob {
                    space,
                    volume,
                    blob: BlobId(b),
                }
            }),
            (ids, any::<[u8; 32]>(), any::<u32>()).prop_map(|((space, volume), b, index)| {
                Request::GetBlobChunk {
                    space,
                    volume,
                    blob: BlobId(b),
                    index,
                }
            }),
            any::<[u8; 16]>().prop_map(|rendezvous| Request::PairOpen { rendezvous }),
            (any::<[u8; 16]>(), any::<u64>()).prop_map(|(s, after)| Request::GetHistory {
                space: SpaceId(s),
                after
            }),
            ".{0,12}".prop_map(|rpps| Request::FindProfessional { rpps }),
            Just(Request::GetHubInfo),
            Just(Request::GetCatalogue),
            any::<[u8; 16]>().prop_map(|s| Request::GetRecoveryEnvelopes { space: SpaceId(s) }),
            (
                any::<[u8; 16]>(),
                any::<crate::access::escrow::EscrowMode>()
            )
                .prop_map(|(s, mode)| {
                    Request::EmergencyAccess {
                        space: SpaceId(s),
                        mode,
                    }
                }),
            (
                any::<[u8; 16]>(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(rendezvous, body)| Request::PairSend { rendezvous, body }),
        ]
    }

    pub fn reply() -> impl Strategy<Value = Result<Reply, WireError>> {
        prop_oneof![
            any::<WireError>().prop_map(Err),
            Just(Ok(Reply::Done)),
            Just(Ok(Reply::NoSnapshot)),
            Just(Ok(Reply::History { entries: vec![] })),
            (membership(), proptest::collection::vec(cert(), 0..3)).prop_map(|(m, devices)| Ok(
                Reply::Membership {
                    membership: Box::new(m),
                    devices
                }
            )),
            proptest::collection::vec(genesis(), 0..3)
                .prop_map(|spaces| Ok(Reply::Spaces { spaces })),
            proptest::collection::vec(envelope(), 0..3)
                .prop_map(|envelopes| Ok(Reply::Envelopes { envelopes })),
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Ok(Reply::Appended {
                first: Seq(a),
                last: Seq(b)
            })),
            (
                proptest::collection::vec((any::<u64>(), bundle()), 0..4),
                any::<u64>(),
                any::<Option<u64>>()
            )
                .prop_map(|(items, head, p)| Ok(Reply::Bundles {
                    items: items.into_iter().map(|(s, b)| (Seq(s), b)).collect(),
                    head: Seq(head),
                    pruned_upto: p.map(Seq),
                })),
            (any::<u64>(), bundle()).prop_map(|(u, snapshot)| Ok(Reply::Snapshot {
                upto: Seq(u),
                snapshot
            })),
            proptest::collection::vec(cert(), 0..3).prop_map(|certs| Ok(Reply::Devices { certs })),
            (proptest::collection::vec(any::<u8>(), 0..64), any::<bool>())
                .prop_map(|(data, last)| Ok(Reply::BlobChunk { data, last })),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{decode, encode, MAX_WIRE_FRAME};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn client_frames_round_trip(frame in any::<ClientFrame>()) {
            let bytes = encode(&frame);
            prop_assert_eq!(decode::<ClientFrame>(&bytes, MAX_WIRE_FRAME).unwrap(), frame);
        }

        #[test]
        fn relay_frames_round_trip(frame in any::<RelayFrame>()) {
            let bytes = encode(&frame);
            prop_assert_eq!(decode::<RelayFrame>(&bytes, MAX_WIRE_FRAME).unwrap(), frame);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<ClientFrame>(&bytes, MAX_WIRE_FRAME);
            let _ = decode::<RelayFrame>(&bytes, MAX_WIRE_FRAME);
        }
    }
}
