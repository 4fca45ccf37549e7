//! Research sharing (issue 6 item 9, F12.3): opt-in and revocable, and the export carries
//! no direct identifier. Control: the full FHIR export of the same space does carry them,
//! so the scan would find them.

use mes_client::ApiClient;
use mes_daemon::sandbox;
use mes_tests::{device, files_containing, home, online, relay, target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_research_export_is_opt_in_revocable_and_carries_no_identifier() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let a = device(dir.path(), "a", &target(&r)).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    let mut c = ApiClient::connect(&a.ready.socket).await?;
    let today = "2026-12-01".parse()?;
    let plan = sandbox::seed_001(&dir.path().join("seed"), today, sandbox::SANDBOX_HISTORY);
    sandbox::apply(&mut c, Some(space), plan, |_, _| {}).await?;

    let out = dir.path().join("research");
    let e = a.daemon.research_export(space, &out).await.unwrap_err();
    assert!(e.message.contains("opt in first"), "{}", e.message);
    assert!(
        !out.join("research.json").exists(),
        "nothing written before opting in"
    );

    a.daemon.set_research(space, true).await?;
    a.daemon.research_export(space, &out).await?;
    let text = std::fs::read_to_string(out.join("research.json"))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(json["birth_year"], "1988");
    assert!(json["measurements"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    assert!(json["documents"].as_array().is_some_and(|d| !d.is_empty()));
    let pseudonym = json["pseudonym"].as_str().unwrap().to_string();

    let (principal, device_id) = {
        let id = a.daemon.identity();
        (
            id.principal.principal_id().to_string(),
            id.device.device_id().to_string(),
        )
    };
    // Direct identifiers of seed 001's Inaya M., her relatives and professionals, and of
    // her space, principal and device.
    let identifiers = [
        "Inaya",
        "1988-05-14",
        "Karim",
        "06 12 34 56 78",
        "Antoine Robert",
        "04 72 00 00 00",
        &space.to_string(),
        &principal,
        &device_id,
    ];
    for id in identifiers {
        assert!(
            files_containing(&out, id.as_bytes()).is_empty(),
            "{id} in the research export"
        );
    }
    // Control: the full export of the same space holds them, so the scan finds them.
    let full = dir.path().join("full");
    mes_daemon::export::export(&a.daemon, space, &full).await?;
    for id in ["Inaya", "1988-05-14", "Karim", "06 12 34 56 78"] {
        assert!(
            !files_containing(&full, id.as_bytes()).is_empty(),
            "control: {id} not found in the full export"
        );
    }

    // Revocable: opting out stops exports; opting in again gives an unlinkable pseudonym.
    a.daemon.set_research(space, false).await?;
    assert!(a.daemon.research_export(space, &out).await.is_err());
    a.daemon.set_research(space, true).await?;
    a.daemon.research_export(space, &out).await?;
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("research.json"))?)?;
    assert_ne!(again["pseudonym"].as_str().unwrap(), pseudonym);
    Ok(())
}
