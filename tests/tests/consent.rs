//! Consent enforced by keys (issue 6; F7.1, F7.6, F8.1, F8.3), against the real relay over
//! QUIC: the habilitation matrix decides which keys a professional is wrapped, the relay
//! refuses grants beyond it, withdrawal starts a new epoch, the access history is checked
//! for alteration, gaps, reordering and forks, and every principal kind x volume kind x
//! operation gets its expected answer. Each security test has a control that fails it.
//!
//! Over 600 lines: one suite per user-visible area, each test a scenario.

use mes_daemon::run::RunningDaemon;
use mes_daemon::sync::relay_client::{ClientError, RelayTarget};
use mes_protocol::access::habilitation::Matrix;
use mes_protocol::access::history::HistoryEntry;
use mes_protocol::access::membership::{Grant, Role, Signed};
use mes_protocol::ids::{Epoch, Generation, PrincipalId, Seq, SpaceId, VolumeId};
use mes_protocol::record::documents::NewDocument;
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::codec;
use mes_protocol::wire::{ErrorCode, Reply, Request};
use mes_relay::handler::Misbehaviour;
use mes_tests::{
    connect_as, converged, device, device_with, listed, online, pair, registered, relay_with, rpps,
    target, until, volume, RawPrincipal,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use mes_tests::{owner, Owner};

fn labels(d: &RunningDaemon, space: SpaceId) -> BTreeMap<VolumeId, String> {
    d.daemon
        .state()
        .volumes
        .values()
        .filter(|v| v.meta.space == space)
        .map(|v| (v.meta.volume, v.meta.label.clone()))
        .collect()
}

/// The labels of the volumes whose keys the relay holds for `p`'s device, each envelope
/// opened with the device's own key (so the key really is theirs), with its epochs.
async fn wrapped(
    p: &RawPrincipal,
    t: &RelayTarget,
    space: SpaceId,
    labels: &BTreeMap<VolumeId, String>,
) -> anyhow::Result<BTreeMap<String, BTreeSet<u32>>> {
    let c = p.connect(t).await?;
    let Reply::Envelopes { envelopes } = c.request(Request::GetEnvelopes { space }).await? else {
        anyhow::bail!("GetEnvelopes answered something else");
    };
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for e in envelopes {
        e.unwrap(&p.device.age)
            .map_err(|err| anyhow::anyhow!("envelope does not open: {err}"))?;
        out.entry(labels[&e.slot.volume].clone())
            .or_default()
            .insert(e.slot.epoch.0);
    }
    Ok(out)
}

fn code(r: Result<Reply, ClientError>) -> Result<Reply, ErrorCode> {
    r.map_err(|e| match e {
        ClientError::Refused(w) => w.code,
        other => panic!("not a refusal: {other}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_wraps_exactly_the_keys_the_matrix_allows_per_profession() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let matrix = Matrix::builtin();
    let pros: Vec<(String, RawPrincipal)> = matrix
        .professions()
        .map(|p| (p.code.clone(), RawPrincipal::new(&p.code)))
        .collect();
    let mut rows = Vec::new();
    for (i, (code, p)) in pros.iter().enumerate() {
        p.connect(&o.t).await?; // the relay learns the device
        rows.push(listed(p.id(), i as u32, &format!("Pro {code}"), code));
    }
    o.relay.relay.import_directory(rows).await?;
    let labels = labels(&o.a, o.space);
    let mut got = BTreeMap::new();
    for (i, (code, p)) in pros.iter().enumerate() {
        o.a.daemon
            .consent(o.space, rpps(i as u32).as_str(), &[])
            .await?;
        let keys: BTreeSet<String> = wrapped(p, &o.t, o.space, &labels)
            .await?
            .into_keys()
            .collect();
        let expected: BTreeSet<String> = labels
            .values()
            .filter(|l| matrix.may_read_volume(code, l))
            .cloned()
            .collect();
        assert_eq!(keys, expected, "profession {code}");
        got.insert(code.clone(), keys);
    }
    // The rules of the issue, read off the keys actually wrapped.
    let doctor = &got["10"];
    for g in ["care", "mental", "directives", "birth"] {
        assert!(doctor.contains(&format!("documents/{g}")), "doctor {g}");
    }
    assert!(!doctor.contains("documents/residence"));
    assert!(!doctor.contains("documents/hidden"));
    assert!(!doctor.contains("notes") && !doctor.contains("messages"));
    let dentist = &got["40"];
    assert!(dentist.contains("documents/care"));
    assert!(!dentist.contains("documents/mental") && !dentist.contains("documents/directives"));
    assert!(!got["80"].contains("documents/birth") && got["80"].contains("documents/mental"));
    assert!(got["86"].is_empty(), "deny by default: {:?}", got["86"]);

    // The relay agrees: the doctor fetches care documents, not the residence certificate.
    let (_, doc) = &pros[pros.iter().position(|(c, _)| c == "10").unwrap()];
    let c = doc.connect(&o.t).await?;
    let vol = |l: &str| volume(&o.a.daemon, o.space, l).unwrap();
    let fetch = |v| Request::Fetch {
        space: o.space,
        volume: v,
        after: Seq(0),
        max: 10,
    };
    assert!(code(c.request(fetch(vol("documents/care"))).await).is_ok());
    assert_eq!(
        code(c.request(fetch(vol("documents/residence"))).await).unwrap_err(),
        ErrorCode::NotMember
    );

    // Tightening: the person keeps mental health from the doctor. The grant goes and the
    // volume moves to a new epoch the doctor is never wrapped.
    let doctor_rpps = rpps(pros.iter().position(|(c, _)| c == "10").unwrap() as u32);
    o.a.daemon
        .consent(o.space, doctor_rpps.as_str(), &["mental".into()])
        .await?;
    let after = wrapped(doc, &o.t, o.space, &labels).await?;
    let mental = vol("documents/mental");
    let (current, _) =
        o.a.daemon
            .state()
            .keys
            .current(mental, Generation(0))
            .map(|(e, k)| (e, k.duplicate()))
            .unwrap();
    assert!(current.0 >= 1, "a new epoch on documents/mental");
    assert!(
        after["documents/mental"].iter().all(|e| *e < current.0),
        "the doctor holds no key of the new epoch: {after:?}"
    );
    assert!(after["documents/care"].contains(&0));
    assert_eq!(
        code(c.request(fetch(mental)).await).unwrap_err(),
        ErrorCode::NotMember
    );

    // Bad input names what is wrong and changes nothing.
    let before = o.a.daemon.consents(o.space)?;
    let e =
        o.a.daemon
            .consent(o.space, "12345678901", &[])
            .await
            .unwrap_err();
    assert!(e.message.contains("check digit"), "{}", e.message);
    let e =
        o.a.daemon
            .consent(o.space, rpps(999).as_str(), &[])
            .await
            .unwrap_err();
    assert!(
        e.message.contains("no professional with RPPS"),
        "{}",
        e.message
    );
    let e =
        o.a.daemon
            .consent(o.space, doctor_rpps.as_str(), &["teeth".into()])
            .await
            .unwrap_err();
    assert!(e.message.contains("\"teeth\""), "{}", e.message);
    assert_eq!(o.a.daemon.consents(o.space)?, before);
    drop(o.dir);
    Ok(())
}

/// The owner signs a grant beyond the matrix by hand (what a buggy or hostile client of
/// the owner's keys would send) and gives it to the relay directly.
async fn dentist_reads_mental(skip_check: bool) -> anyhow::Result<Result<Reply, ErrorCode>> {
    let o = owner(Misbehaviour {
        skip_matrix_check: skip_check,
        ..Default::default()
    })
    .await?;
    let dentist = RawPrincipal::new("dentist");
    dentist.connect(&o.t).await?;
    o.relay
        .relay
        .import_directory(vec![listed(dentist.id(), 1, "Dr Dent", "40")])
        .await?;
    let mental = volume(&o.a.daemon, o.space, "documents/mental").unwrap();
    let grant = |volume| {
        Signed::sign(
            Grant {
                space: o.space,
                volume,
                principal: dentist.id(),
                role: Some(Role::Read),
                version: 1,
                issued_at: UnixMillis::now(),
                expires_at: None,
            },
            &o.a.daemon.identity().principal.signing,
        )
    };
    let (c, _) = connect_as(&o.a.daemon, &o.t).await?;
    let refusals = o.relay.relay.refusals();
    let whole_space = code(c.request(Request::PutGrant { grant: grant(None) }).await);
    let r = code(
        c.request(Request::PutGrant {
            grant: grant(Some(mental)),
        })
        .await,
    );
    if !skip_check {
        assert_eq!(whole_space.unwrap_err(), ErrorCode::Forbidden);
        assert_eq!(
            o.relay.relay.refusals(),
            refusals + 2,
            "each refusal counted"
        );
    }
    Ok(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_beyond_the_matrix_is_refused_by_the_relay() -> anyhow::Result<()> {
    assert_eq!(
        dentist_reads_mental(false).await?.unwrap_err(),
        ErrorCode::Forbidden
    );
    // Control: a relay that skips the check accepts the same grant.
    assert_eq!(dentist_reads_mental(true).await?, Ok(Reply::Done));
    Ok(())
}

fn new_doc(path: &Path, title: &str) -> NewDocument {
    NewDocument {
        path: path.to_string_lossy().into_owned(),
        category: "biology".into(),
        title: title.into(),
        date: "2026-11-02".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_professional_decrypts_nothing_written_after() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let pro = device(o.dir.path(), "pro", &o.t).await?;
    online(&pro.daemon).await?;
    let pro_id = pro.daemon.identity().principal.principal_id();
    o.relay
        .relay
        .import_directory(vec![listed(pro_id, 7, "Dr Claire Martin", "10")])
        .await?;
    let bilan = o.dir.path().join("bilan.txt");
    std::fs::write(&bilan, "Glycémie 0,95 g/L")?;
    o.a.daemon
        .doc_add(o.space, &new_doc(&bilan, "Bilan sanguin"))
        .await?;
    o.a.daemon.consent(o.space, rpps(7).as_str(), &[]).await?;
    converged(&o.a.daemon, &pro.daemon, o.space, "documents/care").await?;
    let care = volume(&o.a.daemon, o.space, "documents/care").unwrap();
    assert!(
        !pro.daemon
            .doc_search(o.space, &Default::default())?
            .1
            .is_empty(),
        "the professional reads the care documents"
    );

    // The owner sees who read what, by name and profession.
    until(&o.a.daemon, Duration::from_secs(30), "access logged", |d| {
        d.access_history(o.space)
            .entries
            .iter()
            .any(|e| e.actor == pro_id && e.target == "documents/care")
    })
    .await?;
    let h = o.a.daemon.access_history(o.space);
    let e = h.entries.iter().find(|e| e.actor == pro_id).unwrap();
    assert_eq!(e.name.as_deref(), Some("Dr Claire Martin"));
    assert_eq!(e.profession.as_deref(), Some("10"));
    assert_eq!(e.specialty.as_deref(), Some("SM54"));
    assert_eq!(e.mode, "normal");
    assert!(h.alarm.is_none(), "{:?}", h.alarm);
    // F8.3: flag it; a bad entry number changes nothing.
    o.a.daemon.flag_access(o.space, e.seq).await?;
    assert!(o.a.daemon.flag_access(o.space, 10_000).await.is_err());
    let flagged: Vec<u64> =
        o.a.daemon
            .access_history(o.space)
            .entries
            .iter()
            .filter(|e| e.suspicious)
            .map(|e| e.seq)
            .collect();
    assert_eq!(flagged, vec![e.seq]);

    // Everything the professional's device holds for that volume, as an attacker with it.
    let pro_keys: Vec<_> = {
        let st = pro.daemon.state();
        (0..8)
            .filter_map(|e| {
                st.keys
                    .get(care, Generation(0), Epoch(e))
                    .map(mes_protocol::crypto::seal::SymmetricKey::duplicate)
            })
            .collect()
    };
    assert!(!pro_keys.is_empty());
    o.a.daemon.withdraw(o.space, pro_id).await?;
    assert!(o
        .a
        .daemon
        .consents(o.space)?
        .iter()
        .all(|c| c.principal != pro_id));
    let before = o.a.daemon.state().volumes[&care].progress.cursor;
    let suite = o.dir.path().join("suite.txt");
    std::fs::write(&suite, "Après retrait")?;
    o.a.daemon
        .doc_add(o.space, &new_doc(&suite, "Après retrait"))
        .await?;
    until(&o.a.daemon, Duration::from_secs(30), "uploaded", |d| {
        d.state().volumes[&care].progress.idle()
    })
    .await?;
    let (owner_conn, _) = connect_as(&o.a.daemon, &o.t).await?;
    let Reply::Bundles { items, .. } = owner_conn
        .request(Request::Fetch {
            space: o.space,
            volume: care,
            after: before,
            max: 100,
        })
        .await?
    else {
        panic!("no bundles")
    };
    assert!(!items.is_empty());
    let owner_key =
        o.a.daemon
            .state()
            .keys
            .current(care, Generation(0))
            .map(|(_, k)| k.duplicate())
            .unwrap();
    for (_, b) in &items {
        let h = &b.header;
        let binding = (o.space, care, h.generation, h.epoch);
        for k in &pro_keys {
            assert!(
                b.open(k, binding, false).is_err(),
                "the withdrawn professional opened it"
            );
        }
        assert!(
            b.open(&owner_key, binding, false).is_ok(),
            "control: the owner's key opens it"
        );
    }
    // And the relay refuses them outright.
    let (pro_conn, _) = connect_as(&pro.daemon, &o.t).await?;
    assert_eq!(
        code(
            pro_conn
                .request(Request::Fetch {
                    space: o.space,
                    volume: care,
                    after: Seq(0),
                    max: 10,
                })
                .await
        )
        .unwrap_err(),
        ErrorCode::NotMember
    );
    Ok(())
}

/// How the history is tampered with in the relay's store, between two syncs of the owner.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    None,
    Alter,
    Delete,
    Swap,
}

async fn history_after(
    tamper: Tamper,
) -> anyhow::Result<mes_protocol::access::consent::AccessHistoryView> {
    let o = owner(Misbehaviour::default()).await?;
    let doctor = RawPrincipal::new("doctor");
    doctor.connect(&o.t).await?;
    o.relay
        .relay
        .import_directory(vec![listed(doctor.id(), 3, "Dr Who", "10")])
        .await?;
    o.a.daemon.consent(o.space, rpps(3).as_str(), &[]).await?;
    emergency_card(&o).await?;
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    let (t0, space0) = (o.t.clone(), o.space);
    let reads = |n: usize| {
        let (doctor, t, space) = (&doctor, t0.clone(), space0);
        async move {
            let c = doctor.connect(&t).await?;
            for _ in 0..n {
                c.request(Request::Fetch {
                    space,
                    volume: emergency,
                    after: Seq(0),
                    max: 10,
                })
                .await?;
            }
            anyhow::Ok(())
        }
    };
    reads(3).await?;
    until(&o.a.daemon, Duration::from_secs(30), "3 entries", |d| {
        d.access_history(o.space).entries.len() == 3
    })
    .await?;
    let Owner {
        dir,
        relay,
        t,
        a,
        space,
    } = o;
    a.shutdown().await;
    reads(3).await?;
    let address = relay.ready.address;
    relay.shutdown().await;
    {
        let db = sled::open(dir.path().join("relay").join("relay.sled"))?;
        let tree = db.open_tree("history")?;
        let key = |seq: u64| [space.0.as_slice(), &seq.to_be_bytes()].concat();
        match tamper {
            Tamper::None => {}
            Tamper::Alter => {
                let mut e: Signed<HistoryEntry> = codec::from_bytes(&tree.get(key(5))?.unwrap())?;
                e.body.actor = PrincipalId([0xee; 32]); // someone else, to hide who
                tree.insert(key(5), codec::to_bytes(&e))?;
            }
            Tamper::Delete => {
                tree.remove(key(5))?;
            }
            Tamper::Swap => {
                let (v5, v6) = (tree.get(key(5))?.unwrap(), tree.get(key(6))?.unwrap());
                tree.insert(key(5), v6)?;
                tree.insert(key(6), v5)?;
            }
        }
        db.flush()?;
    }
    let relay = relay_with(dir.path(), Some(address), Misbehaviour::default()).await?;
    let a = device(dir.path(), "a", &t).await?;
    let outcome = until(&a.daemon, Duration::from_secs(30), "history checked", |d| {
        let h = d.access_history(space);
        h.alarm.is_some() || h.entries.len() == 6
    })
    .await;
    let h = a.daemon.access_history(space);
    a.shutdown().await;
    relay.shutdown().await;
    outcome?;
    Ok(h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_reordered_or_gapped_history_raises_an_alarm() -> anyhow::Result<()> {
    // Control: the same steps without tampering verify, six entries and no alarm.
    let clean = history_after(Tamper::None).await?;
    assert_eq!(clean.entries.len(), 6);
    assert!(clean.alarm.is_none(), "{:?}", clean.alarm);
    for (tamper, named) in [
        (
            Tamper::Alter,
            "entry 5 is not signed by the relay or was altered",
        ),
        (Tamper::Delete, "gap: expected entry 5, got 6"),
        (Tamper::Swap, "reordered: expected entry 5, got 6"),
    ] {
        let h = history_after(tamper).await?;
        let alarm = h.alarm.unwrap_or_default();
        assert!(alarm.contains(named), "{tamper:?}: {alarm}");
        assert_eq!(
            h.entries.len(),
            4,
            "{tamper:?}: nothing past the problem is kept"
        );
    }
    Ok(())
}

/// Two devices of the person; the relay may show the second a forked history.
async fn two_devices_see(
    fork: bool,
) -> anyhow::Result<[mes_protocol::access::consent::AccessHistoryView; 2]> {
    let dir = tempfile::tempdir()?;
    // The second device's id first, to tell the misbehaving relay whom to fork for.
    let b_device = {
        let b = device_with(dir.path(), "b", None, false).await?;
        let id = b.daemon.identity().device.device_id();
        b.shutdown().await;
        id
    };
    let relay = relay_with(
        dir.path(),
        None,
        Misbehaviour {
            fork_history_for: fork.then_some(b_device),
            ..Default::default()
        },
    )
    .await?;
    let t = target(&relay);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    registered(&a, space).await?;
    let doctor = RawPrincipal::new("doctor");
    doctor.connect(&t).await?;
    relay
        .relay
        .import_directory(vec![listed(doctor.id(), 4, "Dr Fork", "10")])
        .await?;
    a.daemon.consent(space, rpps(4).as_str(), &[]).await?;
    emergency_card_of(&a, space).await?;
    let c = doctor.connect(&t).await?;
    let emergency = volume(&a.daemon, space, "emergency").unwrap();
    for _ in 0..2 {
        c.request(Request::Fetch {
            space,
            volume: emergency,
            after: Seq(0),
            max: 10,
        })
        .await?;
    }
    // Each device has verified both entries and compared them with the other's head.
    let saw_other = |d: &mes_daemon::daemon::Daemon, other: &RunningDaemon| {
        let other = other.daemon.identity().device.device_id().to_string();
        let log = d.history(space);
        log.alarm.is_some() || log.agreed.get(&other) == Some(&2)
    };
    until(&a.daemon, Duration::from_secs(60), "a compared", |d| {
        saw_other(d, &b)
    })
    .await?;
    until(&b.daemon, Duration::from_secs(60), "b compared", |d| {
        saw_other(d, &a)
    })
    .await?;
    Ok([
        a.daemon.access_history(space),
        b.daemon.access_history(space),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_forking_the_history_is_caught_by_the_devices() -> anyhow::Result<()> {
    // Control: an honest relay, both devices agree.
    for h in two_devices_see(false).await? {
        assert!(h.alarm.is_none(), "{:?}", h.alarm);
        assert_eq!(h.entries.len(), 2);
    }
    let [a, b] = two_devices_see(true).await?;
    // Each chain verifies on its own; comparing heads shows the fork.
    for h in [&a, &b] {
        let alarm = h.alarm.clone().unwrap_or_default();
        assert!(alarm.contains("different access histories"), "{alarm}");
    }
    Ok(())
}

/// One row of the authorisation matrix (printed whole when it fails).
#[derive(Debug)]
#[allow(dead_code)]
struct Case {
    who: &'static str,
    op: &'static str,
    volume: &'static str,
    allowed: bool,
    got: bool,
}

/// Every principal kind x volume kind x operation against the relay; returns the rows and
/// how many refusals the relay counted while they ran.
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn authorisation_matrix(m: Misbehaviour) -> anyhow::Result<(Vec<Case>, u64)> {
    let o = owner(m).await?;
    let doctor = RawPrincipal::new("doctor");
    let dentist = RawPrincipal::new("dentist");
    let relative = RawPrincipal::new("relative");
    let feeder = RawPrincipal::new("feeder");
    let stranger = RawPrincipal::new("stranger");
    let blocked = RawPrincipal::new("blocked");
    let samu = RawPrincipal::new("samu");
    for p in [
        &doctor, &dentist, &relative, &feeder, &stranger, &blocked, &samu,
    ] {
        p.connect(&o.t).await?;
    }
    o.relay
        .relay
        .import_directory(vec![
            listed(doctor.id(), 1, "Dr Doc", "10"),
            listed(dentist.id(), 2, "Dr Dent", "40"),
            listed(blocked.id(), 3, "Dr Bloqué", "10"),
            listed(samu.id(), 4, "Dr Samu", "10"),
        ])
        .await?;
    o.a.daemon.consent(o.space, rpps(1).as_str(), &[]).await?;
    o.a.daemon.consent(o.space, rpps(2).as_str(), &[]).await?;
    // Consented, then blocked: an old grant must not help.
    o.a.daemon.consent(o.space, rpps(3).as_str(), &[]).await?;
    o.a.daemon
        .block(
            o.space,
            mes_daemon::access::choices::BlockTarget::Professional(rpps(3).to_string()),
        )
        .await?;
    // Released by break-glass: the emergency volume only.
    samu.connect(&o.t)
        .await?
        .request(Request::EmergencyAccess {
            space: o.space,
            mode: mes_protocol::access::escrow::EscrowMode::BreakGlass,
        })
        .await?;
    o.a.daemon
        .grant(o.space, relative.id(), Some(Role::Read))
        .await?;
    o.a.daemon
        .grant(o.space, feeder.id(), Some(Role::Append))
        .await?;

    let (owner_conn, _) = connect_as(&o.a.daemon, &o.t).await?;
    let owner_signing = || {
        mes_protocol::crypto::keys::SigningSecret::from_bytes(
            &o.a.daemon.identity().principal.signing.to_bytes(),
        )
    };
    let mut callers = vec![("owner", owner_conn, owner_signing())];
    for (name, p) in [
        ("doctor", &doctor),
        ("dentist", &dentist),
        ("relative", &relative),
        ("feeder", &feeder),
        ("stranger", &stranger),
        ("blocked", &blocked),
        ("break-glass", &samu),
    ] {
        callers.push((
            name,
            p.connect(&o.t).await?,
            mes_protocol::crypto::keys::SigningSecret::from_bytes(&p.principal.signing.to_bytes()),
        ));
    }
    // Expected answers: (who, volume) -> (read, write).
    let volumes = [
        "emergency",
        "documents/mental",
        "documents/hidden",
        "inbox",
        "journal",
    ];
    let expect = |who: &str, vol: &str, op: &str| -> bool {
        let read = match who {
            "owner" | "relative" => true,
            "doctor" => matches!(vol, "emergency" | "documents/mental"),
            "dentist" | "break-glass" => vol == "emergency",
            _ => false,
        };
        let write = match who {
            "owner" => true,
            "doctor" | "dentist" | "relative" | "feeder" => vol == "inbox",
            _ => false,
        };
        match op {
            "fetch" | "subscribe" | "snapshot" => read,
            "append" => write,
            "history" | "grant" => who == "owner",
            _ => unreachable!(),
        }
    };
    let refused = |r: Result<Reply, ClientError>| match r {
        Err(ClientError::Refused(w)) => {
            matches!(w.code, ErrorCode::NotMember | ErrorCode::Forbidden)
        }
        _ => false,
    };
    let before = o.relay.relay.refusals();
    let mut rows = Vec::new();
    for (who, c, signing) in &callers {
        for label in volumes {
            let v = volume(&o.a.daemon, o.space, label).unwrap();
            let space = o.space;
            for op in ["fetch", "subscribe", "snapshot", "append"] {
                let req = match op {
                    "fetch" => Request::Fetch {
                        space,
                        volume: v,
                        after: Seq(0),
                        max: 1,
                    },
                    "subscribe" => Request::Subscribe {
                        space,
                        volumes: vec![v],
                    },
                    "snapshot" => Request::GetSnapshot { space, volume: v },
                    // An empty append: past the access check it is refused as a bad
                    // frame, so nothing lands in the person's volumes.
                    _ => Request::Append {
                        space,
                        volume: v,
                        bundles: vec![],
                    },
                };
                let got = !refused(c.request(req).await);
                rows.push(Case {
                    who,
                    op,
                    volume: label,
                    allowed: expect(who, label, op),
                    got,
                });
            }
        }
        let got = !refused(
            c.request(Request::GetHistory {
                space: o.space,
                after: 0,
            })
            .await,
        );
        rows.push(Case {
            who,
            op: "history",
            volume: "-",
            allowed: expect(who, "-", "history"),
            got,
        });
        // Removing a role nobody holds: harmless when it passes.
        let grant = Signed::sign(
            Grant {
                space: o.space,
                volume: None,
                principal: PrincipalId([0x77; 32]),
                role: None,
                version: UnixMillis::now().0,
                issued_at: UnixMillis::now(),
                expires_at: None,
            },
            signing,
        );
        let got = !refused(c.request(Request::PutGrant { grant }).await);
        rows.push(Case {
            who,
            op: "grant",
            volume: "-",
            allowed: expect(who, "-", "grant"),
            got,
        });
    }
    let counted = o.relay.relay.refusals() - before;
    Ok((rows, counted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorisation_matrix_holds_against_the_real_relay() -> anyhow::Result<()> {
    let (rows, counted) = authorisation_matrix(Misbehaviour::default()).await?;
    let wrong: Vec<&Case> = rows.iter().filter(|c| c.allowed != c.got).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(rows.iter().any(|c| c.allowed) && rows.iter().any(|c| !c.allowed));
    // Every refusal is logged and counted (empty appends that pass the check are refused
    // too, as bad frames).
    let denied = rows.iter().filter(|c| !c.allowed).count() as u64;
    let empty_appends = rows
        .iter()
        .filter(|c| c.op == "append" && c.allowed)
        .count() as u64;
    assert_eq!(counted, denied + empty_appends);
    // Control: a relay that skips its access checks fails the same table.
    let (rows, _) = authorisation_matrix(Misbehaviour {
        skip_access_check: true,
        ..Default::default()
    })
    .await?;
    assert!(
        rows.iter().any(|c| c.allowed != c.got),
        "control: the table passed against a relay that checks nothing"
    );
    Ok(())
}

async fn emergency_card(o: &Owner) -> anyhow::Result<()> {
    emergency_card_of(&o.a, o.space).await
}

/// Fills the emergency card and waits until the relay holds it: a read of an empty
/// volume reads nothing, so the relay logs no access (F8.1).
async fn emergency_card_of(d: &RunningDaemon, space: SpaceId) -> anyhow::Result<()> {
    d.daemon
        .record_update::<mes_protocol::record::Emergency>(space, |e| {
            e.card.blood_group = "O-".into();
            e.card.notes = "Porte un stimulateur cardiaque".into();
            Ok(String::new())
        })
        .await?;
    let emergency = volume(&d.daemon, space, "emergency").expect("an emergency volume");
    until(
        &d.daemon,
        Duration::from_secs(30),
        "emergency card uploaded",
        |d| d.state().volumes[&emergency].progress.idle(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_opens_the_emergency_section_only_and_is_logged() -> anyhow::Result<()> {
    use mes_protocol::access::escrow::EscrowMode;
    let o = owner(Misbehaviour::default()).await?;
    emergency_card(&o).await?;
    let samu = device(o.dir.path(), "samu", &o.t).await?;
    online(&samu.daemon).await?;
    let samu_id = samu.daemon.identity().principal.principal_id();
    // Unlisted, nobody gets an emergency release.
    let e = samu
        .daemon
        .emergency_access(o.space, EscrowMode::BreakGlass)
        .await
        .unwrap_err();
    assert!(
        e.message.contains("listed in the directory"),
        "{}",
        e.message
    );
    o.relay
        .relay
        .import_directory(vec![listed(samu_id, 15, "Dr Urgence", "10")])
        .await?;
    samu.daemon
        .emergency_access(o.space, EscrowMode::BreakGlass)
        .await?;
    until(
        &samu.daemon,
        Duration::from_secs(30),
        "emergency read",
        |d| {
            d.record_get::<mes_protocol::record::Emergency>(o.space)
                .is_ok_and(|(e, _)| e.card.blood_group == "O-")
        },
    )
    .await?;
    // Only the emergency volume: no key and no access to anything else.
    for label in ["profile", "documents/care", "messages"] {
        let v = volume(&o.a.daemon, o.space, label).unwrap();
        assert!(
            samu.daemon.state().keys.current(v, Generation(0)).is_none(),
            "{label}"
        );
    }
    let (c, _) = connect_as(&samu.daemon, &o.t).await?;
    let profile = volume(&o.a.daemon, o.space, "profile").unwrap();
    assert_eq!(
        code(
            c.request(Request::Fetch {
                space: o.space,
                volume: profile,
                after: Seq(0),
                max: 10,
            })
            .await
        )
        .unwrap_err(),
        ErrorCode::NotMember
    );
    // Logged as break-glass and pushed to the person.
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "release logged",
        |d| {
            d.access_history(o.space)
                .entries
                .iter()
                .any(|e| e.actor == samu_id && e.mode == "break-glass" && e.target == "emergency")
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_break_glass_leaves_centre_15_and_escrows_nothing_after() -> anyhow::Result<()> {
    use mes_protocol::access::escrow::EscrowMode;
    let o = owner(Misbehaviour::default()).await?;
    emergency_card(&o).await?;
    let samu = device(o.dir.path(), "samu", &o.t).await?;
    online(&samu.daemon).await?;
    let samu_id = samu.daemon.identity().principal.principal_id();
    o.relay
        .relay
        .import_directory(vec![listed(samu_id, 16, "Dr Régulateur", "10")])
        .await?;
    o.a.daemon
        .set_emergency_policy(o.space, false, true)
        .await?;
    let e = samu
        .daemon
        .emergency_access(o.space, EscrowMode::BreakGlass)
        .await
        .unwrap_err();
    assert!(e.message.contains("refused break-glass"), "{}", e.message);
    // Control: the other mode, refused separately, still works.
    samu.daemon
        .emergency_access(o.space, EscrowMode::Centre15)
        .await?;
    until(
        &samu.daemon,
        Duration::from_secs(30),
        "centre 15 reads",
        |d| {
            d.record_get::<mes_protocol::record::Emergency>(o.space)
                .is_ok_and(|(e, _)| e.card.blood_group == "O-")
        },
    )
    .await?;
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "centre 15 logged",
        |d| {
            d.access_history(o.space)
                .entries
                .iter()
                .any(|e| e.mode == "centre-15")
        },
    )
    .await?;
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    let epoch =
        o.a.daemon
            .state()
            .keys
            .current(emergency, Generation(0))
            .map(|(e, _)| e.0)
            .unwrap();
    assert!(epoch >= 1, "refusing started a new epoch");
    // As an attacker with the relay's disk: which escrow envelopes exist now.
    let Owner {
        dir,
        relay,
        a,
        space,
        ..
    } = o;
    a.shutdown().await;
    samu.shutdown().await;
    relay.shutdown().await;
    let db = sled::open(dir.path().join("relay").join("relay.sled"))?;
    let envelopes = db.open_tree("envelopes")?;
    let escrowed = |mode: EscrowMode| -> anyhow::Result<BTreeSet<u32>> {
        let prefix = [space.0.as_slice(), mode.device().0.as_slice()].concat();
        let mut epochs = BTreeSet::new();
        for kv in envelopes.scan_prefix(prefix) {
            let (_, v) = kv?;
            let e: mes_protocol::crypto::envelope::KeyEnvelope = codec::from_bytes(&v)?;
            if e.slot.volume == emergency {
                epochs.insert(e.slot.epoch.0);
            }
        }
        Ok(epochs)
    };
    assert!(
        escrowed(EscrowMode::BreakGlass)?.is_empty(),
        "break-glass holds no key"
    );
    assert!(
        escrowed(EscrowMode::Centre15)?.contains(&epoch),
        "control: centre 15 holds the new epoch"
    );
    Ok(())
}

async fn fetch_code(
    c: &mes_daemon::sync::relay_client::RelayClient,
    space: SpaceId,
    volume: VolumeId,
) -> Result<Reply, ErrorCode> {
    code(
        c.request(Request::Fetch {
            space,
            volume,
            after: Seq(0),
            max: 10,
        })
        .await,
    )
}

fn owner_grant(
    o: &Owner,
    principal: PrincipalId,
    volume: Option<VolumeId>,
    role: Option<Role>,
) -> Signed<Grant> {
    Signed::sign(
        Grant {
            space: o.space,
            volume,
            principal,
            role,
            version: UnixMillis::now().0,
            issued_at: UnixMillis::now(),
            expires_at: None,
        },
        &o.a.daemon.identity().principal.signing,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_a_professional_or_an_establishment_cuts_them_off_and_only_the_person_can(
) -> anyhow::Result<()> {
    use mes_daemon::access::choices::BlockTarget;
    let o = owner(Misbehaviour::default()).await?;
    let doc_a = RawPrincipal::new("a");
    let doc_b = RawPrincipal::new("b");
    let relative = RawPrincipal::new("relative");
    for p in [&doc_a, &doc_b, &relative] {
        p.connect(&o.t).await?;
    }
    let mut b_row = listed(doc_b.id(), 21, "Dr Nord", "10");
    b_row.1.structure = Some("Hôpital Nord".into());
    o.relay
        .relay
        .import_directory(vec![listed(doc_a.id(), 20, "Dr Parc", "10"), b_row])
        .await?;
    o.a.daemon.consent(o.space, rpps(20).as_str(), &[]).await?;
    o.a.daemon.consent(o.space, rpps(21).as_str(), &[]).await?;
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    let (ca, cb) = (doc_a.connect(&o.t).await?, doc_b.connect(&o.t).await?);
    assert!(
        fetch_code(&ca, o.space, emergency).await.is_ok()
            && fetch_code(&cb, o.space, emergency).await.is_ok()
    );

    o.a.daemon
        .block(o.space, BlockTarget::Professional(rpps(20).to_string()))
        .await?;
    assert_eq!(
        fetch_code(&ca, o.space, emergency).await.unwrap_err(),
        ErrorCode::Forbidden
    );
    assert!(
        fetch_code(&cb, o.space, emergency).await.is_ok(),
        "control: the one not blocked still reads"
    );
    assert!(o
        .a
        .daemon
        .consents(o.space)?
        .iter()
        .all(|c| c.principal != doc_a.id()));
    let (epoch, _) =
        o.a.daemon
            .state()
            .keys
            .current(emergency, Generation(0))
            .map(|(e, k)| (e, k.duplicate()))
            .unwrap();
    assert!(epoch.0 >= 1, "blocking started a new epoch");
    assert_eq!(
        code(ca.request(Request::GetEnvelopes { space: o.space }).await).unwrap_err(),
        ErrorCode::Forbidden,
        "the blocked get no key at all"
    );
    let e =
        o.a.daemon
            .consent(o.space, rpps(20).as_str(), &[])
            .await
            .unwrap_err();
    assert!(e.message.contains("blocked"), "{}", e.message);
    let (owner_conn, _) = connect_as(&o.a.daemon, &o.t).await?;
    let g = owner_grant(&o, doc_a.id(), Some(emergency), Some(Role::Read));
    assert_eq!(
        code(owner_conn.request(Request::PutGrant { grant: g }).await).unwrap_err(),
        ErrorCode::Forbidden,
        "the relay refuses a grant to the blocked"
    );

    // An establishment: everyone the directory lists under it.
    o.a.daemon
        .block(o.space, BlockTarget::Structure("Hôpital Nord".into()))
        .await?;
    assert_eq!(
        fetch_code(&cb, o.space, emergency).await.unwrap_err(),
        ErrorCode::Forbidden
    );
    assert_eq!(o.a.daemon.blocks(o.space)?.len(), 2);

    // Only the person: a delegate with the admin role cannot block or unblock.
    o.a.daemon
        .grant(o.space, relative.id(), Some(Role::Admin))
        .await?;
    let rc = relative.connect(&o.t).await?;
    let mut choices = o.a.daemon.state().spaces[&o.space]
        .membership
        .as_ref()
        .unwrap()
        .person_choices();
    choices.blocked.clear();
    choices.version += 1;
    let forged = Signed::sign(choices, &relative.principal.signing);
    assert_eq!(
        code(rc.request(Request::PutChoices { choices: forged }).await).unwrap_err(),
        ErrorCode::Forbidden
    );
    assert_eq!(
        fetch_code(&ca, o.space, emergency).await.unwrap_err(),
        ErrorCode::Forbidden,
        "still blocked"
    );

    o.a.daemon
        .unblock(o.space, BlockTarget::Professional(rpps(20).to_string()))
        .await?;
    o.a.daemon.consent(o.space, rpps(20).as_str(), &[]).await?;
    assert!(
        fetch_code(&ca, o.space, emergency).await.is_ok(),
        "unblocked and consented again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attending_physician_reads_hidden_documents_under_law_2022_and_may_be_restricted_under_the_committee(
) -> anyhow::Result<()> {
    use mes_protocol::access::choices::AttendingPolicy;
    let o = owner(Misbehaviour::default()).await?;
    let mt = RawPrincipal::new("mt");
    let other = RawPrincipal::new("other");
    let dentist = RawPrincipal::new("dentist");
    for p in [&mt, &other, &dentist] {
        p.connect(&o.t).await?;
    }
    o.relay
        .relay
        .import_directory(vec![
            listed(mt.id(), 30, "Dr Traitant", "10"),
            listed(other.id(), 31, "Dr Autre", "10"),
            listed(dentist.id(), 32, "Dr Dent", "40"),
        ])
        .await?;
    let labels = labels(&o.a, o.space);
    let e =
        o.a.daemon
            .designate_attending(o.space, rpps(32).as_str(), None, &[])
            .await
            .unwrap_err();
    assert!(e.message.contains("only a physician"), "{}", e.message);
    let (view, warning) =
        o.a.daemon
            .designate_attending(o.space, rpps(30).as_str(), None, &[])
            .await?;
    assert!(warning.is_none());
    assert!(view.reads.contains(&"documents/hidden".to_string()));
    assert!(wrapped(&mt, &o.t, o.space, &labels)
        .await?
        .contains_key("documents/hidden"));
    o.a.daemon.consent(o.space, rpps(31).as_str(), &[]).await?;
    assert!(
        !wrapped(&other, &o.t, o.space, &labels)
            .await?
            .contains_key("documents/hidden"),
        "control: another physician never reads hidden documents"
    );
    // Law of 2022: nothing can be kept from them, by the daemon or at the relay.
    let e =
        o.a.daemon
            .designate_attending(o.space, rpps(30).as_str(), None, &["mental".into()])
            .await
            .unwrap_err();
    assert!(e.message.contains("law-2022"), "{}", e.message);
    let hidden = volume(&o.a.daemon, o.space, "documents/hidden").unwrap();
    let (owner_conn, _) = connect_as(&o.a.daemon, &o.t).await?;
    let removal = owner_grant(&o, mt.id(), Some(hidden), None);
    assert_eq!(
        code(
            owner_conn
                .request(Request::PutGrant { grant: removal })
                .await
        )
        .unwrap_err(),
        ErrorCode::Forbidden
    );
    let to_other = owner_grant(&o, other.id(), Some(hidden), Some(Role::Read));
    assert_eq!(
        code(
            owner_conn
                .request(Request::PutGrant { grant: to_other })
                .await
        )
        .unwrap_err(),
        ErrorCode::Forbidden,
        "hidden documents only for the médecin traitant"
    );
    let e =
        o.a.daemon
            .block(
                o.space,
                mes_daemon::access::choices::BlockTarget::Professional(rpps(30).to_string()),
            )
            .await
            .unwrap_err();
    assert!(e.message.contains("designate another"), "{}", e.message);

    // The citizen committee's policy, chosen by the person: restricting is allowed, warned.
    let (view, warning) =
        o.a.daemon
            .designate_attending(
                o.space,
                rpps(30).as_str(),
                Some(AttendingPolicy::CitizenCommittee),
                &["hidden".into(), "mental".into()],
            )
            .await?;
    assert!(warning.unwrap().contains("médecin traitant"));
    assert!(!view.reads.contains(&"documents/hidden".to_string()));
    assert!(!view.reads.contains(&"documents/mental".to_string()));
    assert!(view.reads.contains(&"documents/care".to_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_professional_without_read_rights_feeds_the_space_through_its_inbox() -> anyhow::Result<()>
{
    use mes_protocol::record::inbox::InboxItem;
    let o = owner(Misbehaviour::default()).await?;
    let lab = device(o.dir.path(), "lab", &o.t).await?;
    online(&lab.daemon).await?;
    let lab_id = lab.daemon.identity().principal.principal_id();
    // A medical laboratory technician: the matrix lets them read nothing.
    o.relay
        .relay
        .import_directory(vec![listed(lab_id, 40, "Laboratoire Biolyon", "86")])
        .await?;
    let view = o.a.daemon.consent(o.space, rpps(40).as_str(), &[]).await?;
    assert!(
        view.reads.is_empty() && view.appends == ["inbox"],
        "{view:?}"
    );
    until(
        &lab.daemon,
        Duration::from_secs(30),
        "lab knows the space",
        |d| {
            d.state()
                .spaces
                .get(&o.space)
                .is_some_and(|s| s.membership.is_some())
        },
    )
    .await?;
    assert!(lab
        .daemon
        .patients()
        .iter()
        .any(|p| p.starts_with(&o.space.to_string())));

    let result = o.dir.path().join("nfs.txt");
    std::fs::write(&result, "Hémoglobine 13,2 g/dL")?;
    lab.daemon
        .send_document(
            o.space,
            &NewDocument {
                path: result.to_string_lossy().into_owned(),
                category: "biology".into(),
                title: "NFS".into(),
                date: "2026-12-01".into(),
                ..Default::default()
            },
        )
        .await?;
    lab.daemon
        .drop_item(
            o.space,
            &InboxItem::Message {
                subject: "Résultats disponibles".into(),
                body: "Vos résultats sont dans vos documents.".into(),
            },
        )
        .await?;
    lab.daemon
        .drop_item(
            o.space,
            &InboxItem::Appointment(mes_protocol::record::agenda::Appointment {
                at: "2026-12-10T08:00:00+01:00".into(),
                minutes: 15,
                title: "Prise de sang de contrôle".into(),
                place: "Laboratoire Biolyon".into(),
                ..Default::default()
            }),
        )
        .await?;
    lab.daemon
        .drop_item(
            o.space,
            &InboxItem::ConsentRequest {
                note: "Pour suivre votre bilan".into(),
            },
        )
        .await?;
    // The owner's daemon files each item where it belongs, naming the sender.
    until(&o.a.daemon, Duration::from_secs(60), "filed", |d| {
        d.consent_requests(o.space).is_ok_and(|r| !r.is_empty())
            && d.doc_search(o.space, &Default::default())
                .is_ok_and(|(_, docs)| docs.iter().any(|x| x.title == "NFS"))
    })
    .await?;
    let doc =
        o.a.daemon
            .doc_search(o.space, &Default::default())?
            .1
            .into_iter()
            .find(|x| x.title == "NFS")
            .unwrap();
    assert!(
        doc.source.name.contains("Laboratoire Biolyon"),
        "{:?}",
        doc.source
    );
    let back = o.dir.path().join("nfs-back.txt");
    o.a.daemon.doc_get(o.space, &doc.id, &back).await?;
    assert_eq!(std::fs::read_to_string(&back)?, "Hémoglobine 13,2 g/dL");
    // Issue 22 finding 8: the file came bound to the inbox; filed, the owner's daemon
    // binds it to the document's volume, where its readers fetch it (the lab, which only
    // drops into the inbox, still cannot).
    until(&o.a.daemon, Duration::from_secs(30), "binding sent", |d| {
        mes_daemon::replica::blobs::pending(&d.files).is_empty()
    })
    .await?;
    let documents = mes_tests::volume(
        &o.a.daemon,
        o.space,
        &mes_daemon::record::documents::label_of(&doc)?,
    )
    .expect("documents volume");
    let chunk = mes_protocol::wire::Request::GetBlobChunk {
        space: o.space,
        volume: documents,
        blob: doc.blob.parse().expect("blob id"),
        index: 0,
    };
    let (owner_conn, _) = mes_tests::connect_as(&o.a.daemon, &o.t).await?;
    assert!(owner_conn.request(chunk.clone()).await.is_ok());
    let (lab_conn, _) = mes_tests::connect_as(&lab.daemon, &o.t).await?;
    assert!(
        lab_conn.request(chunk).await.is_err(),
        "control: a feeder of the inbox does not read the documents volume"
    );
    let (messages, _) = o.a.daemon.messages_view(o.space)?;
    assert!(messages
        .threads
        .iter()
        .any(|t| t.subject == "Résultats disponibles"));
    assert!(messages
        .messages
        .values()
        .any(|m| m.from.contains("Laboratoire Biolyon")));
    let (agenda, _) =
        o.a.daemon
            .record_get::<mes_protocol::record::agenda::Agenda>(o.space)?;
    assert!(agenda
        .appointments
        .iter()
        .any(|a| a.title == "Prise de sang de contrôle"));
    assert!(o.a.daemon.consent_requests(o.space)?[0].contains("Pour suivre votre bilan"));
    // Filing twice files nothing twice.
    let before = o.a.daemon.doc_search(o.space, &Default::default())?.1.len();
    o.a.daemon.inbox_read(o.space)?;
    assert_eq!(
        o.a.daemon.doc_search(o.space, &Default::default())?.1.len(),
        before
    );
    // The thread the lab started is shared both ways (F4.2): the person replies, the lab
    // reads it and answers, in the thread's own volume.
    let thread = messages
        .threads
        .iter()
        .find(|t| t.subject == "Résultats disponibles")
        .unwrap()
        .id
        .clone();
    let shared = mes_protocol::record::messages::thread_label(&thread);
    o.a.daemon
        .message_post(
            o.space,
            mes_protocol::record::messages::Message {
                thread: thread.clone(),
                body: "Merci, faut-il être à jeun ?".into(),
                ..Default::default()
            },
            "",
        )
        .await?;
    until(
        &lab.daemon,
        Duration::from_secs(30),
        "the lab reads the reply",
        |d| {
            d.messages_view(o.space).is_ok_and(|(m, _)| {
                m.messages
                    .values()
                    .any(|x| x.thread == thread && x.body.contains("à jeun") && x.from == "me")
            })
        },
    )
    .await?;
    lab.daemon
        .message_post(
            o.space,
            mes_protocol::record::messages::Message {
                thread: thread.clone(),
                body: "Oui, 12 heures.".into(),
                ..Default::default()
            },
            "",
        )
        .await?;
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "the person reads the answer",
        |d| {
            d.messages_view(o.space).is_ok_and(|(m, _)| {
                m.messages.values().any(|x| {
                    x.thread == thread
                        && x.body == "Oui, 12 heures."
                        && x.from.contains("Laboratoire Biolyon")
                })
            })
        },
    )
    .await?;
    // The lab reads nothing else: no key but its thread's, the inbox included, and the
    // relay refuses it the person's other messages.
    {
        let st = lab.daemon.state();
        for v in st.volumes.values().filter(|v| v.meta.space == o.space) {
            assert_eq!(
                st.keys.current(v.meta.volume, v.meta.generation).is_some(),
                v.meta.label == shared,
                "{}",
                v.meta.label
            );
        }
    }
    assert!(lab.daemon.inbox_read(o.space).is_err());
    let (lc, _) = connect_as(&lab.daemon, &o.t).await?;
    let messages_volume = volume(&o.a.daemon, o.space, "messages").unwrap();
    assert_eq!(
        fetch_code(&lc, o.space, messages_volume).await.unwrap_err(),
        ErrorCode::NotMember
    );
    let thread_volume = volume(&o.a.daemon, o.space, &shared).unwrap();
    assert!(
        fetch_code(&lc, o.space, thread_volume).await.is_ok(),
        "control"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consent_for_a_care_team_still_logs_each_member_by_name() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let doctor = RawPrincipal::new("doctor");
    let nurse = RawPrincipal::new("nurse");
    let outside = RawPrincipal::new("outside");
    for p in [&doctor, &nurse, &outside] {
        p.connect(&o.t).await?;
    }
    let team = |p: &RawPrincipal, n, name: &str, profession: &str| {
        let mut row = listed(p.id(), n, name, profession);
        row.1.structure = Some("CHU de Lyon, cardiologie".into());
        row
    };
    o.relay
        .relay
        .import_directory(vec![
            team(&doctor, 50, "Dr Cœur", "10"),
            team(&nurse, 51, "Inf. Soins", "60"),
            listed(outside.id(), 52, "Dr Ailleurs", "10"),
        ])
        .await?;
    let views =
        o.a.daemon
            .consent_team(o.space, "CHU de Lyon, cardiologie", &[])
            .await?;
    assert_eq!(views.len(), 2);
    let labels = labels(&o.a, o.space);
    // Each member within their own profession's matrix; nobody outside the team.
    let d = wrapped(&doctor, &o.t, o.space, &labels).await?;
    let n = wrapped(&nurse, &o.t, o.space, &labels).await?;
    assert!(d.contains_key("documents/mental"));
    assert!(n.contains_key("documents/care") && !n.contains_key("documents/mental"));
    let oc = outside.connect(&o.t).await?;
    assert_eq!(
        code(oc.request(Request::GetEnvelopes { space: o.space }).await).unwrap_err(),
        ErrorCode::NotMember,
        "outside the team, nothing"
    );
    emergency_card(&o).await?;
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    for p in [&doctor, &nurse] {
        let c = p.connect(&o.t).await?;
        assert!(fetch_code(&c, o.space, emergency).await.is_ok());
    }
    until(&o.a.daemon, Duration::from_secs(30), "both logged", |d| {
        let h = d.access_history(o.space);
        ["Dr Cœur", "Inf. Soins"].iter().all(|who| {
            h.entries
                .iter()
                .any(|e| e.name.as_deref() == Some(*who) && e.mode == "care-team")
        })
    })
    .await?;
    let e =
        o.a.daemon
            .consent_team(o.space, "Clinique inconnue", &[])
            .await
            .unwrap_err();
    assert!(e.message.contains("lists nobody"), "{}", e.message);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_follow_the_persons_choices() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let doctor = RawPrincipal::new("doctor");
    doctor.connect(&o.t).await?;
    o.relay
        .relay
        .import_directory(vec![listed(doctor.id(), 60, "Dr Notif", "10")])
        .await?;
    o.a.daemon.consent(o.space, rpps(60).as_str(), &[]).await?;
    let e =
        o.a.daemon
            .set_notify_prefs(o.space, &["sms".into()])
            .await
            .unwrap_err();
    assert!(
        e.message.contains("unknown notification kind \"sms\""),
        "{}",
        e.message
    );
    let count = |d: &mes_daemon::daemon::Daemon, kind: &str| {
        d.notifications(o.space)
            .iter()
            .filter(|n| n.kind == kind)
            .count()
    };
    emergency_card(&o).await?;
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    let c = doctor.connect(&o.t).await?;
    fetch_code(&c, o.space, emergency).await.unwrap();
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "access notified",
        |d| count(d, "access") == 1,
    )
    .await?;
    assert!(o.a.daemon.notifications(o.space)[0].fr.contains("Dr Notif"));
    // Access notifications off: the history still grows, no notification.
    o.a.daemon
        .set_notify_prefs(o.space, &["device".into(), "document".into()])
        .await?;
    fetch_code(&c, o.space, emergency).await.unwrap();
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "second access logged",
        |d| d.access_history(o.space).entries.len() == 2,
    )
    .await?;
    assert_eq!(count(&o.a.daemon, "access"), 1);
    // A new device of the person.
    let b = device(o.dir.path(), "b", &o.t).await?;
    pair(&o.a.daemon, &b.daemon).await?;
    until(
        &o.a.daemon,
        Duration::from_secs(30),
        "device notified",
        |d| count(d, "device") == 1,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_lapses_at_its_end_and_what_follows_is_sealed_from_it() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let trusted = RawPrincipal::new("trusted");
    let caregiver = RawPrincipal::new("caregiver");
    for p in [&trusted, &caregiver] {
        p.connect(&o.t).await?;
    }
    let end = UnixMillis(UnixMillis::now().0 + 3_000);
    // Partial and expiring for the trusted person; full and lasting for the caregiver.
    o.a.daemon
        .delegate(
            o.space,
            trusted.id(),
            Role::Read,
            &["profile".into()],
            Some(end),
        )
        .await?;
    o.a.daemon
        .delegate(o.space, caregiver.id(), Role::Read, &[], None)
        .await?;
    let e =
        o.a.daemon
            .delegate(o.space, trusted.id(), Role::Read, &["diary".into()], None)
            .await
            .unwrap_err();
    assert!(e.message.contains("no volume \"diary\""), "{}", e.message);
    let profile = volume(&o.a.daemon, o.space, "profile").unwrap();
    let emergency = volume(&o.a.daemon, o.space, "emergency").unwrap();
    let (tc, cc) = (trusted.connect(&o.t).await?, caregiver.connect(&o.t).await?);
    assert!(fetch_code(&tc, o.space, profile).await.is_ok());
    assert_eq!(
        fetch_code(&tc, o.space, emergency).await.unwrap_err(),
        ErrorCode::NotMember,
        "partial: the profile only"
    );
    let labels = labels(&o.a, o.space);
    assert!(wrapped(&trusted, &o.t, o.space, &labels)
        .await?
        .contains_key("profile"));
    // At its end the relay refuses it; the caregiver (control) still reads.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fetch_code(&tc, o.space, profile).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the delegation never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fetch_code(&cc, o.space, profile).await.is_ok());
    // The next write moves the profile to a new epoch the trusted person never gets.
    o.a.daemon
        .record_edit::<mes_protocol::record::Profile>(
            o.space,
            &mes_protocol::record::RecordEdit::Set {
                field: "situation.lives_alone".into(),
                value: "true".into(),
            },
        )
        .await?;
    until(&o.a.daemon, Duration::from_secs(30), "new epoch", |d| {
        d.state()
            .keys
            .current(profile, Generation(0))
            .is_some_and(|(e, _)| e.0 >= 1)
    })
    .await?;
    let epoch =
        o.a.daemon
            .state()
            .keys
            .current(profile, Generation(0))
            .map(|(e, _)| e.0)
            .unwrap();
    until(&o.a.daemon, Duration::from_secs(30), "uploaded", |d| {
        d.state().volumes[&profile].progress.idle()
    })
    .await?;
    let held = wrapped(&caregiver, &o.t, o.space, &labels).await?;
    assert!(
        held["profile"].contains(&epoch),
        "control: the caregiver gets it: {held:?}"
    );
    assert_eq!(
        code(tc.request(Request::GetEnvelopes { space: o.space }).await).unwrap_err(),
        ErrorCode::NotMember,
        "the lapsed delegate gets no key"
    );
    Ok(())
}

/// F2.10 (issue 26, item 3): the emergency section can never be kept back. A consent
/// `--except emergency` is refused with the reason and changes nothing; keeping back
/// another group is allowed (control), and the emergency key still reaches the doctor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_section_cannot_be_kept_back() -> anyhow::Result<()> {
    let o = owner(Misbehaviour::default()).await?;
    let doctor = RawPrincipal::new("10");
    doctor.connect(&o.t).await?;
    o.relay
        .relay
        .import_directory(vec![listed(doctor.id(), 0, "Dr Emergency", "10")])
        .await?;
    let labels = labels(&o.a, o.space);
    let e =
        o.a.daemon
            .consent(o.space, rpps(0).as_str(), &["emergency".into()])
            .await
            .unwrap_err();
    assert_eq!(e.code, mes_protocol::wire::api::ApiErrorCode::BadRequest);
    assert!(e.message.contains("F2.10"), "{}", e.message);
    let m = o.a.daemon.membership_of(o.space)?;
    assert!(
        !m.grants.keys().any(|(p, _)| *p == doctor.id()),
        "a refused consent grants nothing"
    );
    // Control: another group may be kept back, and the emergency section is read.
    o.a.daemon
        .consent(o.space, rpps(0).as_str(), &["mental".into()])
        .await?;
    let keys = wrapped(&doctor, &o.t, o.space, &labels).await?;
    assert!(keys.contains_key("emergency"), "{:?}", keys.keys());
    assert!(!keys.contains_key("documents/mental"), "{:?}", keys.keys());
    Ok(())
}
