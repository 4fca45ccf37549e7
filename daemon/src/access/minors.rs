//! Minors' spaces (F9.1, F9.4): a parent hands a child's space over to the child at the
//! handover age, after which the child owns it; documents the child keeps from the
//! parents live in the private volume, whose keys only the child's principal derives or
//! wraps. See docs/consent.md "Delegation".

use mes_protocol::access::authority::{age_on, paris_day, Handover, DOCUMENTS_PRIVATE};
use mes_protocol::access::membership::{Role, Signed};
use mes_protocol::crypto::keys::AgeRecipient;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId};
use mes_protocol::record::Profile;
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use mes_protocol::wire::Request;

use crate::daemon::Daemon;

/// The private volume's id and epoch-0 key, derived from the owner's principal secret:
/// every device of the owner finds the same ones offline, and nobody else can.
fn derive_private(space: SpaceId, owner_secret: &str, label: &str) -> (VolumeId, SymmetricKey) {
    let mut h = blake3::Hasher::new_derive_key("mes private volume v1");
    h.update(owner_secret.as_bytes());
    h.update(&space.0);
    h.update(label.as_bytes());
    let out = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&out.as_bytes()[..16]);
    let key = blake3::derive_key("mes private volume key v1", out.as_bytes());
    (VolumeId(id), SymmetricKey::from_bytes(key))
}

impl Daemon {
    /// Hands the space over to the minor `to` (F9.1): only its owner, and only once the
    /// minor reached the handover age of the policy in force (16 under `law-2022`, 15
    /// under `citizen-committee`), from the profile's birth date. Pending inbox drops
    /// are filed first: the ones that come next are sealed to the minor.
    pub async fn hand_over(
        &self,
        space: SpaceId,
        to: PrincipalId,
        inbox_recipient: AgeRecipient,
    ) -> Result<(), ApiError> {
        let c = self.online_client("handing a space over")?;
        inbox_recipient.parse().map_err(|e| {
            ApiError::new(
                ApiErrorCode::BadRequest,
                format!("the minor's inbox recipient: {e}"),
            )
        })?;
        let m = self.membership_of(space)?;
        let me = self.identity().principal.principal_id();
        if m.owner() != me {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "only the owner of the space (the parent who created it) hands it over",
            ));
        }
        if to == me {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                "the space is handed over to the minor's own principal, not to yours",
            ));
        }
        let (profile, _) = self.record_get::<Profile>(space)?;
        let policy = m
            .person_choices()
            .policy
            .unwrap_or_else(|| self.hub_attending_policy());
        let age =
            age_on(&profile.person.birth_date, paris_day(UnixMillis::now())).map_err(|e| {
                ApiError::new(
                    ApiErrorCode::BadRequest,
                    format!("{e}: set it with `mes profile set person.birth_date YYYY-MM-DD`"),
                )
            })?;
        let from = u32::from(policy.handover_age());
        if age < from {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                format!(
                    "{} is {age}: the space is handed over from {from} under the {} policy",
                    if profile.person.name.is_empty() {
                        "the minor"
                    } else {
                        profile.person.name.as_str()
                    },
                    policy.name()
                ),
            ));
        }
        if let Err(e) = self.file_inbox(space).await {
            tracing::warn!("filing the inbox before the handover: {}", e.message);
        }
        let handover = Signed::sign(
            Handover {
                space,
                to,
                inbox_recipient,
                former_owner_role: Some(Role::Admin),
                at: UnixMillis::now(),
            },
            &self.identity().principal.signing,
        );
        c.request(Request::HandOver { handover })
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Forbidden, e.to_string()))?;
        self.refresh_space(&c, space)
            .await
            .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
    }

    /// The private volume of a space this principal owns, declared (durably, queued for
    /// the relay) if it does not exist yet.
    pub(crate) fn ensure_private_volume(&self, space: SpaceId) -> Result<VolumeId, ApiError> {
        let m = self.membership_of(space)?;
        let mut st = self.state();
        let principal = &self.identity().principal;
        if m.owner() != principal.principal_id() {
            return Err(ApiError::new(
                ApiErrorCode::Forbidden,
                "only the owner of the space keeps documents private",
            ));
        }
        let (volume, key) =
            derive_private(space, &principal.age.to_secret_string(), DOCUMENTS_PRIVATE);
        if st.volumes.contains_key(&volume) {
            return Ok(volume);
        }
        let mut batch = self.store.batch();
        crate::replica::partition::declare_new(
            &mut st,
            &self.identity(),
            (space, volume, DOCUMENTS_PRIVATE),
            key,
            &mut batch,
        );
        self.store
            .apply(batch)
            .map_err(|e| ApiError::new(ApiErrorCode::Storage, e.to_string()))?;
        Ok(volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_volume_is_the_same_for_the_owner_and_unknown_to_others() {
        let space = SpaceId([1; 16]);
        let a = derive_private(space, "AGE-SECRET-KEY-1MINOR", DOCUMENTS_PRIVATE);
        let b = derive_private(space, "AGE-SECRET-KEY-1MINOR", DOCUMENTS_PRIVATE);
        let parent = derive_private(space, "AGE-SECRET-KEY-1PARENT", DOCUMENTS_PRIVATE);
        assert_eq!((a.0, a.1.as_bytes()), (b.0, b.1.as_bytes()));
        assert_ne!(a.1.as_bytes(), parent.1.as_bytes());
        assert_ne!(a.0, parent.0);
    }
}
