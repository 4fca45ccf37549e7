//! Issue 22 finding 5: memory a client can pin, tried against the real relay over QUIC.
//! Each test has a control that behaves well in the same way and is served.
//!
//! - a client that stops reading is disconnected, and the bytes it held come back;
//! - pairing messages are bounded in size, rendezvous per connection in number, and a
//!   partner that never reads them is cut rather than buffered;
//! - a network address holds at most its share of connections;
//! - a device cannot open streams the relay would never read;
//! - a space holds files up to its quota, and uploads left unfinished are swept;
//! - a stranger pipelining requests is paced.
//!
//! `mes-bench hostile` measures the same attacks at scale (docs/benchmarks.md).

use mes_daemon::sync::relay_client::ClientError;
use mes_protocol::wire::{ErrorCode, Push, Request};
use mes_relay::defaults::{
    MAX_PAIRING_MESSAGE, MAX_PAIRING_MESSAGES_PER_CONNECTION, MAX_RENDEZVOUS_PER_CONNECTION,
    WRITE_STALL,
};
use mes_tests::hostile::RawConn;
use mes_tests::{refused_with, relay, relay_configured, target, RawPrincipal};
use std::time::Duration;

/// A principal whose device is listed: it registered a space.
async fn listed(
    t: &mes_daemon::sync::relay_client::RelayTarget,
    name: &str,
) -> anyhow::Result<RawPrincipal> {
    let p = RawPrincipal::new(name);
    let (_, genesis) = p.genesis();
    p.connect(t)
        .await?
        .request(Request::RegisterSpace { genesis })
        .await?;
    Ok(p)
}

/// Declares a "notes" volume in `space`, signed by its owner `p`.
async fn notes_volume(
    c: &mes_daemon::sync::relay_client::RelayClient,
    space: mes_protocol::ids::SpaceId,
    p: &RawPrincipal,
) -> anyhow::Result<mes_protocol::ids::VolumeId> {
    let notes = mes_protocol::ids::VolumeId(rand::random());
    c.request(Request::DeclareVolume {
        decl: mes_protocol::access::membership::Signed::sign(
            mes_protocol::access::membership::VolumeDecl {
                space,
                volume: notes,
                kind: mes_protocol::ids::VolumeKind::Automerge,
                generation: mes_protocol::ids::Generation(0),
                label: "notes".into(),
            },
            &p.principal.signing,
        ),
    })
    .await?;
    Ok(notes)
}

