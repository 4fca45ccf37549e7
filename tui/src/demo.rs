//! `mes demo`: a relay and two devices of one person ("laptop", "phone") in a temporary
//! directory. The phone joins through a pairing code; a note written on the laptop
//! appears on the phone through the relay, which holds only ciphertext.

use mes_daemon::client::RelayTarget;
use mes_daemon::run::{start, DaemonConfig, RunningDaemon};
use mes_daemon::unlock::Unlock;
use mes_protocol::api::{ApiCall, ApiEvent, ApiReply};
use std::path::Path;
use std::time::Duration;

use mes_daemon::api_client::ApiClient;

async fn device(dir: &Path, name: &str, relay: &RelayTarget) -> anyhow::Result<RunningDaemon> {
    start(DaemonConfig {
        data_dir: dir.join(name),
        unlock: Unlock::IdentityFile(dir.join(format!("{name}.age"))),
        relay: Some(relay.clone()),
        name: name.into(),
        null_cipher: false,
        max_document_bytes: mes_daemon::blobs::DEFAULT_MAX_DOCUMENT_BYTES,
    })
    .await
}

async fn online(c: &mut ApiClient) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(ApiReply::Status(s)) = c.call(None, ApiCall::Status).await? {
            if s.online {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the device did not connect to the relay")
}

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = mes_relay::server::start(mes_relay::server::RelayConfig::new(
        dir.path().join("relay"),
    ))
    .await?;
    let target = RelayTarget {
        address: relay.ready.address,
        fingerprint: relay.ready.fingerprint.clone(),
    };
    println!(
        "relais / relay: {} (empreinte / fingerprint {}…)",
        target.address,
        &target.fingerprint[..16]
    );
    let laptop = device(dir.path(), "laptop", &target).await?;
    let phone = device(dir.path(), "phone", &target).await?;
    let mut a = ApiClient::connect(&laptop.ready.socket).await?;
    let mut b = ApiClient::connect(&phone.ready.socket).await?;
    online(&mut a).await?;
    online(&mut b).await?;
    a.call(
        None,
        ApiCall::NoteSet {
            key: "groupe sanguin".into(),
            value: "O+".into(),
        },
    )
    .await??;
    let ApiReply::PairingCode(code) = a.call(None, ApiCall::PairStart).await?? else {
        anyhow::bail!("no pairing code")
    };
    println!("laptop: code d'appairage / pairing code {code}");
    b.call(
        None,
        ApiCall::PairJoin {
            code: code.clone(),
            device_name: "phone".into(),
        },
    )
    .await??;
    println!("phone: appairé / paired");
    let mut events = ApiClient::connect(&phone.ready.socket).await?;
    events.call(None, ApiCall::Subscribe).await??;
    a.call(
        None,
        ApiCall::NoteSet {
            key: "allergie".into(),
            value: "pénicilline".into(),
        },
    )
    .await??;
    println!("laptop: note « allergie » = pénicilline");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(ApiReply::Values(v)) = b
            .call(
                None,
                ApiCall::NoteGet {
                    key: "allergie".into(),
                },
            )
            .await?
        {
            println!(
                "phone: note « allergie » = {} (reçue via le relais / received through the relay)",
                v.join(" | ")
            );
            break;
        }
        match tokio::time::timeout_at(deadline, events.next_event()).await {
            Ok(Ok(ApiEvent::VolumeChanged { .. } | ApiEvent::Connection { .. })) => continue,
            Ok(Err(e)) => return Err(e),
            Err(_) => anyhow::bail!("the phone did not receive the note within 20 s"),
        }
    }
    if let Ok(r) = b.call(None, ApiCall::NoteList).await? {
        println!(
            "phone: {}",
            crate::render::reply(&r, false)?.replace('\n', "; ")
        );
    }
    laptop.shutdown().await;
    phone.shutdown().await;
    relay.shutdown().await;
    println!("fin de la démo / demo finished");
    Ok(())
}
