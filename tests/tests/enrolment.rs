//! The hub's opt-out enrolment (issue 7, F1) as an operator and people live it: the real
//! `mes-relay` imports a population (a bad file imports nothing), runs the campaign by
//! département into a maildir and print files, and people activate or oppose with the
//! code their message carries, through their daemon and the relay over QUIC (and the
//! real `mes` for a parent's child). Every bad input is refused by name and changes
//! nothing; a wrong code is counted and locks the NIR. The clock's effects (deadlines,
//! expiry, archives, reminders) run on real sled files with a given time.
//!
//! Over 600 lines: one suite per user-visible area, each test a scenario.

use mes_protocol::enrolment::nir::Nir;
use mes_protocol::enrolment::{CardHolder, EnrolRequest};
use mes_protocol::time::UnixMillis;
use mes_relay::enrolment::service as svc;
use mes_relay::enrolment::{Policy, Status};
use mes_tests::{binary, device, files, home, online, relay, run_relay_on, target};
use std::path::Path;
use std::process::Command;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {s:?}"))
}

struct People {
    adult: String,
    corsica: String,
    parent: String,
    child: String,
}

fn people() -> People {
    People {
        adult: Nir::with_key("1800569123456"),
        corsica: Nir::with_key("275032A004017"),
        parent: Nir::with_key("1850197412345"),
        child: Nir::with_key("2150697412399"),
    }
}

fn population(p: &People) -> String {
    format!(
        "nir,vitale_serial,last_name,first_names,birth_date,sex,email,postal_address,departement,representatives\n\
         {},VIT0001,Martin,Camille,1980-05-12,M,camille.martin@exemple.fr,,69,\n\
         {},VIT0002,Santoni,Maria,1975-03-08,F,,\"3 cours Napoléon, 20000 Ajaccio\",2A,\n\
         {},VIT0003,Payet,Louis,1985-01-20,M,louis.payet@exemple.re,,974,\n\
         {},VIT0003,Payet,Lola,2015-06-01,F,,,974,{}\n",
        p.adult, p.corsica, p.parent, p.child, p.parent
    )
}

/// The code an email or letter under `dir` carries for `name`.
fn code_for(dir: &Path, name: &str) -> Option<String> {
    let needle = format!("Code provisoire pour {name} : ");
    files(dir).iter().rev().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let at = text.rfind(&needle)? + needle.len();
        Some(text[at..at + 12].to_string())
    })
}

/// The suite backend's enrolment tables under `dir`, the default policy, and secrets
/// with code key `key` and a cheap password cost.
fn tables(
    dir: &Path,
    key: u8,
) -> anyhow::Result<(
    mes_relay::enrolment::store::EnrolmentTables,
    Policy,
    svc::Secrets,
)> {
    Ok((
        mes_tests::enrolment_tables(&dir.join("relay"))?,
        Policy::default(),
        svc::Secrets {
            code_key: [key; 32],
            argon: argon2::Params::new(256, 1, 1, None).unwrap(),
        },
    ))
}

