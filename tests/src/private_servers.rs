//! Servers of a test's own, for tests that stop and restart them (issue 27, item 1): a
//! PostgreSQL cluster (initdb in the test's directory, run as the postgres user when the
//! tests run as root, as scripts/services does) and a SeaweedFS with its S3 gateway. The
//! shared servers of scripts/services are never restarted: other tests use them at once.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn as_postgres(cmd: &Path) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (scripts/services installs it)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop().context("no PostgreSQL bin directory")
}

/// A PostgreSQL cluster of the test's own.
pub struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    options: String,
}

impl PrivatePg {
    /// initdb in `dir/pg` and start on a free port, with `extra` server options (e.g.
    /// `-c ssl=on`).
    pub fn start(dir: &Path, extra: &str) -> anyhow::Result<Self> {
        let bin = pg_bin()?;
        let data = dir.join("pg");
        std::fs::create_dir_all(&data)?;
        if rustix::process::geteuid().is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir)
                .status()?;
            anyhow::ensure!(status.success(), "chown {}", dir.display());
        }
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port()?;
        let pg = PrivatePg {
            log: dir.join("pg.log"),
            options: format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=100 {extra}",
                dir.display()
            ),
            bin,
            data,
            port,
        };
        pg.ctl("start")?;
        Ok(pg)
    }

    fn ctl(&self, action: &str) -> anyhow::Result<()> {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-s", "-m", "fast", "-o", &self.options, action])
            .stdout(Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The URL of database `postgres` (add `?sslmode=...` as needed).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server (fast shutdown: every connection is cut).
    pub fn restart(&self) -> anyhow::Result<()> {
        self.ctl("restart")
    }

    /// Runs SQL with psql.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-At", "-d", &self.url(), "-c", sql])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-s", "-m", "immediate", "stop"])
            .output();
    }
}

/// A SeaweedFS of the test's own with its S3 gateway.
pub struct PrivateWeed {
    dir: PathBuf,
    ports: [u16; 4],
    child: Option<Child>,
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn weed_binary() -> anyhow::Result<PathBuf> {
    let root = crate::binary("mes")?
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the workspace's root")?;
    let venv = root.join("target/pyenv/bin/weed");
    if venv.exists() {
        return Ok(venv);
    }
    Ok(PathBuf::from("weed"))
}

impl PrivateWeed {
    /// Starts in `dir/weed` on free ports and waits for the S3 gateway.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        // Each service also listens on its port + 10000 (gRPC): pick ports below 55535
        // whose gRPC twin is free as well.
        let mut ports = [0u16; 4];
        for p in &mut ports {
            *p = loop {
                let candidate = free_port()?;
                if candidate < 55_000
                    && std::net::TcpListener::bind(("127.0.0.1", candidate + 10_000)).is_ok()
                {
                    break candidate;
                }
            };
        }
        let mut weed = PrivateWeed {
            dir: dir.join("weed"),
            endpoint: format!("http://127.0.0.1:{}", ports[3]),
            ports,
            child: None,
        };
        std::fs::create_dir_all(&weed.dir)?;
        weed.resume()?;
        Ok(weed)
    }

    /// Starts the server again over the same directory and ports.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let [master, volume, filer, s3] = self.ports;
        let log = std::fs::File::create(self.dir.join("weed.log"))?;
        self.child = Some(
            Command::new(weed_binary()?)
                .args([
                    "server",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-master.telemetry=false",
                    "-filer",
                    "-s3",
                    "-volume.max=16",
                    // Listeners with fixed default ports the shared server already holds.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                ])
                .arg(format!("-dir={}", self.dir.display()))
                .arg(format!("-master.port={master}"))
                .arg(format!("-volume.port={volume}"))
                .arg(format!("-filer.port={filer}"))
                .arg(format!("-s3.port={s3}"))
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting weed (scripts/services installs it)")?,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", s3)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "SeaweedFS did not start: {}",
                self.dir.join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The gateway answers before the volume server has joined the master: wait until
        // an object can be written.
        let put = |path: &str| -> anyhow::Result<bool> {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
                .args(["--data-binary", "ready"])
                .arg(format!("{}/{path}", self.endpoint))
                .output()?;
            Ok(matches!(&out.stdout[..], b"200" | b"409"))
        };
        while !(put("ready-probe")? && put("ready-probe/object")?) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "SeaweedFS takes no object: {}",
                self.dir.join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Stops the server (SIGKILL: every connection is cut).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for PrivateWeed {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
