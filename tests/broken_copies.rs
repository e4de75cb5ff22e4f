//! A deliberately broken copy of every seed scenario fails, and its diagnostic says why: a wrong
//! parent, a missing follows-from link, a traceparent lost on the way to a mock, a wrong
//! duration. Assertions are broken by editing the copy; propagation is broken by planting the
//! bug in the service (`[service] bugs = [...]`).

mod common;

use common::*;
use trace_harness::expect::judge;
use trace_harness::report;

enum Break {
    /// Replace the first `from` in the scenario file with `to`.
    Edit(&'static str, &'static str),
    /// Run the service with this planted bug.
    Bug(&'static str),
}

/// Replays the broken copy and returns its diagnostic; the copy must fail.
fn diagnose(name: &str, how: &Break) -> String {
    let scenario = match how {
        Break::Edit(from, to) => edited(name, from, to),
        Break::Bug(bug) => with_bug(name, bug),
    };
    let outcome = run(&scenario, true);
    let verdict = judge(&outcome, &scenario.expect);
    assert!(!verdict.passed(), "the broken copy of {name} still passes");
    report::diagnostics(&outcome, &verdict)
}

fn with_bug(name: &str, bug: &str) -> trace_harness::scenario::Scenario {
    let path = scenario_path(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = format!("bugs = [\"{bug}\"]\n");
    let text = if text.contains("[service]\n") {
        text.replacen("[service]\n", &format!("[service]\n{line}"), 1)
    } else {
        format!("{text}\n[service]\n{line}")
    };
    trace_harness::scenario::Scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
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

#[test]
fn calendar_failure_broken() {
    let name = "calendar_failure";
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
    check(name, Break::Bug("unlinked_jobs"), LOST_FOLLOWS_FROM);
    check(
        name,
        Break::Bug("drop_traceparent"),
        &[
            "invariant mock-requests-carry-context",
            "to mock `google` carried no valid traceparent",
        ],
    );
    check(
        name,
        Break::Edit("== 120ms", "== 150ms"),
        &["expected: duration == 150ms", "actual:   duration 120ms"],
    );
}

#[test]
fn slow_payment_broken() {
    let name = "slow_payment";
    check(
        name,
        Break::Edit(
            "child_of = 'span[op=\"payment_success_processing\"]'",
            "child_of = 'span[op=\"payment_processing\"]'",
        ),
        &["actual:   parent is `payment_success_processing`"],
    );
    check(name, Break::Bug("unlinked_jobs"), LOST_FOLLOWS_FROM);
    check(
        name,
        Break::Bug("drop_traceparent"),
        &["to mock `stripe` carried no valid traceparent"],
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
    check(
        name,
        Break::Edit(
            "count = 1\nstatus = \"ok\"\nfollows_from",
            "count = 1\nchild_of = 'span[op=\"booking_creation\"]'\nstatus = \"ok\"\nfollows_from",
        ),
        &["actual:   parent is `webhook_scheduling`"],
    );
    check(name, Break::Bug("unlinked_jobs"), LOST_FOLLOWS_FROM);
    check(
        name,
        Break::Bug("drop_traceparent"),
        &["to mock `subscriber` carried no valid traceparent"],
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
    check(
        name,
        Break::Edit(
            "attributes = { seats = 3, requested = 3 }",
            "attributes = { seats = 3, requested = 3 }\nchild_of = 'span[op=\"schedule_mandatory_reminder\"]'",
        ),
        &["actual:   parent is `booking_creation`"],
    );
    check(name, Break::Bug("unlinked_jobs"), LOST_FOLLOWS_FROM);
    check(
        name,
        Break::Bug("drop_traceparent"),
        &["to mock `email` carried no valid traceparent"],
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
    check(
        name,
        Break::Edit(
            "duration = \"== 200ms\"",
            "duration = \"== 200ms\"\nchild_of = 'span[op=\"webhook_scheduling\"]'",
        ),
        &["actual:   parent is `booking_creation`"],
    );
    check(name, Break::Bug("unlinked_jobs"), LOST_FOLLOWS_FROM);
    check(
        name,
        Break::Bug("drop_traceparent"),
        &[
            "to mock `google` carried no valid traceparent",
            "to mock `stripe` carried no valid traceparent",
        ],
    );
    check(
        name,
        Break::Edit("== 4.2s", "== 4s"),
        &["expected: duration == 4s", "actual:   duration 4.2s"],
    );
}

#[test]
fn orphaned_jobs_start_traces_of_their_own_and_are_caught() {
    for name in [
        "calendar_failure",
        "webhook_retries",
        "seated_attendees",
        "performance",
    ] {
        check(
            name,
            Break::Bug("orphan_jobs"),
            &[
                "invariant one-trace-per-flow",
                "belong to no booking flow's trace",
            ],
        );
    }
}