/// The operator imports `file` into the hub at `data` and runs the whole campaign.
fn import_and_notify(data: &Path, file: &Path) -> anyhow::Result<()> {
    let data_s = data.to_str().unwrap();
    for args in [
        vec![
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
        vec!["campaign", "run", "--data", data_s],
    ] {
        let (code, _, err) = run_relay_on(data, &args)?;
        anyhow::ensure!(code == 0, "{args:?}: {err}");
    }
    Ok(())
}

/// A hub under `dir` with [`people`] imported and the whole campaign run: its data
/// directory, and the people.
fn notified_hub(dir: &Path) -> anyhow::Result<(std::path::PathBuf, People)> {
    let data = dir.join("relay");
    let p = people();
    let file = dir.join("population.csv");
    std::fs::write(&file, population(&p))?;
    import_and_notify(&data, &file)?;
    Ok((data, p))
}

/// Camille activates `space` with `code`, her identifier and her password.
fn camille_activates(p: &People, code: String, space: mes_protocol::ids::SpaceId) -> EnrolRequest {
    EnrolRequest::Activate {
        holder: holder(&p.adult, "VIT0001"),
        code,
        identifier: "camille80".into(),
        password: "Sant3!santé".into(),
        email: "camille.martin@exemple.fr".into(),
        space,
    }
}

fn holder(nir: &str, serial: &str) -> CardHolder {
    CardHolder {
        nir: nir.into(),
        vitale_serial: serial.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn an_operator_enrols_a_population_and_people_activate_or_oppose() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    let p = people();
    let stats = || -> anyhow::Result<serde_json::Value> {
        let (code, out, err) = run_relay_on(&data, &["stats", "--data", data_s])?;
        anyhow::ensure!(code == 0, "{err}");
        Ok(json(&out))
    };

    // A file with a wrong NIR key and a minor without a representative imports nothing.
    let bad = population(&p)
        .replace(&p.corsica, &format!("{}00", &p.corsica[..13]))
        .replace(&format!(",{}\n", p.parent), ",\n");
    let bad_file = dir.path().join("bad.csv");
    std::fs::write(&bad_file, bad)?;
    let (code, _, err) = run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            bad_file.to_str().unwrap(),
        ],
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.csv:3: ") && err.contains("key"), "{err}");
    assert!(
        err.contains("bad.csv:5: ") && err.contains("cannot be told"),
        "{err}"
    );
    assert!(err.contains("nothing imported"), "{err}");
    assert_eq!(stats()?["people"], 0);

    let file = dir.path().join("population.csv");
    std::fs::write(&file, population(&p))?;
    let (code, out, err) = run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["imported"], 4);
    // Again: everyone is already on file, and nothing changes.
    let (code, _, err) = run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
    )?;
    assert_eq!(code, 2);
    assert!(err.contains("is already on file"), "{err}");
    assert_eq!(stats()?["people"], 4);

    // The campaign by département: only the Rhône first, then the rest.
    let (code, _, err) = run_relay_on(
        &data,
        &["campaign", "run", "--data", data_s, "--departements", "99"],
    )?;
    assert_eq!(code, 2);
    assert!(err.contains("\"99\""), "{err}");
    let (code, out, err) = run_relay_on(
        &data,
        &["campaign", "run", "--data", data_s, "--departements", "69"],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["notified"], 1);
    let outbox = data.join("outbox");
    assert_eq!(files(&outbox.join("maildir/new")).len(), 1);
    let s = stats()?;
    assert_eq!(
        (
            s["pending_notification"].as_u64(),
            s["awaiting_decision"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let (code, out, err) = run_relay_on(
        &data,
        &["campaign", "run", "--data", data_s, "--rate", "100"],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["notified"], 3);
    assert_eq!(json(&out)["delivered"]["letters"], 1);
    assert_eq!(json(&out)["delivered"]["emails"], 2);
    let letter = files(&outbox.join("letters/2A"));
    assert_eq!(letter.len(), 1, "one print file for Corse-du-Sud");
    // Letters and emails carry live codes and addresses: owner-only (issue 22, finding 9).
    mes_tests::assert_owner_only(&letter[0]);
    mes_tests::assert_owner_only(&outbox.join("letters/2A"));
    for mail in files(&outbox.join("maildir/new")) {
        mes_tests::assert_owner_only(&mail);
    }
    let letter = std::fs::read_to_string(&letter[0])?;
    assert!(
        letter.starts_with("Maria Santoni\n3 cours Napoléon, 20000 Ajaccio\n"),
        "{letter}"
    );
    // The child's code goes to her father, in his mailbox, naming her.
    let to_father = mes_tests::files_containing(&outbox.join("maildir/new"), b"Lola Payet");
    assert_eq!(to_father.len(), 1);
    let mail = std::fs::read_to_string(&to_father[0])?;
    assert!(
        mail.contains("louis.payet@exemple.re") && mail.contains("Bonjour Louis Payet"),
        "{mail}"
    );
    let camille = code_for(&outbox, "Camille Martin").expect("Camille's code");
    let maria = code_for(&outbox, "Maria Santoni").expect("Maria's code");
    let lola = code_for(&outbox, "Lola Payet").expect("Lola's code");
    let louis_code = code_for(&outbox, "Louis Payet").expect("Louis's code");
    assert!(
        mes_tests::files_containing(&data, camille.as_bytes())
            .iter()
            .all(|f| f.starts_with(&outbox)),
        "the hub's store keeps no code in clear"
    );

    // People answer through their daemons and the relay.
    let r = relay(dir.path(), None, false).await?;
    let hub = r.relay.enrolment.get().unwrap().clone();
    let t = target(&r);
    let (cam, space) = mes_tests::online_home(dir.path(), "camille", &t).await?;
    let activate = |nir: &str, serial: &str, code: &str, identifier: &str, password: &str| {
        EnrolRequest::Activate {
            holder: holder(nir, serial),
            code: code.into(),
            identifier: identifier.into(),
            password: password.into(),
            email: "camille.martin@exemple.fr".into(),
            space,
        }
    };
    let refused = |r: Result<
        mes_protocol::enrolment::EnrolStatus,
        mes_protocol::wire::api::ApiError,
    >| { r.expect_err("refused").message };
    let before = svc::stats(&hub.tables)?;
    let wrong_key = format!(
        "{}{:02}",
        &p.adult[..13],
        (p.adult[13..].parse::<u8>()? + 1) % 97
    );
    for (request, why) in [
        (
            activate(&wrong_key, "VIT0001", &camille, "camille80", "Sant3!santé"),
            "key",
        ),
        (
            activate(&p.adult, "VIT9999", &camille, "camille80", "Sant3!santé"),
            "do not match anyone",
        ),
        (
            activate(&p.adult, "VIT0001", "12345", "camille80", "Sant3!santé"),
            "12 characters",
        ),
        (
            activate(&p.adult, "VIT0001", &camille, "camille80", "santé"),
            "an upper case letter, a digit",
        ),
        (
            activate(&p.adult, "VIT0001", &camille, "c@mille.fr", "Sant3!santé"),
            "email",
        ),
        (
            activate(&p.adult, "VIT0001", &maria, "camille80", "Sant3!santé"),
            "4 attempt(s) left",
        ),
    ] {
        let m = refused(cam.daemon.enrol(Some(space), request).await);
        assert!(m.contains(why), "{why:?} not in {m:?}");
    }
    let after = svc::stats(&hub.tables)?;
    assert_eq!(before, after, "refusals change nothing");
    let ok = cam
        .daemon
        .enrol(
            Some(space),
            activate(&p.adult, "VIT0001", &camille, "camille80", "Sant3!santé"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(ok.status, "activated");
    assert!(ok.detail.starts_with("Activé le "), "{}", ok.detail);
    // The code is spent: replayed, it opens nothing.
    let m = refused(
        cam.daemon
            .enrol(
                Some(space),
                activate(&p.adult, "VIT0001", &camille, "camille81", "Sant3!santé"),
            )
            .await,
    );
    assert!(m.contains("a code is used once"), "{m}");
    let stored = hub.tables.person(&p.adult[..13])?.unwrap();
    let account = stored.account.unwrap();
    assert_eq!(account.space, space);
    assert!(
        account.password_hash.starts_with("$argon2id$"),
        "{}",
        account.password_hash
    );
    assert!(!format!("{:?}", hub.tables.person(&p.adult[..13])?).contains("Sant3!santé"));

    // Maria: four wrong codes, then hers opposes (the count resets); five more lock her,
    // and then even her code is refused until the pause ends.
    let oppose = |code: &str| EnrolRequest::Oppose {
        holder: holder(&p.corsica, "VIT0002"),
        code: code.into(),
    };
    for _ in 0..4 {
        assert!(refused(cam.daemon.enrol(None, oppose(&camille)).await).contains("attempt(s) left"));
    }
    let s = cam
        .daemon
        .enrol(None, oppose(&maria))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(s.status, "opposed");
    let m = refused(
        cam.daemon
            .enrol(
                None,
                EnrolRequest::Regenerate {
                    holder: holder(&p.corsica, "VIT0002"),
                },
            )
            .await,
    );
    assert!(m.contains("no email is on file"), "{m}");
    let reminders = |code: &str| EnrolRequest::Reminders {
        holder: holder(&p.corsica, "VIT0002"),
        code: code.into(),
        off: true,
    };
    for left in (0..5).rev() {
        let m = refused(cam.daemon.enrol(None, reminders(&camille)).await);
        assert!(m.contains(&format!("{left} attempt(s) left")), "{m}");
    }
    let m = refused(cam.daemon.enrol(None, reminders(&maria)).await);
    assert!(m.contains("too many failed attempts"), "{m}");

    // A father answers for his daughter with the real `mes`, under her profile (F1.10):
    // "En attente de décision", he opposes, then changes his mind and activates with the
    // same code (opposition is reversible); her space is created for it.
    let louis = device(dir.path(), "louis", &t).await?;
    online(&louis.daemon).await?;
    let socket = louis.ready.socket.clone();
    let mes = |args: &str| -> anyhow::Result<(i32, String, String)> {
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "Lola-2015!\n")?;
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{} --socket {} {args} 3<{}",
                binary("mes")?.display(),
                socket.display(),
                pw.display()
            ))
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout)?,
            String::from_utf8(out.stderr)?,
        ))
    };
    let card = format!(
        "--nir '{}' --serial VIT0003",
        Nir::parse(&p.child)?.display()
    );
    let (code, out, err) = mes(&format!("enrol --profile Lola status {card}"))?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("En attente de décision"), "{out}");
    let profiles = || -> anyhow::Result<serde_json::Value> {
        let (code, out, err) = mes("enrol profiles --json")?;
        anyhow::ensure!(code == 0, "{err}");
        Ok(json(&out))
    };
    let listed = profiles()?;
    assert_eq!(listed["profiles"][0]["label"], "Lola", "{listed}");
    assert_eq!(listed["profiles"][0]["status"]["status"], "notified");
    assert!(listed["profiles"][0]["space"].is_null(), "{listed}");
    // The code read from a descriptor, never on the command line where `ps` shows it
    // (issue 22, finding 10).
    let code_file = dir.path().join("code");
    std::fs::write(&code_file, format!("{}\n", lola.to_lowercase()))?;
    let (code, out, err) = mes(&format!(
        "enrol --profile Lola oppose {card} --code-fd 4 4<{}",
        code_file.display()
    ))?;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Opposé le "), "{out}");
    let spaces_before = louis.daemon.list_spaces().len();
    let (code, _, err) = mes(&format!(
        "enrol --profile Lola activate {card} --code {lola} --identifier lola.payet --password-fd 3 --email ''"
    ))?;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = mes(&format!("enrol status {card}"))?;
    assert_eq!(code, 0);
    assert!(out.starts_with("Activé le "), "{out}");
    let listed = profiles()?;
    assert_eq!(listed["profiles"][0]["status"]["status"], "activated");
    let lola_space: mes_protocol::ids::SpaceId =
        serde_json::from_value(listed["profiles"][0]["space"].clone())?;
    let spaces = louis.daemon.list_spaces();
    assert_eq!(spaces.len(), spaces_before + 1, "one space created for her");
    assert!(spaces
        .iter()
        .any(|s| s.space == lola_space && s.label == "Lola"));
    assert_eq!(
        hub.tables
            .person(&p.child[..13])?
            .unwrap()
            .account
            .unwrap()
            .space,
        lola_space
    );
    // The identifier is his daughter's now: nobody else takes it.
    let m = refused(
        cam.daemon
            .enrol(
                Some(space),
                activate(
                    &p.parent,
                    "VIT0003",
                    &louis_code,
                    "lola.payet",
                    "Sant3!santé",
                ),
            )
            .await,
    );
    assert!(m.contains("is taken"), "{m}");
    // He asks for a new code for himself: it goes to his email once delivered.
    let s = louis
        .daemon
        .enrol(
            None,
            EnrolRequest::Regenerate {
                holder: holder(&p.parent, "VIT0003"),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(s.status, "notified");
    assert_eq!(hub.tables.outbox_len(), 1);
    // Closing with the hub account, then reopening.
    // Closed, her space is refused to everyone, her father's device included (control:
    // the same read passes before and after reopening).
    let profile_volume = mes_tests::volume(&louis.daemon, lola_space, "profile").unwrap();
    let (conn, _) = mes_tests::connect_as(&louis.daemon, &t).await?;
    let read = || {
        conn.request(mes_protocol::wire::Request::Fetch {
            space: lola_space,
            volume: profile_volume,
            after: mes_protocol::ids::Seq(0),
            max: 1,
        })
    };
    assert!(read().await.is_ok());
    let (code, out, err) = mes("enrol close --identifier lola.payet --password-fd 3")?;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Clôturé"), "{out}");
    let refused_read = read().await.expect_err("a closed space is refused");
    assert!(
        refused_read.to_string().contains("is closed"),
        "{refused_read}"
    );
    let (code, out, err) = mes("enrol reopen --identifier lola.payet --password-fd 3")?;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Activé"), "{out}");
    assert!(read().await.is_ok(), "reopened, it syncs again");

    drop(hub);
    cam.shutdown().await;
    louis.shutdown().await;
    r.shutdown().await;
    let (code, out, err) = run_relay_on(&data, &["deliver", "--data", data_s])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["emails"], 1);
    let regenerated = mes_tests::files_containing(
        &outbox.join("maildir/new"),
        b"Here is the new provisional code asked for Louis Payet",
    );
    assert_eq!(regenerated.len(), 1);
    assert!(
        !std::fs::read_to_string(&regenerated[0])?.contains(&louis_code),
        "a new code"
    );

    // Six weeks and a day later the clock creates Louis's own space (he never decided).
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(43 * 24))?
        .to_string();
    let (code, out, err) = run_relay_on(&data, &["sweep", "--data", data_s, "--now", &later])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["auto_created"], 1);
    let s = stats()?;
    assert_eq!(s["notified"], 4);
    assert_eq!(s["activated"], 2);
    assert_eq!(s["opposed"], 1);
    assert_eq!(s["auto_created"], 1);
    assert_eq!(s["activation_rate"], 50.0);
    Ok(())
}

fn insured(nir: &str, email: bool) -> mes_relay::enrolment::population::Insured {
    mes_relay::enrolment::population::Insured {
        nir: Nir::parse(nir).unwrap(),
        vitale_serial: "VIT1".into(),
        last_name: "Durand".into(),
        first_names: "Alix".into(),
        birth_date: "1990-01-01".parse().unwrap(),
        sex: "F".into(),
        email: email.then(|| "alix@exemple.fr".into()),
        postal_address: (!email).then(|| "1 rue Haute, 75001 Paris".into()),
        departement: "75".into(),
        representatives: Vec::new(),
    }
}

