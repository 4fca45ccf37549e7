//! End-to-end sync over real QUIC on loopback with real sled directories (F-sync core,
//! issue 2): convergence, offline merges, catch-up, relay restarts, snapshots, spaces,
//! volume kinds and blobs.

use mes_tests::{
    connect_as, converged, device, home, online, pair, paired, registered, relay, target, until,
    volume, Paired,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_after_pairing() -> anyhow::Result<()> {
    let Paired { a, b, space, .. } = paired().await?;
    a.daemon.note_set(space, "allergie", "pénicilline").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_get(space, "allergie")?, vec!["pénicilline"]);
    b.daemon.note_set(space, "groupe", "O+").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(a.daemon.note_get(space, "groupe")?, vec!["O+"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_offline_edits_merge_and_relay_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let addr = r.ready.address;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    r.shutdown().await;
    until(&a.daemon, Duration::from_secs(60), "a offline", |d| {
        !d.link.online()
    })
    .await?;
    until(&b.daemon, Duration::from_secs(60), "b offline", |d| {
        !d.link.online()
    })
    .await?;
    a.daemon
        .note_set(space, "traitement", "A: metformine")
        .await?;
    b.daemon
        .note_set(space, "traitement", "B: insuline")
        .await?;
    a.daemon.note_set(space, "taille", "172").await?;
    b.daemon.note_set(space, "poids", "70").await?;
    a.daemon.log_append(space, "hors ligne A").await?;
    b.daemon.log_append(space, "hors ligne B").await?;
    let r = relay(dir.path(), Some(addr), false).await?;
    assert_eq!(
        r.ready.fingerprint, t.fingerprint,
        "the certificate survives restarts"
    );
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    converged(&a.daemon, &b.daemon, space, "journal").await?;
    for d in [&a.daemon, &b.daemon] {
        assert_eq!(
            d.note_get(space, "traitement")?,
            vec!["A: metformine", "B: insuline"],
            "conflict kept visible"
        );
        assert_eq!(d.note_get(space, "taille")?, vec!["172"]);
        assert_eq!(d.note_get(space, "poids")?, vec!["70"]);
        let log = d.log_read(space)?;
        assert_eq!(log.len(), 2, "{log:?}");
    }
    assert_eq!(
        a.daemon.log_read(space)?,
        b.daemon.log_read(space)?,
        "same order on both"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_catches_up_on_1000_changes() -> anyhow::Result<()> {
    let Paired {
        dir,
        relay: _r,
        target: t,
        a,
        b,
        space,
    } = paired().await?;
    b.shutdown().await;
    for i in 0..1000 {
        a.daemon
            .note_set(space, &format!("mesure-{i:04}"), &format!("{i}"))
            .await?;
    }
    let b = device(dir.path(), "b", &t).await?;
    online(&b.daemon).await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_list(space)?.len(), 1000);
    assert_eq!(b.daemon.note_get(space, "mesure-0999")?, vec!["999"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_restarted_mid_sync_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let addr = r.ready.address;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    let writer = {
        let d = a.daemon.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                d.note_set(space, &format!("k{i}"), "v")
                    .await
                    .expect("acknowledged");
            }
        })
    };
    let r = {
        until(
            &b.daemon,
            Duration::from_secs(30),
            "some changes at b",
            |d| d.note_list(space).is_ok_and(|n| n.len() > 20),
        )
        .await?;
        r.shutdown().await;
        relay(dir.path(), Some(addr), false).await?
    };
    writer.await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_list(space)?.len(), 300);
    drop(r);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_behind_a_pruned_log_converges_from_the_snapshot() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let space = home(&a.daemon).await?;
    online(&a.daemon).await?;
    for i in 0..50 {
        a.daemon.note_set(space, &format!("n{i}"), "x").await?;
    }
    let notes = volume(&a.daemon, space, "notes").expect("notes volume");
    until(&a.daemon, Duration::from_secs(30), "uploaded", |d| {
        d.state().volumes[&notes].progress.idle()
            && d.state().volumes[&notes].progress.cursor.0 >= 51
    })
    .await?;
    a.daemon.put_snapshot(space, "notes").await?;
    a.daemon.note_set(space, "after", "snapshot").await?;
    let c = device(dir.path(), "c", &t).await?;
    pair(&a.daemon, &c.daemon).await?;
    converged(&a.daemon, &c.daemon, space, "notes").await?;
    assert_eq!(c.daemon.note_get(space, "after")?, vec!["snapshot"]);
    assert_eq!(c.daemon.note_list(space)?.len(), 51);
    assert!(
        c.daemon.state().volumes[&notes].progress.pruned.0 >= 51,
        "c went through the snapshot"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_spaces_volume_kinds_and_blobs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let home_space = pair(&a.daemon, &b.daemon).await?;
    let family = a.daemon.create_space("famille").await?;
    a.daemon.note_set(family, "vaccins", "à jour").await?;
    a.daemon
        .note_set(home_space, "vaccins", "rappel dû")
        .await?;
    a.daemon.log_append(family, "rendez-vous pédiatre").await?;
    a.daemon
        .inbox_drop(family, "résultat de laboratoire")
        .await?;
    until(
        &b.daemon,
        Duration::from_secs(30),
        "b learns the new space",
        |d| d.state().spaces.contains_key(&family),
    )
    .await?;
    for label in ["notes", "journal", "inbox"] {
        converged(&a.daemon, &b.daemon, family, label).await?;
    }
    converged(&a.daemon, &b.daemon, home_space, "notes").await?;
    assert_eq!(b.daemon.note_get(family, "vaccins")?, vec!["à jour"]);
    assert_eq!(b.daemon.note_get(home_space, "vaccins")?, vec!["rappel dû"]);
    assert_eq!(b.daemon.log_read(family)?.len(), 1);
    let inbox = b.daemon.inbox_read(family)?;
    assert!(inbox[0].ends_with("résultat de laboratoire"), "{inbox:?}");
    let spaces = b.daemon.list_spaces();
    assert!(
        spaces
            .iter()
            .any(|s| s.space == family && s.label == "famille"),
        "{spaces:?}"
    );

    let file = dir.path().join("compte-rendu.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content)?;
    let (blob, size) = mes_daemon::replica::blobs::put(&a.daemon, family, &file).await?;
    assert_eq!(size, 200_000);
    converged(&a.daemon, &b.daemon, family, "notes").await?;
    let out = dir.path().join("copie.bin");
    mes_daemon::replica::blobs::get(&b.daemon, family, blob, &out).await?;
    assert_eq!(std::fs::read(&out)?, content);
    assert!(
        mes_tests::files_containing(&dir.path().join("relay"), &content[1000..1064]).is_empty(),
        "blob stored in clear"
    );
    Ok(())
}

/// Blob ids are content hashes anyone may learn (a shared link): a member of another
/// space sending chunks under a committed blob's id neither overwrites nor deletes it.
/// The blob is read back from the relay chunk by chunk (a's own copy is in its cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_blob_survives_chunks_sent_under_its_id() -> anyhow::Result<()> {
    use mes_protocol::wire::{Reply, Request};
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let m = device(dir.path(), "m", &t).await?;
    let (a_space, m_space) = (home(&a.daemon).await?, home(&m.daemon).await?);
    registered(&a, a_space).await?;
    registered(&m, m_space).await?;
    let file = dir.path().join("ordonnance.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&file, &content)?;
    let (blob, _) = mes_daemon::replica::blobs::put(&a.daemon, a_space, &file).await?;
    let notes = mes_tests::volume(&a.daemon, a_space, "notes").expect("notes");
    let (reader, _) = connect_as(&a.daemon, &t).await?;
    let download = || async {
        let mut bytes = Vec::new();
        for index in 0.. {
            let reply = reader
                .request(Request::GetBlobChunk {
                    space: a_space,
                    volume: notes,
                    blob,
                    index,
                })
                .await?;
            let Reply::BlobChunk { data, last } = reply else {
                anyhow::bail!("GetBlobChunk answered {reply:?}");
            };
            bytes.extend(data);
            if last {
                break;
            }
        }
        anyhow::Ok(bytes)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stored = loop {
        match download().await {
            Ok(b) => break b,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.context("a's blob never reached the relay")),
        }
    };
    assert_eq!(
        blake3::hash(&stored).as_bytes(),
        &blob.0,
        "stored as uploaded"
    );
    let (c, _pushes) = connect_as(&m.daemon, &t).await?;
    let m_notes = mes_tests::volume(&m.daemon, m_space, "notes").expect("notes");
    for (index, last) in [(0, false), (1, true), (0, true), (3, true)] {
        let _ = c
            .request(Request::PutBlobChunk {
                space: m_space,
                volume: m_notes,
                blob,
                index,
                last,
                data: vec![0xee; 1000],
            })
            .await;
    }
    assert_eq!(download().await?, stored, "the committed blob was altered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_generation_replaces_history_and_keeps_offline_changes() -> anyhow::Result<()> {
    let Paired {
        dir,
        relay: _r,
        target: t,
        a,
        b,
        space,
    } = paired().await?;
    for i in 0..10 {
        a.daemon
            .note_set(space, &format!("n{i}"), &format!("v{i}"))
            .await?;
        a.daemon.log_append(space, &format!("entrée {i}")).await?;
    }
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    converged(&a.daemon, &b.daemon, space, "journal").await?;
    // b goes offline and edits; meanwhile a starts new generations.
    b.shutdown().await;
    let b = mes_tests::device_with(dir.path(), "b", None, false).await?;
    b.daemon.note_set(space, "hors-ligne", "b").await?;
    b.daemon.note_delete(space, "n1").await?;
    b.daemon.log_append(space, "entrée hors ligne").await?;
    b.shutdown().await;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let old_key = a
        .daemon
        .state()
        .keys
        .current(notes, mes_protocol::ids::Generation(0))
        .map(|(_, k)| k.duplicate())
        .expect("key");
    assert_eq!(
        mes_daemon::replica::generation::compact(&a.daemon, space, "notes").await?,
        mes_protocol::ids::Generation(1)
    );
    mes_daemon::replica::generation::compact(&a.daemon, space, "journal").await?;
    let refused = mes_daemon::replica::generation::compact(&a.daemon, space, "inbox")
        .await
        .expect_err("inboxes have none");
    assert!(refused.message.contains("inbox"), "{refused}");
    // A structured record would be emptied by a copy of its root values: refused, and
    // the volume stays at its generation.
    let refused = mes_daemon::replica::generation::compact(&a.daemon, space, "care")
        .await
        .expect_err("records have none yet");
    assert!(refused.message.contains("structured"), "{refused}");
    let care = volume(&a.daemon, space, "care").expect("care");
    assert_eq!(a.daemon.state().volumes[&care].meta.generation.0, 0);
    let b = device(dir.path(), "b", &t).await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    converged(&a.daemon, &b.daemon, space, "journal").await?;
    for d in [&a.daemon, &b.daemon] {
        let st = d.state();
        assert_eq!(st.volumes[&notes].meta.generation.0, 1);
        drop(st);
        assert_eq!(
            d.note_get(space, "hors-ligne")?,
            vec!["b"],
            "offline change carried over"
        );
        assert!(
            d.note_get(space, "n1").is_err(),
            "offline delete carried over"
        );
        assert_eq!(d.note_get(space, "n9")?, vec!["v9"]);
        let log = d.log_read(space)?;
        assert_eq!(log.len(), 11, "{log:?}");
    }
    // The old log is gone from the relay, and the new generation is under a new key.
    let (client, _p) = connect_as(&a.daemon, &t).await?;
    let mes_protocol::wire::Reply::Bundles { pruned_upto, .. } = client
        .request(mes_protocol::wire::Request::Fetch {
            space,
            volume: notes,
            after: mes_protocol::ids::Seq(0),
            max: 10,
        })
        .await?
    else {
        panic!()
    };
    assert!(
        pruned_upto.is_some_and(|p| p.0 >= 11),
        "old log dropped: {pruned_upto:?}"
    );
    let mes_protocol::wire::Reply::Snapshot { snapshot, .. } = client
        .request(mes_protocol::wire::Request::GetSnapshot {
            space,
            volume: notes,
        })
        .await?
    else {
        panic!()
    };
    let h = snapshot.header.clone();
    assert!(
        snapshot
            .open(&old_key, (space, notes, h.generation, h.epoch), false)
            .is_err(),
        "the old epoch key opens nothing of the new generation"
    );
    Ok(())
}

/// Graceful shutdown drains the local API: with one client mid-session and another
/// subscribed to events, `shutdown` answers what is in flight, ends both connections and
/// releases the store, so the same data directory opens again at once (without the
/// drain, sled's lock was still held by the connections' tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_clients_connected_releases_the_store() -> anyhow::Result<()> {
    use mes_client::ApiClient;
    use mes_protocol::wire::api::{ApiCall, ApiReply};
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let mut client = ApiClient::connect(&a.ready.socket).await?;
    let mut watcher = ApiClient::connect(&a.ready.socket).await?;
    watcher.call(None, ApiCall::Subscribe).await??;
    client
        .call(
            None,
            ApiCall::NoteSet {
                key: "groupe".into(),
                value: "A+".into(),
            },
        )
        .await??;
    a.shutdown().await;
    let again = device(dir.path(), "a", &t).await?;
    let mut client = ApiClient::connect(&again.ready.socket).await?;
    let reply = client
        .call(
            None,
            ApiCall::NoteGet {
                key: "groupe".into(),
            },
        )
        .await??;
    assert_eq!(reply, ApiReply::Values(vec!["A+".into()]));
    drop(watcher);
    again.shutdown().await;
    Ok(())
}
