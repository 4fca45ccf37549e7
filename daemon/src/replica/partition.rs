//! Volumes any of the person's devices may create later (measurement partitions
//! `measurements/<kind>/<year>`): docs/health-record.md "Volumes created by any device".
//!
//! Two offline devices creating the same partition must end with one volume, not two
//! with different keys. So a partition's id and its epoch-0 key are derived, not drawn:
//! the id from (space, label, the notes volume's current key slot), the key from that
//! key and the label. Both devices hold the same notes key, sign the same declaration
//! (Ed25519 is deterministic) and the relay takes the second as a repeat. After a
//! revocation rotates the notes key, a new partition of the same label gets a new id the
//! revoked device cannot derive; readers take the union of every volume of a label.

use mes_protocol::access::membership::{Signed, VolumeDecl};
use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{Epoch, Generation, SpaceId, VolumeId, VolumeKind};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};

use crate::daemon::{Daemon, NOTES};
use crate::replica::spaces::{LoadedVolume, VolumeMeta};

fn derive(
    space: SpaceId,
    root: (VolumeId, Generation, Epoch, &SymmetricKey),
    label: &str,
) -> (VolumeId, SymmetricKey) {
    let (notes, generation, epoch, key) = root;
    let mut h = blake3::Hasher::new_derive_key("mes partition volume id v1");
    h.update(&space.0);
    h.update(&notes.0);
    h.update(&generation.0.to_le_bytes());
    h.update(&epoch.0.to_le_bytes());
    h.update(label.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    let mut k = blake3::Hasher::new_keyed(key.as_bytes());
    k.update(b"mes partition key v1\0");
    k.update(label.as_bytes());
    (
        VolumeId(id),
        SymmetricKey::from_bytes(*k.finalize().as_bytes()),
    )
}

/// Declares a new document volume here with its epoch-0 key: signed by this principal,
/// created locally and queued for the relay. Answers the declaration.
pub(crate) fn declare_new(
    st: &mut crate::daemon::State,
    identity: &crate::devices::identity::Identity,
    (space, volume, label): (SpaceId, VolumeId, &str),
    key: SymmetricKey,
    batch: &mut crate::replica::store::Batch<'_>,
) -> Signed<VolumeDecl> {
    let slot = KeySlot {
        space,
        volume,
        generation: Generation(0),
        epoch: Epoch(0),
    };
    st.keys.insert(slot, key, batch);
    let decl = Signed::sign(
        VolumeDecl {
            space,
            volume,
            kind: VolumeKind::Automerge,
            generation: Generation(0),
            label: label.into(),
        },
        &identity.principal.signing,
    );
    let d = &decl.body;
    let meta = VolumeMeta::new(d.space, d.volume, d.kind, &d.label);
    let mut v = LoadedVolume::create(meta, &identity.device.device_id().0);
    v.save_meta(batch);
    st.volumes.insert(d.volume, v);
    let s = st.spaces.get_mut(&d.space).expect("space exists");
    s.record.decls.push(decl.clone());
    s.record.pending_decls.push(decl.clone());
    s.save(batch);
    decl
}

impl Daemon {
    /// The partition volume `label` of `space` under the current root key, declared here
    /// (durably, and queued for the relay) if it does not exist yet.
    pub fn ensure_partition(&self, space: SpaceId, label: &str) -> Result<VolumeId, ApiError> {
        let mut st = self.state();
        let notes = Self::volume_of(&st, space, NOTES)?;
        let generation = st.volumes[&notes].meta.generation;
        let (epoch, root) = st.keys.current(notes, generation).ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Forbidden,
                "this device holds no key of the space yet (not synced?)",
            )
        })?;
        let (volume, key) = derive(space, (notes, generation, epoch, root), label);
        let mut batch = self.store.batch();
        if st.volumes.contains_key(&volume) {
            let slot = KeySlot {
                space,
                volume,
                generation: Generation(0),
                epoch: Epoch(0),
            };
            st.keys.insert(slot, key, &mut batch);
        } else {
            declare_new(
                &mut st,
                &self.identity(),
                (space, volume, label),
                key,
                &mut batch,
            );
        }
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        Ok(volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_root_and_label_give_the_same_volume_and_key_and_a_rotation_does_not() {
        let space = SpaceId([1; 16]);
        let notes = VolumeId([2; 16]);
        let root = SymmetricKey::from_bytes([3; 32]);
        let a = derive(
            space,
            (notes, Generation(0), Epoch(0), &root),
            "measurements/weight/2026",
        );
        let b = derive(
            space,
            (notes, Generation(0), Epoch(0), &root),
            "measurements/weight/2026",
        );
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.as_bytes(), b.1.as_bytes());
        let other = derive(
            space,
            (notes, Generation(0), Epoch(0), &root),
            "measurements/weight/2027",
        );
        assert_ne!(a.0, other.0);
        let rotated_key = SymmetricKey::from_bytes([4; 32]);
        let rotated = derive(
            space,
            (notes, Generation(0), Epoch(1), &rotated_key),
            "measurements/weight/2026",
        );
        assert_ne!(a.0, rotated.0);
        assert_ne!(a.1.as_bytes(), rotated.1.as_bytes());
    }
}
