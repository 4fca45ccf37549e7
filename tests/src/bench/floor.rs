//! `automerge-floor`: what automerge alone does with the catch-up's changes: one
//! `load_incremental` call over all of them, in memory.

use super::{changes, Measure, Size};
use std::time::Instant;

pub fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    let n = size.pick(100_000, 1_000);
    let all: Vec<u8> = changes(n).concat();
    let start = Instant::now();
    let mut doc = automerge::AutoCommit::new();
    doc.load_incremental(&all)?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        automerge::ReadDoc::length(&doc, automerge::ROOT) == n,
        "floor applied {} of {n} changes",
        automerge::ReadDoc::length(&doc, automerge::ROOT)
    );
    Ok(vec![Measure {
        scenario: "automerge-floor",
        metric: "changes_per_s",
        value: n as f64 / secs,
        unit: "changes/s",
    }])
}
