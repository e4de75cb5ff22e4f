//! The selector language and the assertions, through replays: what each selector picks, and
//! the diagnostic a deliberately broken copy of a scenario produces.

mod common;

use std::sync::OnceLock;

use common::*;
use trace_harness::expect::judge;
use trace_harness::outcome::ReplayOutcome;
use trace_harness::report;
use trace_harness::scenario::Selector;
use trace_harness::trace::Aliases;

fn calendar_failure() -> &'static ReplayOutcome {
    static OUTCOME: OnceLock<ReplayOutcome> = OnceLock::new();
    OUTCOME.get_or_init(|| run_green(&load("calendar_failure")))
}

/// `selector` picks exactly the spans `expected` names (aliases, in capture order).
fn check(selector: &str, expected: &[&str]) {
    let outcome = calendar_failure();
    let aliases = Aliases::of(&outcome.captured);
    let picked: Vec<String> = Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .select(&outcome.captured)
        .iter()
        .map(|s| aliases.span(s.span_id).to_string())
        .collect();
    assert_eq!(picked, expected, "{selector}");
}

// The replay's tree: span_001 booking_creation > {span_002 calendar_event_creation (error),
// span_003 webhook_scheduling > span_004 webhook_execution (follows from span_003)}.

#[test]
fn selectors_filter_by_operation_status_and_field() {
    check("span", &["span_001", "span_002", "span_003", "span_004"]);
    check(r#"span[op="calendar_event_creation"]"#, &["span_002"]);
    check("span[status=error]", &["span_002"]);
    check("span[status!=error]", &["span_001", "span_003", "span_004"]);
    check(
        "span[trigger_event=BOOKING_CREATED]",
        &["span_003", "span_004"],
    );
    check(r#"span[op^="webhook"]"#, &["span_003", "span_004"]);
    check(r#"span[op*="creation"]"#, &["span_001", "span_002"]);
    check("span[no_such_field=1]", &[]);
}

#[test]
fn selectors_combine_descendant_and_child() {
    check(
        r#"span[op="booking_creation"] span"#,
        &["span_002", "span_003", "span_004"],
    );
    check(
        r#"span[op="booking_creation"] > span"#,
        &["span_002", "span_003"],
    );
    check(
        r#"span[op="booking_creation"] > span[op="webhook_execution"]"#,
        &[],
    );
    check(r#"span > span > span"#, &["span_004"]);
}

#[test]
fn selectors_pick_positions_and_ancestors() {
    check("span:first", &["span_001"]);
    check("span:last", &["span_004"]);
    check("span:nth(3)", &["span_003"]);
    check("span:nth(9)", &[]);
    check("span:has(span[status=error])", &["span_001"]);
    check(
        r#"span:has(span[op="webhook_execution"])"#,
        &["span_001", "span_003"],
    );
    check(
        r#"span:has(span:has(span[op="webhook_execution"]))"#,
        &["span_001"],
    );
}

/// Replays `name` with `from` replaced by `to` in its file and returns the failure report.
fn broken(name: &str, from: &str, to: &str) -> String {
    let scenario = edited(name, from, to);
    let outcome = run(&scenario, true);
    let verdict = judge(&outcome, &scenario.expect);
    assert!(!verdict.passed(), "the broken copy of {name} still passes");
    report::diagnostics(&outcome, &verdict)
}

fn assert_mentions(report: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(report.contains(fragment), "no `{fragment}` in:\n{report}");
    }
}

#[test]
fn a_wrong_parent_is_reported_with_the_actual_parent() {
    let report = broken(
        "calendar_failure",
        "child_of = 'span[op=\"booking_creation\"]'",
        "child_of = 'span[op=\"webhook_scheduling\"]'",
    );
    assert_mentions(
        &report,
        &[
            "FAILED calendar_failure (seed 1, tracing on)",
            "on span[op=\"calendar_event_creation\"]",
            "expected: child of span[op=\"webhook_scheduling\"]",
            "actual:   parent is `booking_creation`",
            "matched:  span_002",
            "✗    ├─ span_002 calendar_event_creation",
        ],
    );
}

#[test]
fn a_missing_follows_from_is_reported() {
    let report = broken(
        "calendar_failure",
        "follows_from = 'span[op=\"webhook_scheduling\"]'",
        "follows_from = 'span[op=\"calendar_event_creation\"]'",
    );
    assert_mentions(
        &report,
        &[
            "expected: follows from span[op=\"calendar_event_creation\"]",
            "actual:   follows from `webhook_scheduling`",
            "matched:  span_004",
        ],
    );
}

#[test]
fn a_wrong_duration_is_reported_with_the_actual_duration() {
    let report = broken(
        "calendar_failure",
        "duration = \"== 120ms\"",
        "duration = \"< 100ms\"",
    );
    assert_mentions(
        &report,
        &["expected: duration < 100ms", "actual:   duration 120ms"],
    );
}

#[test]
fn wrong_counts_attributes_events_and_logs_are_reported() {
    let report = broken(
        "calendar_failure",
        "events = { count = 2 }",
        "events = { count = 3 }",
    );
    assert_mentions(&report, &["expected: 3 events", "actual:   2 events"]);
    let report = broken(
        "calendar_failure",
        "attributes = { event_type_id = 123 }",
        "attributes = { event_type_id = \">= 500\" }",
    );
    assert_mentions(
        &report,
        &[
            "expected: event_type_id >= 500",
            "actual:   event_type_id = 123",
        ],
    );
    let report = broken("calendar_failure", "5 minutes later$", "6 minutes later$");
    assert_mentions(
        &report,
        &["expected: a log line that matches ^Webhook executed 6 minutes later$"],
    );
    let report = broken(
        "calendar_failure",
        "mock = \"google\"\ncount = 1",
        "mock = \"google\"\ncount = 2",
    );
    assert_mentions(
        &report,
        &[
            "on mock `google`",
            "expected: 2 requests",
            "actual:   1 requests",
        ],
    );
}

#[test]
fn the_field_catalogue_lists_every_field_each_seed_scenario_records() {
    for scenario in common::external::scenarios() {
        let name = &scenario.name;
        let outcome = common::run(&scenario, true);
        for span in &outcome.captured.spans {
            for (field, _) in span.fields.iter() {
                assert!(
                    trace_harness::contract::fields_of(span.op).contains(field),
                    "{name}: `{}` records `{field}`, which contract::fields_of does not list",
                    span.op
                );
            }
        }
    }
}

/// A booking that arrives with a caller's `traceparent`, asserted to continue it.
const CONTINUED: &str = r#"
description = "a booking from a frontend that is already traced"
seed = 1

[[timeline]]
at = "0s"
book = { event_type_id = 1, traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }

[[expect]]
name = "the booking continues the frontend's trace"
select = 'span[op="booking_creation"][trace_id="4bf92f3577b34da6a3ce929d0e0e4736"]'
count = 1
attributes = { parent_id = "00f067aa0ba902b7" }
"#;

#[test]
fn trace_continuation_is_asserted_by_trace_and_parent_ids_and_shown_in_the_tree() {
    let scenario = parse("continued.toml", CONTINUED);
    let outcome = run(&scenario, true);
    assert!(judge(&outcome, &scenario.expect).passed());
    let tree = report::tree(&outcome, &[]);
    assert!(
        tree.contains("booking_creation")
            && tree.contains(" ⇠ continues 00f067aa0ba902b7 (remote parent)"),
        "{tree}"
    );
    // Another parent, or another trace, and the assertion says which.
    let wrong_parent = parse(
        "continued.toml",
        &CONTINUED.replace(
            "parent_id = \"00f067aa0ba902b7\"",
            "parent_id = \"00f067aa0ba902b8\"",
        ),
    );
    let verdict = judge(&run(&wrong_parent, true), &wrong_parent.expect);
    assert_eq!(verdict.failures.len(), 1, "{verdict:?}");
    assert_eq!(verdict.failures[0].actual, "parent_id = 00f067aa0ba902b7");
    let wrong_trace = parse(
        "continued.toml",
        &CONTINUED.replace("[trace_id=\"4bf9", "[trace_id=\"5bf9"),
    );
    let verdict = judge(&run(&wrong_trace, true), &wrong_trace.expect);
    assert_eq!(verdict.failures[0].actual, "0 matching spans");
}

#[test]
fn a_steps_http_answer_is_asserted_by_its_number_traced_or_not() {
    let text = |status: u16| {
        format!(
            "description = \"a booking, a restart, a cron call\"\nseed = 1\n\n\
             [[timeline]]\nat = \"0s\"\nbook = {{ event_type_id = 1 }}\n\n\
             [[timeline]]\nat = \"1s\"\nrestart = true\n\n\
             [[timeline]]\nat = \"2s\"\ncron = \"webhooks\"\n\n\
             [[expect]]\nname = \"the booking is created\"\nstep = 1\nstatus = {status}\n\n\
             [[expect]]\nstep = 3\nstatus = 200\n"
        )
    };
    for tracing in [true, false] {
        let good = parse("steps.toml", &text(201));
        assert!(judge(&run(&good, tracing), &good.expect).passed());
        let wrong = parse("steps.toml", &text(402));
        let verdict = judge(&run(&wrong, tracing), &wrong.expect);
        assert_eq!(verdict.failures.len(), 1, "{verdict:?}");
        let failure = &verdict.failures[0];
        assert_eq!(
            (failure.assertion.as_str(), failure.target.as_str()),
            ("the booking is created", "step 1")
        );
        assert_eq!(
            (failure.expected.as_str(), failure.actual.as_str()),
            ("HTTP 402", "HTTP 201")
        );
    }
}
