//! The hub rides out its database and its object store (issue 27, item 1), on servers of
//! the test's own (`mes_tests::private_servers`: the shared ones are never restarted).
//!
//! - PostgreSQL restarts while 20 devices append: the relay stays up and connected,
//!   answers with `Busy` ("retry later") while the database is away (never `Internal`),
//!   reconnects by itself, and every append it acknowledged is in the log at the end.
//!   Control: the same run against a relay with reconnection turned off never recovers.
//! - SeaweedFS stops for 10 s while documents are added: the log keeps taking changes,
//!   file uploads are refused as `Busy` and go through once it is back; every document's
//!   file is at the hub at the end.
//! - TLS to PostgreSQL: with `sslmode=require` and the server's CA the relay's
//!   connections are encrypted (`pg_stat_ssl`); without the CA it refuses the server.
//! - Migrations: `mes-relay migrate` applies them; a schema newer than the binary is
//!   refused by name.

use mes_daemon::sync::relay_client::{ClientError, RelayClient};
use mes_protocol::crypto::seal::SealedBundle;
use mes_protocol::ids::Seq;
use mes_protocol::record::documents::NewDocument;
use mes_protocol::wire::{ErrorCode, Request};
use mes_tests::private_servers::{PrivatePg, PrivateWeed};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run of writers through an outage saw.
#[derive(Debug, Default)]
struct Outcome {
    acknowledged: usize,
    lost: usize,
    busy: usize,
    other_errors: Vec<String>,
    /// Every writer had an append acknowledged after the outage ended.
    recovered: bool,
    health_after: u16,
}

const WRITERS: usize = 20;
const PER_WRITER: usize = 40;

