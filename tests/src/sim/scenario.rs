//! Scenario files (TOML): who syncs, how much they write, and what goes wrong. The same
//! file drives the deterministic mode and the real-socket mode; see docs/tester-guide.md.

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One scenario: people, devices, writes, network and faults. Times are simulated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (used in reports and failure files).
    pub name: String,
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// People, each with a space of their own.
    pub persons: usize,
    /// Devices of each person.
    pub devices_per_person: usize,
    /// Automerge volumes per space.
    #[serde(default = "default_volumes")]
    pub volumes_per_space: usize,
    /// Length of the faulty period, in seconds of simulated time.
    pub duration_s: u64,
    /// Edits by the people's devices, spread over the duration.
    pub edits: usize,
    /// Share of edits that overwrite one of a few shared keys (concurrent conflicts)
    /// rather than writing a key of their own.
    #[serde(default)]
    pub shared_keys: f64,
    /// A document feed (a hospital's system writing into person 0's space).
    #[serde(default)]
    pub feed: Option<Feed>,
    /// Message-level faults.
    pub network: Network,
    /// Scheduled faults.
    pub faults: Faults,
    /// Settings of the real-socket mode.
    #[serde(default)]
    pub real: Real,
}

/// A burst of documents from one feeding device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// Documents written.
    pub documents: usize,
    /// They arrive within this many seconds from the start.
    pub within_s: u64,
}

/// Message faults, applied to every message between a device and the relay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Probability a message is lost (the connection then times out and is redone).
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Probability a message is held back so that later ones overtake it.
    pub reorder: f64,
    /// One-way delay range, milliseconds.
    pub delay_ms: [u64; 2],
}

/// Faults on a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Network partitions of one device from the relay.
    pub partitions: usize,
    /// Their length range, seconds.
    pub partition_s: [u64; 2],
    /// Relay restarts (every connection drops; the store stays).
    pub relay_restarts: usize,
    /// How long the relay stays down, milliseconds.
    #[serde(default = "default_relay_down")]
    pub relay_down_ms: [u64; 2],
    /// Device crashes (SIGKILL: what was not flushed is gone), each followed by a restart.
    pub device_crashes: usize,
    /// Devices of each person that go offline (still editing) for `offline_s`.
    #[serde(default)]
    pub offline_devices_per_person: usize,
    /// How long they stay offline, seconds.
    #[serde(default)]
    pub offline_s: u64,
}

/// Settings of the real-socket mode (wall-clock time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Real {
    /// Simulated seconds per wall-clock second (a week offline becomes seconds).
    pub time_scale: f64,
    /// At most this many edits are replayed for real (the rest of the schedule is cut).
    pub max_edits: usize,
    /// How long the world may take to converge once the faults stop, seconds.
    #[serde(default = "default_settle")]
    pub settle_s: u64,
}

impl Default for Real {
    fn default() -> Self {
        Real {
            time_scale: 60.0,
            max_edits: 400,
            settle_s: default_settle(),
        }
    }
}

fn default_settle() -> u64 {
    120
}

fn default_volumes() -> usize {
    2
}

fn default_relay_down() -> [u64; 2] {
    [100, 2_000]
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let s: Scenario = toml::from_str(&text)
            .with_context(|| format!("scenario {} is not valid", path.display()))?;
        s.check()
            .with_context(|| format!("scenario {} is not valid", path.display()))?;
        Ok(s)
    }

    /// Checks the values, naming the first that is wrong.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=64).contains(&self.persons),
            "persons must be 1 to 64, not {}",
            self.persons
        );
        ensure!(
            (1..=16).contains(&self.devices_per_person),
            "devices_per_person must be 1 to 16, not {}",
            self.devices_per_person
        );
        ensure!(
            (1..=8).contains(&self.volumes_per_space),
            "volumes_per_space must be 1 to 8, not {}",
            self.volumes_per_space
        );
        ensure!(self.duration_s > 0, "duration_s must be positive");
        for (name, p) in [
            ("shared_keys", self.shared_keys),
            ("network.loss", self.network.loss),
            ("network.duplicate", self.network.duplicate),
            ("network.reorder", self.network.reorder),
        ] {
            ensure!(
                (0.0..=0.5).contains(&p),
                "{name} must be a probability from 0 to 0.5, not {p}"
            );
        }
        for (name, [lo, hi]) in [
            ("network.delay_ms", self.network.delay_ms),
            ("faults.partition_s", self.faults.partition_s),
            ("faults.relay_down_ms", self.faults.relay_down_ms),
        ] {
            ensure!(lo <= hi, "{name} must be [low, high], not [{lo}, {hi}]");
        }
        ensure!(
            self.faults.offline_devices_per_person < self.devices_per_person
                || self.faults.offline_devices_per_person == 0,
            "offline_devices_per_person must leave at least one device online"
        );
        ensure!(
            self.real.time_scale > 0.0,
            "real.time_scale must be positive"
        );
        if let Some(f) = &self.feed {
            ensure!(f.within_s > 0, "feed.within_s must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap();
                n += 1;
            }
        }
        assert!(n >= 5, "only {n} scenarios in {}", dir.display());
    }

    #[test]
    fn a_bad_value_is_named() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ci-short.toml"),
        )
        .unwrap();
        let bad = text.replace("loss = 0.02", "loss = 1.5");
        let s: Scenario = toml::from_str(&bad).unwrap();
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("network.loss"), "{e}");
        let unknown = format!("{text}\nbogus = 1\n");
        let e = toml::from_str::<Scenario>(&unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
