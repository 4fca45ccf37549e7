//! Delegation's special situations (issue 6 item 4; F9.1, F9.3, F9.4), with real daemons
//! and the real relay over QUIC: a child's space handed over at the handover age, the
//! documents the minor keeps from the parents sealed under keys the parents never get,
//! a guardian within a measure, and a court removing a parent. Each attack has a control.
//!
//! Over 600 lines: one suite per user-visible area, each test a scenario.

use mes_daemon::run::RunningDaemon;
use mes_protocol::access::authority::DOCUMENTS_PRIVATE;
use mes_protocol::access::membership::{Grant, Role, Signed};
use mes_protocol::crypto::envelope::{KeyEnvelope, KeySlot};
use mes_protocol::crypto::keys::SigningSecret;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{Epoch, Generation, SpaceId, VolumeId};
use mes_protocol::record::documents::NewDocument;
use mes_protocol::record::{Profile, RecordEdit};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{ErrorCode, Reply, Request};
use mes_relay::handler::Misbehaviour;
use mes_tests::{connect_as, device, listed, online, relay_with, rpps, target, until, volume};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn years_ago(years: i16, plus_days: i64) -> String {
    let today = mes_protocol::access::authority::paris_day(UnixMillis::now());
    let d = today
        .checked_sub(jiff::Span::new().years(years))
        .unwrap()
        .checked_add(jiff::Span::new().days(plus_days))
        .unwrap();
    d.to_string()
}

async fn set_birth(d: &RunningDaemon, space: SpaceId, birth: &str) -> anyhow::Result<()> {
    d.daemon
        .record_edit::<Profile>(
            space,
            &RecordEdit::Set {
                field: "person.birth_date".into(),
                value: birth.into(),
            },
        )
        .await?;
    Ok(())
}

async fn with_membership(d: &RunningDaemon, space: SpaceId, what: &str) -> anyhow::Result<()> {
    until(&d.daemon, WAIT, what, |d| {
        d.state()
            .spaces
            .get(&space)
            .and_then(|s| s.membership.as_ref())
            .is_some_and(|m| m.volumes.len() >= mes_daemon::daemon::fixed_volumes().len())
    })
    .await
}

async fn fetch(
    d: &RunningDaemon,
    t: &mes_daemon::sync::relay_client::RelayTarget,
    space: SpaceId,
    volume: VolumeId,
) -> Result<Reply, ErrorCode> {
    let (c, _) = connect_as(&d.daemon, t).await.expect("connects");
    c.request(Request::Fetch {
        space,
        volume,
        after: mes_protocol::ids::Seq(0),
        max: 10,
    })
    .await
    .map_err(|e| match e {
        mes_daemon::sync::relay_client::ClientError::Refused(w) => w.code,
        other => panic!("not a refusal: {other}"),
    })
}

fn doc(path: &std::path::Path, title: &str, category: &str) -> NewDocument {
    NewDocument {
        path: path.to_string_lossy().into_owned(),
        category: category.into(),
        title: title.into(),
        date: "2026-11-20".into(),
        ..Default::default()
    }
}

/// A mother who created her daughter's space, a father who manages it with her, and Lola,
/// with her own device and principal.
struct Family {
    dir: tempfile::TempDir,
    relay: mes_relay::server::RunningRelay,
    t: mes_daemon::sync::relay_client::RelayTarget,
    mother: RunningDaemon,
    father: RunningDaemon,
    lola: RunningDaemon,
    child: SpaceId,
}

async fn family(m: Misbehaviour) -> anyhow::Result<Family> {
    let dir = tempfile::tempdir()?;
    let relay = relay_with(dir.path(), None, m).await?;
    let t = target(&relay);
    let mother = device(dir.path(), "mother", &t).await?;
    let father = device(dir.path(), "father", &t).await?;
    let lola = device(dir.path(), "lola", &t).await?;
    for d in [&mother, &father, &lola] {
        online(&d.daemon).await?;
    }
    let child = mother.daemon.create_space("Lola").await?;
    with_membership(&mother, child, "child space registered").await?;
    let father_id = father.daemon.identity().principal.principal_id();
    // The second legal representative manages the child's space too (F9.4).
    mother
        .daemon
        .delegate(child, father_id, Role::Admin, &[], None)
        .await?;
    with_membership(&father, child, "father sees the child's space").await?;
    Ok(Family {
        dir,
        relay,
        t,
        mother,
        father,
        lola,
        child,
    })
}

