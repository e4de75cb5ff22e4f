//! Nothing lost when the service dies mid-job. A cron step with `crash = …` kills the service at
//! that point of one job (its process state dropped, as at a restart, without a clean stop), and
//! a new process starts on the same database. The job's lease keeps every cron call off it
//! until the lease expires; then it runs again in the booking's trace, saying so, and a
//! delivery the subscriber had accepted comes again (at least once), acknowledged as a
//! duplicate. A job claimed too often ends failed with the reason.

mod common;

use trace_harness::expect::{self, judge};
use trace_harness::mocks::DeliveryCounts;
use trace_harness::outcome::ReplayOutcome;
use trace_harness::report;
use trace_harness::runner::load::{FlowRig, LoadError, LoadOptions, Transport};

/// One booking with one webhook job; the cron at 5m dies at `crash`; the next run is at 15m,
/// after the lease (5m + 5 minutes).
fn one_job(crash: &str) -> String {
    format!(
        r#"
description = "one webhook job, its first run dies"
seed = 11

[mocks.subscriber]
kind = "webhook_subscriber"

[[timeline]]
at = "0s"
book = {{ event_type_id = 1 }}

[[timeline]]
at = "5m"
cron = "webhooks"
crash = {crash}

[[timeline]]
at = "15m"
cron = "webhooks"
"#
    )
}

fn replay(text: &str) -> ReplayOutcome {
    common::run_green(&common::parse("crash.toml", text))
}

/// The messages of the spans of `op`, span by span.
fn lines_of(outcome: &ReplayOutcome, op: &str) -> Vec<Vec<String>> {
    let spans = outcome.captured.spans.iter().filter(|s| s.op == op);
    spans
        .map(|span| {
            (outcome.captured.logs.iter())
                .filter(|l| l.span.is_some_and(|s| s.span_id == span.span_id))
                .map(|l| l.message.clone())
                .collect()
        })
        .collect()
}

fn subscriber(outcome: &ReplayOutcome) -> DeliveryCounts {
    outcome
        .deliveries
        .iter()
        .find(|(mock, _)| mock == "subscriber")
        .map(|(_, counts)| *counts)
        .unwrap_or_default()
}

const RERUN: &str = "Re-run after expired lease (attempt 2, previous holder process 0)";

#[test]
fn after_claim_nothing_was_sent_and_the_re_run_delivers_once() {
    let outcome = replay(&one_job("\"after_claim\""));
    assert_eq!(outcome.crashes.len(), 1);
    let crash = &outcome.crashes[0];
    assert_eq!(
        (crash.point, crash.job, crash.process),
        ("after_claim", 1, 0)
    );
    assert!(crash.lost.is_empty(), "no span was open yet: {crash:?}");
    assert_eq!(
        outcome.steps[crash.step].status, 0,
        "the crashed call got no answer"
    );
    assert_eq!(
        lines_of(&outcome, "webhook_execution"),
        [[RERUN, "Webhook executed 15 minutes later"]]
    );
    assert_eq!(
        subscriber(&outcome),
        DeliveryCounts {
            processed: 1,
            duplicates: 0,
            refused: 0
        }
    );
    assert!(expect::redeliveries(&outcome).is_empty());
    assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 1)]);
}