/// Sends requests without reading until the relay stops taking them (every window and
/// queue full): how many went.
async fn fill(c: &mut RawConn) -> u64 {
    let mut id = 0;
    loop {
        id += 1;
        match tokio::time::timeout(Duration::from_secs(2), c.request(id, Request::GetHubInfo)).await
        {
            Ok(Ok(())) => {}
            _ => return id,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_its_bytes_return() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    // A listed device (a stranger's requests are paced, so it never fills its queue).
    let deaf_person = listed(&t, "deaf").await?;
    let mut deaf = RawConn::open(&endpoint, &t, &deaf_person).await?;
    let sent = fill(&mut deaf).await;
    assert!(
        sent > 1000,
        "the relay took {sent} requests before pushing back"
    );
    assert!(
        deaf.closed_within(WRITE_STALL + Duration::from_secs(15))
            .await,
        "a client that never reads is disconnected once its writer stalls"
    );
    let stalled = r.relay.metrics.stalled_connections.get();
    assert_eq!(stalled, 1, "counted as stalled");
    // Control: a device that reads its replies asks as much and stays connected.
    let reader = listed(&t, "reader").await?.connect(&t).await?;
    for _ in 0..sent {
        reader.request(Request::GetHubInfo).await?;
    }
    assert!(reader.request(Request::GetHubInfo).await.is_ok());
    let budgets = &r.relay.budgets;
    assert_eq!(budgets.replies.available(), budgets.replies.capacity());
    assert_eq!(budgets.requests.available(), budgets.requests.capacity());
    r.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_pushes_are_bounded_and_a_partner_that_never_reads_is_cut() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let sender = RawPrincipal::new("sender").connect(&t).await?;
    // A message over the limit is refused, naming it.
    let rv: [u8; 16] = rand::random();
    sender.request(Request::PairOpen { rendezvous: rv }).await?;
    let big = sender
        .request(Request::PairSend {
            rendezvous: rv,
            body: vec![0; MAX_PAIRING_MESSAGE + 1],
        })
        .await;
    assert_eq!(refused_with(big), Some(ErrorCode::TooLarge));
    // A connection joins at most so many rendezvous.
    for _ in 1..MAX_RENDEZVOUS_PER_CONNECTION {
        sender
            .request(Request::PairOpen {
                rendezvous: rand::random(),
            })
            .await?;
    }
    let one_more = sender
        .request(Request::PairOpen {
            rendezvous: rand::random(),
        })
        .await;
    assert_eq!(refused_with(one_more), Some(ErrorCode::Busy));

    // A partner that never reads is cut, not buffered.
    let mut deaf = RawConn::open(&endpoint, &t, &RawPrincipal::new("deaf")).await?;
    deaf.request(1, Request::PairOpen { rendezvous: rv })
        .await?;
    // Control: a partner that reads gets every message and stays.
    let (listener, mut pushes) = {
        let p = RawPrincipal::new("listener");
        mes_daemon::sync::relay_client::RelayClient::connect(
            &endpoint,
            &t,
            &p.cert,
            &p.device.signing,
        )
        .await?
    };
    let rv2: [u8; 16] = rand::random();
    listener
        .request(Request::PairOpen { rendezvous: rv2 })
        .await?;
    let sender2 = RawPrincipal::new("sender2").connect(&t).await?;
    sender2
        .request(Request::PairOpen { rendezvous: rv2 })
        .await?;
    let body = vec![7u8; 60 << 10];
    // The refused one above counted too.
    let messages = MAX_PAIRING_MESSAGES_PER_CONNECTION - 1;
    for _ in 0..messages {
        sender
            .request(Request::PairSend {
                rendezvous: rv,
                body: body.clone(),
            })
            .await?;
    }
    assert!(
        deaf.closed_within(WRITE_STALL + Duration::from_secs(15))
            .await,
        "a partner that let {} KiB wait is cut",
        messages * 60
    );
    // The control's exchange goes at the pace its partner reads, as pairing does.
    for heard in 0..MAX_PAIRING_MESSAGES_PER_CONNECTION {
        sender2
            .request(Request::PairSend {
                rendezvous: rv2,
                body: body.clone(),
            })
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), pushes.recv()).await? {
                Some(Push::Pair { .. }) => break,
                Some(_) => {}
                None => anyhow::bail!("the reading partner was cut after {heard} messages"),
            }
        }
    }
    assert!(listener.request(Request::GetHubInfo).await.is_ok());
    // A connection sends only so many.
    let one_more = sender2
        .request(Request::PairSend {
            rendezvous: rv2,
            body: vec![1],
        })
        .await;
    assert_eq!(refused_with(one_more), Some(ErrorCode::Busy));
    r.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_at_most_its_share_of_connections() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay_configured(dir.path(), |c| {
        c.max_connections_per_address = 2;
        c.arrival_rate = Some(mes_relay::defaults::ARRIVAL_RATE);
    })
    .await?;
    let t = target(&r);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let one = RawConn::open(&endpoint, &t, &RawPrincipal::new("one")).await?;
    let _two = RawConn::open(&endpoint, &t, &RawPrincipal::new("two")).await?;
    let three = RawConn::open(&endpoint, &t, &RawPrincipal::new("three")).await;
    assert!(three.is_err(), "a third connection from the same address");
    assert_eq!(r.relay.metrics.refused_connections.get(), 1);
    // Control: once one goes, another comes in.
    one.conn.close(0u32.into(), b"bye");
    let mut again = None;
    for _ in 0..50 {
        match RawConn::open(&endpoint, &t, &RawPrincipal::new("again")).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(again.is_some(), "a freed place is given again");
    r.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_open_streams_the_relay_never_reads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let mut c = RawConn::open(&endpoint, &t, &RawPrincipal::new("streams")).await?;
    let bi = tokio::time::timeout(Duration::from_millis(500), c.conn.open_bi()).await;
    assert!(bi.is_err(), "no credit for a stream of the device's own");
    let uni = tokio::time::timeout(Duration::from_millis(500), c.conn.open_uni()).await;
    assert!(uni.is_err(), "nor a one-way one");
    // Control: the stream the relay opened carries requests as ever.
    c.request(1, Request::GetHubInfo).await?;
    let reply = mes_protocol::wire::framing::read_frame::<mes_protocol::wire::RelayFrame, _>(
        &mut c.recv,
        mes_protocol::wire::codec::MAX_WIRE_FRAME,
    )
    .await?;
    assert!(matches!(
        reply,
        Some(mes_protocol::wire::RelayFrame::Response { id: 1, .. })
    ));
    r.shutdown().await;
    Ok(())
}

