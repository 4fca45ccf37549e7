//! The real `mes` binary in a real terminal (tmux) against a relay and two paired devices
//! of one person (issue 5): the first-run tutorial, search as you type, hiding a
//! document, a change made on the other device appearing without a key press, adding a
//! file, saving one to a path, switching profile, changing the language (saved), and
//! quitting with the terminal restored. Also: no daemon gets a message saying how to
//! start one.

use mes_protocol::record::documents::NewDocument;
use mes_tests::tmux::Tmux;
use mes_tests::{binary, paired};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn wait(term: &Tmux, texts: &[&str]) -> anyhow::Result<String> {
    tokio::task::block_in_place(|| term.wait_for(texts, WAIT))
}

fn new_doc(path: &Path, category: &str, title: &str, date: &str) -> NewDocument {
    NewDocument {
        path: path.to_string_lossy().into_owned(),
        category: category.into(),
        title: title.into(),
        date: date.into(),
        author: "Halima Dialo".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_terminal_client_browses_searches_hides_adds_saves_and_follows_live_changes(
) -> anyhow::Result<()> {
    let p = paired().await?;
    let dir = p.dir.path();
    let radio = dir.join("radio.txt");
    std::fs::write(&radio, "Radiographie du genou droit : pas de fracture.")?;
    p.a.daemon
        .doc_add(
            p.space,
            &new_doc(&radio, "imaging", "Radiologie genou droit", "2021-03-15"),
        )
        .await?;
    p.a.daemon.create_space("Mathis").await?;
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let config = dir.join("config");
    let command = format!(
        "cd {} && {} --socket {}",
        work.display(),
        binary("mes")?.display(),
        p.a.ready.socket.display()
    );
    let term = Tmux::start(
        &command,
        130,
        32,
        &[
            ("XDG_CONFIG_HOME", &config),
            ("LANG", Path::new("fr_FR.UTF-8")),
        ],
    )?;

    // First run: the tutorial, in French from the locale; Esc skips it.
    wait(&term, &["Bienvenue", "Étape 1 sur 5"])?;
    term.keys(&["Escape"])?;
    // The overlay gone before the next keys: sent while it shows, they went to it, and
    // an Escape followed at once by a digit reads as Alt+digit (a flaky run, issue 23).
    tokio::task::block_in_place(|| term.wait_gone(&["Bienvenue"], WAIT))?;
    wait(
        &term,
        &[
            "Radiologie genou droit",
            "en ligne",
            "0 envoi(s) en attente",
        ],
    )?;

    // Search as you type, then hide the match from professionals.
    term.keys(&["3", "/"])?;
    term.type_text("genou auteur:dialo")?;
    wait(&term, &["1 sur 1", "Radiographie du genou droit :"])?;
    term.keys(&["Enter", "m"])?;
    wait(&term, &["[masqué] Radiologie", "masqué aux professionnels"])?;

    // A change on the other device shows on Home without a key press.
    term.keys(&["1"])?;
    wait(&term, &["Derniers documents"])?;
    let bilan = dir.join("bilan.txt");
    std::fs::write(&bilan, "Hémoglobine 13,2 g/dL.")?;
    p.b.daemon
        .doc_add(
            p.space,
            &new_doc(&bilan, "biology", "Bilan sanguin annuel", "2026-11-02"),
        )
        .await?;
    wait(&term, &["Bilan sanguin annuel"])?;

    // Add a file by its path.
    let ordonnance = dir.join("ordonnance.txt");
    std::fs::write(&ordonnance, "Kinésithérapie, 10 séances.")?;
    term.keys(&["3", "a"])?;
    wait(&term, &["Ajouter un document", "Fichier (chemin)"])?;
    term.type_text(&ordonnance.to_string_lossy())?;
    term.keys(&["Tab"])?;
    term.type_text("Ordonnance kiné")?;
    term.keys(&["Enter"])?;
    wait(&term, &["Document ajouté : Ordonnance kiné"])?;

    // Esc in the search box clears it; save the newest document (the one just added) to
    // the working directory: the path written is shown.
    term.keys(&["/", "Escape"])?;
    wait(&term, &["3 sur 3"])?;
    term.keys(&["Home", "s"])?;
    wait(&term, &["Enregistrer sous"])?;
    term.keys(&["Enter"])?;
    let saved = work.join("ordonnance.txt");
    wait(&term, &["Enregistré dans", "ordonnance.txt"])?;
    assert_eq!(std::fs::read(&saved)?, std::fs::read(&ordonnance)?);

    // Switch to the child's profile.
    term.keys(&["7", "Down", "Enter"])?;
    wait(&term, &["Profil affiché : Mathis"])?;

    // English, saved for next time.
    term.keys(&["9", "Enter"])?;
    wait(&term, &["Settings", "Language : English"])?;
    let saved_settings = std::fs::read_to_string(config.join("mes/tui.toml"))?;
    assert!(saved_settings.contains("lang = \"en\""), "{saved_settings}");
    assert!(
        saved_settings.contains("tutorial_done = true"),
        "{saved_settings}"
    );

    // Quit: the shell is back (the tmux helper prints [exited] after the command).
    term.keys(&["q"])?;
    let screen = wait(&term, &["[exited]"])?;
    assert!(
        !screen.contains("Settings"),
        "the alternate screen is gone:\n{screen}"
    );
    Ok(())
}

/// What `stty` says of the terminal after `command`: "echo icanon" when it is back in
/// its ordinary mode, less when raw mode was left on.
fn terminal_modes_after(command: &str, config: &Path) -> anyhow::Result<String> {
    let probe = format!(
        "{command}; printf 'modes:'; stty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e icanon | sort | tr '\\n' ' '; echo :end"
    );
    let term = Tmux::start(&probe, 120, 30, &[("XDG_CONFIG_HOME", config)])?;
    let screen = tokio::task::block_in_place(|| term.wait_for(&[":end"], WAIT))?;
    let modes = screen
        .split("modes:")
        .nth(1)
        .and_then(|r| r.split(":end").next())
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(format!("{modes}\n{screen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_restores_the_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = mes_tests::relay(dir.path(), None, false).await?;
    let a = mes_tests::device(dir.path(), "a", &mes_tests::target(&relay)).await?;
    let config = dir.path().join("config");
    mes_tui::app::settings::Settings {
        tutorial_done: true,
        ..Default::default()
    }
    .save(&config.join("mes/tui.toml"))?;
    let mes = format!(
        "{} --socket {}",
        binary("mes")?.display(),
        a.ready.socket.display()
    );
    let out = terminal_modes_after(
        &format!("RUST_BACKTRACE=0 MES_TUI_FAULT=panic {mes}"),
        &config,
    )?;
    assert!(
        out.contains("planted panic"),
        "the panic is reported:\n{out}"
    );
    assert!(
        out.starts_with("echo icanon"),
        "echo and line mode are back:\n{out}"
    );
    // The control: the same probe sees a terminal left in raw mode.
    let raw = terminal_modes_after("stty raw -echo", &config)?;
    assert!(
        !raw.starts_with("echo icanon"),
        "the probe detects raw mode:\n{raw}"
    );
    Ok(())
}

#[test]
fn without_a_daemon_mes_says_how_to_start_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let command = format!(
        "{} --socket {}",
        binary("mes")?.display(),
        dir.path().join("none.sock").display()
    );
    let term = Tmux::start(&command, 120, 12, &[])?;
    let screen = term.wait_for(&["[exited]"], WAIT)?;
    assert!(screen.contains("mesd serve --data"), "{screen}");
    assert!(screen.contains("mes demo"), "{screen}");
    Ok(())
}

#[test]
fn mes_demo_opens_the_client_on_the_sandbox_and_quitting_removes_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, tmp) = (dir.path().join("config"), dir.path().join("tmp"));
    std::fs::create_dir_all(&tmp)?;
    mes_tui::app::settings::Settings {
        tutorial_done: true,
        ..Default::default()
    }
    .save(&config.join("mes/tui.toml"))?;
    let command = format!("{} demo", binary("mes")?.display());
    let term = Tmux::start(
        &command,
        130,
        32,
        &[("XDG_CONFIG_HOME", &config), ("TMPDIR", &tmp)],
    )?;
    let build = Duration::from_secs(180);
    let screen = term.wait_for(&["Inaya M.", "Derniers documents", "en ligne"], build)?;
    assert!(screen.contains("Historique des soins"), "{screen}");
    assert!(
        std::fs::read_dir(&tmp)?.count() > 0,
        "the demo lives in the temporary directory"
    );
    term.keys(&["7"])?;
    term.wait_for(&["Mathis", "Lola", "Louis"], WAIT)?;
    term.keys(&["q"])?;
    term.wait_for(&["[exited]"], WAIT)?;
    let left: Vec<_> = std::fs::read_dir(&tmp)?.collect();
    assert!(left.is_empty(), "quitting removes the demo: {left:?}");
    Ok(())
}
