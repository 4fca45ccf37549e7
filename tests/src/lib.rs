//! Shared harness of the integration tests and benchmarks: a real relay (QUIC on
//! loopback, sled in a temporary directory) and real daemons, in process or as processes,
//! with waits driven by the daemons' events rather than sleeps.
//!
//! Over 600 lines: the harness every suite shares (servers, devices, waits), one place to look.

use anyhow::Context;
use mes_daemon::daemon::Daemon;
use mes_daemon::devices::unlock::Unlock;
use mes_daemon::run::{start, DaemonConfig, RunningDaemon};
use mes_daemon::sync::relay_client::RelayClient;
use mes_daemon::sync::relay_client::RelayTarget;
use mes_protocol::crypto::keys::SigningSecret;
use mes_protocol::crypto::seal::SymmetricKey;
use mes_protocol::ids::{Generation, SpaceId, VolumeId};
use mes_protocol::wire::Push;
use mes_relay::server::{RelayConfig, RunningRelay};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Starts a relay in `dir` (on `listen` if given, to restart on the same port).
pub async fn relay(
    dir: &Path,
    listen: Option<std::net::SocketAddr>,
    tamper_pairing: bool,
) -> anyhow::Result<RunningRelay> {
    relay_with(
        dir,
        listen,
        mes_relay::handler::Misbehaviour {
            tamper_pairing,
            ..Default::default()
        },
    )
    .await
}

/// Starts a relay that misbehaves as told (the security tests' controls).
pub async fn relay_with(
    dir: &Path,
    listen: Option<std::net::SocketAddr>,
    misbehaviour: mes_relay::handler::Misbehaviour,
) -> anyhow::Result<RunningRelay> {
    relay_configured(dir, |cfg| {
        if let Some(l) = listen {
            cfg.listen = l;
        }
        cfg.misbehaviour = misbehaviour;
    })
    .await
}

/// Starts a relay on the suite's backend with `configure` applied to its configuration.
pub async fn relay_configured(
    dir: &Path,
    configure: impl FnOnce(&mut RelayConfig),
) -> anyhow::Result<RunningRelay> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        // stderr, never stdout: mes-bench prints its figures there as JSON lines, and a
        // log line among them broke `mes-bench compare` (nextest captures both).
        .with_writer(std::io::stderr)
        .try_init();
    let mut cfg = RelayConfig::new(dir.join("relay"));
    // Whole populations connect from loopback here (10,000 devices in `fanout`): the
    // per-address caps are tried by the tests and `mes-bench hostile`, which set them.
    cfg.max_connections_per_address = usize::MAX;
    cfg.arrival_rate = None;
    cfg.backend = test_backend(&dir.join("relay")).await?;
    cfg.blobs = test_blobs(&dir.join("relay")).await?;
    configure(&mut cfg);
    Ok(mes_relay::server::start(cfg).await?)
}

/// The backend the suite runs on: sled unless `MES_TEST_BACKEND=postgres`, then a
/// database of its own on the server at `MES_TEST_PG` (scripts/services), the same one
/// each time the relay of `data_dir` restarts.
pub async fn test_backend(data_dir: &Path) -> anyhow::Result<mes_relay::server::Backend> {
    match std::env::var("MES_TEST_BACKEND").as_deref() {
        Err(_) | Ok("sled") => Ok(mes_relay::server::Backend::Sled),
        Ok("postgres") => Ok(mes_relay::server::Backend::Postgres(
            mes_relay::store::postgres_store::PgOptions::new(pg_database(data_dir).await?),
        )),
        Ok(other) => anyhow::bail!("MES_TEST_BACKEND={other}: expected sled or postgres"),
    }
}

