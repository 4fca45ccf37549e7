//! Enrolment requests (F1) answered through the hub's enrolment service, and the holds they place.

use super::{Caller, Relay};
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::{ErrorCode, Reply, WireError};
use std::sync::Arc;

/// The wire error a refused enrolment request answers.
pub(super) fn refusal_error(e: crate::enrolment::service::Refusal) -> WireError {
    use crate::enrolment::service::Refusal;
    let code = match &e {
        Refusal::Storage(_) => ErrorCode::Internal,
        Refusal::Locked(_) | Refusal::Changed | Refusal::TooSoon(..) => ErrorCode::Busy,
        Refusal::IdentifierTaken(_) | Refusal::State(_) => ErrorCode::Conflict,
        Refusal::NoEmail => ErrorCode::NotFound,
        Refusal::BadNir(_) | Refusal::MalformedCode(_) | Refusal::Rule(_) => ErrorCode::BadRecord,
        Refusal::Unknown
        | Refusal::WrongCode { .. }
        | Refusal::NoCode
        | Refusal::Expired(_)
        | Refusal::WrongPassword => ErrorCode::Forbidden,
    };
    WireError::new(code, e.to_string())
}

impl Relay {
    /// An enrolment request (F1.3-F1.8): refused while the device failed too often;
    /// activation binds the space the caller owns.
    pub(super) async fn enrol(
        &self,
        caller: &Caller,
        request: mes_protocol::enrolment::EnrolRequest,
    ) -> Result<Reply, WireError> {
        use crate::enrolment::service::Refusal;
        let hub =
            self.enrolment.get().cloned().ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, "this relay runs no enrolment")
            })?;
        if matches!(
            request,
            mes_protocol::enrolment::EnrolRequest::Hold { .. }
                | mes_protocol::enrolment::EnrolRequest::HeldReady { .. }
                | mes_protocol::enrolment::EnrolRequest::Holders { .. }
        ) {
            return self.enrol_holds(caller, hub, request).await;
        }
        if let mes_protocol::enrolment::EnrolRequest::Activate { space, .. }
        | mes_protocol::enrolment::EnrolRequest::ResetPasswordAsOwner { space, .. } = &request
        {
            let m = self.membership(*space)?;
            if m.owner() != caller.principal {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "only a device of the person who owns the space can activate it or set its account's password",
                ));
            }
        }
        let now = self.clock.now();
        let guessers = caller.guessers();
        let account_space = {
            let hub = hub.clone();
            move |identifier: &str| -> Option<SpaceId> {
                let nir = hub.tables.identifier(identifier).ok()??;
                Some(hub.tables.person(&nir).ok()??.account?.space)
            }
        };
        let closing = match &request {
            mes_protocol::enrolment::EnrolRequest::Close { identifier, .. } => {
                Some((identifier.clone(), true))
            }
            mes_protocol::enrolment::EnrolRequest::Reopen { identifier, .. } => {
                Some((identifier.clone(), false))
            }
            _ => None,
        };
        let answer = tokio::task::spawn_blocking(move || {
            hub.admit(&guessers, now)?;
            let r = hub.serve_described(&request, now);
            if matches!(
                r,
                Err(Refusal::Unknown
                    | Refusal::WrongCode { .. }
                    | Refusal::WrongPassword
                    | Refusal::BadNir(_)
                    | Refusal::MalformedCode(_))
            ) {
                hub.failed(&guessers, now);
            }
            r
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?;
        if let (Ok((status, _)), Some((identifier, close))) = (&answer, closing) {
            if let Some(space) = account_space(&identifier) {
                let erase_at = match status {
                    crate::enrolment::Status::Closed { purge_at, .. } if close => Some(*purge_at),
                    _ => None,
                };
                self.set_closed(space, erase_at).await?;
            }
        }
        match answer {
            Ok((s, detail)) => Ok(Reply::Enrolment {
                status: mes_protocol::enrolment::EnrolStatus {
                    status: s.name().into(),
                    detail,
                },
            }),
            Err(e) => Err(refusal_error(e)),
        }
    }

    /// Holds of items for people without a device yet (F1.5): a listed professional
    /// records or releases a hold and asks which are ready; the person, from the device
    /// that owns the activated space, asks who holds items for them.
    pub(super) async fn enrol_holds(
        &self,
        caller: &Caller,
        hub: Arc<crate::enrolment::service::EnrolmentHub>,
        request: mes_protocol::enrolment::EnrolRequest,
    ) -> Result<Reply, WireError> {
        use crate::enrolment::holds;
        use crate::enrolment::service::Refusal;
        use mes_protocol::enrolment::{EnrolRequest as R, Hold};
        let by = caller.principal;
        if matches!(request, R::Hold { .. } | R::HeldReady { .. })
            && self.professional(by).await?.is_none()
        {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "only a professional listed in the directory holds items for a person",
            ));
        }
        let now = self.clock.now();
        let guessers = caller.guessers();
        let asked = tokio::task::spawn_blocking(move || {
            let t = &hub.tables;
            match &request {
                R::Hold { nir, release } => {
                    if !*release {
                        hub.count_hold(by, now)?;
                    }
                    holds::hold(t, nir, by, *release).map(|h| (vec![h], None))
                }
                R::HeldReady { nirs } => holds::ready(t, nirs, by).map(|h| (h, None)),
                R::Holders { holder } => {
                    hub.admit(&guessers, now)?;
                    // The serial is checked as for every request naming a card holder.
                    let found =
                        crate::enrolment::service::find(t, &holder.nir, &holder.vitale_serial, now)
                            .inspect_err(|e| {
                                if matches!(e, Refusal::Unknown | Refusal::BadNir(_)) {
                                    hub.failed(&guessers, now);
                                }
                            })?;
                    let nir =
                        mes_protocol::enrolment::nir::Nir::with_key(&found.person.insured.nir);
                    let (who, space) = holds::holders(t, &nir)?;
                    let held = who
                        .into_iter()
                        .map(|principal| Hold {
                            nir: nir.clone(),
                            principal,
                            space: Some(space),
                            rpps: String::new(),
                        })
                        .collect();
                    Ok((held, Some(space)))
                }
                _ => unreachable!("only hold requests come here"),
            }
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(refusal_error)?;
        let (mut holds, owned) = asked;
        if let Some(space) = owned {
            if self.membership(space)?.owner() != by {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "who holds items for a person is told only to the device that owns their space",
                ));
            }
            for h in &mut holds {
                if let Some(e) = self.professional(h.principal).await? {
                    h.rpps = e.body.professional.rpps.as_str().to_string();
                }
            }
        }
        Ok(Reply::Holds { holds })
    }
}
