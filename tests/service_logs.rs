//! The booking service logs through plain `tracing`: any subscriber sees its lines and spans,
//! and without trace-harness's capture subscriber nothing is propagated (tracing stays opt-in).
//! Driven in-process so the handlers run in the test's own task, where `tracing-test` sees them.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use trace_harness::booking::{self, ServiceConfig};
use trace_harness::mocks::{MockBehaviour, MockKind, MockService};
use tracing_test::traced_test;

#[tokio::test]
#[traced_test]
async fn an_ordinary_subscriber_sees_the_services_lines_and_spans_and_nothing_propagates() {
    let rate_limited = MockBehaviour {
        status: 403,
        error: Some("rateLimitExceeded".into()),
        ..MockBehaviour::default()
    };
    let routes = BTreeMap::from([("events_insert".to_owned(), vec![rate_limited])]);
    let google = MockService::start("google", MockKind::GoogleCalendar, &routes).await;
    let database = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(database.path().join("booking.sqlite3"), 1);
    config.google_calendar_url = google.base_url();
    let service = booking::router(config).unwrap();

    let body = serde_json::json!({
        "eventTypeId": 123,
        "start": "2026-03-02T10:00:00Z",
        "end": "2026-03-02T10:30:00Z",
        "responses": { "name": "Ada Lovelace", "email": "ada@example.com" },
    });
    let request = Request::post("/api/bookings")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();

    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("x-request-id"));
    assert!(!response.headers().contains_key("x-trace-id"));
    assert!(logs_contain(
        "Booking creation started for eventTypeId: 123"
    ));
    assert!(logs_contain(
        "Google Calendar API error: Rate Limit Exceeded"
    ));
    // The fmt subscriber prints the span each line was written in.
    assert!(logs_contain("booking_creation"));
    assert!(logs_contain("calendar_event_creation"));
    let received = google.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].traceparent, None);
}
