//! The binaries as an operator and a script run them (issue 27): one log variable and
//! the same log flags for `mes`, `mesd` and `mes-relay`, JSON logs for a collector, and
//! `mes status --wait` giving up when a device cannot catch up.

use mes_tests::binary;
use std::process::Stdio;
use std::time::Duration;

/// One log variable and the same flags for the binaries (issue 27): `MES_LOG` in tracing's
/// filter syntax wins; otherwise `-v` and `-q` move the default; `--log-format json`
/// writes one JSON object per line for a collector. Controls: text by default, `-q` and
/// `MES_LOG=warn` silence the same line.
#[test]
fn the_binaries_log_as_told_in_text_or_json() -> anyhow::Result<()> {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let relay = |extra: &[&str], log: Option<&str>| -> anyhow::Result<String> {
        let mut c = std::process::Command::new(binary("mes-relay")?);
        c.args(["stats", "--data"]).arg(&data).args(extra);
        c.env_remove("MES_LOG").env_remove("MES_LOG_FORMAT");
        if let Some(v) = log {
            c.env("MES_LOG", v);
        }
        let out = c.output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stderr)?)
    };
    let text = relay(&[], None)?;
    let line = text
        .lines()
        .find(|l| l.contains("hub store opened"))
        .unwrap_or_else(|| panic!("an info line by default: {text}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(serde_json::from_str::<serde_json::Value>(line).is_err());
    let json = relay(&["--log-format", "json"], None)?;
    let line: serde_json::Value = serde_json::from_str(
        json.lines()
            .find(|l| l.contains("hub store opened"))
            .unwrap_or_else(|| panic!("{json}")),
    )?;
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["message"], "hub store opened", "{line}");
    assert_eq!(line["fields"]["backend"], "sled", "{line}");
    assert!(!relay(&["-q"], None)?.contains("hub store opened"));
    assert!(!relay(&[], Some("warn"))?.contains("hub store opened"));
    assert!(
        relay(&["-q"], Some("info"))?.contains("hub store opened"),
        "MES_LOG wins over -q"
    );

    // mesd reads the same variable and flags (the systemd unit sets MES_LOG).
    let mut child = std::process::Command::new(binary("mesd")?)
        .args(["serve", "--data"])
        .arg(dir.path().join("device"))
        .arg("--identity")
        .arg(dir.path().join("device.age"))
        .args(["--log-format", "json"])
        .env("MES_LOG", "info")
        .env_remove("MES_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let ready = stderr
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("mesd ready"));
    child.kill()?;
    child.wait()?;
    let ready: serde_json::Value = serde_json::from_str(&ready.expect("mesd logs its start"))?;
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert!(ready["fields"]["socket"].is_string(), "{ready}");
    Ok(())
}

