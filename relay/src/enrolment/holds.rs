//! Items held for a person whose space nobody holds keys to yet (F1.5).
//!
//! A space created at the deadline has no device: whatever the hub sealed to it, the hub
//! could open, which docs/sources.md forbids. So a professional keeps the documents and
//! messages on its own device and tells the hub only *that* it holds something for this
//! NIR. When the person activates, their device asks who holds items for them and lets
//! those professionals drop into the inbox; each professional's device asks which of its
//! holds are ready, drops, and releases the hold. The hub stores one key per hold,
//! `h <nir> <principal>`, with no content and no count.

use mes_protocol::enrolment::nir::Nir;
use mes_protocol::enrolment::Hold;
use mes_protocol::ids::{PrincipalId, SpaceId};

use crate::enrolment::service::Refusal;
use crate::enrolment::store::{key, EnrolmentTables, Op};
use crate::enrolment::Status;

/// At most this many NIRs per question (a professional's backlog goes in several).
pub const MAX_NIRS_PER_REQUEST: usize = 1_000;

fn nir_of(typed: &str) -> Result<Nir, Refusal> {
    Nir::parse(typed).map_err(|e| Refusal::BadNir(e.to_string()))
}

fn hold_key(nir: &Nir, by: PrincipalId) -> Vec<u8> {
    key(b'h', &[nir.as_str().as_bytes(), &by.0])
}

/// Records (or, with `release`, forgets) that `by` holds items for this NIR: only for
/// someone on file who has not decided yet or whose space was created at the deadline.
/// The answer is the same whatever the NIR's status (issue 22, finding 7: it must tell a
/// professional nothing of whether the person is unknown, activated, opposed or closed),
/// after the same durable write; a hold nobody can be let in by is simply never ready.
pub fn hold(
    t: &EnrolmentTables,
    nir: &str,
    by: PrincipalId,
    release: bool,
) -> Result<Hold, Refusal> {
    let nir = nir_of(nir)?;
    if release {
        t.apply(vec![Op::Hold(hold_key(&nir, by), false)], true)?;
        return Ok(Hold {
            nir: nir.full(),
            principal: by,
            space: None,
            rpps: String::new(),
        });
    }
    // Holders are let in when the person activates; after that, their consent is the way
    // in (a hold would be a way around it), and an opposed, closed or unknown person has
    // no space to feed.
    let eligible = t.find(nir.as_str())?.is_some_and(|found| {
        matches!(
            found.person.status,
            Status::Imported | Status::Notified { .. } | Status::AutoCreated { .. }
        )
    });
    let ops = if eligible {
        vec![Op::Hold(hold_key(&nir, by), true)]
    } else {
        Vec::new()
    };
    t.apply(ops, true)?;
    Ok(Hold {
        nir: nir.full(),
        principal: by,
        space: None,
        rpps: String::new(),
    })
}

/// Of the NIRs `by` holds items for, those whose person has activated, with their space.
/// A NIR `by` holds nothing for is not answered, whatever its status.
pub fn ready(t: &EnrolmentTables, nirs: &[String], by: PrincipalId) -> Result<Vec<Hold>, Refusal> {
    if nirs.len() > MAX_NIRS_PER_REQUEST {
        return Err(Refusal::Rule(format!(
            "{} NIRs in one question: at most {MAX_NIRS_PER_REQUEST}",
            nirs.len()
        )));
    }
    let mut out = Vec::new();
    for typed in nirs {
        let nir = nir_of(typed)?;
        if t.kv(&hold_key(&nir, by))?.is_none() {
            continue;
        }
        let Some(found) = t.find(nir.as_str())? else {
            continue;
        };
        if let (Status::Activated { .. }, Some(a)) =
            (&found.person.status, found.person.account.as_ref())
        {
            out.push(Hold {
                nir: nir.full(),
                principal: by,
                space: Some(a.space),
                rpps: String::new(),
            });
        }
    }
    Ok(out)
}

