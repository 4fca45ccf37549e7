//! The person's devices: listing them with their state, and revoking one (new epochs on every volume this device administers, wrapped to the others only).

use crate::daemon::{client_api, storage, sync_api, Daemon};
use mes_protocol::access::membership::{DeviceRevocation, Role, Signed};
use mes_protocol::crypto::envelope::KeySlot;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{DeviceId, Epoch, Generation, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode, DeviceSummary};
use mes_protocol::wire::{Reply, Request};
use rand::rngs::OsRng;

impl Daemon {
    /// This person's devices, as the relay knows them.
    pub async fn list_devices(&self) -> Result<Vec<DeviceSummary>, ApiError> {
        let c = self.online_client("this")?;
        let (me, this) = {
            (
                self.identity().principal.principal_id(),
                self.identity().device.device_id(),
            )
        };
        match c
            .request(Request::ListDevices { principal: me })
            .await
            .map_err(client_api)?
        {
            Reply::Devices { certs } => Ok(certs
                .into_iter()
                .filter(|c| c.verify().is_ok() && c.body.principal == me)
                .map(|c| DeviceSummary {
                    device: c.body.device,
                    name: c.body.name,
                    this_device: c.body.device == this,
                })
                .collect()),
            r => Err(ApiError::new(
                ApiErrorCode::Internal,
                format!("unexpected reply {r:?}"),
            )),
        }
    }

    /// Revokes one of this person's devices and starts a new key epoch on every volume
    /// this person administers, wrapped to the remaining devices only.
    pub async fn revoke_device(&self, device: DeviceId) -> Result<(), ApiError> {
        let c = self.online_client("this")?;
        let revocation = {
            if device == self.identity().device.device_id() {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "a device cannot revoke itself; revoke it from another device",
                ));
            }
            Signed::sign(
                DeviceRevocation {
                    device,
                    revoked_at: UnixMillis::now(),
                },
                &self.identity().principal.signing,
            )
        };
        c.request(Request::RevokeDevice { revocation })
            .await
            .map_err(client_api)?;
        let spaces: Vec<SpaceId> = {
            let mut st = self.state();
            let me = self.identity().principal.principal_id();
            let mut batch = self.store.batch();
            let admin: Vec<(SpaceId, Vec<(VolumeId, Generation)>)> = st
                .spaces
                .values()
                .filter(|s| {
                    s.owner() == me
                        || s.membership
                            .as_ref()
                            .is_some_and(|m| m.role(me, None) == Some(Role::Admin))
                })
                .map(|s| {
                    (
                        s.id(),
                        st.volumes
                            .values()
                            .filter(|v| v.meta.space == s.id() && v.meta.kind != VolumeKind::Inbox)
                            .map(|v| (v.meta.volume, v.meta.generation))
                            .collect(),
                    )
                })
                .collect();
            for (space, vols) in &admin {
                for (volume, generation) in vols {
                    let next = st
                        .keys
                        .current(*volume, *generation)
                        .map(|(e, _)| Epoch(e.0 + 1))
                        .unwrap_or(Epoch(0));
                    let slot = KeySlot {
                        space: *space,
                        volume: *volume,
                        generation: *generation,
                        epoch: next,
                    };
                    st.keys
                        .insert(slot, SymmetricKey::generate(&mut OsRng), &mut batch);
                }
            }
            self.store.apply(batch).map_err(storage)?;
            admin.into_iter().map(|(s, _)| s).collect()
        };
        self.store.flush().await.map_err(storage)?;
        for s in spaces {
            self.refresh_space(&c, s).await.map_err(sync_api)?;
        }
        Ok(())
    }
}
