//! The simulated booking service (the system under test): a real axum server with Cal.com's
//! booking flow — booking creation, the Google Calendar event, Stripe payment and its later
//! webhook, seated bookings, mandatory reminders, and `BOOKING_CREATED` webhooks run by cron with
//! retries — instrumented with `tracing` and backed by a durable SQLite store. It does not know
//! it is being tested: it reads the virtual clock and the trace context from headers, as it
//! would read real ones.

mod bugs;
pub mod conformance;
pub mod guard;
mod jobs;
mod outbound;
mod payment;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
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
use tracing::{error, info, info_span, warn, Instrument};

use crate::clock::{self, FlowClock, VirtualTime, LATENCY_HEADER, NOW_HEADER};
use crate::trace::{self, Relation, TraceContext};
pub use bugs::{PlantedBug, PlantedBugs};
pub use outbound::CallError;
use outbound::Outbound;
pub use payment::{StripeSignatureError, STRIPE_SIGNATURE_HEADER, STRIPE_TOLERANCE};
use store::{NewBooking, NewPayment, NewReminder, NewWebhookJob, Store};
pub use store::{StatusCounts, StoreError};

/// Every operation (span name) the service emits.
pub const OPERATIONS: &[&str] = &[
    "booking_creation",
    "calendar_event_creation",
    "payment_processing",
    "handle_seats",
    "webhook_scheduling",
    "schedule_mandatory_reminder",
    "webhook_execution",
    "payment_success_processing",
    "booking_confirmation",
];

/// How each operation is named in a performance log line (`EventManager.create: 200ms`).
pub fn operation_label(op: &str) -> &str {
    match op {
        "booking_creation" => "Booking creation",
        "calendar_event_creation" => "EventManager.create",
        "payment_processing" => "Payment processing",
        "handle_seats" => "Seat handling",
        "webhook_scheduling" => "Webhook scheduling",
        "schedule_mandatory_reminder" => "Reminder scheduling",
        "webhook_execution" => "Webhook execution",
        "payment_success_processing" => "Payment success processing",
        "booking_confirmation" => "Booking confirmation",
        other => other,
    }
}

/// Response header naming the booking's trace, for support staff and for the harness.
pub const TRACE_ID_HEADER: &str = "x-trace-id";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
// Header names built at compile time: naming a header by `&str` parses it per call. Shared by
// the service, its outbound client and the load runs that read its answers.
pub(crate) static TRACE_ID_NAME: HeaderName = HeaderName::from_static(TRACE_ID_HEADER);
pub(crate) static REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
pub(crate) static TRACEPARENT_NAME: HeaderName = HeaderName::from_static(trace::TRACEPARENT);
static LATENCY_NAME: HeaderName = HeaderName::from_static(LATENCY_HEADER);
/// Header carrying the webhook payload's HMAC-SHA256, hex-encoded, as Cal.com sends it.
pub const SIGNATURE_HEADER: &str = "x-cal-signature-256";
/// The secret the service signs webhook deliveries with unless configured otherwise; the
/// subscriber mocks verify with it unless a scenario gives them another (`secret = "…"`).
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_trace_harness";
/// Route Stripe delivers events to, as Cal.com's Stripe app mounts it.
pub const STRIPE_WEBHOOK_PATH: &str = "/api/integrations/stripepayment/webhook";
/// Request headers beyond this many bytes (names and values) are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Seat holders one request may book.
pub const MAX_ATTENDEES: usize = 100;

/// An event type the service knows; ids it does not know are plain, free, single-attendee.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventType {
    pub id: u64,
    /// Price in the currency's smallest unit: the booking requires payment.
    pub price: Option<u64>,
    pub currency: String,
    pub seats: Option<u32>,
    pub reminders: bool,
}

/// Where the service's peers live and how it behaves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub google_calendar_url: String,
    pub stripe_url: String,
    pub email_url: String,
    pub webhook_subscribers: Vec<String>,
    pub webhook_secret: String,
    /// The signing secret of the Stripe webhook endpoint (`whsec_…`).
    pub stripe_webhook_secret: String,
    pub event_types: Vec<EventType>,
    pub database: PathBuf,
    /// Seeds request ids and booking uids.
    pub seed: u64,
    /// Which process this is on the same database (0 first, +1 per restart): keeps ids drawn
    /// after a restart from repeating those drawn before it.
    pub generation: u64,
    /// Declared cost of one store transaction on the virtual clock.
    pub store_latency: Duration,
    pub calendar_timeout: Duration,
    pub stripe_timeout: Duration,
    pub email_timeout: Duration,
    pub webhook_timeout: Duration,
    /// Propagation bugs to reproduce; empty for a correct service.
    pub bugs: PlantedBugs,
}

