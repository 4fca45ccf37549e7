//! The sync steps against the relay: uploading sealed local changes, the catch-up pipeline (fetch, verify and open on a blocking thread, apply in one batch, store, then move the cursor), snapshots.

use crate::daemon::{client_api, storage, unexpected, Daemon, SyncError, INBOX, NOTES};
use crate::replica::store::StoreError;
use crate::replica::volume::{self, Payload};
use crate::sync::opening::{OpenContext, Opened};
use crate::sync::relay_client::RelayClient;
use crate::sync::sealing::{SealWith, Sealing};
use mes_protocol::crypto::keys::AgeSecret;
use mes_protocol::crypto::seal::{BundleHeader, CipherSuite, SealedBundle};
use mes_protocol::ids::{Seq, SpaceId, VolumeId, VolumeKind};
use mes_protocol::wire::api::{ApiError, ApiErrorCode, ApiEvent};
use mes_protocol::wire::{Reply, Request, MAX_FETCH};
use rand::rngs::OsRng;
use std::collections::HashMap;
use std::sync::Arc;

/// A batch opened by the fetching stage, for the applier.
struct OpenedBatch {
    opened: Opened,
    upto: Seq,
    head: Seq,
}

/// Bundles per upload request.
pub const MAX_UPLOAD: u64 = 1024;

