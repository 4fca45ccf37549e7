//! The sync component's link to the relay: the live connection (the daemon is online
//! exactly while it has one), what the relay is (its label and pinned target), and the
//! signals that wake the sync engine or restart its session. Its locks are taken only here.

use crate::sync::relay_client::{RelayClient, RelayTarget};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The link to the relay.
pub struct Link {
    client: Mutex<Option<Arc<RelayClient>>>,
    label: String,
    target: Mutex<Option<RelayTarget>>,
    /// Wakes the sync engine (a local change waits to be uploaded).
    pub wake: Notify,
    /// Restarts the sync session (the identity changed through pairing or recovery).
    pub reconnect: Notify,
}

impl Link {
    /// A link not yet connected to the relay described by `label`.
    pub fn new(label: String) -> Self {
        Self {
            client: Mutex::new(None),
            label,
            target: Mutex::new(None),
            wake: Notify::new(),
            reconnect: Notify::new(),
        }
    }

    /// The live connection, if any.
    pub fn client(&self) -> Option<Arc<RelayClient>> {
        self.client.lock().expect("relay link lock").clone()
    }

    /// Whether the daemon is connected to the relay.
    pub fn online(&self) -> bool {
        self.client.lock().expect("relay link lock").is_some()
    }

    /// Replaces the live connection; true when that changed whether the daemon is online.
    pub(in crate::sync) fn replace(&self, client: Option<Arc<RelayClient>>) -> bool {
        let mut held = self.client.lock().expect("relay link lock");
        let changed = held.is_some() != client.is_some();
        *held = client;
        changed
    }

    /// How the status names the relay.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The relay this daemon syncs with (what a recovery kit names).
    pub fn target(&self) -> Option<RelayTarget> {
        self.target.lock().expect("relay target lock").clone()
    }

    /// Records the relay this daemon syncs with.
    pub fn set_target(&self, target: Option<RelayTarget>) {
        *self.target.lock().expect("relay target lock") = target;
    }
}