impl ServiceConfig {
    pub fn new(database: PathBuf, seed: u64) -> Self {
        ServiceConfig {
            google_calendar_url: String::new(),
            stripe_url: String::new(),
            email_url: String::new(),
            webhook_subscribers: Vec::new(),
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            stripe_webhook_secret: "whsec_stripe_trace_harness".to_owned(),
            event_types: Vec::new(),
            database,
            seed,
            generation: 0,
            store_latency: Duration::ZERO,
            calendar_timeout: Duration::from_secs(10),
            stripe_timeout: Duration::from_secs(80),
            email_timeout: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            bugs: PlantedBugs::default(),
        }
    }

    fn event_type(&self, id: u64) -> EventType {
        self.event_types
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .unwrap_or(EventType {
                id,
                ..EventType::default()
            })
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
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`start`](Self::start) on a given address (`serve` uses a fixed port).
    pub async fn start_on(config: ServiceConfig, addr: SocketAddr) -> Result<Self, ServiceError> {
        let (app, router) = build(config)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
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
    pub fn webhook_job_counts(&self) -> Result<StatusCounts, StoreError> {
        self.app.store.webhook_job_counts()
    }

    /// `(status, count)` of the reminders in the store.
    pub fn reminder_counts(&self) -> Result<StatusCounts, StoreError> {
        self.app.store.reminder_counts()
    }

    /// Failed jobs with their reasons: `(table, id, reason)`.
    pub fn failed_jobs(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.app.store.failed_jobs()
    }

    /// Rows per table.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        self.app.store.row_counts()
    }

    pub fn booking_count(&self) -> Result<i64, StoreError> {
        self.app.store.booking_count()
    }

    /// Bookings whose payment has been confirmed.
    pub fn paid_booking_count(&self) -> Result<i64, StoreError> {
        self.app.store.paid_booking_count()
    }

