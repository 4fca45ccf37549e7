//! Items a professional holds for a person whose space nobody holds keys to yet (F1.5).
//!
//! The professional's side: a document (sealed into this device's blob cache at once) or
//! the first message of a thread is kept in the sealed store with the person's NIR, and
//! the hub is told only that this professional holds something for that NIR. Once the
//! person has activated and their device has let the holders feed the inbox, delivery
//! drops each item there and releases the hold.
//!
//! The person's side: after an activation, the device asks the hub who holds items and
//! grants each of them `Append` on the inbox, nothing to read (feeding without reading,
//! F7.6).

use mes_protocol::access::membership::Role;
use mes_protocol::enrolment::{CardHolder, EnrolRequest, Hold};
use mes_protocol::ids::SpaceId;
use mes_protocol::record::documents::{DocumentMeta, NewDocument};
use mes_protocol::record::inbox::InboxItem;
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::daemon::{Daemon, INBOX};
use crate::devices::enrolment::hub_refusal;
use crate::sync::relay_client::RelayClient;

/// Sealed-store namespace of the items held (suffix: a random id, never the NIR).
const HELD: &str = "held-for-nir";

/// One item held for a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HeldItem {
    /// The person's NIR (15 characters, with its key).
    nir: String,
    /// What to drop once their space can be fed.
    item: InboxItem,
    /// When the professional gave it.
    at: UnixMillis,
}

async fn holds(c: &RelayClient, request: EnrolRequest) -> Result<Vec<Hold>, ApiError> {
    match c
        .request(Request::Enrol { request })
        .await
        .map_err(hub_refusal)?
    {
        Reply::Holds { holds } => Ok(holds),
        other => Err(ApiError::new(
            ApiErrorCode::Internal,
            format!("unexpected reply to a hold: {other:?}"),
        )),
    }
}

impl Daemon {
    /// Holds a document for the person with this NIR (F1.5): the file is sealed into this
    /// device's cache now, the hub records the hold; delivered when the space can be fed.
    pub async fn hold_document(&self, nir: &str, new: &NewDocument) -> Result<Hold, ApiError> {
        let mut meta: DocumentMeta = crate::record::documents::checked_meta(new)?;
        // The file is checked before the hub hears of anything.
        crate::replica::blobs::open_checked(&self.files, Path::new(&new.path))?;
        let hold = self.announce_hold(nir).await?;
        self.seal_file(&mut meta, Path::new(&new.path))?;
        self.keep_held(&hold.nir, InboxItem::Document(Box::new(meta)))
            .await?;
        Ok(hold)
    }

    /// Holds the first message of a thread for the person with this NIR (F1.5).
    pub async fn hold_message(
        &self,
        nir: &str,
        subject: &str,
        body: &str,
    ) -> Result<Hold, ApiError> {
        crate::record::inbox_items::check_message(subject, body)?;
        let hold = self.announce_hold(nir).await?;
        self.keep_held(
            &hold.nir,
            InboxItem::Message {
                subject: subject.into(),
                body: body.into(),
            },
        )
        .await?;
        Ok(hold)
    }

    /// What a hold answers: kept until the person activates.
    pub fn after_hold(&self, hold: &Hold) -> Vec<String> {
        vec![format!(
            "Retenu pour le NIR {} jusqu'à l'activation de son profil / held for NIR {} until their profile is activated",
            hold.nir, hold.nir
        )]
    }

    /// Tells the hub (which refuses an unknown NIR, or a person who opposed: then nothing
    /// is kept).
    async fn announce_hold(&self, nir: &str) -> Result<Hold, ApiError> {
        let c = self.online_client("holding items for a person")?;
        holds(
            &c,
            EnrolRequest::Hold {
                nir: nir.into(),
                release: false,
            },
        )
        .await?
        .pop()
        .ok_or_else(|| ApiError::new(ApiErrorCode::Internal, "the hub answered no hold"))
    }

