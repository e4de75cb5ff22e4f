//! The harness's own booking service as a service it did not write: `trace-harness serve
//! --contract` started per replay from a `service.toml`, its spans received over OTLP/HTTP.
//! The same scenario files give the same outcome as the in-process replay: the same span
//! tree, seed log view, timings view and verdict; and each planted bug fails the same check.

use std::path::Path;

use trace_harness::contract::PlantedBug;
use trace_harness::report::{seed_log_view, timing_view, tree};
use trace_harness::runner::{replay, replay_against, ReplayOptions, ServiceSpec};
use trace_harness::scenario::Scenario;
use trace_harness::{judge, ReplayOutcome};

/// The service file the README shows, with the test's build of the harness as its program.
fn own_service() -> ServiceSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/own-service/service.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    // `${TRACE_HARNESS_BIN}` is the running harness; in a test that is the test binary.
    let text = text.replace("${TRACE_HARNESS_BIN}", env!("CARGO_BIN_EXE_trace-harness"));
    ServiceSpec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn scenarios() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Everything a reader compares: the views and the verdict's failures.
fn views(outcome: &ReplayOutcome, scenario: &Scenario) -> String {
    let verdict = judge(outcome, &scenario.expect);
    format!(
        "== tree\n{}\n== logs\n{}\n== timings\n{}\n== verdict passed={}\n{:#?}\n{:#?}",
        tree(outcome, &[]),
        seed_log_view(outcome),
        timing_view(outcome),
        verdict.passed(),
        verdict.violations,
        verdict.failures,
    )
}

#[test]
fn every_scenario_replays_externally_as_it_does_in_process() {
    let service = own_service();
    for scenario in scenarios() {
        let inside = replay(&scenario, ReplayOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        let outside = replay_against(&scenario, ReplayOptions::default(), Some(&service))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        assert!(
            !outside.captured.spans.is_empty(),
            "{}: no spans arrived",
            scenario.name
        );
        // A line written outside any span (a refused Stripe event's) belongs to no trace, so
        // no span carries it over OTLP: the one difference, stated in the README.
        let mut traced = inside.clone();
        traced.captured.logs.retain(|line| line.span.is_some());
        let expected = views(&traced, &scenario);
        let got = views(&outside, &scenario);
        assert_eq!(got, expected, "{}", scenario.name);
        assert!(
            judge(&outside, &scenario.expect).passed(),
            "{}",
            scenario.name
        );
    }
}

#[test]
fn each_planted_bug_fails_externally_with_the_in_process_diagnostic() {
    let service = own_service();
    let scenario = scenarios()
        .into_iter()
        .find(|s| s.name == "webhook_retries")
        .unwrap_or_else(|| panic!("no webhook_retries scenario"));
    for bug in PlantedBug::ALL {
        let mut broken = scenario.clone();
        broken.service.bugs = vec![bug];
        let inside = replay(&broken, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let outside = replay_against(&broken, ReplayOptions::default(), Some(&service))
            .unwrap_or_else(|e| panic!("{bug:?}: {e}"));
        let (inside_verdict, outside_verdict) = (
            judge(&inside, &broken.expect),
            judge(&outside, &broken.expect),
        );
        assert!(!inside_verdict.passed(), "{bug:?} passes in-process");
        assert!(!outside_verdict.passed(), "{bug:?} passes externally");
        assert_eq!(
            trace_harness::diagnostics(&outside, &outside_verdict),
            trace_harness::diagnostics(&inside, &inside_verdict),
            "{bug:?}"
        );
    }
}