/// Who holds items for this person, and the space their account is bound to (the caller
/// must prove it owns that space: the relay checks).
pub fn holders(t: &EnrolmentTables, nir: &str) -> Result<(Vec<PrincipalId>, SpaceId), Refusal> {
    let nir = nir_of(nir)?;
    let found = t.find(nir.as_str())?.ok_or(Refusal::Unknown)?;
    let space = match (&found.person.status, &found.person.account) {
        (Status::Activated { .. }, Some(a)) => a.space,
        (other, _) => {
            return Err(Refusal::State(format!(
                "the space is {}: activate it first",
                other.name()
            )))
        }
    };
    let start = key(b'h', &[nir.as_str().as_bytes()]);
    // NIRs are ASCII digits and letters of one length: the next key after the prefix.
    let mut end = start.clone();
    *end.last_mut().expect("a prefix") += 1;
    let mut who = Vec::new();
    t.kv_scan(&start, &end, &mut |k, _| {
        if let Ok(p) = <[u8; 32]>::try_from(&k[start.len()..]) {
            who.push(PrincipalId(p));
        }
        Ok(true)
    })?;
    Ok((who, space))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrolment::store::{Account, Insured, Person};
    use mes_protocol::time::UnixMillis;

    fn person(body: &str, status: Status) -> Person {
        let activated = matches!(status, Status::Activated { .. });
        let insured = Insured {
            nir: body.into(),
            vitale_serial: "V1".into(),
            last_name: "Martin".into(),
            first_names: "Camille".into(),
            birth_date: "1980-05-12".into(),
            email: None,
            postal_address: Some("1 rue Haute".into()),
            departement: "69".into(),
            representatives: Vec::new(),
        };
        Person {
            status,
            account: activated.then(|| Account {
                identifier: "camille80".into(),
                password_hash: String::new(),
                space: SpaceId([7; 16]),
                email: None,
            }),
            code_issue: 1,
            ..Person::imported(insured, 1)
        }
    }

    #[test]
    fn holds_are_told_only_to_whom_they_concern_and_released_whole() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = EnrolmentTables::open(&sled::open(dir.path())?)?;
        let (waiting, opposed, other) = ("1800569123456", "2750369123457", "1800569123458");
        let at = UnixMillis(1);
        t.import(
            1,
            vec![
                person(waiting, Status::AutoCreated { at }),
                person(opposed, Status::Opposed { at }),
                person(other, Status::AutoCreated { at }),
            ],
            100,
            |_| {},
        )?;
        // Principals at both ends of the key space: a prefix scan must keep them apart
        // from the next NIR's holds.
        let (low, high, third) = (
            PrincipalId([0; 32]),
            PrincipalId([0xff; 32]),
            PrincipalId([9; 32]),
        );
        let nir = Nir::with_key(waiting);
        hold(&t, &nir, low, false)?;
        hold(&t, &nir, high, false)?;
        hold(&t, &Nir::with_key(other), third, false)?;
        // An opposed person's NIR gets the same answer as any other (no status oracle,
        // issue 22 finding 7), and nothing is held for it.
        let answer = |n: &str, by| hold(&t, &Nir::with_key(n), by, false).map(|h| h.nir.len());
        assert_eq!(answer(opposed, low)?, answer(waiting, third)?);
        assert_eq!(
            answer("1800569123499", low)?,
            answer(waiting, third)?,
            "unknown alike"
        );
        hold(&t, &Nir::with_key(waiting), third, true)?;
        let mut opposed_holds = 0;
        let start = key(b'h', &[Nir::with_key(opposed).as_bytes()]);
        let mut end = start.clone();
        *end.last_mut().unwrap() += 1;
        t.kv_scan(&start, &end, &mut |_, _| {
            opposed_holds += 1;
            Ok(true)
        })?;
        assert_eq!(opposed_holds, 0, "nothing held for an opposed person");
        assert!(
            matches!(holders(&t, &nir), Err(Refusal::State(_))),
            "not activated yet"
        );
        assert!(ready(&t, std::slice::from_ref(&nir), high)?.is_empty());

        // She activates: each holder learns her space, and only for its own holds.
        let found = t.find(waiting)?.expect("on file");
        t.apply(
            vec![Op::Person {
                loc: found.loc,
                was: None,
                person: Box::new(person(waiting, Status::Activated { at })),
            }],
            true,
        )?;
        let (who, space) = holders(&t, &nir)?;
        assert_eq!(who, vec![low, high]);
        assert_eq!(space, SpaceId([7; 16]));
        let r = ready(&t, &[nir.clone(), Nir::with_key(other)], high)?;
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].nir.as_str(), r[0].space), (nir.as_str(), Some(space)));
        assert!(
            ready(&t, std::slice::from_ref(&nir), third)?.is_empty(),
            "third holds nothing for her"
        );
        // After activation a new hold answers alike and lets no one in: the person's
        // consent is the way in.
        hold(&t, &nir, third, false)?;
        assert_eq!(holders(&t, &nir)?.0, vec![low, high], "third is not let in");
        assert!(ready(&t, &vec![nir.clone(); MAX_NIRS_PER_REQUEST + 1], high).is_err());

        hold(&t, &nir, high, true)?;
        assert_eq!(holders(&t, &nir)?.0, vec![low]);
        Ok(())
    }
}
