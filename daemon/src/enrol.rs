//! The person's side of enrolment (F1.3-F1.8, F1.10): requests passed to the hub over
//! the authenticated connection. An activation names the space this device created for
//! the person (a parent creates one per child): the hub binds it to the NIR, so the
//! first device holds the space's keys and the hub password never does.

use mes_protocol::api::{ApiError, ApiErrorCode};
use mes_protocol::enrol::{EnrolRequest, EnrolStatus};
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::{ErrorCode, Reply, Request};

use crate::client::ClientError;
use crate::daemon::Daemon;

impl Daemon {
    /// Sends an enrolment request; an activation is for `space`.
    pub async fn enrol(
        &self,
        space: Option<SpaceId>,
        mut request: EnrolRequest,
    ) -> Result<EnrolStatus, ApiError> {
        let c = self.online_client("enrolment")?;
        if let EnrolRequest::Activate { space: s, .. } = &mut request {
            *s = space.ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::BadRequest,
                    "activation needs the space it is for",
                )
            })?;
        }
        match c.request(Request::Enrol { request }).await {
            Ok(Reply::Enrolment { status }) => Ok(status),
            Ok(other) => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("unexpected reply to an enrolment request: {other:?}"),
            )),
            Err(ClientError::Refused(w)) => {
                let code = match w.code {
                    ErrorCode::BadRecord | ErrorCode::Conflict => ApiErrorCode::BadRequest,
                    ErrorCode::NotFound => ApiErrorCode::NotFound,
                    ErrorCode::Internal => ApiErrorCode::Internal,
                    _ => ApiErrorCode::Forbidden,
                };
                Err(ApiError::new(code, w.message))
            }
            Err(ClientError::Closed(m)) => Err(ApiError::new(ApiErrorCode::Offline, m)),
        }
    }
}
