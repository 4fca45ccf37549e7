//! Who may read what: consent, delegation and blocks, minors and their handover,
//! emergency access (F7.5), held items, the access history and the person's choices.

pub mod catalogue;
pub mod choices;
pub mod consent;
pub mod emergency;
pub mod history;
pub mod holds;
pub mod membership;
pub mod minors;

use crate::access::emergency::HubInfo;
use mes_protocol::crypto::keys::DeviceCert;
use mes_protocol::ids::{DeviceId, PrincipalId};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Device certificates the access component remembers: a membership names at most a few
/// hundred devices, and the map is cleared past this many (it is refilled by the next
/// membership refresh).
const MAX_KNOWN_DEVICES: usize = 100_000;

/// The access component's own state: the locks that keep its operations one at a time,
/// what the hub said of itself, and who each device seen in a membership is. Its locks
/// are taken only in `access/`.
#[derive(Default)]
pub struct Access {
    /// One membership refresh at a time: two running at once could store an older
    /// membership over a newer one (a push-driven refresh finishing after a consent's).
    pub(in crate::access) refresh: tokio::sync::Mutex<()>,
    /// One delivery of held items at a time (F1.5), so none is dropped twice.
    pub(in crate::access) held: tokio::sync::Mutex<()>,
    /// Access history logs are read, extended and saved one at a time, so an alarm is
    /// never overwritten by a save that started before it.
    pub(in crate::access) history: tokio::sync::Mutex<()>,
    /// What the hub said of itself (escrow recipients, policy), asked once per run.
    pub(in crate::access) hub_info: Mutex<Option<HubInfo>>,
    device_principals: Mutex<BTreeMap<DeviceId, PrincipalId>>,
}

impl Access {
    /// Who a device is, as a verified certificate in a membership said.
    pub fn principal_of(&self, device: DeviceId) -> Option<PrincipalId> {
        self.device_principals
            .lock()
            .expect("device principals lock")
            .get(&device)
            .copied()
    }

    /// Remembers who the devices of verified certificates are.
    pub(in crate::access) fn learn_devices<'a>(&self, certs: impl Iterator<Item = &'a DeviceCert>) {
        let mut known = self
            .device_principals
            .lock()
            .expect("device principals lock");
        for cert in certs.filter(|c| c.verify().is_ok()) {
            if known.len() >= MAX_KNOWN_DEVICES && !known.contains_key(&cert.body.device) {
                known.clear();
            }
            known.insert(cert.body.device, cert.body.principal);
        }
    }
}
