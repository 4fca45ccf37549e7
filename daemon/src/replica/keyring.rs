//! Epoch keys this device holds, by (volume, generation, epoch); persisted sealed.
//! Bundles are written under the newest epoch of the volume's current generation.

use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{Epoch, Generation, VolumeId};
use std::collections::BTreeMap;

use crate::replica::store::{Batch, SealedStore, StoreError};

const NS: &str = "keys";

/// The keys.
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<(VolumeId, Generation, Epoch), (KeySlot, SymmetricKey)>,
}

impl Keyring {
    /// Loads every stored key.
    pub fn load(store: &SealedStore) -> Result<Self, StoreError> {
        let mut k = Keyring::default();
        for (_, v) in store.scan(NS)? {
            let (slot, bytes): (KeySlot, [u8; 32]) = mes_protocol::wire::codec::from_bytes(&v)
                .map_err(|e| StoreError::corrupt(format!("stored key: {e}")))?;
            k.keys.insert(
                (slot.volume, slot.generation, slot.epoch),
                (slot, SymmetricKey::from_bytes(bytes)),
            );
        }
        Ok(k)
    }

    /// Adds a key (persisted in `batch`); false if it was already known.
    pub fn insert(&mut self, slot: KeySlot, key: SymmetricKey, batch: &mut Batch<'_>) -> bool {
        let id = (slot.volume, slot.generation, slot.epoch);
        if self.keys.contains_key(&id) {
            return false;
        }
        batch.put(
            NS,
            &mes_protocol::wire::codec::to_bytes(&slot),
            &mes_protocol::wire::codec::to_bytes(&(slot, *key.as_bytes())),
        );
        self.keys.insert(id, (slot, key));
        true
    }

    /// The key of a slot.
    pub fn get(
        &self,
        volume: VolumeId,
        generation: Generation,
        epoch: Epoch,
    ) -> Option<&SymmetricKey> {
        self.keys.get(&(volume, generation, epoch)).map(|(_, k)| k)
    }

    /// The newest epoch of a generation, with its key.
    pub fn current(
        &self,
        volume: VolumeId,
        generation: Generation,
    ) -> Option<(Epoch, &SymmetricKey)> {
        self.keys
            .range((volume, generation, Epoch(0))..=(volume, generation, Epoch(u32::MAX)))
            .next_back()
            .map(|((_, _, e), (_, k))| (*e, k))
    }

    /// Every slot of a volume's generation (to wrap for a new member device).
    pub fn slots(&self, volume: VolumeId, generation: Generation) -> Vec<(KeySlot, &SymmetricKey)> {
        self.keys
            .range((volume, generation, Epoch(0))..=(volume, generation, Epoch(u32::MAX)))
            .map(|(_, (s, k))| (*s, k))
            .collect()
    }
}
