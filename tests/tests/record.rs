//! The health record over real sync (issue 4): profile edits from two devices merge,
//! concurrent edits to one field are reported as a conflict on both, bad edits change
//! nothing.

use mes_protocol::record::{PreventionRecord, Profile, RecordEdit};
use mes_protocol::wire::api::ApiErrorCode;
use mes_tests::{converged, paired, relay, until, Paired};
use std::time::Duration;

fn put(section: &str, record: &str) -> RecordEdit {
    RecordEdit::Put {
        section: section.into(),
        record: record.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_edits_merge_and_conflicts_are_reported() -> anyhow::Result<()> {
    let Paired {
        dir,
        relay: r,
        a,
        b,
        space,
        ..
    } = paired().await?;
    let addr = r.ready.address;
    let id = a
        .daemon
        .record_edit::<Profile>(
            space,
            &put(
                "allergies",
                r#"{"substance":"pénicilline","reaction":"urticaire"}"#,
            ),
        )
        .await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    assert_eq!(b.daemon.record_get::<Profile>(space)?.0.allergies[0].id, id);

    // Offline, both edit: different records and fields, and the same field.
    r.shutdown().await;
    for d in [&a.daemon, &b.daemon] {
        until(d, Duration::from_secs(60), "offline", |d| !d.link.online()).await?;
    }
    let reaction = |v: &str| {
        put(
            "allergies",
            &format!(r#"{{"id":"{id}","substance":"pénicilline","reaction":"{v}"}}"#),
        )
    };
    a.daemon
        .record_edit::<Profile>(space, &reaction("choc anaphylactique"))
        .await?;
    b.daemon
        .record_edit::<Profile>(space, &reaction("œdème"))
        .await?;
    a.daemon
        .record_edit::<Profile>(
            space,
            &put(
                "treatments",
                r#"{"label":"metformine","dosage":"500 mg x2"}"#,
            ),
        )
        .await?;
    b.daemon
        .record_edit::<Profile>(
            space,
            &RecordEdit::Set {
                field: "situation.lives_alone".into(),
                value: "true".into(),
            },
        )
        .await?;
    let _r = relay(dir.path(), Some(addr), false).await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    for d in [&a.daemon, &b.daemon] {
        let (p, conflicts) = d.record_get::<Profile>(space)?;
        assert_eq!(p.treatments[0].label, "metformine");
        assert!(p.situation.lives_alone);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].path, "allergies/0/reaction");
        assert_eq!(conflicts[0].values, vec!["choc anaphylactique", "œdème"]);
    }
    // Resolving: writing the field again settles it everywhere.
    a.daemon
        .record_edit::<Profile>(space, &reaction("choc anaphylactique"))
        .await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    assert!(b.daemon.record_get::<Profile>(space)?.1.is_empty());

    // Bad input is refused by name and changes nothing.
    let before = a.daemon.record_get::<Profile>(space)?;
    let e = a
        .daemon
        .record_edit::<Profile>(space, &put("allergies", r#"{"major":"oui"}"#))
        .await
        .unwrap_err();
    assert_eq!(e.code, ApiErrorCode::BadRequest);
    assert!(e.message.contains("boolean"), "{}", e.message);
    assert_eq!(a.daemon.record_get::<Profile>(space)?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn prevention_record_and_reminders() -> anyhow::Result<()> {
    let Paired { a, b, space, .. } = paired().await?;
    let today = jiff::civil::date(2026, 11, 24);
    let e = a.daemon.reminders(space, today, 3).unwrap_err();
    assert!(e.message.contains("birth date"), "{}", e.message);
    let set = |field: &str, value: &str| RecordEdit::Set {
        field: field.into(),
        value: value.into(),
    };
    // Inaya: a woman of 52.
    a.daemon
        .record_edit::<Profile>(space, &set("person.birth_date", "1974-02-11"))
        .await?;
    a.daemon
        .record_edit::<Profile>(space, &set("person.sex", "F"))
        .await?;
    let rules = |r: &[mes_protocol::record::ReminderItem]| -> Vec<String> {
        r.iter().map(|r| r.rule.clone()).collect()
    };
    let before = a.daemon.reminders(space, today, 3)?;
    for rule in ["breast", "colorectal", "cervical"] {
        assert!(
            rules(&before).contains(&rule.to_string()),
            "{rule}: {before:?}"
        );
    }
    // A mammography last spring, recorded on the other device, satisfies the programme
    // everywhere.
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    b.daemon
        .record_edit::<PreventionRecord>(
            space,
            &put(
                "acts",
                r#"{"rule":"breast","date":"2026-04-02","result":"normal"}"#,
            ),
        )
        .await?;
    converged(&a.daemon, &b.daemon, space, "prevention").await?;
    let after = a.daemon.reminders(space, today, 3)?;
    assert!(!rules(&after).contains(&"breast".to_string()), "{after:?}");
    assert!(rules(&after).contains(&"colorectal".to_string()));

    // Bad input is refused by name and changes nothing.
    let record = a.daemon.record_get::<PreventionRecord>(space)?;
    for (bad, named) in [
        (r#"{"rule":"grippe","date":"2026-01-01"}"#, "grippe"),
        (r#"{"rule":"mmr","date":"01/02/2026"}"#, "01/02/2026"),
    ] {
        let e = a
            .daemon
            .record_edit::<PreventionRecord>(space, &put("doses", bad))
            .await
            .unwrap_err();
        assert_eq!(e.code, ApiErrorCode::BadRequest);
        assert!(e.message.contains(named), "{}", e.message);
    }
    let e = a
        .daemon
        .record_edit::<Profile>(space, &set("person.sex", "X"))
        .await
        .unwrap_err();
    assert!(e.message.contains("\"X\""), "{}", e.message);
    assert_eq!(a.daemon.record_get::<PreventionRecord>(space)?, record);
    Ok(())
}