/// Imports `people` into the tables and runs the whole campaign at `t0`.
fn notify_at(
    t: &mes_relay::enrolment::store::EnrolmentTables,
    policy: &Policy,
    secrets: &svc::Secrets,
    people: &[mes_relay::enrolment::population::Insured],
    t0: UnixMillis,
) -> anyhow::Result<()> {
    svc::import(t, people, |_| {}).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    svc::campaign(
        t,
        policy,
        secrets,
        &svc::CampaignRun::default(),
        || t0,
        |_| {},
    )?;
    Ok(())
}

/// The clock's effects on real sled files: a code past its month, the deadline, closure
/// and the archive's end, an express deletion, reminders after six months then yearly.
#[test]
fn the_clock_expires_codes_creates_spaces_and_ends_archives() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 3)?;
    let (a, b) = (
        Nir::with_key("2900175001001"),
        Nir::with_key("2900175001002"),
    );
    let t0 = UnixMillis(1_780_000_000_000);
    let day = 86_400_000;
    notify_at(
        &t,
        &policy,
        &secrets,
        &[insured(&a, true), insured(&b, false)],
        t0,
    )?;
    let key = secrets.code_key;
    let codes: Vec<String> = t
        .outbox_messages(10)?
        .into_iter()
        .filter_map(|m| m.code(&key))
        .collect();
    assert_eq!(codes.len(), 2);
    // A month and a day later the code has expired; the right one says so, a wrong one
    // is still only wrong.
    let e = svc::oppose(
        &t,
        &policy,
        &secrets,
        &codes[0],
        &a,
        "VIT1",
        UnixMillis(t0.0 + 31 * day),
    )
    .unwrap_err();
    assert!(matches!(e, svc::Refusal::Expired(_)), "{e}");
    // A new code (Alix has an email) works again.
    svc::regenerate(
        &t,
        &policy,
        &secrets,
        &a,
        "VIT1",
        UnixMillis(t0.0 + 31 * day),
    )?;
    let fresh = t
        .outbox_messages(10)?
        .into_iter()
        .filter_map(|m| m.code(&key))
        .next_back()
        .unwrap();
    assert_ne!(fresh, codes[0]);
    svc::set_reminders(
        &t,
        &policy,
        &secrets,
        &holder(&a, "VIT1"),
        &fresh,
        true,
        UnixMillis(t0.0 + 31 * day),
    )?;
    // The deadline (six weeks) creates both spaces; only B gets reminders.
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 41 * day), |_| {})?;
    assert_eq!(r.auto_created, 0, "not before the deadline");
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 43 * day), |_| {})?;
    assert_eq!(r.auto_created, 2);
    let before = t.outbox_len();
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 200 * day), |_| {})?;
    assert_eq!(r.reminders, 0, "not within six months of the creation");
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 250 * day), |_| {})?;
    assert_eq!(
        r.reminders, 1,
        "six months after: B only, A turned them off"
    );
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 400 * day), |_| {})?;
    assert_eq!(r.reminders, 0, "then not before a year");
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 650 * day), |_| {})?;
    assert_eq!(r.reminders, 1);
    assert_eq!(t.outbox_len(), before + 2);
    // B activates the created space, then closes it with an express deletion: gone
    // within three months, and the archive cannot be reopened after.
    let b_code = t
        .outbox_messages(100)?
        .into_iter()
        .filter(|m| m.about == b[..13])
        .find_map(|m| m.code(&key))
        .unwrap();
    let now = UnixMillis(t0.0 + 20 * day);
    let act = svc::Activation {
        code: b_code,
        nir: b.clone(),
        vitale_serial: "VIT1".into(),
        identifier: "alix.durand".into(),
        password: "Durand-1990".into(),
        email: String::new(),
        space: mes_protocol::ids::SpaceId([9; 16]),
    };
    // Day 20: within the code's month, and the space already created (F1.5).
    svc::activate(&t, &policy, &secrets, &act, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = t.person(&b[..13])?.unwrap();
    assert!(
        matches!(p.status, Status::Activated { .. }),
        "{:?}",
        p.status
    );
    let closed = svc::close(
        &t,
        &policy,
        &secrets,
        "alix.durand",
        "Durand-1990",
        true,
        UnixMillis(t0.0 + 700 * day),
    )?;
    assert!(matches!(closed, Status::Closed { .. }));
    let wrong = svc::close(
        &t,
        &policy,
        &secrets,
        "alix.durand",
        "Wrong-pass1",
        true,
        UnixMillis(t0.0 + 700 * day),
    )
    .unwrap_err();
    assert!(wrong.to_string().contains("wrong identifier or password"));
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 791 * day), |_| {})?;
    assert_eq!(r.deleted, 1);
    let e = svc::reopen(
        &t,
        &policy,
        &secrets,
        "alix.durand",
        "Durand-1990",
        UnixMillis(t0.0 + 792 * day),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("wrong identifier or password"),
        "the account went with the archive: {e}"
    );
    let s = svc::stats(&t)?;
    assert_eq!((s.auto_created, s.deleted), (1, 1));
    Ok(())
}

/// Emails over SMTP when configured (F1.2): a real SMTP server (aiosmtpd, from PyPI)
/// started on loopback, requiring STARTTLS and a password (issue 22 finding 10),
/// receives the campaign's messages; the letters still go to print files. Controls, each
/// leaving every message in the outbox: no server listening; a server whose certificate
/// the relay does not trust; a wrong password; plain text to a server that requires TLS.
#[test]
fn the_campaign_sends_emails_through_a_real_smtp_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    let p = people();
    let file = dir.path().join("population.csv");
    std::fs::write(&file, population(&p))?;
    let (code, _, err) = run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The server's certificate, and another one the relay is not told about.
    let pem = |name: &str| -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert, c.cert.pem())?;
        std::fs::write(&key, c.key_pair.serialize_pem())?;
        Ok((cert, key))
    };
    let (cert, key) = pem("smtp")?;
    let (stranger_ca, _) = pem("other")?;
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "s3cret-hub\n")?;
    let wrong_password = dir.path().join("smtp-wrong");
    std::fs::write(&wrong_password, "guess")?;
    let config = |name: &str, extra: &str| -> anyhow::Result<String> {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("[outbox]\nsmtp = \"127.0.0.1:{port}\"\nsite = \"sante.exemple\"\n{extra}"),
        )?;
        Ok(path.to_string_lossy().into_owned())
    };
    let with = |ca: &std::path::Path, pw: &std::path::Path| {
        format!(
            "smtp_ca = {:?}\nsmtp_user = \"hub\"\nsmtp_password_file = {:?}\n",
            ca.to_str().unwrap(),
            pw.to_str().unwrap()
        )
    };
    let good = config("good", &with(&cert, &password))?;
    let untrusted = config("untrusted", &with(&stranger_ca, &password))?;
    let wrong = config("wrong", &with(&cert, &wrong_password))?;
    let plain = config("plain", "smtp_tls = \"none\"\n")?;
    let waiting = |data: &std::path::Path| -> anyhow::Result<serde_json::Value> {
        let (_, out, _) = run_relay_on(data, &["stats", "--data", data.to_str().unwrap()])?;
        Ok(json(&out)["outbox"].clone())
    };
    // Control first: no server listening, nothing delivered, nothing lost.
    let (code, _, err) = run_relay_on(
        &data,
        &["campaign", "run", "--data", data_s, "--config", &good],
    )?;
    assert_ne!(code, 0);
    assert!(err.contains("SMTP delivery"), "{err}");
    assert_eq!(waiting(&data)?, 4, "every message still waits");

    let inbox = dir.path().join("smtp-inbox");
    let mut server = Command::new(mes_tests::python()?)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/smtp_server.py"))
        .args(["127.0.0.1", &port.to_string()])
        .args([&cert, &key, &inbox])
        .args(["hub", "s3cret-hub"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "ready", "the SMTP server said {line:?}");
    }
    let deliver =
        |config: &str| run_relay_on(&data, &["deliver", "--data", data_s, "--config", config]);
    let controls = [
        (&untrusted, "a certificate the relay does not trust"),
        (&wrong, "a wrong password"),
        (&plain, "plain text to a server that requires STARTTLS"),
    ]
    .map(|(config, what)| (deliver(config), what));
    let result = deliver(&good);
    drop(server.stdin.take());
    let _ = server.wait();
    for (outcome, what) in controls {
        let (code, _, err) = outcome?;
        assert_ne!(code, 0, "control ({what}) delivered");
        assert!(err.contains("SMTP delivery"), "{what}: {err}");
    }
    let (code, out, err) = result?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["emails"], 3);
    assert_eq!(json(&out)["letters"], 1);
    let received = files(&inbox.join("new"));
    assert_eq!(received.len(), 3, "{received:?}");
    let to_louis =
        mes_tests::files_containing(&inbox.join("new"), b"Code provisoire pour Lola Payet : ");
    assert_eq!(to_louis.len(), 1);
    let mail = std::fs::read_to_string(&to_louis[0])?;
    assert!(
        mail.contains("louis.payet@exemple.re") && mail.contains("sante.exemple"),
        "{mail}"
    );
    assert_eq!(waiting(&data)?, 0);
    Ok(())
}

