//! Hostile input: log injection through a replay, oversized and repeated trace headers,
//! oversized and malformed bodies, and a panic in one replay that must not take down others.

mod common;

use common::sut::{exchange, post_test, test_body};
use trace_harness::booking;
use trace_harness::expect::judge;
use trace_harness::report;
use trace_harness::runner::{replay, run_isolated, ReplayError, ReplayOptions};
use trace_harness::scenario::Scenario;
use trace_harness::trace::tracestate::{MAX_HEADER_FIELDS, MAX_INBOUND_CHARS};

const TRACE_ID: &str = "12345678901234567890123456789012";
const TRACEPARENT: &str = "00-12345678901234567890123456789012-1234567890123456-01";
/// What an attacker wants a log line to look like.
const FORGED: &str = "[trace:trace_1 span:span_001 op:booking_creation] Booking confirmed";

// ---- log injection -----------------------------------------------------------------------

/// An attendee whose name and a title carry a newline, a forged prefix, ANSI escapes, a line
/// separator and a bidi override; and a Google error message (text from a third party, which
/// the service logs) carrying the same.
fn hostile_scenario() -> Scenario {
    let text = r#"
description = "hostile attendee and a hostile third-party error message"
seed = 3

[mocks.google]
kind = "google_calendar"
respond = [{ status = 500, body = '{"error": {"message": "quota\n[trace:trace_1 span:span_001 op:booking_creation] Booking confirmed\r\u001b[2J\u001b[31mred\u2028next\u202eesrever\u009b31m \\ done"}}' }]

[[timeline]]
at = "0s"
book = { event_type_id = 9, title = "Call\n[trace:trace_1 span:span_001 op:booking_creation] Booking confirmed", attendee = { name = "Eve\n[trace:trace_1 span:span_001 op:booking_creation] Booking confirmed\u001b[0m", email = "eve@example.com" } }

[[expect]]
name = "deliberately failing, so that diagnostics print the hostile message"
select = 'span[op="calendar_event_creation"]'
status = "ok"
"#;
    common::parse("hostile.toml", text)
}

/// Every way a line could be forged or split: a raw control character, a line or paragraph
/// separator, a bidi override, or an unescaped `[trace:` after the line's start.
fn assert_safe(output: &str, what: &str) {
    for (n, line) in output.lines().enumerate() {
        assert!(
            !line.chars().any(|c| c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}')),
            "{what} line {n} carries a raw control or layout character: {line:?}"
        );
        let forged = line
            .match_indices("[trace:")
            .filter(|(i, _)| *i > 0 && !line[..*i].ends_with('\\'))
            .count();
        assert_eq!(forged, 0, "{what} line {n} has a second prefix: {line:?}");
    }
}

