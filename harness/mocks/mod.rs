//! Mocked third parties (Google Calendar, Stripe, webhook subscribers, the email provider) as
//! real wiremock HTTP servers, answering each route with the scenario's behaviours and recording
//! every request they receive with its headers. Mocks never assert: `expect` judges what they
//! recorded.

pub(crate) mod sendgrid;
pub mod stripe;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockBuilder, MockServer, Request, Respond, ResponseTemplate};

use crate::clock::{self, VirtualTime};
use crate::contract::headers::{VIRTUAL_FAULT, VIRTUAL_LATENCY_US, VIRTUAL_NOW_US};
use crate::contract::{self, headers::CAL_SIGNATURE, peers};
use crate::trace::{TRACEPARENT, TRACESTATE};

/// The third parties the booking service talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockKind {
    /// Google Calendar API v3, `events.insert`.
    GoogleCalendar,
    /// Stripe's API: `POST /v1/payment_intents`.
    Stripe,
    /// A subscriber's endpoint receiving Cal.com-style webhook deliveries.
    WebhookSubscriber,
    /// A SendGrid-style email API: `POST /v3/mail/send`, `POST /v3/mail/batch`.
    EmailProvider,
}

impl MockKind {
    /// Every kind, in the order scenario files list them.
    pub const ALL: [MockKind; 4] = [
        MockKind::GoogleCalendar,
        MockKind::Stripe,
        MockKind::WebhookSubscriber,
        MockKind::EmailProvider,
    ];

    /// The kind's name in scenario files (`kind = "google_calendar"`).
    pub fn name(self) -> &'static str {
        match self {
            MockKind::GoogleCalendar => "google_calendar",
            MockKind::Stripe => "stripe",
            MockKind::WebhookSubscriber => "webhook_subscriber",
            MockKind::EmailProvider => "email_provider",
        }
    }

    /// The routes this API serves, by name; the first is the one `respond` configures.
    pub fn routes(self) -> &'static [&'static str] {
        match self {
            MockKind::GoogleCalendar => &["events_insert"],
            MockKind::Stripe => &["payment_intents"],
            MockKind::WebhookSubscriber => &["deliveries"],
            MockKind::EmailProvider => &["mail_send", "mail_batch"],
        }
    }

    /// Error reasons this API answers with, each rendered in the API's own error shape.
    pub fn error_reasons(self) -> Vec<&'static str> {
        match self {
            MockKind::GoogleCalendar => {
                GOOGLE_ERRORS.iter().map(|(reason, _, _)| *reason).collect()
            }
            MockKind::Stripe => stripe::ERRORS.iter().map(|(code, _, _)| *code).collect(),
            MockKind::EmailProvider => sendgrid::ERRORS.iter().map(|(r, _, _)| *r).collect(),
            MockKind::WebhookSubscriber => Vec::new(),
        }
    }

    pub(crate) fn error_body(self, reason: &str, status: u16) -> Option<serde_json::Value> {
        match self {
            MockKind::GoogleCalendar => google_error_body(reason, status),
            MockKind::Stripe => stripe::error_body(reason),
            MockKind::EmailProvider => sendgrid::error_body(reason),
            MockKind::WebhookSubscriber => None,
        }
    }

    fn mount_point(self, route: &str) -> MockBuilder {
        let post = Mock::given(method("POST"));
        match (self, route) {
            // Any calendar id: the service books on `primary` (peers::GOOGLE_EVENTS_INSERT).
            (MockKind::GoogleCalendar, _) => post.and(CalendarEvents),
            (MockKind::Stripe, _) => post.and(path(peers::STRIPE_PAYMENT_INTENTS)),
            (MockKind::WebhookSubscriber, _) => post.and(path(WEBHOOK_PATH)),
            (MockKind::EmailProvider, "mail_batch") => post.and(path(peers::SENDGRID_MAIL_BATCH)),
            (MockKind::EmailProvider, _) => post.and(path(peers::SENDGRID_MAIL_SEND)),
        }
    }
}

/// Matches `events.insert`'s path, `/calendar/v3/calendars/{calendarId}/events`, for any one
/// calendar id. By hand rather than wiremock's `path_regex`: that compiles its regex for every
/// mock that mounts it, which was a few percent of a replay's CPU time.
struct CalendarEvents;

impl wiremock::Match for CalendarEvents {
    fn matches(&self, request: &Request) -> bool {
        let calendar = (request.url.path())
            .strip_prefix("/calendar/v3/calendars/")
            .and_then(|rest| rest.strip_suffix("/events"));
        calendar.is_some_and(|id| !id.is_empty() && !id.contains('/'))
    }
}