#[test]
fn after_send_and_before_commit_the_accepted_delivery_comes_again_in_the_same_trace() {
    for point in ["after_send", "before_commit"] {
        let outcome = replay(&one_job(&format!("\"{point}\"")));
        let crash = &outcome.crashes[0];
        assert_eq!(crash.point, point);
        assert_eq!(crash.lost.len(), 1, "{point}: the job's span was open");
        let (lost_trace, lost_span) = crash.lost[0];
        // A real crash never exports the open span: the replay has no trace of it but the
        // request it sent, and only the re-run's span.
        assert!(outcome.captured.span(lost_span).is_none(), "{point}");
        assert_eq!(
            lines_of(&outcome, "webhook_execution"),
            [[RERUN, "Webhook executed 15 minutes later"]],
            "{point}"
        );
        assert_eq!(
            subscriber(&outcome),
            DeliveryCounts {
                processed: 1,
                duplicates: 1,
                refused: 0
            },
            "{point}: the subscriber processed it once and acknowledged the repeat"
        );
        let rerun = outcome
            .captured
            .spans
            .iter()
            .find(|s| s.op == "webhook_execution")
            .unwrap_or_else(|| panic!("no re-run"));
        let redeliveries = expect::redeliveries(&outcome);
        assert_eq!(redeliveries.len(), 1, "{point}");
        assert_eq!(
            redeliveries[0].senders,
            [(lost_trace, lost_span), (rerun.trace_id, rerun.span_id)],
            "{point}: first the lost span, then the re-run, in one trace"
        );
        assert_eq!(rerun.trace_id, lost_trace, "{point}");
        let tree = report::tree(&outcome, &[]);
        assert!(
            tree.contains(&format!(
                "crash at 5m: the service died at {point} in the cron call's job 1 (process 0; process 1 took over); never exported: 1 span of trace_1 that had sent requests\nredelivered to subscriber in trace_1: first by a span lost in the crash at 5m, again by span_003\n"
            )),
            "{tree}"
        );
        assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 1)]);
    }
}

#[test]
fn a_delivery_from_two_spans_without_a_crash_between_breaks_an_invariant() {
    let mut outcome = replay(&one_job("\"after_send\""));
    assert!(expect::check_invariants(&outcome).is_empty());
    // The same facts, but no crash to explain the first span's absence or the repeat.
    outcome.crashes.clear();
    let broken: Vec<String> = expect::check_invariants(&outcome)
        .iter()
        .map(|v| format!("{}: {}", v.invariant, v.message))
        .collect();
    assert!(
        broken.iter().any(|v| v.starts_with(
            "redelivery-after-crash: mock `subscriber` got the same delivery from span "
        ) && v
            .contains("with no crash between its send and its commit: a job ran twice")),
        "{broken:#?}"
    );
    assert!(
        broken.iter().any(|v| v.starts_with(
            "mock-requests-carry-context: POST /webhook to mock `subscriber` names parent "
        )),
        "{broken:#?}"
    );
}

#[test]
fn a_cron_call_inside_the_lease_takes_nothing_and_one_at_its_end_takes_the_job() {
    let text = one_job("\"after_send\"").replace("at = \"15m\"", "at = \"9m\"")
        + "\n[[timeline]]\nat = \"10m\"\ncron = \"webhooks\"\n";
    let outcome = replay(&text);
    let bodies: Vec<&str> = outcome.steps.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(
        bodies[2..],
        [
            r#"{"delivered":0,"executed":0}"#,
            r#"{"delivered":1,"executed":1}"#
        ]
    );
    assert_eq!(
        lines_of(&outcome, "webhook_execution"),
        [[RERUN, "Webhook executed 10 minutes later"]]
    );
}

#[test]
fn a_job_whose_every_run_dies_ends_failed_after_its_third_claim_with_the_reason() {
    let text = r#"
description = "every run of the one job dies"
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
crash = "before_commit"

[[timeline]]
at = "25m"
cron = "webhooks"
crash = "after_claim"

[[timeline]]
at = "35m"
cron = "webhooks"
"#;
    let outcome = replay(text);
    let processes: Vec<u64> = outcome.crashes.iter().map(|c| c.process).collect();
    assert_eq!(processes, [0, 1, 2]);
    assert_eq!(
        outcome.failed_jobs,
        [(
            "webhook_jobs".to_owned(),
            1,
            "claimed 3 times without finishing (last holder process 2)".to_owned()
        )]
    );
    // The third claim died before its span opened: the only span left is the fourth's.
    assert_eq!(
        lines_of(&outcome, "webhook_execution"),
        [[
            "Re-run after expired lease (attempt 4, previous holder process 2)",
            "Giving up: claimed 3 times without finishing (last holder process 2)"
        ]]
    );
    let span = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == "webhook_execution")
        .unwrap_or_else(|| panic!("no span"));
    assert!(
        matches!(&span.status, trace_harness::trace::SpanStatus::Error(m) if m.starts_with("Giving up")),
        "{:?}",
        span.status
    );
    // Sent twice (the first two runs), never a third time: a given-up job sends nothing.
    assert_eq!(
        subscriber(&outcome),
        DeliveryCounts {
            processed: 1,
            duplicates: 1,
            refused: 0
        }
    );
}

