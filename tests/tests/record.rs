//! The health record over real sync (issue 4): profile edits from two devices merge,
//! concurrent edits to one field are reported as a conflict on both, bad edits change
//! nothing.

use mes_protocol::api::ApiErrorCode;
use mes_protocol::record::ProfileEdit;
use mes_tests::{converged, device, pair, relay, target, until};
use std::time::Duration;

fn put(section: &str, record: &str) -> ProfileEdit {
    ProfileEdit::Put {
        section: section.into(),
        record: record.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_edits_merge_and_conflicts_are_reported() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let addr = r.ready.address;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    let id = a
        .daemon
        .profile_edit(
            space,
            &put(
                "allergies",
                r#"{"substance":"pénicilline","reaction":"urticaire"}"#,
            ),
        )
        .await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    assert_eq!(b.daemon.profile_get(space)?.0.allergies[0].id, id);

    // Offline, both edit: different records and fields, and the same field.
    r.shutdown().await;
    for d in [&a.daemon, &b.daemon] {
        until(d, Duration::from_secs(60), "offline", |d| !d.state().online).await?;
    }
    let reaction = |v: &str| {
        put(
            "allergies",
            &format!(r#"{{"id":"{id}","substance":"pénicilline","reaction":"{v}"}}"#),
        )
    };
    a.daemon
        .profile_edit(space, &reaction("choc anaphylactique"))
        .await?;
    b.daemon.profile_edit(space, &reaction("œdème")).await?;
    a.daemon
        .profile_edit(
            space,
            &put(
                "treatments",
                r#"{"label":"metformine","dosage":"500 mg x2"}"#,
            ),
        )
        .await?;
    b.daemon
        .profile_edit(
            space,
            &ProfileEdit::Set {
                field: "situation.lives_alone".into(),
                value: "true".into(),
            },
        )
        .await?;
    let _r = relay(dir.path(), Some(addr), false).await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    for d in [&a.daemon, &b.daemon] {
        let (p, conflicts) = d.profile_get(space)?;
        assert_eq!(p.treatments[0].label, "metformine");
        assert!(p.situation.lives_alone);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].path, "allergies/0/reaction");
        assert_eq!(conflicts[0].values, vec!["choc anaphylactique", "œdème"]);
    }
    // Resolving: writing the field again settles it everywhere.
    a.daemon
        .profile_edit(space, &reaction("choc anaphylactique"))
        .await?;
    converged(&a.daemon, &b.daemon, space, "profile").await?;
    assert!(b.daemon.profile_get(space)?.1.is_empty());

    // Bad input is refused by name and changes nothing.
    let before = a.daemon.profile_get(space)?;
    let e = a
        .daemon
        .profile_edit(space, &put("allergies", r#"{"major":"oui"}"#))
        .await
        .unwrap_err();
    assert_eq!(e.code, ApiErrorCode::BadRequest);
    assert!(e.message.contains("boolean"), "{}", e.message);
    assert_eq!(a.daemon.profile_get(space)?, before);
    Ok(())
}
