//! Emergency access (F7.5) on the daemon's side: the owner escrows the keys of the
//! emergency volume to the hub's escrow recipient of each mode the person did not refuse,
//! and refusing a mode drops its envelopes at the relay and starts a new epoch the escrow
//! never gets; a professional asks for a release and then syncs the emergency volume like
//! any other.

use mes_protocol::access::choices::AttendingPolicy;
use mes_protocol::access::escrow::{EscrowMode, ESCROWED_LABEL};
use mes_protocol::access::membership::Membership;
use mes_protocol::crypto::envelope::KeyEnvelope;
use mes_protocol::crypto::keys::AgeRecipient;
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::{Reply, Request};

use crate::daemon::{Daemon, State, SyncError};
use crate::sync::relay_client::RelayClient;

/// What the hub said of itself.
#[derive(Clone, Debug)]
pub struct HubInfo {
    /// Escrow recipient of SAMU-Centre 15.
    pub centre15: AgeRecipient,
    /// Escrow recipient of break-glass.
    pub break_glass: AgeRecipient,
    /// The deployment's médecin traitant policy.
    pub attending_policy: AttendingPolicy,
}

impl Daemon {
    /// Asks the relay what it is once per run.
    pub(crate) async fn learn_hub(&self, c: &RelayClient) -> Result<(), SyncError> {
        if self
            .access
            .hub_info
            .lock()
            .expect("hub info lock")
            .is_some()
        {
            return Ok(());
        }
        match c.request(Request::GetHubInfo).await? {
            Reply::HubInfo {
                centre15,
                break_glass,
                attending_policy,
            } => {
                *self.access.hub_info.lock().expect("hub info lock") = Some(HubInfo {
                    centre15,
                    break_glass,
                    attending_policy,
                });
                Ok(())
            }
            r => Err(SyncError::Refused(format!("GetHubInfo answered {r:?}"))),
        }
    }

    /// The deployment's médecin traitant policy, once the hub was asked.
    pub fn hub_attending_policy(&self) -> AttendingPolicy {
        self.access
            .hub_info
            .lock()
            .expect("hub info lock")
            .as_ref()
            .map(|h| h.attending_policy)
            .unwrap_or_default()
    }

    /// Envelopes of the emergency volume's keys for the escrow of every mode not refused.
    pub(crate) fn wrap_escrow(&self, st: &mut State, m: &Membership) -> Vec<KeyEnvelope> {
        let Some(HubInfo {
            centre15: c15,
            break_glass: bg,
            ..
        }) = self.access.hub_info.lock().expect("hub info lock").clone()
        else {
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
                match KeyEnvelope::wrap(
                    slot,
                    key,
                    mode.device(),
                    recipient,
                    &self.identity().principal.signing,
                ) {
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
        let (old, _) = self
            .update_choices(space, |c| {
                c.refuse_centre15 = refuse_centre15;
                c.refuse_break_glass = refuse_break_glass;
                Ok(())
            })
            .await?;
        let newly_refused = (refuse_centre15 && !old.refuse_centre15)
            || (refuse_break_glass && !old.refuse_break_glass);
        if newly_refused {
            // What is written from now on is sealed under a key the escrow never gets.
            let emergency = Daemon::volume_of(&self.state(), space, ESCROWED_LABEL)?;
            self.start_epochs(&[emergency])?;
            self.store
                .flush()
                .await
                .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        }
        self.refresh_online(space).await
    }

    /// A professional asks for emergency access to a space, then syncs it.
    pub async fn emergency_access(&self, space: SpaceId, mode: EscrowMode) -> Result<(), ApiError> {
        let c = self.online_client("emergency access")?;
        c.request(Request::EmergencyAccess { space, mode })
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        self.bootstrap(&c)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }
}
