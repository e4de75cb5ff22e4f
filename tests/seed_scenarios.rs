//! The five seed scenarios against the seed's own listings: each scenario's log view, filtered to
//! the operations the seed shows, must reproduce the listing line for line (operations, order,
//! span pattern, equivalent messages). Then copies of the scenarios with one thing changed prove
//! that the messages are computed from the replay, not typed in.

use std::path::Path;

use trace_harness::expect;
use trace_harness::outcome::{ReplayOutcome, StepKind};
use trace_harness::report::{self, SeedLine};
use trace_harness::runner::{self, ReplayOptions};
use trace_harness::scenario::Scenario;

// The "With Distributed Tracing" listings of `seed/distributed-tracing-examples.md`, verbatim.
const SEED_1: &str = "\
[trace:trace_xyz123 span:span_001 op:booking_creation] Booking creation started
[trace:trace_xyz123 span:span_002 op:calendar_event_creation] EventManager.create started
[trace:trace_xyz123 span:span_002 op:calendar_event_creation] Google Calendar API error: Rate limit exceeded
[trace:trace_xyz123 span:span_003 op:webhook_scheduling] Scheduling BOOKING_CREATED webhook
[trace:trace_xyz123 span:span_004 op:webhook_execution] Webhook executed 5 minutes later
";
const SEED_2: &str = "\
[trace:trace_abc789 span:span_001 op:booking_creation] Booking created, payment required
[trace:trace_abc789 span:span_002 op:payment_processing] Payment initiated with Stripe
[trace:trace_abc789 span:span_003 op:payment_success_processing] Payment success after 28 minutes
[trace:trace_abc789 span:span_004 op:booking_confirmation] Booking confirmed
";
const SEED_3: &str = "\
[trace:trace_def456 span:span_001 op:booking_creation] Booking created for eventTypeId: 123
[trace:trace_def456 span:span_002 op:webhook_scheduling] Scheduling webhook for BOOKING_CREATED
[trace:trace_def456 span:span_003 op:webhook_execution] Webhook execution failed: Connection timeout
[trace:trace_def456 span:span_003 op:webhook_execution] Retry attempt 1 failed
[trace:trace_def456 span:span_003 op:webhook_execution] Retry attempt 2 succeeded
";
const SEED_4: &str = "\
[trace:trace_mno345 span:span_001 op:booking_creation] Booking created for eventTypeId: 456
[trace:trace_mno345 span:span_002 op:handle_seats] Processing seated booking
[trace:trace_mno345 span:span_003 op:schedule_mandatory_reminder] Scheduling reminders for 3 attendees
[trace:trace_mno345 span:span_004 op:schedule_mandatory_reminder] Email sent to attendee 1: success
[trace:trace_mno345 span:span_004 op:schedule_mandatory_reminder] Email sent to attendee 2: failed (invalid email)
[trace:trace_mno345 span:span_004 op:schedule_mandatory_reminder] Email sent to attendee 3: success
";
const SEED_5: &str = "\
[trace:trace_pqr678 span:span_001 op:booking_creation] Booking creation started
[trace:trace_pqr678 span:span_002 op:calendar_event_creation] EventManager.create: 200ms
[trace:trace_pqr678 span:span_003 op:payment_processing] Payment processing: 4.2s
[trace:trace_pqr678 span:span_004 op:webhook_scheduling] Webhook scheduling: 50ms
[trace:trace_pqr678 span:span_005 op:schedule_mandatory_reminder] Reminder scheduling: 100ms
";

/// The seed words the same log line differently in different scenarios; each pair maps a
/// seed phrasing to the one the service uses everywhere.
const SEED_PHRASINGS: &[(&str, &str)] = &[
    ("booking created", "booking creation started"),
    (
        "scheduling webhook for booking_created",
        "scheduling booking_created webhook",
    ),
];

/// One line of a listing: trace alias, span alias, operation, message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    trace: String,
    span: String,
    op: String,
    message: String,
}