    async fn keep_held(&self, nir: &str, item: InboxItem) -> Result<(), ApiError> {
        let held = HeldItem {
            nir: nir.into(),
            item,
            at: UnixMillis::now(),
        };
        let id: [u8; 16] = rand::random();
        let mut batch = self.store.batch();
        batch.put(HELD, &id, &mes_protocol::wire::codec::to_bytes(&held));
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        self.store
            .flush()
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))
    }

    fn held_items(&self) -> Vec<(Vec<u8>, HeldItem)> {
        self.store
            .scan(HELD)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| Some((k, mes_protocol::wire::codec::from_bytes(&v).ok()?)))
            .collect()
    }

    /// What this device holds, one line each.
    pub fn held(&self) -> Vec<String> {
        self.held_items()
            .into_iter()
            .map(|(_, h)| {
                let what = match &h.item {
                    InboxItem::Document(d) => format!("document « {} »", d.title),
                    InboxItem::Message { subject, .. } => format!("message « {subject} »"),
                    other => format!("{other:?}"),
                };
                format!(
                    "NIR {}  {what}  depuis / since {}",
                    h.nir,
                    jiff::Timestamp::from_millisecond(h.at.0 as i64).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Delivers what it can: asks the hub which held-for people activated, and drops
    /// their items into the inbox of each space that lets this professional feed it.
    /// Returns what was delivered, one line per person; what cannot go yet stays.
    pub async fn deliver_held(&self) -> Result<Vec<String>, ApiError> {
        let _one_at_a_time = self.access.held.lock().await;
        let items = self.held_items();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.online_client("delivering held items")?;
        let mut nirs: Vec<String> = items.iter().map(|(_, h)| h.nir.clone()).collect();
        nirs.sort();
        nirs.dedup();
        let mut ready = Vec::new();
        for chunk in nirs.chunks(1_000) {
            ready.extend(
                holds(
                    &c,
                    EnrolRequest::HeldReady {
                        nirs: chunk.to_vec(),
                    },
                )
                .await?,
            );
        }
        let mut delivered = Vec::new();
        for hold in ready {
            let Some(space) = hold.space else { continue };
            if !self.may_feed(&c, space).await {
                continue;
            }
            let mut n = 0;
            for (id, held) in items.iter().filter(|(_, h)| h.nir == hold.nir) {
                if let InboxItem::Document(meta) = &held.item {
                    let blob = meta.blob.parse().map_err(|_| {
                        ApiError::new(ApiErrorCode::Internal, "a held document's blob id")
                    })?;
                    let inbox = Daemon::volume_of(&self.state(), space, crate::daemon::INBOX)?;
                    crate::replica::blobs::mark_pending(&self.files, space, inbox, blob)?;
                }
                self.drop_item(space, &held.item).await?;
                let mut batch = self.store.batch();
                batch.remove(HELD, id);
                self.store
                    .apply(batch)
                    .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
                n += 1;
            }
            holds(
                &c,
                EnrolRequest::Hold {
                    nir: hold.nir.clone(),
                    release: true,
                },
            )
            .await?;
            delivered.push(format!("{n} élément(s) / item(s) → {space}"));
        }
        Ok(delivered)
    }

    /// Delivers in the background when something is held (on connecting, when a
    /// membership changes, and every minute): what cannot go yet is tried again later.
    pub fn deliver_held_soon(self: &std::sync::Arc<Self>) {
        if self.store.count(HELD) == 0 || self.client().is_none() {
            return;
        }
        let d = self.clone();
        tokio::spawn(async move {
            match d.deliver_held().await {
                Ok(done) if !done.is_empty() => tracing::info!("held items delivered: {done:?}"),
                Ok(_) => {}
                Err(e) => tracing::warn!("delivering held items: {e}"),
            }
        });
    }

    /// Whether this device may append to the space's inbox (learning the space first if
    /// the person's grant is new).
    async fn may_feed(&self, c: &RelayClient, space: SpaceId) -> bool {
        if !self.state().spaces.contains_key(&space) {
            if let Err(e) = self.bootstrap(c).await {
                tracing::warn!("learning space {}: {e}", space.short());
            }
        } else if let Err(e) = self.refresh_space(c, space).await {
            tracing::warn!("refreshing space {}: {e}", space.short());
        }
        let me = self.identity().principal.principal_id();
        self.membership_of(space).is_ok_and(|m| {
            m.volumes
                .values()
                .find(|d| d.body.label == INBOX)
                .is_some_and(|d| m.role(me, Some(d.body.volume)).is_some())
        })
    }

    /// The person's side, after an activation: every professional holding items for
    /// them gets `Append` on the inbox of their space (nothing to read). Returns how many.
    pub async fn let_holders_feed(&self, holder: &CardHolder) -> Result<usize, ApiError> {
        let c = self.online_client("letting professionals feed the space")?;
        let held = holds(
            &c,
            EnrolRequest::Holders {
                holder: holder.clone(),
            },
        )
        .await?;
        let mut granted = 0;
        let mut spaces = std::collections::BTreeSet::new();
        for h in held {
            let Some(space) = h.space else { continue };
            // Only a professional the directory lists (the hub's signed word) may feed;
            // remembered, so what they drop is filed under their name.
            match self.find_professional(&h.rpps).await {
                Ok(e) if e.body.principal == h.principal => {}
                _ => {
                    tracing::warn!("a holder is not listed in the directory: not let in");
                    continue;
                }
            }
            let m = self.membership_of(space)?;
            let Some(inbox) = m
                .volumes
                .values()
                .find(|d| d.body.label == INBOX)
                .map(|d| d.body.volume)
            else {
                continue;
            };
            if m.role(h.principal, Some(inbox)).is_some() {
                continue;
            }
            let grant = self.signed_grant(&m, h.principal, Some(inbox), Some(Role::Append));
            c.request(Request::PutGrant { grant })
                .await
                .map_err(hub_refusal)?;
            granted += 1;
            spaces.insert(space);
        }
        for space in spaces {
            self.refresh_space(&c, space)
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
        }
        Ok(granted)
    }
}