/// Finding 6: a fresh identity that only knocks (asks what anyone may, opens a
/// rendezvous, lists its spaces and finds none) leaves nothing durable at the relay; the
/// control is the same identity registering a space, which lists its device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_who_only_knocks_leaves_nothing_durable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let stranger = RawPrincipal::new("stranger");
    let c = stranger.connect(&t).await?;
    c.request(Request::GetHubInfo).await?;
    c.request(Request::PairOpen {
        rendezvous: rand::random(),
    })
    .await?;
    c.request(Request::ListSpaces).await?;
    assert!(
        r.relay.devices_of(stranger.id()).await?.is_empty(),
        "knocking listed the stranger's device"
    );
    // Nor can it keep a recovery kit's key without a space.
    let kit = Request::SetAdmissionKey {
        key: RawPrincipal::new("kit").id(),
    };
    assert_eq!(
        refused_with(c.request(kit.clone()).await),
        Some(ErrorCode::Forbidden)
    );
    assert!(r.relay.devices_of(stranger.id()).await?.is_empty());
    // Control: a request that writes lists it first, and with a space the kit is kept.
    let (space, genesis) = stranger.genesis();
    c.request(Request::RegisterSpace { genesis }).await?;
    let listed = r.relay.devices_of(stranger.id()).await?;
    assert_eq!(listed.len(), 1, "space {space:?}");
    assert!(c.request(kit).await.is_ok());
    r.shutdown().await;
    Ok(())
}

/// Finding 6: what one principal makes the relay keep is bounded: so many spaces, so many
/// chunks under one file id (control: the last space within the quota is taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_owns_only_so_many_spaces_and_chunks() -> anyhow::Result<()> {
    use mes_relay::defaults::{MAX_BLOB_CHUNKS, MAX_SPACES_PER_PRINCIPAL};
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let hoarder = RawPrincipal::new("hoarder");
    let c = hoarder.connect(&t).await?;
    let mut first = None;
    for _ in 0..MAX_SPACES_PER_PRINCIPAL {
        let (space, genesis) = hoarder.genesis();
        c.request(Request::RegisterSpace { genesis }).await?;
        first.get_or_insert(space);
    }
    let (_, genesis) = hoarder.genesis();
    match c.request(Request::RegisterSpace { genesis }).await {
        Err(ClientError::Refused(w)) => assert_eq!(w.code, ErrorCode::Busy, "{w:?}"),
        other => panic!("one space more than the quota: {other:?}"),
    }
    let space = first.expect("a space");
    let notes = notes_volume(&c, space, &hoarder).await?;
    let chunk = |index: usize| Request::PutBlobChunk {
        space,
        volume: notes,
        blob: mes_protocol::ids::BlobId(rand::random()),
        index: index as u32,
        last: false,
        data: vec![1; 16],
    };
    assert!(c.request(chunk(MAX_BLOB_CHUNKS - 1)).await.is_ok());
    match c.request(chunk(MAX_BLOB_CHUNKS)).await {
        Err(ClientError::Refused(w)) => assert_eq!(w.code, ErrorCode::TooLarge, "{w:?}"),
        other => panic!("a chunk past the last: {other:?}"),
    }
    r.shutdown().await;
    Ok(())
}