/// Requests racing on one person lose nothing: of twelve wrong codes sent at once, five
/// are counted and lock the NIR and the rest find it locked (the record is read again
/// when someone wrote it in between), and of two people racing for one identifier
/// exactly one gets it. On the suite's backend.
#[test]
fn concurrent_requests_lose_no_update_and_share_no_identifier() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 5)?;
    let people: Vec<String> = (1..=3)
        .map(|i| Nir::with_key(&format!("29001750010{i:02}")))
        .collect();
    let rows: Vec<_> = people.iter().map(|n| insured(n, true)).collect();
    svc::import(&t, &rows, |_| {}).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let t0 = UnixMillis(1_780_000_000_000);
    svc::campaign(
        &t,
        &policy,
        &secrets,
        &svc::CampaignRun::default(),
        || t0,
        |_| {},
    )?;
    let now = UnixMillis(t0.0 + 60_000);
    let wrong = "ZZZZZZZZZZZZ";
    let results: Vec<Result<(), svc::Refusal>> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    // Reminders honour the NIR's lock (opposition never waits for it).
                    svc::set_reminders(
                        &t,
                        &policy,
                        &secrets,
                        &holder(&people[0], "VIT1"),
                        wrong,
                        true,
                        now,
                    )
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    // Each wrong code is counted until the fifth locks the NIR; the others find it
    // locked. Lost updates would count fewer and never lock.
    let counted = results
        .iter()
        .filter(|r| matches!(r, Err(svc::Refusal::WrongCode { .. })))
        .count();
    let locked = results
        .iter()
        .filter(|r| matches!(r, Err(svc::Refusal::Locked(_))))
        .count();
    assert_eq!((counted, locked), (5, 7), "{results:?}");
    let p = t.person(&people[0][..13])?.unwrap();
    assert_eq!(p.failures, svc::MAX_FAILURES, "every failure counted");
    assert!(p.locked_until.is_some());

    let code = |i: usize| {
        mes_relay::enrolment::provisional_code::derive(&secrets.code_key, &people[i][..13], 1)
    };
    let results: Vec<Result<Status, svc::Refusal>> = std::thread::scope(|s| {
        let racers: Vec<_> = [1, 2]
            .into_iter()
            .map(|i| {
                let (t, policy, secrets, people, code) = (&t, &policy, &secrets, &people, &code);
                s.spawn(move || {
                    svc::activate(
                        t,
                        policy,
                        secrets,
                        &svc::Activation {
                            code: code(i),
                            nir: people[i].clone(),
                            vitale_serial: "VIT1".into(),
                            identifier: "le.meme.identifiant".into(),
                            password: "Sante-2026!".into(),
                            email: String::new(),
                            space: mes_protocol::ids::SpaceId([i as u8; 16]),
                        },
                        now,
                    )
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(svc::Refusal::IdentifierTaken(_)))));
    let holder = t.identifier("le.meme.identifiant")?.unwrap();
    let winner = t.person(&holder)?.unwrap();
    assert!(matches!(winner.status, Status::Activated { .. }));
    Ok(())
}

/// Delivery in overlapping batches (one named while the next is written), some ending
/// inside an outbox chunk, with a limit that stops mid-chunk: every message is delivered
/// exactly once, and the outbox ends empty.
#[test]
fn overlapping_delivery_batches_deliver_every_message_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 6)?;
    let rows: Vec<_> = (0..300)
        .map(|i| insured(&Nir::with_key(&format!("290017500{i:04}")), i % 3 == 0))
        .collect();
    svc::import(&t, &rows, |_| {}).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    svc::campaign(
        &t,
        &policy,
        &secrets,
        &svc::CampaignRun::default(),
        || UnixMillis(1_780_000_000_000),
        |_| {},
    )?;
    assert_eq!(t.outbox_len(), 300);
    let templates = mes_relay::outbox::notification::Templates::load(None)?;
    let out = dir.path().join("outbox");
    let delivery = mes_relay::outbox::Delivery::under(&out);
    let first = mes_relay::outbox::deliver_in_batches(
        &t,
        &secrets.code_key,
        &templates,
        &delivery,
        55,
        17,
        |_| {},
    )?;
    assert_eq!(first.emails + first.letters, 55);
    assert_eq!(t.outbox_len(), 245);
    let rest = mes_relay::outbox::deliver_in_batches(
        &t,
        &secrets.code_key,
        &templates,
        &delivery,
        usize::MAX,
        23,
        |_| {},
    )?;
    assert_eq!(
        (first.emails + rest.emails, first.letters + rest.letters),
        (100, 200)
    );
    assert_eq!(t.outbox_len(), 0);
    // Each person's code, once, in an email or a letter.
    let mut texts: Vec<String> = files(&out.join("maildir/new"))
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<_, _>>()?;
    for f in files(&out.join("letters")) {
        texts.extend(
            std::fs::read_to_string(f)?
                .split('\x0c')
                .filter(|l| l.contains("Code provisoire"))
                .map(String::from),
        );
    }
    assert_eq!(texts.len(), 300);
    for r in &rows {
        let code =
            mes_relay::enrolment::provisional_code::derive(&secrets.code_key, r.nir.as_str(), 1);
        let n = texts.iter().filter(|x| x.contains(&code)).count();
        assert_eq!(n, 1, "{} delivered {n} times", r.nir.as_str());
    }
    assert!(
        files(&out.join("maildir/tmp")).is_empty(),
        "nothing left in tmp/"
    );
    Ok(())
}

