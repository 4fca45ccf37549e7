//! `mes demo`: a relay and one device in a temporary directory holding the sandbox account
//! of seed 001 (F11.3: Inaya M., her documents, care history, years of measurements, her
//! children), built through the daemon's API like any client would. Opens the terminal
//! client on it and removes everything when the person quits; with `--serve` or `--json`
//! prints one ready line naming the socket instead, then serves until Ctrl-C or SIGTERM.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mes_client::ApiClient;
use mes_daemon::devices::unlock::Unlock;
use mes_daemon::run::{start, DaemonConfig};
use mes_daemon::sandbox;
use mes_daemon::sync::relay_client::RelayTarget;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use std::time::Duration;

async fn online(c: &mut ApiClient) -> anyhow::Result<()> {
    for _ in 0..400 {
        if let Ok(ApiReply::Status(s)) = c.call(None, ApiCall::Status).await? {
            if s.online {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the device did not connect to the relay")
}

/// Runs the demo: with `ui` (the process start), the terminal client until the person
/// quits; without, served until interrupted.
pub async fn run(json: bool, ui: Option<std::time::Instant>) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("mes-demo-").tempdir()?;
    let relay = mes_relay::server::start(mes_relay::server::RelayConfig::new(
        dir.path().join("relay"),
    ))
    .await?;
    let target = RelayTarget {
        address: relay.ready.address,
        fingerprint: relay.ready.fingerprint.clone(),
    };
    let device = start(DaemonConfig {
        data_dir: dir.path().join("ordinateur"),
        socket: None,
        unlock: Unlock::IdentityFile(dir.path().join("ordinateur.age")),
        relay: Some(target.clone()),
        name: "ordinateur".into(),
        null_cipher: false,
        max_document_bytes: mes_daemon::replica::blobs::DEFAULT_MAX_DOCUMENT_BYTES,
    })
    .await?;
    let socket = device.ready.socket.clone();
    let mut c = ApiClient::connect(&socket).await?;
    online(&mut c).await?;
    let today = jiff::Zoned::now().date();
    let plan = sandbox::seed_001(
        &dir.path().join("fichiers"),
        today,
        sandbox::SANDBOX_HISTORY,
    );
    let bar = ProgressBar::with_draw_target(
        None,
        if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    )
    .with_style(ProgressStyle::with_template(
        "bac à sable / sandbox {bar:30.cyan/blue} {pos}/{len}",
    )?);
    let children = sandbox::apply(&mut c, None, plan, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    let ApiReply::Spaces(spaces) = c.call(None, ApiCall::ListSpaces).await?? else {
        anyhow::bail!("ListSpaces answered something else");
    };
    let own = spaces
        .iter()
        .find(|s| !children.contains(&s.space))
        .map(|s| s.space);
    if let Some(started) = ui {
        let shown = mes_tui::app::shell::run(mes_tui::app::shell::Options {
            socket: socket.clone(),
            space: own,
            started,
        })
        .await;
        device.shutdown().await;
        relay.shutdown().await;
        return Ok(shown?);
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "socket": socket,
                "address": target.address.to_string(),
                "fingerprint": target.fingerprint,
                "space": own.map(|s| s.to_string()),
                "children": children.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "dir": dir.path(),
            })
        );
    } else {
        println!(
            "Bac à sable prêt : Inaya M. et ses enfants Mathis, Lola et Louis (seed 001).\n\
             Sandbox ready: Inaya M. and her children Mathis, Lola and Louis.\n\
             relais / relay: {} (empreinte / fingerprint {}…)\n\n\
             Dans un autre terminal / in another terminal:\n  \
             export MES_SOCKET={}\n  mes doc list\n  mes profile show\n  mes agenda list\n\n\
             Ctrl-C pour arrêter et tout effacer / to stop and remove everything.",
            target.address,
            &target.fingerprint[..16],
            socket.display()
        );
    }
    wait_for_stop().await?;
    device.shutdown().await;
    relay.shutdown().await;
    if !json {
        println!("fin de la démo / demo finished");
    }
    Ok(())
}

async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
