//! The binaries as processes (issue 2, acceptance 3, 4, 8): `mesd` killed with SIGKILL
//! during a write burst loses no acknowledged change and reopens cleanly; garbage and
//! oversized frames from a raw QUIC client get an error naming the problem and do not
//! disturb other connections.

use mes_client::ApiClient;
use mes_daemon::sync::relay_client::RelayTarget;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use mes_protocol::wire::codec::MAX_WIRE_FRAME;
use mes_protocol::wire::framing::read_frame;
use mes_protocol::wire::{ErrorCode, RelayFrame};
use mes_tests::{binary, converged, paired, relay, target, Paired};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

fn spawn_mesd(
    dir: &Path,
    t: &RelayTarget,
) -> anyhow::Result<(Child, mes_daemon::run::DaemonReady)> {
    mes_tests::spawn_mesd(dir, "a", t, Stdio::inherit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_write_burst_loses_no_acknowledged_change() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let (mut child, ready) = spawn_mesd(dir.path(), &t)?;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ready.socket)?.permissions().mode() & 0o777,
        0o600,
        "API socket is private"
    );
    let acked = Arc::new(Mutex::new(Vec::new()));
    let burst = {
        let acked = acked.clone();
        let socket = ready.socket.clone();
        tokio::spawn(async move {
            let mut c = ApiClient::connect(&socket).await.expect("connect");
            for i in 0.. {
                match c
                    .call(
                        None,
                        ApiCall::NoteSet {
                            key: format!("k{i:05}"),
                            value: format!("v{i}"),
                        },
                    )
                    .await
                {
                    Ok(Ok(ApiReply::Done)) => acked.lock().unwrap().push(i),
                    _ => return,
                }
            }
        })
    };
    while acked.lock().unwrap().len() < 300 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    burst.await?;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let (mut child, ready) = spawn_mesd(dir.path(), &t)?;
    let mut c = ApiClient::connect(&ready.socket).await?;
    for i in &acked {
        match c
            .call(
                None,
                ApiCall::NoteGet {
                    key: format!("k{i:05}"),
                },
            )
            .await?
        {
            Ok(ApiReply::Values(v)) => assert_eq!(v, vec![format!("v{i}")]),
            other => panic!("acknowledged change k{i:05} lost after SIGKILL: {other:?}"),
        }
    }
    // It reopens cleanly and finishes uploading.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let Ok(ApiReply::Status(s)) = c.call(None, ApiCall::Status).await? else {
            panic!("status")
        };
        if s.online && s.volumes.iter().all(|v| v.pending_uploads == 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "uploads never finished: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

async fn raw_connection(
    t: &RelayTarget,
) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream, quinn::Connection)> {
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let conn = endpoint
        .connect_with(
            mes_daemon::sync::relay_client::client_config(&t.fingerprint)?,
            t.address,
            "mes-relay",
        )?
        .await?;
    let (send, mut recv) = conn.accept_bi().await?;
    let first = read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await?;
    assert!(matches!(first, Some(RelayFrame::Challenge { .. })));
    Ok((send, recv, conn))
}

