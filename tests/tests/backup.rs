//! Backup and restore of a stopped hub (issue 7, operator tooling) with the real
//! `mes-relay`: a restored hub has the same identity (certificate fingerprint, signing
//! key), the same enrolment and the same sealed history, so a device that synced with
//! the original carries on with the copy. A damaged backup, or a target that is not
//! empty, is refused and writes nothing.

use mes_protocol::enrolment::nir::Nir;
use mes_tests::{converged, device, home, online, relay, run_relay, target, until};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_hub_is_the_same_hub_and_a_damaged_backup_changes_nothing() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    // A population on file and a device that wrote notes.
    let csv = format!(
        "nir,vitale_serial,last_name,first_names,birth_date,sex,email,postal_address,departement,representatives\n\
         {},VIT1,Martin,Camille,1980-05-12,M,camille@exemple.fr,,69,\n",
        Nir::with_key("1800569123456")
    );
    std::fs::write(dir.path().join("p.csv"), csv)?;
    let (code, _, err) = run_relay(&[
        "import-population",
        "--data",
        data_s,
        dir.path().join("p.csv").to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    let r = relay(dir.path(), None, false).await?;
    let (address, fingerprint, signing) = (
        r.ready.address,
        r.ready.fingerprint.clone(),
        r.ready.signing_key.clone(),
    );
    let a = device(dir.path(), "a", &target(&r)).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    a.daemon
        .note_set(space, "avant", "écrit avant la sauvegarde")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    until(&a.daemon, Duration::from_secs(30), "uploaded", |d| {
        d.status().volumes.iter().all(|v| v.pending_uploads == 0)
    })
    .await?;
    r.shutdown().await;

    let backup = dir.path().join("hub.backup");
    let (code, out, err) = run_relay(&[
        "backup",
        "--data",
        data_s,
        "--out",
        backup.to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(report["key_files"], 6, "{report}");
    // It holds every key of the hub: 0600, in a 0700 data directory (issue 22, finding 9).
    mes_tests::assert_owner_only(&backup);
    mes_tests::assert_owner_only(&data);
    // Never over an existing file.
    let (code, _, err) = run_relay(&[
        "backup",
        "--data",
        data_s,
        "--out",
        backup.to_str().unwrap(),
    ])?;
    assert_ne!(code, 0);
    assert!(err.contains("hub.backup"), "{err}");

    // A damaged copy: one byte flipped in the middle. Refused, and nothing is created.
    let mut bytes = std::fs::read(&backup)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = dir.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes)?;
    let target_dir = dir.path().join("restored");
    let (code, _, err) = run_relay(&[
        "restore",
        "--from",
        damaged.to_str().unwrap(),
        "--data",
        target_dir.to_str().unwrap(),
    ])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("damaged") || err.contains("cut short") || err.contains("unknown frame"),
        "{err}"
    );
    assert!(!target_dir.exists(), "a refused restore writes nothing");
    // Control: the same file unflipped restores; again into the same place is refused.
    let (code, _, err) = run_relay(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data",
        target_dir.to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_relay(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data",
        target_dir.to_str().unwrap(),
    ])?;
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");
    let stats = |d: &str| -> anyhow::Result<String> { Ok(run_relay(&["stats", "--data", d])?.1) };
    assert_eq!(stats(target_dir.to_str().unwrap())?, stats(data_s)?);

    // The restored hub serves on the same address with the same identity; the device
    // that knew the original carries on, and a new device reads what was written before.
    std::fs::remove_dir_all(&data)?;
    std::fs::rename(&target_dir, &data)?;
    let r = relay(dir.path(), Some(address), false).await?;
    assert_eq!(
        (r.ready.fingerprint.clone(), r.ready.signing_key.clone()),
        (fingerprint, signing)
    );
    online(&a.daemon).await?;
    a.daemon
        .note_set(space, "après", "écrit après la restauration")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let b = device(dir.path(), "b", &target(&r)).await?;
    online(&b.daemon).await?;
    mes_tests::pair(&a.daemon, &b.daemon).await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(
        b.daemon.note_get(space, "avant")?,
        vec!["écrit avant la sauvegarde".to_string()]
    );
    assert_eq!(
        b.daemon.note_get(space, "après")?,
        vec!["écrit après la restauration".to_string()]
    );
    a.shutdown().await;
    b.shutdown().await;
    r.shutdown().await;
    Ok(())
}
