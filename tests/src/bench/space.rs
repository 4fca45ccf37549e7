//! The 10-year space of the health-record benchmarks (`open-space`, `search`, `export`):
//! seed 001's Inaya M. after ten years of daily use (10,000 documents, 100,000
//! measurements sent one day at a time), built once per `mes-bench` run through the
//! daemon's local API as a client would, then served by the real `mesd` binary started
//! cold as its own process.

use super::Size;
use crate::{relay, target};
use mes_client::ApiClient;
use mes_daemon::sandbox::{self, Scale};
use mes_daemon::sync::relay_client::RelayTarget;
use mes_protocol::ids::SpaceId;
use mes_protocol::record::documents::DocQuery;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use mes_relay::server::RunningRelay;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Instant;

/// The device's name (its data lives in `dir/NAME`, its identity in `dir/NAME.age`).
const DEVICE: &str = "ordinateur";

/// Where the space lives: a temporary directory, or `MES_BENCH_SPACE` (kept, and reused
/// by later runs, which then skip the build).
enum Home {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl Home {
    fn path(&self) -> &std::path::Path {
        match self {
            Home::Temporary(t) => t.path(),
            Home::Kept(p) => p,
        }
    }
}

/// What a kept space records about itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Built {
    space: SpaceId,
    documents: usize,
    build_s: f64,
    smoke: bool,
}

/// A built space and the relay holding its ciphertext.
pub struct TenYears {
    dir: Home,
    _relay: RunningRelay,
    target: RelayTarget,
    /// The person's space.
    pub space: SpaceId,
    /// Documents in it.
    pub documents: usize,
    /// Seconds the build took.
    pub build_s: f64,
}

/// A `mesd` process serving the space.
pub struct Mesd {
    child: Child,
    /// Its local API socket.
    pub socket: PathBuf,
}

/// Builds `mesd` and `mes` in the profile this benchmark runs in, when run through cargo
/// (`cargo run --bin mes-bench` builds only the benchmark), so the figures are of current
/// code.
fn build_binaries() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let exe = std::env::current_exe()?;
    let release = exe.parent().is_some_and(|d| d.ends_with("release"));
    let mut cmd = std::process::Command::new(cargo);
    // `--workspace`: the features of the test script's `cargo build --workspace --bins`,
    // so in CI this is a no-op.
    cmd.args([
        "build",
        "-q",
        "--workspace",
        "--bin",
        "mesd",
        "--bin",
        "mes",
    ])
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if release {
        cmd.arg("--release");
    }
    // `cargo run` gives this process the run's package variables (`CARGO_PKG_NAME`,
    // `CARGO_MANIFEST_DIR`, ...). Build scripts that read them (ring's reads several)
    // tell cargo to rebuild when they change, so a child build that inherits them
    // rebuilt ring and everything above it, and the next `cargo run` rebuilt them back:
    // four minutes each way (issue 23). The child gets the shell's environment instead.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_RUSTC_CURRENT_DIR"
        {
            cmd.env_remove(k.as_ref());
        }
    }
    anyhow::ensure!(cmd.status()?.success(), "building mesd and mes failed");
    Ok(())
}

impl TenYears {
    /// Builds the space: 10 years, 10,000 documents, 100,000 points (smoke: 1 year, 40,
    /// 400).
    pub async fn build(size: Size) -> anyhow::Result<Self> {
        let scale = Scale {
            years: size.pick(10, 1) as u32,
            documents: size.pick(10_000, 40) as u32,
            measurements: size.pick(100_000, 400) as u32,
            days_per_call: 1,
        };
        build_binaries()?;
        let dir = match std::env::var_os("MES_BENCH_SPACE") {
            Some(p) => Home::Kept(PathBuf::from(p)),
            None => Home::Temporary(
                tempfile::Builder::new()
                    .prefix("mes-bench-10y-")
                    .tempdir()?,
            ),
        };
        let relay = relay(dir.path(), None, false).await?;
        let target = target(&relay);
        let record = dir.path().join("built.json");
        if let Ok(text) = std::fs::read_to_string(&record) {
            let built: Built = serde_json::from_str(&text)?;
            anyhow::ensure!(
                built.smoke == (size == Size::Smoke),
                "{} holds a space of the other size",
                dir.path().display()
            );
            return Ok(TenYears {
                dir,
                _relay: relay,
                target,
                space: built.space,
                documents: built.documents,
                build_s: built.build_s,
            });
        }
        let started = Instant::now();
        let device = crate::device(dir.path(), DEVICE, &target).await?;
        let mut c = ApiClient::connect(&device.ready.socket).await?;
        let today = jiff::Zoned::now().date();
        let plan = sandbox::seed_001(&dir.path().join("fichiers"), today, scale);
        let every = (plan.calls.len() / 10).max(1);
        let verbose = std::env::var_os("MES_BENCH_VERBOSE").is_some();
        sandbox::apply(&mut c, None, plan, |done, total| {
            if verbose && done % every == 0 {
                eprintln!(
                    "10-year space: {done}/{total} calls, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .await?;
        let space = crate::home(&device.daemon).await?;
        // Everything uploaded and every volume at the relay's head before the device
        // stops, as on a device after years of use online.
        crate::caught_up(
            &device.daemon,
            std::time::Duration::from_secs(600),
            "the 10-year space uploaded and caught up",
        )
        .await?;
        let documents = all_documents(&mut c, space).await?;
        device.shutdown().await;
        let build_s = started.elapsed().as_secs_f64();
        let built = Built {
            space,
            documents,
            build_s,
            smoke: size == Size::Smoke,
        };
        std::fs::write(&record, serde_json::to_string(&built)?)?;
        Ok(TenYears {
            dir,
            _relay: relay,
            target,
            space,
            documents,
            build_s,
        })
    }

    /// Starts `mesd` on the space, unlocked by its identity file, and waits for its ready
    /// line.
    pub fn start(&self) -> anyhow::Result<Mesd> {
        let (child, ready) =
            crate::spawn_mesd(self.dir.path(), DEVICE, &self.target, Stdio::inherit())?;
        Ok(Mesd {
            child,
            socket: ready.socket,
        })
    }

    /// A directory for outputs, removed with the space.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Mesd {
    /// Resident memory of the process now, in MiB (`VmRSS` of /proc).
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        Ok(super::rss_kib(self.child.id())? / 1024.0)
    }

    /// Stops the daemon with SIGTERM (it flushes and removes its socket) and waits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Waits until the daemon is in its steady state: online, every volume at the relay's
/// head, nothing left to upload (its start-up sync done, as for a daemon that has been
/// running).
pub async fn synced(c: &mut ApiClient) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Ok(ApiReply::Status(s)) = c.call(None, ApiCall::Status).await? {
            let done = s
                .volumes
                .iter()
                .all(|v| v.cursor >= v.head && v.pending_uploads == 0);
            if s.online && done {
                return Ok(());
            }
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "mesd did not finish its start-up sync"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The complete document list, as the client asks for it first.
pub async fn all_documents(c: &mut ApiClient, space: SpaceId) -> anyhow::Result<usize> {
    match c
        .call(
            Some(space),
            ApiCall::DocSearch {
                query: DocQuery::default(),
            },
        )
        .await?
    {
        Ok(ApiReply::Documents { docs, .. }) => Ok(docs.len()),
        other => anyhow::bail!("DocSearch answered {other:?}"),
    }
}
