//! A person's devices: this device's identity and its unlocking, pairing a new one,
//! recovery kits, and enrolling through the hub (F1).

pub mod enrolment;
pub mod identity;
pub mod list;
pub mod pairing;
pub mod recovery;
pub mod unlock;

use crate::devices::identity::Identity;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// Messages a pairing channel keeps before the pairing reads them; more are dropped (a
/// pairing exchanges four, and a relay that floods it fills no memory).
const PAIRING_QUEUE: usize = 16;

/// The devices component: this device's identity (a pairing or a recovery replaces it
/// once) and the pairings under way. Its locks are taken only here.
pub struct Devices {
    identity: RwLock<Arc<Identity>>,
    pairings: Mutex<HashMap<[u8; 16], mpsc::Sender<Vec<u8>>>>,
}

impl Devices {
    pub(crate) fn new(identity: Identity) -> Self {
        Self {
            identity: RwLock::new(Arc::new(identity)),
            pairings: Mutex::new(HashMap::new()),
        }
    }

    /// This device's identity.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.read().expect("identity lock").clone()
    }

    /// Makes `identity` this device's (already saved in the store by the caller).
    pub(in crate::devices) fn replace_identity(&self, identity: Identity) {
        *self.identity.write().expect("identity lock") = Arc::new(identity);
    }

    /// Opens the channel of a pairing at `rendezvous`.
    pub(in crate::devices) fn open_pairing(&self, rendezvous: [u8; 16]) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(PAIRING_QUEUE);
        self.pairings
            .lock()
            .expect("pairings lock")
            .insert(rendezvous, tx);
        rx
    }

    /// Closes the channel of a pairing.
    pub(in crate::devices) fn close_pairing(&self, rendezvous: &[u8; 16]) {
        self.pairings
            .lock()
            .expect("pairings lock")
            .remove(rendezvous);
    }

    /// Hands a message the relay pushed to the pairing waiting at `rendezvous`, if any.
    pub(crate) fn deliver_pairing(&self, rendezvous: &[u8; 16], body: Vec<u8>) {
        if let Some(tx) = self.pairings.lock().expect("pairings lock").get(rendezvous) {
            let _ = tx.try_send(body);
        }
    }
}