async fn fatal_after(
    t: &RelayTarget,
    bytes: &[u8],
) -> anyhow::Result<mes_protocol::wire::WireError> {
    let (mut send, mut recv, _conn) = raw_connection(t).await?;
    send.write_all(bytes).await?;
    loop {
        match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await? {
            Some(RelayFrame::Fatal(e)) => return Ok(e),
            Some(_) => continue,
            None => anyhow::bail!("closed without an error frame"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_get_an_error_and_disturb_no_one() -> anyhow::Result<()> {
    let Paired {
        dir: _dir,
        relay: _r,
        target: t,
        a,
        b,
        space,
    } = paired().await?;

    let mut garbage = 12u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\x01not a frame");
    let e = fatal_after(&t, &garbage).await?;
    assert_eq!(e.code, ErrorCode::BadFrame, "{e}");
    assert!(!e.message.is_empty());

    let e = fatal_after(&t, &u32::MAX.to_be_bytes()).await?;
    assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
    assert!(
        e.message.contains("limit") || e.message.contains("large"),
        "{e}"
    );

    let e = fatal_after(&t, &[0, 0, 0, 3, 1, 2, 3]).await?;
    assert!(
        matches!(e.code, ErrorCode::BadFrame | ErrorCode::Unauthenticated),
        "{e}"
    );

    // Authenticated devices carry on.
    a.daemon.note_set(space, "après", "les déchets").await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    assert_eq!(b.daemon.note_get(space, "après")?, vec!["les déchets"]);
    assert!(a.daemon.link.online() && b.daemon.link.online());
    Ok(())
}

fn mes(socket: &Path, args: &[&str]) -> anyhow::Result<(i32, String)> {
    mes_tests::run_mes(socket, args).map(|(code, out, _)| (code, out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mes_subcommands_drive_sync_from_scripts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let (mut child, ready) = spawn_mesd(dir.path(), &t)?;
    let s = ready.socket.as_path();
    assert_eq!(
        mes(s, &["note", "set", "allergie", "pénicilline"])?,
        (0, "ok\n".into())
    );
    let (code, out) = mes(s, &["note", "get", "allergie", "--json"])?;
    assert_eq!(
        (code, serde_json::from_str::<serde_json::Value>(&out)?),
        (0, serde_json::json!({ "values": ["pénicilline"] }))
    );
    let (code, out) = mes(s, &["note", "get", "absente", "--json"])?;
    assert_eq!(code, 1, "a missing note is an error");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)?["error"]["code"],
        "NotFound"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, out) = mes(s, &["status", "--json"])?;
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let notes = v["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["label"] == "notes")
            .cloned()
            .expect("notes");
        assert_eq!(
            notes["space"].as_str().map(str::len),
            Some(32),
            "ids are hex for scripts"
        );
        if v["online"] == true
            && notes["pending_uploads"] == 0
            && notes["cursor"].as_u64() >= Some(2)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never synced: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, human) = mes(s, &["status"])?;
    assert_eq!(code, 0);
    assert!(
        human.contains("en ligne / online") && human.contains("notes"),
        "{human}"
    );
    // Scripts wait for a device to be caught up instead of polling (issue 27).
    mes(s, &["note", "set", "groupe", "O négatif"])?;
    let (code, out) = mes(s, &["status", "--wait", "--timeout", "60", "--json"])?;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["online"], true, "{out}");
    assert!(
        v["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .all(|v| v["pending_uploads"] == 0 && v["cursor"] == v["head"]),
        "{out}"
    );
    // The medical profile from scripts (issue 4).
    let (code, id) = mes(
        s,
        &[
            "profile",
            "put",
            "allergies",
            r#"{"substance":"pénicilline","major":true}"#,
        ],
    )?;
    assert_eq!(code, 0, "{id}");
    let (code, out) = mes(s, &["profile", "show", "--json"])?;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["conflicts"], serde_json::json!([]));
    let allergy = &v["profile"]["allergies"][0];
    assert_eq!(allergy["id"], id.trim());
    assert_eq!(allergy["major"], true);
    let (code, out) = mes(
        s,
        &["profile", "set", "situation.lives_alone", "oui", "--json"],
    )?;
    assert_eq!(code, 1, "a wrong type is refused");
    let e: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(e["error"]["code"], "BadRequest");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("boolean"),
        "{out}"
    );
    // The emergency directory (F10), for people and scripts.
    let (code, human) = mes(s, &["emergency-numbers"])?;
    assert_eq!(code, 0);
    assert!(
        human.starts_with("15 ") && human.contains("SAMU"),
        "{human}"
    );
    let (code, out) = mes(s, &["emergency-numbers", "--json"])?;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert!(v["numbers"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["number"] == "3114")));
    health_record_from_scripts(s, dir.path())?;
    bulk_import_from_scripts(s, dir.path())?;
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// Documents, measurements, agenda, messages and export through `mes --json` (issue 4).
fn health_record_from_scripts(s: &Path, dir: &Path) -> anyhow::Result<()> {
    let json = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out) = mes(s, &all)?;
        anyhow::ensure!(code == 0, "mes {args:?}: {out}");
        Ok(serde_json::from_str(&out)?)
    };
    let f = dir.join("ordonnance.txt");
    std::fs::write(&f, "Paracétamol 1 g, 3 fois par jour")?;
    let rel = f.strip_prefix(std::env::current_dir()?).unwrap_or(&f);
    let v = json(&[
        "doc",
        "add",
        &rel.to_string_lossy(),
        "--category",
        "prescriptions",
        "--title",
        "Ordonnance radio genou droit",
        "--date",
        "2021-02-02",
        "--author",
        "Antoine Robert",
    ])?;
    let id = v["document"]["id"].as_str().expect("an id").to_string();
    assert_eq!(v["document"]["blob_key"], "", "no key in answers");
    let v = json(&[
        "doc",
        "search",
        "genou",
        "--category",
        "prescriptions",
        "--from",
        "2021-01-01",
    ])?;
    assert_eq!(v["documents"][0]["id"], id.as_str());
    assert_eq!(
        json(&["doc", "list"])?["documents"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let out = dir.join("copie.txt");
    let v = json(&["doc", "get", &id, "--out", &out.to_string_lossy()])?;
    assert_eq!(
        v["path"],
        out.to_string_lossy().as_ref(),
        "the absolute path written"
    );
    assert_eq!(std::fs::read(&out)?, std::fs::read(&f)?);
    let (code, err) = mes(
        s,
        &[
            "doc",
            "add",
            &f.to_string_lossy(),
            "--category",
            "ordonnance",
            "--date",
            "2021-02-02",
            "--json",
        ],
    )?;
    assert_eq!(code, 1);
    assert!(
        err.contains("ordonnance") && err.contains("prescriptions"),
        "{err}"
    );
    json(&[
        "measure",
        "add",
        "weight",
        "61.5",
        "--at",
        "2026-11-24T08:30",
    ])?;
    let v = json(&["measure", "list", "weight"])?;
    assert_eq!(v["measurements"][0]["value"], 61.5);
    json(&[
        "agenda",
        "add",
        "--at",
        "2030-01-10T09:00",
        "--title",
        "Dentiste",
    ])?;
    let v = json(&["agenda", "list", "--from", "2030-01-01", "--months", "1"])?;
    assert_eq!(v["agenda"][0]["Appointment"]["title"], "Dentiste");
    let m = json(&["message", "new", "--subject", "Question", "Bonjour docteur"])?;
    let thread = json(&["message", "list"])?["messages"]["threads"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    json(&["message", "reply", &thread, "Merci", "--attach", &id])?;
    json(&["message", "read", m["id"].as_str().unwrap_or_default()])?;
    let v = json(&["message", "list"])?;
    assert_eq!(
        v["messages"]["messages"]
            .as_object()
            .map(serde_json::Map::len),
        Some(2)
    );
    let export = dir.join("export");
    let v = json(&["export", &export.to_string_lossy()])?;
    assert_eq!(v["path"], export.to_string_lossy().as_ref());
    assert!(export.join("bundle.json").exists() && export.join("summary.pdf").exists());
    Ok(())
}

/// `mes doc import` (F3.7): every bad row reported by line and nothing imported; then all
/// of it; a re-run adds nothing; the progress bar on a real terminal.
fn bulk_import_from_scripts(s: &Path, dir: &Path) -> anyhow::Result<()> {
    let count = || -> anyhow::Result<usize> {
        let (_, out) = mes(s, &["doc", "list", "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        Ok(v["documents"].as_array().map_or(0, Vec::len))
    };
    let before = count()?;
    let folder = dir.join("archives");
    std::fs::create_dir_all(folder.join("2021"))?;
    let files = [
        (
            "2021/cr_chirurgie.txt",
            "Compte rendu : arthroscopie du genou droit.",
        ),
        (
            "2021/radio.txt",
            "Radiographie du genou droit, face et profil.",
        ),
        ("2021/bilan.txt", "NFS, ionogramme : normaux."),
        ("ordonnance.txt", "Soins infirmiers à domicile, 10 jours."),
    ];
    for (name, text) in files {
        std::fs::write(folder.join(name), text)?;
    }
    let manifest = dir.join("manifeste.csv");
    let import = |manifest: &Path| -> anyhow::Result<(i32, serde_json::Value)> {
        let (code, out) = mes(
            s,
            &[
                "doc",
                "import",
                &folder.to_string_lossy(),
                "--manifest",
                &manifest.to_string_lossy(),
                "--json",
            ],
        )?;
        Ok((code, serde_json::from_str(&out)?))
    };
    std::fs::write(
        &manifest,
        "fichier;catégorie;date;titre;auteur\n\
         2021/cr_chirurgie.txt;reports;16/04/2021;CR_chirurgie genou droit;Pierre Angeli\n\
         2021/radio.txt;radiographie;15/03/2021;Radiologie genou droit;Halima Dial\n\
         2021/bilan.txt;biology;2021-01-27;Résultats d'analyses;Hun Nguyen\n\
         2021/absent.txt;biology;2021-01-27;Absent;\n\
         ordonnance.txt;prescriptions;le 19 avril;Prescription soins infirmiers;\n",
    )?;
    let (code, v) = import(&manifest)?;
    assert_eq!(code, 1, "{v}");
    let problems = v["problems"].as_array().expect("problems");
    let lines: Vec<u64> = problems.iter().filter_map(|p| p["line"].as_u64()).collect();
    assert_eq!(lines, [6], "the manifest's own errors come first: {v}");
    assert!(problems[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("le 19 avril"));
    assert_eq!(count()?, before, "nothing imported");
    // Fix the date: the daemon's check now finds the unknown category and the missing file.
    let text = std::fs::read_to_string(&manifest)?.replace("le 19 avril", "19/04/2021");
    std::fs::write(&manifest, &text)?;
    let (code, v) = import(&manifest)?;
    assert_eq!(code, 1, "{v}");
    let problems = v["problems"].as_array().expect("problems");
    let lines: Vec<u64> = problems.iter().filter_map(|p| p["line"].as_u64()).collect();
    assert_eq!(lines, [3, 5], "{v}");
    assert!(problems[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("radiographie"));
    assert!(problems[1]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("absent.txt"));
    assert_eq!(count()?, before, "nothing imported");
    let text = text
        .replace(";radiographie;", ";imaging;")
        .replace("2021/absent.txt;biology;2021-01-27;Absent;\n", "");
    std::fs::write(&manifest, &text)?;
    let (code, v) = import(&manifest)?;
    assert_eq!(
        (code, &v["imported"], &v["total"]),
        (0, &4.into(), &4.into()),
        "{v}"
    );
    assert_eq!(count()?, before + 4);
    let (code, v) = import(&manifest)?;
    assert_eq!(code, 0);
    assert_eq!(
        (&v["imported"], &v["already_present"]),
        (&0.into(), &4.into()),
        "a re-run adds nothing"
    );
    assert_eq!(count()?, before + 4);
    let (_, out) = mes(
        s,
        &["doc", "search", "genou", "--author", "angeli", "--json"],
    )?;
    let found: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(found["documents"][0]["date"], "2021-04-16");
    // The progress bar, on a real terminal, with a JSON manifest adding one more.
    std::fs::write(folder.join("vaccins.txt"), "DTP : rappel 2020.")?;
    let json_manifest = dir.join("manifeste.json");
    std::fs::write(
        &json_manifest,
        r#"[{"file":"2021/radio.txt","category":"imaging","date":"2021-03-15","title":"Radiologie genou droit","author":"Halima Dial"},
            {"file":"vaccins.txt","category":"prevention","date":"2020-05-04","title":"Carnet de vaccination"}]"#,
    )?;
    let command = format!(
        "{} --socket {} doc import {} --manifest {}",
        binary("mes")?.display(),
        s.display(),
        folder.display(),
        json_manifest.display()
    );
    let term = mes_tests::tmux::Tmux::start(&command, 100, 10, &[])?;
    let screen = term.wait_for(&["[exited]"], std::time::Duration::from_secs(30))?;
    assert!(screen.contains("1/1 documents"), "{screen}");
    assert!(
        screen.contains("1 importé(s) / imported, 1 déjà présent(s)"),
        "{screen}"
    );
    assert_eq!(count()?, before + 5);
    Ok(())
}