impl Family {
    fn lola_id(
        &self,
    ) -> (
        mes_protocol::ids::PrincipalId,
        mes_protocol::crypto::keys::AgeRecipient,
    ) {
        let id = self.lola.daemon.identity();
        (id.principal.principal_id(), id.principal.age.recipient())
    }

    /// Lola turns 16 today and her mother hands the space over.
    async fn hand_over(&self) -> anyhow::Result<()> {
        let (lola_id, recipient) = self.lola_id();
        set_birth(&self.mother, self.child, &years_ago(16, 0)).await?;
        self.mother
            .daemon
            .hand_over(self.child, lola_id, recipient)
            .await?;
        until(&self.lola.daemon, WAIT, "Lola owns her space", |d| {
            d.state()
                .spaces
                .get(&self.child)
                .and_then(|s| s.membership.as_ref())
                .is_some_and(|m| m.owner() == lola_id)
        })
        .await?;
        let general = self.volume("documents/care");
        until(&self.lola.daemon, WAIT, "Lola holds the keys", |d| {
            mes_tests::current_key(d, general).is_some()
        })
        .await
    }

    fn volume(&self, label: &str) -> VolumeId {
        volume(&self.mother.daemon, self.child, label).expect(label)
    }

    async fn uploaded(&self, d: &RunningDaemon) -> anyhow::Result<()> {
        until(&d.daemon, WAIT, "uploaded", |d| {
            d.state()
                .volumes
                .values()
                .filter(|v| v.meta.space == self.child)
                .all(|v| v.progress.idle())
        })
        .await
    }
}

fn signing_of(d: &RunningDaemon) -> SigningSecret {
    SigningSecret::from_bytes(&d.daemon.identity().principal.signing.to_bytes())
}