impl Daemon {
    /// Uploads a snapshot of a volume at its cursor, letting the relay prune behind it.
    pub async fn put_snapshot(&self, space: SpaceId, label: &str) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let (volume, upto, bundle) = {
            let mut st = self.state();
            let volume = Self::volume_of(&st, space, label)?;
            let device = &self.identity().device;
            let header_author = device.device_id();
            let v = &st.volumes[&volume];
            let (generation, upto) = (v.meta.generation, v.progress.cursor);
            let Some((epoch, key)) = st.keys.current(volume, generation) else {
                return Err(ApiError::new(
                    ApiErrorCode::Forbidden,
                    "no key for this volume yet",
                ));
            };
            let key = key.duplicate();
            let body = st
                .volumes
                .get_mut(&volume)
                .expect("volume")
                .replica()
                .map_err(storage)?
                .snapshot();
            let header = BundleHeader {
                suite: self.suite,
                space,
                volume,
                generation,
                epoch,
                author: header_author,
                nonce: [0; 24],
                prev: None,
            };
            let b = SealedBundle::seal(
                &key,
                header,
                &self.identity().device.signing,
                &mut OsRng,
                &volume::encode(&Payload::Snapshot(body)),
            );
            (volume, upto, b)
        };
        if upto == Seq(0) {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "nothing synced yet: the volume's cursor is 0",
            ));
        }
        c.request(Request::PutSnapshot {
            space,
            volume,
            upto,
            snapshot: bundle,
            prune: true,
        })
        .await
        .map_err(client_api)?;
        Ok(())
    }

    /// Uploads local changes `from..=to` of a volume.
    pub async fn upload(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        from: u64,
        to: u64,
    ) -> Result<(), SyncError> {
        let (space, bundles, link) = {
            let st = self.state();
            let v = &st.volumes[&volume];
            let space = v.meta.space;
            let with = if v.meta.kind == VolumeKind::Inbox {
                SealWith::Inbox(st.spaces[&space].inbox_recipient())
            } else {
                let Some((epoch, key)) = st.keys.current(volume, v.meta.generation) else {
                    return Err(SyncError::Refused(format!(
                        "no key yet for volume {}",
                        volume.short()
                    )));
                };
                SealWith::Epoch(epoch, key)
            };
            let me = self.identity();
            let sealing = Sealing {
                suite: self.suite,
                space,
                volume,
                generation: v.meta.generation,
                author: me.device.device_id(),
                signing: &me.device.signing,
                with,
            };
            let changes = (from..=to)
                .map(|n| Ok(volume::encode(&v.local(&self.store, n)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let (bundles, prev) = sealing
                .seal(v.chain, changes, &mut OsRng)
                .map_err(SyncError::Refused)?;
            (space, bundles, prev)
        };
        let last = match c
            .request(Request::Append {
                space,
                volume,
                bundles,
            })
            .await?
        {
            Reply::Appended { last, .. } => last,
            r => return Err(unexpected(r)),
        };
        let mut st = self.state();
        let v = st.volumes.get_mut(&volume).expect("volume");
        v.progress.on_uploaded(to, last);
        v.chain = link;
        let mut batch = self.store.batch();
        v.save_meta(&mut batch);
        self.store.apply(batch)?;
        Ok(())
    }

    /// What opening bundles of a volume needs; fetches key envelopes once if some keys
    /// are missing.
    pub(crate) async fn open_context(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        items: &[(Seq, SealedBundle)],
    ) -> Result<OpenContext, SyncError> {
        let mut ctx = self.snapshot_keys(volume, items);
        if ctx.misses_keys(items) {
            self.collect_envelopes(c, ctx.space).await?;
            ctx = self.snapshot_keys(volume, items);
        }
        Ok(ctx)
    }

    pub(crate) fn snapshot_keys(
        &self,
        volume: VolumeId,
        items: &[(Seq, SealedBundle)],
    ) -> OpenContext {
        let st = self.state();
        let v = &st.volumes[&volume];
        let mut keys = HashMap::new();
        for (_, b) in items {
            let h = &b.header;
            if let Some(k) = st.keys.get(volume, h.generation, h.epoch) {
                keys.entry((h.generation, h.epoch))
                    .or_insert_with(|| k.duplicate());
            }
        }
        let me = self.identity();
        let owner = st.spaces[&v.meta.space].owner() == me.principal.principal_id();
        let inbox = owner.then(|| {
            AgeSecret::parse(&me.principal.age.to_secret_string()).expect("own age key parses")
        });
        OpenContext {
            space: v.meta.space,
            volume,
            generation: v.meta.generation,
            kind: v.meta.kind,
            keys,
            inbox,
            allow_null: self.suite == CipherSuite::Null,
        }
    }

    /// Opens bundles fetched for a volume.
    pub(crate) async fn open_all(
        &self,
        c: &RelayClient,
        volume: VolumeId,
        items: Vec<(Seq, SealedBundle)>,
    ) -> Result<Opened, SyncError> {
        let ctx = self.open_context(c, volume, &items).await?;
        tokio::task::block_in_place(|| ctx.open(&items))
    }

    /// Fetches and applies bundles after `after`; the cursor moves only once they are
    /// stored.
    ///
    /// Two stages run in parallel: this task fetches (the next batch already on the wire)
    /// and opens batches (verification and decryption on a blocking thread), and an
    /// applier task applies and stores whatever has been opened since it last ran, in one
    /// automerge call (automerge applies large batches far faster than small ones).
    pub async fn fetch(
        self: &Arc<Self>,
        c: &Arc<RelayClient>,
        volume: VolumeId,
        after: Seq,
    ) -> Result<(), SyncError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<OpenedBatch>(8);
        let applier = tokio::spawn(self.clone().apply_opened(volume, rx));
        let fetched = self.fetch_and_open(c, volume, after, tx).await;
        let applied = applier
            .await
            .map_err(|e| SyncError::Refused(format!("applier task: {e}")))?;
        let pruned = fetched?;
        applied?;
        if let Some((upto, head, pruned)) = pruned {
            let mut st = self.state();
            let v = st.volumes.get_mut(&volume).expect("volume");
            v.progress.on_fetched(upto, head, pruned);
        }
        Ok(())
    }

    /// The fetching and opening stage; returns `(cursor, head, pruned point)` when the
    /// relay answered that the log behind the cursor was pruned.
    async fn fetch_and_open(
        &self,
        c: &Arc<RelayClient>,
        volume: VolumeId,
        after: Seq,
        tx: tokio::sync::mpsc::Sender<OpenedBatch>,
    ) -> Result<Option<(Seq, Seq, Seq)>, SyncError> {
        let space = self.state().volumes[&volume].meta.space;
        let request = move |after| Request::Fetch {
            space,
            volume,
            after,
            max: MAX_FETCH,
        };
        let mut reply = c.request(request(after)).await?;
        let mut asked = after;
        let mut ctx: Option<Arc<OpenContext>> = None;
        loop {
            let (items, head, pruned) = match reply {
                Reply::Bundles {
                    items,
                    head,
                    pruned_upto,
                } => (items, head, pruned_upto),
                r => return Err(unexpected(r)),
            };
            if let Some(p) = pruned.filter(|p| *p > asked) {
                return Ok(Some((asked, head, p)));
            }
            let cursor = items.last().map(|(s, _)| *s).unwrap_or(asked);
            if let Some((first, _)) = items.first() {
                if *first != asked.next() {
                    return Err(SyncError::Refused(format!(
                        "relay skipped from {} to {}",
                        asked.0, first.0
                    )));
                }
            }
            let next = (!items.is_empty() && cursor < head).then(|| {
                let c = c.clone();
                tokio::spawn(async move { c.request(request(cursor)).await })
            });
            // The keys are copied once per fetch (not per batch: the applier holds the
            // state while it applies), and again only when a bundle needs a new one.
            if ctx
                .as_ref()
                .is_none_or(|k: &Arc<OpenContext>| k.misses_keys(&items))
            {
                ctx = Some(Arc::new(self.open_context(c, volume, &items).await?));
            }
            let batch_ctx = ctx.clone().expect("set above");
            let opened = tokio::task::spawn_blocking(move || batch_ctx.open(&items))
                .await
                .map_err(|e| SyncError::Refused(format!("bundle opening task: {e}")))??;
            if tx
                .send(OpenedBatch {
                    opened,
                    upto: cursor,
                    head,
                })
                .await
                .is_err()
            {
                // The applier stopped on an error, which it reports.
                return Ok(None);
            }
            match next {
                Some(n) => {
                    reply = n
                        .await
                        .map_err(|e| SyncError::Refused(format!("prefetch task: {e}")))??;
                    asked = cursor;
                }
                None => return Ok(None),
            }
        }
    }

    /// The applying stage: merges every batch opened since it last ran (a new generation
    /// is applied on its own) and stores them.
    async fn apply_opened(
        self: Arc<Self>,
        volume: VolumeId,
        mut rx: tokio::sync::mpsc::Receiver<OpenedBatch>,
    ) -> Result<(), SyncError> {
        while let Some(first) = rx.recv().await {
            let mut waiting = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            let mut merged: Option<OpenedBatch> = None;
            for b in waiting {
                match &mut merged {
                    Some(m)
                        if m.opened.new_generation.is_none()
                            && b.opened.new_generation.is_none() =>
                    {
                        m.opened.payloads.extend(b.opened.payloads);
                        m.opened.quarantined.extend(b.opened.quarantined);
                        m.upto = b.upto;
                        m.head = m.head.max(b.head);
                    }
                    _ => {
                        if let Some(m) = merged.take() {
                            self.apply_fetched(volume, m.opened, m.upto, m.head, Seq(0))
                                .await?;
                        }
                        merged = Some(b);
                    }
                }
            }
            if let Some(m) = merged {
                self.apply_fetched(volume, m.opened, m.upto, m.head, Seq(0))
                    .await?;
            }
        }
        Ok(())
    }

    /// Converges from the relay's snapshot when the log behind it was pruned.
    pub async fn fetch_snapshot(&self, c: &RelayClient, volume: VolumeId) -> Result<(), SyncError> {
        let space = self.state().volumes[&volume].meta.space;
        let (upto, bundle) = match c.request(Request::GetSnapshot { space, volume }).await? {
            Reply::Snapshot { upto, snapshot } => (upto, snapshot),
            r => return Err(unexpected(r)),
        };
        let opened = self.open_all(c, volume, vec![(upto, bundle)]).await?;
        let pruned = self.state().volumes[&volume].progress.pruned;
        self.apply_fetched(volume, opened, upto, upto, pruned).await
    }

    pub(crate) async fn apply_fetched(
        &self,
        volume: VolumeId,
        Opened {
            payloads,
            new_generation,
            quarantined,
        }: Opened,
        cursor: Seq,
        head: Seq,
        pruned: Seq,
    ) -> Result<(), SyncError> {
        // CPU-heavy (automerge): let the runtime move other tasks off this thread.
        let space = tokio::task::block_in_place(|| {
            let mut st = self.state();
            let actor = self.identity().device.device_id().0;
            let v = st.volumes.get_mut(&volume).expect("volume");
            let mut batch = self.store.batch();
            match new_generation {
                Some(g) => {
                    v.switch_generation(&self.store, g, &payloads, cursor, &actor, &mut batch)?;
                }
                None => {
                    v.replica()?
                        .apply_remote(&payloads)
                        .map_err(|e| SyncError::Refused(e.to_string()))?;
                    v.record_applied(&payloads, cursor, &mut batch);
                }
            }
            self.store.apply(batch)?;
            Ok::<_, SyncError>(v.meta.space)
        })?;
        self.store.flush().await?;
        {
            let mut st = self.state();
            let v = st.volumes.get_mut(&volume).expect("volume");
            v.progress.on_fetched(cursor, head, pruned);
            // Changes carried over a generation switch were flushed just above.
            v.progress.on_durable(v.meta.last_local);
            v.compact_if_needed(&self.store)?;
        }
        for (seq, why) in &quarantined {
            // Set aside, past the cursor: the person hears of it once (issue 22, finding 7).
            tracing::warn!(
                "inbox drop {} of space {} set aside: {why}",
                seq.0,
                space.short()
            );
            self.notify(
                space,
                "document",
                format!(
                    "Un dépôt dans votre boîte (n° {}) n'a pas pu être ouvert ; il est mis de côté : {why}",
                    seq.0
                ),
                format!(
                    "A drop in your inbox (no. {}) could not be opened; it is set aside: {why}",
                    seq.0
                ),
            );
        }
        if !payloads.is_empty() {
            let label = self
                .state()
                .volumes
                .get(&volume)
                .map(|v| v.meta.label.clone())
                .unwrap_or_default();
            if label == INBOX {
                if let Err(e) = self.file_inbox(space).await {
                    tracing::warn!("filing the inbox of {}: {}", space.short(), e.message);
                }
            }
            // Clients hear of the change before the history heads are compared: that is
            // housekeeping, not what they wait for (issue 23's latency).
            self.emit(ApiEvent::VolumeChanged { space, volume });
            if label == NOTES {
                // Another device may have published its access history head.
                self.recheck_history(space).await;
            }
        }
        Ok(())
    }
}
