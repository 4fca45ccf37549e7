//! Several relay instances on one PostgreSQL database (issue 8), against the real server
//! that scripts/services starts (`MES_TEST_PG`):
//! - sequence numbers stay dense and become visible in order while instances race on one
//!   volume with random commit delays; the control, numbers taken like a plain database
//!   sequence, makes readers miss bundles;
//! - a change uploaded through one instance is pushed to a device on another, and a
//!   document blob uploaded through one is served by the other from the S3-compatible
//!   object store (`MES_TEST_S3`), as ciphertext, with nothing of it in PostgreSQL;
//! - an operator command run on the database (`--postgres`) while an instance serves
//!   reaches that instance's devices without a restart: the catalogue, and the whole
//!   enrolment (import, campaign, then an activation through the serving instance).

use mes_protocol::ids::{Seq, VolumeId};
use mes_relay::store::postgres_store::{PgOptions, PgStore, SeqMode};
use mes_relay::store::Store;
use mes_tests::{converged, device, pair, pg_database, s3_bucket, target, until};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const INSTANCES: usize = 3;
const WRITERS_PER_INSTANCE: usize = 3;
const APPENDS_PER_WRITER: usize = 15;

/// What each reader saw: bundle payload -> how many times, and whether the seqs it read
/// were exactly 1..=n.
struct Seen {
    counts: BTreeMap<Vec<u8>, usize>,
    dense: bool,
}

/// Races `INSTANCES` stores on one volume (each with several concurrent writers, random
/// commit delays up to `jitter`) while one reader per instance follows the log by cursor.
async fn race(mode: SeqMode, jitter: Option<Duration>) -> anyhow::Result<(usize, Vec<Seen>)> {
    let dir = tempfile::tempdir()?;
    let url = pg_database(dir.path()).await?;
    let mut stores = Vec::new();
    for _ in 0..INSTANCES {
        let mut o = PgOptions::new(url.clone());
        o.commit_jitter = jitter;
        o.seq_mode = mode;
        o.writers = 2;
        stores.push(Arc::new(PgStore::open(o).await?));
    }
    let volume = VolumeId([42; 16]);
    let mut writers = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        for w in 0..WRITERS_PER_INSTANCE {
            let s = s.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..APPENDS_PER_WRITER {
                    let count = 1 + (n % 3);
                    let bundles = (0..count)
                        .map(|k| format!("i{i}-w{w}-n{n}-k{k}").into_bytes())
                        .collect();
                    s.append(volume, bundles).await?;
                }
                anyhow::Ok(())
            }));
        }
    }
    let total: usize = INSTANCES
        * WRITERS_PER_INSTANCE
        * (0..APPENDS_PER_WRITER).map(|n| 1 + n % 3).sum::<usize>();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for s in &stores {
        let (s, done) = (s.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut cursor = Seq(0);
            let mut seqs = Vec::new();
            let mut counts = BTreeMap::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let r = s.read(volume, cursor, 20).await?;
                for (seq, b) in &r.items {
                    seqs.push(seq.0);
                    *counts.entry(b.clone()).or_insert(0) += 1;
                    cursor = *seq;
                }
                // One last full pass after the writers finished.
                if finished && r.items.is_empty() {
                    break;
                }
                if r.items.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let dense = seqs.iter().copied().eq(1..=seqs.len() as u64);
            anyhow::Ok(Seen { counts, dense })
        }));
    }
    for w in writers {
        w.await??;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = Vec::new();
    for r in readers {
        seen.push(r.await??);
    }
    Ok((total, seen))
}