/// Where the suite keeps blobs: in the relay's store unless `MES_TEST_BLOBS=s3`, then in a
/// bucket of its own on the S3 server at `MES_TEST_S3` (scripts/services), the same one
/// each time the relay of `data_dir` restarts.
pub async fn test_blobs(data_dir: &Path) -> anyhow::Result<mes_relay::server::Blobs> {
    match std::env::var("MES_TEST_BLOBS").as_deref() {
        Err(_) | Ok("store") => Ok(mes_relay::server::Blobs::InStore),
        Ok("s3") => Ok(mes_relay::server::Blobs::ObjectStore(
            s3_bucket(data_dir).await?,
        )),
        Ok(other) => anyhow::bail!("MES_TEST_BLOBS={other}: expected store or s3"),
    }
}

/// The S3 server's address for tests (`MES_TEST_S3`, set by scripts/services).
pub fn s3_server() -> anyhow::Result<std::net::SocketAddr> {
    let url = std::env::var("MES_TEST_S3").context(
        "MES_TEST_S3 is not set: start the test servers with `eval \"$(scripts/services)\"`",
    )?;
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("MES_TEST_S3={url}: expected http://ADDRESS:PORT"))
}

/// The test bucket [`TEST_BUCKET`] on the S3 server (created when missing), with a
/// fresh key prefix named in `dir/s3-prefix` so a restarted relay finds it again. One
/// bucket for every test: SeaweedFS gives each bucket volumes of its own.
pub async fn s3_bucket(dir: &Path) -> anyhow::Result<mes_relay::store::object_blobs::S3Options> {
    let server = s3_server()?;
    let (status, body) = http_request(
        hyper::Method::PUT,
        server,
        &format!("/{TEST_BUCKET}"),
        Vec::new(),
    )
    .await?;
    anyhow::ensure!(
        status == 200 || status == 409,
        "creating bucket {TEST_BUCKET} on {server}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let file = dir.join("s3-prefix");
    let prefix = match std::fs::read_to_string(&file) {
        Ok(p) => p.trim().to_owned(),
        Err(_) => {
            let prefix = format!("t-{}", hex_id());
            std::fs::create_dir_all(dir)?;
            std::fs::write(&file, &prefix)?;
            prefix
        }
    };
    let mut options =
        mes_relay::store::object_blobs::S3Options::new(format!("http://{server}"), TEST_BUCKET);
    options.prefix = Some(prefix);
    Ok(options)
}

/// The bucket the tests share on the S3 server.
pub const TEST_BUCKET: &str = "mes-test";

/// The PostgreSQL server's address for tests (`MES_TEST_PG`, set by scripts/services).
pub fn pg_server() -> anyhow::Result<String> {
    std::env::var("MES_TEST_PG").context(
        "MES_TEST_PG is not set: start the test servers with `eval \"$(scripts/services)\"`",
    )
}

/// A fresh database on the test server, named in `dir/pg-database` so a restarted relay
/// finds it again; returns its connection string.
pub async fn pg_database(dir: &Path) -> anyhow::Result<String> {
    let server = pg_server()?;
    let file = dir.join("pg-database");
    let name = match std::fs::read_to_string(&file) {
        Ok(n) => n.trim().to_owned(),
        Err(_) => {
            let name = format!("mes_t_{}", hex_id());
            let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to {server}"))?;
            let task = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await?;
            drop(client);
            let _ = task.await;
            std::fs::create_dir_all(dir)?;
            std::fs::write(&file, &name)?;
            name
        }
    };
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

fn hex_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The target a daemon pins.
pub fn target(r: &RunningRelay) -> RelayTarget {
    RelayTarget {
        address: r.ready.address,
        fingerprint: r.ready.fingerprint.clone(),
    }
}

/// Starts (or reopens) the device `name` in `dir`.
pub async fn device(dir: &Path, name: &str, relay: &RelayTarget) -> anyhow::Result<RunningDaemon> {
    device_with(dir, name, Some(relay.clone()), false).await
}

/// Starts a device with every option.
pub async fn device_with(
    dir: &Path,
    name: &str,
    relay: Option<RelayTarget>,
    null_cipher: bool,
) -> anyhow::Result<RunningDaemon> {
    Ok(start(DaemonConfig {
        data_dir: dir.join(name),
        socket: None,
        unlock: Unlock::IdentityFile(dir.join(format!("{name}.age"))),
        relay,
        name: name.into(),
        null_cipher,
        max_document_bytes: mes_daemon::replica::blobs::DEFAULT_MAX_DOCUMENT_BYTES,
    })
    .await?)
}

/// Waits until `check` holds, re-checking on each daemon event (and every 50 ms, for
/// state that changes without an event); fails after `within`.
pub async fn until(
    d: &Arc<Daemon>,
    within: Duration,
    what: &str,
    mut check: impl FnMut(&Daemon) -> bool,
) -> anyhow::Result<()> {
    let mut events = d.events();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check(d) {
            return Ok(());
        }
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = tokio::time::sleep_until(deadline) => anyhow::bail!("timed out after {within:?} waiting for: {what}"),
        }
    }
}

