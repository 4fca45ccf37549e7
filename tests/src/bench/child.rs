//! Servers a scenario measures from outside: `mes-bench --child relay|quinn DIR` runs one
//! in its own process (so its resident memory is its own), prints one JSON ready line
//! (address and fingerprint) and runs until its standard input closes.
//!
//! - `relay`: the relay, as the test harness starts it (backend from `MES_TEST_BACKEND`);
//! - `relay-production`: the same with a deployment's limits per network address;
//! - `quinn`: a bare quinn server with the relay's own TLS and transport configuration,
//!   accepting connections and holding them, nothing else: the floor;
//! - `attackers`: not a server, `hostile`'s attack connections (`MES_ATTACKERS` of them
//!   against the relay in `MES_ATTACK_TARGET`), kept out of the process that measures
//!   the victim; on exit it writes what they met to `DIR/tally.json`.

use anyhow::Context as _;
use mes_daemon::sync::relay_client::RelayTarget;
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
            let id = mes_relay::server::tls::load_or_create(dir, &["mes-relay".into()])?;
            let fingerprint = id.fingerprint();
            let endpoint = quinn::Endpoint::server(
                mes_relay::server::tls::server_config(id)?,
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
        "attackers" => {
            use std::sync::atomic::{AtomicBool, Ordering};
            use std::sync::Arc;
            let t: RelayTarget = serde_json::from_str(
                &std::env::var("MES_ATTACK_TARGET").context("MES_ATTACK_TARGET")?,
            )?;
            let count: usize = std::env::var("MES_ATTACKERS")
                .context("MES_ATTACKERS")?
                .parse()?;
            let kinds = crate::hostile::Attack::chosen()?;
            let (halt, tally) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(crate::hostile::Tally::default()),
            );
            let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
            let attacks: Vec<_> = (0..count)
                .map(|i| {
                    tokio::spawn(crate::hostile::keep_attacking(
                        kinds[i % kinds.len()],
                        endpoint.clone(),
                        t.clone(),
                        halt.clone(),
                        tally.clone(),
                    ))
                })
                .collect();
            ready(&t)?;
            stop.await?;
            halt.store(true, Ordering::Relaxed);
            for a in attacks {
                let _ = a.await;
            }
            std::fs::write(dir.join("tally.json"), serde_json::to_vec(&tally.counts())?)?;
        }
        other => {
            anyhow::bail!("unknown child {other:?}: relay, relay-production, quinn or attackers")
        }
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
    data: std::path::PathBuf,
}

impl Child {
    /// Starts `mes-bench --child KIND` with a data directory under `dir`, and reads its
    /// ready line.
    pub fn spawn(kind: &str, dir: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(kind, dir, &[], 0)
    }

    /// Like [`Child::spawn`], with `env` set and at `niceness` (0: as this process).
    pub fn spawn_with(
        kind: &str,
        dir: &Path,
        env: &[(&str, String)],
        niceness: u8,
    ) -> anyhow::Result<Self> {
        let data = dir.join(format!("child-{kind}"));
        std::fs::create_dir_all(&data)?;
        let mut command = if niceness > 0 {
            // `nice` execs the program: the process id stays the child's.
            let mut c = Command::new("nice");
            c.arg(format!("-n{niceness}")).arg(std::env::current_exe()?);
            c
        } else {
            Command::new(std::env::current_exe()?)
        };
        let mut process = command
            .args(["--child", kind])
            .arg(&data)
            .envs(env.iter().map(|(k, v)| (k, v)))
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
        Ok(Child {
            process,
            target,
            data,
        })
    }

    /// Waits for the child to exit (its standard input closed) and returns its data
    /// directory.
    pub fn finish(mut self) -> anyhow::Result<std::path::PathBuf> {
        drop(self.process.stdin.take());
        self.process.wait()?;
        Ok(self.data.clone())
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
