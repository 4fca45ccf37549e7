//! A trace: the complete, explicit input of one simulation (every edit and every fault
//! with its time, plus the seed of the per-message network draws). A seed only names a
//! trace through [`Trace::generate`], whose meaning changes when the generator changes;
//! a kept trace file replays the same inputs whatever the code became.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::scenario::Scenario;

/// A bug planted on purpose to show the checker can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PlantedBug {
    /// The relay acknowledges one bundle but never stores it.
    RelayDropsBundle,
    /// Devices acknowledge an edit before flushing it (and flush lazily).
    AckBeforeFlush,
}

/// One scheduled input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A device sets `key` to `value` in one of its space's volumes.
    Edit {
        /// Device index.
        device: usize,
        /// Volume index within the space.
        volume: usize,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// The device cannot reach the relay for `for_ms` (it keeps editing).
    Partition {
        /// Device index.
        device: usize,
        /// Length.
        for_ms: u64,
    },
    /// The device is offline for a long time (same effect as a partition; reported apart).
    Offline {
        /// Device index.
        device: usize,
        /// Length.
        for_ms: u64,
    },
    /// The relay stops (every connection drops) and starts again on the same store.
    RelayRestart {
        /// Down time.
        down_ms: u64,
    },
    /// The device process is killed (nothing unflushed survives) and restarted.
    Crash {
        /// Device index.
        device: usize,
        /// Down time.
        down_ms: u64,
    },
}

/// An input at a simulated time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    /// Milliseconds from the start.
    pub at_ms: u64,
    /// What happens.
    pub action: Action,
}

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The scenario (people, devices, network probabilities).
    pub scenario: Scenario,
    /// The seed this trace was generated from (information only).
    pub seed: u64,
    /// Seed of the per-message network draws and of the keys.
    pub net_seed: u64,
    /// The planted bug, if any.
    pub plant: Option<PlantedBug>,
    /// With [`PlantedBug::RelayDropsBundle`]: which appended bundle is dropped.
    pub drop_bundle: Option<u64>,
    /// Inputs, by time.
    pub actions: Vec<Timed>,
}

/// A device of the simulation: whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSlot {
    /// Its person (and space).
    pub person: usize,
    /// True for the document feed's device.
    pub feeder: bool,
}

/// The devices of a scenario, in index order: each person's devices, then the feed's.
pub fn devices(s: &Scenario) -> Vec<DeviceSlot> {
    let mut out: Vec<DeviceSlot> = (0..s.persons * s.devices_per_person)
        .map(|i| DeviceSlot {
            person: i / s.devices_per_person,
            feeder: false,
        })
        .collect();
    if s.feed.is_some() {
        out.push(DeviceSlot {
            person: 0,
            feeder: true,
        });
    }
    out
}

fn range(rng: &mut ChaCha8Rng, [lo, hi]: [u64; 2]) -> u64 {
    rng.gen_range(lo..=hi)
}

