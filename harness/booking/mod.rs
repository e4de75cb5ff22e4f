//! The simulated booking service (the system under test): a real axum server with Cal.com's
//! booking flow — booking creation, the Google Calendar event, `BOOKING_CREATED` webhooks run
//! by cron — instrumented with `tracing`. It does not know it is being tested: it reads the
//! virtual clock and the trace context from headers, as it would read real ones.

mod outbound;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use hmac::{Hmac, Mac};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::oneshot;
use tracing::{error, info, info_span, Instrument, Span};

use crate::clock::{self, FlowClock, Spoken, VirtualTime, LATENCY_HEADER, NOW_HEADER};
use crate::trace::{self, Relation, TraceContext, TRACEPARENT, TRACESTATE};
pub use outbound::CallError;
use outbound::Outbound;
pub use store::StoreError;
use store::{DueWebhookJob, NewBooking, NewWebhookJob, Store};

/// Every operation (span name) the service emits.
pub const OPERATIONS: &[&str] = &[
    "booking_creation",
    "calendar_event_creation",
    "webhook_scheduling",
    "webhook_execution",
];

/// Response header naming the booking's trace, for support staff and for the harness.
pub const TRACE_ID_HEADER: &str = "x-trace-id";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header carrying the webhook payload's HMAC-SHA256, hex-encoded, as Cal.com sends it.
pub const SIGNATURE_HEADER: &str = "x-cal-signature-256";

/// Where the service's peers live and how it behaves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub google_calendar_url: String,
    pub webhook_subscribers: Vec<String>,
    pub webhook_secret: String,
    pub database: PathBuf,
    /// Seeds request ids and booking uids.
    pub seed: u64,
    pub calendar_timeout: Duration,
    pub webhook_timeout: Duration,
}

impl ServiceConfig {
    pub fn new(database: PathBuf, seed: u64) -> Self {
        ServiceConfig {
            google_calendar_url: String::new(),
            webhook_subscribers: Vec::new(),
            webhook_secret: "whsec_trace_harness".to_owned(),
            database,
            seed,
            calendar_timeout: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
}

/// A running booking service on `127.0.0.1:<ephemeral port>`.
pub struct BookingService {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    app: Arc<App>,
    router: Router,
}

impl BookingService {
    pub async fn start(config: ServiceConfig) -> Result<Self, ServiceError> {
        let app = Arc::new(App {
            store: Store::open(&config.database)?,
            ids: ServiceIds::new(config.seed),
            outbound: Outbound::new(),
            config,
        });
        let router = Router::new()
            .route("/api/bookings", post(create_booking))
            .route("/api/cron/webhooks", post(run_webhook_cron))
            .layer(middleware::from_fn_with_state(app.clone(), request_context))
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let served = router.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, served)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(BookingService {
            addr,
            shutdown: Some(shutdown),
            server,
            app,
            router,
        })
    }

    /// The service's routes, to drive it in-process (load runs, benchmarks): no socket between
    /// the caller and the service; its own calls to its peers still go over HTTP.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `(status, count)` of the webhook jobs in the store.
    pub fn webhook_job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.app.store.webhook_job_counts()
    }

    pub fn booking_count(&self) -> Result<i64, StoreError> {
        self.app.store.booking_count()
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}

struct App {
    config: ServiceConfig,
    store: Store,
    ids: ServiceIds,
    outbound: Outbound,
}

/// Request ids and booking uids, each from its own seeded stream so that neither depends on
/// the other (or on whether tracing is on).
struct ServiceIds {
    requests: Mutex<ChaCha8Rng>,
    uids: Mutex<ChaCha8Rng>,
}

impl ServiceIds {
    fn new(seed: u64) -> Self {
        ServiceIds {
            requests: Mutex::new(ChaCha8Rng::seed_from_u64(trace::splitmix64(
                seed ^ 0x5245_5155,
            ))),
            uids: Mutex::new(ChaCha8Rng::seed_from_u64(trace::splitmix64(
                seed ^ 0x5549_4453,
            ))),
        }
    }

