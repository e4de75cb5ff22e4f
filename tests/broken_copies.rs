//! A deliberately broken copy of every scenario fails, and its diagnostic says why: a wrong
//! parent, a missing follows-from link, a traceparent lost on the way to a mock, jobs orphaned
//! into traces of their own, a 5xx answer whose span stays `ok`, a wrong duration. Assertions
//! are broken by editing the copy; tracing is broken by planting each bug of `PlantedBug::ALL`
//! in the service, in every scenario (some pairs cannot show their bug; `shows` says which and
//! why, and the copy must pass).

mod common;

use common::*;
use trace_harness::contract::PlantedBug;
use trace_harness::expect::judge;
use trace_harness::report;
use trace_harness::scenario::Scenario;

enum Break {
    /// Replace the first `from` in the scenario file with `to`.
    Edit(&'static str, &'static str),
    /// Run the service with this planted bug.
    Bug(PlantedBug),
}

/// Replays the broken copy and returns its diagnostic; the copy must fail.
fn diagnose(name: &str, how: &Break) -> String {
    let scenario = match how {
        Break::Edit(from, to) => edited(name, from, to),
        Break::Bug(bug) => with_bug(name, *bug),
    };
    let outcome = run(&scenario, true);
    let verdict = judge(&outcome, &scenario.expect);
    assert!(!verdict.passed(), "the broken copy of {name} still passes");
    report::diagnostics(&outcome, &verdict)
}

fn with_bug(name: &str, bug: PlantedBug) -> Scenario {
    let mut scenario = load(name);
    scenario.service.bugs.push(bug);
    scenario
}

fn check(name: &str, how: Break, fragments: &[&str]) {
    let report = diagnose(name, &how);
    for fragment in fragments {
        assert!(
            report.contains(fragment),
            "{name}: no `{fragment}` in:\n{report}"
        );
    }
}

const LOST_FOLLOWS_FROM: &[&str] = &[
    "invariant async-after-cause",
    "has no follows-from link",
    "actual:   no follows-from link",
];

const ORPHANED: &[&str] = &[
    "invariant one-trace-per-flow",
    "belong to no booking flow's trace",
];

/// What a seed scenario shows with a planted bug.
enum Shows {
    /// The broken copy fails, and its diagnostic has these fragments.
    Caught(&'static [&'static str]),
    /// The scenario has nothing the bug breaks: it schedules no job (no webhook subscriber, no
    /// reminders), and its copy must pass. The README's "Planted bugs" says which and why.
    NoJobToOrphan,
    /// No request of the scenario is answered 5xx, so no span has to be in error for one; its
    /// copy must pass.
    NoServerError,
}

/// Each seed scenario against each bug; a pair without a row fails the test.
fn shows(name: &str, bug: PlantedBug) -> Shows {
    match (name, bug) {
        ("card_declined", PlantedBug::UnmarkedServerErrors) => Shows::Caught(&[
            "invariant server-error-status",
            "the book step at 2m was answered 502, but `booking_creation`, the span that served it, is ok",
        ]),
        (_, PlantedBug::UnmarkedServerErrors) => Shows::NoServerError,
        (_, PlantedBug::UnlinkedJobs) => Shows::Caught(LOST_FOLLOWS_FROM),
        ("slow_payment", PlantedBug::OrphanJobs) => Shows::NoJobToOrphan,
        (_, PlantedBug::OrphanJobs) => Shows::Caught(ORPHANED),
        ("calendar_failure", PlantedBug::DropTraceparent) => Shows::Caught(&[
            "invariant mock-requests-carry-context",
            "to mock `google` carried no valid traceparent",
        ]),
        ("slow_payment", PlantedBug::DropTraceparent) => {
            Shows::Caught(&["to mock `stripe` carried no valid traceparent"])
        }
        ("webhook_retries" | "webhook_crash", PlantedBug::DropTraceparent) => {
            Shows::Caught(&["to mock `subscriber` carried no valid traceparent"])
        }
        ("seated_attendees", PlantedBug::DropTraceparent) => {
            Shows::Caught(&["to mock `email` carried no valid traceparent"])
        }
        ("card_declined", PlantedBug::DropTraceparent) => Shows::Caught(&[
            "to mock `stripe` carried no valid traceparent",
            "to mock `subscriber` carried no valid traceparent",
        ]),
        ("performance", PlantedBug::DropTraceparent) => Shows::Caught(&[
            "to mock `google` carried no valid traceparent",
            "to mock `stripe` carried no valid traceparent",
        ]),
        ("stripe_retry", PlantedBug::DropTraceparent) => Shows::Caught(&[
            "to mock `google` carried no valid traceparent",
            "to mock `stripe` carried no valid traceparent",
            "to mock `hooks_zapier` carried no valid traceparent",
        ]),
        (other, bug) => panic!("no expectation for {other} with {bug:?}"),
    }
}

/// The scenarios broken here, one test each: every file in `scenarios/`.
const SEEDS: [&str; 8] = [
    "calendar_failure",
    "card_declined",
    "performance",
    "seated_attendees",
    "slow_payment",
    "stripe_retry",
    "webhook_crash",
    "webhook_retries",
];