/// Waits until the daemon is connected.
/// Waits until every volume of `d` is uploaded (no file pending) and at the relay's head.
pub async fn caught_up(d: &Arc<Daemon>, within: Duration, what: &str) -> anyhow::Result<()> {
    until(d, within, what, |d| {
        d.status()
            .volumes
            .iter()
            .all(|v| v.pending_uploads == 0 && v.cursor >= v.head)
    })
    .await
}

pub async fn online(d: &Arc<Daemon>) -> anyhow::Result<()> {
    until(d, Duration::from_secs(20), "online", |d| d.link.online()).await
}

/// The daemon's first space (created if needed).
pub async fn home(d: &Arc<Daemon>) -> anyhow::Result<SpaceId> {
    d.resolve_space(None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A device named `name` online with its home space, once the relay knows that space (what
/// an enrolment request for it needs).
pub async fn online_home(
    dir: &Path,
    name: &str,
    relay: &RelayTarget,
) -> anyhow::Result<(RunningDaemon, SpaceId)> {
    let d = device(dir, name, relay).await?;
    online(&d.daemon).await?;
    let space = home(&d.daemon).await?;
    until(&d.daemon, Duration::from_secs(30), "registered", |d| {
        d.state()
            .spaces
            .get(&space)
            .is_some_and(|s| s.record.registered)
    })
    .await?;
    Ok((d, space))
}

/// Waits until the relay holds the space's membership with every fixed volume declared.
pub async fn registered(d: &RunningDaemon, space: SpaceId) -> anyhow::Result<()> {
    let n = mes_daemon::daemon::fixed_volumes().len();
    until(
        &d.daemon,
        Duration::from_secs(30),
        "space registered",
        |d| {
            d.state()
                .spaces
                .get(&space)
                .and_then(|s| s.membership.as_ref())
                .is_some_and(|m| m.volumes.len() >= n)
        },
    )
    .await
}

/// The volume labelled `label` of a space.
pub fn volume(d: &Daemon, space: SpaceId, label: &str) -> Option<VolumeId> {
    d.state()
        .volumes
        .values()
        .find(|v| v.meta.space == space && v.meta.label == label)
        .map(|v| v.meta.volume)
}

/// Pairs fresh device `b` to `a`'s person; waits until `b` sees `a`'s first space synced.
pub async fn pair(a: &Arc<Daemon>, b: &Arc<Daemon>) -> anyhow::Result<SpaceId> {
    online(a).await?;
    online(b).await?;
    let space = home(a).await?;
    let code = mes_daemon::devices::pairing::start(a.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mes_daemon::devices::pairing::join(b.clone(), &code, "joined")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    converged(a, b, space, "notes").await?;
    Ok(space)
}

/// Waits until two daemons hold the same state for a volume and have nothing pending.
pub async fn converged(
    a: &Arc<Daemon>,
    b: &Arc<Daemon>,
    space: SpaceId,
    label: &str,
) -> anyhow::Result<()> {
    let idle = |d: &Daemon, v: VolumeId| {
        d.state()
            .volumes
            .get(&v)
            .is_some_and(|v| v.progress.idle() && v.progress.cursor >= v.progress.head)
    };
    let outcome = until(
        b,
        Duration::from_secs(60),
        &format!("{label} converged"),
        |b| {
            let Some(v) = volume(a, space, label) else {
                return false;
            };
            idle(a, v) && idle(b, v) && a.digest(v).is_some() && a.digest(v) == b.digest(v)
        },
    )
    .await;
    let describe = |d: &Daemon| {
        let v = volume(d, space, label);
        let progress = v.and_then(|v| d.state().volumes.get(&v).map(|v| v.progress.clone()));
        let online = d.link.online();
        let digest = v.and_then(|v| d.digest(v));
        format!("online {online} {progress:?} digest {digest:?}")
    };
    outcome.map_err(|e| anyhow::anyhow!("{e}\n  a: {}\n  b: {}", describe(a), describe(b)))
}

/// A relay and two paired devices of one person in a temporary directory.
pub struct Paired {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// The relay.
    pub relay: RunningRelay,
    /// What the devices pin.
    pub target: RelayTarget,
    /// First device (created the space).
    pub a: RunningDaemon,
    /// Second device (joined by pairing).
    pub b: RunningDaemon,
    /// The person's first space.
    pub space: SpaceId,
}

/// Starts a relay and two devices, pairs them, and waits until they converged.
pub async fn paired() -> anyhow::Result<Paired> {
    let dir = tempfile::tempdir()?;
    let relay = relay(dir.path(), None, false).await?;
    let target = target(&relay);
    let a = device(dir.path(), "a", &target).await?;
    let b = device(dir.path(), "b", &target).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    Ok(Paired {
        dir,
        relay,
        target,
        a,
        b,
        space,
    })
}

/// A raw authenticated connection to the relay with a daemon's device keys (what an
/// attacker holding that device, or a test, would use).
pub async fn connect_as(
    d: &Daemon,
    t: &RelayTarget,
) -> anyhow::Result<(RelayClient, tokio::sync::mpsc::UnboundedReceiver<Push>)> {
    let (cert, key) = {
        (
            d.identity().cert.clone(),
            SigningSecret::from_bytes(&d.identity().device.signing.to_bytes()),
        )
    };
    Ok(RelayClient::connect(
        &mes_daemon::sync::relay_client::endpoint(t.address)?,
        t,
        &cert,
        &key,
    )
    .await?)
}

/// A principal with one device, outside any daemon: a professional, a relative or an
/// attacker, speaking to the relay directly.
pub struct RawPrincipal {
    /// Principal keys.
    pub principal: mes_protocol::crypto::keys::KeyPair,
    /// Device keys.
    pub device: mes_protocol::crypto::keys::KeyPair,
    /// Its certificate.
    pub cert: mes_protocol::crypto::keys::DeviceCert,
}

impl RawPrincipal {
    /// Fresh keys.
    pub fn new(name: &str) -> Self {
        let mut rng = rand::rngs::OsRng;
        let principal = mes_protocol::crypto::keys::KeyPair::generate(&mut rng);
        let device = mes_protocol::crypto::keys::KeyPair::generate(&mut rng);
        let cert = mes_protocol::crypto::keys::DeviceCert::for_device(
            &principal,
            &device,
            name,
            mes_protocol::time::UnixMillis::now(),
        );
        RawPrincipal {
            principal,
            device,
            cert,
        }
    }
    /// The principal id.
    pub fn id(&self) -> mes_protocol::ids::PrincipalId {
        self.principal.principal_id()
    }

    /// A new space of its own, signed, ready to register.
    pub fn genesis(
        &self,
    ) -> (
        SpaceId,
        mes_protocol::access::membership::Signed<mes_protocol::access::membership::SpaceGenesis>,
    ) {
        let space = SpaceId(rand::random());
        let genesis = mes_protocol::access::membership::Signed::sign(
            mes_protocol::access::membership::SpaceGenesis {
                space,
                owner: self.id(),
                inbox_recipient: mes_protocol::crypto::keys::AgeSecret::generate().recipient(),
                created_at: mes_protocol::time::UnixMillis::now(),
            },
            &self.principal.signing,
        );
        (space, genesis)
    }
    /// Connects and authenticates (the relay records the device on first contact).
    pub async fn connect(&self, t: &RelayTarget) -> anyhow::Result<RelayClient> {
        let (c, _pushes) = RelayClient::connect(
            &mes_daemon::sync::relay_client::endpoint(t.address)?,
            t,
            &self.cert,
            &self.device.signing,
        )
        .await?;
        Ok(c)
    }
}

/// A document added to a space as a person would (a small file of biology results), once
/// its file is at the relay: its id, its file's id and the volume that references it.
pub async fn uploaded_document(
    d: &Arc<Daemon>,
    space: SpaceId,
    dir: &Path,
    title: &str,
) -> anyhow::Result<(String, mes_protocol::ids::BlobId, VolumeId)> {
    let path = dir.join(format!("{}-{title}.txt", hex::encode(&space.0[..4])));
    std::fs::write(&path, format!("{title} : compte rendu"))?;
    let meta = d
        .doc_add(
            space,
            &mes_protocol::record::documents::NewDocument {
                path: path.to_string_lossy().into_owned(),
                category: "biology".into(),
                title: title.into(),
                date: "2026-11-02".into(),
                ..Default::default()
            },
        )
        .await?;
    until(d, Duration::from_secs(30), "file uploaded", |d| {
        mes_daemon::replica::blobs::pending(&d.files).is_empty()
    })
    .await?;
    let blob = meta
        .blob
        .parse()
        .map_err(|e| anyhow::anyhow!("blob id {:?}: {e:?}", meta.blob))?;
    let label = mes_daemon::record::documents::label_of(&meta)?;
    let v = volume(d, space, &label).context("the document's volume")?;
    Ok((meta.id, blob, v))
}

/// The code and message a relay request was refused with; panics on anything else.
pub fn refusal<T: std::fmt::Debug>(
    r: Result<T, mes_daemon::sync::relay_client::ClientError>,
) -> (mes_protocol::wire::ErrorCode, String) {
    match r {
        Err(mes_daemon::sync::relay_client::ClientError::Refused(w)) => (w.code, w.message),
        other => panic!("not a refusal: {other:?}"),
    }
}

/// The code a relay request was refused with, none when it was answered or failed
/// otherwise.
pub fn refused_with<T>(
    r: Result<T, mes_daemon::sync::relay_client::ClientError>,
) -> Option<mes_protocol::wire::ErrorCode> {
    match r {
        Err(mes_daemon::sync::relay_client::ClientError::Refused(w)) => Some(w.code),
        _ => None,
    }
}

/// A valid RPPS number for fixture `n`.
pub fn rpps(n: u32) -> mes_protocol::enrolment::principal::Rpps {
    mes_protocol::enrolment::principal::Rpps::with_check_digit(&format!("10{n:08}")).expect("rpps")
}

/// A directory row for a professional.
pub fn listed(
    principal: mes_protocol::ids::PrincipalId,
    n: u32,
    name: &str,
    profession: &str,
) -> (
    mes_protocol::ids::PrincipalId,
    mes_protocol::enrolment::principal::Professional,
) {
    (
        principal,
        mes_protocol::enrolment::principal::Professional {
            rpps: rpps(n),
            name: name.into(),
            profession: profession.into(),
            specialty: (profession == "10").then(|| "SM54".to_string()),
            structure: Some("Maison de santé du Parc".into()),
        },
    )
}

/// The current epoch key of a volume's generation 0 on a daemon.
pub fn current_key(d: &Daemon, volume: VolumeId) -> Option<SymmetricKey> {
    d.state()
        .keys
        .current(volume, Generation(0))
        .map(|(_, k)| k.duplicate())
}

/// Runs the real `mes` against a daemon's socket: (exit code, stdout, stderr).
pub fn run_mes(socket: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = std::process::Command::new(binary("mes")?)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

/// Runs the real `mes-relay` (an operator command): (exit code, stdout, stderr).
/// On PostgreSQL (`MES_TEST_BACKEND=postgres`), the database of the relay directory
/// `data_dir`, from any thread (async or not).
fn pg_database_blocking(data_dir: &Path) -> anyhow::Result<Option<String>> {
    if std::env::var("MES_TEST_BACKEND").as_deref() != Ok("postgres") {
        return Ok(None);
    }
    let dir = data_dir.to_path_buf();
    let url = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(pg_database(&dir))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("creating the test database panicked"))??;
    Ok(Some(url))
}

/// Runs `mes-relay` on the suite's backend for the relay directory `data_dir` (on
/// PostgreSQL, `MES_RELAY_POSTGRES` names that directory's database): exit code,
/// stdout, stderr.
pub fn run_relay_on(data_dir: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut cmd = std::process::Command::new(binary("mes-relay")?);
    cmd.args(args);
    if let Some(url) = pg_database_blocking(data_dir)? {
        cmd.env("MES_RELAY_POSTGRES", url);
    }
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

/// The hub's enrolment tables for the relay directory `data_dir`, on the suite's backend
/// (a sled database there, or that directory's PostgreSQL database).
pub fn enrolment_tables(
    data_dir: &Path,
) -> anyhow::Result<mes_relay::enrolment::store::EnrolmentTables> {
    if let Some(url) = pg_database_blocking(data_dir)? {
        let pg = mes_relay::enrolment::tables::pg_tables::PgTables::open(&url)?;
        return Ok(mes_relay::enrolment::store::EnrolmentTables::on(pg));
    }
    let db = sled::open(data_dir.join("enrolment.sled"))?;
    Ok(mes_relay::enrolment::store::EnrolmentTables::open(&db)?)
}

/// Runs `mes-relay` with these arguments: exit code, stdout, stderr.
pub fn run_relay(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = std::process::Command::new(binary("mes-relay")?)
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

/// A path of a freshly built binary of the workspace (the test command builds them first).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("test executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} is not built: run `cargo build --bins` first (the test script does)",
        p.display()
    );
    Ok(p)
}

/// Starts the real `mes-relay serve` as a process on loopback with `data` and `args`
/// (e.g. `--metrics 127.0.0.1:0`) and reads its ready line; stderr is inherited.
pub fn spawn_relay(
    data: &Path,
    args: &[&str],
) -> anyhow::Result<(std::process::Child, mes_relay::server::RelayReady)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(binary("mes-relay")?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start mes-relay")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("mes-relay stdout")?)
        .read_line(&mut line)?;
    let ready: mes_relay::server::RelayReady = serde_json::from_str(&line)
        .with_context(|| format!("mes-relay printed no ready line: {line:?}"))?;
    Ok((child, ready))
}

/// `GET path` over HTTP/1.1 (hyper's client): the status and the body as text.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let (status, body) = http_request(hyper::Method::GET, address, path, Vec::new()).await?;
    Ok((status, String::from_utf8(body)?))
}

/// One HTTP/1.1 request (hyper's client): the status and the body.
pub async fn http_request(
    method: hyper::Method,
    address: std::net::SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string())
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.to_vec()))
}