    fn draw(rng: &Mutex<ChaCha8Rng>, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    fn request_id(&self) -> String {
        Self::draw(&self.requests, 10)
    }

    fn booking_uid(&self) -> String {
        Self::draw(&self.uids, 16)
    }
}

/// The trace context a request arrived with, if any.
#[derive(Clone)]
struct Inbound(Option<TraceContext>);

/// Every request: a request id (logged as before tracing existed), a flow clock starting at the
/// request's virtual arrival time, and the inbound trace context for the handler to continue.
async fn request_context(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let request_id: Arc<str> = app.ids.request_id().into();
    let headers = req.headers();
    let start = header(headers, NOW_HEADER)
        .and_then(|v| v.parse().ok())
        .map(VirtualTime::from_micros)
        .unwrap_or_default();
    let inbound =
        TraceContext::from_headers(header(headers, TRACEPARENT), header(headers, TRACESTATE));
    req.extensions_mut().insert(Inbound(inbound));
    let clock = FlowClock::starting_at(start);
    let mut response = clock
        .clone()
        .scope(trace::with_request_id(request_id.clone(), next.run(req)))
        .await;
    let headers = response.headers_mut();
    set_header(headers, REQUEST_ID_HEADER, &request_id);
    set_header(
        headers,
        LATENCY_HEADER,
        &clock.now().since(start).as_micros().to_string(),
    );
    response
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookingRequest {
    pub event_type_id: u64,
    #[serde(default)]
    pub title: Option<String>,
    pub start: String,
    pub end: String,
    pub responses: AttendeeResponses,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttendeeResponses {
    pub name: String,
    pub email: String,
}

async fn create_booking(
    State(app): State<Arc<App>>,
    Extension(inbound): Extension<Inbound>,
    Json(request): Json<BookingRequest>,
) -> Response {
    let span = info_span!(
        "booking_creation",
        event_type_id = request.event_type_id,
        booking_uid = tracing::field::Empty,
    );
    if let Some(parent) = &inbound.0 {
        trace::continue_from(&span, parent, Relation::ChildOf);
    }
    let trace_id = trace::context_of(&span).map(|c| c.trace_id.to_string());
    match app.create_booking(request).instrument(span).await {
        Ok(booking) => {
            let mut response = (StatusCode::CREATED, Json(booking)).into_response();
            if let Some(trace_id) = trace_id {
                set_header(response.headers_mut(), TRACE_ID_HEADER, &trace_id);
            }
            response
        }
        Err(e) => internal_error(e),
    }
}

fn internal_error(e: StoreError) -> Response {
    error!("{e}");
    let body = serde_json::json!({ "message": "Internal server error" });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

async fn run_webhook_cron(State(app): State<Arc<App>>) -> Response {
    let jobs = match app.store.due_webhook_jobs(clock::now()) {
        Ok(jobs) => jobs,
        Err(e) => return internal_error(e),
    };
    let mut delivered = 0;
    for job in &jobs {
        match app.execute_webhook(job).await {
            Ok(true) => delivered += 1,
            Ok(false) => {}
            Err(e) => return internal_error(e),
        }
    }
    let body = serde_json::json!({ "executed": jobs.len(), "delivered": delivered });
    Json(body).into_response()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Booking {
    id: i64,
    uid: String,
    status: &'static str,
    event_type_id: u64,
    title: String,
    start_time: String,
    end_time: String,
    attendees: Vec<AttendeeResponses>,
    calendar_event_id: Option<String>,
}

impl App {
    async fn create_booking(&self, request: BookingRequest) -> Result<Booking, StoreError> {
        let uid = self.ids.booking_uid();
        Span::current().record("booking_uid", uid.as_str());
        info!(
            "Booking creation started for eventTypeId: {}",
            request.event_type_id
        );
        let title = request
            .title
            .clone()
            .unwrap_or_else(|| format!("Meeting with {}", request.responses.name));
        let calendar_event = self
            .create_calendar_event(&uid, &title, &request)
            .instrument(info_span!("calendar_event_creation", calendar = "google"))
            .await;
        let mut booking = Booking {
            id: 0,
            uid,
            status: "ACCEPTED",
            event_type_id: request.event_type_id,
            title,
            start_time: request.start,
            end_time: request.end,
            attendees: vec![request.responses],
            calendar_event_id: calendar_event,
        };
        booking.id = self
            .schedule_webhooks(&booking)
            .instrument(info_span!(
                "webhook_scheduling",
                trigger_event = "BOOKING_CREATED",
                subscribers = self.config.webhook_subscribers.len(),
            ))
            .await?;
        Ok(booking)
    }

    /// `EventManager.create`: inserts the Google Calendar event. A failure is logged on the
    /// span and the booking goes on without the event.
    async fn create_calendar_event(
        &self,
        uid: &str,
        title: &str,
        request: &BookingRequest,
    ) -> Option<String> {
        info!("EventManager.create started");
        let url = format!(
            "{}/calendar/v3/calendars/primary/events",
            self.config.google_calendar_url
        );
        let body = serde_json::json!({
            "summary": title,
            "description": format!("Booking {uid}"),
            "start": { "dateTime": request.start },
            "end": { "dateTime": request.end },
            "attendees": [{ "email": request.responses.email, "displayName": request.responses.name }],
        });
        let reply = self
            .outbound
            .post(
                &url,
                "application/json",
                body.to_string(),
                &[],
                self.config.calendar_timeout,
            )
            .await;
        match reply {
            Ok(reply) if (200..300).contains(&reply.status) => {
                let event: serde_json::Value =
                    serde_json::from_str(&reply.body).unwrap_or_default();
                event
                    .get("id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned)
            }
            Ok(reply) => {
                error!(
                    "Google Calendar API error: {}",
                    google_error_message(reply.status, &reply.body)
                );
                None
            }
            Err(e) => {
                error!("Google Calendar API error: {e}");
                None
            }
        }
    }

    /// Stores the booking and one `BOOKING_CREATED` job per subscriber, each job carrying this
    /// span's context so that its execution continues the booking's trace.
    async fn schedule_webhooks(&self, booking: &Booking) -> Result<i64, StoreError> {
        let subscribers = &self.config.webhook_subscribers;
        match subscribers.len() {
            0 => {}
            1 => info!("Scheduling BOOKING_CREATED webhook"),
            n => info!("Scheduling BOOKING_CREATED webhook for {n} subscribers"),
        }
        let now = clock::now();
        let context = trace::current_context();
        let attendee = booking.attendees.first();
        let record = NewBooking {
            uid: booking.uid.clone(),
            event_type_id: booking.event_type_id,
            title: booking.title.clone(),
            start_time: booking.start_time.clone(),
            attendee_name: attendee.map(|a| a.name.clone()).unwrap_or_default(),
            attendee_email: attendee.map(|a| a.email.clone()).unwrap_or_default(),
            calendar_event: booking.calendar_event_id.clone(),
            request_id: trace::current_request_id()
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            created_at: now,
        };
        self.store.insert_booking(&record, |booking_id| {
            let payload = serde_json::json!({
                "triggerEvent": "BOOKING_CREATED",
                "payload": {
                    "bookingId": booking_id,
                    "uid": booking.uid,
                    "eventTypeId": booking.event_type_id,
                    "title": booking.title,
                    "startTime": booking.start_time,
                    "endTime": booking.end_time,
                    "attendees": booking.attendees,
                    "status": booking.status,
                }
            })
            .to_string();
            subscribers
                .iter()
                .map(|url| NewWebhookJob {
                    trigger_event: "BOOKING_CREATED",
                    subscriber_url: url.clone(),
                    payload: payload.clone(),
                    scheduled_at: now,
                    context: context.clone(),
                })
                .collect()
        })
    }

    /// Delivers one scheduled webhook in its own span, continuing the trace of the span that
    /// scheduled it. Returns whether the subscriber accepted it.
    async fn execute_webhook(&self, job: &DueWebhookJob) -> Result<bool, StoreError> {
        let span = info_span!(
            parent: None,
            "webhook_execution",
            job_id = job.id,
            trigger_event = job.trigger_event.as_str(),
        );
        if let Some(cause) = &job.context {
            trace::continue_from(&span, cause, Relation::FollowsFrom);
        }
        async {
            let delay = clock::now().since(job.created_at);
            let signature = sign(&self.config.webhook_secret, job.payload.as_bytes());
            let reply = self
                .outbound
                .post(
                    &job.subscriber_url,
                    "application/json",
                    job.payload.clone(),
                    &[(SIGNATURE_HEADER, signature)],
                    self.config.webhook_timeout,
                )
                .await;
            let outcome = match reply {
                Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
                Ok(reply) => Err(format!("HTTP {}", reply.status)),
                Err(e) => Err(e.to_string()),
            };
            match &outcome {
                Ok(()) => info!("Webhook executed {} later", Spoken(delay)),
                Err(reason) => error!("Webhook execution failed: {reason}"),
            }
            self.store.finish_webhook_job(
                job.id,
                outcome.as_ref().map(|_| ()).map_err(String::as_str),
                1,
                clock::now(),
            )?;
            Ok(outcome.is_ok())
        }
        .instrument(span)
        .await
    }
}

/// The human message of a Google API error body (`error.message`), or the status.
fn google_error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Hex HMAC-SHA256 of `payload`, the value of [`SIGNATURE_HEADER`].
pub fn sign(secret: &str, payload: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}
