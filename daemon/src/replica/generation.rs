//! Volume generations: a fresh document built from the current state, under a new key,
//! replacing the volume's history. The relay switches atomically (declaration, snapshot
//! as the first bundle of the new generation, old log dropped) and only if its log has not
//! moved past what the snapshot covers, so no acknowledged change is left out; devices
//! switch when they fetch the snapshot, re-authoring their unacknowledged changes on top.
//! Generations also serve hiding and revocation: what the new generation omits, new
//! members never see, and the old epoch keys open nothing of it.

use mes_protocol::access::membership::{Signed, VolumeDecl};
use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::{BundleHeader, SealedBundle, SymmetricKey};
use mes_protocol::ids::{Epoch, Generation, SpaceId, VolumeKind};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{ErrorCode, Request};
use rand::rngs::OsRng;
use std::sync::Arc;

use crate::daemon::Daemon;
use crate::replica::volume::{self, Payload, Replica};
use crate::sync::relay_client::ClientError;

fn err(code: ApiErrorCode, m: impl Into<String>) -> ApiError {
    ApiError::new(code, m)
}

/// Starts a new generation of the volume labelled `label` (admin only, online, synced).
pub async fn compact(d: &Arc<Daemon>, space: SpaceId, label: &str) -> Result<Generation, ApiError> {
    let client = d
        .client()
        .ok_or_else(|| err(ApiErrorCode::Offline, "a new generation needs the relay"))?;
    let (volume, request, next) = {
        let mut guard = d.state();
        let st = &mut *guard;
        let volume = Daemon::volume_of(st, space, label)?;
        let actor = d.identity().device.device_id().0;
        let v = st.volumes.get_mut(&volume).expect("volume exists");
        if v.meta.kind == VolumeKind::Inbox {
            return Err(err(ApiErrorCode::BadRequest, "inboxes have no generations"));
        }
        if !v.progress.idle() {
            return Err(err(
                ApiErrorCode::BadRequest,
                format!(
                    "volume {label} is not synced yet ({} pending, cursor {} of {}); try again",
                    v.progress.pending(),
                    v.progress.cursor.0,
                    v.progress.head.0
                ),
            ));
        }
        let next = Generation(v.meta.generation.0 + 1);
        let after = v.progress.cursor;
        let body = match v
            .replica()
            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?
        {
            // A new generation copies the winning values; the records of a structured
            // volume (the health record, documents, measurements) are not copied yet,
            // so those volumes are refused rather than emptied.
            Replica::Doc(doc) if !doc.is_flat() || crate::record::seed_change(label).is_some() => {
                return Err(err(
                    ApiErrorCode::BadRequest,
                    format!("volume {label} holds structured records: only notes and logs have generations so far"),
                ))
            }
            Replica::Doc(doc) => {
                let mut fresh = volume::doc::DocReplica::new(&actor);
                for k in doc.keys() {
                    if let Some(value) = doc.winner(&k) {
                        fresh
                            .set(&k, &value)
                            .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
                    }
                }
                fresh.save()
            }
            Replica::Log(log) => log.save(),
            Replica::Inbox(_) => unreachable!("refused above"),
        };
        let key = SymmetricKey::generate(&mut OsRng);
        let header = BundleHeader {
            suite: d.suite(),
            space,
            volume,
            generation: next,
            epoch: Epoch(0),
            author: d.identity().device.device_id(),
            nonce: [0; 24],
            prev: None,
        };
        let snapshot = SealedBundle::seal(
            &key,
            header,
            &d.identity().device.signing,
            &mut OsRng,
            &volume::encode(&Payload::Snapshot(body)),
        );
        let decl = Signed::sign(
            VolumeDecl {
                space,
                volume,
                kind: v.meta.kind,
                generation: next,
                label: v.meta.label.clone(),
            },
            &d.identity().principal.signing,
        );
        let mut batch = d.store.batch();
        st.keys.insert(
            KeySlot {
                space,
                volume,
                generation: next,
                epoch: Epoch(0),
            },
            key,
            &mut batch,
        );
        d.store
            .apply(batch)
            .map_err(|e| err(ApiErrorCode::Storage, e.to_string()))?;
        (
            volume,
            Request::NewGeneration {
                decl,
                after,
                snapshot,
            },
            next,
        )
    };
    d.store
        .flush()
        .await
        .map_err(|e| err(ApiErrorCode::Storage, e.to_string()))?;
    match client.request(request).await {
        Ok(_) => {}
        Err(ClientError::Refused(w)) if w.code == ErrorCode::Conflict => {
            return Err(err(
                ApiErrorCode::BadRequest,
                format!("{} (volume {})", w.message, volume.short()),
            ));
        }
        Err(e) => return Err(err(ApiErrorCode::Offline, e.to_string())),
    }
    // Wrap the new key to every reader's devices; this device switches when it fetches.
    d.refresh_space(&client, space)
        .await
        .map_err(|e| err(ApiErrorCode::Internal, e.to_string()))?;
    d.link.wake.notify_one();
    Ok(next)
}
