//! `sizing`: what a person costs the hub (docs/operator-guide.md, "Sizing"). People live
//! a demanding year each through their daemon's local API (seed 001's plan for one year:
//! the profile, 50 documents, 1,000 measurements sent a day at a time, appointments,
//! messages), every change and file uploaded; then the hub's storage is measured on the
//! backend `--backend` names: sled's files, or PostgreSQL's rows and bytes (tables with
//! their indexes and TOAST); and the bytes stored per document file against the file.

use super::{measure, Measure, Size};
use crate::{relay, target};
use mes_client::ApiClient;
use mes_daemon::sandbox::{self, Scale};

/// One person's year.
const YEAR: Scale = Scale {
    years: 1,
    documents: 50,
    measurements: 1_000,
    days_per_call: 1,
};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    crate::files(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let people = size.pick(4, 1);
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    let t = target(&r);
    let today = jiff::Zoned::now().date();
    let mut file_bytes = 0u64;
    let mut documents = 0u64;
    for i in 0..people {
        let name = format!("person-{i}");
        let device = crate::device(dir.path(), &name, &t).await?;
        let mut c = ApiClient::connect(&device.ready.socket).await?;
        let files = dir.path().join(format!("{name}-files"));
        let plan = sandbox::seed_001(&files, today, YEAR);
        file_bytes += plan
            .files
            .iter()
            .map(|(_, text)| text.len() as u64)
            .sum::<u64>();
        documents += plan.files.len() as u64;
        sandbox::apply(&mut c, None, plan, |_, _| {}).await?;
        crate::caught_up(
            &device.daemon,
            std::time::Duration::from_secs(600),
            "the year uploaded",
        )
        .await?;
        device.shutdown().await;
    }
    let store = r.relay.store();
    let mut stored_file_bytes = 0u64;
    for (_, v) in store
        .scan_records(mes_relay::store::Table::BlobOwner, &[])
        .await?
    {
        stored_file_bytes += u64::from_be_bytes(v.get(..8).unwrap_or(&[0; 8]).try_into()?);
    }
    drop(store);
    let n = people as f64;
    let mut out = vec![
        measure("sizing", "people", n, "people"),
        measure(
            "sizing",
            "documents_per_person_year",
            documents as f64 / n,
            "documents",
        ),
        measure(
            "sizing",
            "file_bytes_per_document",
            file_bytes as f64 / documents.max(1) as f64,
            "bytes",
        ),
        measure(
            "sizing",
            "stored_bytes_per_document",
            stored_file_bytes as f64 / documents.max(1) as f64,
            "bytes",
        ),
    ];
    if std::env::var("MES_TEST_BACKEND").as_deref() == Ok("postgres") {
        let url = crate::pg_database(&dir.path().join("relay")).await?;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM log) + (SELECT count(*) FROM records) \
                 + (SELECT count(*) FROM snapshots) + (SELECT count(*) FROM volume_heads) \
                 + (SELECT count(*) FROM blob_chunks) + (SELECT count(*) FROM blobs), \
                 (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c \
                  JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'enrol%')::bigint",
                &[],
            )
            .await?;
        drop(client);
        let _ = task.await;
        out.push(measure(
            "sizing",
            "pg_rows_per_person_year",
            row.get::<_, i64>(0) as f64 / n,
            "rows",
        ));
        out.push(measure(
            "sizing",
            "pg_bytes_per_person_year",
            row.get::<_, i64>(1) as f64 / n,
            "bytes",
        ));
    } else {
        r.shutdown().await;
        out.push(measure(
            "sizing",
            "sled_bytes_per_person_year",
            dir_bytes(&dir.path().join("relay/relay.sled")) as f64 / n,
            "bytes",
        ));
    }
    Ok(out)
}