/// F9.1, F9.4: a parent cannot hand over before the age, and nothing changes; at the age
/// the minor owns the space, both parents keep managing it, and what the minor keeps from
/// them lives in a volume whose key they never hold: the relay refuses their fetches,
/// their grants and their keys for it (control: they read the shared documents). A court
/// then removes the father: refused from then on, and what is written next is under keys
/// he never gets (control: the mother gets them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_takes_over_at_the_age_and_keeps_private_documents_from_the_parents(
) -> anyhow::Result<()> {
    let f = family(Misbehaviour::default()).await?;
    let (child, t) = (f.child, &f.t);
    let (lola_id, recipient) = f.lola_id();
    let father_id = f.father.daemon.identity().principal.principal_id();

    // Too young by a day: refused, and nothing changes.
    set_birth(&f.mother, child, &years_ago(16, 1)).await?;
    let e = f
        .mother
        .daemon
        .hand_over(child, lola_id, recipient.clone())
        .await
        .unwrap_err();
    assert!(
        e.message.contains("is 15") && e.message.contains("from 16"),
        "{}",
        e.message
    );
    assert!(f.mother.daemon.membership_of(child)?.handover.is_none());
    // Only the owner hands over; the father manages but does not own.
    set_birth(&f.mother, child, &years_ago(16, 0)).await?;
    let e = f
        .father
        .daemon
        .hand_over(child, lola_id, recipient)
        .await
        .unwrap_err();
    assert!(e.message.contains("only the owner"), "{}", e.message);
    f.hand_over().await?;
    let general = f.volume("documents/care");

    // A document the parents keep reading, and one Lola keeps from them.
    let vaccine = f.dir.path().join("vaccin.txt");
    std::fs::write(&vaccine, "Rappel dTcaP")?;
    let shared = f
        .lola
        .daemon
        .doc_add(child, &doc(&vaccine, "Rappel dTcaP", "biology"))
        .await?;
    let secret = f.dir.path().join("ordonnance.txt");
    std::fs::write(&secret, "Contraception orale, 3 mois")?;
    let kept = f
        .lola
        .daemon
        .doc_add(child, &doc(&secret, "Ordonnance", "biology"))
        .await?;
    let e = f
        .mother
        .daemon
        .doc_hide_from_parents(child, &kept.id)
        .await
        .unwrap_err();
    assert_eq!(e.code, mes_protocol::wire::api::ApiErrorCode::Forbidden);
    f.lola.daemon.doc_hide_from_parents(child, &kept.id).await?;
    let private = volume(&f.lola.daemon, child, DOCUMENTS_PRIVATE).expect("private volume");
    f.uploaded(&f.lola).await?;
    until(
        &f.mother.daemon,
        WAIT,
        "the parents see the shared document",
        |d| d.doc_find(child, &shared.id).is_ok(),
    )
    .await?;
    for parent in [&f.mother, &f.father] {
        until(&parent.daemon, WAIT, "the private volume declared", |d| {
            volume(d, child, DOCUMENTS_PRIVATE).is_some()
        })
        .await?;
        // The move out of the shared volume reaches the parent after the declaration may:
        // wait until the parent holds what Lola holds there.
        mes_tests::converged(&f.lola.daemon, &parent.daemon, child, "documents/care").await?;
        assert!(
            parent.daemon.doc_find(child, &kept.id).is_err(),
            "a parent lists the private document"
        );
        assert!(mes_tests::current_key(&parent.daemon, private).is_none());
        assert_eq!(
            fetch(parent, t, child, private).await.unwrap_err(),
            ErrorCode::NotMember,
            "the relay serves the private volume to a parent"
        );
        // Control: the same parent reads the shared documents.
        assert!(fetch(parent, t, child, general).await.is_ok());
    }
    assert!(f.lola.daemon.doc_find(child, &kept.id).is_ok());

    // The father, still an admin, grants himself the private volume: refused.
    let (fc, _) = connect_as(&f.father.daemon, t).await?;
    let grant = Signed::sign(
        Grant {
            space: child,
            volume: Some(private),
            principal: father_id,
            role: Some(Role::Read),
            version: UnixMillis::now().0,
            issued_at: UnixMillis::now(),
            expires_at: None,
        },
        &signing_of(&f.father),
    );
    let refused = fc.request(Request::PutGrant { grant }).await.unwrap_err();
    assert!(refused.to_string().contains("private"), "{refused}");
    // He wraps a key of his own choosing to Lola's device: refused too.
    let planted = plant(&f, private, &signing_of(&f.father))?;
    let refused = fc
        .request(Request::PutEnvelopes {
            envelopes: vec![planted],
        })
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("private"), "{refused}");

    // A court removes the father's rights (F9.4).
    let before = mes_tests::current_key(&f.lola.daemon, general).map(|k| *k.as_bytes());
    f.relay
        .relay
        .record_court_removal(child, father_id, "TJ Lyon, 2026-11-30, RG 26/04211")
        .await?;
    until(&f.lola.daemon, WAIT, "Lola's daemon hears of it", |d| {
        d.membership_of(child)
            .is_ok_and(|m| m.removals.contains_key(&father_id))
    })
    .await?;
    assert_eq!(
        fetch(&f.father, t, child, general).await.unwrap_err(),
        ErrorCode::NotMember
    );
    // The next write is under a new epoch: the mother (control) gets it, he does not.
    let next = f.dir.path().join("bilan.txt");
    std::fs::write(&next, "Bilan de santé 16 ans")?;
    f.lola
        .daemon
        .doc_add(child, &doc(&next, "Bilan 16 ans", "biology"))
        .await?;
    f.uploaded(&f.lola).await?;
    let after = mes_tests::current_key(&f.lola.daemon, general).map(|k| *k.as_bytes());
    assert_ne!(before, after, "no new epoch after the court removal");
    until(
        &f.mother.daemon,
        WAIT,
        "control: the mother gets the new key",
        |d| mes_tests::current_key(d, general).map(|k| *k.as_bytes()) == after,
    )
    .await?;
    let (fc, _) = connect_as(&f.father.daemon, t).await?;
    assert!(fc
        .request(Request::GetEnvelopes { space: child })
        .await
        .is_err());
    assert_ne!(
        mes_tests::current_key(&f.father.daemon, general).map(|k| *k.as_bytes()),
        after
    );
    Ok(())
}

