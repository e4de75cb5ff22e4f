//! `X-Cal-Signature-256` at the receiving end: the webhook-subscriber mock verifies deliveries
//! as a real subscriber would, refuses forged ones (401), processes a replayed one no second
//! time, and a subscriber with another secret makes every delivery fail with its reason. A
//! replayed Stripe event (same signature) is acknowledged and changes nothing.
//!
//! Cal.com signs the body alone (HMAC-SHA256, hex), with no timestamp and no delivery id, so
//! "stale" cannot be detected from a signature; a replay to a subscriber that forgot the
//! original is accepted, and a test pins that limitation down.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use trace_harness::contract::headers::CAL_SIGNATURE;
use trace_harness::contract::{cal_signature, DEFAULT_WEBHOOK_SECRET};
use trace_harness::expect;
use trace_harness::mocks::{DeliveryCounts, MockBehaviour, MockKind, MockService};
use trace_harness::scenario::Scenario;

const SECRET: &str = "whsec_subscriber";
const DELIVERY: &str = r#"{"triggerEvent":"BOOKING_CREATED","payload":{"uid":"a"}}"#;
const OTHER: &str = r#"{"triggerEvent":"BOOKING_CREATED","payload":{"uid":"b"}}"#;

/// A verifying subscriber answering 200 twice, then 500 for ever after.
async fn subscriber() -> MockService {
    let mut routes = BTreeMap::new();
    routes.insert(
        "deliveries".to_owned(),
        vec![
            MockBehaviour::default(),
            MockBehaviour::default(),
            MockBehaviour {
                status: 500,
                ..MockBehaviour::default()
            },
        ],
    );
    MockService::start_verifying(
        "hook",
        MockKind::WebhookSubscriber,
        &routes,
        Some(SECRET.to_owned()),
    )
    .await
}

