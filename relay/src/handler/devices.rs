//! A person's devices: admission at authentication, the list of each person's devices, certificates and revocation (issue 22, finding 3).

use super::{bad_record, internal, Admission, Caller, Relay, Rule, FIRST_DEVICES};
use crate::access::{authorize, Need};
use crate::store::{StoreError, Table};
use mes_protocol::access::membership::{DeviceRevocation, Membership, Signed};
use mes_protocol::crypto::keys::DeviceCert;
use mes_protocol::ids::{DeviceId, PrincipalId};
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, WireError};

/// The key of a device's record: principal || device.
pub(super) fn device_key(principal: PrincipalId, device: DeviceId) -> Vec<u8> {
    [principal.0.as_slice(), device.0.as_slice()].concat()
}

impl Relay {
    /// Puts a device on the caller's person's list (pairing, issue 22 finding 3): only a
    /// listed device of the same principal does, and only a listed device is admitted.
    pub(super) async fn list_device_for_person(
        &self,
        caller: &Caller,
        cert: DeviceCert,
    ) -> Result<Reply, WireError> {
        cert.verify().map_err(bad_record)?;
        if cert.body.principal != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "a device lists devices of its own person only",
            ));
        }
        self.list_device(&cert).await?;
        Ok(Reply::Done)
    }

    /// The live (unrevoked) device certificates of a principal.
    pub(super) async fn list_devices(
        &self,
        caller: &Caller,
        principal: PrincipalId,
    ) -> Result<Reply, WireError> {
        if principal != caller.principal {
            let shares = self
                .memberships
                .read()
                .expect("membership lock")
                .values()
                .any(|m| {
                    authorize(m, caller.principal, Need::Admin).is_ok()
                        && authorize(m, principal, Need::AnyRole).is_ok()
                });
            if !shares {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "devices are listed only for yourself or members of a space you administer",
                ));
            }
        }
        Ok(Reply::Devices {
            certs: self.devices_of(principal).await?,
        })
    }

    /// Admits a device at authentication (issue 22, finding 3): it must be on its person's
    /// list, which a principal's first device starts, a listed device extends
    /// ([`mes_protocol::wire::Request::ListDevice`], pairing) and a recovery kit's admission key extends
    /// (`vouch`); a revoked device never comes back. The principal's signature on a
    /// certificate is not enough: every device of a person holds the principal's keys,
    /// so a stolen device could certify a new one.
    pub async fn admit(
        &self,
        cert: &DeviceCert,
        vouch: Option<&mes_protocol::crypto::recovery::AdmissionVouch>,
    ) -> Result<Admission, WireError> {
        if self.is_revoked(cert.body.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                format!(
                    "device {} was revoked by its principal",
                    cert.body.device.short()
                ),
            ));
        }
        let principal = cert.body.principal;
        let listed = self
            .store
            .get_record(Table::Device, &device_key(principal, cert.body.device))
            .await
            .map_err(internal)?
            .is_some();
        if listed || self.faults.skips(Rule::DeviceList) {
            return self.list_device(cert).await.map(|()| Admission::Listed);
        }
        if let Some(v) = vouch {
            let registered = self
                .store
                .get_record(Table::AdmissionKey, &principal.0)
                .await
                .map_err(internal)?;
            if registered.as_deref() != Some(v.key.0.as_slice()) {
                return Err(WireError::new(
                    ErrorCode::Unauthenticated,
                    "this recovery kit is not the person's current one: make a new kit from one of their devices",
                ));
            }
            v.verify(cert)
                .map_err(|e| WireError::new(ErrorCode::Unauthenticated, e.to_string()))?;
            return self.list_device(cert).await.map(|()| Admission::Listed);
        }
        let has_devices = !self
            .store
            .scan_records(Table::Device, &principal.0)
            .await
            .map_err(internal)?
            .is_empty();
        // Checked again: a concurrent connection of this same first device may have just
        // started the list with it.
        let listed_since = has_devices
            && self
                .store
                .get_record(Table::Device, &device_key(principal, cert.body.device))
                .await
                .map_err(internal)?
                .is_some();
        if has_devices && !listed_since {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "device {} is not on its person's list: pair it from one of their devices (mes pair), or restore it from their recovery kit",
                    cert.body.device.short()
                ),
            ));
        }
        // A principal's first device starts its list, at its first request that needs
        // one or when a grant names its principal: nothing durable for a stranger who
        // only knocks (finding 6).
        let mut waiting = self.first_devices.lock().expect("first devices lock");
        let (certs, order) = &mut *waiting;
        if certs.insert(principal, cert.clone()).is_none() {
            order.push_back(principal);
            while order.len() > FIRST_DEVICES {
                if let Some(old) = order.pop_front() {
                    certs.remove(&old);
                }
            }
        }
        Ok(Admission::FirstDevice)
    }

    /// Lists the waiting first devices of the principals `m` grants something.
    pub(super) async fn list_first_devices_of(&self, m: &Membership) -> Result<(), WireError> {
        let granted: Vec<DeviceCert> = {
            let mut waiting = self.first_devices.lock().expect("first devices lock");
            let (certs, order) = &mut *waiting;
            let granted: Vec<PrincipalId> = certs
                .keys()
                .filter(|p| authorize(m, **p, Need::AnyRole).is_ok())
                .copied()
                .collect();
            order.retain(|p| !granted.contains(p));
            granted.iter().filter_map(|p| certs.remove(p)).collect()
        };
        for cert in granted {
            if let Err(e) = self.list_first_device(&cert).await {
                tracing::info!("a granted first device was not listed: {e}");
            }
        }
        Ok(())
    }

    /// Lists the caller's device if it is a first device not listed yet.
    pub(super) async fn list_pending_first_device(&self, caller: &Caller) -> Result<(), WireError> {
        let Some(cert) = caller.first_device.pending() else {
            return Ok(());
        };
        self.list_first_device(&cert).await?;
        caller.first_device.listed();
        self.first_devices
            .lock()
            .expect("first devices lock")
            .0
            .remove(&caller.principal);
        Ok(())
    }

    /// Lists a first device ([`Admission::FirstDevice`]), unless another device of its
    /// principal started the list meanwhile.
    pub(super) async fn list_first_device(&self, cert: &DeviceCert) -> Result<(), WireError> {
        let principal = cert.body.principal;
        let key = device_key(principal, cert.body.device);
        let others = self
            .store
            .scan_records(Table::Device, &principal.0)
            .await
            .map_err(internal)?;
        if !others.is_empty() && !others.iter().any(|(k, _)| *k == key) {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "another device started this person's list; device {} must be paired from it (mes pair)",
                    cert.body.device.short()
                ),
            ));
        }
        self.list_device(cert).await
    }

    /// Puts a certified device on its principal's list (first device, pairing, recovery).
    pub async fn list_device(&self, cert: &DeviceCert) -> Result<(), WireError> {
        if self.is_revoked(cert.body.device).await? {
            return Err(WireError::new(
                ErrorCode::Revoked,
                format!("device {} is revoked", cert.body.device.short()),
            ));
        }
        let key = device_key(cert.body.principal, cert.body.device);
        if self
            .store
            .get_record(Table::Device, &key)
            .await
            .map_err(internal)?
            .is_none()
        {
            self.store
                .put_record(Table::Device, key, codec::to_bytes(cert))
                .await
                .map_err(internal)?;
            self.note_current(cert).await?;
            // A new device of a member: admins must wrap keys to it.
            for s in self.spaces_of(cert.body.principal) {
                self.pushes.publish_membership(s);
            }
        }
        Ok(())
    }

    pub(super) async fn is_revoked(&self, device: DeviceId) -> Result<bool, WireError> {
        Ok(self
            .store
            .get_record(Table::Revocation, &device.0)
            .await
            .map_err(internal)?
            .is_some())
    }

    /// Live device certificates of a principal.
    pub async fn devices_of(&self, principal: PrincipalId) -> Result<Vec<DeviceCert>, WireError> {
        let mut out = Vec::new();
        for (_, v) in self
            .store
            .scan_records(Table::Device, &principal.0)
            .await
            .map_err(internal)?
        {
            let cert: DeviceCert =
                codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))?;
            if !self.is_revoked(cert.body.device).await? {
                out.push(cert);
            }
        }
        Ok(out)
    }

    pub(super) async fn live_cert(&self, device: DeviceId) -> Result<DeviceCert, WireError> {
        if self.is_revoked(device).await? {
            // `Revoked` is kept for "you, the caller, are revoked"; this is about another device.
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("device {} is revoked", device.short()),
            ));
        }
        // A device that joined a person through pairing has a newer certificate under that
        // person's principal; the newest certificate is the device's current one, kept by
        // device id when it is listed (no scan of every device, finding 6).
        match self.current_cert(device).await? {
            Some(cert) => Ok(cert),
            None => Err(WireError::new(
                ErrorCode::NotFound,
                format!("unknown device {}", device.short()),
            )),
        }
    }

    /// The newest certificate listed for a device.
    pub(super) async fn current_cert(
        &self,
        device: DeviceId,
    ) -> Result<Option<DeviceCert>, WireError> {
        self.store
            .get_record(Table::DeviceCurrent, &device.0)
            .await
            .map_err(internal)?
            .map(|v| {
                codec::from_bytes(&v).map_err(|e| internal(StoreError::corrupt(e.to_string())))
            })
            .transpose()
    }

    /// Keeps `cert` as its device's current certificate if it is the newest.
    pub(super) async fn note_current(&self, cert: &DeviceCert) -> Result<(), WireError> {
        let newer = self
            .current_cert(cert.body.device)
            .await?
            .is_none_or(|c| cert.body.issued_at > c.body.issued_at);
        if newer {
            self.store
                .put_record(
                    Table::DeviceCurrent,
                    cert.body.device.0.to_vec(),
                    codec::to_bytes(cert),
                )
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    pub(super) async fn revoke(
        &self,
        caller: &Caller,
        revocation: Signed<DeviceRevocation>,
    ) -> Result<Reply, WireError> {
        revocation.verify().map_err(bad_record)?;
        if revocation.signer != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "a device can only be revoked by its own principal",
            ));
        }
        let cert = self.live_cert(revocation.body.device).await?;
        if cert.body.principal != caller.principal {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "that device belongs to another principal",
            ));
        }
        self.store
            .put_record(
                Table::Revocation,
                revocation.body.device.0.to_vec(),
                codec::to_bytes(&revocation),
            )
            .await
            .map_err(internal)?;
        self.pushes
            .revoke_device(caller.principal, revocation.body.device);
        for s in self.spaces_of(caller.principal) {
            self.pushes.publish_membership(s);
        }
        Ok(Reply::Done)
    }
}