fn parse_seed(listing: &str) -> Vec<Line> {
    listing
        .lines()
        .map(|line| {
            let (prefix, message) = line
                .strip_prefix("[trace:")
                .and_then(|l| l.split_once("] "))
                .unwrap_or_else(|| panic!("not a seed line: {line}"));
            let mut parts = prefix.split(' ');
            let trace = parts.next().unwrap_or_default().to_owned();
            let span = parts.next().and_then(|s| s.strip_prefix("span:"));
            let op = parts.next().and_then(|s| s.strip_prefix("op:"));
            Line {
                trace,
                span: span.unwrap_or_default().to_owned(),
                op: op.unwrap_or_default().to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

/// The replay's traced lines restricted to `ops`, with traces and spans renumbered by first
/// appearance in what is left, the way the seed numbers them.
fn filtered(lines: &[SeedLine], ops: &[&str]) -> Vec<Line> {
    let mut traces: Vec<String> = Vec::new();
    let mut spans: Vec<String> = Vec::new();
    let number = |seen: &mut Vec<String>, id: &str| match seen.iter().position(|s| s == id) {
        Some(i) => i + 1,
        None => {
            seen.push(id.to_owned());
            seen.len()
        }
    };
    lines
        .iter()
        .filter_map(|line| {
            let (trace, span, op) = line.prefix.as_ref()?;
            if !ops.contains(op) {
                return None;
            }
            Some(Line {
                trace: format!("trace_{}", number(&mut traces, trace)),
                span: format!("span_{:03}", number(&mut spans, span)),
                op: (*op).to_owned(),
                message: line.message.clone(),
            })
        })
        .collect()
}

/// Seed and replay messages say the same thing: case aside and the seed's alternative
/// phrasings normalised, every comma-separated clause of the seed's message appears in the
/// replay's, in order (the replay may say more, e.g. which event type).
fn equivalent(seed: &str, replay: &str) -> bool {
    let mut seed = seed.to_lowercase();
    for (variant, canonical) in SEED_PHRASINGS {
        if seed.starts_with(variant) {
            seed = format!("{canonical}{}", &seed[variant.len()..]);
        }
    }
    let replay = replay.to_lowercase();
    let mut rest = replay.as_str();
    seed.split(", ").all(|clause| match rest.find(clause) {
        Some(i) => {
            rest = &rest[i + clause.len()..];
            true
        }
        None => false,
    })
}

/// Where the listing differs from the replay, or `None`.
fn compare(seed: &str, replay: &[SeedLine]) -> Option<String> {
    let seed = parse_seed(seed);
    let mut ops: Vec<&str> = seed.iter().map(|l| l.op.as_str()).collect();
    ops.dedup();
    let got = filtered(replay, &ops);
    let shown = |lines: &[Line]| {
        lines
            .iter()
            .map(|l| format!("  [{} {} {}] {}", l.trace, l.span, l.op, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let same = got.len() == seed.len()
        && seed.iter().zip(&got).all(|(s, g)| {
            s.span == g.span
                && s.op == g.op
                && g.trace == "trace_1"
                && equivalent(&s.message, &g.message)
        });
    (!same).then(|| format!("seed:\n{}\nreplay:\n{}", shown(&seed), shown(&got)))
}

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// `name`'s scenario text with each `(from, to)` replaced once; panics if `from` is absent, so
/// a mutation can never silently stop applying.
fn mutated(name: &str, edits: &[(&str, &str)]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    for (from, to) in edits {
        assert!(text.contains(from), "{name}.toml has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    Scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn replay(scenario: &Scenario) -> ReplayOutcome {
    let outcome = runner::replay(scenario, ReplayOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let verdict = expect::judge(&outcome, &scenario.expect);
    assert!(
        expect::check_invariants(&outcome).is_empty(),
        "{}",
        report::diagnostics(&outcome, &verdict)
    );
    outcome
}

fn messages(lines: &[SeedLine], op: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.op() == Some(op))
        .map(|l| l.message.clone())
        .collect()
}

#[track_caller]
fn check(name: &str, seed: &str, lines: impl Fn(&ReplayOutcome) -> Vec<SeedLine>) {
    let scenario = load(name);
    let outcome = replay(&scenario);
    let verdict = expect::judge(&outcome, &scenario.expect);
    assert!(
        verdict.passed(),
        "{}",
        report::diagnostics(&outcome, &verdict)
    );
    if let Some(diff) = compare(seed, &lines(&outcome)) {
        panic!("{name} does not reproduce the seed's listing\n{diff}");
    }
}

#[test]
fn scenario_1_calendar_failure_reproduces_the_seed() {
    check("calendar_failure", SEED_1, report::seed_lines);
}

#[test]
fn scenario_2_slow_payment_reproduces_the_seed() {
    check("slow_payment", SEED_2, report::seed_lines);
}

#[test]
fn scenario_3_webhook_retries_reproduces_the_seed() {
    check("webhook_retries", SEED_3, report::seed_lines);
}

#[test]
fn scenario_4_seated_attendees_reproduces_the_seed() {
    check("seated_attendees", SEED_4, report::seed_lines);
}

#[test]
fn the_refused_reminder_keeps_the_providers_reason_and_the_others_are_sent() {
    let outcome = replay(&load("seated_attendees"));
    assert_eq!(
        outcome.reminders,
        [("failed".to_owned(), 1), ("sent".to_owned(), 2)]
    );
    assert_eq!(
        outcome.failed_jobs,
        [(
            "reminders".to_owned(),
            2,
            "invalid email: Does not contain a valid address.".to_owned()
        )]
    );
    let sends: Vec<_> = outcome
        .requests
        .iter()
        .filter(|r| r.path == "/v3/mail/send")
        .collect();
    assert_eq!(sends.len(), 3);
    assert!(sends[1].body.contains("@invalid"), "{}", sends[1].body);
}

#[test]
fn scenario_5_performance_reproduces_the_seed_in_the_timing_view() {
    check("performance", SEED_5, report::timing_lines);
}

#[test]
fn the_comparison_can_fail() {
    // A listing that differs in span pattern, in order or in a message must be caught.
    let outcome = replay(&load("webhook_retries"));
    let lines = report::seed_lines(&outcome);
    assert!(compare(SEED_3, &lines).is_none());
    let other_span = SEED_3.replacen(
        "span_003 op:webhook_execution] Retry attempt 1",
        "span_004 op:webhook_execution] Retry attempt 1",
        1,
    );
    assert!(compare(&other_span, &lines).is_some());
    let other_message = SEED_3.replace("Retry attempt 2 succeeded", "Retry attempt 3 succeeded");
    assert!(compare(&other_message, &lines).is_some());
    assert!(compare(SEED_1, &lines).is_some());
    assert!(equivalent(
        "Booking created, payment required",
        "Booking creation started for eventTypeId: 7, payment required"
    ));
    assert!(!equivalent(
        "Booking created, payment required",
        "Booking creation started for eventTypeId: 7"
    ));
}

#[test]
fn a_later_webhook_run_says_so() {
    let outcome = replay(&mutated(
        "calendar_failure",
        &[("at = \"5m\"", "at = \"30m\"")],
    ));
    let lines = report::seed_lines(&outcome);
    assert_eq!(
        messages(&lines, "webhook_execution"),
        ["Webhook executed 30 minutes later"]
    );
    assert!(compare(SEED_1, &lines).is_some());
}

#[test]
fn a_later_stripe_callback_changes_the_measured_delay() {
    let outcome = replay(&mutated(
        "slow_payment",
        &[("at = \"28m\"", "at = \"45m\"")],
    ));
    let lines = report::seed_lines(&outcome);
    assert_eq!(
        messages(&lines, "payment_success_processing"),
        ["Payment success after 45 minutes"]
    );
    assert!(compare(SEED_2, &lines).is_some());
}

#[test]
fn a_forged_or_stale_callback_confirms_nothing() {
    for kind in ["forged", "stale"] {
        let scenario = mutated(
            "slow_payment",
            &[(
                "stripe = { event = \"payment_intent.succeeded\" }",
                &format!(
                    "stripe = {{ event = \"payment_intent.succeeded\", signature = \"{kind}\" }}"
                ),
            )],
        );
        let outcome = replay(&scenario);
        let statuses: Vec<u16> = outcome
            .steps
            .iter()
            .filter(|s| s.action == StepKind::Stripe)
            .map(|s| s.status)
            .collect();
        assert_eq!(statuses, [400, 400], "{kind}");
        let lines = report::seed_lines(&outcome);
        assert!(
            messages(&lines, "payment_success_processing").is_empty(),
            "{kind}"
        );
        assert!(
            messages(&lines, "booking_confirmation").is_empty(),
            "{kind}"
        );
    }
}

#[test]
fn a_first_retry_that_succeeds_ends_the_retries() {
    let outcome = replay(&mutated(
        "webhook_retries",
        &[(
            "{ status = 200, latency = \"45s\" }",
            "{ status = 200, latency = \"2s\" }",
        )],
    ));
    let lines = report::seed_lines(&outcome);
    assert_eq!(
        messages(&lines, "webhook_execution"),
        [
            "Webhook execution failed: Connection timeout",
            "Retry attempt 1 succeeded"
        ]
    );
    assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 1)]);
}

#[test]
fn a_webhook_that_exhausts_its_retries_ends_failed_with_its_reason() {
    let outcome = replay(&mutated(
        "webhook_retries",
        &[("{ status = 200, latency = \"120ms\" }", "{ status = 503 }")],
    ));
    let lines = report::seed_lines(&outcome);
    let execution = messages(&lines, "webhook_execution");
    assert_eq!(execution.len(), 4, "{execution:?}");
    assert_eq!(
        execution.last().map(String::as_str),
        Some("Retry attempt 3 failed: HTTP 503; giving up after 4 attempts")
    );
    assert_eq!(outcome.webhook_jobs, [("failed".to_owned(), 1)]);
    assert_eq!(
        outcome.failed_jobs,
        [("webhook_jobs".to_owned(), 1, "HTTP 503".to_owned())]
    );
    assert_eq!(
        outcome
            .requests
            .iter()
            .filter(|r| r.mock == "subscriber")
            .count(),
        4
    );
}

#[test]
fn more_attendees_and_another_bad_address_change_the_reminder_lines() {
    let outcome = replay(&mutated(
        "seated_attendees",
        &[
            ("seats = 3", "seats = 5"),
            (
                "attendees = 3, invalid_email = [2]",
                "attendees = 4, invalid_email = [4]",
            ),
        ],
    ));
    let lines = report::seed_lines(&outcome);
    assert_eq!(
        messages(&lines, "schedule_mandatory_reminder"),
        [
            "Scheduling reminders for 4 attendees",
            "Email sent to attendee 1: success",
            "Email sent to attendee 2: success",
            "Email sent to attendee 3: success",
            "Email sent to attendee 4: failed (invalid email)",
        ]
    );
    assert_eq!(
        outcome.reminders,
        [("failed".to_owned(), 1), ("sent".to_owned(), 3)]
    );
    assert!(compare(SEED_4, &lines).is_some());
}

#[test]
fn more_attendees_than_seats_are_refused() {
    let outcome = runner::replay(
        &mutated("seated_attendees", &[("attendees = 3,", "attendees = 4,")]),
        ReplayOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.steps[0].status, 409, "{}", outcome.steps[0].body);
    assert!(outcome.steps[0]
        .body
        .contains("Not enough seats: 3 available, 4 requested"));
    assert!(outcome.reminders.is_empty());
}

#[test]
fn other_latencies_move_the_timings_and_the_bottleneck() {
    let outcome = replay(&mutated(
        "performance",
        &[
            ("latency = \"200ms\"", "latency = \"6s\""),
            ("latency = \"4.2s\"", "latency = \"1.5s\""),
        ],
    ));
    let lines = report::timing_lines(&outcome);
    let timings: Vec<&str> = lines.iter().skip(1).map(|l| l.message.as_str()).collect();
    assert_eq!(
        timings,
        [
            "EventManager.create: 6s",
            "Payment processing: 1.5s",
            "Webhook scheduling: 50ms",
            "Reminder scheduling: 100ms"
        ]
    );
    let bottleneck = &expect::bottlenecks(&outcome.captured)[0];
    assert_eq!(bottleneck.op, "calendar_event_creation");
    assert_eq!(bottleneck.total.as_millis(), 7_650);
    assert_eq!(bottleneck.share_permille(), 784);
    assert!(compare(SEED_5, &lines).is_some());
}

#[test]
fn the_seed_performance_run_names_payment_processing_as_the_bottleneck() {
    let outcome = replay(&load("performance"));
    let spans = &outcome.captured.spans;
    let duration_ms = |op: &str| {
        spans
            .iter()
            .find(|s| s.op == op)
            .map(|s| s.duration().as_millis())
    };
    assert_eq!(duration_ms("calendar_event_creation"), Some(200));
    assert_eq!(duration_ms("payment_processing"), Some(4_200));
    assert_eq!(duration_ms("webhook_scheduling"), Some(50));
    assert_eq!(duration_ms("schedule_mandatory_reminder"), Some(100));
    let bottlenecks = expect::bottlenecks(&outcome.captured);
    assert_eq!(bottlenecks.len(), 1);
    assert_eq!(bottlenecks[0].op, "payment_processing");
    assert_eq!(bottlenecks[0].share_permille(), 923);
    assert!(report::timing_view(&outcome)
        .ends_with("bottleneck trace_1: payment_processing 4.2s of 4.55s (92.3%)\n"));
}

#[test]
fn async_work_joins_the_bookings_trace_following_from_its_scheduler() {
    for (name, op, cause) in [
        (
            "slow_payment",
            "payment_success_processing",
            "payment_processing",
        ),
        ("webhook_retries", "webhook_execution", "webhook_scheduling"),
        (
            "seated_attendees",
            "schedule_mandatory_reminder",
            "schedule_mandatory_reminder",
        ),
    ] {
        let outcome = replay(&load(name));
        let captured = &outcome.captured;
        let booking = captured
            .spans
            .iter()
            .find(|s| s.op == "booking_creation")
            .unwrap_or_else(|| panic!("{name}: no booking span"));
        let jobs: Vec<_> = captured
            .spans
            .iter()
            .filter(|s| s.op == op && !s.links.is_empty())
            .collect();
        assert_eq!(jobs.len(), 1, "{name}");
        let job = jobs[0];
        assert_eq!(job.trace_id, booking.trace_id, "{name}");
        let linked = captured.span(job.links[0]).map(|s| s.op);
        assert_eq!(linked, Some(cause), "{name}");
        assert_eq!(job.parent_id(), Some(job.links[0]), "{name}");
    }
}

#[test]
fn replays_are_deterministic() {
    for name in ["slow_payment", "seated_attendees"] {
        let scenario = load(name);
        let a = replay(&scenario);
        let b = replay(&scenario);
        assert_eq!(report::tree(&a, &[]), report::tree(&b, &[]), "{name}");
        assert_eq!(
            report::seed_log_view(&a),
            report::seed_log_view(&b),
            "{name}"
        );
        let bodies = |o: &ReplayOutcome| {
            o.requests
                .iter()
                .map(|r| r.body.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(&a), bodies(&b), "{name}");
    }
}

#[test]
fn webhook_deliveries_are_signed_over_their_body() {
    let outcome = replay(&load("performance"));
    let secret = trace_harness::booking::ServiceConfig::new("unused".into(), 0).webhook_secret;
    let deliveries: Vec<_> = outcome
        .requests
        .iter()
        .filter(|r| r.kind == trace_harness::mocks::MockKind::WebhookSubscriber)
        .collect();
    assert_eq!(deliveries.len(), 2);
    for delivery in deliveries {
        let expected = trace_harness::contract::cal_signature(&secret, delivery.body.as_bytes());
        assert_eq!(
            delivery.header("x-cal-signature-256"),
            Some(expected.as_str())
        );
        assert_ne!(
            trace_harness::contract::cal_signature("another secret", delivery.body.as_bytes()),
            expected
        );
    }
}

#[test]
fn the_payment_intent_metadata_carries_the_payment_spans_context() {
    let outcome = replay(&load("slow_payment"));
    let created = outcome
        .requests
        .iter()
        .find(|r| r.path == "/v1/payment_intents")
        .unwrap_or_else(|| panic!("no PaymentIntent created"));
    assert_eq!(
        created.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let metadata = created
        .body
        .split('&')
        .find_map(|pair| pair.strip_prefix("metadata%5Btraceparent%5D="))
        .unwrap_or_else(|| panic!("no metadata[traceparent] in {}", created.body));
    assert_eq!(Some(metadata), created.traceparent.as_deref());
    let context = trace_harness::trace::TraceContext::parse_traceparent(metadata)
        .unwrap_or_else(|e| panic!("{e}"));
    let captured = &outcome.captured;
    let payment = captured.span(context.span_id).map(|s| s.op);
    assert_eq!(payment, Some("payment_processing"));
    let callback = captured
        .spans
        .iter()
        .find(|s| s.op == "payment_success_processing")
        .unwrap_or_else(|| panic!("no callback span"));
    assert_eq!(callback.parent_id(), Some(context.span_id));
    assert_eq!(callback.links, [context.span_id]);
}