/// Starts the real `mesd` binary as a process for device `name` of `dir` (data in
/// `dir/name`, identity file `dir/name.age`) and reads its ready line; its stderr goes
/// to `stderr`.
pub fn spawn_mesd(
    dir: &Path,
    name: &str,
    relay: &RelayTarget,
    stderr: std::process::Stdio,
) -> anyhow::Result<(std::process::Child, mes_daemon::run::DaemonReady)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(binary("mesd")?)
        .args(["serve", "--data"])
        .arg(dir.join(name))
        .arg("--identity")
        .arg(dir.join(format!("{name}.age")))
        .args([
            "--relay",
            &relay.address.to_string(),
            "--fingerprint",
            &relay.fingerprint,
            "--name",
            name,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("cannot start mesd")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("mesd stdout")?).read_line(&mut line)?;
    let ready: mes_daemon::run::DaemonReady = serde_json::from_str(&line)
        .with_context(|| format!("mesd {name} printed no ready line: {line:?}"))?;
    anyhow::ensure!(ready.ready, "mesd {name} is not ready: {line:?}");
    Ok((child, ready))
}

/// Every file under `dir`.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files under `dir` containing `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .collect()
}

pub mod backend_scan;
pub mod bench;
pub mod hostile;
pub mod private_servers;
pub mod sim;
pub mod store_stress;
pub mod tmux;

