//! Erasing a closed space at the hub for real (F1.6, issue 27 item 3).
//!
//! A closure leaves a `Closed` record whose value is when the space is to be erased: the
//! end of the archive (10 years) or of the express delay. The sweep ([`erase_due`]) then
//! removes, from whichever backend holds them (sled, PostgreSQL, the object store):
//! every volume's log, snapshot and head; every blob with its chunks; the envelopes,
//! access history, emergency releases, blob bookkeeping and the membership. What stays is
//! the closure record the law asks for: an `Erased` entry keyed by a hash of the space's
//! id and of each volume's, holding the day of erasure, so neither id is ever taken again
//! and the store no longer holds the ids themselves.
//!
//! Each step is idempotent and the `Closed` record goes last, so an erasure a crash
//! interrupted is finished by the next sweep; the space is refused to everyone
//! throughout (it is closed).

use crate::store::{Store, StoreError, Table};
use mes_protocol::access::membership::Membership;
use mes_protocol::ids::{SpaceId, VolumeId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::codec;
use std::collections::BTreeSet;

/// What one erasure removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    /// Volumes whose log, snapshot and head were removed.
    pub volumes: usize,
    /// Blobs removed with their chunks.
    pub blobs: usize,
    /// Records removed (envelopes, history, releases, blob bookkeeping, membership).
    pub records: usize,
}

/// The key of an id's closure record: a hash, so the store keeps no id of an erased space.
pub fn tombstone(id: &[u8]) -> Vec<u8> {
    blake3::derive_key("mes-relay erased id v1", id).to_vec()
}

/// Whether a space's or a volume's id belonged to an erased space.
pub async fn was_erased(store: &dyn Store, id: &[u8]) -> Result<bool, StoreError> {
    Ok(store
        .get_record(Table::Erased, &tombstone(id))
        .await?
        .is_some())
}

/// The value of a `Closed` record: when the space is to be erased.
pub fn closed_value(erase_at: UnixMillis) -> Vec<u8> {
    erase_at.0.to_be_bytes().to_vec()
}

/// When a `Closed` record says its space is to be erased (`None`: an older record
/// without a date, kept until its person or an operator decides).
pub fn erase_at(value: &[u8]) -> Option<UnixMillis> {
    Some(UnixMillis(u64::from_be_bytes(value.try_into().ok()?)))
}

/// Spaces whose erasure is due at `now`.
pub async fn due(store: &dyn Store, now: UnixMillis) -> Result<Vec<SpaceId>, StoreError> {
    Ok(store
        .scan_records(Table::Closed, &[])
        .await?
        .into_iter()
        .filter(|(_, v)| erase_at(v).is_some_and(|at| at <= now))
        .filter_map(|(k, _)| <[u8; 16]>::try_from(k.as_slice()).ok().map(SpaceId))
        .collect())
}

/// Erases one space (see the module's header); `now` is the day written in its closure
/// record.
pub async fn erase_space(
    store: &dyn Store,
    space: SpaceId,
    now: UnixMillis,
) -> Result<Erasure, StoreError> {
    let mut e = Erasure::default();
    let day = now.0.to_be_bytes().to_vec();
    let membership = match store.get_record(Table::Membership, &space.0).await? {
        Some(v) => Some(
            codec::from_bytes::<Membership>(&v)
                .map_err(|e| StoreError::corrupt(format!("stored membership: {e}")))?,
        ),
        None => None,
    };
    let volumes: Vec<VolumeId> = membership
        .iter()
        .flat_map(|m| m.volumes.keys().copied())
        .collect();
    for v in volumes {
        store.remove_volume(v).await?;
        store
            .put_record(Table::Erased, tombstone(&v.0), day.clone())
            .await?;
        store
            .remove_record(Table::VolumeSpace, v.0.to_vec())
            .await?;
        e.volumes += 1;
    }
    // Every record keyed by the space; the blob tables' keys are space || blob (|| volume).
    const BLOB_TABLES: [Table; 3] = [Table::BlobOwner, Table::BlobPending, Table::BlobVolume];
    let mut blobs = BTreeSet::new();
    let mut keyed = Vec::new();
    for table in BLOB_TABLES
        .into_iter()
        .chain([Table::Envelope, Table::History, Table::Release])
    {
        for (k, _) in store.scan_records(table, &space.0).await? {
            if BLOB_TABLES.contains(&table) {
                if let Ok(b) = <[u8; 32]>::try_from(k.get(16..48).unwrap_or_default()) {
                    blobs.insert(b);
                }
            }
            keyed.push((table, k));
        }
    }
    for b in &blobs {
        store.remove_blob(b).await?;
        store.remove_record(Table::BlobSpace, b.to_vec()).await?;
        e.blobs += 1;
    }
    for (table, k) in keyed {
        store.remove_record(table, k).await?;
        e.records += 1;
    }
    if membership.is_some() {
        store
            .remove_record(Table::Membership, space.0.to_vec())
            .await?;
        e.records += 1;
    }
    store
        .put_record(Table::Erased, tombstone(&space.0), day)
        .await?;
    store.remove_record(Table::Closed, space.0.to_vec()).await?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_record_names_its_day_or_none() {
        assert_eq!(
            erase_at(&closed_value(UnixMillis(42))),
            Some(UnixMillis(42))
        );
        assert_eq!(erase_at(&[]), None, "an older record without a date");
        assert_ne!(tombstone(&[1; 16]), [1; 16].to_vec());
    }
}
