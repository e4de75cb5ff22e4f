//! The declared store latency on the virtual clock: every write charges it, including the
//! ones that finish a job.

mod common;

use std::time::Duration;

use trace_harness::contract::{SCHEDULE_MANDATORY_REMINDER, WEBHOOK_EXECUTION};
use trace_harness::runner::ReplayOutcome;

fn replay(text: &str) -> ReplayOutcome {
    common::run_green(&common::parse("store_latency.toml", text))
}

fn duration_of(outcome: &ReplayOutcome, op: &str) -> Vec<Duration> {
    outcome
        .captured
        .spans
        .iter()
        .filter(|s| s.op == op)
        .map(|s| s.duration())
        .collect()
}

#[test]
fn finishing_a_webhook_job_or_a_reminder_charges_the_declared_store_latency() {
    let outcome = replay(
        r#"
description = "Every write of a job costs the store's declared latency."
seed = 3

[service]
store_latency = "50ms"

[[event_types]]
id = 7
seats = 2
reminders = true

[mocks.hook]
kind = "webhook_subscriber"

[mocks.email]
kind = "email_provider"

[[timeline]]
at = "0s"
book = { event_type_id = 7, attendees = 2 }

[[timeline]]
at = "5m"
cron = "webhooks"

[[timeline]]
at = "10m"
cron = "reminders"
"#,
    );
    // The mocks answer at once: the delivery's span is its one finishing write.
    assert_eq!(
        duration_of(&outcome, WEBHOOK_EXECUTION),
        [Duration::from_millis(50)]
    );
    // The reminder spans: the scheduling one (one transaction) and the sending one, which
    // finishes each of the two attendees' reminders with a write of its own.
    assert_eq!(
        duration_of(&outcome, SCHEDULE_MANDATORY_REMINDER),
        [Duration::from_millis(50), Duration::from_millis(100)]
    );
}
