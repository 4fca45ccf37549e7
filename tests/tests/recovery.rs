//! Recovery when every device is lost (issue 6 item 8, F12.4): a kit sealed with a
//! passphrase, or its secret split 2 of 3 among trusted persons, restores the person on a
//! fresh device against the real relay, with every record and file readable. Wrong
//! passphrases, too few shares and a superseded kit are refused and change nothing.

use mes_daemon::devices::recovery::{KitKey, KitLock};
use mes_protocol::record::documents::{DocQuery, NewDocument};
use mes_tests::{device, home, online, relay, target, until};
use std::time::Duration;
use zeroize::Zeroizing;

async fn lose_everything_and_restore(split: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    a.daemon.note_set(space, "groupe", "O négatif").await?;
    let file = dir.path().join("ordonnance.txt");
    std::fs::write(&file, "Amoxicilline 1 g")?;
    a.daemon
        .doc_add(
            space,
            &NewDocument {
                path: file.to_string_lossy().into_owned(),
                category: "prescriptions".into(),
                title: "Ordonnance".into(),
                date: "2026-11-30".into(),
                ..Default::default()
            },
        )
        .await?;
    let kit = dir.path().join("kit.age");
    let passphrase = "cheval batterie agrafe correcte";
    let lock = if split {
        KitLock::Split { k: 2, n: 3 }
    } else {
        KitLock::Passphrase(Zeroizing::new(passphrase.into()))
    };
    // An earlier kit, superseded by the one made next (issue 22, finding 3: the relay
    // admits a restored device on the word of the person's current kit only).
    let superseded = dir.path().join("old-kit.age");
    a.daemon
        .make_recovery_kit(
            &superseded,
            KitLock::Passphrase(Zeroizing::new(passphrase.into())),
        )
        .await?;
    let written = a.daemon.make_recovery_kit(&kit, lock).await?;
    assert_eq!(written.len(), if split { 4 } else { 1 });
    until(&a.daemon, Duration::from_secs(30), "uploaded", |d| {
        d.state().volumes.values().all(|v| v.progress.idle())
    })
    .await?;
    let sealed = std::fs::read(&kit)?;
    assert!(!String::from_utf8_lossy(&sealed).contains("AGE-SECRET-KEY"));
    // Every device lost.
    a.shutdown().await;
    std::fs::remove_dir_all(dir.path().join("a"))?;
    std::fs::remove_file(dir.path().join("a.age"))?;

    let c = device(dir.path(), "c", &t).await?;
    online(&c.daemon).await?;
    let before = c.daemon.identity().principal.principal_id();
    // Bad keys are refused and change nothing.
    let bad = if split {
        KitKey::Shares(vec![std::fs::read_to_string(&written[1])?])
    } else {
        KitKey::Passphrase(Zeroizing::new("pas la bonne phrase".into()))
    };
    let e = c.daemon.restore_from_kit(&sealed, bad).await.unwrap_err();
    assert!(
        e.message
            .contains(if split { "2 needed" } else { "does not open" }),
        "{}",
        e.message
    );
    assert_eq!(c.daemon.identity().principal.principal_id(), before);
    let e = c
        .daemon
        .restore_from_kit(
            &std::fs::read(&superseded)?,
            KitKey::Passphrase(Zeroizing::new(passphrase.into())),
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("not the person's current one"),
        "{}",
        e.message
    );
    assert_eq!(
        c.daemon.identity().principal.principal_id(),
        before,
        "a refused restore changes nothing"
    );
    let good = if split {
        KitKey::Shares(vec![
            std::fs::read_to_string(&written[1])?,
            std::fs::read_to_string(&written[3])?,
        ])
    } else {
        KitKey::Passphrase(Zeroizing::new(passphrase.into()))
    };
    let (address, _) = c.daemon.restore_from_kit(&sealed, good).await?;
    assert_eq!(address, t.address.to_string());
    until(&c.daemon, Duration::from_secs(60), "restored notes", |d| {
        d.note_get(space, "groupe")
            .is_ok_and(|v| v == ["O négatif"])
    })
    .await?;
    until(
        &c.daemon,
        Duration::from_secs(60),
        "restored documents",
        |d| {
            d.doc_search(space, &DocQuery::default())
                .is_ok_and(|(_, docs)| docs.len() == 1)
        },
    )
    .await?;
    let id = c.daemon.doc_search(space, &DocQuery::default())?.1[0]
        .id
        .clone();
    let out = dir.path().join("back.txt");
    c.daemon.doc_get(space, &id, &out).await?;
    assert_eq!(std::fs::read_to_string(&out)?, "Amoxicilline 1 g");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_kit_restores_everything_on_a_fresh_device() -> anyhow::Result<()> {
    lose_everything_and_restore(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_shares_restore_and_one_does_not() -> anyhow::Result<()> {
    lose_everything_and_restore(true).await
}
