//! The async shell of the sync engine: connect (pinned, authenticated), bootstrap, then
//! execute the steps the sans-IO core asks for, woken by local changes and relay pushes;
//! reconnect with jittered backoff when the connection drops. The daemon stays fully
//! usable offline meanwhile.

pub mod link;
pub mod opening;
pub mod pipeline;
pub mod relay_client;
pub mod relay_pin;
pub mod sealing;
pub mod step;

use mes_protocol::ids::VolumeId;
use mes_protocol::wire::Push;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use crate::daemon::{Daemon, SyncError};
use crate::sync::pipeline::MAX_UPLOAD;
use crate::sync::relay_client::{RelayClient, RelayTarget};
use crate::sync::step::{Backoff, Step};

impl Daemon {
    /// Installs (or drops) the relay connection: every volume may try again, and going
    /// offline resets each volume's in-flight progress and tells the API's listeners.
    fn set_client(&self, c: Option<Arc<RelayClient>>) {
        let online = c.is_some();
        let changed = self.link.replace(c);
        let mut st = self.state();
        for v in st.volumes.values_mut() {
            v.progress.stalled = false;
            if changed && !online {
                v.progress.on_disconnected();
            }
        }
        drop(st);
        if changed {
            self.emit(mes_protocol::wire::api::ApiEvent::Connection { online });
        }
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(daemon: Arc<Daemon>, target: RelayTarget, mut shutdown: watch::Receiver<bool>) {
    let endpoint = match crate::sync::relay_client::endpoint(target.address) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("cannot open a UDP socket for the relay: {e}");
            return;
        }
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let (cert, key) = {
            (
                daemon.identity().cert.clone(),
                mes_protocol::crypto::keys::SigningSecret::from_bytes(
                    &daemon.identity().device.signing.to_bytes(),
                ),
            )
        };
        let pin = relay_pin::load(&daemon.store, &target.fingerprint);
        let connected = tokio::select! {
            r = RelayClient::connect_pinned(&endpoint, &target, pin.as_ref(), &cert, &key, None) => r,
            _ = shutdown.changed() => return,
        };
        match connected {
            Ok((client, pushes)) => {
                backoff.reset();
                if let Err(e) =
                    relay_pin::remember(&daemon.store, &target.fingerprint, pin.as_ref(), &client)
                        .await
                {
                    tracing::warn!(
                        "the relay's pin was not kept (the next start learns it again): {e}"
                    );
                }
                let client = Arc::new(client);
                daemon.set_client(Some(client.clone()));
                let outcome = session(&daemon, &client, pushes, &mut shutdown).await;
                daemon.set_client(None);
                client.close();
                match outcome {
                    Ok(Stop::Shutdown) => return,
                    Ok(Stop::Reconnect) => continue,
                    Err(e) => tracing::info!("sync session ended: {e}"),
                }
            }
            Err(e) => tracing::debug!("cannot reach the relay at {}: {e}", target.address),
        }
        let delay = backoff.next_delay(rand::thread_rng().gen());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = daemon.link.wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How long a refused step waits before it is tried again without other news.
pub const RETRY_REFUSED: Duration = Duration::from_secs(2);
/// How often a professional's device tries to deliver items it holds (F1.5).
pub const DELIVER_HELD_EVERY: Duration = Duration::from_secs(60);

enum Stop {
    Shutdown,
    Reconnect,
}

async fn session(
    daemon: &Arc<Daemon>,
    client: &Arc<RelayClient>,
    mut pushes: mpsc::UnboundedReceiver<Push>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Stop, SyncError> {
    tolerate(daemon.bootstrap(client).await)?;
    daemon.deliver_held_soon();
    let mut retry = tokio::time::interval(RETRY_REFUSED);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = tokio::time::interval(DELIVER_HELD_EVERY);
    held.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        drive(daemon, client).await?;
        tokio::select! {
            p = pushes.recv() => match p {
                Some(p) => tolerate(handle_push(daemon, client, p).await)?,
                None => return Err(SyncError::Client(crate::sync::relay_client::ClientError::Closed("push channel closed".into()))),
            },
            _ = daemon.link.wake.notified() => {}
            _ = retry.tick() => {
                for v in daemon.state().volumes.values_mut() {
                    v.progress.retry_refused();
                }
            }
            _ = held.tick() => daemon.deliver_held_soon(),
            _ = daemon.link.reconnect.notified() => return Ok(Stop::Reconnect),
            _ = client.closed() => return Err(SyncError::Client(crate::sync::relay_client::ClientError::Closed("connection closed".into()))),
            _ = shutdown.changed() => return Ok(Stop::Shutdown),
        }
    }
}

/// A lost connection, or this device being revoked, ends the session.
fn ends_session(e: &SyncError) -> bool {
    match e {
        SyncError::Client(crate::sync::relay_client::ClientError::Closed(_)) => true,
        SyncError::Client(crate::sync::relay_client::ClientError::Refused(w)) => {
            w.code == mes_protocol::wire::ErrorCode::Revoked
        }
        _ => false,
    }
}

/// Only a lost connection (or revocation) ends a session; a refused request is logged and sync goes on
/// (the next push or wake retries).
fn tolerate(r: Result<(), SyncError>) -> Result<(), SyncError> {
    match r {
        Err(e) if ends_session(&e) => Err(e),
        Err(e) => {
            tracing::warn!("sync step refused: {e}");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

async fn handle_push(daemon: &Arc<Daemon>, client: &RelayClient, p: Push) -> Result<(), SyncError> {
    match p {
        Push::Head { volume, head, .. } => {
            if let Some(v) = daemon.state().volumes.get_mut(&volume) {
                v.progress.on_head(head);
            }
        }
        Push::MembershipChanged { space } => {
            if daemon.state().spaces.contains_key(&space) {
                daemon.refresh_space(client, space).await?;
            } else {
                daemon.bootstrap(client).await?;
                // Perhaps a person who activated let this professional in (F1.5).
                daemon.deliver_held_soon();
            }
        }
        Push::History { space, .. } => daemon.sync_history(client, space).await?,
        Push::Pair { rendezvous, body } => {
            daemon.devices.deliver_pairing(&rendezvous, body);
        }
    }
    Ok(())
}

/// Executes steps until every volume is idle.
async fn drive(daemon: &Arc<Daemon>, client: &Arc<RelayClient>) -> Result<(), SyncError> {
    loop {
        // Spaces created while this loop runs are registered before their first upload.
        tolerate(daemon.register_pending(client).await)?;
        // A delegation that lapsed: new epochs before anything new is sealed (F9.2).
        tolerate(daemon.rotate_all_lapsed(client).await)?;
        // Files before the metadata that names them, so another device never learns of a
        // document whose blob the relay does not have yet.
        tolerate(crate::replica::blobs::upload_pending(daemon, client).await)?;
        let steps: Vec<(VolumeId, Step)> = {
            let mut st = daemon.state();
            let me = daemon.identity().principal.principal_id();
            // Someone else's inbox is write-only here: upload drops, never fetch.
            let foreign_inboxes: std::collections::BTreeSet<VolumeId> = st
                .volumes
                .values()
                .filter(|v| {
                    v.meta.kind == mes_protocol::ids::VolumeKind::Inbox
                        && st
                            .spaces
                            .get(&v.meta.space)
                            .is_some_and(|s| s.owner() != me)
                })
                .map(|v| v.meta.volume)
                .collect();
            st.volumes
                .iter_mut()
                .filter_map(|(id, v)| v.progress.next_step(MAX_UPLOAD).map(|s| (*id, s)))
                .filter(|(id, s)| matches!(s, Step::Upload { .. }) || !foreign_inboxes.contains(id))
                .collect()
        };
        if steps.is_empty() {
            return Ok(());
        }
        for (volume, step) in steps {
            let r = match step {
                Step::Upload { from, to } => daemon.upload(client, volume, from, to).await,
                Step::Fetch { after } => daemon.fetch(client, volume, after).await,
                Step::Snapshot => daemon.fetch_snapshot(client, volume).await,
            };
            if let Err(e) = r {
                if ends_session(&e) {
                    return Err(e);
                }
                // A refused step (no key yet, conflict) waits for the next push or wake
                // instead of spinning.
                let mut st = daemon.state();
                tracing::warn!(
                    "sync of volume {} ({}) on {} paused: {e}",
                    volume.short(),
                    st.volumes
                        .get(&volume)
                        .map_or("?", |v| v.meta.label.as_str()),
                    daemon.identity().name()
                );
                if let Some(v) = st.volumes.get_mut(&volume) {
                    if matches!(step, Step::Upload { .. }) {
                        v.progress.on_upload_refused();
                    } else {
                        v.progress.on_disconnected();
                        v.progress.stalled = true;
                    }
                }
            }
        }
    }
}
