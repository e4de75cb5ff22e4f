//! Durable jobs across a restart of the booking service: a `restart` step drops the server and
//! every piece of in-memory state and starts a new process on the same database. Pending jobs
//! must then run in the booking's trace, none lost and none run twice.

mod common;

use std::collections::HashSet;

use trace_harness::expect;
use trace_harness::runner::ReplayOutcome;

const SCENARIO: &str = r#"
description = "Jobs scheduled before a restart run after it, once."
seed = 41

[[event_types]]
id = 456
seats = 3
reminders = true

[mocks.email]
kind = "email_provider"

[mocks.subscriber]
kind = "webhook_subscriber"

[[timeline]]
at = "0s"
book = { event_type_id = 456, attendees = 2 }

[[timeline]]
at = "1m"
restart = true

[[timeline]]
at = "5m"
cron = "webhooks"

[[timeline]]
at = "6m"
restart = true

[[timeline]]
at = "7m"
cron = "webhooks"

[[timeline]]
at = "8m"
book = { event_type_id = 456, attendees = 1 }

[[timeline]]
at = "9m"
restart = true

[[timeline]]
at = "10m"
cron = "reminders"

[[timeline]]
at = "11m"
restart = true

[[timeline]]
at = "12m"
cron = "reminders"

[[timeline]]
at = "13m"
cron = "webhooks"
"#;

/// Replays `text` and insists it passed.
fn replay(text: &str) -> ReplayOutcome {
    common::run_green(&common::parse("restart.toml", text))
}

#[test]
fn pending_jobs_survive_restarts_and_run_exactly_once() {
    let outcome = replay(SCENARIO);
    assert_eq!(outcome.restarts, 4);
    // Two bookings: one webhook each, delivered once.
    assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 2)]);
    let deliveries = outcome
        .requests
        .iter()
        .filter(|r| r.mock == "subscriber")
        .count();
    assert_eq!(deliveries, 2);
    // Three attendees across both bookings: one reminder each, sent once.
    assert_eq!(outcome.reminders, [("sent".to_owned(), 3)]);
    let sends = outcome
        .requests
        .iter()
        .filter(|r| r.path == "/v3/mail/send")
        .count();
    assert_eq!(sends, 3);
}

#[test]
fn jobs_run_after_a_restart_continue_the_bookings_trace() {
    let outcome = replay(SCENARIO);
    let captured = &outcome.captured;
    let bookings: Vec<_> = captured
        .spans
        .iter()
        .filter(|s| s.op == "booking_creation")
        .collect();
    assert_eq!(bookings.len(), 2);
    for job in captured
        .spans
        .iter()
        .filter(|s| s.op == "webhook_execution")
    {
        let cause = job.links.first().and_then(|l| captured.span(*l));
        assert_eq!(cause.map(|c| c.op), Some("webhook_scheduling"));
        assert!(bookings.iter().any(|b| b.trace_id == job.trace_id));
    }
    let reminder_jobs = captured
        .spans
        .iter()
        .filter(|s| s.op == "schedule_mandatory_reminder" && !s.links.is_empty())
        .count();
    assert_eq!(reminder_jobs, 2, "one sending span per booking");
    assert!(expect::check_invariants(&outcome).is_empty());
}

#[test]
fn a_restarted_service_draws_fresh_request_ids_and_uids() {
    let outcome = replay(SCENARIO);
    let request_ids: Vec<&str> = outcome
        .steps
        .iter()
        .filter_map(|s| s.request_id.as_deref())
        .collect();
    let distinct: HashSet<&&str> = request_ids.iter().collect();
    assert_eq!(distinct.len(), request_ids.len(), "{request_ids:?}");
    let uids: Vec<String> = outcome
        .captured
        .spans
        .iter()
        .filter(|s| s.op == "booking_creation")
        .filter_map(|s| s.field("booking_uid").map(|v| v.to_string()))
        .collect();
    assert_eq!(uids.len(), 2);
    assert_ne!(uids[0], uids[1]);
}

#[test]
fn without_the_restarts_the_outcome_is_the_same() {
    let without: String = SCENARIO
        .split("[[timeline]]")
        .filter(|step| !step.contains("restart = true"))
        .collect::<Vec<_>>()
        .join("[[timeline]]");
    let outcome = replay(&without);
    assert_eq!(outcome.restarts, 0);
    let with = replay(SCENARIO);
    assert_eq!(outcome.webhook_jobs, with.webhook_jobs);
    assert_eq!(outcome.reminders, with.reminders);
    let ops = |o: &ReplayOutcome| o.captured.spans.iter().map(|s| s.op).collect::<Vec<_>>();
    assert_eq!(ops(&outcome), ops(&with));
}
