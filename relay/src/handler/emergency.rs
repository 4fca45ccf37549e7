//! Emergency access (F7.5): the hub's escrow identities, break-glass and centre 15 releases.

use super::{envelope_key, internal, Caller, Relay};
use crate::store::{StoreError, Table};
use mes_protocol::access::escrow::{EscrowMode, ESCROWED_LABEL, RELEASE_MILLIS};
use mes_protocol::ids::{PrincipalId, SpaceId};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError};

impl Relay {
    /// The hub's escrow recipients and its deployment's médecin traitant policy.
    pub(super) async fn hub_info(&self) -> Result<Reply, WireError> {
        Ok(Reply::HubInfo {
            centre15: self.escrow.recipient(EscrowMode::Centre15),
            break_glass: self.escrow.recipient(EscrowMode::BreakGlass),
            attending_policy: self.policy.attending,
        })
    }

    /// Releases the escrowed emergency keys of a space to a listed professional's
    /// devices, for [`RELEASE_MILLIS`], unless the person refused the mode; the release
    /// is the first access history entry of the episode.
    pub(super) async fn emergency_access(
        &self,
        caller: &Caller,
        space: SpaceId,
        mode: EscrowMode,
    ) -> Result<Reply, WireError> {
        let m = self.membership(space)?;
        if self.professional(caller.principal).await?.is_none() {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "emergency access is for professionals listed in the directory",
            ));
        }
        if m.refuses(mode) {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("the person refused {} access", mode.name()),
            ));
        }
        if self.blocked(&m, caller.principal).await? {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "this professional is blocked by the person whose space it is",
            ));
        }
        let emergency = m
            .volumes
            .values()
            .find(|d| d.body.label == ESCROWED_LABEL)
            .map(|d| d.body.volume)
            .ok_or_else(|| {
                WireError::new(ErrorCode::NotFound, "this space has no emergency volume")
            })?;
        let escrowed = self.envelopes_for(space, mode.device()).await?;
        if escrowed.is_empty() {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no {} key escrowed for this space yet", mode.name()),
            ));
        }
        let devices = self.devices_of(caller.principal).await?;
        for e in escrowed {
            if e.slot.volume != emergency {
                continue;
            }
            let key = e
                .unwrap(self.escrow.secret(mode))
                .map_err(|err| internal(StoreError::backend(err.to_string())))?;
            for cert in &devices {
                let wrapped = mes_protocol::crypto::envelope::KeyEnvelope::wrap(
                    e.slot,
                    &key,
                    cert.body.device,
                    &cert.body.recipient,
                    &self.key,
                )
                .map_err(|err| internal(StoreError::backend(err.to_string())))?;
                self.store
                    .put_record(
                        Table::Envelope,
                        envelope_key(space, cert.body.device, &codec::to_bytes(&e.slot)),
                        codec::to_bytes(&wrapped),
                    )
                    .await
                    .map_err(internal)?;
            }
        }
        let until = self.clock.now().0 + RELEASE_MILLIS;
        self.store
            .put_record(
                Table::Release,
                [space.0.as_slice(), caller.principal.0.as_slice()].concat(),
                codec::to_bytes(&(mode, until)),
            )
            .await
            .map_err(internal)?;
        self.record_volume_access(&m, caller, emergency).await?;
        self.pushes.publish_to_principal(
            caller.principal,
            mes_protocol::wire::Push::MembershipChanged { space },
        );
        Ok(Reply::Done)
    }

    /// The live emergency release of a principal on a space, if any.
    pub(super) async fn release(
        &self,
        space: SpaceId,
        who: PrincipalId,
    ) -> Result<Option<EscrowMode>, WireError> {
        let key = [space.0.as_slice(), who.0.as_slice()].concat();
        let Some(v) = self
            .store
            .get_record(Table::Release, &key)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let (mode, until): (EscrowMode, u64) =
            codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))?;
        Ok((self.clock.now().0 < until).then_some(mode))
    }

    /// The spaces whose emergency volume is released to `who` now (one scan of the
    /// releases, whatever the number of spaces).
    pub(super) async fn released_to(
        &self,
        who: PrincipalId,
    ) -> Result<std::collections::HashSet<SpaceId>, WireError> {
        let now = self.clock.now().0;
        let mut out = std::collections::HashSet::new();
        for (k, v) in self
            .store
            .scan_records(Table::Release, &[])
            .await
            .map_err(internal)?
        {
            if k.len() != 48 || k[16..] != who.0 {
                continue;
            }
            let (_, until): (EscrowMode, u64) =
                codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))?;
            if now < until {
                out.insert(SpaceId(k[..16].try_into().expect("16 bytes")));
            }
        }
        Ok(out)
    }
}
