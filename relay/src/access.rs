//! Access decisions of the relay, as pure functions over a space's [`Membership`]: which
//! principal may read, write or manage which volume. Every refusal names the reason.

use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId, VolumeKind};
use mes_protocol::membership::{Membership, Role};
use mes_protocol::wire::{ErrorCode, WireError};

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any role on the space.
    AnyRole,
    /// Read the volume.
    Read(VolumeId),
    /// Append to the volume (write, or append for an inbox).
    Write(VolumeId),
    /// Manage membership and keys.
    Admin,
}

/// Decides whether `who` may do what `need` says in the space.
pub fn authorize(m: &Membership, who: PrincipalId, need: Need) -> Result<Role, WireError> {
    let space = m.space();
    match need {
        Need::AnyRole => {
            let any = m
                .role(who, None)
                .or_else(|| m.volumes.keys().filter_map(|v| m.role(who, Some(*v))).max());
            any.ok_or_else(|| not_member(space, who))
        }
        Need::Admin => match m.role(who, None) {
            Some(Role::Admin) => Ok(Role::Admin),
            Some(_) => Err(WireError::new(
                ErrorCode::Forbidden,
                format!("{who:?} is not an admin of space {}", space.short()),
            )),
            None => Err(not_member(space, who)),
        },
        Need::Read(volume) => {
            // Whether a volume is in the space is told to members only: a stranger asking
            // with this space's id and another space's volume id learns nothing (the
            // authorization matrix, `mixed` rows).
            authorize(m, who, Need::AnyRole)?;
            volume_kind(m, volume)?;
            match m.role(who, Some(volume)) {
                Some(r) if r.can_read() => Ok(r),
                Some(r) => Err(WireError::new(
                    ErrorCode::Forbidden,
                    format!("role {r:?} cannot read volume {}", volume.short()),
                )),
                None => Err(not_member(space, who)),
            }
        }
        Need::Write(volume) => {
            authorize(m, who, Need::AnyRole)?;
            let kind = volume_kind(m, volume)?;
            match m.role(who, Some(volume)) {
                Some(r) if r.can_write(kind) => Ok(r),
                Some(r) => Err(WireError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "role {r:?} cannot write to {kind:?} volume {}",
                        volume.short()
                    ),
                )),
                None => Err(not_member(space, who)),
            }
        }
    }
}

fn volume_kind(m: &Membership, volume: VolumeId) -> Result<VolumeKind, WireError> {
    m.volume(volume).map(|d| d.kind).ok_or_else(|| {
        WireError::new(
            ErrorCode::NotFound,
            format!(
                "no volume {} in space {}",
                volume.short(),
                m.space().short()
            ),
        )
    })
}

/// What an append-only feeder (a professional dropping into the inbox, a holder let in
/// at activation, F1.5, F7.6) is shown of a space's membership, or `None` for anyone who
/// reads something: the genesis and handover (the inbox recipient), the volumes it may
/// append to, its own grants and the admins' (so the view still verifies); nothing of
/// anyone else's grants, the person's choices or court removals (issue 22, finding 7).
pub fn feeder_view(m: &Membership, who: PrincipalId) -> Option<Membership> {
    if who == m.owner() {
        return None;
    }
    let roles: Vec<(VolumeId, Role)> = m
        .volumes
        .keys()
        .filter_map(|v| Some((*v, m.role(who, Some(*v))?)))
        .collect();
    if roles.is_empty() || roles.iter().any(|(_, r)| r.can_read()) {
        return None;
    }
    let mut view = m.clone();
    view.choices = None;
    view.removals.clear();
    view.grants
        .retain(|(p, _), g| *p == who || g.body.role == Some(Role::Admin));
    view.volumes.retain(|v, d| {
        roles
            .iter()
            .any(|(rv, r)| rv == v && r.can_write(d.body.kind))
    });
    Some(view)
}

/// The refusal of a caller with no role on a space, or of a space that does not exist:
/// the same words, so that a stranger cannot tell them apart.
pub fn not_member(space: SpaceId, who: PrincipalId) -> WireError {
    WireError::new(
        ErrorCode::NotMember,
        format!("{who:?} is not a member of space {}", space.short()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mes_protocol::ids::Generation;
    use mes_protocol::keys::{AgeSecret, KeyPair};
    use mes_protocol::membership::{Grant, Signed, SpaceGenesis, VolumeDecl};
    use mes_protocol::time::UnixMillis;

    #[test]
    fn roles_decide_read_write_admin() {
        let mut rng = rand::thread_rng();
        let owner = KeyPair::generate(&mut rng);
        let reader = KeyPair::generate(&mut rng);
        let writer_only = KeyPair::generate(&mut rng);
        let stranger = KeyPair::generate(&mut rng);
        let space = SpaceId([1; 16]);
        let (notes, inbox) = (VolumeId([2; 16]), VolumeId([3; 16]));
        let mut m = Membership::new(Signed::sign(
            SpaceGenesis {
                space,
                owner: owner.principal_id(),
                inbox_recipient: AgeSecret::generate().recipient(),
                created_at: UnixMillis(0),
            },
            &owner.signing,
        ))
        .unwrap();
        for (volume, kind) in [(notes, VolumeKind::Automerge), (inbox, VolumeKind::Inbox)] {
            m.declare(Signed::sign(
                VolumeDecl {
                    space,
                    volume,
                    kind,
                    generation: Generation(0),
                    label: String::new(),
                },
                &owner.signing,
            ))
            .unwrap();
        }
        for (p, role) in [(&reader, Role::Read), (&writer_only, Role::Append)] {
            m.grant(Signed::sign(
                Grant {
                    space,
                    volume: None,
                    principal: p.principal_id(),
                    role: Some(role),
                    version: 1,
                    issued_at: UnixMillis(0),
                    expires_at: None,
                },
                &owner.signing,
            ))
            .unwrap();
        }
        assert!(authorize(&m, owner.principal_id(), Need::Admin).is_ok());
        assert!(authorize(&m, reader.principal_id(), Need::Read(notes)).is_ok());
        assert_eq!(
            authorize(&m, reader.principal_id(), Need::Write(notes))
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            authorize(&m, writer_only.principal_id(), Need::Read(notes))
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert!(authorize(&m, writer_only.principal_id(), Need::Write(inbox)).is_ok());
        assert_eq!(
            authorize(&m, writer_only.principal_id(), Need::Write(notes))
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            authorize(&m, stranger.principal_id(), Need::Read(notes))
                .unwrap_err()
                .code,
            ErrorCode::NotMember
        );
        assert_eq!(
            authorize(&m, owner.principal_id(), Need::Read(VolumeId([9; 16])))
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    }
}