#[test]
fn a_crash_at_the_second_job_keeps_what_the_first_committed_and_exported() {
    let text = r#"
description = "two bookings, one cron call, the second job dies"
seed = 13

[mocks.subscriber]
kind = "webhook_subscriber"

[[timeline]]
at = "0s"
book = { event_type_id = 1 }

[[timeline]]
at = "1s"
book = { event_type_id = 1 }

[[timeline]]
at = "5m"
cron = "webhooks"
crash = { point = "after_send", job = 2 }

[[timeline]]
at = "20m"
cron = "webhooks"
"#;
    let outcome = replay(text);
    let executions = lines_of(&outcome, "webhook_execution");
    assert_eq!(
        executions,
        [
            vec!["Webhook executed 5 minutes later".to_owned()],
            vec![
                RERUN.to_owned(),
                "Webhook executed 20 minutes later".to_owned()
            ],
        ],
        "job 1 closed before the crash; job 2's first span was lost"
    );
    assert_eq!(outcome.crashes[0].lost.len(), 1);
    assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 2)]);
    // A claim of two jobs at 5m leases them until 15m; the re-run is job 2 alone.
    assert_eq!(outcome.steps[3].body, r#"{"delivered":1,"executed":1}"#);
}

#[test]
fn a_crash_inside_one_bookings_reminders_resends_only_what_was_not_committed() {
    let outcome = replay(common::external::CRASH_IN_REMINDERS);
    // The booking's own reminder scheduling span, then the re-run's; the first cron span,
    // which had sent attendee 1's e-mail and attendee 2's, died open.
    let sends = lines_of(&outcome, "schedule_mandatory_reminder");
    assert_eq!(
        sends[1],
        [
            RERUN,
            "Email sent to attendee 2: success",
            "Email sent to attendee 3: success"
        ]
    );
    assert_eq!(outcome.reminders, [("sent".to_owned(), 3)]);
    let sent_to: Vec<String> = outcome
        .requests
        .iter()
        .filter(|r| r.path == "/v3/mail/send")
        .map(|r| {
            let mail: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            mail["personalizations"][0]["to"][0]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(sent_to.len(), 4, "attendee 2 got the reminder twice");
    assert_eq!(sent_to[1], sent_to[2]);
    assert_ne!(sent_to[0], sent_to[1]);
}

#[test]
fn a_crash_armed_where_the_cron_call_has_no_such_job_changes_nothing() {
    let text = one_job("{ point = \"after_send\", job = 2 }");
    let outcome = replay(&text);
    assert!(outcome.crashes.is_empty());
    assert_eq!(outcome.steps[1].body, r#"{"delivered":1,"executed":1}"#);
    assert_eq!(
        lines_of(&outcome, "webhook_execution"),
        [["Webhook executed 5 minutes later"]]
    );
}

#[test]
fn a_step_expectation_on_a_crashed_call_says_it_got_no_answer() {
    let text = one_job("\"after_send\"") + "\n[[expect]]\nstep = 2\nstatus = 200\n";
    let scenario = common::parse("crash.toml", &text);
    let outcome = common::run(&scenario, true);
    let verdict = judge(&outcome, &scenario.expect);
    assert_eq!(verdict.failures.len(), 1, "{verdict:#?}");
    assert_eq!(
        verdict.failures[0].actual,
        "no answer: the service died at `after_send`"
    );
}

#[test]
fn a_load_run_refuses_a_crash_step() {
    let scenario = common::parse("crash.toml", &one_job("\"after_send\""));
    let options = LoadOptions {
        tracing: true,
        transport: Transport::Http,
        record_mock_requests: true,
    };
    let refused = FlowRig::start(&scenario, options).and_then(|mut rig| rig.run(2).map(drop));
    assert!(
        matches!(&refused, Err(LoadError::Unsupported(name)) if name == "crash"),
        "{refused:?}"
    );
}