fn plant(f: &Family, volume: VolumeId, by: &SigningSecret) -> anyhow::Result<KeyEnvelope> {
    let cert = f.lola.daemon.identity().cert.body.clone();
    let slot = KeySlot {
        space: f.child,
        volume,
        generation: Generation(0),
        epoch: Epoch(9),
    };
    let chosen = SymmetricKey::generate(&mut rand::rngs::OsRng);
    Ok(KeyEnvelope::wrap(
        slot,
        &chosen,
        cert.device,
        &cert.recipient,
        by,
    )?)
}

async fn adopted(f: &Family, envelope: KeyEnvelope) -> anyhow::Result<bool> {
    let slot = envelope.slot;
    let (c, _) = connect_as(&f.father.daemon, &f.t).await?;
    c.request(Request::PutEnvelopes {
        envelopes: vec![envelope],
    })
    .await?;
    let lola = f.lola.daemon.client().expect("online");
    f.lola.daemon.refresh_space(&lola, f.child).await?;
    let held = f
        .lola
        .daemon
        .state()
        .keys
        .get(slot.volume, slot.generation, slot.epoch)
        .is_some();
    Ok(held)
}

/// A key is adopted only from someone who may choose it: through a relay that stores any
/// envelope, Lola's device refuses a private volume's key her father (an admin) chose,
/// and a key the hub chose for her documents; control: the same envelopes signed by Lola
/// herself are adopted, and the hub's key for the emergency volume (a release) is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_chosen_by_someone_who_may_not_is_never_adopted() -> anyhow::Result<()> {
    let f = family(Misbehaviour {
        accept_any_envelope: true,
        ..Default::default()
    })
    .await?;
    f.hand_over().await?;
    let kept = f.dir.path().join("secret.txt");
    std::fs::write(&kept, "Consultation CeGIDD")?;
    let d = f
        .lola
        .daemon
        .doc_add(f.child, &doc(&kept, "Consultation", "biology"))
        .await?;
    f.lola.daemon.doc_hide_from_parents(f.child, &d.id).await?;
    f.uploaded(&f.lola).await?;
    let private = volume(&f.lola.daemon, f.child, DOCUMENTS_PRIVATE).expect("private");
    let general = f.volume("documents/care");
    let emergency = f.volume(mes_protocol::access::escrow::ESCROWED_LABEL);
    let hub = mes_relay::signing::load_or_create(&f.dir.path().join("relay"))?;
    let lola = signing_of(&f.lola);

    assert!(!adopted(&f, plant(&f, private, &signing_of(&f.father))?).await?);
    assert!(!adopted(&f, plant(&f, general, &hub)?).await?);
    assert!(adopted(&f, plant(&f, private, &lola)?).await?, "control");
    assert!(adopted(&f, plant(&f, general, &lola)?).await?, "control");
    assert!(
        adopted(&f, plant(&f, emergency, &hub)?).await?,
        "control: a release"
    );
    Ok(())
}

