//! Stripe's `payment_intent.payment_failed`: accepted in scenario files, delivered in Stripe's
//! event shape, and handled in the booking's trace — the payment recorded failed with Stripe's
//! reason, the booking left unpaid, a later success still confirming it (Stripe lets the
//! customer pay again on the same PaymentIntent), and a failure reported after the payment went
//! through changing nothing.

mod common;

use common::*;
use trace_harness::clock::VirtualTime;
use trace_harness::contract::{PAYMENT_FAILURE_PROCESSING, PAYMENT_PROCESSING};
use trace_harness::mocks::stripe;
use trace_harness::scenario::Scenario;
use trace_harness::trace::SpanStatus;

/// A paid booking at 0s, then the Stripe events at the given instants.
fn paid_booking_then(events: &[(&str, &str)]) -> Scenario {
    let mut text = String::from(
        "description = \"a paid booking and Stripe's events about it\"\nseed = 11\n\n\
         [[event_types]]\nid = 5\nprice = 1500\n\n\
         [mocks.stripe]\nkind = \"stripe\"\nrespond = [{ status = 200, latency = \"200ms\" }]\n\n\
         [[timeline]]\nat = \"0s\"\nbook = { event_type_id = 5 }\n",
    );
    for (at, event) in events {
        text.push_str(&format!(
            "\n[[timeline]]\nat = \"{at}\"\nstripe = {{ event = \"{event}\" }}\n"
        ));
    }
    parse("paid_booking.toml", &text)
}

/// `(operation, status, messages)` of every span from Stripe's callbacks, in order.
fn callbacks(outcome: &trace_harness::outcome::ReplayOutcome) -> Vec<(String, String)> {
    let captured = &outcome.captured;
    let mut out = Vec::new();
    for span in captured
        .spans
        .iter()
        .filter(|s| s.op.starts_with("payment_"))
    {
        if span.op == PAYMENT_PROCESSING {
            continue;
        }
        let status = match &span.status {
            SpanStatus::Ok => "ok".to_owned(),
            SpanStatus::Error(message) => format!("error: {message}"),
        };
        out.push((span.op.to_owned(), status));
    }
    out
}

#[test]
fn a_declined_payment_leaves_the_booking_unpaid_in_its_trace() {
    let outcome = run_green(&load("card_declined"));
    assert_eq!(outcome.payments, [("failed".to_owned(), 1)]);
    let failure = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == PAYMENT_FAILURE_PROCESSING)
        .expect("a payment_failure_processing span");
    let payment = outcome
        .captured
        .spans
        .iter()
        .find(|s| s.op == PAYMENT_PROCESSING && s.trace_id == failure.trace_id)
        .expect("the failure is in the trace of the booking that created the PaymentIntent");
    assert_eq!(failure.links.as_slice(), [payment.span_id]);
    assert_eq!(
        failure.status,
        SpanStatus::Error(
            "Payment failed after 3 minutes: Your card was declined. (card_declined)".into()
        )
    );
    // Stripe's event was answered as received; only the booking request was a 5xx.
    let statuses: Vec<u16> = outcome.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [201, 502, 200, 200]);
}

#[test]
fn a_success_after_a_failed_attempt_still_confirms_the_booking() {
    let outcome = run_green(&paid_booking_then(&[
        ("3m", "payment_intent.payment_failed"),
        ("10m", "payment_intent.succeeded"),
    ]));
    assert_eq!(outcome.payments, [("paid".to_owned(), 1)]);
    assert_eq!(
        callbacks(&outcome),
        [
            (
                "payment_failure_processing".to_owned(),
                "error: Payment failed after 3 minutes: Your card was declined. (card_declined)"
                    .to_owned()
            ),
            ("payment_success_processing".to_owned(), "ok".to_owned()),
        ]
    );
    assert_eq!(outcome.captured.trace_ids().len(), 1, "one trace");
}

#[test]
fn a_failure_reported_after_the_payment_went_through_changes_nothing() {
    let outcome = run_green(&paid_booking_then(&[
        ("3m", "payment_intent.succeeded"),
        ("4m", "payment_intent.payment_failed"),
    ]));
    assert_eq!(outcome.payments, [("paid".to_owned(), 1)]);
    assert_eq!(
        callbacks(&outcome),
        [
            ("payment_success_processing".to_owned(), "ok".to_owned()),
            ("payment_failure_processing".to_owned(), "ok".to_owned()),
        ]
    );
    let last = outcome.captured.logs.last().map(|l| l.message.as_str());
    assert_eq!(last, Some("Payment already processed"));
}

#[test]
fn scenario_files_name_both_payment_events_and_nothing_else() {
    let scenario = paid_booking_then(&[("3m", "payment_intent.payment_failed")]);
    assert_eq!(scenario.timeline.len(), 2);
    let text = "description = \"x\"\nseed = 1\n\n[[timeline]]\nat = \"0s\"\n\
                stripe = { event = \"payment_intent.canceled\" }\n";
    let error = Scenario::parse(std::path::Path::new("bad.toml"), text)
        .expect_err("an unknown Stripe event is bad input")
        .to_string();
    for expected in [
        "bad.toml:6:",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
    ] {
        assert!(error.contains(expected), "no `{expected}` in: {error}");
    }
}

#[test]
fn the_event_has_stripes_shape_for_a_declined_card() {
    let intent = stripe::payment_intent(
        "amount=1500&currency=usd&metadata[bookingUid]=u1",
        0,
        VirtualTime::ZERO,
    );
    let event = stripe::payment_failed_event(&intent, VirtualTime::from_micros(180_000_000));
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "payment_intent.payment_failed");
    let object = &event["data"]["object"];
    assert_eq!(object["id"], intent["id"]);
    assert_eq!(object["status"], "requires_payment_method");
    assert_eq!(object["amount_received"], 0);
    assert_eq!(object["metadata"]["bookingUid"], "u1");
    let error = &object["last_payment_error"];
    assert_eq!(error["type"], "card_error");
    assert_eq!(error["code"], "card_declined");
    assert_eq!(error["decline_code"], "generic_decline");
    assert_eq!(error["message"], "Your card was declined.");
    assert_eq!(error["charge"], object["latest_charge"]);
    assert_eq!(error["payment_method"]["card"]["last4"], "0002");
    // Each event of one PaymentIntent has its own id.
    let succeeded = stripe::succeeded_event(&intent, VirtualTime::from_micros(180_000_000));
    assert_ne!(event["id"], succeeded["id"]);
}