/// A fault a response can carry instead of (or on top of) its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The peer never answers: the caller's timeout fires.
    Timeout,
    /// The caller sees the connection refused.
    ConnectionRefused,
    /// The body is cut off mid-JSON.
    MalformedBody,
}

/// One response a mock gives. A route answers its requests with the scenario's behaviours in
/// order; the last one repeats.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockBehaviour {
    /// The HTTP status answered; 200 unless given.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// An error reason of the API (`rateLimitExceeded` for Google, `card_declined` for Stripe,
    /// `invalid_email` for the email provider), sent in the API's real error body.
    #[serde(default)]
    pub error: Option<String>,
    /// A literal response body, used as is.
    #[serde(default)]
    pub body: Option<String>,
    /// How long the response takes, on the caller's virtual clock.
    #[serde(default, deserialize_with = "clock::deserialize_duration")]
    pub latency: Duration,
    /// A fault instead of (or on top of) the status.
    #[serde(default)]
    pub fault: Option<Fault>,
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
            fault: None,
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
pub(crate) fn google_error_body(reason: &str, status: u16) -> Option<serde_json::Value> {
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
    /// The mock's name in the scenario.
    pub mock: String,
    /// The mock's kind.
    pub kind: MockKind,
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `traceparent` the request carried.
    pub traceparent: Option<String>,
    /// The `tracestate` the request carried.
    pub tracestate: Option<String>,
    /// Every header, lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text, lossily decoded.
    pub body: String,
}

impl ReceivedRequest {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The virtual instant the caller sent the request at.
    pub fn sent_at(&self) -> VirtualTime {
        self.header(VIRTUAL_NOW_US)
            .and_then(|v| v.parse().ok())
            .map(VirtualTime::from_micros)
            .unwrap_or_default()
    }
}

/// A running mock: one wiremock server.
pub struct MockService {
    /// The mock's name in the scenario.
    pub name: String,
    /// The mock's kind.
    pub kind: MockKind,
    server: MockServer,
    check: Option<Arc<SubscriberCheck>>,
}

/// A verifying subscriber's tally: deliveries it processed, duplicates it acknowledged without
/// processing, and deliveries it refused (401) for a missing or wrong signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Deliveries processed (signed, new, accepted).
    pub processed: usize,
    /// Deliveries already accepted once, acknowledged without processing.
    pub duplicates: usize,
    /// Deliveries refused for a missing or wrong signature.
    pub refused: usize,
}

impl MockService {
    /// Starts the mock; `routes` maps route names (see [`MockKind::routes`]) to behaviours, and
    /// a route left out answers with the API's default success.
    pub async fn start(
        name: &str,
        kind: MockKind,
        routes: &BTreeMap<String, Vec<MockBehaviour>>,
    ) -> Self {
        Self::start_verifying(name, kind, routes, None).await
    }

    /// Starts the mock; a webhook subscriber given a `secret` verifies each delivery's
    /// `X-Cal-Signature-256` as a real subscriber would: a missing or wrong signature gets
    /// 401, and a body it has already accepted is acknowledged as a duplicate and not processed.
    pub async fn start_verifying(
        name: &str,
        kind: MockKind,
        routes: &BTreeMap<String, Vec<MockBehaviour>>,
        secret: Option<String>,
    ) -> Self {
        Self::launch(name, kind, routes, secret, true, None).await
    }

    /// [`MockService::start_verifying`], recording the requests it receives only if `record`:
    /// a run that never reads [`MockService::received`] need not keep a copy of every request.
    /// Unrecorded, `received` is empty. On `listener` when given (a fixed address a running
    /// service was told), else on a new loopback port.
    pub(crate) async fn launch(
        name: &str,
        kind: MockKind,
        routes: &BTreeMap<String, Vec<MockBehaviour>>,
        secret: Option<String>,
        record: bool,
        listener: Option<std::net::TcpListener>,
    ) -> Self {
        let server = match (listener, record) {
            // From wiremock's pool, reset and reused across replays in this process: a new
            // server binds a port and probes it with a connection that lingers a minute in
            // TIME_WAIT on an ephemeral port, and ten thousand replays in a minute (the fault
            // plans) would run the listeners out of ports.
            (None, true) => MockServer::start().await,
            (Some(listener), record) => {
                recording(MockServer::builder().listener(listener), record)
                    .start()
                    .await
            }
            (None, false) => {
                MockServer::builder()
                    .disable_request_recording()
                    .start()
                    .await
            }
        };
        let check = match (kind, secret) {
            (MockKind::WebhookSubscriber, Some(secret)) => Some(Arc::new(SubscriberCheck {
                secret,
                accepted: Mutex::new(HashSet::new()),
                counts: Mutex::new(DeliveryCounts::default()),
            })),
            _ => None,
        };
        for route in kind.routes() {
            let behaviours = match routes.get(*route) {
                Some(b) if !b.is_empty() => b.clone(),
                _ => vec![MockBehaviour::default()],
            };
            let responder = Sequence {
                kind,
                route,
                behaviours,
                served: AtomicUsize::new(0),
                check: check.clone(),
            };
            kind.mount_point(route)
                .respond_with(responder)
                .mount(&server)
                .await;
        }
        MockService {
            name: name.to_owned(),
            kind,
            server,
            check,
        }
    }

