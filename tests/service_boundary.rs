//! Bad input at the booking service's boundary: malformed or incomplete JSON, forged or stale
//! Stripe signatures, oversized headers and bodies get clear 4xx answers and leave no rows; a
//! correctly signed Stripe event or a virtual arrival time at the end of the time line is no
//! overflow, and a replay's service mounts no `/test` route.

use std::collections::BTreeMap;
use std::time::Duration;

use trace_harness::booking::{BookingService, ServiceConfig, MAX_HEADER_BYTES};
use trace_harness::clock::VirtualTime;
use trace_harness::contract::headers::STRIPE_SIGNATURE as STRIPE_SIGNATURE_HEADER;
use trace_harness::contract::headers::{VIRTUAL_LATENCY_US, VIRTUAL_NOW_US};
use trace_harness::contract::routes::STRIPE_WEBHOOK as STRIPE_WEBHOOK_PATH;
use trace_harness::contract::EventType;
use trace_harness::mocks::{stripe, MockKind, MockService};

const VALID: &str = r#"{"eventTypeId":1,"start":"2026-03-02T10:00:00Z","end":"2026-03-02T10:30:00Z","responses":{"name":"Ann","email":"ann@example.com"}}"#;

struct Harness {
    service: BookingService,
    stripe: MockService,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    secret: String,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stripe = MockService::start("stripe", MockKind::Stripe, &BTreeMap::new()).await;
    let mut config = ServiceConfig::new(dir.path().join("b.sqlite3"), 7);
    config.stripe_url = stripe.base_url();
    config.event_types = vec![
        EventType {
            id: 2,
            price: Some(5000),
            currency: "usd".into(),
            ..EventType::default()
        },
        EventType {
            id: 3,
            seats: Some(2),
            ..EventType::default()
        },
    ];
    let secret = config.stripe_webhook_secret.clone();
    let service = BookingService::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Harness {
        service,
        stripe,
        client: reqwest::Client::new(),
        _dir: dir,
        secret,
    }
}

impl Harness {
    async fn post(&self, path: &str, body: &str, headers: &[(&str, String)]) -> (u16, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.service.url()))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Books the paid event type (2): its booking waits for Stripe's event.
    async fn book_paid(&self) -> (u16, String) {
        let paid = VALID.replace("\"eventTypeId\":1", "\"eventTypeId\":2");
        self.post("/api/bookings", &paid, &[]).await
    }

    fn rows(&self) -> i64 {
        let counts = self.service.row_counts().unwrap_or_else(|e| panic!("{e}"));
        counts.iter().map(|(_, n)| n).sum()
    }

    async fn stripe_event(&self, at: VirtualTime) -> String {
        let received = self.stripe.received().await;
        let request = received
            .first()
            .unwrap_or_else(|| panic!("no PaymentIntent"));
        let intent = stripe::payment_intent(&request.body, 0, request.sent_at());
        stripe::succeeded_event(&intent, at).to_string()
    }
}

#[tokio::test]
async fn malformed_and_incomplete_bodies_are_refused_with_a_reason() {
    let h = start().await;
    for (body, status, says) in [
        (
            "{\"eventTypeId\": 1,",
            400,
            "Failed to parse the request body as JSON",
        ),
        (
            r#"{"eventTypeId":1,"end":"x","responses":{"name":"A","email":"a@b.c"}}"#,
            422,
            "missing field `start`",
        ),
        (
            &VALID.replace("\"eventTypeId\":1", "\"eventTypeId\":\"one\""),
            422,
            "invalid type",
        ),
        (
            &VALID.replace("\"end\"", "\"colour\":1,\"end\""),
            422,
            "unknown field `colour`",
        ),
        (
            &VALID.replace("ann@example.com", "ann"),
            400,
            "attendee 1 has no valid email",
        ),
        (
            &VALID.replace("\"Ann\"", "\"  \""),
            400,
            "attendee 1 has no name",
        ),
    ] {
        let (got, text) = h.post("/api/bookings", body, &[]).await;
        assert_eq!(got, status, "{body} → {text}");
        let message: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = message["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body} → {message}");
    }
    assert_eq!(h.rows(), 0);
    let (status, _) = h.post("/api/bookings", VALID, &[]).await;
    assert_eq!(status, 201);
    assert_eq!(h.rows(), 2, "one booking, one attendee");
    h.service.stop().await;
}

#[tokio::test]
async fn guests_on_an_unseated_type_and_too_many_seats_leave_no_rows() {
    let h = start().await;
    let guests = r#","guests":[{"name":"Bo","email":"bo@example.com"},{"name":"Cy","email":"cy@example.com"}]}"#;
    let plain = VALID.strip_suffix('}').unwrap_or(VALID).to_owned() + guests;
    let (status, text) = h.post("/api/bookings", &plain, &[]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not seated"), "{text}");
    let seated = plain.replace("\"eventTypeId\":1", "\"eventTypeId\":3");
    let (status, text) = h.post("/api/bookings", &seated, &[]).await;
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("Not enough seats: 2 available, 3 requested"),
        "{text}"
    );
    assert_eq!(h.rows(), 0);
    h.service.stop().await;
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused() {
    let h = start().await;
    let big = "x".repeat(MAX_HEADER_BYTES + 1);
    let (status, text) = h.post("/api/bookings", VALID, &[("x-padding", big)]).await;
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("at most 16384"), "{text}");
    let huge = VALID.replace("Ann", &"A".repeat(3 * 1024 * 1024));
    let (status, _) = h.post("/api/bookings", &huge, &[]).await;
    assert_eq!(status, 413);
    assert_eq!(h.rows(), 0);
    h.service.stop().await;
}