/// Replies `c` reads within `within` to `sent` pipelined requests.
async fn replies_within(c: &mut RawConn, sent: u64, within: Duration) -> u64 {
    use mes_protocol::wire::framing::read_frame;
    use mes_protocol::wire::RelayFrame;
    let deadline = tokio::time::Instant::now() + within;
    let mut got = 0;
    while got < sent {
        match tokio::time::timeout_at(
            deadline,
            read_frame::<RelayFrame, _>(&mut c.recv, mes_protocol::wire::codec::MAX_WIRE_FRAME),
        )
        .await
        {
            Ok(Ok(Some(RelayFrame::Response { .. }))) => got += 1,
            Ok(Ok(Some(_))) => {}
            _ => break,
        }
    }
    got
}

/// Issue 22 item 12: a device on no list yet (a stranger) pipelining cheap requests is
/// paced (`UNLISTED_REQUEST_RATE`), not served at the relay's full speed at the cost of
/// everyone else. Control: a listed device sending as many gets every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_pipelining_requests_is_paced() -> anyhow::Result<()> {
    use mes_relay::defaults::UNLISTED_REQUEST_RATE;
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let sent = 4 * UNLISTED_REQUEST_RATE.burst;
    let within = Duration::from_secs(1);
    let mut stranger = RawConn::open(&endpoint, &t, &RawPrincipal::new("stranger")).await?;
    let started = std::time::Instant::now();
    for id in 0..sent {
        stranger.request(id, Request::GetHubInfo).await?;
    }
    let served = replies_within(&mut stranger, sent, within).await;
    let allowed = UNLISTED_REQUEST_RATE.burst
        + UNLISTED_REQUEST_RATE.per_second * (started.elapsed().as_millis() as u64 + 999) / 1000;
    assert!(
        served <= allowed,
        "a stranger was served {served} requests, the pace allows {allowed}"
    );
    assert!(served > 0, "a stranger is served at its pace");
    // Control: listed (it registered a space), the same requests are all answered.
    let person = listed(&t, "person").await?;
    let mut member = RawConn::open(&endpoint, &t, &person).await?;
    for id in 0..sent {
        member.request(id, Request::GetHubInfo).await?;
    }
    assert_eq!(
        replies_within(&mut member, sent, Duration::from_secs(60)).await,
        sent
    );
    r.shutdown().await;
    Ok(())
}

/// The message of a refusal with `code`; panics on anything else.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>, code: ErrorCode) -> String {
    let (got, message) = mes_tests::refusal(r);
    assert_eq!(got, code, "{message}");
    message
}

