//! Emergency access (F7.5) on the daemon's side: the owner escrows the keys of the
//! emergency volume to the hub's escrow recipient of each mode the person did not refuse,
//! and refusing a mode drops its envelopes at the relay and starts a new epoch the escrow
//! never gets; a professional asks for a release and then syncs the emergency volume like
//! any other.

use mes_protocol::api::{ApiError, ApiErrorCode};
use mes_protocol::envelope::KeyEnvelope;
use mes_protocol::escrow::{EmergencyPolicy, EscrowMode, ESCROWED_LABEL};
use mes_protocol::ids::SpaceId;
use mes_protocol::membership::{Membership, Signed};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{Reply, Request};

use crate::client::RelayClient;
use crate::daemon::{Daemon, State, SyncError};

fn api(code: ApiErrorCode, m: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: m.into(),
    }
}

impl Daemon {
    /// Asks the relay for its escrow recipients once per run.
    pub(crate) async fn learn_escrow(&self, c: &RelayClient) -> Result<(), SyncError> {
        if self.escrow.lock().expect("escrow lock").is_some() {
            return Ok(());
        }
        match c.request(Request::GetEscrow).await? {
            Reply::Escrow {
                centre15,
                break_glass,
            } => {
                *self.escrow.lock().expect("escrow lock") = Some((centre15, break_glass));
                Ok(())
            }
            r => Err(SyncError::Refused(format!("GetEscrow answered {r:?}"))),
        }
    }

    /// Envelopes of the emergency volume's keys for the escrow of every mode not refused.
    pub(crate) fn wrap_escrow(&self, st: &mut State, m: &Membership) -> Vec<KeyEnvelope> {
        let Some((c15, bg)) = self.escrow.lock().expect("escrow lock").clone() else {
            return Vec::new();
        };
        let Some(decl) = m.volumes.values().find(|d| d.body.label == ESCROWED_LABEL) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for mode in EscrowMode::ALL {
            if m.refuses(mode) {
                continue;
            }
            let recipient = match mode {
                EscrowMode::Centre15 => &c15,
                EscrowMode::BreakGlass => &bg,
            };
            for (slot, key) in st.keys.slots(decl.body.volume, decl.body.generation) {
                if st.wrapped.contains(&(slot, mode.device())) {
                    continue;
                }
                match KeyEnvelope::wrap(slot, key, mode.device(), recipient) {
                    Ok(e) => out.push(e),
                    Err(e) => tracing::warn!("cannot escrow for {}: {e}", mode.name()),
                }
            }
        }
        out
    }

    /// Sets which emergency modes the person refuses (owner only).
    pub async fn set_emergency_policy(
        &self,
        space: SpaceId,
        refuse_centre15: bool,
        refuse_break_glass: bool,
    ) -> Result<(), ApiError> {
        let c = self.client().ok_or_else(|| {
            api(
                ApiErrorCode::Offline,
                "emergency access choices go to the relay, and the daemon is offline",
            )
        })?;
        let (m, policy) = {
            let st = self.state();
            let m = st
                .spaces
                .get(&space)
                .and_then(|s| s.membership.clone())
                .ok_or_else(|| api(ApiErrorCode::Offline, "membership not synced yet"))?;
            if m.owner() != st.identity.principal.principal_id() {
                return Err(api(
                    ApiErrorCode::Forbidden,
                    "only the person whose space it is chooses emergency access",
                ));
            }
            let now = UnixMillis::now();
            let version = m
                .emergency
                .as_ref()
                .map_or(now.0, |p| p.body.version.max(now.0 - 1) + 1);
            let policy = Signed::sign(
                EmergencyPolicy {
                    space,
                    refuse_centre15,
                    refuse_break_glass,
                    version,
                    issued_at: now,
                },
                &st.identity.principal.signing,
            );
            (m, policy)
        };
        let newly_refused = EscrowMode::ALL
            .into_iter()
            .any(|md| policy.body.refuses(md) && !m.refuses(md));
        c.request(Request::PutEmergencyPolicy { policy })
            .await
            .map_err(|e| api(ApiErrorCode::Forbidden, e.to_string()))?;
        if newly_refused {
            // What is written from now on is sealed under a key the escrow never gets.
            let emergency = m
                .volumes
                .values()
                .find(|d| d.body.label == ESCROWED_LABEL)
                .map(|d| d.body.volume);
            self.start_epochs(&emergency.into_iter().collect::<Vec<_>>())?;
            self.store
                .flush()
                .await
                .map_err(|e| api(ApiErrorCode::Storage, e.to_string()))?;
        }
        self.refresh_space(&c, space)
            .await
            .map_err(|e| api(ApiErrorCode::Internal, e.to_string()))
    }

    /// A professional asks for emergency access to a space, then syncs it.
    pub async fn emergency_access(&self, space: SpaceId, mode: EscrowMode) -> Result<(), ApiError> {
        let c = self.client().ok_or_else(|| {
            api(
                ApiErrorCode::Offline,
                "emergency access needs the relay, and the daemon is offline",
            )
        })?;
        c.request(Request::EmergencyAccess { space, mode })
            .await
            .map_err(|e| api(ApiErrorCode::Forbidden, e.to_string()))?;
        self.bootstrap(&c)
            .await
            .map_err(|e| api(ApiErrorCode::Internal, e.to_string()))
    }
}