/// The Python of the tests' checks (`target/pyenv`, which `scripts/test` creates with
/// fhir.resources, pypdf and aiosmtpd; or `MES_PYTHON`).
pub fn python() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("MES_PYTHON") {
        return Ok(p.into());
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    anyhow::ensure!(
        p.exists(),
        "the checks need Python with fhir.resources 6.4 (FHIR R4), pypdf and aiosmtpd: run scripts/test (it creates target/pyenv) or set MES_PYTHON"
    );
    Ok(p)
}

/// A file's or folder's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts that `path` is its owner's only (issue 22, finding 9), with the control that
/// a file written the default way beside it is readable by others in this process.
pub fn assert_owner_only(path: &Path) {
    let probe = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(".mode-control");
    std::fs::write(&probe, b"control").expect("control file");
    let loose = mode(&probe);
    std::fs::remove_file(&probe).expect("control file removed");
    assert_ne!(
        loose & 0o077,
        0,
        "control: the default mode here is already owner-only, the check proves nothing"
    );
    let want = if path.is_dir() { 0o700 } else { 0o600 };
    assert_eq!(
        mode(path),
        want,
        "{} is not its owner's only",
        path.display()
    );
}

/// A relay and one device of the person, with their space's volumes registered.
pub struct Owner {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// The relay.
    pub relay: RunningRelay,
    /// What the device pins.
    pub t: RelayTarget,
    /// The person's device.
    pub a: RunningDaemon,
    /// Their space.
    pub space: SpaceId,
}

