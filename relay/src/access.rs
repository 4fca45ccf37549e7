//! Access decisions of the relay, as pure functions over a space's [`Membership`]: which
//! principal may read, write or manage which volume. Every refusal names the reason.

use mes_protocol::access::membership::{Membership, Role};
use mes_protocol::ids::{PrincipalId, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
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

/// What the relay knows about a request besides the membership, gathered by the shell
/// (`handler::membership`) before [`decide`] runs.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The time the request is decided at: lapsed grants open nothing (F9.2).
    pub now: UnixMillis,
    /// The space is closed (F1.6).
    pub closed: bool,
    /// The person blocked the caller, or the structure it works in (F7.2).
    pub blocked: bool,
    /// The catalogue suspended the caller's service (F6): why.
    pub suspended: Option<String>,
    /// A live emergency release names the caller (F7.5).
    pub released: bool,
}

/// The whole access decision of one request, pure: closure, block, suspension, then the
/// caller's roles at `facts.now`; a live emergency release opens the emergency volume,
/// and only it. Every refusal names its reason.
pub fn decide(
    m: &Membership,
    who: PrincipalId,
    need: Need,
    facts: &Facts,
) -> Result<(), WireError> {
    let space = m.space();
    if facts.closed {
        return Err(WireError::new(
            ErrorCode::Forbidden,
            format!(
                "space {} is closed (F1.6): archived and refused to everyone; its person may reopen it (mes enrol reopen)",
                space.short()
            ),
        ));
    }
    if facts.blocked {
        return Err(WireError::new(
            ErrorCode::Forbidden,
            format!("{who:?} is blocked by the person whose space it is"),
        ));
    }
    if let Some(why) = &facts.suspended {
        return Err(WireError::new(ErrorCode::Forbidden, why.clone()));
    }
    match authorize(&m.at(facts.now), who, need) {
        Ok(_) => Ok(()),
        Err(_) if facts.released && release_may_open(m, need) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a live emergency release could open what `need` asks: the space itself
/// (listing it) and its emergency volume.
pub fn release_may_open(m: &Membership, need: Need) -> bool {
    match need {
        Need::AnyRole => true,
        Need::Read(v) => m
            .volume(v)
            .is_some_and(|d| d.label == mes_protocol::access::escrow::ESCROWED_LABEL),
        Need::Write(_) | Need::Admin => false,
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
    use mes_protocol::access::membership::{Grant, Signed, SpaceGenesis, VolumeDecl};
    use mes_protocol::crypto::keys::{AgeSecret, KeyPair};
    use mes_protocol::ids::Generation;
    use mes_protocol::time::UnixMillis;

    const SPACE: SpaceId = SpaceId([1; 16]);

    /// A space of `owner` with these volumes (id, kind, label), and grants on the whole
    /// space (principal, role, end).
    fn space(
        owner: &KeyPair,
        volumes: &[(VolumeId, VolumeKind, &str)],
        grants: &[(PrincipalId, Role, Option<UnixMillis>)],
    ) -> Membership {
        let mut m = Membership::new(Signed::sign(
            SpaceGenesis {
                space: SPACE,
                owner: owner.principal_id(),
                inbox_recipient: AgeSecret::generate().recipient(),
                created_at: UnixMillis(0),
            },
            &owner.signing,
        ))
        .unwrap();
        for (volume, kind, label) in volumes {
            m.declare(Signed::sign(
                VolumeDecl {
                    space: SPACE,
                    volume: *volume,
                    kind: *kind,
                    generation: Generation(0),
                    label: (*label).into(),
                },
                &owner.signing,
            ))
            .unwrap();
        }
        for (principal, role, expires_at) in grants {
            m.grant(Signed::sign(
                Grant {
                    space: SPACE,
                    volume: None,
                    principal: *principal,
                    role: Some(*role),
                    version: 1,
                    issued_at: UnixMillis(0),
                    expires_at: *expires_at,
                },
                &owner.signing,
            ))
            .unwrap();
        }
        m
    }

    #[test]
    fn roles_decide_read_write_admin() {
        let mut rng = rand::thread_rng();
        let owner = KeyPair::generate(&mut rng);
        let reader = KeyPair::generate(&mut rng);
        let writer_only = KeyPair::generate(&mut rng);
        let stranger = KeyPair::generate(&mut rng);
        let (notes, inbox) = (VolumeId([2; 16]), VolumeId([3; 16]));
        let m = space(
            &owner,
            &[
                (notes, VolumeKind::Automerge, ""),
                (inbox, VolumeKind::Inbox, ""),
            ],
            &[
                (reader.principal_id(), Role::Read, None),
                (writer_only.principal_id(), Role::Append, None),
            ],
        );
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

    /// The decision table of [`decide`], the relay's whole rule set as a pure function:
    /// every caller kind against every need under every combination of facts. The
    /// expected answer is written out per row, not derived from the code.
    #[test]
    fn decide_table() {
        let mut rng = rand::thread_rng();
        let owner = KeyPair::generate(&mut rng);
        let reader = KeyPair::generate(&mut rng);
        let lapsed = KeyPair::generate(&mut rng);
        let stranger = KeyPair::generate(&mut rng);
        let (notes, emergency) = (VolumeId([2; 16]), VolumeId([4; 16]));
        let m = space(
            &owner,
            &[
                (notes, VolumeKind::Automerge, ""),
                (
                    emergency,
                    VolumeKind::Automerge,
                    mes_protocol::access::escrow::ESCROWED_LABEL,
                ),
            ],
            &[
                (reader.principal_id(), Role::Read, None),
                (lapsed.principal_id(), Role::Read, Some(UnixMillis(50))),
            ],
        );
        let needs = [
            ("any", Need::AnyRole),
            ("read", Need::Read(notes)),
            ("emergency", Need::Read(emergency)),
            ("write", Need::Write(notes)),
            ("admin", Need::Admin),
        ];
        // Allowed needs per caller, with no fact against them, without then with a live
        // emergency release.
        let rows: [(&str, &KeyPair, &str, &str); 4] = [
            (
                "owner",
                &owner,
                "any read emergency write admin",
                "any read emergency write admin",
            ),
            (
                "reader",
                &reader,
                "any read emergency",
                "any read emergency",
            ),
            ("lapsed", &lapsed, "", "any emergency"),
            ("stranger", &stranger, "", "any emergency"),
        ];
        let mut cells = 0;
        for (name, who, plain, released) in rows {
            for (need_name, need) in needs {
                for against in ["none", "closed", "blocked", "suspended"] {
                    for release in [false, true] {
                        let facts = Facts {
                            now: UnixMillis(100),
                            closed: against == "closed",
                            blocked: against == "blocked",
                            suspended: (against == "suspended").then(|| "suspended".into()),
                            released: release,
                        };
                        let allowed = if release { released } else { plain };
                        let expected =
                            against == "none" && allowed.split(' ').any(|n| n == need_name);
                        let got = decide(&m, who.principal_id(), need, &facts);
                        assert_eq!(
                            got.is_ok(),
                            expected,
                            "{name} {need_name} against {against} released {release}: {got:?}"
                        );
                        if let Err(e) = got {
                            assert!(!e.message.is_empty());
                        }
                        cells += 1;
                    }
                }
            }
        }
        assert_eq!(cells, 4 * 5 * 4 * 2);
        // The lapsed grant was live before it lapsed.
        let before = Facts {
            now: UnixMillis(10),
            ..Facts::default()
        };
        assert!(decide(&m, lapsed.principal_id(), Need::Read(notes), &before).is_ok());
    }
}