/// F9.3: a guardian manages the space beside the person within the measure (they consent
/// to a doctor on the person's behalf, within the matrix), and when the measure ends they
/// can do nothing more: the relay refuses their reads and grants (control: the person).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_manages_within_the_measure_and_loses_access_when_it_ends() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let relay = relay_with(dir.path(), None, Misbehaviour::default()).await?;
    let t = target(&relay);
    let person = device(dir.path(), "person", &t).await?;
    let guardian = device(dir.path(), "guardian", &t).await?;
    for d in [&person, &guardian] {
        online(&d.daemon).await?;
    }
    let space = mes_tests::home(&person.daemon).await?;
    with_membership(&person, space, "space registered").await?;
    let doctor = mes_tests::RawPrincipal::new("doctor");
    doctor.connect(&t).await?;
    let other = mes_tests::RawPrincipal::new("other doctor");
    other.connect(&t).await?;
    relay
        .relay
        .import_directory(vec![
            listed(doctor.id(), 21, "Dr Paul Roux", "10"),
            listed(other.id(), 22, "Dr Anne Bel", "10"),
        ])
        .await?;
    let guardian_id = guardian.daemon.identity().principal.principal_id();
    let end = UnixMillis(UnixMillis::now().0 + 4_000);
    person
        .daemon
        .delegate(space, guardian_id, Role::Admin, &[], Some(end))
        .await?;
    with_membership(&guardian, space, "the guardian sees the space").await?;
    // Within the measure: the guardian consents for the person.
    let view = guardian
        .daemon
        .consent(space, rpps(21).as_str(), &[])
        .await?;
    assert_eq!(view.principal, doctor.id());
    let profile = volume(&person.daemon, space, "profile").expect("profile");
    assert!(fetch(&guardian, &t, space, profile).await.is_ok());
    // After it: nothing.
    until(&guardian.daemon, WAIT, "the measure ends", |_| {
        UnixMillis::now() >= end
    })
    .await?;
    assert_eq!(
        fetch(&guardian, &t, space, profile).await.unwrap_err(),
        ErrorCode::NotMember
    );
    let e = guardian
        .daemon
        .consent(space, rpps(22).as_str(), &[])
        .await
        .unwrap_err();
    assert!(e.message.contains("manages it"), "{}", e.message);
    // Control: the person still consents and reads.
    person.daemon.consent(space, rpps(22).as_str(), &[]).await?;
    assert!(fetch(&person, &t, space, profile).await.is_ok());
    Ok(())
}

/// F9.4 from the operator's side: `mes-relay court-removal` names what is wrong (no
/// reference, someone without rights) and changes nothing, then records the decision; the
/// relay, restarted, refuses the removed parent (control: before, he read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_records_a_court_removal_from_the_command_line() -> anyhow::Result<()> {
    let f = family(Misbehaviour::default()).await?;
    let father_id = f.father.daemon.identity().principal.principal_id();
    let profile = f.volume("profile");
    assert!(fetch(&f.father, &f.t, f.child, profile).await.is_ok());
    let relay_dir = f.dir.path().join("relay");
    let Family {
        dir,
        relay,
        mother,
        father,
        lola,
        child,
        ..
    } = f;
    let address = relay.ready.address;
    relay.shutdown().await;
    let run = |principal: String, reference: &str| -> anyhow::Result<std::process::Output> {
        Ok(std::process::Command::new(mes_tests::binary("mes-relay")?)
            .args(["court-removal", "--data"])
            .arg(&relay_dir)
            .args(["--space", &child.to_string(), "--principal", &principal])
            .args(["--reference", reference])
            .output()?)
    };
    let stranger = mes_tests::RawPrincipal::new("stranger").id();
    for (who, reference, says) in [
        (father_id, " ", "needs the decision's reference"),
        (stranger, "TJ Lyon RG 26/04211", "holds no right"),
    ] {
        let out = run(who.to_string(), reference)?;
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    let out = run(father_id.to_string(), "TJ Lyon RG 26/04211")?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(line["removed"], father_id.to_string());
    let relay = relay_with(dir.path(), Some(address), Misbehaviour::default()).await?;
    let t = target(&relay);
    assert_eq!(
        fetch(&father, &t, child, profile).await.unwrap_err(),
        ErrorCode::NotMember
    );
    assert!(fetch(&mother, &t, child, profile).await.is_ok(), "control");
    drop((lola, relay));
    Ok(())
}