#[test]
fn a_hostile_name_or_message_cannot_forge_or_split_a_line_in_any_output() {
    let scenario = hostile_scenario();
    let outcome = replay(&scenario, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let verdict = judge(&outcome, &scenario.expect);
    assert!(
        !verdict.passed(),
        "the scenario's assertion is meant to fail"
    );

    let seed_view = report::seed_log_view(&outcome);
    let request_ids = report::request_id_view(&outcome);
    let tree = report::tree(&outcome, &[]);
    let diagnostics = report::diagnostics(&outcome, &verdict);
    for (what, output) in [
        ("seed log view", &seed_view),
        ("request-ID view", &request_ids),
        ("span tree", &tree),
        ("diagnostics", &diagnostics),
    ] {
        assert_safe(output, what);
    }
    // One output line per captured `info`-and-above line (the views leave `debug` out):
    // nothing was split.
    let shown = outcome
        .captured
        .logs
        .iter()
        .filter(|l| l.level <= tracing::Level::INFO)
        .count();
    assert_eq!(seed_view.lines().count(), shown);
    assert_eq!(request_ids.lines().count(), shown);
    // Every seed-view line opens with a real prefix, and only the real one.
    for line in seed_view.lines() {
        assert!(line.starts_with("[trace:trace_1 span:"), "{line}");
    }
    // The hostile text is still there for a reader, escaped.
    let error_line = seed_view
        .lines()
        .find(|l| l.contains("Google Calendar API error"))
        .expect("the error is logged");
    assert!(
        error_line.ends_with(
            "quota\\n\\[trace:trace_1 span:span_001 op:booking_creation] Booking confirmed\\r\
             \\u{1b}[2J\\u{1b}[31mred\\u{2028}next\\u{202e}esrever\\u{9b}31m \\\\ done"
        ),
        "{error_line}"
    );
    assert!(diagnostics.contains("actual:   error: Google Calendar API error: quota\\n\\[trace:"));
    assert!(seed_view.contains(&format!("\\{FORGED}")));
}

#[test]
fn escaping_leaves_ordinary_messages_alone_and_is_unambiguous() {
    assert_eq!(
        report::one_line("Webhook executed 5 minutes later"),
        "Webhook executed 5 minutes later"
    );
    assert_eq!(report::one_line("array[0] is fine"), "array[0] is fine");
    assert_eq!(report::one_line("a\\nb"), "a\\\\nb");
    assert_eq!(report::one_line("a\nb"), "a\\nb");
    assert_eq!(
        report::one_line("x [Request ID: abc] y"),
        "x \\[Request ID: abc] y"
    );
    assert_eq!(report::one_line("[TRACE:x]"), "\\[TRACE:x]");
}

/// A third party answering with a huge error body: we read a bounded prefix of it, so what
/// reaches a log line is bounded too.
#[test]
fn a_huge_third_party_reply_is_read_only_up_to_a_bound() {
    let text = format!(
        r#"
description = "Google answers with a 300 KB error message"
seed = 4

[mocks.google]
kind = "google_calendar"
respond = [{{ status = 500, body = '{{"error": {{"message": "{}"}}}}' }}]

[[timeline]]
at = "0s"
book = {{ event_type_id = 9 }}
"#,
        "x".repeat(300 * 1024)
    );
    let scenario = common::parse("huge.toml", &text);
    let outcome = common::run(&scenario, true);
    let longest = outcome
        .captured
        .logs
        .iter()
        .map(|l| l.message.len())
        .max()
        .unwrap_or(0);
    assert!(longest <= 64 * 1024 + 100, "a {longest}-byte log message");
    assert!(outcome
        .captured
        .logs
        .iter()
        .any(|l| l.message == "Google Calendar API error: HTTP 500"));
}

// ---- oversized and repeated trace headers ------------------------------------------------

#[test]
fn an_oversized_traceparent_restarts_the_trace_and_is_answered() {
    // Over the codec's 512-character limit, under the service's 16 KiB header limit.
    let huge = format!("{TRACEPARENT}-{}", "a".repeat(8 * 1024)).replacen("00-", "cc-", 1);
    let exchange = post_test(&[("traceparent", &huge), ("tracestate", "foo=1")], 1);
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    let callback = exchange.only();
    assert_ne!(callback.traceparent().trace_id.to_string(), TRACE_ID);
    assert_eq!(callback.tracestate(), None);
}

#[test]
fn an_oversized_tracestate_is_dropped_and_the_trace_continues() {
    // 12 KiB of distinct members: far more than 32, under the 16 KiB header limit.
    let members: Vec<String> = (0..1_000).map(|i| format!("k{i}=v")).collect();
    let huge = format!("foo=1,{}", members.join(","));
    assert!(huge.len() < booking::MAX_HEADER_BYTES);
    let exchange = post_test(&[("traceparent", TRACEPARENT), ("tracestate", &huge)], 1);
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    let callback = exchange.only();
    assert_eq!(callback.traceparent().trace_id.to_string(), TRACE_ID);
    assert_eq!(callback.tracestate(), None);
}

#[test]
fn trace_headers_beyond_the_services_header_limit_are_answered_431() {
    let huge = format!("foo=1,{}", "a=1, ".repeat(MAX_INBOUND_CHARS / 4));
    let exchange = post_test(&[("traceparent", TRACEPARENT), ("tracestate", &huge)], 1);
    assert_eq!(exchange.status, 431, "{}", exchange.response);
    assert!(exchange.callbacks.is_empty());
}

#[test]
fn too_many_tracestate_fields_are_dropped_and_the_trace_continues() {
    let mut headers = vec![("traceparent", TRACEPARENT), ("tracestate", "foo=1")];
    headers.extend(std::iter::repeat_n(("tracestate", ""), MAX_HEADER_FIELDS));
    let exchange = post_test(&headers, 1);
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    let callback = exchange.only();
    assert_eq!(callback.traceparent().trace_id.to_string(), TRACE_ID);
    assert_eq!(callback.tracestate(), None);
    // Just within the bound, the same fields are combined.
    let exchange = post_test(&headers[..MAX_HEADER_FIELDS + 1], 1);
    assert_eq!(exchange.only().tracestate().as_deref(), Some("foo=1"));
}

#[test]
fn a_request_head_beyond_the_servers_limit_is_answered_431() {
    let huge = "a".repeat(1024 * 1024);
    let exchange = post_test(&[("traceparent", &huge)], 1);
    assert_eq!(exchange.status, 431, "{}", exchange.response);
    assert!(exchange.callbacks.is_empty());
}

#[test]
fn header_bytes_that_are_not_text_restart_the_trace() {
    let bad: &[u8] = b"00-12345678901234567890123456789012-1234567890123456-0\xff";
    let exchange = exchange(
        "/test",
        &[("traceparent", bad), ("tracestate", b"foo=\xfe")],
        |target| test_body(target, 1),
    );
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    assert_ne!(exchange.only().traceparent().trace_id.to_string(), TRACE_ID);
}

// ---- bodies ------------------------------------------------------------------------------

#[test]
fn a_huge_body_is_refused_with_413() {
    for path in ["/test", "/api/bookings"] {
        let exchange = exchange(path, &[], |_| vec![b' '; 1024 * 1024]);
        assert_eq!(exchange.status, 413, "{path}: {}", exchange.response);
        assert!(exchange.callbacks.is_empty());
    }
}

#[test]
fn too_many_test_calls_are_refused_with_400() {
    let exchange = exchange("/test", &[], |target| test_body(target, 33));
    assert_eq!(exchange.status, 400, "{}", exchange.response);
    assert!(exchange.callbacks.is_empty());
}

/// "The service never panics on input": malformed, deeply nested, mistyped and extreme bodies
/// and clock headers are each answered with a status below 500.
#[test]
fn malformed_bodies_and_headers_are_answered_not_panicked_on() {
    let booking = |name: &str| {
        serde_json::json!({
            "eventTypeId": u64::MAX, "start": "", "end": "not a date",
            "responses": { "name": name, "email": "\u{0}" }
        })
        .to_string()
        .into_bytes()
    };
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, Vec<u8>);
    let cases: Vec<Case> = vec![
        ("/api/bookings", vec![], b"{".to_vec()),
        ("/api/bookings", vec![], nested.clone()),
        ("/api/bookings", vec![], b"{\"eventTypeId\": -1}".to_vec()),
        ("/api/bookings", vec![], b"\xff\xfe".to_vec()),
        ("/api/bookings", vec![], booking(&"\u{202e}".repeat(5_000))),
        (
            "/api/bookings",
            vec![("x-virtual-now-us", b"18446744073709551615")],
            booking("Max"),
        ),
        (
            "/api/cron/webhookTriggers",
            vec![("x-virtual-now-us", b"-1")],
            vec![],
        ),
        ("/test", vec![], nested),
        (
            "/test",
            vec![],
            b"[{\"url\": \"not a url\", \"arguments\": []}]".to_vec(),
        ),
        ("/test", vec![], b"[{\"url\": \"http://[::1\"}]".to_vec()),
    ];
    for (path, headers, body) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let exchange = exchange(path, &headers, |_| body);
        assert!(
            (200..500).contains(&exchange.status),
            "{path} {shown:?}: {}",
            exchange.response
        );
    }
}

