//! The catalogue of approved services (issue 7; F6.1-F6.3) against the real relay over
//! QUIC and the real `mes-relay` binary: the operator's file is checked whole, services
//! hosted or controlled outside the EU are suspended and refused everything, a person
//! allows a service exactly the data chosen among what it was approved for, the relay
//! refuses grants beyond that even when the owner signs them, the access is logged as a
//! service's, and revoking closes it again. Each refusal has its control.

use mes_daemon::sync::relay_client::{ClientError, RelayClient};
use mes_protocol::access::membership::{Grant, Role, Signed};
use mes_protocol::enrolment::catalogue::{Criteria, Service};
use mes_protocol::ids::{Seq, SpaceId, VolumeId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{ErrorCode, Reply, Request};
use mes_relay::handler::Misbehaviour;
use mes_tests::{
    device, home, online, registered, relay_with, run_relay, target, until, volume, RawPrincipal,
};
use std::time::Duration;

fn service(id: &str, who: &RawPrincipal, hosting: &str, data: &[&str]) -> Service {
    Service {
        id: id.into(),
        principal: who.id(),
        name: format!("Service {id}"),
        editor: "Éditeur SAS".into(),
        description_fr: "Un service".into(),
        description_en: "A service".into(),
        url: format!("https://{id}.example.fr"),
        hosting_country: hosting.into(),
        controller_country: "FR".into(),
        data: data.iter().map(std::string::ToString::to_string).collect(),
        criteria: Criteria {
            technical: true,
            ethical: true,
            security: true,
            interoperability: true,
            eco_score: "B".into(),
        },
    }
}

use mes_tests::refusal;

async fn fetch(c: &RelayClient, space: SpaceId, volume: VolumeId) -> Result<Reply, ClientError> {
    c.request(Request::Fetch {
        space,
        volume,
        after: Seq(0),
        max: 10,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn a_service_exchanges_only_the_chosen_data_and_a_suspended_one_nothing() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let relay = relay_with(dir.path(), None, Misbehaviour::default()).await?;
    let t = target(&relay);
    let a = device(dir.path(), "a", &t).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    registered(&a, space).await?;
    let tensio = RawPrincipal::new("tensio");
    let sommeil = RawPrincipal::new("sommeil");
    for s in [&tensio, &sommeil] {
        s.connect(&t).await?;
    }
    let listed = |tensio_hosting: &str| {
        vec![
            service(
                "tensio",
                &tensio,
                tensio_hosting,
                &["measurements", "agenda"],
            ),
            service("sommeil", &sommeil, "US", &["measurements"]),
        ]
    };
    let report = relay.relay.import_catalogue(listed("FR")).await?;
    assert_eq!((report.listed, report.suspended), (2, 1), "{report:?}");

    // F6.1: the person sees every service, the suspended one marked, nothing allowed.
    let views = a
        .daemon
        .catalogue(space)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(views.len(), 2);
    let s = views.iter().find(|v| v.service.id == "sommeil").unwrap();
    assert!(
        s.suspended_fr
            .as_deref()
            .is_some_and(|w| w.contains("hors de l'Union européenne (US)")),
        "{s:?}"
    );
    assert!(views.iter().all(|v| v.allowed.is_empty()));

    // F6.3: a suspended service cannot be allowed anything, by the daemon or the relay.
    let e = a
        .daemon
        .allow_service(space, "sommeil", &[])
        .await
        .unwrap_err();
    assert!(e.message.contains("suspended"), "{}", e.message);
    let agenda = volume(&a.daemon, space, "agenda").unwrap();
    let profile = volume(&a.daemon, space, "profile").unwrap();
    let owner_grant = |principal, volume| {
        Signed::sign(
            Grant {
                space,
                volume: Some(volume),
                principal,
                role: Some(Role::Write),
                version: UnixMillis::now().0,
                issued_at: UnixMillis::now(),
                expires_at: None,
            },
            &a.daemon.identity().principal.signing,
        )
    };
    let (owner, _) = mes_tests::connect_as(&a.daemon, &t).await?;
    let (code, message) = refusal(
        owner
            .request(Request::PutGrant {
                grant: owner_grant(sommeil.id(), agenda),
            })
            .await,
    );
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.contains("suspended"), "{message}");

    // F6.2: only data it was approved for, and only what the person chose.
    let e = a
        .daemon
        .allow_service(space, "tensio", &["profile".into()])
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("approved to exchange measurements, agenda, not \"profile\""),
        "{}",
        e.message
    );
    let v = a
        .daemon
        .allow_service(space, "tensio", &["agenda".into()])
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(v.allowed, vec!["agenda".to_string()]);
    // The relay refuses an owner-signed grant beyond the approved data...
    let (code, message) = refusal(
        owner
            .request(Request::PutGrant {
                grant: owner_grant(tensio.id(), profile),
            })
            .await,
    );
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
    assert!(message.contains("not \"profile\""), "{message}");
    // ...and the service reads what it was allowed, not the rest.
    a.daemon
        .record_edit::<mes_protocol::record::agenda::Agenda>(
            space,
            &mes_protocol::record::RecordEdit::Put {
                section: "appointments".into(),
                record: r#"{"at":"2026-12-10T09:30","minutes":20,"title":"Contrôle tension"}"#
                    .into(),
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;
    until(&a.daemon, Duration::from_secs(30), "agenda uploaded", |d| {
        d.state().volumes[&agenda].progress.idle()
    })
    .await?;
    let c = tensio.connect(&t).await?;
    let Reply::Bundles { items, .. } = fetch(&c, space, agenda).await? else {
        panic!("bundles")
    };
    assert!(!items.is_empty());
    assert!(fetch(&c, space, profile).await.is_err());
    until(&a.daemon, Duration::from_secs(30), "access logged", |d| {
        d.access_history(space)
            .entries
            .iter()
            .any(|e| e.mode == "service" && e.name.as_deref() == Some("Service tensio"))
    })
    .await?;

    // F6.3 after the fact: hosting moves out of the EU, everything is refused; back in
    // the EU (regularised), the same request passes again.
    relay.relay.import_catalogue(listed("US")).await?;
    let (code, message) = refusal(fetch(&c, space, agenda).await);
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(
        message.contains("data hosted outside the European Union (US)"),
        "{message}"
    );
    relay.relay.import_catalogue(listed("DE")).await?;
    assert!(fetch(&c, space, agenda).await.is_ok());

    // A service the file no longer lists is withdrawn, and refused.
    let report = relay
        .relay
        .import_catalogue(vec![service("tensio", &tensio, "FR", &["agenda"])])
        .await?;
    assert_eq!(report.withdrawn, 1, "{report:?}");
    let sc = sommeil.connect(&t).await?;
    let (_, message) = refusal(sc.request(Request::GetEnvelopes { space }).await);
    assert!(message.contains("withdrawn"), "{message}");

    // Revoking closes it (control: it read before).
    a.daemon
        .revoke_service(space, "tensio")
        .await
        .map_err(anyhow::Error::msg)?;
    assert!(fetch(&c, space, agenda).await.is_err());
    let views = a
        .daemon
        .catalogue(space)
        .await
        .map_err(anyhow::Error::msg)?;
    assert!(views.iter().all(|v| v.allowed.is_empty()), "{views:?}");
    a.shutdown().await;
    relay.shutdown().await;
    Ok(())
}

#[test]
fn the_operator_imports_a_checked_catalogue_and_lists_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let data = data.to_str().unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/catalogue.example.toml");
    let good = std::fs::read_to_string(&example)?;
    // One bad service anywhere: nothing imported, the service named with its line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        good.replacen("eco_score = \"A\"", "eco_score = \"Z\"", 1),
    )?;
    let (code, _, err) =
        run_relay(&["catalogue", "import", "--data", data, bad.to_str().unwrap()])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml:")
            && err.contains("eco_score \"Z\"")
            && err.contains("nothing imported"),
        "{err}"
    );
    let (code, out, err) = run_relay(&["catalogue", "list", "--data", data])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "nothing was imported");
    let (code, out, err) = run_relay(&[
        "catalogue",
        "import",
        "--data",
        data,
        example.to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(report["listed"], 4, "{out}");
    assert_eq!(report["suspended"], 1, "{out}");
    let (code, out, err) = run_relay(&["catalogue", "list", "--data", data])?;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 4);
    let sommeil = lines.iter().find(|l| l["id"] == "sommeil-plus").unwrap();
    assert_eq!(sommeil["status"], "suspended");
    assert_eq!(sommeil["hosting_country"], "US");
    assert!(lines
        .iter()
        .filter(|l| l["id"] != "sommeil-plus")
        .all(|l| l["status"] == "listed" && l["criteria"]["eco_score"].is_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_the_hub_did_not_sign_is_refused() -> anyhow::Result<()> {
    let sommeil = RawPrincipal::new("sommeil");
    // Control: the honest hub's list verifies and shows the suspension.
    let seen = |unsuspend: bool| {
        let sommeil = &sommeil;
        async move {
            let dir = tempfile::tempdir()?;
            let relay = relay_with(
                dir.path(),
                None,
                Misbehaviour {
                    unsuspend_catalogue: unsuspend,
                    ..Default::default()
                },
            )
            .await?;
            relay
                .relay
                .import_catalogue(vec![service("sommeil", sommeil, "US", &["measurements"])])
                .await?;
            let a = device(dir.path(), "a", &target(&relay)).await?;
            online(&a.daemon).await?;
            let space = home(&a.daemon).await?;
            let views = a.daemon.catalogue(space).await;
            let kept = a.daemon.catalogue(space).await;
            a.shutdown().await;
            relay.shutdown().await;
            anyhow::Ok((views, kept))
        }
    };
    let (honest, _) = seen(false).await?;
    let honest = honest.map_err(anyhow::Error::msg)?;
    assert!(honest[0].suspended_en.is_some(), "{honest:?}");
    // The attack: the same entry with its suspension removed, its signature unchanged.
    let (forged, again) = seen(true).await?;
    let e = forged.expect_err("a forged catalogue is refused");
    assert!(e.message.contains("not signed by the hub"), "{}", e.message);
    assert!(again.is_err(), "refused again on the next look");
    Ok(())
}