/// The father (an admin, not the owner) re-declares Lola's private volume under a shared
/// label and her notes as the escrowed emergency volume. Returns the relay's answers,
/// whether the father ends up holding the private volume's key, and whether the
/// membership the relay then serves names him a reader of it.
async fn father_relabels(m: Misbehaviour) -> anyhow::Result<(Vec<Option<ErrorCode>>, bool, bool)> {
    let f = family(m).await?;
    f.hand_over().await?;
    let kept = f.dir.path().join("cegidd.txt");
    std::fs::write(&kept, "Consultation CeGIDD")?;
    let d = f
        .lola
        .daemon
        .doc_add(f.child, &doc(&kept, "Consultation", "biology"))
        .await?;
    f.lola.daemon.doc_hide_from_parents(f.child, &d.id).await?;
    f.uploaded(&f.lola).await?;
    let private = volume(&f.lola.daemon, f.child, DOCUMENTS_PRIVATE).expect("private");
    let notes = f.volume("notes");
    let father = signing_of(&f.father);
    let father_id = f.father.daemon.identity().principal.principal_id();
    let (c, _) = connect_as(&f.father.daemon, &f.t).await?;
    let mut answers = Vec::new();
    for (v, label) in [
        (private, "documents/care-extra"),
        (notes, mes_protocol::access::escrow::ESCROWED_LABEL),
    ] {
        let kind = f
            .lola
            .daemon
            .membership_of(f.child)?
            .volume(v)
            .expect("declared")
            .kind;
        let decl = Signed::sign(
            mes_protocol::access::membership::VolumeDecl {
                space: f.child,
                volume: v,
                kind,
                generation: Generation(0),
                label: label.into(),
            },
            &father,
        );
        answers.push(match c.request(Request::DeclareVolume { decl }).await {
            Err(mes_daemon::sync::relay_client::ClientError::Refused(w)) => Some(w.code),
            _ => None,
        });
    }
    // Lola's device hears of the membership and wraps keys to whoever may read.
    let lc = f.lola.daemon.client().expect("online");
    let _ = f.lola.daemon.refresh_space(&lc, f.child).await;
    let fc = f.father.daemon.client().expect("online");
    let _ = f.father.daemon.refresh_space(&fc, f.child).await;
    let leaked = mes_tests::current_key(&f.father.daemon, private).is_some();
    let (lc, _) = connect_as(&f.lola.daemon, &f.t).await?;
    let served = match lc
        .request(Request::GetMembership { space: f.child })
        .await?
    {
        Reply::Membership { membership, .. } => membership,
        r => anyhow::bail!("GetMembership answered {r:?}"),
    };
    let names_him = served
        .verified(Some(f.relay.relay.public_key()))
        .is_ok_and(|m| m.readers(private).contains(&father_id));
    Ok((answers, leaked, names_him))
}

/// Issue 22, finding 2: a legal representative with the admin role relabels the minor's
/// private volume as a shared one, and her notes as the escrowed emergency volume. The
/// relay refuses both and the father never gets the private key. Control: through a
/// relay that stores any declaration, the relabelled membership it serves names the
/// father a reader of the private volume (so the wrapping rule alone would leak the key),
/// and still Lola's device, which keeps the labels it first saw, wraps nothing to him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_cannot_relabel_the_minors_private_volume() -> anyhow::Result<()> {
    let (answers, leaked, names_him) = father_relabels(Misbehaviour::default()).await?;
    assert_eq!(
        answers,
        vec![Some(ErrorCode::BadRecord), Some(ErrorCode::BadRecord)]
    );
    assert!(
        !leaked && !names_him,
        "the private volume reached the father"
    );
    let (answers, leaked, names_him) = father_relabels(Misbehaviour {
        accept_any_declaration: true,
        ..Default::default()
    })
    .await?;
    assert_eq!(answers, vec![None, None], "control: the relay took them");
    assert!(
        names_him,
        "control: the served membership names the father a reader"
    );
    assert!(
        !leaked,
        "Lola's device wrapped the private key after a relabelling"
    );
    Ok(())
}
