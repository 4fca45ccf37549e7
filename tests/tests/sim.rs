//! The simulator as a test (issue 3): kept traces replay and converge, the deterministic
//! mode replays identically, planted bugs make it fail, and a short run of the CI
//! scenario converges. The 200-seed CI run is `mes-sim` itself, in scripts/test.

use mes_tests::sim::det;
use mes_tests::sim::scenario::Scenario;
use mes_tests::sim::trace::{PlantedBug, Trace};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn ci() -> Scenario {
    Scenario::load(&root().join("scenarios/ci-short.toml")).unwrap()
}

#[test]
fn kept_failing_traces_replay_and_now_converge() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("sim-traces")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let trace: Trace = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let (report, log) = det::run(trace).unwrap();
        assert!(
            report.ok,
            "{} fails again:\n{}\n{}",
            p.display(),
            report.text(),
            log[log.len().saturating_sub(40)..].join("\n")
        );
        n += 1;
    }
    assert!(n >= 1, "no kept trace");
}

#[test]
fn a_trace_replays_identically() {
    let t = Trace::generate(&ci(), 7, None);
    let (mut a, log_a) = det::run(t.clone()).unwrap();
    let (mut b, log_b) = det::run(t).unwrap();
    a.wall_ms = 0;
    b.wall_ms = 0;
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(log_a, log_b);
}

#[test]
fn planted_bugs_make_the_simulation_fail() {
    for bug in [PlantedBug::RelayDropsBundle, PlantedBug::AckBeforeFlush] {
        for seed in [1, 2, 3] {
            let (report, _) = det::run(Trace::generate(&ci(), seed, Some(bug))).unwrap();
            assert!(!report.ok, "{bug:?} went unnoticed on seed {seed}");
            assert!(
                report.problems.iter().any(|p| p.starts_with("lost:")),
                "{bug:?} seed {seed}: {:?}",
                report.problems
            );
        }
    }
}

#[test]
fn the_ci_scenario_converges_on_twenty_seeds() {
    for seed in 100..120 {
        let (report, _) = det::run(Trace::generate(&ci(), seed, None)).unwrap();
        assert!(report.ok, "{}", report.text());
        let f = &report.faults;
        assert!(f.partitions >= 1 && f.relay_restarts >= 1 && f.crashes >= 1);
        assert!(report.operations.acknowledged > 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_mode_converges_and_catches_a_dropped_bundle() {
    let soak = Scenario::load(&root().join("scenarios/soak.toml")).unwrap();
    let (report, _) = mes_tests::sim::real::run(Trace::generate(&soak, 0, None))
        .await
        .unwrap();
    assert!(report.ok, "{}", report.text());
    assert!(report.faults.crashes >= 1 && report.faults.relay_restarts >= 1);
    assert_eq!(report.faults.dropped_bundles, 0);
    // Control: the relay drops one bundle it acknowledged; the run must fail. This once
    // missed now and then (issue 23): the drop was counted from the relay's start, so it
    // could fall on a bundle of the setup, and a relay restart began the count again and
    // could end the run before reaching it. The count now starts after the setup and
    // survives restarts, and the report says the drop took place before judging it.
    let mut planted = Trace::generate(&soak, 0, Some(PlantedBug::RelayDropsBundle));
    planted.scenario.real.settle_s = 15;
    let (report, _) = mes_tests::sim::real::run(planted).await.unwrap();
    assert_eq!(
        report.faults.dropped_bundles,
        1,
        "the planted drop never took place:\n{}",
        report.text()
    );
    assert!(!report.ok, "the dropped bundle went unnoticed");
}
