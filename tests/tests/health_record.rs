//! The health record beyond the profile, over real sync (issue 4): documents with their
//! blobs (F3), measurement partitions (F2.5), agenda (F5), messages (F4), emergency
//! section (F2.10), care history (F3.8); concurrent edits of every kind from two devices;
//! bad input; export to FHIR R4 + IPS + PDF checked by independent implementations, and
//! import back into an empty space.
//!
//! Over 600 lines: one suite per user-visible area, each test a scenario.

use mes_protocol::record::agenda::Agenda;
use mes_protocol::record::care::CareHistory;
use mes_protocol::record::documents::{DocQuery, NewDocument};
use mes_protocol::record::measurements::{MeasureQuery, Measurement};
use mes_protocol::record::messages::{Message, Messages};
use mes_protocol::record::{Emergency, Profile, RecordEdit};
use mes_protocol::wire::api::ApiErrorCode;
use mes_tests::{converged, device, home, online, paired, python, relay, until, Paired};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn put(section: &str, record: &str) -> RecordEdit {
    RecordEdit::Put {
        section: section.into(),
        record: record.into(),
    }
}

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn new_doc(path: &Path, category: &str, title: &str, date: &str, author: &str) -> NewDocument {
    NewDocument {
        path: path.to_string_lossy().into_owned(),
        category: category.into(),
        title: title.into(),
        date: date.into(),
        author: author.into(),
        ..Default::default()
    }
}