impl Trace {
    /// The schedule of `seed`: edits spread over the duration, and at least one fault of
    /// every kind (lost, duplicated and reordered messages are drawn per message with the
    /// scenario's probabilities, at least 1 %; partitions, offline periods, relay restarts
    /// and crashes at least once each).
    pub fn generate(scenario: &Scenario, seed: u64, plant: Option<PlantedBug>) -> Trace {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut scenario = scenario.clone();
        let n = &mut scenario.network;
        n.loss = n.loss.max(0.01);
        n.duplicate = n.duplicate.max(0.01);
        n.reorder = n.reorder.max(0.01);
        let s = &scenario;
        let slots = devices(s);
        let people: Vec<usize> = (0..slots.len()).filter(|d| !slots[*d].feeder).collect();
        let end = s.duration_s * 1000;
        let mut actions = Vec::new();
        let mut counters = vec![0usize; slots.len()];
        let mut edit = |rng: &mut ChaCha8Rng, device: usize, at_ms: u64, shared: bool| {
            counters[device] += 1;
            let key = if shared {
                format!("shared-{}", rng.gen_range(0..4))
            } else if slots[device].feeder {
                format!("doc-{}", counters[device])
            } else {
                format!("d{device}-{}", counters[device])
            };
            Timed {
                at_ms,
                action: Action::Edit {
                    device,
                    volume: rng.gen_range(0..s.volumes_per_space),
                    key,
                    value: format!("v{:x}", rng.gen::<u32>()),
                },
            }
        };
        for _ in 0..s.edits {
            let device = *people.choose(&mut rng).expect("at least one device");
            let at = rng.gen_range(0..end);
            let shared = rng.gen_bool(s.shared_keys);
            actions.push(edit(&mut rng, device, at, shared));
        }
        if let Some(f) = &s.feed {
            let feeder = slots.len() - 1;
            let within = (f.within_s * 1000).min(end).max(1);
            for _ in 0..f.documents {
                let at = rng.gen_range(0..within);
                actions.push(edit(&mut rng, feeder, at, false));
            }
        }
        for _ in 0..s.faults.partitions.max(1) {
            let device = rng.gen_range(0..slots.len());
            let for_ms = range(&mut rng, s.faults.partition_s) * 1000;
            actions.push(Timed {
                at_ms: rng.gen_range(0..end),
                action: Action::Partition { device, for_ms },
            });
        }
        for person in 0..s.persons {
            let mut own: Vec<usize> = (0..slots.len())
                .filter(|d| slots[*d].person == person && !slots[*d].feeder)
                .collect();
            own.shuffle(&mut rng);
            for &device in own.iter().take(s.faults.offline_devices_per_person) {
                actions.push(Timed {
                    at_ms: rng.gen_range(0..end / 4 + 1),
                    action: Action::Offline {
                        device,
                        for_ms: s.faults.offline_s * 1000,
                    },
                });
            }
        }
        for _ in 0..s.faults.relay_restarts.max(1) {
            actions.push(Timed {
                at_ms: rng.gen_range(0..end),
                action: Action::RelayRestart {
                    down_ms: range(&mut rng, s.faults.relay_down_ms),
                },
            });
        }
        // Crashes land just after an edit of the crashed device: the moment an
        // acknowledgement before the flush would be lost.
        let edits: Vec<(u64, usize)> = actions
            .iter()
            .filter_map(|t| match t.action {
                Action::Edit { device, .. } => Some((t.at_ms, device)),
                _ => None,
            })
            .collect();
        for _ in 0..s.faults.device_crashes.max(1) {
            let (at, device) = match edits.choose(&mut rng) {
                Some(e) => *e,
                None => (rng.gen_range(0..end), rng.gen_range(0..slots.len())),
            };
            actions.push(Timed {
                at_ms: at,
                action: Action::Crash {
                    device,
                    down_ms: rng.gen_range(500..=30_000),
                },
            });
        }
        // Stable order: by time, inputs of one instant in generation order.
        actions.sort_by_key(|t| t.at_ms);
        let total_edits = edits.len().max(2) as u64;
        Trace {
            net_seed: rng.gen(),
            drop_bundle: (plant == Some(PlantedBug::RelayDropsBundle))
                .then(|| rng.gen_range(1..=total_edits / 2)),
            scenario,
            seed,
            plant,
            actions,
        }
    }

    /// How many inputs of each fault kind the schedule holds.
    pub fn fault_kinds(&self) -> [usize; 4] {
        let mut k = [0; 4];
        for t in &self.actions {
            match t.action {
                Action::Partition { .. } => k[0] += 1,
                Action::Offline { .. } => k[1] += 1,
                Action::RelayRestart { .. } => k[2] += 1,
                Action::Crash { .. } => k[3] += 1,
                Action::Edit { .. } => {}
            }
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci() -> Scenario {
        Scenario::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ci-short.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_seed_always_gives_the_same_trace_and_every_fault_kind() {
        let s = ci();
        for seed in 0..50 {
            let t = Trace::generate(&s, seed, None);
            assert_eq!(t, Trace::generate(&s, seed, None));
            let [partitions, _offline, restarts, crashes] = t.fault_kinds();
            assert!(
                partitions >= 1 && restarts >= 1 && crashes >= 1,
                "seed {seed}"
            );
            let n = &t.scenario.network;
            assert!(n.loss > 0.0 && n.duplicate > 0.0 && n.reorder > 0.0);
            assert!(t.actions.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        }
        assert_ne!(Trace::generate(&s, 1, None), Trace::generate(&s, 2, None));
    }
}
