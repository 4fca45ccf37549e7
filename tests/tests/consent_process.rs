//! Issue 6 from scripts: the real `mes-relay` imports the directory (bad files refused
//! whole, line by line), the real `mesd` and `mes` give consents, block, refuse an
//! emergency mode, read the verified access history and notifications, opt in to
//! research and write a split recovery kit.

use mes_tests::{binary, listed, relay, rpps, spawn_mesd, target, RawPrincipal};
use std::path::Path;
use std::process::{Command, Stdio};

use mes_tests::run_mes as mes;

fn import(relay_dir: &Path, csv: &Path) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(binary("mes-relay")?)
        .args(["directory", "import", "--data"])
        .arg(relay_dir)
        .arg(csv)
        .output()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn consent_history_and_recovery_from_scripts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay_dir = dir.path().join("relay");
    let doctor = RawPrincipal::new("doctor");
    let (_, pro) = listed(doctor.id(), 70, "Dr Script", "10");
    let csv = dir.path().join("pros.csv");
    // A bad row anywhere: nothing is imported, each problem named with its line.
    std::fs::write(
        &csv,
        format!(
            "rpps,principal,name,profession,specialty,structure\n{},{},Dr Script,10,SM54,Cabinet\n12345678901,{},X,10,,\n",
            pro.rpps,
            doctor.id(),
            doctor.id()
        ),
    )?;
    let out = import(&relay_dir, &csv)?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pros.csv:3:") && err.contains("nothing imported"),
        "{err}"
    );
    std::fs::write(
        &csv,
        format!(
            "rpps,principal,name,profession,specialty,structure\n{},{},Dr Script,10,SM54,Cabinet\n",
            pro.rpps,
            doctor.id()
        ),
    )?;
    let out = import(&relay_dir, &csv)?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout)?["imported"],
        1
    );

    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    doctor.connect(&t).await?;
    let (mut child, ready) = spawn_mesd(dir.path(), "a", &t, Stdio::null())?;
    let s = ready.socket.as_path();
    // The space must be registered before consenting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let given = loop {
        let (code, out, err) = mes(s, &["consent", "give", rpps(70).as_str(), "--json"])?;
        if code == 0 {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never consented: {out}{err}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&given)?;
    assert!(v.to_string().contains("documents/mental"), "{v}");
    let (code, text, _) = mes(s, &["consent", "list"])?;
    assert_eq!(code, 0);
    assert!(
        text.contains("Dr Script") && text.contains("lit / reads"),
        "{text}"
    );
    let (code, _, err) = mes(s, &["emergency-access", "--refuse", "break-glass"])?;
    assert_eq!(code, 0, "{err}");

    // The doctor reads; the person sees it, verified, by name.
    let space: mes_protocol::ids::SpaceId = {
        let (_, out, _) = mes(s, &["spaces", "list", "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        v["spaces"][0]["space"]
            .as_str()
            .unwrap_or_else(|| panic!("{out}"))
            .parse()?
    };
    let c = doctor.connect(&t).await?;
    let Reply::Membership { membership, .. } = c.request(Request::GetMembership { space }).await?
    else {
        panic!()
    };
    let emergency = membership
        .volumes
        .values()
        .find(|d| d.body.label == "emergency")
        .unwrap()
        .body
        .volume;
    // An empty volume reads nothing and logs nothing: the card first, then read it
    // once the relay holds it.
    let (code, _, err) = mes(s, &["emergency", "set", "card.blood_group", "O-"])?;
    assert_eq!(code, 0, "{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let Reply::Bundles { items, .. } = c
            .request(Request::Fetch {
                space,
                volume: emergency,
                after: mes_protocol::ids::Seq(0),
                max: 10,
            })
            .await?
        else {
            panic!("a fetch answers bundles")
        };
        if !items.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the card never reached the relay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, out, _) = mes(s, &["access", "history", "--json"])?;
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out)?;
        if v["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            assert_eq!(v["entries"][0]["name"], "Dr Script");
            assert_eq!(v["alarm"], serde_json::Value::Null);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no history: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, text, _) = mes(s, &["access", "history"])?;
    assert_eq!(code, 0);
    assert!(
        text.contains("Dr Script") && text.contains("emergency"),
        "{text}"
    );
    let (_, text, _) = mes(s, &["notifications"])?;
    assert!(text.contains("Dr Script"), "{text}");
    let (code, _, err) = mes(s, &["access", "flag", "99"])?;
    assert_eq!(code, 1, "a missing entry is refused: {err}");

    // Research and recovery.
    assert_eq!(mes(s, &["research", "opt-in"])?.0, 0);
    let out = dir.path().join("research");
    let (code, _, err) = mes(s, &["research", "export", out.to_str().unwrap()])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.join("research.json").exists());
    let kit = dir.path().join("kit.age");
    let (code, text, err) = mes(
        s,
        &["recovery", "kit", kit.to_str().unwrap(), "--split", "2/3"],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.lines().count(), 4, "{text}");
    let (code, _, err) = mes(
        s,
        &["recovery", "kit", kit.to_str().unwrap(), "--split", "3/2"],
    )?;
    assert_ne!(code, 0, "a bad split is refused: {err}");
    child.kill()?;
    child.wait()?;
    Ok(())
}

use mes_protocol::wire::{Reply, Request};
