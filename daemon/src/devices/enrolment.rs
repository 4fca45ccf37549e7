//! The person's side of enrolment (F1.3-F1.8, F1.10): requests passed to the hub over
//! the authenticated connection. An activation names the space this device created for
//! the person (a parent creates one per child): the hub binds it to the NIR, so the
//! first device holds the space's keys and the hub password never does.

use mes_protocol::enrolment::{EnrolProfile, EnrolRequest, EnrolStatus};
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{ErrorCode, Reply, Request};

use crate::daemon::Daemon;
use crate::sync::relay_client::ClientError;

/// What the person reads when the hub refuses an enrolment request, or cannot be reached.
pub(crate) fn hub_refusal(e: ClientError) -> ApiError {
    match e {
        ClientError::Refused(w) => {
            let code = match w.code {
                ErrorCode::BadRecord | ErrorCode::Conflict => ApiErrorCode::BadRequest,
                ErrorCode::NotFound => ApiErrorCode::NotFound,
                ErrorCode::Internal => ApiErrorCode::Internal,
                _ => ApiErrorCode::Forbidden,
            };
            ApiError::new(code, w.message)
        }
        ClientError::Closed(m) => ApiError::new(ApiErrorCode::Offline, m),
    }
}

/// Sealed-store namespace of the profiles this device enrols, by label.
const PROFILES: &str = "enrol-profiles";

impl Daemon {
    /// Sends an enrolment request; an activation is for `space`.
    pub async fn enrol(
        &self,
        space: Option<SpaceId>,
        mut request: EnrolRequest,
    ) -> Result<EnrolStatus, ApiError> {
        let c = self.online_client("enrolment")?;
        if let EnrolRequest::ResetPasswordAsOwner { space: s, .. } = &mut request {
            *s = space.ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::BadRequest,
                    "setting a password with this device's keys needs the account's space",
                )
            })?;
        }
        if let EnrolRequest::Activate { space: s, .. } = &mut request {
            *s = space.ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::BadRequest,
                    "activation needs the space it is for",
                )
            })?;
            // The hub binds a space it knows: register it now rather than racing the
            // sync task (registration is idempotent).
            let registered = self
                .state()
                .spaces
                .get(s)
                .is_some_and(|x| x.record.registered);
            if !registered {
                self.register_pending(&c)
                    .await
                    .map_err(|e| ApiError::new(ApiErrorCode::Offline, e.to_string()))?;
            }
        }
        // On activation, and again whenever the status says activated (a grant that
        // failed is tried again), professionals holding items for the person may feed
        // the space (F1.5). The answer stands whatever this does.
        let (holder, activating) = match &request {
            EnrolRequest::Activate { holder, .. } => (Some(holder.clone()), true),
            EnrolRequest::Status { holder } => (Some(holder.clone()), false),
            _ => (None, false),
        };
        match c.request(Request::Enrol { request }).await {
            Ok(Reply::Enrolment { status }) => {
                if let (Some(holder), "activated") = (holder, status.status.as_str()) {
                    match self.let_holders_feed(&holder).await {
                        Ok(n) if n > 0 => tracing::info!("{n} professional(s) may feed the space"),
                        Ok(_) => {}
                        // Asked from a device that does not own the space: not for it.
                        Err(e) if !activating => tracing::debug!("holders not asked: {e}"),
                        Err(e) => tracing::warn!("letting holders feed the space: {e}"),
                    }
                }
                Ok(status)
            }
            Ok(other) => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("unexpected reply to an enrolment request: {other:?}"),
            )),
            Err(e) => Err(hub_refusal(e)),
        }
    }

    /// The profiles this device enrols, by name.
    pub fn enrol_profiles(&self) -> Vec<EnrolProfile> {
        self.store
            .scan(PROFILES)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| mes_protocol::wire::codec::from_bytes(&v).ok())
            .collect()
    }

    fn enrol_profile(&self, label: &str) -> Option<EnrolProfile> {
        self.store.get_decoded(PROFILES, label.as_bytes())
    }

    /// An enrolment request for the profile `label` (F1.10). An activation uses the
    /// profile's space, or the space of that label this device owns, or a new one; the
    /// answer is kept with the profile, so a parent sees each child's status.
    pub async fn enrol_for(
        &self,
        label: &str,
        request: EnrolRequest,
    ) -> Result<EnrolStatus, ApiError> {
        let label = label.trim();
        if label.is_empty() {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "name the profile (\"Moi\", a child's first name)",
            ));
        }
        let known = self.enrol_profile(label);
        let holder = match (request.holder(), &known) {
            (Some(h), _) => h.clone(),
            (None, Some(p)) => p.holder.clone(),
            (None, None) => {
                return Err(ApiError::new(
                    ApiErrorCode::NotFound,
                    format!("no profile {label:?} is enrolled from this device"),
                ))
            }
        };
        let mut space = known.as_ref().and_then(|p| p.space);
        if matches!(request, EnrolRequest::Activate { .. }) && space.is_none() {
            let me = self.identity().principal.principal_id();
            let owned = self
                .list_spaces()
                .into_iter()
                .find(|s| s.label == label && s.owner == me)
                .map(|s| s.space);
            space = Some(match owned {
                Some(s) => s,
                None => self.create_space(label).await?,
            });
        }
        let for_space = space.filter(|_| matches!(request, EnrolRequest::Activate { .. }));
        let status = self.enrol(for_space, request).await?;
        let profile = EnrolProfile {
            label: label.to_string(),
            holder,
            space: if status.status == "activated" {
                space
            } else {
                known.and_then(|p| p.space)
            },
            status: status.clone(),
            at: mes_protocol::time::UnixMillis::now(),
        };
        let mut batch = self.store.batch();
        batch.put(
            PROFILES,
            label.as_bytes(),
            &mes_protocol::wire::codec::to_bytes(&profile),
        );
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        Ok(status)
    }
}