    /// What a verifying webhook subscriber did with the deliveries it received; all zero for
    /// other mocks.
    pub fn delivery_counts(&self) -> DeliveryCounts {
        self.check
            .as_ref()
            .and_then(|c| c.counts.lock().ok().map(|counts| *counts))
            .unwrap_or_default()
    }

    /// The base URL the booking service is configured with.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The URL a webhook subscriber listens on.
    pub fn webhook_url(&self) -> String {
        format!("{}{WEBHOOK_PATH}", self.server.uri())
    }

    /// Every request received so far, in arrival order; none if the mock does not record.
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
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: String::from_utf8_lossy(&r.body).into_owned(),
            })
            .collect()
    }
}

/// `builder`, recording the requests it receives only if `record`.
fn recording(builder: wiremock::MockServerBuilder, record: bool) -> wiremock::MockServerBuilder {
    match record {
        true => builder,
        false => builder.disable_request_recording(),
    }
}

pub(crate) const WEBHOOK_PATH: &str = "/webhook";

fn header(request: &Request, name: &str) -> Option<String> {
    let value = request.headers.get(name)?;
    Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// How long "never answers" is: longer than any client timeout in the service.
const NEVER: Duration = Duration::from_secs(24 * 3600);

/// Answers one route with the scenario's behaviours in order, repeating the last.
struct Sequence {
    kind: MockKind,
    route: &'static str,
    behaviours: Vec<MockBehaviour>,
    served: AtomicUsize,
    check: Option<Arc<SubscriberCheck>>,
}

/// Deliveries a subscriber remembers having accepted; past this it stops remembering (and
/// would accept a replay of an old one), so memory stays bounded on the longest load run.
pub(crate) const MAX_REMEMBERED_DELIVERIES: usize = 1_000_000;

/// What a webhook subscriber checks before it processes a delivery, as Cal.com's documentation
/// asks of one: the hex HMAC-SHA256 of the raw body under the shared secret in
/// `X-Cal-Signature-256`. A missing or wrong signature is refused with 401 before anything
/// else happens.
///
/// Cal.com signs the body alone: no timestamp, no delivery id. So a subscriber cannot tell a
/// *stale* delivery from a fresh one, nor an attacker's *replay* from the sender's own retry
/// (a delivery it answered too slowly is sent again, byte for byte). What it can do, and this
/// one does, is process each signed body once: a delivery it has already accepted is
/// acknowledged (`{"duplicate": true}`, so a retrying sender stops) and changes nothing. A
/// replay to a subscriber that has forgotten the original (restarted, or past
/// [`MAX_REMEMBERED_DELIVERIES`]) is processed again: the scheme offers no defence there.
struct SubscriberCheck {
    secret: String,
    accepted: Mutex<HashSet<String>>,
    counts: Mutex<DeliveryCounts>,
}

/// What a subscriber finds a delivery to be.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Signed and new: the signature, to remember once the delivery is accepted.
    Fresh(String),
    /// Signed, and already accepted once.
    Duplicate,
    /// Missing or wrong signature.
    BadSignature,
}

impl SubscriberCheck {
    fn verify(&self, request: &Request) -> Delivery {
        let delivery = self.read(request);
        if let Ok(mut counts) = self.counts.lock() {
            match delivery {
                Delivery::Fresh(_) => {}
                Delivery::Duplicate => counts.duplicates += 1,
                Delivery::BadSignature => counts.refused += 1,
            }
        }
        delivery
    }

    fn read(&self, request: &Request) -> Delivery {
        match self.signature(request) {
            Ok(signature) => {
                let seen = self
                    .accepted
                    .lock()
                    .map(|accepted| accepted.contains(&signature))
                    .unwrap_or(false);
                if seen {
                    Delivery::Duplicate
                } else {
                    Delivery::Fresh(signature)
                }
            }
            Err(()) => Delivery::BadSignature,
        }
    }

