//! The sandbox account (F11.3): `mes demo` run as a process builds seed 001's Inaya M.
//! through the daemon's API, announces its socket, and every screen's data is there: her
//! documents and care history exactly as the seed lists them, her children awaiting their
//! parents' decision, years of measurements, vaccinations, appointments and messages.
//! SIGTERM stops it and removes its temporary directory.

use mes_client::ApiClient;
use mes_protocol::ids::SpaceId;
use mes_protocol::record::documents::DocQuery;
use mes_protocol::record::measurements::MeasureQuery;
use mes_protocol::record::RecordKind;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use mes_tests::binary;
use std::io::BufRead;
use std::process::{Command, Stdio};

async fn call(c: &mut ApiClient, space: SpaceId, call: ApiCall) -> anyhow::Result<ApiReply> {
    c.call(Some(space), call)
        .await?
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

async fn record(
    c: &mut ApiClient,
    space: SpaceId,
    kind: RecordKind,
) -> anyhow::Result<serde_json::Value> {
    match call(c, space, ApiCall::RecordGet { kind }).await? {
        // The body is tagged by its kind: `{"profile": {...}}`.
        ApiReply::Record { record, .. } => serde_json::to_value(record)?
            .as_object()
            .and_then(|o| o.values().next().cloned())
            .ok_or_else(|| anyhow::anyhow!("an empty record body")),
        other => anyhow::bail!("RecordGet answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mes_demo_serves_seed_001s_sandbox_account() -> anyhow::Result<()> {
    let mut demo = Command::new(binary("mes")?)
        .args(["demo", "--json"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(demo.stdout.take().expect("stdout")).read_line(&mut line)?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("ready line {line:?}: {e}"))?;
    let socket = ready["socket"].as_str().expect("socket in the ready line");
    let dir = std::path::PathBuf::from(ready["dir"].as_str().expect("dir in the ready line"));
    let space: SpaceId = ready["space"].as_str().expect("space").parse()?;
    let mut c = ApiClient::connect(std::path::Path::new(socket)).await?;

    // Her documents, as seed 001 lists them, among six years of others.
    let ApiReply::Documents { docs, .. } = call(
        &mut c,
        space,
        ApiCall::DocSearch {
            query: DocQuery::default(),
        },
    )
    .await?
    else {
        anyhow::bail!("no document list");
    };
    let seed: Vec<String> = docs
        .iter()
        .filter(|d| d.date.starts_with("2021-0"))
        .filter(|d| d.id.starts_with("sbx-") && !d.id.starts_with("sbx-h"))
        .map(|d| format!("{} | {} | {} | {}", d.title, d.date, d.author, d.category))
        .collect();
    assert_eq!(
        seed,
        [
            "Prescription soins infirmiers | 2021-04-19 | Antoine Robert | prescriptions",
            "CR_chirurgie genou droit - Inaya Michel | 2021-04-16 | Pierre Angeli | reports",
            "Radiologie_Inaya Michel_genou droit_20210311 | 2021-03-15 | Halima Diallo | imaging",
            "Ordonnance radio genou droit | 2021-02-02 | Antoine Robert | prescriptions",
            "Résultats_AnalyseMed_Inaya-Michel | 2021-01-27 | Hun Nguyen | biology",
        ]
    );
    assert!(docs.len() >= 30, "years of documents, not {}", docs.len());

    // Her care history, exactly as the seed lists it.
    let care = record(&mut c, space, RecordKind::Care).await?;
    let mut items: Vec<String> = care["items"]
        .as_array()
        .expect("care items")
        .iter()
        .map(|i| {
            format!(
                "{} {} ({})",
                i["date"].as_str().unwrap(),
                i["label"].as_str().unwrap(),
                i["category"].as_str().unwrap()
            )
        })
        .collect();
    items.sort();
    assert_eq!(
        items,
        [
            "2021-01-25 Prélèvement sanguin (Biologie)",
            "2021-02-02 Paracétamol 1g - boîte de 6 comprimés (Médicaments)",
            "2021-03-11 Radiographie membre inférieur (Radiologie)",
            "2021-04-15 Acte de chirurgie orthopédique (Hospitalisations)",
            "2021-04-21 Soins infirmiers (Soins médicaux ou dentaires)",
        ]
    );

    // Her profile, vaccinations, measurements, agenda and messages have content.
    let profile = record(&mut c, space, RecordKind::Profile).await?;
    assert_eq!(profile["person"]["name"], "Inaya M.");
    assert!(profile["allergies"].to_string().contains("Pénicilline"));
    let prevention = record(&mut c, space, RecordKind::Prevention).await?;
    assert!(prevention["doses"].as_array().is_some_and(|d| d.len() >= 8));
    let ApiReply::Measurements(points) = call(
        &mut c,
        space,
        ApiCall::MeasureList {
            query: MeasureQuery {
                kind: "weight".into(),
                ..Default::default()
            },
        },
    )
    .await?
    else {
        anyhow::bail!("no measurements");
    };
    assert!(
        points.len() >= 200,
        "six years of weekly weights, not {}",
        points.len()
    );
    let ApiReply::Agenda(agenda) = call(
        &mut c,
        space,
        ApiCall::AgendaList {
            from: "2021-01-01".into(),
            months: 12 * 10,
        },
    )
    .await?
    else {
        anyhow::bail!("no agenda");
    };
    assert!(serde_json::to_string(&agenda)?.contains("Kinésithérapie genou"));
    let messages = record(&mut c, space, RecordKind::Messages).await?;
    assert!(messages
        .to_string()
        .contains("Vos résultats sont disponibles"));

    // Her children, each a space she manages.
    let ApiReply::Spaces(spaces) = c
        .call(None, ApiCall::ListSpaces)
        .await?
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
    else {
        anyhow::bail!("no spaces");
    };
    let mut labels: Vec<&str> = spaces.iter().map(|s| s.label.as_str()).collect();
    labels.sort();
    assert!(
        labels.contains(&"Mathis M.")
            && labels.contains(&"Lola M.")
            && labels.contains(&"Louis M."),
        "{labels:?}"
    );
    let children = ready["children"].as_array().expect("children");
    assert_eq!(children.len(), 3);
    let louis: SpaceId = children[2].as_str().unwrap().parse()?;
    assert_eq!(
        record(&mut c, louis, RecordKind::Profile).await?["person"]["name"],
        "Louis M."
    );

    // SIGTERM: stops and removes everything.
    drop(c);
    Command::new("kill").arg(demo.id().to_string()).status()?;
    let status = demo.wait()?;
    assert!(status.success(), "mes demo exited with {status}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
    Ok(())
}