async fn deliver(mock: &MockService, body: &str, signature: Option<String>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(mock.webhook_url())
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header(CAL_SIGNATURE, signature);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn forged_tampered_and_missing_signatures_are_refused_and_replays_change_nothing() {
    let mock = subscriber().await;
    let forged = Some(cal_signature("whsec_forged", DELIVERY.as_bytes()));
    assert_eq!(deliver(&mock, DELIVERY, forged).await.0, 401, "forged");
    let tampered = Some(cal_signature(SECRET, DELIVERY.as_bytes()));
    assert_eq!(
        deliver(&mock, &DELIVERY.replace("\"a\"", "\"z\""), tampered)
            .await
            .0,
        401,
        "a body changed after signing"
    );
    assert_eq!(deliver(&mock, DELIVERY, None).await.0, 401, "unsigned");
    let garbage = Some("not hex".to_owned());
    assert_eq!(deliver(&mock, DELIVERY, garbage).await.0, 401, "garbage");
    assert_eq!(mock.delivery_counts(), counts(0, 0, 4));

    let genuine = Some(cal_signature(SECRET, DELIVERY.as_bytes()));
    assert_eq!(deliver(&mock, DELIVERY, genuine.clone()).await.0, 200);
    assert_eq!(mock.delivery_counts(), counts(1, 0, 4));
    // Replayed: acknowledged as scripted (so a retrying sender stops), not processed again.
    let (status, body) = deliver(&mock, DELIVERY, genuine).await;
    assert_eq!((status, body.as_str()), (200, r#"{"duplicate":true}"#));
    assert_eq!(mock.delivery_counts(), counts(1, 1, 4));

    // The refusals used no behaviour (or the genuine delivery would have met the 500): the
    // next delivery gets the third.
    let next = Some(cal_signature(SECRET, OTHER.as_bytes()));
    assert_eq!(deliver(&mock, OTHER, next.clone()).await.0, 500);
    // A delivery the subscriber failed was not accepted, so the sender's retry is processed
    // (here: failed again) rather than taken for a duplicate.
    assert_eq!(deliver(&mock, OTHER, next).await.0, 500);
    assert_eq!(mock.delivery_counts(), counts(1, 1, 4));
}

fn counts(processed: usize, duplicates: usize, refused: usize) -> DeliveryCounts {
    DeliveryCounts {
        processed,
        duplicates,
        refused,
    }
}

#[tokio::test]
async fn a_replay_to_a_subscriber_that_forgot_the_original_is_accepted() {
    // Cal.com's signature has no timestamp: a captured delivery verifies for ever, and only
    // the memory of having accepted it stops a replay. A subscriber without that memory (a
    // restart, or a second instance) accepts it. This is the scheme's limit, not the mock's.
    let first = subscriber().await;
    let captured = Some(cal_signature(SECRET, DELIVERY.as_bytes()));
    assert_eq!(deliver(&first, DELIVERY, captured.clone()).await.0, 200);
    let restarted = subscriber().await;
    assert_eq!(deliver(&restarted, DELIVERY, captured).await.0, 200);
    assert_eq!(restarted.delivery_counts(), counts(1, 0, 0));
}

#[test]
fn a_subscriber_with_another_secret_refuses_every_delivery_and_the_job_fails_with_its_reason() {
    let text = r#"
description = "the subscriber was configured with a rotated secret"
seed = 1
[mocks.hook]
kind = "webhook_subscriber"
secret = "whsec_rotated"
[[timeline]]
at = "0s"
book = { event_type_id = 1 }
[[timeline]]
at = "1h"
cron = "webhooks"
"#;
    let scenario = common::parse("rotated.toml", text);
    let outcome = common::run(&scenario, true);
    assert!(expect::check_invariants(&outcome).is_empty());
    assert_eq!(outcome.webhook_jobs, [("failed".to_owned(), 1)]);
    assert_eq!(outcome.failed_jobs.len(), 1);
    assert_eq!(outcome.failed_jobs[0].2, "HTTP 401");
    assert_eq!(
        outcome.requests.len(),
        4,
        "the first attempt and three retries"
    );
}

#[test]
fn by_default_the_subscriber_shares_the_services_secret() {
    let text = r#"
description = "d"
seed = 1
[mocks.hook]
kind = "webhook_subscriber"
[[timeline]]
at = "0s"
book = { event_type_id = 1 }
[[timeline]]
at = "1h"
cron = "webhooks"
"#;
    let scenario = common::parse("d.toml", text);
    let outcome = common::run(&scenario, true);
    assert_eq!(outcome.webhook_jobs, [("delivered".to_owned(), 1)]);
    let request = &outcome.requests[0];
    assert_eq!(
        request.header(CAL_SIGNATURE),
        Some(cal_signature(DEFAULT_WEBHOOK_SECRET, request.body.as_bytes()).as_str())
    );
}

#[test]
fn a_secret_on_a_mock_that_receives_no_webhooks_is_an_error() {
    let text = r#"
description = "d"
seed = 1
[mocks.google]
kind = "google_calendar"
secret = "x"
[[timeline]]
at = "0s"
book = { event_type_id = 1 }
"#;
    let error = Scenario::parse(Path::new("d.toml"), text)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`secret` is a webhook subscriber's signing secret"),
        "{error}"
    );
}

#[test]
fn a_replayed_stripe_event_is_acknowledged_and_changes_nothing() {
    // Stripe's scheme signs `t.body`: within the 5-minute tolerance a replay verifies (as a
    // retry by Stripe would), so it must be idempotent; past it, it is stale and refused.
    let text = r#"
description = "the same signed payment_intent.succeeded, delivered again, then long after"
seed = 2
[[event_types]]
id = 789
price = 5000
[mocks.stripe]
kind = "stripe"
[[timeline]]
at = "0s"
book = { event_type_id = 789 }
[[timeline]]
at = "28m"
stripe = { event = "payment_intent.succeeded" }
[[timeline]]
at = "28m"
stripe = { event = "payment_intent.succeeded" }
[[timeline]]
at = "2h"
stripe = { event = "payment_intent.succeeded", signature = "stale" }
"#;
    let scenario = common::parse("replayed.toml", text);
    let outcome = common::run(&scenario, true);
    assert!(expect::check_invariants(&outcome).is_empty());
    let statuses: Vec<u16> = outcome.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [201, 200, 200, 400]);
    let ops = |op: &str| outcome.captured.spans.iter().filter(|s| s.op == op).count();
    assert_eq!(ops("booking_confirmation"), 1, "confirmed once");
    let messages: Vec<&str> = outcome
        .captured
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .filter(|m| m.starts_with("Payment") || m.starts_with("Stripe webhook"))
        .collect();
    assert_eq!(
        messages[1..3],
        [
            "Payment success after 28 minutes",
            "Payment already processed"
        ],
        "{messages:?}"
    );
    assert!(
        messages[3].contains("outside the 300s tolerance"),
        "{messages:?}"
    );
}