#[test]
fn every_scenario_file_has_its_broken_copies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    files.sort();
    assert_eq!(files, SEEDS);
}

/// Every bug of [`PlantedBug::ALL`] planted in `name`, each caught or shown harmless.
fn check_every_planted_bug(name: &str) {
    for bug in PlantedBug::ALL {
        match shows(name, bug) {
            Shows::Caught(fragments) => check(name, Break::Bug(bug), fragments),
            Shows::NoServerError => {
                let outcome = run_green(&with_bug(name, bug));
                assert!(
                    outcome.steps.iter().all(|step| step.status < 500),
                    "{name} answers a 5xx, so {bug:?} must show"
                );
            }
            Shows::NoJobToOrphan => {
                let outcome = run_green(&with_bug(name, bug));
                assert!(
                    outcome.webhook_jobs.is_empty() && outcome.reminders.is_empty(),
                    "{name} schedules jobs, so {bug:?} must show: {:?} {:?}",
                    outcome.webhook_jobs,
                    outcome.reminders
                );
            }
        }
    }
}

#[test]
fn calendar_failure_broken() {
    let name = "calendar_failure";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "child_of = 'span[op=\"booking_creation\"]'",
            "child_of = 'span[op=\"webhook_scheduling\"]'",
        ),
        &[
            "expected: child of span[op=\"webhook_scheduling\"]",
            "actual:   parent is `booking_creation`",
        ],
    );
    check(
        name,
        Break::Edit("== 120ms", "== 150ms"),
        &["expected: duration == 150ms", "actual:   duration 120ms"],
    );
}

#[test]
fn card_declined_broken() {
    let name = "card_declined";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit("status = 502", "status = 500"),
        &["expected: HTTP 500", "actual:   HTTP 502"],
    );
    check(
        name,
        Break::Edit(
            "log = \"Payment could not be initiated",
            "log = \"Payment was not initiated",
        ),
        &["Payment was not initiated"],
    );
}

#[test]
fn slow_payment_broken() {
    let name = "slow_payment";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "child_of = 'span[op=\"payment_success_processing\"]'",
            "child_of = 'span[op=\"payment_processing\"]'",
        ),
        &["actual:   parent is `payment_success_processing`"],
    );
    check(
        name,
        Break::Edit("== 350ms", "== 300ms"),
        &["expected: duration == 300ms", "actual:   duration 350ms"],
    );
}

#[test]
fn webhook_retries_broken() {
    let name = "webhook_retries";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "count = 1\nstatus = \"ok\"\nfollows_from",
            "count = 1\nchild_of = 'span[op=\"booking_creation\"]'\nstatus = \"ok\"\nfollows_from",
        ),
        &["actual:   parent is `webhook_scheduling`"],
    );
    check(
        name,
        Break::Edit("== 1m50.12s", "== 1m20.12s"),
        &[
            "expected: duration == 1m20.12s",
            "actual:   duration 1m50.12s",
        ],
    );
}

#[test]
fn seated_attendees_broken() {
    let name = "seated_attendees";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "attributes = { seats = 3, requested = 3 }",
            "attributes = { seats = 3, requested = 3 }\nchild_of = 'span[op=\"schedule_mandatory_reminder\"]'",
        ),
        &["actual:   parent is `booking_creation`"],
    );
    check(
        name,
        Break::Edit(
            "attributes = { seats = 3, requested = 3 }",
            "attributes = { seats = 3, requested = 3 }\nduration = \">= 1s\"",
        ),
        &["expected: duration >= 1s", "actual:   duration 0s"],
    );
}

#[test]
fn performance_broken() {
    let name = "performance";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "duration = \"== 200ms\"",
            "duration = \"== 200ms\"\nchild_of = 'span[op=\"webhook_scheduling\"]'",
        ),
        &["actual:   parent is `booking_creation`"],
    );
    check(
        name,
        Break::Edit("== 4.2s", "== 4s"),
        &["expected: duration == 4s", "actual:   duration 4.2s"],
    );
}

#[test]
fn stripe_retry_broken() {
    let name = "stripe_retry";
    check_every_planted_bug(name);
    check(
        name,
        Break::Edit(
            "follows_from = 'span[op=\"payment_processing\"]'",
            "follows_from = 'span[op=\"webhook_scheduling\"]'",
        ),
        &["expected: follows from span[op=\"webhook_scheduling\"]"],
    );
    check(
        name,
        Break::Edit("count = 20", "count = 19"),
        &["expected: 19 matching spans", "actual:   20 matching spans"],
    );
}

#[test]
fn webhook_crash_broken() {
    let name = "webhook_crash";
    check_every_planted_bug(name);
    // Without the crash there is nothing to re-run: one delivery, no lease to expire.
    check(
        name,
        Break::Edit("crash = \"after_send\"\n", ""),
        &[
            "expected: 2 events",
            "expected: a log line that contains Webhook executed 15 minutes later",
            "expected: 2 requests",
            "actual:   1 requests",
        ],
    );
    // Inside the lease (until 10m) the job is still the dead process's: nobody runs it.
    check(
        name,
        Break::Edit("at = \"15m\"", "at = \"9m\""),
        &["expected: 1 matching spans", "actual:   0 matching spans"],
    );
}
