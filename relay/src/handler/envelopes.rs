//! Key envelopes: who may wrap a volume's key for whom (private volumes, escrow, recovery), and fetching one's own.

use super::{internal, owner_only, Caller, Relay, Rule};
use crate::access::{authorize, Need};
use crate::store::{StoreError, Table};
use mes_protocol::access::escrow::{EscrowMode, ESCROWED_LABEL};
use mes_protocol::ids::{DeviceId, SpaceId};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError};

use mes_protocol::crypto::envelope::KeyEnvelope;

pub(super) fn envelope_key(space: SpaceId, device: DeviceId, slot: &[u8]) -> Vec<u8> {
    [space.0.as_slice(), device.0.as_slice(), slot].concat()
}

impl Relay {
    /// Stores key envelopes (for members' devices).
    pub(super) async fn put_envelopes(
        &self,
        caller: &Caller,
        envelopes: Vec<KeyEnvelope>,
    ) -> Result<Reply, WireError> {
        // Envelopes for a device revoked since the admin listed the devices are
        // dropped: revocation wins that race; anything else wrong is refused.
        let mut live = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            if !self.is_revoked(e.recipient).await? {
                live.push(e);
            }
        }
        let envelopes = live;
        let checked = if self.faults.skips(Rule::EnvelopeRights) {
            &[][..]
        } else {
            &envelopes[..]
        };
        for e in checked {
            let m = self
                .authorize(e.slot.space, caller.principal, Need::Admin)
                .await?;
            // Only the owner chooses a private volume's keys (F9.1).
            if m.is_private(e.slot.volume) && caller.principal != m.owner() {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "only the owner wraps the keys of a private volume",
                ));
            }
            if e.recipient == mes_protocol::crypto::recovery::recovery_device(m.owner()) {
                continue;
            }
            if let Some(mode) = EscrowMode::of_device(e.recipient) {
                let label = m.volume(e.slot.volume).map(|d| d.label.as_str());
                if label != Some(ESCROWED_LABEL) {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        format!(
                            "only the emergency volume is escrowed, not {}",
                            label.unwrap_or("an unknown volume")
                        ),
                    ));
                }
                if m.refuses(mode) {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        format!("the person refused {} access", mode.name()),
                    ));
                }
                continue;
            }
            let cert = self.live_cert(e.recipient).await?;
            let now = self.clock.now();
            authorize(&m.at(now), cert.body.principal, Need::Read(e.slot.volume)).map_err(
                |err| {
                    WireError::new(
                        ErrorCode::Forbidden,
                        format!(
                            "envelope recipient {} may not read: {}",
                            e.recipient.short(),
                            err.message
                        ),
                    )
                },
            )?;
        }
        let mut spaces = Vec::new();
        for e in envelopes {
            let key = envelope_key(e.slot.space, e.recipient, &codec::to_bytes(&e.slot));
            self.store
                .put_record(Table::Envelope, key, codec::to_bytes(&e))
                .await
                .map_err(internal)?;
            if !spaces.contains(&e.slot.space) {
                spaces.push(e.slot.space);
            }
        }
        // Recipients learn that keys are waiting for them.
        for s in spaces {
            self.pushes.publish_membership(s);
        }
        Ok(Reply::Done)
    }

    /// The envelopes of a space addressed to the calling device.
    pub(super) async fn get_envelopes(
        &self,
        caller: &Caller,
        space: SpaceId,
    ) -> Result<Reply, WireError> {
        self.authorize(space, caller.principal, Need::AnyRole)
            .await?;
        Ok(Reply::Envelopes {
            envelopes: self.envelopes_for(space, caller.device).await?,
        })
    }

    /// The envelopes of a space addressed to its owner's recovery pseudo-device (F12.4);
    /// the owner's principal only.
    pub(super) async fn get_recovery_envelopes(
        &self,
        caller: &Caller,
        space: SpaceId,
    ) -> Result<Reply, WireError> {
        let m = self.membership(space)?;
        owner_only(&m, caller.principal, "reads the recovery envelopes")?;
        Ok(Reply::Envelopes {
            envelopes: self
                .envelopes_for(
                    space,
                    mes_protocol::crypto::recovery::recovery_device(m.owner()),
                )
                .await?,
        })
    }

    /// The envelopes of a space addressed to one (pseudo-)device.
    pub(super) async fn envelopes_for(
        &self,
        space: SpaceId,
        device: DeviceId,
    ) -> Result<Vec<mes_protocol::crypto::envelope::KeyEnvelope>, WireError> {
        self.store
            .scan_records(Table::Envelope, &envelope_key(space, device, &[]))
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(_, v)| {
                codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))
            })
            .collect()
    }
}
