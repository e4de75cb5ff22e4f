//! A clean stop with work still in flight (SIGTERM, a restart): the service waits its grace for
//! requests in flight, then abandons them where they wait, gives back the jobs it still holds,
//! and the next process on the same database takes them at once, saying it re-runs a released
//! job, instead of waiting for the lease to run out as after a crash.

use std::time::Duration;

use tokio::sync::mpsc;
use tower::ServiceExt;
use trace_harness::booking::{BookingService, ServiceConfig};
use trace_harness::contract::headers::{AUTHORIZATION, VIRTUAL_NOW_US};
use trace_harness::contract::{routes, DEFAULT_CRON_API_KEY};
use tracing_test::traced_test;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn post(
    url: String,
    at_us: u64,
    body: &str,
    cron: bool,
) -> reqwest::Result<reqwest::Response> {
    let request = reqwest::Client::new()
        .post(url)
        .header(VIRTUAL_NOW_US, at_us.to_string())
        .header("content-type", "application/json")
        .body(body.to_owned());
    let request = match cron {
        true => request.header(AUTHORIZATION, DEFAULT_CRON_API_KEY),
        false => request,
    };
    request.send().await
}

#[tokio::test]
#[traced_test]
async fn a_stop_abandons_a_cron_call_still_in_flight_and_gives_its_job_back_to_the_next_process() {
    // A subscriber that takes a real minute to answer: the delivery is in flight at the stop.
    let subscriber = MockServer::start().await;
    let (reached, mut arrived) = mpsc::unbounded_channel();
    Mock::given(method("POST"))
        .respond_with(move |_: &Request| {
            let _ = reached.send(());
            ResponseTemplate::new(200).set_delay(Duration::from_secs(60))
        })
        .mount(&subscriber)
        .await;
    let database = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = ServiceConfig::new(database.path().join("booking.sqlite3"), 3);
    config.webhook_subscribers = vec![format!("{}/webhook", subscriber.uri())];
    config.in_flight_grace = Duration::from_millis(100);
    let service = BookingService::start(config.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let booking = serde_json::json!({
        "eventTypeId": 1,
        "start": "2026-03-02T10:00:00Z",
        "end": "2026-03-02T10:30:00Z",
        "responses": { "name": "Ada Lovelace", "email": "ada@example.com" },
    });
    let booked = post(
        format!("{}{}", service.url(), routes::BOOKINGS),
        0,
        &booking.to_string(),
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(booked.status(), 201);
    let cron = tokio::spawn(post(
        format!("{}{}", service.url(), routes::WEBHOOK_CRON),
        300_000_000,
        "",
        true,
    ));
    arrived.recv().await;

    service.stop().await;
    let answer = cron.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        answer.as_ref().map_or(true, |a| a.status() == 503),
        "the abandoned cron call was answered {answer:?}"
    );
    assert!(logs_contain(
        "Stopping with 1 unfinished job(s): their leases are released"
    ));

    // The next process takes the job at once, long before its lease (until 10m) would end.
    subscriber.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&subscriber)
        .await;
    config.generation = 1;
    // Driven in the test's own task, where `tracing-test` sees the handlers' lines.
    let next = trace_harness::booking::router(config).unwrap_or_else(|e| panic!("{e}"));
    let cron = axum::http::Request::post(routes::WEBHOOK_CRON)
        .header(VIRTUAL_NOW_US, "360000000")
        .header(AUTHORIZATION, DEFAULT_CRON_API_KEY)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let rerun = next.oneshot(cron).await.unwrap_or_else(|e| panic!("{e}"));
    let body = axum::body::to_bytes(rerun.into_body(), 1 << 16)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"{"delivered":1,"executed":1}"#
    );
    assert!(logged(
        "Re-run after released lease (attempt 2, previous holder process 0)"
    ));
}

/// Whether any line captured so far contains `text`. A job's span has no parent in the test
/// (it continues its row's context), so `logs_contain`, which keeps to the test's span, never
/// sees its lines: this binary's one test reads the whole buffer instead.
fn logged(text: &str) -> bool {
    let buffer = tracing_test::internal::global_buf()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&buffer).contains(text)
}
