//! The catalogue of approved services, the person's side (F6): the hub's signed list,
//! checked against the pinned relay key and kept for offline display, and the person's
//! consent to a service (F6.2), which lives in the space as per-volume write grants on
//! exactly the data the person chose among what the service was approved for. Revoking
//! withdraws them and starts new key epochs, as for a professional.

use mes_protocol::access::membership::{Membership, Role, Signed};
use mes_protocol::enrolment::catalogue::{data_covers, CatalogueEntry, ServiceView};
use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId};
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};
use std::collections::BTreeSet;

use crate::daemon::Daemon;

/// Sealed-store namespace of the verified catalogue entries, by service principal.
const CATALOGUE: &str = "catalogue";

/// The data items of `entry` the principal holds a grant on in `m`.
fn allowed(m: &Membership, entry: &CatalogueEntry) -> Vec<String> {
    let p = entry.service.principal;
    entry
        .service
        .data
        .iter()
        .filter(|item| {
            m.volumes.values().any(|d| {
                data_covers(item, &d.body.label)
                    && m.role(p, Some(d.body.volume)).is_some_and(Role::can_read)
            })
        })
        .cloned()
        .collect()
}

/// A service as the space `m` sees it.
fn view(e: CatalogueEntry, m: Option<&Membership>) -> ServiceView {
    ServiceView {
        allowed: m.map(|m| allowed(m, &e)).unwrap_or_default(),
        suspended_fr: e
            .suspended
            .as_ref()
            .map(mes_protocol::enrolment::catalogue::Suspension::fr),
        suspended_en: e
            .suspended
            .as_ref()
            .map(mes_protocol::enrolment::catalogue::Suspension::en),
        service: e.service,
    }
}

impl Daemon {
    /// Fetches the hub's catalogue, verifies every entry with the pinned relay key and
    /// keeps it; offline, the last verified copy.
    pub async fn refresh_catalogue(&self) -> Result<Vec<Signed<CatalogueEntry>>, ApiError> {
        let Some(c) = self.client() else {
            return Ok(self.known_services());
        };
        let entries = match c.request(Request::GetCatalogue).await {
            Ok(Reply::Catalogue { entries }) => entries,
            Ok(r) => {
                return Err(ApiError::new(
                    ApiErrorCode::Internal,
                    format!("unexpected {r:?}"),
                ))
            }
            Err(e) => return Err(ApiError::new(ApiErrorCode::Offline, e.to_string())),
        };
        if let Some(bad) = entries
            .iter()
            .find(|e| e.signer != c.relay_key || e.verify().is_err())
        {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!(
                    "the catalogue entry of service {:?} is not signed by the hub; nothing kept",
                    bad.body.service.id
                ),
            ));
        }
        let mut batch = self.store.batch();
        for e in &entries {
            batch.put(
                CATALOGUE,
                &e.body.service.principal.0,
                &mes_protocol::wire::codec::to_bytes(e),
            );
        }
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        Ok(entries)
    }

    /// The verified entries kept, by id.
    pub(crate) fn known_services(&self) -> Vec<Signed<CatalogueEntry>> {
        let mut v: Vec<Signed<CatalogueEntry>> = self
            .store
            .scan(CATALOGUE)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| mes_protocol::wire::codec::from_bytes(&v).ok())
            .collect();
        v.sort_by(|a, b| a.body.service.id.cmp(&b.body.service.id));
        v
    }

    /// The kept entry of a service principal, if it is one.
    pub(crate) fn known_service(&self, principal: PrincipalId) -> Option<CatalogueEntry> {
        self.store
            .get_decoded::<Signed<CatalogueEntry>>(CATALOGUE, &principal.0)
            .map(|e| e.body)
    }

    /// The catalogue as this space sees it: each service with what the person allows it.
    pub async fn catalogue(&self, space: SpaceId) -> Result<Vec<ServiceView>, ApiError> {
        let entries = self.refresh_catalogue().await?;
        let m = self.membership_of(space).ok();
        Ok(entries
            .into_iter()
            .map(|e| view(e.body, m.as_ref()))
            .collect())
    }

    async fn service_by_id(&self, id: &str) -> Result<CatalogueEntry, ApiError> {
        self.refresh_catalogue()
            .await?
            .into_iter()
            .map(|e| e.body)
            .find(|e| e.service.id == id)
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::NotFound,
                    format!("no service {id:?} in the catalogue"),
                )
            })
    }

    /// Allows a service to exchange `data` (items it was approved for; all of them when
    /// empty) with the space, and nothing else: what it held beyond is withdrawn.
    pub async fn allow_service(
        &self,
        space: SpaceId,
        id: &str,
        data: &[String],
    ) -> Result<ServiceView, ApiError> {
        let entry = self.service_by_id(id).await?;
        let s = &entry.service;
        if let Some(why) = &entry.suspended {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!("service {id:?} is {why}: it cannot be allowed anything"),
            ));
        }
        if let Some(extra) = data.iter().find(|d| !s.data.contains(d)) {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                format!(
                    "service {id:?} was approved to exchange {}, not {extra:?}",
                    s.data.join(", ")
                ),
            ));
        }
        let chosen: Vec<&String> = if data.is_empty() {
            s.data.iter().collect()
        } else {
            data.iter().collect()
        };
        let c = self.online_client("allowing a service")?;
        let m = self.membership_of(space)?;
        self.require_manager(&m, "allow a service")?;
        let wanted: BTreeSet<VolumeId> = m
            .volumes
            .values()
            .filter(|d| chosen.iter().any(|item| data_covers(item, &d.body.label)))
            .map(|d| d.body.volume)
            .collect();
        if wanted.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::NotFound,
                "this space holds none of that data yet",
            ));
        }
        let p = s.principal;
        let mut grants = Vec::new();
        let mut dropped = Vec::new();
        for ((who, scope), g) in &m.grants {
            if let (true, Some(v), Some(_)) = (*who == p, scope, g.body.role) {
                if !wanted.contains(v) {
                    grants.push(self.signed_grant(&m, p, Some(*v), None));
                    dropped.push(*v);
                }
            }
        }
        for v in &wanted {
            if m.role(p, Some(*v)) != Some(Role::Write) {
                grants.push(self.signed_grant(&m, p, Some(*v), Some(Role::Write)));
            }
        }
        for grant in grants {
            c.request(Request::PutGrant { grant })
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        }
        self.start_epochs(&dropped)?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
        // The entry just fetched, with the grants just made.
        Ok(view(entry, Some(&self.membership_of(space)?)))
    }

    /// Revokes everything a service was allowed on the space (F6.2).
    pub async fn revoke_service(&self, space: SpaceId, id: &str) -> Result<(), ApiError> {
        let entry = self.service_by_id(id).await?;
        self.withdraw(space, entry.service.principal).await
    }
}
