//! Membership and keys as the sync engine keeps them: registering spaces made offline, discovering and refreshing a person's spaces (every record re-verified, relabellings refused), wrapping missing keys to members' devices, collecting and opening key envelopes, granting.

use crate::daemon::{
    client_api, sync_api, unexpected, verify_membership, Daemon, State, SyncError,
};
use crate::replica::spaces::{LoadedVolume, Space, SpaceRecord, VolumeMeta};
use crate::sync::relay_client::{ClientError, RelayClient};
use mes_protocol::access::membership::{Grant, Membership, Role, Signed, VolumeDecl};
use mes_protocol::crypto::envelope::KeyEnvelope;
use mes_protocol::crypto::keys::{AgeSecret, DeviceCert};
use mes_protocol::ids::{DeviceId, PrincipalId, Seq, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::ApiError;
use mes_protocol::wire::{Reply, Request};

impl Daemon {
    /// Grants a role on a space to another principal (None removes it).
    pub async fn grant(
        &self,
        space: SpaceId,
        principal: PrincipalId,
        role: Option<Role>,
    ) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let grant = {
            let now = UnixMillis::now();
            Signed::sign(
                Grant {
                    space,
                    volume: None,
                    principal,
                    role,
                    version: now.0,
                    issued_at: now,
                    expires_at: None,
                },
                &self.identity().principal.signing,
            )
        };
        c.request(Request::PutGrant { grant })
            .await
            .map_err(client_api)?;
        self.refresh_space(&c, space).await.map_err(sync_api)
    }

    /// Registers spaces created here that the relay does not know yet, and volumes
    /// declared here since (partitions).
    pub async fn register_pending(&self, c: &RelayClient) -> Result<(), SyncError> {
        let partitions: Vec<(SpaceId, Vec<Signed<VolumeDecl>>)> = self
            .state()
            .spaces
            .values()
            .filter(|s| s.record.registered && !s.record.pending_decls.is_empty())
            .map(|s| (s.id(), s.record.pending_decls.clone()))
            .collect();
        for (space, decls) in partitions {
            for decl in &decls {
                c.request(Request::DeclareVolume { decl: decl.clone() })
                    .await?;
            }
            {
                let mut st = self.state();
                let mut batch = self.store.batch();
                if let Some(s) = st.spaces.get_mut(&space) {
                    s.record.pending_decls.retain(|d| !decls.contains(d));
                    s.save(&mut batch);
                }
                self.store.apply(batch)?;
            }
            self.refresh_space(c, space).await?;
        }
        let unregistered: Vec<SpaceRecord> = self
            .state()
            .spaces
            .values()
            .filter(|s| !s.record.registered)
            .map(|s| s.record.clone())
            .collect();
        for rec in unregistered {
            c.request(Request::RegisterSpace {
                genesis: rec.genesis.clone(),
            })
            .await?;
            for decl in rec.decls.iter().chain(&rec.pending_decls) {
                c.request(Request::DeclareVolume { decl: decl.clone() })
                    .await?;
            }
            {
                let mut st = self.state();
                let mut batch = self.store.batch();
                if let Some(s) = st.spaces.get_mut(&rec.genesis.body.space) {
                    s.record.registered = true;
                    s.record.pending_decls.clear();
                    s.save(&mut batch);
                }
                self.store.apply(batch)?;
            }
            self.refresh_space(c, rec.genesis.body.space).await?;
        }
        Ok(())
    }

    /// Registers local spaces the relay does not know, discovers the person's other spaces,
    /// refreshes membership and keys, and subscribes to every volume.
    pub async fn bootstrap(&self, c: &RelayClient) -> Result<(), SyncError> {
        self.register_pending(c).await?;
        let Reply::Spaces { spaces } = c.request(Request::ListSpaces).await? else {
            return Err(SyncError::Refused(
                "ListSpaces answered something else".into(),
            ));
        };
        for genesis in spaces {
            if genesis.verify().is_err() || genesis.signer != genesis.body.owner {
                tracing::warn!(
                    "ignoring space {} with a bad genesis signature",
                    genesis.body.space.short()
                );
                continue;
            }
            let mut st = self.state();
            if !st.spaces.contains_key(&genesis.body.space) {
                let label = format!("space {}", genesis.body.space.short());
                let s = Space {
                    record: SpaceRecord {
                        genesis,
                        label,
                        registered: true,
                        decls: Vec::new(),
                        pending_decls: Vec::new(),
                    },
                    membership: None,
                };
                let mut batch = self.store.batch();
                s.save(&mut batch);
                st.spaces.insert(s.id(), s);
                self.store.apply(batch)?;
            }
        }
        let ids: Vec<SpaceId> = self
            .state()
            .spaces
            .values()
            .filter(|s| s.record.registered)
            .map(super::super::replica::spaces::Space::id)
            .collect();
        for s in ids {
            match self.refresh_space(c, s).await {
                Err(e @ SyncError::Client(ClientError::Closed(_))) => return Err(e),
                Err(e) => tracing::warn!("space {} not refreshed: {e}", s.short()),
                Ok(()) => {}
            }
        }
        self.store.flush().await?;
        Ok(())
    }

    /// Fetches and verifies a space's membership, learns new volumes, wraps keys for new
    /// member devices (if admin), collects keys wrapped for this device, and subscribes.
    pub async fn refresh_space(&self, c: &RelayClient, space: SpaceId) -> Result<(), SyncError> {
        let _one_at_a_time = self.access.refresh.lock().await;
        self.learn_hub(c).await?;
        let recovery_recipient = self.recovery_recipient(space);
        let (membership, devices) = match c.request(Request::GetMembership { space }).await? {
            Reply::Membership {
                membership,
                devices,
            } => (verify_membership(&membership, c.relay_key)?, devices),
            r => return Err(unexpected(r)),
        };
        self.check_labels_kept(&membership)?;
        self.access.learn_devices(devices.iter());
        // The owner's devices rotate away from who left (they derive the same keys).
        if membership.owner() == self.identity().principal.principal_id() {
            self.rotate_lapsed(space, &membership)
                .map_err(|e| SyncError::Refused(e.message))?;
        }
        if membership.owner() == self.identity().principal.principal_id() {
            let mine: Vec<(DeviceId, String)> = devices
                .iter()
                .filter(|c| c.body.principal == membership.owner() && c.verify().is_ok())
                .map(|c| (c.body.device, c.body.name.clone()))
                .collect();
            self.notice_devices(space, &mine);
        }
        let (envelopes, volumes) = {
            let mut st = self.state();
            let actor = self.identity().device.device_id().0;
            let me = self.identity().principal.principal_id();
            let mut batch = self.store.batch();
            for decl in membership.volumes.values() {
                let d = &decl.body;
                match st.volumes.get_mut(&d.volume) {
                    Some(v) => {
                        if d.generation > v.meta.generation {
                            // The switch happens when the snapshot is fetched.
                            tracing::debug!(
                                "volume {} moved to generation {}",
                                d.volume.short(),
                                d.generation.0
                            );
                        }
                    }
                    None => {
                        let meta = VolumeMeta {
                            space,
                            volume: d.volume,
                            kind: d.kind,
                            label: d.label.clone(),
                            generation: d.generation,
                            cursor: Seq(0),
                            uploaded: 0,
                            last_local: 0,
                            pruned: Seq(0),
                            log_counter: 0,
                        };
                        let mut v = LoadedVolume::create(meta, &actor);
                        v.save_meta(&mut batch);
                        st.volumes.insert(d.volume, v);
                    }
                }
            }
            let envelopes = if membership.role(me, None) == Some(Role::Admin) {
                let mut e = self.wrap_missing(&mut st, &membership, &devices);
                e.extend(self.wrap_escrow(&mut st, &membership));
                e.extend(crate::devices::recovery::wrap_recovery(
                    &mut st,
                    &self.identity(),
                    &membership,
                    recovery_recipient.as_ref(),
                ));
                e
            } else {
                Vec::new()
            };
            let volumes: Vec<VolumeId> = membership
                .volumes
                .values()
                .filter(|d| {
                    membership
                        .role(me, Some(d.body.volume))
                        .is_some_and(Role::can_read)
                })
                .map(|d| d.body.volume)
                .collect();
            if let Some(s) = st.spaces.get_mut(&space) {
                s.record.decls = membership.volumes.values().cloned().collect();
                let known = &membership.volumes;
                s.record
                    .pending_decls
                    .retain(|d| known.get(&d.body.volume) != Some(d));
                s.membership = Some(membership);
                s.save(&mut batch);
            }
            self.store.apply(batch)?;
            (envelopes, volumes)
        };
        for chunk in envelopes.chunks(512) {
            c.request(Request::PutEnvelopes {
                envelopes: chunk.to_vec(),
            })
            .await?;
            // Marked only once stored, so a refused batch is wrapped again next time.
            let mut st = self.state();
            for e in chunk {
                st.wrapped.insert((e.slot, e.recipient));
            }
        }
        self.collect_envelopes(c, space).await?;
        self.collect_recovery_envelopes(c, space).await?;
        // Volumes opened without a role: an emergency release (F7.5) wraps keys only.
        let volumes = {
            let st = self.state();
            let mut volumes = volumes;
            for v in st.volumes.values().filter(|v| v.meta.space == space) {
                if !volumes.contains(&v.meta.volume)
                    && st.keys.current(v.meta.volume, v.meta.generation).is_some()
                {
                    volumes.push(v.meta.volume);
                }
            }
            volumes
        };
        if !volumes.is_empty() {
            match c.request(Request::Subscribe { space, volumes }).await? {
                Reply::Done => {}
                r => return Err(unexpected(r)),
            }
        }
        self.sync_history(c, space).await
    }

    pub(crate) fn wrap_missing(
        &self,
        st: &mut State,
        m: &Membership,
        devices: &[DeviceCert],
    ) -> Vec<KeyEnvelope> {
        let mut out = Vec::new();
        let me = self.identity().device.device_id();
        let live = m.at(UnixMillis::now());
        for decl in m.volumes.values() {
            let d = &decl.body;
            if d.kind == VolumeKind::Inbox {
                continue;
            }
            let readers = live.readers(d.volume);
            for cert in devices {
                // Daemons verify what the relay says before wrapping keys to anyone.
                if cert.body.device == me
                    || !readers.contains(&cert.body.principal)
                    || cert.verify().is_err()
                {
                    continue;
                }
                for (slot, key) in st.keys.slots(d.volume, d.generation) {
                    if st.wrapped.contains(&(slot, cert.body.device)) {
                        continue;
                    }
                    match KeyEnvelope::wrap(
                        slot,
                        key,
                        cert.body.device,
                        &cert.body.recipient,
                        &self.identity().principal.signing,
                    ) {
                        Ok(e) => out.push(e),
                        Err(e) => tracing::warn!(
                            "cannot wrap to device {}: {e}",
                            cert.body.device.short()
                        ),
                    }
                }
            }
        }
        out
    }

    /// Opens the key envelopes the relay holds for this device.
    pub async fn collect_envelopes(
        &self,
        c: &RelayClient,
        space: SpaceId,
    ) -> Result<usize, SyncError> {
        let Reply::Envelopes { envelopes } = c.request(Request::GetEnvelopes { space }).await?
        else {
            return Err(SyncError::Refused(
                "GetEnvelopes answered something else".into(),
            ));
        };
        self.open_envelopes(space, envelopes, None, c.relay_key)
            .await
    }

    /// Opens envelopes with this device's key (or `identity`, the recovery identity),
    /// keeps the keys not held yet, and wakes the volumes that waited for them.
    pub(crate) async fn open_envelopes(
        &self,
        space: SpaceId,
        envelopes: Vec<KeyEnvelope>,
        identity: Option<&AgeSecret>,
        hub: PrincipalId,
    ) -> Result<usize, SyncError> {
        let added = {
            let mut st = self.state();
            let Some(m) = st.spaces.get(&space).and_then(|s| s.membership.clone()) else {
                return Ok(0);
            };
            let now = UnixMillis::now();
            let m = m.at(now);
            let mut batch = self.store.batch();
            let mut added = 0;
            for e in envelopes {
                if st
                    .keys
                    .get(e.slot.volume, e.slot.generation, e.slot.epoch)
                    .is_some()
                {
                    continue;
                }
                // Only a key someone may choose is adopted (a hub's own key is not).
                if let Err(why) = mes_protocol::crypto::envelope::may_adopt(&e, &m, hub) {
                    tracing::warn!(
                        "envelope for {} refused on {}: {why}",
                        e.slot.volume.short(),
                        self.identity().name()
                    );
                    continue;
                }
                if st
                    .keys
                    .get(e.slot.volume, e.slot.generation, e.slot.epoch)
                    .is_some()
                {
                    continue;
                }
                match e.unwrap(identity.unwrap_or(&self.identity().device.age)) {
                    Ok(k) => {
                        if st.keys.insert(e.slot, k, &mut batch) {
                            added += 1;
                        }
                    }
                    Err(err) => tracing::warn!("{err}"),
                }
            }
            self.store.apply(batch)?;
            if added > 0 {
                for v in st.volumes.values_mut().filter(|v| v.meta.space == space) {
                    v.progress.stalled = false;
                }
            }
            added
        };
        if added > 0 {
            self.store.flush().await?;
            self.link.wake.notify_one();
        }
        Ok(added)
    }

    /// Refuses a membership that relabels a volume this device knows, unless the owner
    /// signed it, and any that makes a private volume shared (issue 22, finding 2): a
    /// relay can serve a former owner's relabelling as if it were the first declaration,
    /// so the labels this device first saw are the reference, not the relay's copy.
    pub(crate) fn check_labels_kept(&self, m: &Membership) -> Result<(), SyncError> {
        let st = self.state();
        for decl in m.volumes.values() {
            let Some(known) = st.volumes.get(&decl.body.volume) else {
                continue;
            };
            let old = mes_protocol::access::membership::VolumeDecl {
                label: known.meta.label.clone(),
                ..decl.body.clone()
            };
            mes_protocol::access::membership::check_relabel(
                &old,
                &decl.body,
                decl.signer == m.owner(),
            )
            .map_err(|e| {
                SyncError::Refused(format!(
                    "membership of space {} refused: {e}",
                    m.space().short()
                ))
            })?;
        }
        Ok(())
    }
}