fn every_bundle_once(total: usize, s: &Seen) -> bool {
    s.dense && s.counts.len() == total && s.counts.values().all(|&c| c == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_instances_keep_sequence_numbers_dense_and_in_order() -> anyhow::Result<()> {
    // With random commit delays (an explicit transaction around the append), then as in
    // production (the append statement alone, its own transaction).
    for jitter in [Some(Duration::from_millis(15)), None] {
        let (total, seen) = race(SeqMode::Ordered, jitter).await?;
        check_every_reader(total, &seen);
    }
    Ok(())
}

fn check_every_reader(total: usize, seen: &[Seen]) {
    for (i, s) in seen.iter().enumerate() {
        assert!(
            every_bundle_once(total, s),
            "reader {i} saw {} distinct of {total} bundles (dense: {})",
            s.counts.len(),
            s.dense
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_numbers_taken_like_a_database_sequence_make_readers_miss_bundles(
) -> anyhow::Result<()> {
    // The race is random: a few rounds make at least one reader miss with near certainty.
    for _ in 0..5 {
        let (total, seen) = race(SeqMode::Unordered, Some(Duration::from_millis(15))).await?;
        if seen.iter().any(|s| !every_bundle_once(total, s)) {
            return Ok(());
        }
    }
    panic!("five racing rounds with unordered numbers and no reader missed a bundle");
}

/// Copies a relay's identity (certificate, keys) and its database name to a second data
/// directory: two instances behind one name, on one database.
/// A relay serving from `data` on a fresh database of its own; the database's URL.
async fn serving_on_postgres(
    data: &std::path::Path,
) -> anyhow::Result<(String, mes_relay::server::RunningRelay)> {
    let url = pg_database(data).await?;
    let mut cfg = mes_relay::RelayConfig::new(data.to_path_buf());
    cfg.backend = mes_relay::server::Backend::Postgres(PgOptions::new(url.clone()));
    Ok((url, mes_relay::server::start(cfg).await?))
}

fn second_instance(first: &std::path::Path, second: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(second)?;
    for e in std::fs::read_dir(first)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), second.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_and_a_blob_uploaded_on_one_instance_reach_a_device_on_another(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let one_dir = dir.path().join("one");
    let backend = |d: std::path::PathBuf| async move {
        let url = pg_database(&d).await?;
        let blobs = s3_bucket(&d).await?;
        let mut cfg = mes_relay::RelayConfig::new(d);
        cfg.backend = mes_relay::server::Backend::Postgres(PgOptions::new(url));
        cfg.blobs = mes_relay::server::Blobs::ObjectStore(blobs);
        anyhow::Ok(mes_relay::server::start(cfg).await?)
    };
    let one = backend(one_dir.clone()).await?;
    let t1 = target(&one);
    let a = device(dir.path(), "a", &t1).await?;
    let b = device(dir.path(), "b", &t1).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    // b moves to a second instance on the same database.
    let two_dir = dir.path().join("two");
    second_instance(&one_dir, &two_dir)?;
    let two = backend(two_dir).await?;
    let t2 = target(&two);
    assert_eq!(
        t1.fingerprint, t2.fingerprint,
        "one identity for both instances"
    );
    b.shutdown().await;
    let b = device(dir.path(), "b", &t2).await?;
    a.daemon.note_set(space, "allergie", "arachide").await?;
    until(
        &b.daemon,
        Duration::from_secs(30),
        "b, on the second instance, receives a's change",
        |d| {
            d.note_get(space, "allergie")
                .is_ok_and(|v| v == ["arachide"])
        },
    )
    .await?;
    b.daemon.note_set(space, "groupe", "A-").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(a.daemon.note_get(space, "groupe")?, vec!["A-"]);

    // A document through instance one, read back through instance two.
    let file = dir.path().join("radio.bin");
    let content: Vec<u8> = (0..150_000u32).map(|i| (i * 11 % 253) as u8).collect();
    std::fs::write(&file, &content)?;
    let (blob, _) = mes_daemon::replica::blobs::put(&a.daemon, space, &file).await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    let out = dir.path().join("radio-copie.bin");
    mes_daemon::replica::blobs::get(&b.daemon, space, blob, &out).await?;
    assert_eq!(std::fs::read(&out)?, content);
    let s3 = mes_tests::s3_server()?;
    let prefix = std::fs::read_to_string(one_dir.join("s3-prefix"))?;
    let object = |name: String| {
        let bucket = mes_tests::TEST_BUCKET;
        let path = format!("/{bucket}/{prefix}/blobs/{}/{name}", hex::encode(blob.0));
        async move { mes_tests::http_request(hyper::Method::GET, s3, &path, Vec::new()).await }
    };
    let (status, count) = object("committed".into()).await?;
    assert_eq!(
        (status, count),
        (200, 3u32.to_be_bytes().to_vec()),
        "three chunks, committed"
    );
    for i in 0..3 {
        let (status, chunk) = object(format!("{i:08}")).await?;
        assert_eq!(status, 200, "chunk {i} in the bucket");
        assert!(
            !chunk.windows(64).any(|w| w == &content[1000..1064]),
            "chunk {i} holds plaintext"
        );
    }
    let (pg, conn) =
        tokio_postgres::connect(&pg_database(&one_dir).await?, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM blob_chunks", &[])
        .await?
        .get(0);
    assert_eq!(
        rows, 0,
        "blob chunks went to PostgreSQL, not the object store"
    );
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_imported_on_the_database_reaches_a_serving_instance() -> anyhow::Result<()> {
    use mes_protocol::wire::{Reply, Request};
    let dir = tempfile::tempdir()?;
    let serving = dir.path().join("serving");
    let (url, r) = serving_on_postgres(&serving).await?;
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let (c, _) = mes_tests::connect_as(&a.daemon, &t).await?;
    let listed = || async {
        match c.request(Request::GetCatalogue).await? {
            Reply::Catalogue { entries } => anyhow::Ok(entries.len()),
            other => anyhow::bail!("GetCatalogue answered {other:?}"),
        }
    };
    assert_eq!(listed().await?, 0);
    // The operator's machine: the hub's key files, the same database.
    let operator = dir.path().join("operator");
    second_instance(&serving, &operator)?;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/catalogue.example.toml");
    let (code, out, err) = mes_tests::run_relay(&[
        "catalogue",
        "import",
        "--postgres",
        &url,
        "--data",
        operator.to_str().unwrap(),
        example.to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    // Every service the file lists, suspended ones included (marked so).
    let expected = report["listed"].as_u64().unwrap_or(0);
    assert!(expected > 0, "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while listed().await? as u64 != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "the serving instance never saw the imported catalogue ({} of {expected}): {out}",
            listed().await?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.shutdown().await;
    Ok(())
}

/// The hub on PostgreSQL runs its enrolment while it serves: the operator imports the
/// population and runs the campaign from another machine (`--postgres`, the hub's key
/// files), and a person activates through the serving instance with the code the
/// campaign sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campaign_runs_on_the_database_while_an_instance_serves() -> anyhow::Result<()> {
    use mes_protocol::enrolment::{CardHolder, EnrolRequest};
    let dir = tempfile::tempdir()?;
    let serving = dir.path().join("serving");
    let (url, r) = serving_on_postgres(&serving).await?;
    let t = target(&r);
    let operator = dir.path().join("operator");
    second_instance(&serving, &operator)?;
    let op = operator.to_str().unwrap();
    let nir = mes_protocol::enrolment::nir::Nir::with_key("1800569123456");
    let file = dir.path().join("population.csv");
    std::fs::write(
        &file,
        format!(
            "{}\n{nir},VIT0001,Martin,Camille,1980-05-12,M,camille@exemple.fr,,69,\n",
            mes_relay::enrolment::population::HEADER.join(",")
        ),
    )?;
    let relay_cmd = |args: &[&str]| -> anyhow::Result<String> {
        let mut all = vec!["--postgres", url.as_str(), "--data", op];
        all.splice(0..0, args.iter().copied());
        let (code, out, err) = mes_tests::run_relay(&all)?;
        anyhow::ensure!(code == 0, "mes-relay {args:?}: {err}");
        Ok(out)
    };
    relay_cmd(&["import-population", file.to_str().unwrap()])?;
    let out = relay_cmd(&["campaign", "run"])?;
    assert!(out.contains("\"notified\":1"), "{out}");
    let mail = mes_tests::files_containing(
        &operator.join("outbox/maildir/new"),
        b"Code provisoire pour Camille Martin : ",
    );
    assert_eq!(mail.len(), 1);
    let text = std::fs::read_to_string(&mail[0])?;
    let at = text.find("Code provisoire pour Camille Martin : ").unwrap() + 38;
    let code = text[at..at + 12].to_string();

    let cam = device(dir.path(), "camille", &t).await?;
    mes_tests::online(&cam.daemon).await?;
    let space = mes_tests::home(&cam.daemon).await?;
    until(&cam.daemon, Duration::from_secs(30), "registered", |d| {
        d.state()
            .spaces
            .get(&space)
            .is_some_and(|s| s.record.registered)
    })
    .await?;
    let ok = cam
        .daemon
        .enrol(
            Some(space),
            EnrolRequest::Activate {
                holder: CardHolder {
                    nir: nir.clone(),
                    vitale_serial: "VIT0001".into(),
                },
                code,
                identifier: "camille.martin".into(),
                password: "Sante-2026!".into(),
                email: String::new(),
                space,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(ok.status, "activated");
    let stats: serde_json::Value = serde_json::from_str(&relay_cmd(&["stats"])?)?;
    assert_eq!(
        (stats["activated"].as_u64(), stats["people"].as_u64()),
        (Some(1), Some(1))
    );
    r.shutdown().await;
    Ok(())
}

/// Starts `mes-relay serve --postgres` as a process on `listen`.
fn serve_process(
    data: &std::path::Path,
    url: &str,
    listen: &str,
) -> anyhow::Result<(std::process::Child, mes_relay::RelayReady)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(mes_tests::binary("mes-relay")?)
        .args(["serve", "--listen", listen, "--postgres", url, "--data"])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
    Ok((child, serde_json::from_str(&line)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_upload_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let url = pg_database(&data).await?;
    let (mut first, ready) = serve_process(&data, &url, "127.0.0.1:0")?;
    let t = mes_daemon::sync::relay_client::RelayTarget {
        address: ready.address,
        fingerprint: ready.fingerprint.clone(),
    };
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    let writer = {
        let d = a.daemon.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                d.note_set(space, &format!("k{i}"), "v").await?;
            }
            anyhow::Ok(())
        })
    };
    until(
        &b.daemon,
        Duration::from_secs(30),
        "some changes at b",
        |d| d.note_list(space).is_ok_and(|n| n.len() > 10),
    )
    .await?;
    first.kill()?; // SIGKILL, mid-upload
    first.wait()?;
    let (mut second, again) = serve_process(&data, &url, &ready.address.to_string())?;
    assert_eq!(again.fingerprint, ready.fingerprint);
    writer.await??;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_list(space)?.len(), 200);
    second.kill()?;
    second.wait()?;
    Ok(())
}
