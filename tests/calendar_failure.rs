//! Seed scenario 1 end to end: the log view, the traceparent at each mock, and tracing opt-in.

mod common;

use common::*;
use trace_harness::expect::check_invariants;
use trace_harness::report;
use trace_harness::trace::{SpanStatus, TraceContext};

/// Scenario 1's listing, as the seed document prints it.
const SEED_SCENARIO_1: &str = "
[trace:trace_xyz123 span:span_001 op:booking_creation] Booking creation started
[trace:trace_xyz123 span:span_002 op:calendar_event_creation] EventManager.create started
[trace:trace_xyz123 span:span_002 op:calendar_event_creation] Google Calendar API error: Rate limit exceeded
[trace:trace_xyz123 span:span_003 op:webhook_scheduling] Scheduling BOOKING_CREATED webhook
[trace:trace_xyz123 span:span_004 op:webhook_execution] Webhook executed 5 minutes later
";

#[test]
fn the_log_view_reproduces_the_seed_listing() {
    let outcome = run_green(&load("calendar_failure"));
    assert_reproduces_listing(&outcome, SEED_SCENARIO_1);
}

#[test]
fn the_webhook_delay_in_the_log_comes_from_virtual_time() {
    let later = edited("calendar_failure", "at = \"5m\"", "at = \"12m\"");
    // The scenario's own assertion on "5 minutes" now fails, as it should; read the log.
    let outcome = run(&later, true);
    let lines = report::seed_log_view(&outcome);
    assert!(
        lines.contains("Webhook executed 12 minutes later"),
        "{lines}"
    );
    assert!(!lines.contains("5 minutes"), "{lines}");
}

#[test]
fn the_calendar_error_message_comes_from_googles_body() {
    let quota = edited(
        "calendar_failure",
        "error = \"rateLimitExceeded\"",
        "error = \"quotaExceeded\"",
    );
    let outcome = run(&quota, true);
    let lines = report::seed_log_view(&outcome);
    assert!(
        lines.contains("Google Calendar API error: Calendar usage limits exceeded."),
        "{lines}"
    );
}

#[test]
fn each_mock_request_carries_the_context_of_the_span_that_sent_it() {
    let outcome = run_green(&load("calendar_failure"));
    let booking = &outcome.steps[0];
    let trace_id = booking
        .trace_id
        .clone()
        .expect("X-Trace-Id on the booking response");
    let span = |op: &str| {
        let found: Vec<_> = outcome
            .captured
            .spans
            .iter()
            .filter(|s| s.op == op)
            .collect();
        assert_eq!(found.len(), 1, "one `{op}` span");
        found[0].clone()
    };
    let context_at = |mock: &str| {
        let received: Vec<_> = outcome.requests.iter().filter(|r| r.mock == mock).collect();
        assert_eq!(
            received.len(),
            1,
            "mock `{mock}` received exactly one request"
        );
        let header = received[0]
            .traceparent
            .as_deref()
            .expect("a traceparent header");
        TraceContext::parse_traceparent(header).expect("a valid traceparent")
    };

    let calendar = span("calendar_event_creation");
    let google = context_at("google");
    assert_eq!(google.trace_id.to_string(), trace_id);
    assert_eq!(google.span_id, calendar.span_id);
    assert!(matches!(calendar.status, SpanStatus::Error(_)));

    let execution = span("webhook_execution");
    let subscriber = context_at("subscriber");
    assert_eq!(subscriber.trace_id.to_string(), trace_id);
    assert_eq!(subscriber.span_id, execution.span_id);
    assert!(execution.start.as_micros() >= 300_000_000, "runs at +5m");
}

#[test]
fn tracing_is_opt_in_and_request_id_logging_keeps_working() {
    let scenario = load("calendar_failure");
    let on = run(&scenario, true);
    let off = run(&scenario, false);

    assert!(
        check_invariants(&off).is_empty(),
        "{:?}",
        check_invariants(&off)
    );
    assert_eq!(on.steps.len(), off.steps.len());
    for (traced, untraced) in on.steps.iter().zip(&off.steps) {
        assert_eq!(traced.status, untraced.status);
        assert_eq!(traced.body, untraced.body);
        assert_eq!(traced.request_id, untraced.request_id);
        assert!(untraced.trace_id.is_none());
    }
    assert!(on.steps[0].trace_id.is_some());

    let request_ids = report::request_id_view(&off);
    assert_eq!(request_ids, report::request_id_view(&on));
    assert!(request_ids.starts_with("[Request ID: "), "{request_ids}");
    assert_eq!(request_ids.lines().count(), 5);

    let untraced_view = report::seed_log_view(&off);
    assert!(!untraced_view.contains("trace:"), "{untraced_view}");
    assert!(off.captured.spans.is_empty());
    assert!(off.requests.iter().all(|r| r.traceparent.is_none()));
    let trace_hex = on.steps[0].trace_id.as_deref().unwrap_or_default();
    let everything = format!("{untraced_view}{:?}", off.steps);
    assert!(!everything.contains(trace_hex));
}

#[test]
fn a_lost_traceparent_at_a_mock_breaks_an_invariant() {
    let mut outcome = run_green(&load("calendar_failure"));
    outcome.requests[0].traceparent = None;
    let violations = check_invariants(&outcome);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].invariant, "mock-requests-carry-context");
}

#[test]
fn a_replay_is_byte_identical_every_time() {
    let scenario = load("calendar_failure");
    let render = |o: &trace_harness::outcome::ReplayOutcome| {
        format!(
            "{}{}{:?}",
            report::tree(o, &[]),
            report::seed_log_view(o),
            o.steps
        )
    };
    assert_eq!(render(&run(&scenario, true)), render(&run(&scenario, true)));
}

#[test]
fn a_span_moved_to_another_trace_breaks_flow_isolation() {
    let mut outcome = run_green(&load("calendar_failure"));
    let foreign = trace_harness::trace::IdGenerator::seeded(99).trace_id();
    outcome.captured.spans[1].trace_id = foreign;
    let names: Vec<&str> = check_invariants(&outcome)
        .iter()
        .map(|v| v.invariant)
        .collect();
    assert!(names.contains(&"flow-isolation"), "{names:?}");
    assert!(names.contains(&"one-trace-per-flow"), "{names:?}");
}

#[test]
fn a_webhook_without_its_follows_from_link_breaks_an_invariant() {
    let mut outcome = run_green(&load("calendar_failure"));
    let execution = outcome
        .captured
        .spans
        .iter_mut()
        .find(|s| s.op == "webhook_execution");
    execution.expect("a webhook_execution span").links.clear();
    let violations = check_invariants(&outcome);
    let unlinked = violations
        .iter()
        .find(|v| v.invariant == "async-after-cause");
    assert!(
        unlinked.is_some_and(|v| v.message.contains("has no follows-from link")),
        "{violations:?}"
    );
    // Without its link the job looks synchronous, and it outlives its parent.
    assert!(violations
        .iter()
        .any(|v| v.invariant == "child-within-parent"));
}
