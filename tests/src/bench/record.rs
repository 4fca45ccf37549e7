//! The health-record scenarios on the 10-year space (`space.rs`), each against a `mesd`
//! process started cold:
//! - `open-space`: from spawning `mesd` (unlocked by its identity file) until the complete
//!   document list is answered over the socket (`cold_open_ms`, median of the runs), and
//!   the daemon's resident memory then (`rss_mib`, median; `rss_max_mib`);
//! - `search`: once the daemon's start-up sync is done (a running daemon), keyword +
//!   filter queries over the socket, each answered with its first
//!   page of `PAGE` documents and the total, as the search screen asks (`p50_ms`,
//!   `p99_ms`), and the same queries asking for every match (`p99_all_ms`);
//! - `export`: the whole archive, FHIR bundle, IPS summary, PDF and original files
//!   (`seconds`, and its size in `archive_mib`).

use super::space::{all_documents, synced, TenYears};
use super::{measure, percentile, Measure, Size};
use mes_client::ApiClient;
use mes_protocol::record::documents::DocQuery;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// `open-space`.
pub async fn open_space(space: &TenYears, size: Size) -> anyhow::Result<Vec<Measure>> {
    let runs = size.pick(5, 2);
    let (mut ms, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let mesd = space.start()?;
        let mut c = ApiClient::connect(&mesd.socket).await?;
        let listed = all_documents(&mut c, space.space).await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        rss.push(mesd.rss_mib()?);
        mesd.stop()?;
        anyhow::ensure!(
            listed == space.documents,
            "the cold list has {listed} documents, the space {}",
            space.documents
        );
    }
    ms.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    Ok(vec![
        measure("open-space", "cold_open_ms", percentile(&ms, 50.0), "ms"),
        measure("open-space", "cold_open_max_ms", ms[ms.len() - 1], "ms"),
        measure("open-space", "rss_mib", percentile(&rss, 50.0), "MiB"),
        measure("open-space", "rss_max_mib", rss[rss.len() - 1], "MiB"),
        measure(
            "open-space",
            "documents",
            space.documents as f64,
            "documents",
        ),
        measure("open-space", "build_s", space.build_s, "s"),
    ])
}

/// Words that occur in the space's titles and texts, and a few that do not.
const WORDS: &[&str] = &[
    "analyses",
    "ordonnance",
    "echographie",
    "certificat",
    "compte rendu",
    "vaccination",
    "glycemie",
    "genou",
    "irm",
];
const AUTHORS: &[&str] = &["robert", "nguyen", "diallo", "angeli", "besson", "haddad"];
const CATEGORIES: &[&str] = &[
    "biology",
    "prescriptions",
    "reports",
    "imaging",
    "prevention",
    "certificates",
];

/// A keyword query with one or two filters, as typed in the search screen.
fn query(rng: &mut impl Rng, years: u32) -> DocQuery {
    let this_year = jiff::Zoned::now().year() as u32;
    let year = this_year - rng.gen_range(0..years.max(1));
    let mut q = DocQuery {
        text: WORDS[rng.gen_range(0..WORDS.len())].into(),
        ..Default::default()
    };
    match rng.gen_range(0..4) {
        0 => q.category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())].into(),
        1 => {
            q.from = format!("{year}-01-01");
            q.to = format!("{year}-12-31");
        }
        2 => q.author = AUTHORS[rng.gen_range(0..AUTHORS.len())].into(),
        _ => {
            q.category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())].into();
            q.from = format!("{year}-01-01");
        }
    }
    q
}

/// The page a search screen asks for.
pub const PAGE: u32 = 100;

/// Runs `queries` random queries with page size `limit`: the latency of each (sorted, ms)
/// and the matches in all.
async fn run_queries(
    c: &mut ApiClient,
    space: &TenYears,
    queries: usize,
    years: u32,
    limit: u32,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (mut ms, mut hits) = (Vec::with_capacity(queries), 0u64);
    let mut slowest: Vec<(f64, DocQuery)> = Vec::new();
    for _ in 0..queries {
        let query = DocQuery {
            limit,
            ..query(&mut rng, years)
        };
        let started = Instant::now();
        let call = ApiCall::DocSearch {
            query: query.clone(),
        };
        let reply = c.call(Some(space.space), call).await?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        ms.push(took);
        slowest.push((took, query));
        match reply {
            Ok(ApiReply::Documents { total, docs }) => {
                let expected = if limit == 0 { total } else { total.min(limit) };
                anyhow::ensure!(
                    docs.len() as u32 == expected,
                    "a page of {} for {total} matches and a limit of {limit}",
                    docs.len()
                );
                hits += u64::from(total);
            }
            other => anyhow::bail!("DocSearch answered {other:?}"),
        }
    }
    ms.sort_by(f64::total_cmp);
    if std::env::var_os("MES_BENCH_VERBOSE").is_some() {
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (took, q) in slowest.iter().take(12) {
            eprintln!("search (limit {limit}) {took:.2} ms: {q:?}");
        }
    }
    Ok((ms, hits))
}

/// `search`.
pub async fn search(space: &TenYears, size: Size) -> anyhow::Result<Vec<Measure>> {
    let queries = size.pick(1_000, 50);
    let years = size.pick(10, 1) as u32;
    let mesd = space.start()?;
    let mut c = ApiClient::connect(&mesd.socket).await?;
    synced(&mut c).await?;
    all_documents(&mut c, space.space).await?;
    let (ms, hits) = run_queries(&mut c, space, queries, years, PAGE).await?;
    let (all, _) = run_queries(&mut c, space, queries, years, 0).await?;
    mesd.stop()?;
    Ok(vec![
        measure("search", "p50_ms", percentile(&ms, 50.0), "ms"),
        measure("search", "p99_ms", percentile(&ms, 99.0), "ms"),
        measure("search", "p99_all_ms", percentile(&all, 99.0), "ms"),
        measure(
            "search",
            "mean_hits",
            hits as f64 / queries as f64,
            "documents",
        ),
    ])
}

/// `export`.
pub async fn export(space: &TenYears, _size: Size) -> anyhow::Result<Vec<Measure>> {
    let mesd = space.start()?;
    let mut c = ApiClient::connect(&mesd.socket).await?;
    let out = space.scratch(&format!("export-{}", rand::random::<u32>()));
    let started = Instant::now();
    let reply = c
        .call(
            Some(space.space),
            ApiCall::Export {
                out: out.to_string_lossy().into_owned(),
            },
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    mesd.stop()?;
    if let Err(e) = reply {
        anyhow::bail!("Export refused: {}", e.message);
    }
    let bytes: u64 = crate::files(&out)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    std::fs::remove_dir_all(&out)?;
    Ok(vec![
        measure("export", "seconds", seconds, "s"),
        measure(
            "export",
            "archive_mib",
            bytes as f64 / (1 << 20) as f64,
            "MiB",
        ),
    ])
}