    /// Stops the server and drops every piece of in-memory state; the database stays.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}

/// The service's state and routes, without a listener.
fn build(config: ServiceConfig) -> Result<(Arc<App>, Router), ServiceError> {
    let app = Arc::new(App {
        store: Store::open(&config.database, config.store_latency)?,
        ids: ServiceIds::new(config.seed, config.generation),
        outbound: Outbound::new(!config.bugs.has(PlantedBug::DropTraceparent)),
        config,
    });
    let router = Router::new()
        .route("/api/bookings", post(create_booking))
        .route("/api/cron/webhooks", post(jobs::run_webhook_cron))
        .route(
            "/api/cron/workflows/scheduleEmailReminders",
            post(jobs::run_reminder_cron),
        )
        .route(STRIPE_WEBHOOK_PATH, post(payment::stripe_webhook))
        .route("/test", post(conformance::run_test))
        .layer(DefaultBodyLimit::max(guard::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app.clone());
    Ok((app, router))
}

/// The service as a plain `Router`, for driving it in-process (`tower::ServiceExt::oneshot`)
/// where a test or benchmark wants the handlers to run in its own task.
pub fn router(config: ServiceConfig) -> Result<Router, ServiceError> {
    build(config).map(|(_, router)| router)
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
    fn new(seed: u64, generation: u64) -> Self {
        // The first process draws what it always drew; each restart draws from a fresh stream.
        let restarted = match generation {
            0 => 0,
            n => trace::splitmix64(n ^ 0x4745_4e45),
        };
        let stream = |salt: u64| {
            Mutex::new(ChaCha8Rng::seed_from_u64(trace::splitmix64(
                seed ^ salt ^ restarted,
            )))
        };
        ServiceIds {
            requests: stream(0x5245_5155),
            uids: stream(0x5549_4453),
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
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        let mut response = client_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "Request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        );
        set_header(response.headers_mut(), &REQUEST_ID_NAME, &request_id);
        return response;
    }
    let start = header(headers, NOW_HEADER)
        .and_then(|v| v.parse().ok())
        .map(VirtualTime::from_micros)
        .unwrap_or_default();
    let inbound = guard::inbound_context(headers);
    req.extensions_mut().insert(Inbound(inbound));
    let clock = FlowClock::starting_at(start);
    let handler = guard::answer_panics(next.run(req));
    let mut response = clock
        .clone()
        .scope(trace::with_request_id(request_id.clone(), handler))
        .await;
    let headers = response.headers_mut();
    set_header(headers, &REQUEST_ID_NAME, &request_id);
    set_header(
        headers,
        &LATENCY_NAME,
        &clock.now().since(start).as_micros().to_string(),
    );
    response
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// Not inlined: every response header goes through this one copy, so a traced response's
/// `X-Trace-Id` runs code an untraced one has already brought into the instruction cache
/// (`benches/NOTES.md`, item 11: the flow's cost follows the code it touches).
#[inline(never)]
fn set_header(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

/// A 4xx answer with Cal.com's `{"message": …}` error body.
fn client_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}

/// A body axum could not read as the route's JSON: its own explanation, in our error shape.
fn rejected(rejection: JsonRejection) -> Response {
    client_error(rejection.status(), rejection.body_text())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookingRequest {
    pub event_type_id: u64,
    #[serde(default)]
    pub title: Option<String>,
    pub start: String,
    pub end: String,
    /// The booker: the first seat holder.
    pub responses: AttendeeResponses,
    /// Further seat holders booking together (seated event types only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<AttendeeResponses>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttendeeResponses {
    pub name: String,
    pub email: String,
}

impl BookingRequest {
    /// What the service checks before it starts anything. It checks emails only loosely, as
    /// the booking form does; the email provider is stricter.
    fn validate(&self) -> Result<(), String> {
        if self.start.trim().is_empty() || self.end.trim().is_empty() {
            return Err("`start` and `end` must not be empty".into());
        }
        if self.guests.len() + 1 > MAX_ATTENDEES {
            return Err(format!("at most {MAX_ATTENDEES} attendees per booking"));
        }
        for (i, attendee) in self.attendees().enumerate() {
            if attendee.name.trim().is_empty() {
                return Err(format!("attendee {} has no name", i + 1));
            }
            if !attendee.email.contains('@') {
                return Err(format!(
                    "attendee {} has no valid email: {:?}",
                    i + 1,
                    attendee.email
                ));
            }
        }
        Ok(())
    }

    fn attendees(&self) -> impl Iterator<Item = &AttendeeResponses> {
        std::iter::once(&self.responses).chain(&self.guests)
    }
}

async fn create_booking(
    State(app): State<Arc<App>>,
    Extension(inbound): Extension<Inbound>,
    request: Result<Json<BookingRequest>, JsonRejection>,
) -> Response {
    let request = match request {
        Ok(Json(request)) => request,
        Err(rejection) => return rejected(rejection),
    };
    let event_type = app.config.event_type(request.event_type_id);
    let refusal = request.validate().err().or_else(|| {
        (event_type.seats.is_none() && !request.guests.is_empty()).then(|| {
            format!(
                "event type {} is not seated: one attendee per booking",
                event_type.id
            )
        })
    });
    // A booking that will be made gets its uid first, so its span opens with every field
    // (recording one later costs a second visit). A refused booking is traced too, without a
    // uid: a caller holding its X-Trace-Id can find out why.
    let admitted = match refusal {
        None => Ok(app.ids.booking_uid()),
        Some(message) => Err(message),
    };
    let span = info_span!(
        "booking_creation",
        event_type_id = request.event_type_id,
        booking_uid = admitted.as_deref().ok(),
    );
    if let Some(parent) = &inbound.0 {
        trace::continue_from(&span, parent, Relation::ChildOf);
    }
    let trace_id = trace::context_of(&span).map(|c| c.trace_id);
    let mut response = match admitted {
        Err(message) => {
            span.in_scope(|| warn!("Booking refused: {message}"));
            client_error(StatusCode::BAD_REQUEST, message)
        }
        Ok(uid) => match app
            .create_booking(uid, request, &event_type)
            .instrument(span)
            .await
        {
            Ok(booking) => (StatusCode::CREATED, Json(booking)).into_response(),
            Err(e) => e.into_response(),
        },
    };
    if let Some(trace_id) = trace_id {
        if let Ok(hex) = std::str::from_utf8(&trace_id.to_hex()) {
            set_header(response.headers_mut(), &TRACE_ID_NAME, hex);
        }
    }
    response
}

/// Why a booking was not made. Each leaves no rows behind: the booking's single transaction
/// comes after every check and every call that can fail.
#[derive(Debug, thiserror::Error)]
enum BookingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Not enough seats: {available} available, {requested} requested")]
    NoSeats { available: u32, requested: usize },
    #[error("Payment could not be initiated: {0}")]
    Payment(String),
}

impl IntoResponse for BookingError {
    fn into_response(self) -> Response {
        match self {
            BookingError::Store(e) => internal_error(e),
            e @ BookingError::NoSeats { .. } => client_error(StatusCode::CONFLICT, e.to_string()),
            e @ BookingError::Payment(_) => client_error(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

fn internal_error(e: StoreError) -> Response {
    error!("{e}");
    let body = serde_json::json!({ "message": "Internal server error" });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
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
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentSummary {
    payment_intent: String,
    client_secret: String,
    amount: u64,
    currency: String,
}

impl App {
    async fn create_booking(
        &self,
        uid: String,
        request: BookingRequest,
        event_type: &EventType,
    ) -> Result<Booking, BookingError> {
        info!(
            "Booking creation started for eventTypeId: {}{}",
            request.event_type_id,
            if event_type.price.is_some() {
                ", payment required"
            } else {
                ""
            }
        );
        let attendees: Vec<AttendeeResponses> = request.attendees().cloned().collect();
        if let Some(seats) = event_type.seats {
            self.handle_seats(seats, attendees.len())
                .instrument(info_span!(
                    "handle_seats",
                    seats,
                    requested = attendees.len()
                ))
                .await?;
        }
        let title = request
            .title
            .clone()
            .unwrap_or_else(|| format!("Meeting with {}", request.responses.name));
        let calendar_event = if self.config.google_calendar_url.is_empty() {
            None
        } else {
            self.create_calendar_event(&uid, &title, &request)
                .instrument(info_span!("calendar_event_creation", calendar = "google"))
                .await
        };
        let payment = match event_type.price {
            Some(amount) => Some(
                self.create_payment(&uid, amount, &event_type.currency)
                    .instrument(info_span!("payment_processing", provider = "stripe"))
                    .await?,
            ),
            None => None,
        };
        let mut booking = Booking {
            id: 0,
            uid,
            status: if payment.is_some() {
                "PENDING"
            } else {
                "ACCEPTED"
            },
            event_type_id: request.event_type_id,
            title,
            start_time: request.start,
            end_time: request.end,
            attendees,
            calendar_event_id: calendar_event,
            payment: payment.as_ref().map(|(summary, _)| summary.clone()),
        };
        booking.id = self
            .schedule_webhooks(&booking, payment.map(|(_, record)| record))
            .instrument(info_span!(
                "webhook_scheduling",
                trigger_event = "BOOKING_CREATED",
                subscribers = self.config.webhook_subscribers.len(),
            ))
            .await?;
        if event_type.reminders {
            self.schedule_reminders(&booking)
                .instrument(info_span!(
                    "schedule_mandatory_reminder",
                    attendees = booking.attendees.len()
                ))
                .await?;
        }
        Ok(booking)
    }

    /// `handleSeats`: a seated event type takes the booking only if every seat holder fits.
    async fn handle_seats(&self, seats: u32, requested: usize) -> Result<(), BookingError> {
        info!("Processing seated booking: {requested} of {seats} seats");
        if requested > seats as usize {
            let e = BookingError::NoSeats {
                available: seats,
                requested,
            };
            error!("{e}");
            return Err(e);
        }
        Ok(())
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
        let attendees: Vec<serde_json::Value> = request
            .attendees()
            .map(|a| serde_json::json!({ "email": a.email, "displayName": a.name }))
            .collect();
        let body = serde_json::json!({
            "summary": title,
            "description": format!("Booking {uid}"),
            "start": { "dateTime": request.start },
            "end": { "dateTime": request.end },
            "attendees": attendees,
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

    /// Creates the booking's PaymentIntent at Stripe, carrying this span's context in its
    /// metadata: Stripe hands the metadata back with the event it sends when the payment
    /// succeeds, however much later that is.
    async fn create_payment(
        &self,
        uid: &str,
        amount: u64,
        currency: &str,
    ) -> Result<(PaymentSummary, NewPayment), BookingError> {
        let context = trace::current_context();
        // Stripe's API takes form-encoded bodies, nested keys in brackets.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("amount", &amount.to_string())
                .append_pair("currency", currency)
                .append_pair("payment_method_types[]", "card")
                .append_pair("metadata[bookingUid]", uid);
            if let Some(context) = &context {
                form.append_pair("metadata[traceparent]", context.traceparent().as_str());
            }
            form.finish()
        };
        let url = format!("{}/v1/payment_intents", self.config.stripe_url);
        let reply = self
            .outbound
            .post(
                &url,
                "application/x-www-form-urlencoded",
                form,
                &[("idempotency-key", format!("booking-{uid}-payment"))],
                self.config.stripe_timeout,
            )
            .await;
        let created_at = clock::now();
        let failure = |reason: String| {
            error!("Stripe API error: {reason}");
            BookingError::Payment(reason)
        };
        let reply = reply.map_err(|e| failure(e.to_string()))?;
        if !(200..300).contains(&reply.status) {
            return Err(failure(stripe_error_message(reply.status, &reply.body)));
        }
        let intent: serde_json::Value = serde_json::from_str(&reply.body)
            .map_err(|_| failure("malformed PaymentIntent in Stripe's response".into()))?;
        let (Some(id), Some(secret)) = (intent["id"].as_str(), intent["client_secret"].as_str())
        else {
            return Err(failure("PaymentIntent without id or client_secret".into()));
        };
        info!(payment_intent = id, "Payment initiated with Stripe");
        Ok((
            PaymentSummary {
                payment_intent: id.to_owned(),
                client_secret: secret.to_owned(),
                amount,
                currency: currency.to_owned(),
            },
            NewPayment {
                external_id: id.to_owned(),
                amount,
                currency: currency.to_owned(),
                created_at,
                context,
            },
        ))
    }

    /// Stores the booking (attendees, payment) and one `BOOKING_CREATED` job per subscriber,
    /// each job carrying this span's context so that its execution continues the booking's
    /// trace.
    async fn schedule_webhooks(
        &self,
        booking: &Booking,
        payment: Option<NewPayment>,
    ) -> Result<i64, StoreError> {
        let subscribers = &self.config.webhook_subscribers;
        match subscribers.len() {
            0 => {}
            1 => info!("Scheduling BOOKING_CREATED webhook"),
            n => info!("Scheduling BOOKING_CREATED webhook for {n} subscribers"),
        }
        let now = clock::now();
        let context = self.config.bugs.job_context();
        let record = NewBooking {
            uid: booking.uid.clone(),
            event_type_id: booking.event_type_id,
            title: booking.title.clone(),
            start_time: booking.start_time.clone(),
            attendees: booking
                .attendees
                .iter()
                .map(|a| (a.name.clone(), a.email.clone()))
                .collect(),
            status: booking.status,
            calendar_event: booking.calendar_event_id.clone(),
            payment,
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

    /// `scheduleMandatoryReminder`: one reminder per attendee, sent later by the reminders cron
    /// in the booking's trace. Scheduled sends share a SendGrid batch, so they can be cancelled
    /// together.
    async fn schedule_reminders(&self, booking: &Booking) -> Result<(), StoreError> {
        let n = booking.attendees.len();
        info!(
            "Scheduling reminders for {n} attendee{}",
            if n == 1 { "" } else { "s" }
        );
        let batch_id = if self.config.email_url.is_empty() {
            None
        } else {
            jobs::create_batch(self).await
        };
        let context = self.config.bugs.job_context();
        let now = clock::now();
        let reminders: Vec<NewReminder> = booking
            .attendees
            .iter()
            .enumerate()
            .map(|(i, a)| NewReminder {
                seat: i as u32 + 1,
                name: a.name.clone(),
                email: a.email.clone(),
                batch_id: batch_id.clone(),
                scheduled_at: now,
                context: context.clone(),
            })
            .collect();
        self.store.insert_reminders(booking.id, &reminders, now)
    }
}

/// The human message of a Google API error body (`error.message`), or the status.
fn google_error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// `error.message` (with `error.code`) of a Stripe error body, or the status.
fn stripe_error_message(status: u16, body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match error.and_then(|e| e["message"].as_str()) {
        Some(message) => match error.and_then(|e| e["code"].as_str()) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_owned(),
        },
        None => format!("HTTP {status}"),
    }
}

/// Hex HMAC-SHA256 of `payload`, the value of [`SIGNATURE_HEADER`].
pub fn sign(secret: &str, payload: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}
