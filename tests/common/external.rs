//! Judging a service the harness did not write against the in-process one, for every service
//! under test alike (the own service as a process, the Node service): the same scenario files
//! must give the same views and verdicts, each planted bug the same diagnostic, and opting out
//! the same answers with nothing propagated.

use std::path::Path;

use trace_harness::contract::PlantedBug;
use trace_harness::expect::judge;
use trace_harness::outcome::{ReplayOutcome, SpanSource};
use trace_harness::report::{seed_log_view, timing_view, tree};
use trace_harness::runner::{replay, replay_against, ReplayOptions, ServiceSpec};
use trace_harness::scenario::Scenario;

/// The service file at `path` (relative to this crate), with the test's build of the harness
/// as `${TRACE_HARNESS_BIN}`.
pub fn service_file(path: &str) -> ServiceSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    // `${TRACE_HARNESS_BIN}` is the running harness; in a test that is the test binary.
    let text = text.replace("${TRACE_HARNESS_BIN}", env!("CARGO_BIN_EXE_trace-harness"));
    ServiceSpec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Every scenario in `scenarios/`, by file name.
pub fn scenarios() -> Vec<Scenario> {
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

/// The scenario named `name`.
pub fn scenario(name: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} scenario"))
}

/// Everything a reader compares: the views and the verdict's findings.
pub fn views(outcome: &ReplayOutcome, scenario: &Scenario) -> String {
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

/// Every scenario replayed against `service` shows the in-process replay's span tree, seed log
/// view, timings and verdict, and passes with nothing left unchecked.
pub fn replays_like_in_process(service: &ServiceSpec) {
    for scenario in scenarios() {
        replays_one_like_in_process(service, &scenario);
    }
}

/// `scenario` replayed against `service` shows the in-process replay's span tree, seed log
/// view, timings and verdict, and passes with nothing left unchecked.
pub fn replays_one_like_in_process(service: &ServiceSpec, scenario: &Scenario) {
    let inside = replay(scenario, ReplayOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let outside = replay_against(scenario, ReplayOptions::default(), Some(service))
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
    assert_eq!(
        views(&outside, scenario),
        views(&traced, scenario),
        "{}",
        scenario.name
    );
    assert_eq!(outside.crashes, inside.crashes, "{}", scenario.name);
    let verdict = judge(&outside, &scenario.expect);
    assert!(verdict.passed(), "{}", scenario.name);
    assert!(verdict.unchecked.is_empty(), "{}", scenario.name);
}

/// Three attendees' reminders, the second one's send dies (also `tests/service_crash.rs`).
pub const CRASH_IN_REMINDERS: &str = r#"
description = "three attendees' reminders; the second one's send dies"
seed = 14

[[event_types]]
id = 456
seats = 3
reminders = true

[mocks.email]
kind = "email_provider"

[[timeline]]
at = "0s"
book = { event_type_id = 456, attendees = 3 }

[[timeline]]
at = "1m"
cron = "reminders"
crash = { point = "after_send", job = 2 }

[[timeline]]
at = "30m"
cron = "reminders"
"#;

/// Crashes beyond `scenarios/webhook_crash.toml`'s, each point and where in a call: a
/// reminder's send inside a booking's span, the second job of a call, a job given up after
/// its third claim. An external service dies at them by exiting, and is restarted.
pub fn crash_scenarios() -> Vec<Scenario> {
    let second_job = r#"
description = "two bookings, one cron call; the second job dies before its commit"
seed = 13

[mocks.subscriber]
kind = "webhook_subscriber"
respond = [{ status = 503 }, { status = 200, latency = "40ms" }]

[[timeline]]
at = "0s"
book = { event_type_id = 1 }

[[timeline]]
at = "1s"
book = { event_type_id = 1 }

[[timeline]]
at = "5m"
cron = "webhooks"
crash = { point = "before_commit", job = 2 }

[[timeline]]
at = "20m"
cron = "webhooks"
"#;
    let given_up = r#"
description = "every run of the one job dies until it is given up"
seed = 12

[mocks.subscriber]
kind = "webhook_subscriber"

[[timeline]]
at = "0s"
book = { event_type_id = 1 }

[[timeline]]
at = "5m"
cron = "webhooks"
crash = "after_send"

[[timeline]]
at = "15m"
cron = "webhooks"
crash = "after_claim"

[[timeline]]
at = "25m"
cron = "webhooks"
crash = "before_commit"

[[timeline]]
at = "35m"
cron = "webhooks"
"#;
    [
        ("crash_in_reminders.toml", CRASH_IN_REMINDERS),
        ("crash_at_second_job.toml", second_job),
        ("crash_until_given_up.toml", given_up),
    ]
    .into_iter()
    .map(|(name, text)| Scenario::parse(Path::new(name), text).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

/// Each of [`crash_scenarios`] replayed against `service` shows the in-process replay's span
/// tree (with what each crash lost and which deliveries came again), seed log view, timings
/// and verdict: the same leases, re-runs and give-ups, its process killed at the same points.
pub fn crashes_like_in_process(service: &ServiceSpec) {
    for scenario in crash_scenarios() {
        replays_one_like_in_process(service, &scenario);
    }
}

/// Whether `bug` planted in the scenario `name` passes, as `tests/broken_copies.rs` says why:
/// `slow_payment` has no job to orphan, and only `card_declined` answers a request 5xx.
fn bug_cannot_show(name: &str, bug: PlantedBug) -> bool {
    match bug {
        PlantedBug::OrphanJobs => name == "slow_payment",
        PlantedBug::UnmarkedServerErrors => name != "card_declined",
        PlantedBug::DropTraceparent | PlantedBug::UnlinkedJobs => false,
    }
}

/// Every scenario with each planted bug (`tests/broken_copies.rs`'s matrix): against `service`
/// the verdict is the in-process one, the same diagnostic where it fails (every pair fails but
/// those [`bug_cannot_show`] names, which pass both ways).
pub fn bugs_caught_like_in_process(service: &ServiceSpec) {
    let scenarios = scenarios();
    for scenario in &scenarios {
        for bug in PlantedBug::ALL {
            let mut broken = scenario.clone();
            broken.service.bugs = vec![bug];
            let inside =
                replay(&broken, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
            let outside = replay_against(&broken, ReplayOptions::default(), Some(service))
                .unwrap_or_else(|e| panic!("{} {bug:?}: {e}", scenario.name));
            let (inside_verdict, outside_verdict) = (
                judge(&inside, &broken.expect),
                judge(&outside, &broken.expect),
            );
            assert_eq!(
                inside_verdict.passed(),
                bug_cannot_show(&scenario.name, bug),
                "{} {bug:?} in-process",
                scenario.name
            );
            assert_eq!(
                outside_verdict.passed(),
                inside_verdict.passed(),
                "{} {bug:?}",
                scenario.name
            );
            if !inside_verdict.passed() {
                // The out-of-span line of a refused Stripe event does not travel over OTLP.
                let mut traced = inside.clone();
                traced.captured.logs.retain(|line| line.span.is_some());
                assert_eq!(
                    trace_harness::diagnostics(&outside, &outside_verdict),
                    trace_harness::diagnostics(&traced, &judge(&traced, &broken.expect)),
                    "{} {bug:?}",
                    scenario.name
                );
            }
        }
    }
}

/// What an untraced replay's answers are compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// The in-process service's, byte for byte: a service that words its errors alike.
    InProcess,
    /// The same service's traced answers; against in-process only the statuses (a service
    /// whose libraries word error bodies their own way, as stripe-node does).
    TracedSelf,
}

/// Untraced, `service` answers every step as `answers` says, with the in-process service's
/// statuses, and no mock gets a `traceparent` or `tracestate`.
pub fn untraced_like_in_process(service: &ServiceSpec, answers: Answers) {
    let untraced = ReplayOptions { tracing: false };
    let replies = |o: &ReplayOutcome| {
        o.steps
            .iter()
            .map(|s| (s.status, s.body.clone()))
            .collect::<Vec<_>>()
    };
    let statuses = |o: &ReplayOutcome| o.steps.iter().map(|s| s.status).collect::<Vec<_>>();
    for scenario in scenarios() {
        let inside = replay(&scenario, untraced).unwrap_or_else(|e| panic!("{e}"));
        let outside = replay_against(&scenario, untraced, Some(service))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        assert!(outside.captured.spans.is_empty(), "{}", scenario.name);
        assert!(
            outside.steps.iter().all(|s| s.trace_id.is_none()),
            "{}: an X-Trace-Id untraced",
            scenario.name
        );
        assert_eq!(statuses(&outside), statuses(&inside), "{}", scenario.name);
        let expected = match answers {
            Answers::InProcess => replies(&inside),
            Answers::TracedSelf => replies(
                &replay_against(&scenario, ReplayOptions::default(), Some(service))
                    .unwrap_or_else(|e| panic!("{}: {e}", scenario.name)),
            ),
        };
        assert_eq!(replies(&outside), expected, "{}", scenario.name);
        assert!(
            outside
                .requests
                .iter()
                .all(|r| r.traceparent.is_none() && r.tracestate.is_none()),
            "{}: a mock got a traceparent",
            scenario.name
        );
        assert_eq!(
            outside.requests.len(),
            inside.requests.len(),
            "{}",
            scenario.name
        );
    }
}

/// `(operation, message)` of every line written in a span, in order: what log lines carry.
fn logged(outcome: &ReplayOutcome) -> Vec<(&'static str, String)> {
    outcome
        .captured
        .logs
        .iter()
        .filter_map(|l| Some((l.span?.op, l.message.clone())))
        .collect()
}

/// Judged by its log lines alone (`telemetry = "logs"`), `service` passes every scenario with
/// the in-process replay's lines in as many traces, and names what lines cannot show.
pub fn passes_log_only(service: &ServiceSpec) {
    for scenario in scenarios() {
        let inside = replay(&scenario, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let outside = replay_against(&scenario, ReplayOptions::default(), Some(service))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        assert_eq!(outside.source, SpanSource::LogLines);
        // The same lines, in the same traces, as the in-process replay wrote in its spans.
        assert_eq!(logged(&outside), logged(&inside), "{}", scenario.name);
        assert_eq!(
            outside.captured.trace_ids().len(),
            inside.captured.trace_ids().len(),
            "{}",
            scenario.name
        );
        let verdict = judge(&outside, &scenario.expect);
        assert!(verdict.passed(), "{}: {verdict:#?}", scenario.name);
        let unchecked: Vec<&str> = verdict.unchecked.iter().map(|u| u.check.as_str()).collect();
        for invariant in ["parent-exists", "child-within-parent", "async-after-cause"] {
            assert!(
                unchecked.contains(&invariant),
                "{}: {unchecked:?}",
                scenario.name
            );
        }
        // Every assertion is either checked or named: the scenarios all assert nesting.
        assert!(
            unchecked.iter().any(|u| u.starts_with("assertion ")),
            "{}: {unchecked:?}",
            scenario.name
        );
    }
}

/// `flows` concurrent bookings of `calendar_failure` against one process of `service`: every
/// span, log line and mock request belongs to its own flow's trace, one trace per flow, and
/// every booking's webhook is delivered exactly once (no job lost, none run twice). This is
/// where context lost across an `await` or a job row shows.
pub fn flows_keep_apart(service: &ServiceSpec, flows: usize) {
    use trace_harness::expect::{check_isolation, webhook_deliveries};
    use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
    let options = LoadOptions {
        tracing: true,
        transport: Transport::Http,
        record_mock_requests: true,
    };
    let mut rig = FlowRig::start_against(&scenario("calendar_failure"), options, Some(service))
        .unwrap_or_else(|e| panic!("{e}"));
    let batch = rig.run(flows).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.failed_flows, 0, "every booking is created");
    let responses = rig.responses().to_vec();
    let requests = rig.mock_requests();
    let captured = rig.finish();
    let findings = check_isolation(&responses, &captured, &requests);
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    assert_eq!(captured.trace_ids().len(), flows, "one trace per flow");
    let deliveries = webhook_deliveries(&requests);
    assert_eq!(deliveries.len(), flows, "a delivery for every booking");
    assert!(deliveries.values().all(|&n| n == 1), "each delivered once");
}
