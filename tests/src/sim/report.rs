//! What a run proves: the oracle of acknowledged writes (to find losses and measure
//! how long each took to reach every device of its space) and the report printed for
//! testers, as text or JSON.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::trace::{PlantedBug, Trace};

/// Counts of what was done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Operations {
    /// Edits made.
    pub edits: u64,
    /// Edits acknowledged to the user.
    pub acknowledged: u64,
    /// Scheduled edits skipped because the device was down.
    pub edits_while_down: u64,
    /// Upload requests.
    pub uploads: u64,
    /// Fetch requests.
    pub fetches: u64,
    /// Messages sent.
    pub messages: u64,
    /// Connections made.
    pub connections: u64,
    /// Requests refused (and retried).
    pub refused: u64,
}

/// Counts of faults injected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Messages lost (each kills its connection).
    pub lost: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages held back behind later ones.
    pub reordered: u64,
    /// Partitions.
    pub partitions: u64,
    /// Long offline periods.
    pub offline: u64,
    /// Relay restarts.
    pub relay_restarts: u64,
    /// Device crashes.
    pub crashes: u64,
    /// Bundles the relay acknowledged and dropped (the planted bug; 0 otherwise).
    #[serde(default)]
    pub dropped_bundles: u64,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub samples: usize,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From unsorted samples.
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            samples: v.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// The report of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed (meaningful with this build's generator; the trace is the exact input).
    pub seed: u64,
    /// "deterministic" or "real".
    pub mode: String,
    /// Planted bug, if any.
    pub plant: Option<PlantedBug>,
    /// Devices.
    pub devices: usize,
    /// Spaces.
    pub spaces: usize,
    /// What was done.
    pub operations: Operations,
    /// What went wrong on purpose.
    pub faults: Faults,
    /// From the end of the faults until everything settled.
    pub convergence_ms: u64,
    /// Simulated (or wall-clock, in real mode) time of the whole run.
    pub sim_ms: u64,
    /// Wall-clock time the run took.
    pub wall_ms: u64,
    /// From acknowledgement until the write was visible on every device of its space.
    pub latency_ms: Percentiles,
    /// Converged with nothing lost.
    pub ok: bool,
    /// What the checker found.
    pub problems: Vec<String>,
}

impl Report {
    /// An empty report for a trace.
    pub fn new(trace: &Trace, devices: usize, spaces: usize) -> Self {
        Report {
            scenario: trace.scenario.name.clone(),
            seed: trace.seed,
            mode: "deterministic".into(),
            plant: trace.plant,
            devices,
            spaces,
            operations: Operations::default(),
            faults: Faults::default(),
            convergence_ms: 0,
            sim_ms: 0,
            wall_ms: 0,
            latency_ms: Percentiles::default(),
            ok: false,
            problems: Vec::new(),
        }
    }

    /// Records a problem (at most 50 are kept).
    pub fn problem(&mut self, p: String) {
        if self.problems.len() < 50 {
            self.problems.push(p);
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let o = &self.operations;
        let f = &self.faults;
        let l = &self.latency_ms;
        let mut s = format!(
            "{} seed {} ({} mode{}): {}\n  {} devices, {} spaces; {} edits ({} acknowledged, {} skipped while down), {}\n  faults: {} lost, {} duplicated, {} reordered messages; {} partitions, {} offline periods, {} relay restarts, {} crashes\n  converged {:.1} s after the faults stopped; visible everywhere after p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} writes); run took {} ms\n",
            self.scenario,
            self.seed,
            self.mode,
            self.plant
                .map(|p| format!(", planted bug {p:?}"))
                .unwrap_or_default(),
            if self.ok { "OK" } else { "FAILED" },
            self.devices,
            self.spaces,
            o.edits,
            o.acknowledged,
            o.edits_while_down,
            if self.mode == "real" {
                format!("{} packets through the fault proxies", o.messages)
            } else {
                format!(
                    "{} uploads, {} fetches, {} messages, {} connections, {} refused",
                    o.uploads, o.fetches, o.messages, o.connections, o.refused
                )
            },
            f.lost,
            f.duplicated,
            f.reordered,
            f.partitions,
            f.offline,
            f.relay_restarts,
            f.crashes,
            self.convergence_ms as f64 / 1000.0,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            l.samples,
            self.wall_ms,
        );
        for p in &self.problems {
            s.push_str(&format!("  problem: {p}\n"));
        }
        s
    }
}

type WriteKey = (usize, usize, String);

/// Acknowledged writes and who still has to see them.
#[derive(Default)]
pub struct Oracle {
    /// (space, volume, key) -> value, for keys written once.
    unique: BTreeMap<WriteKey, String>,
    /// (device, space, volume) -> keys it has not seen yet, with values.
    awaiting: BTreeMap<(usize, usize, usize), BTreeMap<String, String>>,
    /// (space, volume, key) -> (acknowledged at, devices still to see it).
    remaining: BTreeMap<WriteKey, (u64, usize)>,
    samples: Vec<f64>,
}

impl Oracle {
    /// A write acknowledged at `at`; `others` must see it. Keys named `shared-*` are
    /// overwritten on purpose and only take part in the convergence check.
    pub fn acknowledged(
        &mut self,
        space: usize,
        volume: usize,
        key: String,
        value: String,
        at: u64,
        others: Vec<usize>,
    ) {
        if key.starts_with("shared-") {
            return;
        }
        for d in &others {
            self.awaiting
                .entry((*d, space, volume))
                .or_default()
                .insert(key.clone(), value.clone());
        }
        if others.is_empty() {
            self.samples.push(0.0);
        } else {
            self.remaining
                .insert((space, volume, key.clone()), (at, others.len()));
        }
        self.unique.insert((space, volume, key), value);
    }

    /// What a device still waits for in a volume.
    pub fn awaited_by(&self, device: usize, space: usize, volume: usize) -> Vec<(String, String)> {
        self.awaiting
            .get(&(device, space, volume))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `device` sees `key` at `now`.
    pub fn visible(&mut self, device: usize, space: usize, volume: usize, key: &str, now: u64) {
        if let Some(m) = self.awaiting.get_mut(&(device, space, volume)) {
            m.remove(key);
        }
        let k = (space, volume, key.to_string());
        if let Some((at, left)) = self.remaining.get_mut(&k) {
            *left -= 1;
            if *left == 0 {
                self.samples.push(now.saturating_sub(*at) as f64);
                self.remaining.remove(&k);
            }
        }
    }

    /// Every write of a unique key: (space, volume, key, value).
    pub fn unique_writes(&self) -> Vec<(usize, usize, String, String)> {
        self.unique
            .iter()
            .map(|((s, v, k), val)| (*s, *v, k.clone(), val.clone()))
            .collect()
    }

    /// Latencies of the writes every device saw.
    pub fn latencies(&self) -> Percentiles {
        Percentiles::of(self.samples.clone())
    }
}
