//! What a device pinned of its relay beyond the configured fingerprint (issue 27, item
//! 7): the relay's key, learned over the first pinned connection, and the certificate a
//! handover last led to. Kept in the replica's store, by configured fingerprint, so a
//! device restarted with the old fingerprint in its configuration still follows.

use crate::replica::store::{SealedStore, StoreError};
use crate::sync::relay_client::{RelayClient, RelayPin};

const NAMESPACE: &str = "relay-pin";

/// The pin kept for the configured `fingerprint`.
pub fn load(store: &SealedStore, fingerprint: &str) -> Option<RelayPin> {
    store.get_decoded(NAMESPACE, fingerprint.to_ascii_lowercase().as_bytes())
}

/// Keeps what `client` verified, if it differs from `was`; durable on return.
pub async fn remember(
    store: &SealedStore,
    fingerprint: &str,
    was: Option<&RelayPin>,
    client: &RelayClient,
) -> Result<(), StoreError> {
    let now = RelayPin {
        relay_key: client.relay_key,
        current: client.fingerprint.clone(),
    };
    if was == Some(&now) {
        return Ok(());
    }
    if was.is_some_and(|w| w.current != now.current) {
        tracing::info!(
            from = %was.map(|w| w.current.as_str()).unwrap_or_default(),
            to = %now.current,
            "the relay handed its certificate over; the new one is pinned"
        );
    }
    let mut batch = store.batch();
    batch.put(
        NAMESPACE,
        fingerprint.to_ascii_lowercase().as_bytes(),
        &mes_protocol::wire::codec::to_bytes(&now),
    );
    store.apply(batch)?;
    store.flush().await
}