/// Finding 6: the files of a space count in bytes against its quota, what is committed
/// at its size and an upload at what it reserved; an upload that has not grown for a day
/// is swept, its chunks removed and its reservation freed. Controls: an upload within
/// the quota is taken, a sweep before the day keeps everything, and a file uploaded
/// whole commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_holds_files_up_to_its_quota_and_unfinished_uploads_are_swept() -> anyhow::Result<()>
{
    use mes_protocol::ids::BlobId;
    use mes_protocol::time::UnixMillis;
    use mes_relay::handler::file_quota::{chunk_bytes, FileUsage, RESERVE_CHUNKS};
    let step = chunk_bytes(RESERVE_CHUNKS);
    let dir = tempfile::tempdir()?;
    let r = relay_configured(dir.path(), |cfg| cfg.policy.file_bytes_per_space = 3 * step).await?;
    let t = target(&r);
    let person = RawPrincipal::new("person");
    let c = person.connect(&t).await?;
    let (space, genesis) = person.genesis();
    c.request(Request::RegisterSpace { genesis }).await?;
    let notes = notes_volume(&c, space, &person).await?;
    let chunk = |blob: BlobId, index: u32, last: bool, data: Vec<u8>| Request::PutBlobChunk {
        space,
        volume: notes,
        blob,
        index,
        last,
        data,
    };
    let file =
        |len: usize| mes_protocol::crypto::blob::seal_blob(&mut rand::rngs::OsRng, &vec![7u8; len]);
    // Two chunks of a real file, the first sent; and an upload reaching past one step.
    let (a, a_chunks) = file(100 << 10);
    c.request(chunk(a.id, 0, false, a_chunks[0].clone()))
        .await?;
    c.request(chunk(
        BlobId(rand::random()),
        RESERVE_CHUNKS,
        false,
        vec![1; 16],
    ))
    .await?;
    assert_eq!(
        r.relay.file_usage(space).await?,
        FileUsage {
            committed: 0,
            pending: 3 * step
        }
    );
    let over = || chunk(BlobId(rand::random()), 0, false, vec![1; 16]);
    let refused = refusal(c.request(over()).await, ErrorCode::Busy);
    assert!(refused.contains("quota"), "{refused}");
    // Not a day yet: nothing is swept.
    let now = UnixMillis::now().0;
    assert_eq!(
        r.relay
            .sweep_uploads(UnixMillis(now + 23 * 3600 * 1000))
            .await?,
        0
    );
    refusal(c.request(over()).await, ErrorCode::Busy);
    // A day later both uploads are swept: the quota is free and the file's first chunk
    // is gone, so its last one no longer completes it.
    assert_eq!(
        r.relay
            .sweep_uploads(UnixMillis(now + 25 * 3600 * 1000))
            .await?,
        2
    );
    assert_eq!(r.relay.file_usage(space).await?, FileUsage::default());
    let incomplete = refusal(
        c.request(chunk(a.id, 1, true, a_chunks[1].clone())).await,
        ErrorCode::BadRecord,
    );
    assert!(incomplete.contains("misses chunks"), "{incomplete}");
    // Control: a file sent whole commits, counted at its size; a stray chunk sent past
    // its end goes with its reservation.
    let (b, b_chunks) = file(100 << 10);
    c.request(chunk(b.id, 5, false, vec![1; 16])).await?;
    for (i, data) in b_chunks.iter().enumerate() {
        c.request(chunk(b.id, i as u32, i + 1 == b_chunks.len(), data.clone()))
            .await?;
    }
    assert_eq!(
        r.relay.file_usage(space).await?,
        FileUsage {
            committed: b.ciphertext_len,
            pending: step // a's reservation, taken again by its last chunk
        }
    );
    c.request(over()).await?;
    r.shutdown().await;
    Ok(())
}

/// Finding 5: a device on no list yet (a stranger, a device being paired) sends no large
/// frame: a 2 MiB one ends its connection before the body is read. Control: the same
/// frame from the same identity once listed (it registered a space) is read and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_no_list_sends_no_large_frame() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let big = || Request::PairSend {
        rendezvous: [7; 16],
        body: vec![0; 2 << 20],
    };
    let stranger = RawPrincipal::new("stranger");
    let c = stranger.connect(&t).await?;
    assert!(
        !matches!(c.request(big()).await, Err(ClientError::Refused(ref w)) if w.code == ErrorCode::TooLarge && w.message.contains("pairing")),
        "the body was read"
    );
    assert!(
        c.request(Request::GetHubInfo).await.is_err(),
        "the connection ended"
    );
    let c = stranger.connect(&t).await?;
    let (_, genesis) = stranger.genesis();
    c.request(Request::RegisterSpace { genesis }).await?;
    match c.request(big()).await {
        Err(ClientError::Refused(w)) => {
            assert_eq!(w.code, ErrorCode::TooLarge);
            assert!(w.message.contains("pairing message"), "{w:?}");
        }
        other => panic!("control: read and answered, got {other:?}"),
    }
    assert!(c.request(Request::GetHubInfo).await.is_ok());
    r.shutdown().await;
    Ok(())
}
