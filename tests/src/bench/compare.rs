//! `mes-bench compare OLD.jsonl NEW.jsonl` (issue 23): every metric of two runs side by
//! side with the ratio, marking those that moved the wrong way by more than
//! [`WORSE_BY`]. Which way is wrong follows the unit: time and memory should fall, rates
//! (`…/s`) should rise; counts are shown and never marked.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A move the wrong way by more than this factor is marked.
pub const WORSE_BY: f64 = 1.5;

/// One figure read back from a `--json` run (lines without a metric, such as a run's
/// header with its machine and commit, are skipped).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Figure {
    /// Scenario.
    pub scenario: String,
    /// Metric.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// Reads the figures of a `--json` run.
pub fn read(text: &str) -> Vec<Figure> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Figure>(l).ok())
        .collect()
}

/// Which way a unit should move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Time, memory.
    Lower,
    /// Rates.
    Higher,
    /// Counts: shown, never marked.
    Neither,
}

/// The direction of a unit.
pub fn better(unit: &str) -> Better {
    match unit {
        "ms" | "s" | "µs" | "us" | "MiB" | "KiB" | "B" => Better::Lower,
        u if u.ends_with("/s") => Better::Higher,
        _ => Better::Neither,
    }
}

/// One compared metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `scenario metric`.
    pub name: String,
    /// Old value, if the old run had it.
    pub old: Option<f64>,
    /// New value, if the new run has it.
    pub new: Option<f64>,
    /// Unit.
    pub unit: String,
    /// new / old.
    pub ratio: Option<f64>,
    /// Moved the wrong way by more than [`WORSE_BY`].
    pub worse: bool,
}

/// Compares two runs (the last value wins when a run repeats a metric).
pub fn compare(old: &[Figure], new: &[Figure]) -> Vec<Row> {
    let key = |f: &Figure| (f.scenario.clone(), f.metric.clone());
    let olds: BTreeMap<_, _> = old.iter().map(|f| (key(f), f)).collect();
    let news: BTreeMap<_, _> = new.iter().map(|f| (key(f), f)).collect();
    let mut names: Vec<_> = olds.keys().chain(news.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|k| {
            let (o, n) = (olds.get(&k), news.get(&k));
            let unit = n.or(o).map(|f| f.unit.clone()).unwrap_or_default();
            let ratio = match (o, n) {
                (Some(o), Some(n)) if o.value != 0.0 => Some(n.value / o.value),
                _ => None,
            };
            let worse = ratio.is_some_and(|r| match better(&unit) {
                Better::Lower => r > WORSE_BY,
                Better::Higher => r < 1.0 / WORSE_BY,
                Better::Neither => false,
            });
            Row {
                name: format!("{} {}", k.0, k.1),
                old: o.map(|f| f.value),
                new: n.map(|f| f.value),
                unit,
                ratio,
                worse,
            }
        })
        .collect()
}

/// The table `mes-bench compare` prints.
pub fn render(rows: &[Row]) -> String {
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut out = format!(
        "{:<40} {:>14} {:>14} {:>8}  unit\n",
        "metric", "old", "new", "ratio"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<40} {:>14} {:>14} {:>8}  {}{}\n",
            r.name,
            num(r.old),
            num(r.new),
            r.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            r.unit,
            if r.worse {
                format!("  <-- worse by more than {WORSE_BY}x")
            } else {
                String::new()
            }
        ));
    }
    let worse = rows.iter().filter(|r| r.worse).count();
    out.push_str(&format!(
        "{worse} metric(s) moved the wrong way by more than {WORSE_BY}x\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(scenario: &str, metric: &str, value: f64, unit: &str) -> Figure {
        Figure {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
        }
    }

    #[test]
    fn a_regression_past_the_factor_is_marked_and_nothing_else() {
        let old = vec![
            f("sync-latency", "p99_ms", 12.7, "ms"),
            f("ingest", "uploads_per_s", 22_500.0, "uploads/s"),
            f("campaign", "people", 3_391_505.0, "people"),
            f("render", "p99_ms", 0.5, "ms"),
        ];
        let new = vec![
            // The planted regression: 8.6 times slower.
            f("sync-latency", "p99_ms", 109.0, "ms"),
            // A rate that fell by less than 1.5x, and a count that changed.
            f("ingest", "uploads_per_s", 16_000.0, "uploads/s"),
            f("campaign", "people", 100.0, "people"),
            // An improvement.
            f("render", "p99_ms", 0.3, "ms"),
            f("fanout", "p99_ms", 3.3, "ms"),
        ];
        let rows = compare(&old, &new);
        let marked: Vec<_> = rows.iter().filter(|r| r.worse).map(|r| &r.name).collect();
        assert_eq!(marked, vec!["sync-latency p99_ms"]);
        let halved = compare(&old, &[f("ingest", "uploads_per_s", 10_000.0, "uploads/s")]);
        assert!(halved
            .iter()
            .any(|r| r.worse && r.name == "ingest uploads_per_s"));
        let table = render(&rows);
        assert!(table.contains("fanout p99_ms"), "{table}");
        assert!(table.contains("1 metric(s) moved the wrong way"), "{table}");
    }

    #[test]
    fn a_run_reads_back_skipping_its_header() {
        let text = "{\"machine\":\"2 vCPU\",\"commit\":\"abc\"}\n{\"scenario\":\"render\",\"metric\":\"p99_ms\",\"value\":0.5,\"unit\":\"ms\"}\n";
        assert_eq!(read(text), vec![f("render", "p99_ms", 0.5, "ms")]);
    }
}