#[tokio::test]
async fn forged_stale_and_missing_stripe_signatures_change_nothing() {
    let h = start().await;
    let (status, text) = h.book_paid().await;
    assert_eq!(status, 201, "{text}");
    assert!(text.contains("\"status\":\"PENDING\""), "{text}");
    let rows = h.rows();
    let at = VirtualTime::from_micros(28 * 60 * 1_000_000);
    let now = [(VIRTUAL_NOW_US, at.as_micros().to_string())];
    let event = h.stripe_event(at).await;
    let t = at.unix_seconds();
    for (signature, says) in [
        (None, "no Stripe-Signature header"),
        (
            Some(stripe::signature_header("whsec_forged", t, &event)),
            "no v1 signature matches",
        ),
        (
            Some(stripe::signature_header(
                &h.secret,
                t,
                &event.replace("succeeded", "failed"),
            )),
            "no v1 signature matches",
        ),
        (
            Some(stripe::signature_header(&h.secret, t - 301, &event)),
            "outside the 300s tolerance",
        ),
        (Some(format!("t={t}")), "no `v1=` signature"),
    ] {
        let mut headers = now.to_vec();
        if let Some(signature) = &signature {
            headers.push((STRIPE_SIGNATURE_HEADER, signature.clone()));
        }
        let (status, text) = h.post(STRIPE_WEBHOOK_PATH, &event, &headers).await;
        assert_eq!(status, 400, "{signature:?} → {text}");
        assert!(text.contains(says), "{signature:?} → {text}");
        assert_eq!(h.service.paid_booking_count().unwrap_or(-1), 0);
    }
    assert_eq!(h.rows(), rows);
    // The genuine delivery confirms the booking; a repeat changes nothing more.
    let mut headers = now.to_vec();
    headers.push((
        STRIPE_SIGNATURE_HEADER,
        stripe::signature_header(&h.secret, t, &event),
    ));
    for _ in 0..2 {
        let (status, text) = h.post(STRIPE_WEBHOOK_PATH, &event, &headers).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(h.service.paid_booking_count().unwrap_or(-1), 1);
    }
    assert_eq!(h.rows(), rows);
    h.service.stop().await;
}

#[tokio::test]
async fn a_stripe_failure_leaves_no_booking() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut routes = BTreeMap::new();
    routes.insert(
        "payment_intents".to_owned(),
        vec![trace_harness::mocks::MockBehaviour {
            status: 402,
            error: Some("card_declined".into()),
            ..Default::default()
        }],
    );
    let stripe = MockService::start("stripe", MockKind::Stripe, &routes).await;
    let mut config = ServiceConfig::new(dir.path().join("b.sqlite3"), 7);
    config.stripe_url = stripe.base_url();
    config.event_types = vec![EventType {
        id: 2,
        price: Some(5000),
        currency: "usd".into(),
        ..EventType::default()
    }];
    let service = BookingService::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = reqwest::Client::new()
        .post(format!("{}/api/bookings", service.url()))
        .header("content-type", "application/json")
        .body(VALID.replace("\"eventTypeId\":1", "\"eventTypeId\":2"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 502);
    let text = response.text().await.unwrap_or_default();
    assert!(
        text.contains("Your card was declined. (card_declined)"),
        "{text}"
    );
    let sent = stripe.received().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(sent[0]
        .header("idempotency-key")
        .is_some_and(|k| k.starts_with("booking-")));
    assert!(
        sent[0].body.contains("amount=5000&currency=usd"),
        "{}",
        sent[0].body
    );
    let rows: i64 = service
        .row_counts()
        .unwrap_or_default()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(rows, 0);
    service.stop().await;
}

#[tokio::test]
async fn a_correctly_signed_stripe_event_stamped_at_the_end_of_time_is_accepted() {
    let h = start().await;
    let (status, text) = h.book_paid().await;
    assert_eq!(status, 201, "{text}");
    let at = VirtualTime::from_micros(60 * 1_000_000);
    let event = h.stripe_event(at).await;
    // A `t` so far ahead that adding the tolerance to it overflows; it is signed correctly, so
    // it is a future timestamp (which Stripe's libraries accept), not a reason to fail.
    let headers = [
        (VIRTUAL_NOW_US, at.as_micros().to_string()),
        (
            STRIPE_SIGNATURE_HEADER,
            stripe::signature_header(&h.secret, u64::MAX, &event),
        ),
    ];
    let (status, text) = h.post(STRIPE_WEBHOOK_PATH, &event, &headers).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(h.service.paid_booking_count().unwrap_or(-1), 1);
    h.service.stop().await;
}

#[tokio::test]
async fn a_replays_service_has_no_conformance_route() {
    let h = start().await;
    let calls = r#"[{"url": "http://127.0.0.1:9/anywhere", "arguments": []}]"#;
    let (status, text) = h.post("/test", calls, &[]).await;
    assert_eq!(status, 404, "{text}");
    h.service.stop().await;
}

#[tokio::test]
async fn a_request_arriving_near_the_end_of_time_saturates_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = ServiceConfig::new(dir.path().join("b.sqlite3"), 7);
    // The booking's one transaction costs 50ms; the request arrives 20ms before the end.
    config.store_latency = Duration::from_millis(50);
    let service = BookingService::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let arrival = u64::MAX - 20_000;
    let response = reqwest::Client::new()
        .post(format!("{}{}", service.url(), "/api/bookings"))
        .header("content-type", "application/json")
        .header(VIRTUAL_NOW_US, arrival.to_string())
        .body(VALID)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 201);
    // Wrapping would end the flow before it started (answered as 0µs); saturating ends it at
    // the last instant, 20ms after it arrived.
    let latency = response
        .headers()
        .get(VIRTUAL_LATENCY_US)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(latency.as_deref(), Some("20000"));
    service.stop().await;
}
