//! Mocked third parties (Google Calendar, webhook subscribers) as real wiremock HTTP servers,
//! answering with the scenario's behaviours and recording every request they receive.
//! Mocks never assert: `expect` judges what they recorded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::clock::{self, LATENCY_HEADER};
use crate::trace::{TRACEPARENT, TRACESTATE};

/// The third parties the booking service talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockKind {
    /// Google Calendar API v3, `events.insert`.
    GoogleCalendar,
    /// A subscriber's endpoint receiving Cal.com-style webhook deliveries.
    WebhookSubscriber,
}

impl MockKind {
    pub const ALL: [MockKind; 2] = [MockKind::GoogleCalendar, MockKind::WebhookSubscriber];

    pub fn name(self) -> &'static str {
        match self {
            MockKind::GoogleCalendar => "google_calendar",
            MockKind::WebhookSubscriber => "webhook_subscriber",
        }
    }

    /// Error reasons this API answers with, each rendered in the API's own error shape.
    pub fn error_reasons(self) -> Vec<&'static str> {
        match self {
            MockKind::GoogleCalendar => {
                GOOGLE_ERRORS.iter().map(|(reason, _, _)| *reason).collect()
            }
            MockKind::WebhookSubscriber => Vec::new(),
        }
    }
}

/// One response a mock gives. A route answers its requests with the scenario's behaviours in
/// order; the last one repeats.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockBehaviour {
    #[serde(default = "ok_status")]
    pub status: u16,
    /// An error reason of the API (`rateLimitExceeded` for Google), sent in the API's real
    /// error body.
    #[serde(default)]
    pub error: Option<String>,
    /// A literal response body, used as is.
    #[serde(default)]
    pub body: Option<String>,
    /// How long the response takes, on the caller's virtual clock.
    #[serde(default, deserialize_with = "clock::deserialize_duration")]
    pub latency: Duration,
}

fn ok_status() -> u16 {
    200
}

impl Default for MockBehaviour {
    fn default() -> Self {
        MockBehaviour {
            status: 200,
            error: None,
            body: None,
            latency: Duration::ZERO,
        }
    }
}

/// Google Calendar's error reasons with their domain and message, as its API documentation
/// lists them ("Handle API errors").
const GOOGLE_ERRORS: [(&str, &str, &str); 6] = [
    ("rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"),
    (
        "userRateLimitExceeded",
        "usageLimits",
        "User Rate Limit Exceeded",
    ),
    (
        "quotaExceeded",
        "usageLimits",
        "Calendar usage limits exceeded.",
    ),
    ("backendError", "global", "Backend Error"),
    ("notFound", "global", "Not Found"),
    ("authError", "global", "Invalid Credentials"),
];

/// The body of a Google API error, in the shape the Calendar API returns it.
pub fn google_error_body(reason: &str, status: u16) -> Option<serde_json::Value> {
    let (reason, domain, message) = GOOGLE_ERRORS.into_iter().find(|(r, _, _)| *r == reason)?;
    Some(serde_json::json!({
        "error": {
            "errors": [{ "domain": domain, "reason": reason, "message": message }],
            "code": status,
            "message": message,
        }
    }))
}

/// A request a mock received, as the harness keeps it.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub mock: String,
    pub kind: MockKind,
    pub method: String,
    pub path: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub body: String,
}

/// A running mock: one wiremock server.
pub struct MockService {
    pub name: String,
    pub kind: MockKind,
    server: MockServer,
}

impl MockService {
    pub async fn start(name: &str, kind: MockKind, behaviours: &[MockBehaviour]) -> Self {
        let server = MockServer::builder().start().await;
        let responder = Sequence {
            kind,
            behaviours: if behaviours.is_empty() {
                vec![MockBehaviour::default()]
            } else {
                behaviours.to_vec()
            },
            served: AtomicUsize::new(0),
        };
        let route = match kind {
            MockKind::GoogleCalendar => Mock::given(method("POST"))
                .and(path_regex(r"^/calendar/v3/calendars/[^/]+/events$")),
            MockKind::WebhookSubscriber => Mock::given(method("POST")).and(path(WEBHOOK_PATH)),
        };
        route.respond_with(responder).mount(&server).await;
        MockService {
            name: name.to_owned(),
            kind,
            server,
        }
    }

    /// The base URL the booking service is configured with.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The URL a webhook subscriber listens on.
    pub fn webhook_url(&self) -> String {
        format!("{}{WEBHOOK_PATH}", self.server.uri())
    }

    /// Every request received so far, in arrival order.
    pub async fn received(&self) -> Vec<ReceivedRequest> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .into_iter()
            .map(|r| ReceivedRequest {
                mock: self.name.clone(),
                kind: self.kind,
                method: r.method.to_string(),
                path: r.url.path().to_owned(),
                traceparent: header(&r, TRACEPARENT),
                tracestate: header(&r, TRACESTATE),
                body: String::from_utf8_lossy(&r.body).into_owned(),
            })
            .collect()
    }
}

const WEBHOOK_PATH: &str = "/webhook";

fn header(request: &Request, name: &str) -> Option<String> {
    let value = request.headers.get(name)?;
    Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Answers with the scenario's behaviours in order, repeating the last.
struct Sequence {
    kind: MockKind,
    behaviours: Vec<MockBehaviour>,
    served: AtomicUsize,
}

impl Respond for Sequence {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let behaviour = &self.behaviours[n.min(self.behaviours.len() - 1)];
        let latency_us = u64::try_from(behaviour.latency.as_micros()).unwrap_or(u64::MAX);
        let template = ResponseTemplate::new(behaviour.status)
            .insert_header(LATENCY_HEADER, latency_us.to_string().as_str());
        if let Some(body) = &behaviour.body {
            return template.set_body_raw(body.clone().into_bytes(), "application/json");
        }
        match (&behaviour.error, self.kind) {
            (Some(reason), MockKind::GoogleCalendar) => {
                match google_error_body(reason, behaviour.status) {
                    Some(body) => template.set_body_json(body),
                    None => template,
                }
            }
            (None, MockKind::GoogleCalendar) if behaviour.status < 300 => {
                template.set_body_json(google_event(request, n))
            }
            (_, MockKind::WebhookSubscriber) | (_, MockKind::GoogleCalendar) => template,
        }
    }
}

/// The event resource `events.insert` returns, echoing the request's fields.
fn google_event(request: &Request, n: usize) -> serde_json::Value {
    let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let id = format!(
        "{:016x}",
        crate::trace::splitmix64(n as u64 ^ 0x6a09_e667_f3bc_c908)
    );
    serde_json::json!({
        "kind": "calendar#event",
        "id": id,
        "status": "confirmed",
        "htmlLink": format!("https://www.google.com/calendar/event?eid={id}"),
        "summary": sent.get("summary"),
        "start": sent.get("start"),
        "end": sent.get("end"),
        "attendees": sent.get("attendees"),
    })
}
