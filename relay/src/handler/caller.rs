//! Who sends a request: the authenticated caller of one connection, how its device was
//! admitted, the first device of a person waiting to be listed, the files it read lately,
//! and which requests list a first device.

use crate::push::PushQueue;
use mes_protocol::crypto::keys::DeviceCert;
use mes_protocol::ids::{DeviceId, PrincipalId};
use std::sync::Arc;

/// An authenticated connection's identity.
pub struct Caller {
    /// The device.
    pub device: DeviceId,
    /// Its principal.
    pub principal: PrincipalId,
    /// Where pushes for it go.
    pub outbox: Arc<PushQueue>,
    /// The address the connection came from (none in the simulator).
    pub source: Option<std::net::IpAddr>,
    /// Files this connection read lately, so each read is logged once (finding 8).
    pub blob_reads: BlobReads,
    /// The certificate of a principal's first device, admitted but not yet listed
    /// (finding 6): listed at its first request that succeeds and is not
    /// `stateless`, so a fresh identity that only knocks leaves nothing durable.
    pub first_device: FirstDevice,
}

/// A first device waiting to be listed ([`Caller::first_device`]).
#[derive(Default)]
pub struct FirstDevice(std::sync::Mutex<Option<DeviceCert>>);

impl FirstDevice {
    /// A first device admitted with `cert`.
    pub fn new(cert: DeviceCert) -> Self {
        FirstDevice(std::sync::Mutex::new(Some(cert)))
    }

    pub(super) fn pending(&self) -> Option<DeviceCert> {
        self.0.lock().expect("first device lock").clone()
    }

    /// Whether the device is admitted but not listed yet.
    pub fn is_pending(&self) -> bool {
        self.0.lock().expect("first device lock").is_some()
    }

    pub(super) fn listed(&self) {
        *self.0.lock().expect("first device lock") = None;
    }
}

/// How a device was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It is on its person's list.
    Listed,
    /// Its principal has no listed device: it will start the list at its first request
    /// that needs one ([`Caller::first_device`]).
    FirstDevice,
}

/// Requests whose handler needs the caller's device listed already (it wraps keys to the
/// caller's devices, or extends or trims their list): a first device is listed before
/// them; after any other request only once it succeeded.
pub(super) fn lists_first(kind: mes_protocol::wire::RequestKind) -> bool {
    use mes_protocol::wire::RequestKind as K;
    matches!(
        kind,
        K::EmergencyAccess | K::Enrol | K::ListDevice | K::RevokeDevice
    )
}

/// Requests that touch nothing of the caller's and leave nothing durable: a first device
/// asking only these is never listed (finding 6). `ListSpaces` lists it when it finds a
/// space.
pub(super) fn stateless(kind: mes_protocol::wire::RequestKind) -> bool {
    use mes_protocol::wire::RequestKind as K;
    matches!(
        kind,
        K::GetHubInfo
            | K::FindProfessional
            | K::PairOpen
            | K::PairSend
            | K::GetCatalogue
            | K::ListStructure
            | K::ListSpaces
    )
}

/// The files a connection read lately: a read is logged at its first chunk, or at the
/// first chunk a connection fetches of a file it was not logged for within
/// [`BlobReads::FOR`]. Bounded to [`BlobReads::MAX`] files (the oldest forgotten).
#[derive(Default)]
pub struct BlobReads(
    std::sync::Mutex<std::collections::VecDeque<(mes_protocol::ids::BlobId, std::time::Instant)>>,
);

impl BlobReads {
    /// Files remembered per connection.
    pub const MAX: usize = 256;
    /// How long a logged read covers further chunks of the same file.
    pub const FOR: std::time::Duration = std::time::Duration::from_secs(600);

    /// Whether fetching chunk `index` of `blob` starts a read to log (and remembers it).
    pub fn starts_read(&self, blob: mes_protocol::ids::BlobId, index: u32) -> bool {
        let now = std::time::Instant::now();
        let mut reads = self.0.lock().expect("blob reads lock");
        reads.retain(|(_, at)| now.duration_since(*at) < Self::FOR);
        let known = reads.iter().any(|(b, _)| *b == blob);
        if index != 0 && known {
            return false;
        }
        reads.retain(|(b, _)| *b != blob);
        if reads.len() >= Self::MAX {
            reads.pop_front();
        }
        reads.push_back((blob, now));
        true
    }
}

impl Caller {
    /// Who a failed enrolment request is counted against (issue 22, finding 4).
    pub(super) fn guessers(&self) -> Vec<crate::enrolment::service::Guesser> {
        use crate::enrolment::service::Guesser;
        let mut g = vec![Guesser::Device(self.device)];
        g.extend(self.source.map(Guesser::Source));
        g
    }
}
