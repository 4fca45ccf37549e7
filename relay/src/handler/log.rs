//! A volume's log: appends (bindings and author signatures checked), fetches, snapshots, subscriptions and generations.

use super::{bad_record, internal, Caller, Relay, Rule};
use crate::access::Need;
use crate::defaults::MAX_APPEND_BUNDLES;
use crate::store::{StoreError, Table};
use mes_protocol::access::membership::{Membership, Signed};
use mes_protocol::crypto::seal::SealedBundle;
use mes_protocol::ids::{Seq, SpaceId, VolumeId};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError, MAX_FETCH};
use std::sync::Arc;

pub(super) fn volume_taken(volume: VolumeId) -> WireError {
    WireError::new(
        ErrorCode::Conflict,
        format!(
            "volume id {} belongs to another space; a volume id is bound to one space for ever",
            volume.short()
        ),
    )
}

impl Relay {
    /// Appends sealed bundles to a volume's log; answered once durable.
    pub(super) async fn append(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        bundles: Vec<SealedBundle>,
    ) -> Result<Reply, WireError> {
        let lock = self.volume_lock(volume);
        let _shared = lock.read().await;
        let m = self
            .authorize(space, caller.principal, Need::Write(volume))
            .await?;
        if bundles.is_empty() || bundles.len() > MAX_APPEND_BUNDLES {
            return Err(WireError::new(
                ErrorCode::BadFrame,
                format!(
                    "append carries {} bundles; 1 to {MAX_APPEND_BUNDLES} allowed",
                    bundles.len()
                ),
            ));
        }
        for b in &bundles {
            self.check_binding(b, space, volume, caller, &m)?;
        }
        // Signatures in one batch, one per author chain (a device back from a
        // week offline uploads thousands at once), with the other appends
        // arriving at the same moment (docs/benchmarks.md, `ingest`).
        self.verify_authors(&bundles).await?;
        let mut encoded: Vec<Vec<u8>> = bundles.iter().map(codec::to_bytes).collect();
        self.faults.drop_appended(&mut encoded);
        if encoded.is_empty() {
            let head = self.store.head(volume).await.map_err(internal)?;
            return Ok(Reply::Appended {
                first: head.next(),
                last: head,
            });
        }
        let (first, last) = self.store.append(volume, encoded).await.map_err(internal)?;
        Ok(Reply::Appended { first, last })
    }

    /// Bundles past a cursor.
    pub(super) async fn fetch(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        after: Seq,
        max: u32,
    ) -> Result<Reply, WireError> {
        let m = self
            .authorize(space, caller.principal, Need::Read(volume))
            .await?;
        let r = self
            .store
            .read(volume, after, max.clamp(1, MAX_FETCH) as usize)
            .await
            .map_err(internal)?;
        if !r.items.is_empty() {
            self.record_volume_access(&m, caller, volume).await?;
        }
        let mut items = Vec::with_capacity(r.items.len());
        for (seq, bytes) in r.items {
            let b: SealedBundle = codec::from_bytes(&bytes)
                .map_err(|e| internal(StoreError::corrupt(e.to_string())))?;
            items.push((seq, b));
        }
        Ok(Reply::Bundles {
            items,
            head: r.head,
            pruned_upto: r.pruned_upto,
        })
    }

