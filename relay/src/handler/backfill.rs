//! One-time backfills of indexes added after a hub had data, each marked done once.

use super::{structure_key, Relay};
use crate::store::{StoreError, Table};
use mes_protocol::access::membership::Signed;
use mes_protocol::crypto::keys::DeviceCert;
use mes_protocol::enrolment::principal::DirectoryEntry;
use mes_protocol::ids::{DeviceId, SpaceId, VolumeId};
use mes_protocol::wire::codec;
use std::collections::HashMap;

/// The marker of a finished one-time backfill, in the kind it fills.
pub(super) const BACKFILLED: &[u8] = b"backfilled-v1";

impl Relay {
    /// Whether the one-time backfill of an index kind was done (its marker key, which no
    /// id of 16 or 32 bytes can be).
    /// Indexes the directory by structure once, for directories imported before the
    /// index existed.
    pub(super) async fn backfill_structure_index(&self) -> Result<(), StoreError> {
        if self.backfilled(Table::Directory).await? {
            return Ok(());
        }
        for (_, v) in self.store.scan_records(Table::Directory, b"p").await? {
            let e: Signed<DirectoryEntry> =
                codec::from_bytes(&v).map_err(|e| StoreError::corrupt(e.to_string()))?;
            if let Some(structure) = &e.body.professional.structure {
                self.store
                    .put_record(
                        Table::Directory,
                        structure_key(structure, e.body.principal),
                        e.body.principal.0.to_vec(),
                    )
                    .await?;
            }
        }
        self.mark_backfilled(Table::Directory).await
    }

    pub(super) async fn backfilled(&self, kind: Table) -> Result<bool, StoreError> {
        Ok(self.store.get_record(kind, BACKFILLED).await?.is_some())
    }

    pub(super) async fn mark_backfilled(&self, kind: Table) -> Result<(), StoreError> {
        self.store
            .put_record(kind, BACKFILLED.to_vec(), Vec::new())
            .await
    }

    /// Records the binding of every declared volume once, for stores written before
    /// bindings existed; a volume two spaces declared is bound to neither and logged.
    pub(super) async fn backfill_volume_bindings(&self) -> Result<(), StoreError> {
        if self.backfilled(Table::VolumeSpace).await? {
            return Ok(());
        }
        let mut owners: HashMap<VolumeId, Vec<SpaceId>> = HashMap::new();
        for m in self.memberships.read().expect("membership lock").values() {
            for v in m.volumes.keys() {
                owners.entry(*v).or_default().push(m.space());
            }
        }
        for (volume, spaces) in owners {
            // A volume two spaces declared is bound to no space (an empty owner): every
            // further declaration of it is refused.
            let owner = match spaces[..] {
                [space] => space.0.to_vec(),
                _ => {
                    tracing::error!(
                        "volume {} is declared by {} spaces; every further declaration is refused",
                        volume.short(),
                        spaces.len()
                    );
                    Vec::new()
                }
            };
            self.store
                .put_record(Table::VolumeSpace, volume.0.to_vec(), owner)
                .await?;
        }
        self.mark_backfilled(Table::VolumeSpace).await
    }

    /// Binds blobs committed before bindings existed to the one space that holds each.
    pub(super) async fn backfill_blob_bindings(&self) -> Result<(), StoreError> {
        if self.backfilled(Table::BlobSpace).await? {
            return Ok(());
        }
        let mut blob_spaces: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        for (k, _) in self.store.scan_records(Table::BlobOwner, &[]).await? {
            if k.len() == 48 {
                blob_spaces
                    .entry(k[16..].to_vec())
                    .or_default()
                    .push(k[..16].to_vec());
            }
        }
        for (blob, spaces) in blob_spaces {
            if let [space] = &spaces[..] {
                self.store
                    .put_record(Table::BlobSpace, blob, space.clone())
                    .await?;
            }
        }
        self.mark_backfilled(Table::BlobSpace).await
    }

    /// Indexes the current certificate of every device listed before the index existed.
    pub(super) async fn backfill_current_certs(&self) -> Result<(), StoreError> {
        if self.backfilled(Table::DeviceCurrent).await? {
            return Ok(());
        }
        let mut newest: HashMap<DeviceId, DeviceCert> = HashMap::new();
        for (_, v) in self.store.scan_records(Table::Device, &[]).await? {
            let cert: DeviceCert = codec::from_bytes(&v)
                .map_err(|e| StoreError::corrupt(format!("stored device: {e}")))?;
            let e = newest
                .entry(cert.body.device)
                .or_insert_with(|| cert.clone());
            if cert.body.issued_at > e.body.issued_at {
                *e = cert;
            }
        }
        for (device, cert) in newest {
            self.store
                .put_record(
                    Table::DeviceCurrent,
                    device.0.to_vec(),
                    codec::to_bytes(&cert),
                )
                .await?;
        }
        self.mark_backfilled(Table::DeviceCurrent).await
    }
}