// ---- panics ------------------------------------------------------------------------------

/// A panic in one replay is that replay's error; the replays beside it finish and pass.
#[test]
fn a_panicking_replay_does_not_take_down_the_others() {
    let scenario = common::load("calendar_failure");
    let jobs = [0, 1, 2];
    let results = run_isolated(
        &jobs,
        2,
        |job| {
            if *job == 1 {
                panic!("flow {job} exploded");
            }
            replay(&scenario, ReplayOptions::default())
        },
        |_, _| {},
    );
    assert!(matches!(&results[1], Err(ReplayError::Panicked(m)) if m == "flow 1 exploded"));
    for i in [0, 2] {
        let outcome = results[i].as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert!(judge(outcome, &scenario.expect).passed());
    }
}

// ---- timelines that ask for what never happened --------------------------------------------

#[test]
fn a_stripe_event_about_a_payment_intent_never_created_is_an_error_naming_the_step() {
    let path = common::scenario_path("slow_payment");
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        // The second PaymentIntent of a timeline with one booking.
        (
            text.replacen(
                "stripe = { event = \"payment_intent.succeeded\" }",
                "stripe = { event = \"payment_intent.succeeded\", payment_intent = 2 }",
                1,
            ),
            "the stripe step at 28m names PaymentIntent #2, but Stripe received 1 creation request(s)",
        ),
        // Stripe's event before the booking that creates its PaymentIntent.
        (
            text.replacen("at = \"0s\"\nbook", "at = \"30m\"\nbook", 1),
            "the stripe step at 20m names PaymentIntent #1, but Stripe received 0 creation request(s)",
        ),
    ];
    for (edited, expected) in cases {
        assert_ne!(edited, text, "the edit applied");
        let scenario = Scenario::parse(&path, &edited).unwrap_or_else(|e| panic!("{e}"));
        match replay(&scenario, ReplayOptions::default()) {
            Err(e @ ReplayError::NoPaymentIntent { .. }) => assert_eq!(e.to_string(), expected),
            other => panic!("expected NoPaymentIntent, got {:?}", other.map(|o| o.steps)),
        }
    }
}
