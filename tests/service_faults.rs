//! Mock faults as the service meets them: a refused connection, a peer slower than the client's
//! timeout, a body cut off mid-JSON, each API's real error body.

mod common;

use trace_harness::expect;
use trace_harness::report::{self, SeedLine};
use trace_harness::runner::ReplayOutcome;

fn replay(text: &str) -> ReplayOutcome {
    let scenario = common::parse("faults.toml", text);
    let outcome = common::run(&scenario, true);
    let violations = expect::check_invariants(&outcome);
    assert!(violations.is_empty(), "{violations:?}");
    outcome
}

fn messages(outcome: &ReplayOutcome, op: &str) -> Vec<String> {
    report::seed_lines(outcome)
        .into_iter()
        .filter(|l: &SeedLine| l.op() == Some(op))
        .map(|l| l.message)
        .collect()
}

#[test]
fn a_refused_connection_is_retried() {
    let outcome = replay(
        r#"
description = "d"
seed = 1
[mocks.hook]
kind = "webhook_subscriber"
respond = [{ fault = "connection_refused" }, { status = 200 }]
[[timeline]]
at = "0s"
book = { event_type_id = 1 }
[[timeline]]
at = "1h"
cron = "webhooks"
"#,
    );
    assert_eq!(
        messages(&outcome, "webhook_execution"),
        [
            "Webhook execution failed: Connection refused",
            "Retry attempt 1 succeeded"
        ]
    );
    // The retry waited its backoff on virtual time, inside the one span.
    let span = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == "webhook_execution");
    assert_eq!(span.map(|s| s.duration().as_secs()), Some(30));
}

#[test]
fn a_calendar_that_never_answers_times_out_and_the_booking_goes_on() {
    let outcome = replay(
        r#"
description = "d"
seed = 1
[mocks.google]
kind = "google_calendar"
respond = [{ fault = "timeout" }]
[[timeline]]
at = "0s"
book = { event_type_id = 1 }
"#,
    );
    assert_eq!(
        messages(&outcome, "calendar_event_creation"),
        [
            "EventManager.create started",
            "Google Calendar API error: Connection timeout"
        ]
    );
    let span = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == "calendar_event_creation");
    assert_eq!(
        span.map(|s| s.duration().as_secs()),
        Some(10),
        "the client's timeout"
    );
    assert_eq!(outcome.steps[0].status, 201);
}

#[test]
fn stripe_errors_and_malformed_bodies_fail_the_booking_cleanly() {
    for (respond, says) in [
        (
            r#"{ status = 402, error = "card_declined" }"#,
            "Stripe API error: Your card was declined. (card_declined)",
        ),
        (
            r#"{ status = 200, fault = "malformed_body" }"#,
            "Stripe API error: malformed PaymentIntent in Stripe's response",
        ),
    ] {
        let outcome = replay(&format!(
            r#"
description = "d"
seed = 1
[[event_types]]
id = 9
price = 1000
[mocks.stripe]
kind = "stripe"
respond = [{respond}]
[[timeline]]
at = "0s"
book = {{ event_type_id = 9 }}
"#
        ));
        assert_eq!(messages(&outcome, "payment_processing"), [says]);
        assert_eq!(outcome.steps[0].status, 502, "{}", outcome.steps[0].body);
        let failed = outcome
            .captured
            .spans
            .iter()
            .find(|s| s.op == "payment_processing");
        assert!(failed.is_some_and(|s| s.status != trace_harness::trace::SpanStatus::Ok));
    }
}

#[test]
fn the_email_provider_answers_with_sendgrids_error_body() {
    let outcome = replay(
        r#"
description = "d"
seed = 1
[[event_types]]
id = 4
reminders = true
[mocks.email]
kind = "email_provider"
respond = [{ status = 401, error = "unauthorized" }]
[[timeline]]
at = "0s"
book = { event_type_id = 4 }
[[timeline]]
at = "1m"
cron = "reminders"
"#,
    );
    assert_eq!(
        messages(&outcome, "schedule_mandatory_reminder"),
        [
            "Scheduling reminders for 1 attendee",
            "Email sent to attendee 1: failed (HTTP 401)"
        ]
    );
    assert_eq!(
        outcome.failed_jobs,
        [(
            "reminders".to_owned(),
            1,
            "HTTP 401: The provided authorization grant is invalid, expired, or revoked".to_owned()
        )]
    );
}
