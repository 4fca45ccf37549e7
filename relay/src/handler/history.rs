//! The access history (F8.1): reading it, and recording each access to a volume or a file.

use super::{internal, Caller, Relay};
use crate::access::{authorize, Need};
use crate::access_history::Accessor;
use mes_protocol::access::history::{AccessMode, AccessTarget};
use mes_protocol::access::membership::{Membership, Signed};
use mes_protocol::enrolment::principal::DirectoryEntry;
use mes_protocol::ids::{SpaceId, VolumeId};
use mes_protocol::wire::{Reply, WireError, MAX_HISTORY};

impl Relay {
    /// The access history of a space past `after` (owner and admins only, F8.1).
    pub(super) async fn get_history(
        &self,
        caller: &Caller,
        space: SpaceId,
        after: u64,
    ) -> Result<Reply, WireError> {
        self.authorize(space, caller.principal, Need::Admin).await?;
        let entries = if self.faults.forks_history_for(caller.device) {
            self.history.forked(&self.key, space, after).await
        } else {
            self.history.after(space, after, MAX_HISTORY).await
        }
        .map_err(internal)?;
        Ok(Reply::History { entries })
    }

    pub(super) async fn record_volume_access(
        &self,
        m: &Membership,
        caller: &Caller,
        volume: VolumeId,
    ) -> Result<(), WireError> {
        let label = m
            .volume(volume)
            .map(|d| d.label.clone())
            .unwrap_or_default();
        self.record_access(m, caller, AccessTarget::Volume { volume, label })
            .await
    }

    /// Appends an access history entry when someone other than the owner accesses the
    /// space, durably before the data goes out, and tells the owner's devices.
    pub(super) async fn record_access(
        &self,
        m: &Membership,
        caller: &Caller,
        target: AccessTarget,
    ) -> Result<(), WireError> {
        if caller.principal == m.owner() {
            return Ok(());
        }
        let professional = self.professional(caller.principal).await?;
        let holds_grant = authorize(m, caller.principal, Need::AnyRole).is_ok();
        let in_team = |p: &Signed<DirectoryEntry>| {
            m.choices.as_ref().is_some_and(|c| {
                p.body
                    .professional
                    .structure
                    .as_ref()
                    .is_some_and(|s| c.body.care_teams.contains(s))
            })
        };
        let mode = match self.release(m.space(), caller.principal).await? {
            Some(r) if !holds_grant => r.access_mode(),
            _ if self.service(caller.principal).is_some() => AccessMode::Service,
            _ => match &professional {
                Some(p) if in_team(p) => AccessMode::CareTeam,
                Some(_) => AccessMode::Normal,
                None => AccessMode::Delegate,
            },
        };
        let seq = self
            .history
            .append(
                &self.key,
                m.space(),
                Accessor {
                    actor: caller.principal,
                    device: caller.device,
                    professional: professional.map(|p| p.body.professional),
                    mode,
                },
                target,
                self.clock.now(),
            )
            .await
            .map_err(internal)?;
        self.pushes.publish_to_principal(
            m.owner(),
            mes_protocol::wire::Push::History {
                space: m.space(),
                head: seq,
            },
        );
        Ok(())
    }
}