/// F1.5: the deadline creates Camille's space with no device to hold its keys. A
/// laboratory holds her results for her: the hub learns only that it holds something
/// (the result's text is in no file of the hub, and only sealed on the lab's device),
/// refuses a bad or unknown NIR and an unlisted sender, and nothing is delivered before
/// she activates. Once she does, her device lets the lab feed the inbox (and read
/// nothing); the lab's device delivers by itself, the hold is released, and her daemon
/// files the document and the thread, which she reads back. Once she has activated, a
/// new hold lets no one in: her consent is the way in (the hold is answered alike, so a
/// professional learns nothing of her status, issue 22 finding 7).
#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_professional_feeds_an_auto_created_space_once_the_person_activates() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    let p = people();
    let file = dir.path().join("population.csv");
    std::fs::write(&file, population(&p))?;
    import_and_notify(&data, &file)?;
    let camille = code_for(&data.join("outbox"), "Camille Martin").expect("Camille's code");
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(43 * 24))?
        .to_string();
    let (code, out, err) = run_relay_on(&data, &["sweep", "--data", data_s, "--now", &later])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["auto_created"], 4);

    let r = relay(dir.path(), None, false).await?;
    let hub = r.relay.enrolment.get().unwrap().clone();
    let t = target(&r);
    let lab = device(dir.path(), "lab", &t).await?;
    let stranger = device(dir.path(), "stranger", &t).await?;
    online(&lab.daemon).await?;
    online(&stranger.daemon).await?;
    let lab_id = lab.daemon.identity().principal.principal_id();
    r.relay
        .import_directory(vec![mes_tests::listed(
            lab_id,
            41,
            "Laboratoire Biolyon",
            "86",
        )])
        .await?;

    const CANARY: &str = "CANARY-HELD-3b9d Hémoglobine 13,2 g/dL";
    let result = dir.path().join("nfs.txt");
    std::fs::write(&result, CANARY)?;
    let nfs = mes_protocol::record::documents::NewDocument {
        path: result.to_string_lossy().into_owned(),
        category: "biology".into(),
        title: "NFS de Camille".into(),
        date: "2026-12-01".into(),
        ..Default::default()
    };
    // Refused, each by name, and nothing is held. An unknown NIR is not refused: a hold
    // answers alike whatever the person's status (issue 22, finding 7), below.
    let unknown = Nir::with_key("1991275123456");
    let bad_key = format!("{}00", &p.adult[..13]);
    for (who, nir, why) in [
        (&lab, bad_key.as_str(), "NIR"),
        (&stranger, p.adult.as_str(), "only a professional listed"),
    ] {
        let e = who.daemon.hold_document(nir, &nfs).await.unwrap_err();
        assert!(e.message.contains(why), "{why:?} not in {:?}", e.message);
    }
    let e = lab
        .daemon
        .hold_message(&p.adult, "", "sans sujet")
        .await
        .unwrap_err();
    assert!(e.message.contains("subject"), "{}", e.message);
    assert!(lab.daemon.held().is_empty() && stranger.daemon.held().is_empty());

    let held = lab.daemon.hold_document(&p.adult, &nfs).await?;
    assert_eq!(
        held.space, None,
        "auto-created: no space anyone can feed yet"
    );
    // The same through `mes`, as a professional's script would.
    let (code, out, err) = mes_tests::run_mes(
        &lab.ready.socket,
        &[
            "pro",
            "hold-message",
            &p.adult,
            "--subject",
            "Vos résultats",
            "Votre NFS est disponible.",
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Retenu pour le NIR"), "{out}");
    let (code, out, err) = mes_tests::run_mes(&lab.ready.socket, &["pro", "held"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("NFS de Camille") && out.contains("Vos résultats"),
        "{out}"
    );
    assert_eq!(lab.daemon.held().len(), 2, "{:?}", lab.daemon.held());
    assert!(
        lab.daemon.deliver_held().await?.is_empty(),
        "not before she activates"
    );
    assert_eq!(lab.daemon.held().len(), 2);
    // The hub holds who, never what: the text is in none of its files, nor in clear on
    // the lab's disk (control: the same scan finds it in the source file).
    for part in ["relay", "lab"] {
        let leaks = mes_tests::files_containing(&dir.path().join(part), b"CANARY-HELD-3b9d");
        assert!(leaks.is_empty(), "found in {leaks:?}");
    }
    assert_eq!(
        mes_tests::files_containing(dir.path(), b"CANARY-HELD-3b9d"),
        vec![result.clone()],
        "control: the scan finds the source file"
    );

    // Camille activates the space created for her, from her first device.
    let cam = device(dir.path(), "camille", &t).await?;
    online(&cam.daemon).await?;
    let space = home(&cam.daemon).await?;
    let s = cam
        .daemon
        .enrol(Some(space), camille_activates(&p, camille, space))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(s.status, "activated");
    let m = cam.daemon.membership_of(space)?;
    let inbox = mes_tests::volume(&cam.daemon, space, "inbox").expect("inbox");
    assert_eq!(
        m.role(lab_id, Some(inbox)),
        Some(mes_protocol::access::membership::Role::Append)
    );
    assert!(
        m.volumes
            .values()
            .all(|d| d.body.volume == inbox || m.role(lab_id, Some(d.body.volume)).is_none()),
        "the lab may feed, and read nothing"
    );

    // The lab's device hears of the grant and delivers by itself (on the push; else
    // within a minute).
    mes_tests::until(
        &lab.daemon,
        std::time::Duration::from_secs(90),
        "the lab delivers what it held, and the hold is released",
        |d| {
            d.held().is_empty()
                && mes_relay::enrolment::holds::holders(&hub.tables, &p.adult)
                    .is_ok_and(|(who, _)| who.is_empty())
        },
    )
    .await?;
    mes_tests::until(
        &cam.daemon,
        std::time::Duration::from_secs(60),
        "filed",
        |d| {
            d.doc_search(space, &Default::default())
                .is_ok_and(|(_, docs)| docs.iter().any(|x| x.title == "NFS de Camille"))
                && d.messages_view(space)
                    .is_ok_and(|(m, _)| m.threads.iter().any(|t| t.subject == "Vos résultats"))
        },
    )
    .await?;
    let doc = cam
        .daemon
        .doc_search(space, &Default::default())?
        .1
        .into_iter()
        .find(|x| x.title == "NFS de Camille")
        .unwrap();
    assert!(
        doc.source.name.contains("Laboratoire Biolyon"),
        "{:?}",
        doc.source
    );
    let back = dir.path().join("nfs-back.txt");
    cam.daemon.doc_get(space, &doc.id, &back).await?;
    assert_eq!(std::fs::read_to_string(&back)?, CANARY);
    // Nothing is delivered twice; from now on her consent is the way in: a new hold is
    // answered alike (no status oracle) and never delivered, nor is the unknown NIR's.
    assert!(lab.daemon.deliver_held().await?.is_empty());
    lab.daemon.hold_document(&p.adult, &nfs).await?;
    let for_nobody = lab.daemon.hold_document(unknown.as_str(), &nfs).await?;
    assert_eq!(for_nobody.space, None, "an unknown NIR is answered alike");
    assert!(lab.daemon.deliver_held().await?.is_empty());
    assert_eq!(lab.daemon.held().len(), 2, "both stay on the lab's device");
    drop(hub);
    cam.shutdown().await;
    lab.shutdown().await;
    stranger.shutdown().await;
    r.shutdown().await;
    Ok(())
}

/// Issue 22, finding 4, tried as the attacker: thirty wrong passwords in a row against a
/// known identifier lock the account after five (durably, in the enrolment tables), and
/// the thirty-first, right one is refused until the pause ends, so the space stays open;
/// an unknown identifier gets the same refusal after the same Argon2 work; a locked NIR
/// still opposes; new codes are one per quarter hour. Control: before the lock, four
/// wrong guesses do not stop the right password.
#[test]
fn guessing_the_hub_password_locks_the_account_and_never_the_opposition() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 5)?;
    let (a, b) = (
        Nir::with_key("2900175001011"),
        Nir::with_key("2900175001012"),
    );
    let t0 = UnixMillis(1_780_000_000_000);
    let minute = 60_000;
    notify_at(
        &t,
        &policy,
        &secrets,
        &[insured(&a, true), insured(&b, true)],
        t0,
    )?;
    let code_of = |nir: &str| {
        t.outbox_messages(100)
            .unwrap()
            .into_iter()
            .filter(|m| m.about == nir[..13])
            .find_map(|m| m.code(&secrets.code_key))
            .unwrap()
    };
    let act = svc::Activation {
        code: code_of(&a),
        nir: a.clone(),
        vitale_serial: "VIT1".into(),
        identifier: "alix.durand".into(),
        password: "Durand-1990".into(),
        email: String::new(),
        space: mes_protocol::ids::SpaceId([7; 16]),
    };
    svc::activate(&t, &policy, &secrets, &act, t0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reopen = |password: &str, at: UnixMillis| {
        svc::reopen(&t, &policy, &secrets, "alix.durand", password, at)
    };
    let is_state = |r: Result<Status, svc::Refusal>| matches!(r, Err(svc::Refusal::State(_)));

    // Control: four wrong guesses, then the right password passes (an open space cannot
    // be reopened: the refusal is about the state, past the password) and resets the count.
    for _ in 0..4 {
        assert_eq!(reopen("Wrong-pass1", t0), Err(svc::Refusal::WrongPassword));
    }
    assert!(
        is_state(reopen("Durand-1990", t0)),
        "control: the right password passes"
    );
    assert_eq!(t.person(&a[..13])?.unwrap().failures, 0);

    // The attack: thirty wrong guesses, then the right one.
    let mut refusals = Vec::new();
    for _ in 0..30 {
        refusals.push(reopen("Wrong-pass1", t0).unwrap_err());
    }
    assert!(refusals[..5]
        .iter()
        .all(|r| *r == svc::Refusal::WrongPassword));
    assert!(
        refusals[5..]
            .iter()
            .all(|r| matches!(r, svc::Refusal::Locked(_))),
        "{refusals:?}"
    );
    let closing = svc::close(
        &t,
        &policy,
        &secrets,
        "alix.durand",
        "Durand-1990",
        true,
        t0,
    );
    assert!(
        matches!(closing, Err(svc::Refusal::Locked(_))),
        "{closing:?}"
    );
    let stored = t.person(&a[..13])?.unwrap();
    assert!(
        matches!(stored.status, Status::Activated { .. }),
        "one guess never closes the space: {:?}",
        stored.status
    );
    assert!(stored.locked_until.is_some_and(|u| u > t0));
    // The pause ends: the right password works again.
    assert!(is_state(reopen(
        "Durand-1990",
        UnixMillis(t0.0 + 16 * minute)
    )));

    // An unknown identifier: the same words, and one password check all the same.
    let before = svc::password_checks();
    let unknown = svc::reopen(&t, &policy, &secrets, "nobody.here", "Wrong-pass1", t0);
    assert_eq!(unknown, Err(svc::Refusal::WrongPassword));
    assert_eq!(
        svc::password_checks(),
        before + 1,
        "a decoy hash was checked"
    );
    let known = reopen("Wrong-pass2", UnixMillis(t0.0 + 16 * minute));
    assert_eq!(known, Err(svc::Refusal::WrongPassword));
    assert_eq!(svc::password_checks(), before + 2);

    // B's NIR is locked by five wrong codes (a stranger who knows NIR and serial)...
    let reminders = |code: &str| {
        svc::set_reminders(
            &t,
            &policy,
            &secrets,
            &holder(&b, "VIT1"),
            code,
            true,
            UnixMillis(t0.0 + minute),
        )
    };
    for _ in 0..5 {
        assert!(matches!(
            reminders("AAAAAAAAAAAA"),
            Err(svc::Refusal::WrongCode { .. })
        ));
    }
    // ...control: the lock is in force for what it guards...
    assert!(matches!(
        reminders(&code_of(&b)),
        Err(svc::Refusal::Locked(_))
    ));
    // ...and yet B opposes with the code B received.
    let opposed = svc::oppose(
        &t,
        &policy,
        &secrets,
        &code_of(&b),
        &b,
        "VIT1",
        UnixMillis(t0.0 + 2 * minute),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(matches!(opposed, Status::Opposed { .. }));

    // New codes: the campaign's may be replaced at once, then one per quarter hour per
    // person, whoever asks.
    let regenerate = |at: UnixMillis| svc::regenerate(&t, &policy, &secrets, &b, "VIT1", at);
    let sent = t.outbox_len();
    regenerate(UnixMillis(t0.0 + 3 * minute)).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(t.outbox_len(), sent + 1);
    let soon = regenerate(UnixMillis(t0.0 + 4 * minute)).unwrap_err();
    assert!(matches!(soon, svc::Refusal::TooSoon(..)), "{soon}");
    assert_eq!(t.outbox_len(), sent + 1, "a refused request sends nothing");
    regenerate(UnixMillis(t0.0 + 19 * minute)).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(t.outbox_len(), sent + 2);
    let again = regenerate(UnixMillis(t0.0 + 20 * minute)).unwrap_err();
    assert!(matches!(again, svc::Refusal::TooSoon(..)), "{again}");
    Ok(())
}

/// Issue 22, finding 4: the guesser is counted by device and by address, so fresh device
/// identities from one address are stopped too, and the map of guessers stays bounded.
#[test]
fn a_guesser_behind_fresh_identities_is_stopped_by_its_address() -> anyhow::Result<()> {
    use svc::Guesser;
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 6)?;
    let hub = svc::EnrolmentHub::new(t, policy, secrets);
    let now = UnixMillis(1_780_000_000_000);
    let address: std::net::IpAddr = "192.0.2.7".parse()?;
    let fresh = |n: u8| Guesser::Device(mes_protocol::ids::DeviceId([n; 32]));
    for n in 0..svc::SOURCE_FAILURES_PER_HOUR {
        let who = [fresh(n as u8), Guesser::Source(address)];
        hub.admit(&who, now)
            .map_err(|e| anyhow::anyhow!("guess {n}: {e}"))?;
        hub.failed(&who, now);
    }
    let next = [fresh(250), Guesser::Source(address)];
    assert!(matches!(
        hub.admit(&next, now),
        Err(svc::Refusal::Locked(_))
    ));
    // Control: the same fresh device from another address is admitted.
    let elsewhere = [fresh(250), Guesser::Source("192.0.2.8".parse()?)];
    assert!(hub.admit(&elsewhere, now).is_ok());
    // An hour later the address may try again.
    assert!(hub.admit(&next, UnixMillis(now.0 + 3_600_000)).is_ok());
    Ok(())
}

/// Issue 27, item 2 (F1.1): a population file as a French spreadsheet exports it (UTF-8
/// with a byte-order mark, CRLF, `;`) imports its good rows with `--rejects`, and every
/// bad row lands in the rejects file with its line and reason, the minor whose parent's
/// row is bad with it. Controls: the same file without `--rejects` imports nothing, and a
/// Latin-1 export is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_export_imports_its_good_rows_and_names_the_rest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    let p = people();
    // The parent's email is broken, so the parent and the child are not imported.
    let csv = population(&p)
        .replace("louis.payet@exemple.re", "louis.payet")
        .replace(
            "\"3 cours Napoléon, 20000 Ajaccio\"",
            "\"3 cours Napoléon; 20000 Ajaccio\"",
        )
        .replace(',', ";")
        .replace('\n', "\r\n");
    let file = dir.path().join("export.csv");
    std::fs::write(&file, [b"\xEF\xBB\xBF".as_slice(), csv.as_bytes()].concat())?;
    let import = |extra: &[&str]| {
        let mut args = vec!["import-population", "--data", data_s, "--delimiter", ";"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        run_relay_on(&data, &args)
    };
    // Control: checked whole, nothing is imported.
    let (code, _, err) = import(&[])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("export.csv:4: ") && err.contains("email"),
        "{err}"
    );
    // Imports with a rejects file named `name`: (imported, rejected) and the file's lines.
    let with_rejects = |name: &str| -> anyhow::Result<((u64, u64), Vec<String>)> {
        let path = dir.path().join(name);
        let (code, out, err) = import(&["--rejects", path.to_str().unwrap()])?;
        anyhow::ensure!(code == 0, "{err}");
        let report = json(&out);
        let counts = (
            report["imported"].as_u64().unwrap_or(u64::MAX),
            report["rejected"].as_u64().unwrap_or(u64::MAX),
        );
        let lines = std::fs::read_to_string(&path)?
            .lines()
            .map(str::to_owned)
            .collect();
        Ok((counts, lines))
    };
    let (counts, lines) = with_rejects("rejects.csv")?;
    assert_eq!(counts, (2, 2), "{lines:?}");
    assert_eq!(lines[0], "line,reason");
    assert!(
        lines[1].starts_with("4,") && lines[1].contains("email"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("5,") && lines[2].contains("line 4"),
        "{lines:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.path().join("rejects.csv"))?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The operator corrects the email and imports the same file again: checked whole, the
    // two people already on file refuse it (control); with a rejects file, they are
    // rejected rows by line and the parent and the child come in.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)?.replace("louis.payet;", "louis.payet@exemple.re;"),
    )?;
    let (code, _, err) = import(&[])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already on file"), "{err}");
    let (counts, lines) = with_rejects("rejects-again.csv")?;
    assert_eq!(counts, (2, 2), "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, at) in lines[1..].iter().zip(["2,", "3,"]) {
        assert!(
            line.starts_with(at) && line.contains("already on file"),
            "{lines:?}"
        );
    }
    // A third time, everyone is on file: nothing comes in, four rows are named.
    let (counts, _) = with_rejects("rejects-third.csv")?;
    assert_eq!(counts, (0, 4));
    // Control: a Latin-1 export is named, not imported as mangled names.
    let latin1 = dir.path().join("latin1.csv");
    let text = population(&p);
    let (before, after) = text.split_once("Napoléon").expect("the Corsican address");
    std::fs::write(
        &latin1,
        [before.as_bytes(), b"Napol\xE9on", after.as_bytes()].concat(),
    )?;
    let (code, _, err) = run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            latin1.to_str().unwrap(),
        ],
    )?;
    assert_ne!(code, 0);
    assert!(err.contains("not UTF-8") && err.contains("0xE9"), "{err}");
    Ok(())
}

