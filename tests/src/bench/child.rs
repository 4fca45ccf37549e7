//! Servers a scenario measures from outside: `mes-bench --child relay|quinn DIR` runs one
//! in its own process (so its resident memory is its own), prints one JSON ready line
//! (address and fingerprint) and runs until its standard input closes.
//!
//! - `relay`: the relay, as the test harness starts it (backend from `MES_TEST_BACKEND`);
//! - `relay-production`: the same with a deployment's limits per network address;
//! - `quinn`: a bare quinn server with the relay's own TLS and transport configuration,
//!   accepting connections and holding them, nothing else: the floor.

use anyhow::Context as _;
use mes_daemon::client::RelayTarget;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the server of `kind` in this process until standard input closes.
pub async fn serve(kind: &str, dir: &Path) -> anyhow::Result<()> {
    let stop = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    });
    match kind {
        "relay" | "relay-production" => {
            let production = kind == "relay-production";
            let r = crate::relay_configured(dir, |c| {
                if production {
                    // The limits a deployment runs with (RelayConfig's defaults).
                    let d = mes_relay::RelayConfig::new(&c.data_dir);
                    c.max_connections_per_address = d.max_connections_per_address;
                    c.arrival_rate = d.arrival_rate;
                }
            })
            .await?;
            ready(&crate::target(&r))?;
            stop.await?;
            r.shutdown().await;
        }
        "quinn" => {
            let id = mes_relay::tls::load_or_create(dir, &["mes-relay".into()])?;
            let fingerprint = id.fingerprint();
            let endpoint = quinn::Endpoint::server(
                mes_relay::tls::server_config(id)?,
                "127.0.0.1:0".parse()?,
            )?;
            ready(&RelayTarget {
                address: endpoint.local_addr()?,
                fingerprint,
            })?;
            let accept = endpoint.clone();
            let held = tokio::spawn(async move {
                let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                while let Some(incoming) = accept.accept().await {
                    let held = held.clone();
                    tokio::spawn(async move {
                        if let Ok(c) = incoming.await {
                            held.lock().expect("held connections").push(c);
                        }
                    });
                }
            });
            stop.await?;
            endpoint.close(0u32.into(), b"done");
            held.abort();
        }
        other => anyhow::bail!("unknown child {other:?}: relay, relay-production or quinn"),
    }
    Ok(())
}

fn ready(t: &RelayTarget) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(t)?);
    Ok(())
}

/// A server child process; it exits when this is dropped (its standard input closes).
pub struct Child {
    process: std::process::Child,
    /// Where it listens and what to pin.
    pub target: RelayTarget,
}

impl Child {
    /// Starts `mes-bench --child KIND` with a data directory under `dir`, and reads its
    /// ready line.
    pub fn spawn(kind: &str, dir: &Path) -> anyhow::Result<Self> {
        let data = dir.join(format!("child-{kind}"));
        std::fs::create_dir_all(&data)?;
        let mut process = Command::new(std::env::current_exe()?)
            .args(["--child", kind])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = process.stdout.take().context("child stdout")?;
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let target = serde_json::from_str(&line)
            .with_context(|| format!("the {kind} child's ready line {line:?}"))?;
        // Whatever else it prints goes on to stderr (a closed pipe would make it fail).
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::stderr()));
        Ok(Child { process, target })
    }

    /// Resident memory (`VmRSS`) once the child has settled after a burst of work.
    pub async fn settled_rss_kib(&self) -> anyhow::Result<f64> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        super::rss_kib(self.process.id())
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// CPU time (user and system) the child has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.id()))?;
        // Fields after the command (which may hold spaces): state is field 3, utime 14,
        // stime 15, in clock ticks (USER_HZ, 100 on Linux).
        let after = stat.rsplit_once(')').context("no command in /proc stat")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
        };
        Ok((ticks(11)? + ticks(12)?) / 100.0)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.process.stdin.take());
        let _ = self.process.wait();
    }
}
