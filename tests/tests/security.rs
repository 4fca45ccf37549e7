//! Security claims, each tried as an attack with a control showing the check can fail
//! (issue 2, acceptance 2 and 5): confidentiality at rest and at the relay, revoked
//! devices, tampered bundles, a pairing relay in the middle, and acknowledgement only
//! after flush.

use mes_protocol::crypto::keys::SigningSecret;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::Seq;
use mes_protocol::wire::api::ApiErrorCode;
use mes_protocol::wire::{Reply, Request};
use mes_tests::{
    connect_as, converged, current_key, device, device_with, files_containing, online, pair,
    paired, relay, target, until, volume, Paired,
};
use std::path::Path;
use std::time::Duration;

async fn write_canaries(null_cipher: bool, dir: &Path) -> anyhow::Result<()> {
    // The control's relay must take null-cipher bundles; a production relay refuses them.
    let r = mes_tests::relay_with(
        dir,
        None,
        mes_relay::handler::Misbehaviour {
            accept_null_cipher: null_cipher,
            ..Default::default()
        },
    )
    .await?;
    let t = target(&r);
    let a = device_with(dir, "a", Some(t.clone()), null_cipher).await?;
    let b = device_with(dir, "b", Some(t), null_cipher).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    a.daemon
        .note_set(space, "CANARY-TITLE-7f3a", "CANARY-VALUE-91c2")
        .await?;
    a.daemon.log_append(space, "CANARY-LOG-55e1").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    converged(&a.daemon, &b.daemon, space, "journal").await?;
    assert_eq!(
        b.daemon.note_get(space, "CANARY-TITLE-7f3a")?,
        vec!["CANARY-VALUE-91c2"]
    );
    a.shutdown().await;
    b.shutdown().await;
    r.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_appear_in_no_file_unless_the_cipher_is_null() -> anyhow::Result<()> {
    let sealed = tempfile::tempdir()?;
    write_canaries(false, sealed.path()).await?;
    let clear = tempfile::tempdir()?;
    write_canaries(true, clear.path()).await?;
    for canary in ["CANARY-TITLE-7f3a", "CANARY-VALUE-91c2", "CANARY-LOG-55e1"] {
        for part in ["relay", "a", "b"] {
            let leaks = files_containing(&sealed.path().join(part), canary.as_bytes());
            assert!(leaks.is_empty(), "{canary} found in {leaks:?}");
        }
        // Control: the same scan finds the canary at the relay and in a replica with the null cipher.
        assert!(
            !files_containing(&clear.path().join("relay"), canary.as_bytes()).is_empty(),
            "control: {canary} not found at the null-cipher relay"
        );
        assert!(
            !files_containing(&clear.path().join("b"), canary.as_bytes()).is_empty(),
            "control: {canary} not found in the null-cipher replica"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_cannot_decrypt_later_changes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let c = device(dir.path(), "c", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    pair(&a.daemon, &c.daemon).await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let c_device = c.daemon.identity().device.device_id();
    // Everything c holds, as an attacker with its disk would.
    let c_keys: Vec<SymmetricKey> = {
        let st = c.daemon.state();
        (0..4)
            .filter_map(|e| {
                st.keys
                    .get(
                        notes,
                        mes_protocol::ids::Generation(0),
                        mes_protocol::ids::Epoch(e),
                    )
                    .map(mes_protocol::crypto::seal::SymmetricKey::duplicate)
            })
            .collect()
    };
    assert!(!c_keys.is_empty());
    a.daemon.revoke_device(c_device).await?;
    until(
        &b.daemon,
        Duration::from_secs(30),
        "b gets the new epoch",
        |d| {
            d.state()
                .keys
                .current(notes, mes_protocol::ids::Generation(0))
                .is_some_and(|(e, _)| e.0 == 1)
        },
    )
    .await?;
    let before = a.daemon.state().volumes[&notes].progress.cursor;
    a.daemon
        .note_set(space, "après révocation", "secret")
        .await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(
        b.daemon.note_get(space, "après révocation")?,
        vec!["secret"],
        "control: a current device reads it"
    );

    // The raw ciphertext stored at the relay since the revocation, fetched by a legitimate device.
    let (client, _pushes) = connect_as(&b.daemon, &t).await?;
    let Reply::Bundles { items, .. } = client
        .request(Request::Fetch {
            space,
            volume: notes,
            after: before,
            max: 100,
        })
        .await?
    else {
        panic!()
    };
    assert!(!items.is_empty());
    let b_key = b
        .daemon
        .state()
        .keys
        .current(notes, mes_protocol::ids::Generation(0))
        .map(|(_, k)| k.duplicate())
        .expect("b key");
    for (_, bundle) in &items {
        let h = &bundle.header;
        assert_eq!(h.epoch.0, 1, "written under the new epoch");
        for k in &c_keys {
            assert!(
                bundle
                    .open(k, (space, notes, h.generation, h.epoch), false)
                    .is_err(),
                "the revoked device opened a later bundle"
            );
        }
        assert!(
            bundle
                .open(&b_key, (space, notes, h.generation, h.epoch), false)
                .is_ok(),
            "control: the current key opens it"
        );
    }
    // And the relay refuses the revoked device outright.
    until(&c.daemon, Duration::from_secs(30), "c cut off", |d| {
        !d.link.online()
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_forged_bundles_are_rejected_and_change_nothing() -> anyhow::Result<()> {
    let Paired {
        dir: _dir,
        relay: _r,
        target: t,
        a,
        b,
        space,
    } = paired().await?;
    a.daemon.note_set(space, "k", "v").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let good_key = current_key(&a.daemon, notes).expect("key");
    let key = SigningSecret::from_bytes(&a.daemon.identity().device.signing.to_bytes());
    let (client, _p) = connect_as(&a.daemon, &t).await?;
    let Reply::Bundles { items, head, .. } = client
        .request(Request::Fetch {
            space,
            volume: notes,
            after: Seq(0),
            max: 1,
        })
        .await?
    else {
        panic!()
    };
    let mut tampered = items[0].1.clone();
    tampered.ciphertext[5] ^= 0x40;
    let err = client
        .request(Request::Append {
            space,
            volume: notes,
            bundles: vec![tampered],
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("signature"),
        "relay names the problem: {err}"
    );
    let Reply::Bundles {
        head: head_after, ..
    } = client
        .request(Request::Fetch {
            space,
            volume: notes,
            after: Seq(0),
            max: 1,
        })
        .await?
    else {
        panic!()
    };
    assert_eq!(head, head_after, "a refused append changes nothing");

    // A chain of three with its middle bundle altered: the relay checks only the tail's
    // signature for an intact chain, so the broken link must bring the middle one's own
    // signature in, and fail.
    let mut prev = None;
    let mut chain: Vec<_> = (0..3u8)
        .map(|i| {
            let mut h = items[0].1.header.clone();
            h.prev = prev;
            let b = mes_protocol::crypto::seal::SealedBundle::seal(
                &good_key,
                h,
                &key,
                &mut rand::rngs::OsRng,
                &[i; 8],
            );
            prev = Some(b.link());
            b
        })
        .collect();
    assert_eq!(
        mes_protocol::crypto::seal::SealedBundle::verify_authors(&chain),
        Ok(()),
        "control: the intact chain verifies"
    );
    chain[1].ciphertext[0] ^= 1;
    let err = client
        .request(Request::Append {
            space,
            volume: notes,
            bundles: chain,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("bundle 1 of the append"),
        "relay names the bundle: {err}"
    );

    // A forged bundle, validly signed by a member device but sealed under a key that is not the epoch key.
    let digest_before = b.daemon.digest(notes);
    let cursor_before = b.daemon.state().volumes[&notes].progress.cursor;
    let header = items[0].1.header.clone();
    let wrong = SymmetricKey::generate(&mut rand::rngs::OsRng);
    let forged = mes_protocol::crypto::seal::SealedBundle::seal(
        &wrong,
        header.clone(),
        &key,
        &mut rand::rngs::OsRng,
        b"forged",
    );
    client
        .request(Request::Append {
            space,
            volume: notes,
            bundles: vec![forged],
        })
        .await?;
    until(
        &b.daemon,
        Duration::from_secs(30),
        "b sees the new head and stalls",
        |d| {
            let st = d.state();
            st.volumes[&notes].progress.head > cursor_before && st.volumes[&notes].progress.stalled
        },
    )
    .await?;
    assert_eq!(
        b.daemon.digest(notes),
        digest_before,
        "the forged bundle changed nothing"
    );
    assert_eq!(
        b.daemon.state().volumes[&notes].progress.cursor,
        cursor_before,
        "the cursor did not pass it"
    );
    // Control: the same bundle under the right key would have been accepted.
    let honest = mes_protocol::crypto::seal::SealedBundle::seal(
        &good_key,
        header.clone(),
        &key,
        &mut rand::rngs::OsRng,
        b"x",
    );
    assert!(honest
        .open(
            &good_key,
            (space, notes, header.generation, header.epoch),
            false
        )
        .is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_in_the_middle_of_pairing_makes_it_fail() -> anyhow::Result<()> {
    for tamper in [true, false] {
        let dir = tempfile::tempdir()?;
        let r = relay(dir.path(), None, tamper).await?;
        let t = target(&r);
        let a = device(dir.path(), "a", &t).await?;
        let b = device(dir.path(), "b", &t).await?;
        online(&a.daemon).await?;
        online(&b.daemon).await?;
        mes_tests::home(&a.daemon).await?;
        let b_principal = b.daemon.identity().principal.principal_id();
        let code = mes_daemon::devices::pairing::start(a.daemon.clone()).await?;
        let joined = mes_daemon::devices::pairing::join(b.daemon.clone(), &code, "b").await;
        if tamper {
            let e = joined.expect_err("pairing through a tampering relay must fail");
            assert_eq!(e.code, ApiErrorCode::Pairing);
            assert!(e.message.contains("confirmation"), "{e}");
            assert_eq!(
                b.daemon.identity().principal.principal_id(),
                b_principal,
                "nothing was handed over"
            );
        } else {
            joined?; // Control: the same exchange through an honest relay succeeds.
            assert_eq!(
                b.daemon.identity().principal.principal_id(),
                a.daemon.identity().principal.principal_id()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledgement_and_no_upload_when_the_flush_fails() -> anyhow::Result<()> {
    let Paired {
        dir: _dir,
        relay: _r,
        target: t,
        a,
        b,
        space,
    } = paired().await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let head_before = b.daemon.state().volumes[&notes].progress.head;
    a.daemon.store.inject_flush_failure(true);
    let e = a
        .daemon
        .note_set(space, "jamais", "acquitté")
        .await
        .expect_err("must not be acknowledged");
    assert_eq!(e.code, ApiErrorCode::Storage);
    // The engine is awake and idle, with nothing durable to upload; the relay never got it.
    a.daemon.link.wake.notify_one();
    until(&a.daemon, Duration::from_secs(10), "a idle", |d| {
        d.state().volumes[&notes].progress.idle()
    })
    .await?;
    assert_eq!(
        a.daemon.state().volumes[&notes].progress.pending(),
        0,
        "nothing durable to upload"
    );
    let (client, _p) = connect_as(&a.daemon, &t).await?;
    let Reply::Bundles { head, .. } = client
        .request(Request::Fetch {
            space,
            volume: notes,
            after: Seq(0),
            max: 1,
        })
        .await?
    else {
        panic!()
    };
    assert_eq!(head, head_before, "the relay never got it");
    // Control: with flushes working again, a write is acknowledged and reaches b.
    a.daemon.store.inject_flush_failure(false);
    a.daemon.note_set(space, "ensuite", "ok").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_get(space, "ensuite")?, vec!["ok"]);
    Ok(())
}