/// `mes status --wait` gives up after its timeout on a device that cannot catch up (here
/// one with no relay), exits 1 and says so; the caught-up case is in
/// `process::mes_subcommands_drive_sync_from_scripts`.
#[test]
fn waiting_for_catch_up_gives_up_offline() -> anyhow::Result<()> {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let mut child = std::process::Command::new(binary("mesd")?)
        .args(["serve", "--data"])
        .arg(dir.path().join("device"))
        .arg("--identity")
        .arg(dir.path().join("device.age"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let ready: mes_daemon::run::DaemonReady = serde_json::from_str(&line)?;
    let (code, out, err) =
        mes_tests::run_mes(&ready.socket, &["status", "--wait", "--timeout", "1"])?;
    child.kill()?;
    child.wait()?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not caught up after 1 s"), "{err}");
    assert!(out.contains("hors ligne / offline"), "{out}");
    Ok(())
}

/// Each binary prints its shell completions and its manual page (issue 27), generated
/// from its own command line. Control: a shell clap does not know is refused by name.
#[test]
fn every_binary_prints_completions_and_a_manual_page() -> anyhow::Result<()> {
    for (bin, sub) in [
        ("mes", "status"),
        ("mesd", "serve"),
        ("mes-relay", "on-behalf"),
    ] {
        let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
            Ok(std::process::Command::new(binary(bin)?)
                .args(args)
                .output()?)
        };
        let out = run(&["completions", "bash"])?;
        assert!(out.status.success(), "{bin}");
        let text = String::from_utf8(out.stdout)?;
        assert!(
            text.contains(&format!("complete -F _{}", bin.replace('-', "__")))
                && text.contains(sub),
            "{bin}: {}",
            &text[..text.len().min(300)]
        );
        for shell in ["zsh", "fish"] {
            assert!(
                run(&["completions", shell])?.status.success(),
                "{bin} {shell}"
            );
        }
        let man = run(&["man"])?;
        assert!(man.status.success(), "{bin}");
        let page = String::from_utf8(man.stdout)?;
        let roff = |s: &str| s.replace('-', "\\-");
        assert!(
            page.contains(&format!(".TH {bin}")) && page.contains(&roff(sub)),
            "{bin}: {}",
            &page[..page.len().min(300)]
        );
        let refused = run(&["completions", "tcsh"])?;
        assert!(!refused.status.success(), "{bin}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("tcsh"),
            "{bin}"
        );
    }
    Ok(())
}

/// The binaries find their files by the XDG conventions without any variable of their own
/// (issue 27, item 5), and tell systemd where they stand (`Type=notify`): `mesd` keeps
/// its data in `$XDG_DATA_HOME/mes`, its identity in `$XDG_CONFIG_HOME/mes`, its socket
/// in `$XDG_RUNTIME_DIR/mes/mesd.sock`, and plain `mes` finds it; `READY=1` arrives on
/// `NOTIFY_SOCKET` after the ready line and `STOPPING=1` on SIGTERM; `mes-relay` keeps
/// its data in systemd's `STATE_DIRECTORY`. Control: `mes` under another runtime
/// directory does not reach the daemon.
#[test]
fn the_binaries_find_their_files_by_xdg_and_tell_systemd() -> anyhow::Result<()> {
    use std::io::BufRead;
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir()?;
    let p = |s: &str| dir.path().join(s);
    let notify = UnixDatagram::bind(p("notify.sock"))?;
    notify.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let heard = || -> anyhow::Result<String> {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let xdg = |c: &mut std::process::Command, run: &str| {
        for v in [
            "MES_DATA",
            "MES_SOCKET",
            "MES_RELAY",
            "MES_RELAY_FINGERPRINT",
            "MES_RELAY_DATA",
            "MES_RELAY_CONFIG",
            "STATE_DIRECTORY",
            "CONFIGURATION_DIRECTORY",
        ] {
            c.env_remove(v);
        }
        c.env("HOME", p("home"))
            .env("XDG_DATA_HOME", p("data"))
            .env("XDG_CONFIG_HOME", p("config"))
            .env("XDG_RUNTIME_DIR", p(run));
    };
    std::fs::create_dir_all(p("run"))?;
    let mut mesd = std::process::Command::new(binary("mesd")?);
    xdg(&mut mesd, "run");
    let mut mesd = mesd
        .arg("serve")
        .env("NOTIFY_SOCKET", p("notify.sock"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(mesd.stdout.take().expect("piped")).read_line(&mut line)?;
    let ready: mes_daemon::run::DaemonReady = serde_json::from_str(&line)?;
    assert_eq!(ready.socket, p("run/mes/mesd.sock"));
    assert_eq!(heard()?, "READY=1\n");
    assert!(p("data/mes").is_dir(), "data in $XDG_DATA_HOME/mes");
    mes_tests::assert_owner_only(&p("config/mes/identity.age"));
    let mes = |run: &str| -> anyhow::Result<std::process::Output> {
        let mut c = std::process::Command::new(binary("mes")?);
        xdg(&mut c, run);
        Ok(c.args(["status", "--json"]).output()?)
    };
    let status = mes("run")?;
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let out = String::from_utf8(status.stdout)?;
    assert!(out.contains("online"), "mes status answered: {out}");
    let elsewhere = mes("elsewhere")?;
    assert!(!elsewhere.status.success(), "control: another runtime dir");
    assert!(
        String::from_utf8_lossy(&elsewhere.stderr).contains("elsewhere/mes/mesd.sock"),
        "{}",
        String::from_utf8_lossy(&elsewhere.stderr)
    );
    std::process::Command::new("kill")
        .arg(mesd.id().to_string())
        .status()?;
    assert_eq!(heard()?, "STOPPING=1\n");
    assert!(mesd.wait()?.success());

    let mut relay = std::process::Command::new(binary("mes-relay")?);
    xdg(&mut relay, "run");
    let mut relay = relay
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("STATE_DIRECTORY", p("state"))
        .env("NOTIFY_SOCKET", p("notify.sock"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(relay.stdout.take().expect("piped")).read_line(&mut line)?;
    assert!(line.contains("fingerprint"), "{line}");
    assert_eq!(heard()?, "READY=1\n");
    assert!(p("state/relay.sled").is_dir(), "data in $STATE_DIRECTORY");
    relay.kill()?;
    relay.wait()?;
    Ok(())
}

/// The relay's certificate is rotated without losing pinned devices (issue 27, item 7):
/// `mes-relay cert rotate` makes a new certificate and a handover signed by the relay's
/// key; restarted, the relay serves the new certificate with the handover in its chain.
/// A device pinned to the old fingerprint follows it, pins the new one, and still
/// connects after a restart with the old fingerprint in its configuration. Controls: a
/// device that never met the relay (no pinned relay key) is refused, as is a stranger's
/// relay presenting a handover from the same old fingerprint signed by its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_relay_certificate_keeps_its_pinned_devices() -> anyhow::Result<()> {
    use mes_daemon::sync::relay_client::{RelayClient, RelayPin};
    use mes_protocol::crypto::cert_handover::CertHandover;
    use mes_protocol::crypto::signed::Signed;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let r = mes_tests::relay(dir.path(), None, false).await?;
    let old = mes_tests::target(&r);
    let a = mes_tests::device(dir.path(), "a", &old).await?;
    mes_tests::online(&a.daemon).await?;
    let relay_key = r.relay.public_key();
    r.shutdown().await;

    let (code, out, err) = mes_tests::run_relay_on(
        &data,
        &["cert", "rotate", "--data", data.to_str().expect("utf-8")],
    )?;
    assert_eq!(code, 0, "{err}");
    let rotation: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(rotation["old"], old.fingerprint.as_str());
    let r = mes_tests::relay(dir.path(), Some(old.address), false).await?;
    assert_eq!(rotation["new"], r.ready.fingerprint.as_str());
    assert_ne!(r.ready.fingerprint, old.fingerprint);

    // The device, configured with the old fingerprint, follows and pins the new one.
    mes_tests::until(&a.daemon, Duration::from_secs(30), "reconnected", |d| {
        d.link.online()
            && mes_daemon::sync::relay_pin::load(&d.store, &old.fingerprint)
                .is_some_and(|p| p.current == r.ready.fingerprint)
    })
    .await?;
    a.shutdown().await;
    let a = mes_tests::device(dir.path(), "a", &old).await?;
    mes_tests::online(&a.daemon).await?;

    // Control: a device that never met the relay has no key to check a handover with.
    let b = mes_tests::device_with(dir.path(), "b", None, false).await?;
    let endpoint = mes_daemon::sync::relay_client::endpoint(old.address)?;
    let key = mes_protocol::crypto::keys::SigningSecret::from_bytes(
        &b.daemon.identity().device.signing.to_bytes(),
    );
    let refused = RelayClient::connect(&endpoint, &old, &b.daemon.identity().cert, &key)
        .await
        .err()
        .expect("no pinned key: refused");
    assert!(
        refused.to_string().contains("is not the pinned"),
        "{refused}"
    );

    // Control: a stranger's relay with a handover from the old fingerprint signed by its
    // own key.
    let pin = RelayPin {
        relay_key,
        current: old.fingerprint.clone(),
    };
    let stranger_dir = dir.path().join("stranger");
    let s = mes_tests::relay(&stranger_dir, None, false).await?;
    let stranger_fp = s.ready.fingerprint.clone();
    let stranger_address = s.ready.address;
    s.shutdown().await;
    let stranger_key = mes_relay::signing::load_or_create(&stranger_dir.join("relay"))?;
    let forged = vec![Signed::sign(
        CertHandover {
            old: old.fingerprint.clone(),
            new: stranger_fp,
            at: mes_protocol::time::UnixMillis::now(),
        },
        &stranger_key,
    )];
    std::fs::write(
        stranger_dir.join("relay/relay-cert-handovers"),
        mes_protocol::wire::codec::to_bytes(&forged),
    )?;
    let s = mes_tests::relay(&stranger_dir, Some(stranger_address), false).await?;
    let to_stranger = mes_daemon::sync::relay_client::RelayTarget {
        address: s.ready.address,
        fingerprint: old.fingerprint.clone(),
    };
    let refused = RelayClient::connect_pinned(
        &endpoint,
        &to_stranger,
        Some(&pin),
        &a.daemon.identity().cert,
        &mes_protocol::crypto::keys::SigningSecret::from_bytes(
            &a.daemon.identity().device.signing.to_bytes(),
        ),
        None,
    )
    .await
    .err()
    .expect("a handover signed by another key is refused");
    assert!(
        refused
            .to_string()
            .contains("no handover signed by the relay's pinned key"),
        "{refused}"
    );
    // The same pin reaches the real relay: the control can succeed.
    let (real, _) = RelayClient::connect_pinned(
        &endpoint,
        &old,
        Some(&pin),
        &a.daemon.identity().cert,
        &mes_protocol::crypto::keys::SigningSecret::from_bytes(
            &a.daemon.identity().device.signing.to_bytes(),
        ),
        None,
    )
    .await?;
    assert_eq!(real.fingerprint, r.ready.fingerprint);
    Ok(())
}