fn weight(at: &str, value: f64) -> Measurement {
    Measurement {
        kind: "weight".into(),
        at: at.into(),
        value,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_sync_with_their_files_search_hide_and_refuse_bad_input() -> anyhow::Result<()> {
    let p = paired().await?;
    let (a, b, space) = (&p.a.daemon, &p.b.daemon, p.space);
    let dir = p.dir.path();
    let bilan = file(dir, "bilan.txt", "Hémoglobine 13,2 g/dL; ferritine basse");
    let radio = file(dir, "radio.txt", "Genou droit: pas de fracture");
    let d1 = a
        .doc_add(
            space,
            &new_doc(
                &bilan,
                "biology",
                "Résultats_AnalyseMed",
                "2021-01-27",
                "Hun Nguyen",
            ),
        )
        .await?;
    let d2 = a
        .doc_add(
            space,
            &new_doc(
                &radio,
                "imaging",
                "Radiologie genou droit",
                "2021-03-15",
                "Halima Dialo",
            ),
        )
        .await?;
    assert_eq!(d1.type_code, "11502-2", "the category's default type");
    assert!(
        d1.blob_key.is_empty(),
        "keys never leave the daemon in answers"
    );
    converged(a, b, space, "documents/care").await?;

    // Search on the other device: keywords (accents ignored), filters.
    let q = |text: &str, f: fn(&mut DocQuery)| {
        let mut q = DocQuery {
            text: text.into(),
            ..Default::default()
        };
        f(&mut q);
        b.doc_search(space, &q)
            .map(|(_, r)| r.into_iter().map(|d| d.id).collect::<Vec<_>>())
    };
    assert_eq!(
        q("", |_| {})?,
        vec![d2.id.clone(), d1.id.clone()],
        "newest first"
    );
    assert_eq!(
        q("hemoglobine", |_| {})?,
        vec![d1.id.clone()],
        "the text is searched"
    );
    assert_eq!(
        q("genou", |q| q.category = "imaging".into())?,
        vec![d2.id.clone()]
    );
    assert_eq!(q("", |q| q.author = "nguyen".into())?, vec![d1.id.clone()]);
    assert_eq!(
        q("", |q| {
            q.from = "2021-02-01".into();
            q.to = "2021-12-31".into();
        })?,
        vec![d2.id.clone()]
    );
    assert!(q("genou", |q| q.category = "biology".into())?.is_empty());
    let (total, page) = b.doc_search(
        space,
        &DocQuery {
            limit: 1,
            ..Default::default()
        },
    )?;
    assert_eq!(
        (total, page.len(), page[0].id.as_str()),
        (2, 1, d2.id.as_str()),
        "a page holds the newest, and the total counts every match"
    );

    // The file: fetched from the relay on demand by the other device, identical.
    let out = dir.join("out/bilan-copy.txt");
    std::fs::create_dir_all(out.parent().unwrap())?;
    let n = b.doc_get(space, &d1.id, &out).await?;
    assert_eq!(n, std::fs::metadata(&bilan)?.len());
    assert_eq!(std::fs::read(&out)?, std::fs::read(&bilan)?);

    // Hiding moves it to the hidden volume under a new key; the other device sees it.
    let hidden = a.doc_hide(space, &d1.id, true).await?;
    assert!(hidden.visibility.hidden_from_professionals);
    assert_ne!(hidden.blob, d1.blob, "re-sealed under a new key");
    converged(a, b, space, "documents/hidden").await?;
    converged(a, b, space, "documents/care").await?;
    let seen = b
        .doc_search(
            space,
            &DocQuery {
                hidden: Some(true),
                ..Default::default()
            },
        )?
        .1;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, d1.id);
    std::fs::remove_file(&out)?;
    b.doc_get(space, &d1.id, &out).await?;
    assert_eq!(std::fs::read(&out)?, std::fs::read(&bilan)?);

    // Bad input: each refused by name; no document and no file written.
    let before = a.doc_search(space, &DocQuery::default())?.1;
    let blobs = std::fs::read_dir(&a.files.blob_dir)?.count();
    let big = dir.join("big.bin");
    std::fs::File::create(&big)?.set_len(a.files.max_document_bytes + 1)?;
    for (doc, named) in [
        (
            new_doc(&bilan, "biologie", "x", "2021-01-27", ""),
            "\"biologie\"",
        ),
        (
            new_doc(&bilan, "biology", "x", "27/01/2021", ""),
            "27/01/2021",
        ),
        (
            new_doc(&dir.join("missing.pdf"), "biology", "x", "2021-01-27", ""),
            "missing.pdf",
        ),
        (
            new_doc(&big, "biology", "x", "2021-01-27", ""),
            "over the limit",
        ),
        (
            NewDocument {
                type_code: "0000-0".into(),
                ..new_doc(&bilan, "biology", "x", "2021-01-27", "")
            },
            "0000-0",
        ),
    ] {
        let e = a.doc_add(space, &doc).await.unwrap_err();
        assert_eq!(e.code, ApiErrorCode::BadRequest, "{}", e.message);
        assert!(e.message.contains(named), "{named}: {}", e.message);
    }
    assert_eq!(a.doc_search(space, &DocQuery::default())?.1, before);
    let now: Vec<_> = std::fs::read_dir(&a.files.blob_dir)?
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(now.len(), blobs, "{now:?}");

    // A fixed id (bulk import) makes adding twice a no-op.
    let fixed = NewDocument {
        id: "import-0001".into(),
        ..new_doc(&radio, "imaging", "Radio 2", "2020-01-01", "")
    };
    a.doc_add(space, &fixed).await?;
    a.doc_add(space, &fixed).await?;
    assert_eq!(a.doc_search(space, &DocQuery::default())?.1.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn concurrent_edits_of_every_kind_merge_and_same_field_edits_are_conflicts(
) -> anyhow::Result<()> {
    let p = paired().await?;
    let (a, b, space) = (&p.a.daemon, &p.b.daemon, p.space);
    let addr = p.relay.ready.address;
    // Shared starting point: an appointment and a thread.
    let appt = a
        .record_edit::<Agenda>(
            space,
            &put(
                "appointments",
                r#"{"at":"2026-12-03T14:30","title":"Dentiste"}"#,
            ),
        )
        .await?;
    let thread_first = a
        .message_post(
            space,
            Message {
                from: "Dr Antoine Robert".into(),
                body: "Vos résultats sont arrivés.".into(),
                receipt_requested: true,
                ..Default::default()
            },
            "Résultats",
        )
        .await?;
    converged(a, b, space, "agenda").await?;
    converged(a, b, space, "messages").await?;
    let thread = b.record_get::<Messages>(space)?.0.threads[0].id.clone();
    let dir = p.dir.path().to_path_buf();
    let addr_dir = dir.clone();
    let Paired { relay: r, .. } = p;
    r.shutdown().await;
    for d in [a, b] {
        until(d, Duration::from_secs(60), "offline", |d| !d.link.online()).await?;
    }
    // Offline on both: new records of every kind, and the same field of the appointment
    // and of the emergency card.
    a.record_edit::<Agenda>(
        space,
        &put(
            "appointments",
            r#"{"at":"2027-01-10T09:00","title":"Kiné"}"#,
        ),
    )
    .await?;
    b.record_edit::<Agenda>(
        space,
        &put(
            "appointments",
            r#"{"at":"2027-01-12T10:00","title":"Ophtalmo"}"#,
        ),
    )
    .await?;
    for (d, place) in [(a, "Cabinet A"), (b, "Cabinet B")] {
        d.record_edit::<Agenda>(
            space,
            &put("appointments", &format!(r#"{{"id":"{appt}","at":"2026-12-03T14:30","title":"Dentiste","place":"{place}"}}"#)),
        )
        .await?;
    }
    a.message_post(
        space,
        Message {
            thread: thread.clone(),
            body: "Merci".into(),
            ..Default::default()
        },
        "",
    )
    .await?;
    b.message_post(
        space,
        Message {
            thread: thread.clone(),
            body: "Je prends rendez-vous".into(),
            ..Default::default()
        },
        "",
    )
    .await?;
    b.message_read(space, &thread_first).await?;
    for (d, g) in [(a, "A+"), (b, "O-")] {
        d.record_edit::<Emergency>(
            space,
            &RecordEdit::Set {
                field: "card.blood_group".into(),
                value: g.into(),
            },
        )
        .await?;
    }
    a.record_edit::<CareHistory>(space, &put("items", r#"{"date":"2021-04-21","label":"Soins infirmiers","category":"Soins médicaux ou dentaires"}"#)).await?;
    b.record_edit::<CareHistory>(space, &put("items", r#"{"date":"2021-03-11","label":"Radiographie membre inférieur","category":"Radiologie"}"#)).await?;
    // Both create the same new partition (weight, 2027) without knowing of each other.
    a.measure_add(space, vec![weight("2027-01-02T08:00", 62.0)])
        .await?;
    b.measure_add(
        space,
        vec![
            weight("2027-01-03T08:00", 61.8),
            weight("2026-12-30T08:00", 62.3),
        ],
    )
    .await?;
    let fa = file(&dir, "fa.txt", "from a");
    let fb = file(&dir, "fb.txt", "from b");
    a.doc_add(space, &new_doc(&fa, "other", "Note A", "2026-11-20", ""))
        .await?;
    b.doc_add(space, &new_doc(&fb, "other", "Note B", "2026-11-21", ""))
        .await?;

    let _r = relay(&addr_dir, Some(addr), false).await?;
    for label in [
        "agenda",
        "messages",
        "emergency",
        "care",
        "documents/care",
        "measurements/weight/2027",
        "measurements/weight/2026",
    ] {
        converged(a, b, space, label).await?;
    }
    for d in [a, b] {
        let (agenda, conflicts) = d.record_get::<Agenda>(space)?;
        let titles: Vec<&str> = agenda
            .appointments
            .iter()
            .map(|x| x.title.as_str())
            .collect();
        assert_eq!(agenda.appointments.len(), 3, "{titles:?}");
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].path.ends_with("/place"), "{conflicts:?}");
        assert_eq!(conflicts[0].values, vec!["Cabinet A", "Cabinet B"]);

        let (m, conflicts) = d.record_get::<Messages>(space)?;
        assert_eq!(m.messages.len(), 3);
        assert!(
            !m.messages[&thread_first].read_at.is_empty(),
            "the read receipt synced"
        );
        assert!(conflicts.is_empty(), "{conflicts:?}");

        let (e, conflicts) = d.record_get::<Emergency>(space)?;
        assert!(["A+", "O-"].contains(&e.card.blood_group.as_str()));
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].path, "card/blood_group");

        assert_eq!(d.record_get::<CareHistory>(space)?.0.items.len(), 2);
        let w = d.measure_list(
            space,
            &MeasureQuery {
                kind: "weight".into(),
                ..Default::default()
            },
        )?;
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(d.doc_search(space, &DocQuery::default())?.1.len(), 2);
        let partitions = d
            .state()
            .volumes
            .values()
            .filter(|v| v.meta.label == "measurements/weight/2027")
            .count();
        assert_eq!(
            partitions, 1,
            "one volume for the partition both devices created"
        );
    }
    // Resolving a conflict: writing the field again settles it on both devices.
    a.record_edit::<Emergency>(
        space,
        &RecordEdit::Set {
            field: "card.blood_group".into(),
            value: "A+".into(),
        },
    )
    .await?;
    converged(a, b, space, "emergency").await?;
    assert!(b.record_get::<Emergency>(space)?.1.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_measurements_appointments_and_messages_are_refused_by_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let d = device(dir.path(), "a", &mes_tests::target(&r)).await?;
    online(&d.daemon).await?;
    let (a, space) = (&d.daemon, home(&d.daemon).await?);
    for (points, named) in [
        (vec![weight("2026-01-01", 7000.0)], "7000"),
        (
            vec![weight("2026-01-01", 60.0), weight("hier", 60.0)],
            "point 2",
        ),
        (
            vec![Measurement {
                kind: "poids".into(),
                at: "2026-01-01".into(),
                value: 1.0,
                ..Default::default()
            }],
            "\"poids\"",
        ),
    ] {
        let e = a.measure_add(space, points).await.unwrap_err();
        assert!(e.message.contains(named), "{named}: {}", e.message);
    }
    assert!(
        a.measure_list(space, &MeasureQuery::default())?.is_empty(),
        "nothing half-written"
    );
    let e = a
        .record_edit::<Agenda>(
            space,
            &put("appointments", r#"{"at":"demain","title":"x"}"#),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("demain"), "{}", e.message);
    let e = a
        .message_post(
            space,
            Message {
                thread: "nope".into(),
                body: "x".into(),
                ..Default::default()
            },
            "",
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("nope"), "{}", e.message);
    let e = a
        .message_post(
            space,
            Message {
                body: "x".into(),
                attachments: vec!["ghost".into()],
                ..Default::default()
            },
            "s",
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("ghost"), "{}", e.message);
    let e = a
        .record_edit::<Emergency>(
            space,
            &RecordEdit::Set {
                field: "card.blood_group".into(),
                value: "Z".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("\"Z\""), "{}", e.message);
    assert_eq!(a.record_get::<Messages>(space)?.0, Messages::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn export_is_valid_fhir_r4_with_an_ips_summary_and_a_pdf_and_imports_back(
) -> anyhow::Result<()> {
    let p = paired().await?;
    let (a, space) = (&p.a.daemon, p.space);
    let dir = p.dir.path();
    let set = |f: &str, v: &str| RecordEdit::Set {
        field: f.into(),
        value: v.into(),
    };
    a.record_edit::<Profile>(space, &set("person.name", "Inaya M."))
        .await?;
    a.record_edit::<Profile>(space, &set("person.birth_date", "1988-05-14"))
        .await?;
    a.record_edit::<Profile>(space, &set("person.sex", "F"))
        .await?;
    a.record_edit::<Profile>(
        space,
        &put(
            "allergies",
            r#"{"substance":"Pénicilline","reaction":"œdème de Quincke","major":true}"#,
        ),
    )
    .await?;
    a.record_edit::<Profile>(
        space,
        &put(
            "treatments",
            r#"{"label":"Apixaban","dosage":"5 mg x2","since":"2024-02-01","anticoagulant":true}"#,
        ),
    )
    .await?;
    a.record_edit::<Profile>(
        space,
        &put(
            "conditions",
            r#"{"label":"Asthme","history":"personal","since":"2009","chronic":true}"#,
        ),
    )
    .await?;
    a.record_edit::<Profile>(space, &put("hospitalisations", r#"{"establishment":"Clinique du Parc","reason":"Chirurgie genou droit","from":"2021-04-15","until":"2021-04-16"}"#)).await?;
    a.record_edit::<Profile>(space, &put("contacts", r#"{"role":"trusted_person","name":"Karim M.","phone":"0600000000","relationship":"frère"}"#)).await?;
    a.record_edit::<Emergency>(space, &set("card.blood_group", "O+"))
        .await?;
    a.record_edit::<mes_protocol::record::PreventionRecord>(
        space,
        &put(
            "doses",
            r#"{"rule":"dtp_adult","date":"2019-06-01","lot":"X123"}"#,
        ),
    )
    .await?;
    a.record_edit::<Agenda>(
        space,
        &put(
            "appointments",
            r#"{"at":"2026-12-03T14:30","minutes":30,"title":"Dentiste","with":"Dr Lenoir"}"#,
        ),
    )
    .await?;
    a.record_edit::<CareHistory>(space, &put("items", r#"{"date":"2021-04-21","label":"Soins infirmiers","category":"Soins médicaux ou dentaires"}"#)).await?;
    a.measure_add(
        space,
        vec![
            weight("2025-06-01T08:00", 61.0),
            weight("2026-06-01T08:00", 60.2),
        ],
    )
    .await?;
    let cr = file(dir, "cr.txt", "Compte rendu opératoire: ménisque");
    let doc = a
        .doc_add(
            space,
            &new_doc(
                &cr,
                "reports",
                "CR_chirurgie genou droit",
                "2021-04-16",
                "Pierre Angeli",
            ),
        )
        .await?;
    a.message_post(
        space,
        Message {
            from: "Dr Robert".into(),
            body: "Voici le compte rendu".into(),
            attachments: vec![doc.id.clone()],
            ..Default::default()
        },
        "Chirurgie",
    )
    .await?;
    let emergency = a.record_get::<Emergency>(space)?.0;
    assert_eq!(
        emergency.anticoagulants,
        vec!["Apixaban 5 mg x2"],
        "copied from the profile"
    );
    assert_eq!(
        emergency.major_allergies,
        vec!["Pénicilline (œdème de Quincke)"]
    );

    let out = dir.join("export");
    let (files, _) = mes_daemon::export::export(a, space, &out).await?;
    assert_eq!(files, 5);
    assert_eq!(
        std::fs::read(out.join(format!("files/{}-cr.txt", doc.id)))?,
        std::fs::read(&cr)?
    );
    // An independent FHIR R4 implementation accepts both bundles; pypdf reads the PDF.
    let check = std::process::Command::new(python()?)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir/check_export.py"))
        .arg(&out)
        .output()?;
    anyhow::ensure!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&check.stdout)?;
    assert_eq!(v["fhir_version"], "4.0.1");
    for kind in [
        "Patient",
        "Condition",
        "AllergyIntolerance",
        "MedicationStatement",
        "Immunization",
        "Observation",
        "DocumentReference",
        "Binary",
        "Appointment",
        "Communication",
    ] {
        assert!(
            v["bundle"][kind].as_u64().unwrap_or(0) >= 1,
            "{kind}: {}",
            v["bundle"]
        );
    }
    assert_eq!(v["ips"]["Composition"], 1);
    let text = v["pdf_text"].as_str().unwrap();
    assert!(
        text.contains("Pénicilline") && text.contains("œdème de Quincke"),
        "{text}"
    );
    assert!(text.contains("O+"), "{text}");

    // Control: the same check refuses a bundle an R4 reader must refuse.
    let broken = dir.join("broken");
    std::fs::create_dir(&broken)?;
    for f in ["emergency-summary.json", "summary.pdf"] {
        std::fs::copy(out.join(f), broken.join(f))?;
    }
    let bundle = std::fs::read_to_string(out.join("bundle.json"))?;
    std::fs::write(
        broken.join("bundle.json"),
        bundle.replacen(
            "\"birthDate\":\"1988-05-14\"",
            "\"birthDate\":\"14/05/1988\"",
            1,
        ),
    )?;
    let refused = std::process::Command::new(python()?)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir/check_export.py"))
        .arg(&broken)
        .output()?;
    assert!(bundle.contains("\"birthDate\":\"1988-05-14\""));
    assert!(
        !refused.status.success(),
        "a malformed Patient.birthDate must be refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("birthDate"));

    // Import into an empty space of a fresh person: the same records come back.
    let c = device(dir, "c", &p.target).await?;
    online(&c.daemon).await?;
    let fresh = home(&c.daemon).await?;
    let n = mes_daemon::export::import(&c.daemon, fresh, &out).await?;
    assert_eq!(n, 11, "records and documents brought back");
    let (orig, orig_e) = a.space_records(space)?;
    let (back, back_e) = c.daemon.space_records(fresh)?;
    assert_eq!(back.profile, orig.profile);
    assert_eq!(back.prevention, orig.prevention);
    assert_eq!(back.agenda, orig.agenda);
    assert_eq!(back.messages, orig.messages);
    assert_eq!(back.care, orig.care);
    assert_eq!(back.measurements, orig.measurements);
    assert_eq!(back_e, orig_e);
    let strip = |d: &mes_protocol::record::documents::DocumentMeta| {
        mes_protocol::record::documents::DocumentMeta {
            blob: String::new(),
            blob_key: String::new(),
            ciphertext_len: 0,
            added_at: String::new(),
            ..d.clone()
        }
    };
    assert_eq!(
        back.documents.iter().map(strip).collect::<Vec<_>>(),
        orig.documents.iter().map(strip).collect::<Vec<_>>()
    );
    let copy = dir.join("imported-cr.txt");
    c.daemon.doc_get(fresh, &doc.id, &copy).await?;
    assert_eq!(std::fs::read(&copy)?, std::fs::read(&cr)?);
    // Importing again adds nothing.
    mes_daemon::export::import(&c.daemon, fresh, &out).await?;
    assert_eq!(c.daemon.doc_search(fresh, &DocQuery::default())?.1.len(), 1);
    assert_eq!(
        c.daemon
            .measure_list(fresh, &MeasureQuery::default())?
            .len(),
        2
    );
    Ok(())
}

/// Two devices creating many partitions at the same moment: the relay serialises each
/// space's membership changes, so no declaration overwrites the other's (this once lost
/// a partition one device alone had created).
#[tokio::test(flavor = "multi_thread")]
async fn partitions_declared_at_once_by_two_devices_are_all_kept() -> anyhow::Result<()> {
    let p = paired().await?;
    let (a, b, space) = (&p.a.daemon, &p.b.daemon, p.space);
    let points = |kind: &str, value: f64| -> Vec<Measurement> {
        (2000..2012)
            .map(|y| Measurement {
                kind: kind.into(),
                at: format!("{y}-06-01T08:00"),
                value,
                ..Default::default()
            })
            .collect()
    };
    let (ra, rb) = tokio::join!(
        a.measure_add(space, points("weight", 60.0)),
        b.measure_add(space, points("heart_rate", 70.0)),
    );
    ra?;
    rb?;
    for y in 2000..2012 {
        for kind in ["weight", "heart_rate"] {
            converged(a, b, space, &format!("measurements/{kind}/{y}")).await?;
        }
    }
    for d in [a, b] {
        for kind in ["weight", "heart_rate"] {
            let q = MeasureQuery {
                kind: kind.into(),
                ..Default::default()
            };
            assert_eq!(d.measure_list(space, &q)?.len(), 12, "{kind}");
        }
    }
    Ok(())
}
