//! The webhook retry policy, case by case (CONTRACT.md §6.3, `contract::retry`): a 2xx answer
//! is delivered; `410 Gone` ends the delivery at once, on any attempt, and says so; every other
//! answer — another 4xx (401, 404, 429) as much as a 5xx —, a timeout and a refused connection
//! are retried, 30 s, 60 s and 120 s apart, until the fourth attempt fails.

mod common;

use common::*;
use trace_harness::contract::{WEBHOOK_EXECUTION, WEBHOOK_GONE_REASON};
use trace_harness::trace::SpanStatus;

/// A booking whose one webhook meets `respond` (the subscriber's answers in order), delivered
/// by the cron a minute later.
fn delivery(respond: &str) -> trace_harness::outcome::ReplayOutcome {
    let text = format!(
        "description = \"one webhook delivery\"\nseed = 4\n\n\
         [mocks.subscriber]\nkind = \"webhook_subscriber\"\nrespond = [{respond}]\n\n\
         [[timeline]]\nat = \"0s\"\nbook = {{ event_type_id = 1 }}\n\n\
         [[timeline]]\nat = \"1m\"\ncron = \"webhooks\"\n"
    );
    run_green(&parse("delivery.toml", &text))
}

/// What one delivery came to: the attempts the subscriber saw, each event of the execution
/// span (`level message`), the span's status, its duration, and the job's failure reason.
fn check(respond: &str, attempts: usize, events: &[&str], failed: Option<&str>) {
    let outcome = delivery(respond);
    let seen = outcome
        .requests
        .iter()
        .filter(|r| r.mock == "subscriber")
        .count();
    assert_eq!(seen, attempts, "{respond}: attempts");
    let span = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == WEBHOOK_EXECUTION)
        .expect("a webhook_execution span");
    let got: Vec<String> = outcome
        .captured
        .logs
        .iter()
        .filter(|l| l.span.map(|s| s.span_id) == Some(span.span_id))
        .map(|l| format!("{} {}", l.level, l.message))
        .collect();
    assert_eq!(got, events, "{respond}: events");
    let reasons: Vec<&str> = outcome
        .failed_jobs
        .iter()
        .map(|(_, _, reason)| reason.as_str())
        .collect();
    assert_eq!(reasons, failed.into_iter().collect::<Vec<_>>(), "{respond}");
    let in_error = matches!(span.status, SpanStatus::Error(_));
    assert_eq!(in_error, failed.is_some(), "{respond}: {:?}", span.status);
    let processed: usize = outcome.deliveries.iter().map(|(_, d)| d.processed).sum();
    assert_eq!(processed, usize::from(failed.is_none()), "{respond}");
}

#[test]
fn a_2xx_answer_is_delivered_at_once() {
    check(
        "{ status = 204 }",
        1,
        &["INFO Webhook executed 1 minute later"],
        None,
    );
}

#[test]
fn gone_on_the_first_attempt_ends_the_delivery_and_says_so() {
    check(
        "{ status = 410 }",
        1,
        &["ERROR Webhook execution failed: HTTP 410; giving up: 410 Gone is not retried"],
        Some(WEBHOOK_GONE_REASON),
    );
}

#[test]
fn gone_on_a_retry_ends_the_delivery_there() {
    check(
        "{ status = 503 }, { status = 410 }, { status = 200 }",
        2,
        &[
            "WARN Webhook execution failed: HTTP 503",
            "ERROR Retry attempt 1 failed: HTTP 410; giving up: 410 Gone is not retried",
        ],
        Some(WEBHOOK_GONE_REASON),
    );
}

#[test]
fn another_4xx_is_retried_until_the_last_attempt() {
    for status in [404, 429, 400] {
        check(
            &format!("{{ status = {status} }}"),
            4,
            &[
                &format!("WARN Webhook execution failed: HTTP {status}"),
                &format!("WARN Retry attempt 1 failed: HTTP {status}"),
                &format!("WARN Retry attempt 2 failed: HTTP {status}"),
                &format!("ERROR Retry attempt 3 failed: HTTP {status}; giving up after 4 attempts"),
            ],
            Some(&format!("HTTP {status}")),
        );
    }
}

#[test]
fn a_4xx_then_a_2xx_is_delivered_on_the_retry() {
    check(
        "{ status = 404 }, { status = 200 }",
        2,
        &[
            "WARN Webhook execution failed: HTTP 404",
            "INFO Retry attempt 1 succeeded",
        ],
        None,
    );
}

#[test]
fn timeouts_and_refused_connections_are_retried() {
    check(
        "{ fault = \"timeout\" }, { fault = \"connection_refused\" }, { status = 500 }, { status = 200 }",
        4,
        &[
            "WARN Webhook execution failed: Connection timeout",
            "WARN Retry attempt 1 failed: Connection refused",
            "WARN Retry attempt 2 failed: HTTP 500",
            "INFO Retry attempt 3 succeeded",
        ],
        None,
    );
}

#[test]
fn retries_wait_30_60_and_120_seconds_on_virtual_time() {
    let outcome = delivery("{ status = 502 }");
    let sent: Vec<u64> = outcome
        .requests
        .iter()
        .filter(|r| r.mock == "subscriber")
        .map(|r| r.sent_at().as_micros() / 1_000_000)
        .collect();
    assert_eq!(sent, [60, 90, 150, 270]);
}