    fn signature(&self, request: &Request) -> Result<String, ()> {
        let given = request
            .headers
            .get(CAL_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v.trim()).ok())
            .ok_or(())?;
        // Constant time, as a subscriber comparing secrets must.
        if !contract::hmac_sha256_matches(&self.secret, &[&request.body], &given) {
            return Err(());
        }
        Ok(hex::encode(given))
    }

    /// The delivery was accepted: process it, and never again.
    fn process(&self, signature: String) {
        if let Ok(mut accepted) = self.accepted.lock() {
            if accepted.len() < MAX_REMEMBERED_DELIVERIES {
                accepted.insert(signature);
            }
        }
        if let Ok(mut counts) = self.counts.lock() {
            counts.processed += 1;
        }
    }
}

impl Respond for Sequence {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        // A refused delivery is answered before any behaviour is used: it changes nothing.
        let delivery = self.check.as_ref().map(|check| check.verify(request));
        if delivery == Some(Delivery::BadSignature) {
            return ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({ "error": "invalid signature" }));
        }
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let behaviour = &self.behaviours[n.min(self.behaviours.len() - 1)];
        let latency = match behaviour.fault {
            Some(Fault::Timeout) => behaviour.latency.max(NEVER),
            _ => behaviour.latency,
        };
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // SendGrid validates recipients before anything else.
        if self.kind == MockKind::EmailProvider
            && self.route == "mail_send"
            && sendgrid::invalid_recipient(&request.body)
        {
            return ResponseTemplate::new(400)
                .insert_header(VIRTUAL_LATENCY_US, latency_us.to_string().as_str())
                .set_body_json(sendgrid::error_body("invalid_email").unwrap_or_default());
        }
        let accepted = (200..300).contains(&behaviour.status)
            && !matches!(
                behaviour.fault,
                Some(Fault::Timeout | Fault::ConnectionRefused)
            );
        match (&self.check, delivery, accepted) {
            (Some(check), Some(Delivery::Fresh(signature)), true) => check.process(signature),
            (_, Some(Delivery::Duplicate), true) => {
                // Transport as scripted, but nothing is processed twice.
                return ResponseTemplate::new(behaviour.status)
                    .insert_header(VIRTUAL_LATENCY_US, latency_us.to_string().as_str())
                    .set_body_json(serde_json::json!({ "duplicate": true }));
            }
            _ => {}
        }
        let mut template = ResponseTemplate::new(behaviour.status)
            .insert_header(VIRTUAL_LATENCY_US, latency_us.to_string().as_str());
        match behaviour.fault {
            Some(Fault::ConnectionRefused) => {
                return template.insert_header(VIRTUAL_FAULT, "connection-refused")
            }
            Some(Fault::MalformedBody) => {
                return template.set_body_raw(b"{\"id\": \"".to_vec(), "application/json")
            }
            Some(Fault::Timeout) | None => {}
        }
        if let Some(body) = &behaviour.body {
            return template.set_body_raw(body.clone().into_bytes(), "application/json");
        }
        if let Some(reason) = &behaviour.error {
            return match self.kind.error_body(reason, behaviour.status) {
                Some(body) => template.set_body_json(body),
                None => template,
            };
        }
        if behaviour.status >= 300 {
            return template;
        }
        let sent_at = request
            .headers
            .get(VIRTUAL_NOW_US)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(VirtualTime::from_micros)
            .unwrap_or_default();
        match (self.kind, self.route) {
            (MockKind::GoogleCalendar, _) => template.set_body_json(google_event(request, n)),
            (MockKind::Stripe, _) => template.set_body_json(stripe::payment_intent(
                &String::from_utf8_lossy(&request.body),
                n,
                sent_at,
            )),
            (MockKind::EmailProvider, "mail_batch") => {
                template = ResponseTemplate::new(201)
                    .insert_header(VIRTUAL_LATENCY_US, latency_us.to_string().as_str());
                template.set_body_json(serde_json::json!({
                    "batch_id": format!(
                        "{:016x}{:016x}",
                        crate::trace::splitmix64(n as u64 ^ 0x6261_7463),
                        crate::trace::splitmix64(n as u64 ^ 0x6964_7331),
                    ),
                }))
            }
            (MockKind::EmailProvider, _) => {
                // SendGrid accepts with 202 and an empty body.
                ResponseTemplate::new(202)
                    .insert_header(VIRTUAL_LATENCY_US, latency_us.to_string().as_str())
                    .insert_header(
                        "x-message-id",
                        format!("{:016x}", crate::trace::splitmix64(n as u64 ^ 0x6d61_696c))
                            .as_str(),
                    )
            }
            (MockKind::WebhookSubscriber, _) => template,
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