/// Starts a relay misbehaving as told and one device of a person whose space is
/// registered.
pub async fn owner(m: mes_relay::handler::Misbehaviour) -> anyhow::Result<Owner> {
    let dir = tempfile::tempdir()?;
    let relay = relay_with(dir.path(), None, m).await?;
    let t = target(&relay);
    let a = device(dir.path(), "a", &t).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    registered(&a, space).await?;
    Ok(Owner {
        dir,
        relay,
        t,
        a,
        space,
    })
}

/// A bundle an author device signs, bound to (space, volume), sealed under a key of its
/// own that no member holds: what an attacker can append (the adversary tests).
pub fn foreign_bundle(
    space: SpaceId,
    volume: VolumeId,
    author: mes_protocol::ids::DeviceId,
    signing: &SigningSecret,
) -> mes_protocol::crypto::seal::SealedBundle {
    use mes_protocol::crypto::seal::{BundleHeader, CipherSuite, SealedBundle};
    SealedBundle::seal(
        &SymmetricKey::generate(&mut rand::rngs::OsRng),
        BundleHeader {
            suite: CipherSuite::XChaCha20Poly1305,
            space,
            volume,
            generation: Generation(0),
            epoch: mes_protocol::ids::Epoch(0),
            author,
            nonce: [0; 24],
            prev: None,
        },
        signing,
        &mut rand::rngs::OsRng,
        b"not a change the owner's devices can open",
    )
}