/// Support staff and prisons pass on a person's decision (F1.4, F1.6, seed 001: "le
/// recueil des oppositions sera réalisé par l'établissement"). `mes-relay on-behalf`
/// records who and under which reference; the person is told by letter or email, sees it
/// in their status, and undoes it: an opposition by activating with the code the letter
/// carries, a closure by reopening with their account. Every refusal changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_prison_records_an_opposition_and_a_guardian_a_closure_which_the_person_sees_and_undoes(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data_s = data.to_str().unwrap();
    let p = people();
    let file = dir.path().join("population.csv");
    std::fs::write(&file, population(&p))?;
    let ok = |(code, out, err): (i32, String, String)| -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(code == 0, "{err}");
        Ok(json(&out))
    };
    ok(run_relay_on(
        &data,
        &[
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
    )?)?;
    // Camille (Rhône) gets her letter; Maria (Corse-du-Sud) is not notified yet.
    ok(run_relay_on(
        &data,
        &["campaign", "run", "--data", data_s, "--departements", "69"],
    )?)?;
    let behalf = |action: &str, nir: &str, by: &str| {
        run_relay_on(
            &data,
            &[
                "on-behalf",
                action,
                "--data",
                data_s,
                "--nir",
                nir,
                "--reference",
                "GREFFE-2026-0042",
                "--by",
                by,
            ],
        )
    };
    let stats = || ok(run_relay_on(&data, &["stats", "--data", data_s])?);
    let before = stats()?;
    // Refused, with the reason, and nothing changes.
    let unknown = Nir::with_key("1800569999999");
    for (action, nir, by, why) in [
        ("oppose", p.corsica.as_str(), " ", "--by is empty"),
        ("oppose", p.corsica.as_str(), "a\u{7}b", "control character"),
        ("close", p.corsica.as_str(), "Greffe", "on-behalf oppose"),
        ("oppose", unknown.as_str(), "Greffe", "do not match anyone"),
        ("oppose", "12345", "Greffe", "NIR"),
    ] {
        let (code, _, err) = behalf(action, nir, by)?;
        assert_eq!(code, 2, "{action} {nir} {by:?}: {err}");
        assert!(
            err.contains(why) && err.contains("nothing recorded"),
            "{why:?} not in {err}"
        );
    }
    assert_eq!(stats()?, before, "refusals change nothing");

    // The prison's registry passes on Maria's opposition before any letter reached her.
    let out = ok(behalf(
        "oppose",
        &p.corsica,
        "Centre pénitentiaire de Borgo, greffe",
    )?)?;
    assert_eq!(out["status"], "opposed", "{out}");
    ok(run_relay_on(&data, &["deliver", "--data", data_s])?)?;
    let outbox = data.join("outbox");
    let letters = files(&outbox.join("letters/2A"));
    assert_eq!(letters.len(), 1, "Maria is told by letter");
    let letter = std::fs::read_to_string(&letters[0])?;
    assert!(
        letter.contains("Une opposition") && letter.contains("An opposition"),
        "{letter}"
    );
    let maria = code_for(&outbox, "Maria Santoni").expect("the letter carries a code");
    // The campaign does not write to her again: she decided.
    let run = ok(run_relay_on(&data, &["campaign", "run", "--data", data_s])?)?;
    assert_eq!(run["notified"], 2, "{run}");
    let camille = code_for(&outbox, "Camille Martin").expect("Camille's code");

    let r = relay(dir.path(), None, false).await?;
    let addr = r.ready.address;
    let t = target(&r);
    let (cam, space) = mes_tests::online_home(dir.path(), "camille", &t).await?;
    let enrol = |request: EnrolRequest| {
        let d = cam.daemon.clone();
        async move {
            d.enrol(Some(space), request)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))
        }
    };
    // Maria sees who passed it on, and under which reference.
    let s = enrol(EnrolRequest::Status {
        holder: holder(&p.corsica, "VIT0002"),
    })
    .await?;
    assert_eq!(s.status, "opposed");
    assert!(
        s.detail.contains("Centre pénitentiaire de Borgo, greffe")
            && s.detail.contains("GREFFE-2026-0042")
            && s.detail.contains("on your behalf"),
        "{}",
        s.detail
    );
    let activated = enrol(camille_activates(&p, camille, space)).await?;
    assert_eq!(activated.status, "activated");
    r.shutdown().await;

    // Camille's guardian's service closes her space; an opposition is refused for her.
    let (code, _, err) = behalf("oppose", &p.adult, "UDAF du Rhône")?;
    assert_eq!(code, 2);
    assert!(err.contains("close it instead"), "{err}");
    let out = ok(behalf(
        "close",
        &p.adult,
        "UDAF du Rhône, service mandataire",
    )?)?;
    assert_eq!(out["status"], "closed", "{out}");
    ok(run_relay_on(&data, &["deliver", "--data", data_s])?)?;
    let told = mes_tests::files_containing(&outbox.join("maildir/new"), b"The closure of");
    assert_eq!(told.len(), 1, "Camille is told by email");

    let r = relay(dir.path(), Some(addr), false).await?;
    online(&cam.daemon).await?;
    let s = enrol(EnrolRequest::Status {
        holder: holder(&p.adult, "VIT0001"),
    })
    .await?;
    assert_eq!(s.status, "closed");
    assert!(
        s.detail.contains("UDAF du Rhône, service mandataire")
            && s.detail.contains("Clôture enregistrée pour vous"),
        "{}",
        s.detail
    );
    // Closed at the hub too: nobody reads the archive while it waits.
    assert!(
        r.relay.is_closed(space),
        "the space is closed at the hub while archived"
    );
    // Each undoes it: Camille reopens with her account, Maria activates her own space
    // with the code her letter carried.
    let reopened = enrol(EnrolRequest::Reopen {
        identifier: "camille80".into(),
        password: "Sant3!santé".into(),
    })
    .await?;
    assert_eq!(reopened.status, "activated");
    assert!(
        !reopened.detail.contains("pour vous"),
        "{}",
        reopened.detail
    );
    assert!(!r.relay.is_closed(space));
    let (mar, maria_space) = mes_tests::online_home(dir.path(), "maria", &target(&r)).await?;
    let s = mar
        .daemon
        .enrol(
            Some(maria_space),
            EnrolRequest::Activate {
                holder: holder(&p.corsica, "VIT0002"),
                code: maria,
                identifier: "maria1975".into(),
                password: "Sant3!santé".into(),
                email: "maria.santoni@exemple.fr".into(),
                space: maria_space,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    assert_eq!(s.status, "activated");
    assert!(!s.detail.contains("pour vous"), "{}", s.detail);
    Ok(())
}

/// Letters that come back (NPAI, F1.2, seed 001): the deadline they started is withdrawn
/// because nobody was told, so the sweep creates no space for them (control: the same
/// sweep creates the space of someone whose letter did not come back); with an email
/// known the person is notified by email instead, the deadline from then; the
/// undeliverable are counted apart; `mes-relay mail returned FILE` records a file of
/// returns and names the rows it cannot record.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
fn a_returned_letter_stops_the_clock_until_someone_is_told() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (t, policy, secrets) = tables(dir.path(), 5)?;
    let (moved, stays) = (
        Nir::with_key("2900175001003"),
        Nir::with_key("2900175001004"),
    );
    // A child whose first parent has only a postal address, her second an email.
    let (dad, mum, kid) = (
        Nir::with_key("1700175001005"),
        Nir::with_key("2700175001006"),
        Nir::with_key("2150175001007"),
    );
    let mut child = insured(&kid, false);
    child.birth_date = "2015-01-01".parse()?;
    child.postal_address = None;
    child.representatives = vec![Nir::parse(&dad)?, Nir::parse(&mum)?];
    let t0 = UnixMillis(1_780_000_000_000);
    let day = 86_400_000;
    notify_at(
        &t,
        &policy,
        &secrets,
        &[
            insured(&moved, false),
            insured(&stays, false),
            insured(&dad, false),
            insured(&mum, true),
            child,
        ],
        t0,
    )?;
    let returned = svc::letter_returned(&t, &policy, &secrets, &moved, UnixMillis(t0.0 + 9 * day))?;
    assert_eq!(returned, svc::Returned::Undeliverable);
    // Twice is refused, and changes nothing.
    let again = svc::letter_returned(&t, &policy, &secrets, &moved, UnixMillis(t0.0 + 10 * day))
        .unwrap_err();
    assert!(again.to_string().contains("undeliverable"), "{again}");
    // The child's letter went to her father and came back: her mother is emailed, and
    // the deadline runs from the return.
    let returned = svc::letter_returned(&t, &policy, &secrets, &kid, UnixMillis(t0.0 + 30 * day))?;
    assert_eq!(returned, svc::Returned::Emailed);
    let to_mum = t
        .outbox_messages(100)?
        .into_iter()
        .rfind(|m| m.about == kid[..13])
        .expect("a new notification");
    assert_eq!(to_mum.email.as_deref(), Some("alix@exemple.fr"));
    assert!(to_mum.postal_address.is_none() && to_mum.code_issue.is_some());
    let Status::Notified { deadline, .. } = t.person(&kid[..13])?.unwrap().status else {
        panic!("notified again")
    };
    assert!(deadline.0 > t0.0 + 60 * day, "six weeks from the return");
    let s = svc::stats(&t)?;
    assert_eq!(
        (s.undeliverable, s.awaiting_decision, s.notified),
        (1, 4, 4),
        "{s:?}"
    );
    let r = svc::sweep(&t, &policy, UnixMillis(t0.0 + 60 * day), |_| {})?;
    assert_eq!(r.auto_created, 3, "the three told by their first letter");
    assert!(matches!(
        t.person(&kid[..13])?.unwrap().status,
        Status::Notified { .. }
    ));
    assert!(matches!(
        t.person(&moved[..13])?.unwrap().status,
        Status::Undeliverable { .. }
    ));
    assert!(matches!(
        t.person(&stays[..13])?.unwrap().status,
        Status::AutoCreated { .. }
    ));
    // The code in the returned envelope opens nothing.
    let key = secrets.code_key;
    let code = t
        .outbox_messages(10)?
        .into_iter()
        .filter(|m| m.about == moved[..13])
        .find_map(|m| m.code(&key))
        .expect("the letter's code");
    let e = svc::oppose(
        &t,
        &policy,
        &secrets,
        &code,
        &moved,
        "VIT1",
        UnixMillis(t0.0 + 61 * day),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not the one sent") || e.to_string().contains("no provisional code"),
        "{e}"
    );

    // Through the command line: an email is known for one, the other's letter was never
    // sent, a NIR is unknown.
    let data = dir.path().join("cli");
    let data_s = data.to_str().unwrap();
    let p = people();
    let file = dir.path().join("population.csv");
    std::fs::write(&file, population(&p))?;
    for args in [
        vec![
            "import-population",
            "--data",
            data_s,
            file.to_str().unwrap(),
        ],
        vec!["campaign", "run", "--data", data_s, "--departements", "2A"],
    ] {
        let (code, _, err) = run_relay_on(&data, &args)?;
        assert_eq!(code, 0, "{err}");
    }
    let returns = dir.path().join("npai.csv");
    std::fs::write(
        &returns,
        format!(
            "nir\n{}\n{}\n{}\n",
            p.corsica,
            p.adult,
            Nir::with_key("1800569999999")
        ),
    )?;
    let (code, out, err) = run_relay_on(
        &data,
        &[
            "mail",
            "returned",
            "--data",
            data_s,
            returns.to_str().unwrap(),
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(
        (
            report["emailed"].as_u64(),
            report["undeliverable"].as_u64(),
            report["refused"].as_u64()
        ),
        (Some(0), Some(1), Some(2)),
        "{out}"
    );
    assert!(
        err.contains("npai.csv:3: ") && err.contains("imported"),
        "Camille was never sent a letter: {err}"
    );
    assert!(
        err.contains("npai.csv:4: ") && err.contains("do not match anyone"),
        "{err}"
    );
    let (code, out, err) = run_relay_on(&data, &["stats", "--data", data_s])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["undeliverable"], 1, "{out}");
    Ok(())
}

/// A forgotten hub password (F12.4) is set again by the letter's path (a code sent to the
/// address on file, checked as at activation, single use) or by a device holding the
/// person's keys (restored from a recovery kit); never by the hub alone, and by nobody
/// else: another person's device, a wrong code, a replayed code and the old password
/// are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_forgotten_hub_password_is_reset_by_code_or_by_recovery_kit_only() -> anyhow::Result<()> {
    use mes_daemon::devices::recovery::{KitKey, KitLock};
    use zeroize::Zeroizing;
    let dir = tempfile::tempdir()?;
    let (data, p) = notified_hub(dir.path())?;
    let outbox = data.join("outbox");
    let camille = code_for(&outbox, "Camille Martin").expect("Camille's code");
    let maria_code = code_for(&outbox, "Maria Santoni").expect("Maria's code");
    let r = relay(dir.path(), None, false).await?;
    let hub = r.relay.enrolment.get().unwrap().clone();
    let t = target(&r);
    let (cam, space) = mes_tests::online_home(dir.path(), "camille", &t).await?;
    let ask = |d: std::sync::Arc<mes_daemon::daemon::Daemon>, space, request| async move {
        d.enrol(Some(space), request).await.map_err(|e| e.message)
    };
    let activated = ask(
        cam.daemon.clone(),
        space,
        camille_activates(&p, camille, space),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(activated.status, "activated");
    let close_reopen = |password: &'static str| {
        let d = cam.daemon.clone();
        async move {
            let closed = ask(
                d.clone(),
                space,
                EnrolRequest::Close {
                    identifier: "camille80".into(),
                    password: password.into(),
                    express: false,
                },
            )
            .await?;
            assert_eq!(closed.status, "closed");
            ask(
                d,
                space,
                EnrolRequest::Reopen {
                    identifier: "camille80".into(),
                    password: password.into(),
                },
            )
            .await
        }
    };

    // The letter's path: a code to the address on file (her email), then a new password.
    ask(
        cam.daemon.clone(),
        space,
        EnrolRequest::Regenerate {
            holder: holder(&p.adult, "VIT0001"),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let message = hub
        .tables
        .outbox_messages(100)?
        .into_iter()
        .rfind(|m| m.about == p.adult[..13])
        .expect("the new code's message");
    assert_eq!(message.email.as_deref(), Some("camille.martin@exemple.fr"));
    let code = message.code(&hub.secrets.code_key).expect("a code");
    let reset = |code: &str, password: &str| EnrolRequest::ResetPassword {
        holder: holder(&p.adult, "VIT0001"),
        code: code.into(),
        password: password.into(),
    };
    let e = ask(cam.daemon.clone(), space, reset(&maria_code, "Nouv3au!mot"))
        .await
        .unwrap_err();
    assert!(e.contains("not the one sent"), "{e}");
    let e = ask(cam.daemon.clone(), space, reset(&code, "court"))
        .await
        .unwrap_err();
    assert!(
        e.contains("8 characters") || e.contains("upper case"),
        "{e}"
    );
    let s = ask(cam.daemon.clone(), space, reset(&code, "Nouv3au!mot"))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(s.status, "activated");
    let e = ask(cam.daemon.clone(), space, reset(&code, "Encor3!autre"))
        .await
        .unwrap_err();
    assert!(e.contains("a code is used once"), "the code is spent: {e}");
    let e = close_reopen("Sant3!santé").await.unwrap_err();
    assert!(
        e.contains("wrong identifier or password"),
        "the old one: {e}"
    );
    assert_eq!(
        close_reopen("Nouv3au!mot")
            .await
            .map_err(|e| anyhow::anyhow!(e))?
            .status,
        "activated"
    );

    // Another person's device cannot set it, on Camille's space or on its own.
    let (mar, maria_space) = mes_tests::online_home(dir.path(), "maria", &t).await?;
    let as_owner = |space, password: &str| EnrolRequest::ResetPasswordAsOwner {
        identifier: "camille80".into(),
        password: password.into(),
        space,
    };
    let e = mar
        .daemon
        .enrol(Some(space), as_owner(space, "Pir4te!mot"))
        .await
        .unwrap_err()
        .message;
    assert!(e.contains("owns the space"), "{e}");
    let e = ask(
        mar.daemon.clone(),
        maria_space,
        as_owner(maria_space, "Pir4te!mot"),
    )
    .await
    .unwrap_err();
    assert!(e.contains("wrong identifier or password"), "{e}");

    // Every device of Camille's lost: her recovery kit restores her keys on a new one,
    // which sets the password.
    let kit = dir.path().join("kit.age");
    let passphrase = "cheval batterie agrafe correcte";
    cam.daemon
        .make_recovery_kit(&kit, KitLock::Passphrase(Zeroizing::new(passphrase.into())))
        .await?;
    mes_tests::until(
        &cam.daemon,
        std::time::Duration::from_secs(30),
        "uploaded",
        |d| d.state().volumes.values().all(|v| v.progress.idle()),
    )
    .await?;
    cam.shutdown().await;
    let restored = device(dir.path(), "restored", &t).await?;
    online(&restored.daemon).await?;
    restored
        .daemon
        .restore_from_kit(
            &std::fs::read(&kit)?,
            KitKey::Passphrase(Zeroizing::new(passphrase.into())),
        )
        .await?;
    mes_tests::until(
        &restored.daemon,
        std::time::Duration::from_secs(60),
        "the space back",
        |d| d.state().spaces.contains_key(&space) && d.link.online(),
    )
    .await?;
    let s = ask(
        restored.daemon.clone(),
        space,
        as_owner(space, "Apr3s!le-kit"),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(s.status, "activated");
    let d = restored.daemon.clone();
    let closed = ask(
        d.clone(),
        space,
        EnrolRequest::Close {
            identifier: "camille80".into(),
            password: "Apr3s!le-kit".into(),
            express: false,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        closed.status, "closed",
        "the new password opens the account"
    );
    Ok(())
}

/// Closing erases at the hub (F1.6, issue 27 item 3). Camille's space holds a document
/// (its metadata in a volume's log, its file as a blob). A normal closure schedules the
/// erasure at the archive's end, ten years on: the sweep 91 days later erases nothing.
/// She reopens, then asks for an express deletion: not before its delay, and at the
/// sweep after it the space's volumes, blobs, envelopes and membership leave every
/// backend (sled read tree by tree, `pg_dump`, the S3 objects), the enrolment keeps only
/// the fact of the deletion, and the closure record holds a hash of the id, never the
/// id. Control: the same scan before the erasure finds the space's id, its volumes' ids
/// and both ciphertexts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_closed_space_leaves_every_backend_when_its_day_comes() -> anyhow::Result<()> {
    use mes_protocol::ids::Seq;
    use mes_tests::backend_scan::{everything_stored, holds};
    let dir = tempfile::tempdir()?;
    let (data, p) = notified_hub(dir.path())?;
    let camille = code_for(&data.join("outbox"), "Camille Martin").expect("Camille's code");
    let r = relay(dir.path(), None, false).await?;
    let (cam, space) = mes_tests::online_home(dir.path(), "camille", &target(&r)).await?;
    let ask = |request| {
        let d = cam.daemon.clone();
        async move {
            d.enrol(Some(space), request)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))
        }
    };
    ask(camille_activates(&p, camille, space)).await?;
    let (_, blob, volume) =
        mes_tests::uploaded_document(&cam.daemon, space, dir.path(), "Bilan sanguin").await?;
    let store = r.relay.store();
    let mut logged = Vec::new();
    for _ in 0..300 {
        logged = store.read(volume, Seq(0), 1).await?.items;
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let bundle = logged
        .first()
        .expect("the volume's log at the hub")
        .1
        .clone();
    let chunk = store.get_blob_chunk(&blob.0, 0).await?.expect("the file").0;
    let membership: mes_protocol::access::membership::Membership =
        mes_protocol::wire::codec::from_bytes(
            &store
                .get_record(mes_relay::store::Table::Membership, &space.0)
                .await?
                .expect("membership"),
        )?;
    let volumes: Vec<_> = membership.volumes.keys().copied().collect();
    assert!(volumes.contains(&volume));
    let mid = |b: &[u8]| b[b.len() / 2 - 16..b.len() / 2 + 16].to_vec();
    let needles = [
        ("the space's id", space.0.to_vec()),
        ("the log's ciphertext", mid(&bundle)),
        ("the file's ciphertext", mid(&chunk)),
    ]
    .into_iter()
    .chain(volumes.iter().map(|v| ("a volume's id", v.0.to_vec())))
    .collect::<Vec<_>>();

    // A normal closure: archived for ten years, then erased.
    let close = |express| EnrolRequest::Close {
        identifier: "camille80".into(),
        password: "Sant3!santé".into(),
        express,
    };
    let reopen = EnrolRequest::Reopen {
        identifier: "camille80".into(),
        password: "Sant3!santé".into(),
    };
    let now = UnixMillis::now();
    let day = 86_400_000;
    let later = |days: u64| UnixMillis(now.0 + days * day);
    ask(close(false)).await?;
    assert_eq!(
        mes_relay::erase::due(&*store, later(91)).await?,
        Vec::new(),
        "archived, not erased, after the express delay"
    );
    assert_eq!(
        mes_relay::erase::due(&*store, later(3654)).await?,
        vec![space],
        "erased at the archive's end"
    );
    ask(reopen).await?;
    assert_eq!(
        mes_relay::erase::due(&*store, later(3654)).await?,
        Vec::new()
    );
    // The express deletion: within the policy's delay (90 days), by the sweep.
    ask(close(true)).await?;
    assert!(r.relay.erase_due(later(89)).await?.is_empty());

    // Control: stopped, every backend still holds the space.
    drop(store);
    r.shutdown().await;
    let before = everything_stored(&data).await?;
    for (what, needle) in &needles {
        assert!(holds(&before, needle), "control: {what} is stored");
    }

    let r = relay(dir.path(), None, false).await?;
    let hub = r.relay.enrolment.get().unwrap().clone();
    let erased = r.relay.erase_due(later(91)).await?;
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0].0, space);
    assert!(
        erased[0].1.volumes >= 1 && erased[0].1.blobs == 1,
        "{erased:?}"
    );
    let report = svc::sweep(&hub.tables, &hub.policy, later(91), |_| {})?;
    assert_eq!(report.deleted, 1);
    assert!(
        mes_relay::erase::was_erased(&*r.relay.store(), &space.0).await?,
        "the closure record stays"
    );
    assert!(r.relay.erase_due(later(92)).await?.is_empty(), "once");
    // Her old device replays the genesis: an erased id is never taken again.
    let (raw, _) = mes_tests::connect_as(&cam.daemon, &target(&r)).await?;
    let (code, why) = mes_tests::refusal(
        raw.request(mes_protocol::wire::Request::RegisterSpace {
            genesis: membership.genesis.clone(),
        })
        .await,
    );
    assert_eq!(code, mes_protocol::wire::ErrorCode::Conflict, "{why}");
    assert!(why.contains("erased"), "{why}");
    let person = hub
        .tables
        .person(&p.adult[..13])?
        .expect("the deletion's record");
    assert!(matches!(person.status, Status::Deleted { .. }));
    assert_eq!(person.account, None);
    drop(hub);
    r.shutdown().await;
    let after = everything_stored(&data).await?;
    for (what, needle) in &needles {
        assert!(
            !holds(&after, needle),
            "{what} is still stored after erasure"
        );
    }
    assert!(holds(&after, &mes_relay::erase::tombstone(&space.0)));
    Ok(())
}