    /// Stores a snapshot covering the log up to `upto`, and optionally prunes the log
    /// behind it.
    pub(super) async fn put_snapshot(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
        upto: Seq,
        snapshot: SealedBundle,
        prune: bool,
    ) -> Result<Reply, WireError> {
        // A snapshot replaces what fresh devices load and may prune the log:
        // the space's owner or an admin only, never a writer alone (finding 1).
        self.authorize(space, caller.principal, Need::Admin).await?;
        let m = self
            .authorize(space, caller.principal, Need::Write(volume))
            .await?;
        self.check_bundle(&snapshot, space, volume, caller, &m)?;
        let head = self.store.head(volume).await.map_err(internal)?;
        if upto > head {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!("snapshot claims seq {upto}, the log is at {head}"),
            ));
        }
        self.store
            .put_snapshot(volume, upto, codec::to_bytes(&snapshot), prune)
            .await
            .map_err(internal)?;
        Ok(Reply::Done)
    }

    /// The latest snapshot of a volume.
    pub(super) async fn get_snapshot(
        &self,
        caller: &Caller,
        space: SpaceId,
        volume: VolumeId,
    ) -> Result<Reply, WireError> {
        let m = self
            .authorize(space, caller.principal, Need::Read(volume))
            .await?;
        match self.store.get_snapshot(volume).await.map_err(internal)? {
            Some((upto, bytes)) => {
                self.record_volume_access(&m, caller, volume).await?;
                let snapshot = codec::from_bytes(&bytes)
                    .map_err(|e| internal(StoreError::corrupt(e.to_string())))?;
                Ok(Reply::Snapshot { upto, snapshot })
            }
            None => Ok(Reply::NoSnapshot),
        }
    }

    /// Subscribes to head pushes for volumes of a space.
    pub(super) async fn subscribe(
        &self,
        caller: &Caller,
        space: SpaceId,
        volumes: Vec<VolumeId>,
    ) -> Result<Reply, WireError> {
        for v in &volumes {
            self.authorize(space, caller.principal, Need::Read(*v))
                .await?;
        }
        for v in volumes {
            self.pushes.subscribe(space, v, &caller.outbox);
            let head = self.store.head(v).await.map_err(internal)?;
            if head > Seq(0) {
                caller.outbox.head(space, v, head);
            }
        }
        Ok(Reply::Done)
    }

    /// Checks the author signatures an append needs, batched with the concurrent appends'
    /// checks; names the first bad bundle.
    pub(super) async fn verify_authors(&self, bundles: &[SealedBundle]) -> Result<(), WireError> {
        let (index, checks): (Vec<usize>, Vec<mes_protocol::crypto::keys::Check>) =
            SealedBundle::author_checks(bundles).into_iter().unzip();
        let held = self
            .signatures
            .run(
                checks,
                |all: Vec<Vec<mes_protocol::crypto::keys::Check>>| {
                    let flat: Vec<mes_protocol::crypto::keys::Check> =
                        all.iter().flatten().cloned().collect();
                    let mut ok = mes_protocol::crypto::keys::verify_checks(&flat).into_iter();
                    all.iter()
                        .map(|c| ok.by_ref().take(c.len()).collect())
                        .collect()
                },
            )
            .await;
        match held.iter().position(|ok| !ok) {
            Some(k) => Err(bad_record(format!(
                "bundle {} of the append: {}",
                index[k],
                mes_protocol::crypto::keys::SignatureError::Mismatch { what: "bundle" }
            ))),
            None => Ok(()),
        }
    }

    /// Binding, author and generation checked, and the author's signature.
    pub(super) fn check_bundle(
        &self,
        b: &SealedBundle,
        space: SpaceId,
        volume: VolumeId,
        caller: &Caller,
        m: &Membership,
    ) -> Result<(), WireError> {
        self.check_binding(b, space, volume, caller, m)?;
        b.verify_author().map_err(bad_record)
    }

    /// Binding, author and generation checked (signatures are checked apart, in batch).
    pub(super) fn check_binding(
        &self,
        b: &SealedBundle,
        space: SpaceId,
        volume: VolumeId,
        caller: &Caller,
        m: &Membership,
    ) -> Result<(), WireError> {
        let h = &b.header;
        if h.suite == mes_protocol::crypto::seal::CipherSuite::Null
            && !self.faults.skips(Rule::NullCipher)
        {
            return Err(bad_record(
                "bundle sealed with the null cipher: this relay stores ciphertext only",
            ));
        }
        if h.space != space || h.volume != volume {
            return Err(bad_record(format!(
                "bundle is bound to {}/{}, not {}/{}",
                h.space.short(),
                h.volume.short(),
                space.short(),
                volume.short()
            )));
        }
        if h.author != caller.device {
            return Err(bad_record(format!(
                "bundle author {} is not the connected device",
                h.author.short()
            )));
        }
        let current = m.volume(volume).map(|d| d.generation).unwrap_or_default();
        if h.generation != current {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "volume {} is at generation {}, bundle is for {}",
                    volume.short(),
                    current.0,
                    h.generation.0
                ),
            ));
        }
        Ok(())
    }

    /// Binds a volume id to its space for ever (issue 22, finding 1): the log, heads and
    /// snapshots are keyed by volume id, so an id another space declared is refused, and
    /// a space may declare its own id again. The binding is durable and outlives the
    /// space's deletion; ids are drawn at random by their owner's device, so two spaces
    /// never legitimately race for one.
    pub(super) async fn bind_volume(
        &self,
        space: SpaceId,
        volume: VolumeId,
    ) -> Result<(), WireError> {
        let _one_binding = self.binding_lock.lock().await;
        let bound = self
            .store
            .get_record(Table::VolumeSpace, &volume.0)
            .await
            .map_err(internal)?;
        match bound {
            Some(owner) if owner.as_slice() == space.0.as_slice() => Ok(()),
            Some(_) => Err(volume_taken(volume)),
            None if crate::erase::was_erased(&*self.store, &volume.0)
                .await
                .map_err(internal)? =>
            {
                Err(volume_taken(volume))
            }
            None => self
                .store
                .put_record(Table::VolumeSpace, volume.0.to_vec(), space.0.to_vec())
                .await
                .map_err(internal),
        }
    }

    pub(super) fn volume_lock(&self, volume: VolumeId) -> Arc<tokio::sync::RwLock<()>> {
        self.volume_locks.get(volume)
    }

    pub(super) async fn new_generation(
        &self,
        caller: &Caller,
        decl: Signed<mes_protocol::access::membership::VolumeDecl>,
        after: Seq,
        snapshot: SealedBundle,
    ) -> Result<Reply, WireError> {
        let (space, volume) = (decl.body.space, decl.body.volume);
        let lock = self.volume_lock(volume);
        let _alone = lock.write().await;
        let lock = self.membership_lock(space);
        let _one_writer = lock.lock().await;
        let mut m = self.authorize(space, caller.principal, Need::Admin).await?;
        let current = m
            .volume(volume)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::NotFound,
                    format!("no volume {} in space {}", volume.short(), space.short()),
                )
            })?
            .generation;
        if decl.body.generation.0 != current.0 + 1 {
            return Err(bad_record(format!(
                "volume {} is at generation {}; the next is {}, not {}",
                volume.short(),
                current.0,
                current.0 + 1,
                decl.body.generation.0
            )));
        }
        let head = self.store.head(volume).await.map_err(internal)?;
        if head != after {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "the log of volume {} moved to {} past the snapshot's {}; sync and retry",
                    volume.short(),
                    head.0,
                    after.0
                ),
            ));
        }
        m.declare(decl).map_err(bad_record)?;
        self.check_bundle(&snapshot, space, volume, caller, &m)?;
        self.save_membership(m).await?;
        let bytes = codec::to_bytes(&snapshot);
        let (first, last) = self
            .store
            .append(volume, vec![bytes.clone()])
            .await
            .map_err(internal)?;
        self.store
            .put_snapshot(volume, last, bytes, true)
            .await
            .map_err(internal)?;
        Ok(Reply::Appended { first, last })
    }
}