/// 20 devices append one-change bundles, a bundle every 20 ms each, retrying a refused
/// one; `outage` runs once they are under way. Gives up `patience` after the outage.
async fn writers_through(
    dir: &std::path::Path,
    options: mes_relay::store::postgres_store::PgOptions,
    outage: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    patience: Duration,
) -> anyhow::Result<Outcome> {
    let r = mes_tests::relay_configured(dir, |cfg| {
        cfg.backend = mes_relay::server::Backend::Postgres(options);
        cfg.blobs = mes_relay::server::Blobs::InStore;
        cfg.metrics = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await?;
    let metrics = r.ready.metrics.expect("metrics address");
    let t = mes_tests::target(&r);
    let a = mes_tests::device(dir, "a", &t).await?;
    let space = mes_tests::home(&a.daemon).await?;
    mes_tests::registered(&a, space).await?;
    let notes = mes_tests::volume(&a.daemon, space, "notes").expect("notes");
    let key = mes_tests::current_key(&a.daemon, notes).expect("key");
    let principal = mes_tests::bench::principal_keys(&a.daemon)?;
    let epoch = mes_tests::bench::current_epoch(&a.daemon, notes);
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let (lister, _) = mes_tests::connect_as(&a.daemon, &t).await?;
    let changes = mes_tests::bench::changes(PER_WRITER);
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (dev, cert) =
            mes_tests::bench::listed_device(&lister, &principal, &format!("w{i}")).await?;
        let client = RelayClient::connect(&endpoint, &t, &cert, &dev.signing).await?;
        let header = mes_tests::bench::bundle_header(space, notes, epoch, cert.body.device);
        let bundles = mes_tests::bench::sealed_chain(&key, &header, &dev.signing, &changes);
        writers.push((client, bundles));
    }
    a.shutdown().await;
    let busy = Arc::new(AtomicUsize::new(0));
    let outage_over = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for (client, bundles) in writers {
        let (busy, outage_over) = (busy.clone(), outage_over.clone());
        tasks.push(tokio::spawn(async move {
            let (client, _pushes) = client;
            let mut acked = Vec::new();
            let mut others = Vec::new();
            let mut after_outage = false;
            let give_up = |over: &std::sync::OnceLock<Instant>| {
                over.get().is_some_and(|t| t.elapsed() > patience)
            };
            'bundles: for b in bundles {
                loop {
                    let sent = client
                        .request(Request::Append {
                            space,
                            volume: notes,
                            bundles: vec![b.clone()],
                        })
                        .await;
                    match sent {
                        Ok(_) => {
                            acked.push(b.link());
                            after_outage |= outage_over.get().is_some();
                            break;
                        }
                        Err(ClientError::Refused(e)) if e.code == ErrorCode::Busy => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => others.push(e.to_string()),
                    }
                    if give_up(&outage_over) || others.len() > 100 {
                        break 'bundles;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acked, others, after_outage)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(outage).await??;
    outage_over.set(Instant::now()).expect("once");
    let mut out = Outcome {
        recovered: true,
        ..Default::default()
    };
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (acked, others, after) = t.await?;
        out.recovered &= after;
        acknowledged.extend(acked);
        out.other_errors.extend(others);
    }
    out.busy = busy.load(Ordering::Relaxed);
    out.acknowledged = acknowledged.len();
    // Every acknowledged bundle is in the log (a retried one may be there twice).
    let store = r.relay.store();
    let mut stored = HashSet::new();
    let mut after = Seq(0);
    let read = async {
        loop {
            let page = store.read(notes, after, 10_000).await?;
            for (seq, bytes) in &page.items {
                let b: SealedBundle = mes_protocol::wire::codec::from_bytes(bytes)?;
                stored.insert(b.link());
                after = *seq;
            }
            if page.items.is_empty() || after >= page.head {
                break anyhow::Ok(());
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(20), read).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("the log could not be read back: {e:#}"),
        Err(_) => anyhow::bail!("the log could not be read back in 20 s"),
    }
    out.lost = acknowledged.iter().filter(|l| !stored.contains(*l)).count();
    out.health_after = mes_tests::http_get(metrics, "/health").await?.0;
    r.shutdown().await;
    Ok(out)
}

/// PostgreSQL restarts under 20 writing devices; see the module's header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_rides_out_a_postgresql_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = Arc::new(PrivatePg::start(dir.path(), "")?);
    let restart = pg.clone();
    let out = writers_through(
        &dir.path().join("hub"),
        mes_relay::store::postgres_store::PgOptions::new(pg.url()),
        move || restart.restart(),
        Duration::from_secs(60),
    )
    .await?;
    eprintln!("{out:?}");
    assert!(
        out.other_errors.is_empty(),
        "only Busy: {:?}",
        out.other_errors
    );
    assert!(out.busy > 0, "the restart was felt: {out:?}");
    assert!(out.recovered, "every device wrote again after the restart");
    assert_eq!(out.acknowledged, WRITERS * PER_WRITER);
    assert_eq!(out.lost, 0);
    assert_eq!(out.health_after, 200);
    Ok(())
}

/// The control: reconnection turned off, the same restart leaves the relay failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_reconnection_the_hub_never_recovers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = Arc::new(PrivatePg::start(dir.path(), "")?);
    let restart = pg.clone();
    let mut options = mes_relay::store::postgres_store::PgOptions::new(pg.url());
    options.reconnect = false;
    let out = writers_through(
        &dir.path().join("hub"),
        options,
        move || restart.restart(),
        Duration::from_secs(5),
    )
    .await;
    // The devices never write again, and the log cannot be read back.
    match out {
        Err(e) => assert!(e.to_string().contains("read back"), "{e:#}"),
        Ok(out) => panic!("the relay recovered without reconnection: {out:?}"),
    }
    Ok(())
}

/// SeaweedFS stops for 10 s while a person adds documents; see the module's header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_rides_out_an_object_store_outage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut weed = PrivateWeed::start(dir.path())?;
    let endpoint = weed.endpoint.clone();
    let server: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse()?;
    let (status, _) =
        mes_tests::http_request(hyper::Method::PUT, server, "/outage", Vec::new()).await?;
    anyhow::ensure!(status == 200 || status == 409, "bucket: {status}");
    let hub = dir.path().join("hub");
    let r = mes_tests::relay_configured(&hub, |cfg| {
        cfg.backend = mes_relay::server::Backend::Sled;
        cfg.blobs = mes_relay::server::Blobs::ObjectStore(
            mes_relay::store::object_blobs::S3Options::new(endpoint, "outage"),
        );
    })
    .await?;
    let (a, space) = mes_tests::online_home(dir.path(), "a", &mes_tests::target(&r)).await?;
    let add = |title: String| {
        let d = a.daemon.clone();
        let path = dir.path().join(format!("{title}.txt"));
        async move {
            std::fs::write(&path, format!("{title} : compte rendu"))?;
            let meta = d
                .doc_add(
                    space,
                    &NewDocument {
                        path: path.to_string_lossy().into_owned(),
                        category: "biology".into(),
                        title,
                        date: "2026-11-02".into(),
                        ..Default::default()
                    },
                )
                .await?;
            anyhow::Ok(meta)
        }
    };
    let uploaded =
        |d: &mes_daemon::daemon::Daemon| mes_daemon::replica::blobs::pending(&d.files).is_empty();
    let before = add("avant".into()).await?;
    mes_tests::until(
        &a.daemon,
        Duration::from_secs(30),
        "the first file",
        uploaded,
    )
    .await?;
    let volume = mes_tests::volume(
        &a.daemon,
        space,
        &mes_daemon::record::documents::label_of(&before)?,
    )
    .expect("the documents' volume");
    let store = r.relay.store();
    let head_before = store.head(volume).await?;

    weed.stop()?;
    let mut during = Vec::new();
    for i in 0..3 {
        during.push(add(format!("pendant-{i}")).await?);
    }
    // The log takes the documents' entries; their files wait.
    mes_tests::until(
        &a.daemon,
        Duration::from_secs(8),
        "entries in the log",
        |_| {
            futures_util::FutureExt::now_or_never(store.head(volume))
                .and_then(Result::ok)
                .is_some_and(|h| h.0 >= head_before.0 + 3)
        },
    )
    .await?;
    assert!(!uploaded(&a.daemon), "the files wait for the object store");
    let refused = store
        .get_blob_chunk(
            &before
                .blob
                .parse::<mes_protocol::ids::BlobId>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .0,
            0,
        )
        .await;
    let e = refused.expect_err("the object store is away");
    assert!(e.retryable(), "{e}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    weed.resume()?;
    mes_tests::until(
        &a.daemon,
        Duration::from_secs(90),
        "every file uploaded",
        uploaded,
    )
    .await?;
    for meta in std::iter::once(&before).chain(&during) {
        let blob: mes_protocol::ids::BlobId =
            meta.blob.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(
            store.get_blob_chunk(&blob.0, 0).await?.is_some(),
            "{} is at the hub",
            meta.title
        );
    }
    drop(store);
    a.shutdown().await;
    r.shutdown().await;
    Ok(())
}

/// TLS to PostgreSQL and explicit migrations; see the module's header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_and_migrations_by_name() -> anyhow::Result<()> {
    use mes_relay::store::postgres_store::{PgOptions, PgStore};
    use mes_relay::store::Store;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.key_pair.serialize_pem())?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let pg = PrivatePg::start(
        dir.path(),
        &format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        ),
    )?;
    let tls_url = format!("{}?sslmode=require", pg.url());
    let mut options = PgOptions::new(&tls_url);
    options.ca_file = Some(cert.clone());
    // `mes-relay migrate` applies the schema once, then nothing.
    let migrate = || {
        std::process::Command::new(mes_tests::binary("mes-relay")?)
            .args(["migrate", "--postgres", &tls_url, "--postgres-ca"])
            .arg(&cert)
            .env_remove("MES_RELAY_POSTGRES")
            .output()
            .map_err(anyhow::Error::from)
    };
    let first = migrate()?;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8(first.stdout)?.trim(),
        r#"{"applied":[1,2,3]}"#
    );
    assert_eq!(
        String::from_utf8(migrate()?.stdout)?.trim(),
        r#"{"applied":[]}"#
    );
    // Every connection of the store is encrypted.
    let store = PgStore::open(options.clone()).await?;
    store.head(mes_protocol::ids::VolumeId([1; 16])).await?;
    let (encrypted, plain) = {
        let out = pg.psql(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
        )?;
        let (e, p) = out.trim().split_once('|').expect("two counts");
        (e.parse::<u32>()?, p.parse::<u32>()?)
    };
    assert!(encrypted >= 2, "the pool's and the listener's connections");
    assert_eq!(plain, 0);
    drop(store);
    // Control: the system's roots do not vouch for this server; refused by name.
    let e = PgStore::open(PgOptions::new(&tls_url))
        .await
        .err()
        .expect("an unknown certificate is refused");
    assert!(format!("{e}").contains("invalid peer certificate"), "{e}");
    // A schema newer than the binary: refused by name, by `migrate` and at start.
    pg.psql("INSERT INTO mes_migrations (version) VALUES (99)")?;
    let newer = migrate()?;
    assert!(!newer.status.success());
    let err = String::from_utf8(newer.stderr)?;
    assert!(
        err.contains("schema is at version 99, newer than this mes-relay knows (3)"),
        "{err}"
    );
    let e = PgStore::open(options)
        .await
        .err()
        .expect("refused at start");
    assert!(e.to_string().contains("version 99"), "{e}");
    Ok(())
}
