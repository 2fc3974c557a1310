//! The simulation in the normal test run: a thousand seeds, the same seed
//! replaying the same run, and a protocol broken on purpose caught.
//!
//! A failing seed prints itself, the end of its trace and the command that
//! replays it exactly (`cargo run -p pingji-sim --release --bin sim --
//! --seed N --trace` prints the whole trace).

use pingji_sim::{Bug, Config, run};

/// Runs `seeds`, failing with every broken seed's report.
fn all_hold(seeds: std::ops::Range<u64>) {
    let failures: Vec<String> =
        seeds.filter_map(|seed| run(Config::new(seed)).err()).map(|failure| failure.to_string()).collect();
    assert!(failures.is_empty(), "{} seeds broke an invariant:\n{}", failures.len(), failures.join("\n\n"));
}

// A thousand seeds in four tests, which the test harness runs side by side.
#[test]
fn seeds_0_to_250_keep_every_invariant() {
    all_hold(0..250);
}

#[test]
fn seeds_250_to_500_keep_every_invariant() {
    all_hold(250..500);
}

#[test]
fn seeds_500_to_750_keep_every_invariant() {
    all_hold(500..750);
}

#[test]
fn seeds_750_to_1000_keep_every_invariant() {
    all_hold(750..1000);
}

#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 27, 188, 244] {
        let first = run(Config::new(seed)).expect("the seed holds");
        let again = run(Config::new(seed)).expect("the seed holds");
        assert_eq!(first, again, "seed {seed} ran differently the second time");
    }
    let one = run(Config::new(3)).expect("holds").trace_hash;
    let other = run(Config::new(4)).expect("holds").trace_hash;
    assert_ne!(one, other, "two seeds, one trace: the seed does not drive the run");
}

#[test]
fn the_runs_meet_the_faults_the_invariants_are_about() {
    let mut total = pingji_sim::Outcome::default();
    for seed in 0..50 {
        let outcome = run(Config::new(seed)).expect("the seed holds");
        total.border_assignments += outcome.border_assignments;
        total.takeovers += outcome.takeovers;
        total.crashes += outcome.crashes;
        total.pauses += outcome.pauses;
        total.fenced += outcome.fenced;
    }
    // Without these, the thousand seeds above would prove little.
    assert!(total.border_assignments > 20, "{total:?}");
    assert!(total.takeovers > 100 && total.crashes > 20 && total.pauses > 20, "{total:?}");
    assert!(total.fenced > 0, "no stale owner was ever fenced: {total:?}");
}

#[test]
fn a_dispatcher_that_ignores_the_fence_is_caught() {
    let caught: Vec<String> = (0..200)
        .filter_map(|seed| run(Config { bug: Some(Bug::IgnoreFence), ..Config::new(seed) }).err())
        .map(|failure| failure.to_string())
        .collect();
    assert!(!caught.is_empty(), "200 seeds with the fence ignored and no invariant broken");
    let report = &caught[0];
    assert!(report.contains("replay it exactly: cargo run -p pingji-sim --release --bin sim -- --seed "), "{report}");
    assert!(
        caught.iter().any(|report| report.contains("a stale owner wrote") || report.contains("two writers")),
        "the writer invariant never fired: {}",
        caught.join("\n\n")
    );
}

#[test]
fn the_border_protocol_before_the_simulation_assigns_someone_twice() {
    // Accepted reservations expiring, as they did before seed 27 was found.
    let caught: Vec<String> = (0..300)
        .filter_map(|seed| run(Config { bug: Some(Bug::ExpireAccepted), ..Config::new(seed) }).err())
        .map(|failure| failure.to_string())
        .collect();
    assert!(
        caught.iter().any(|report| report.contains("holds two assignments at once")),
        "300 seeds with accepted reservations expiring and nobody assigned twice: {}",
        caught.join("\n\n")
    );
}
