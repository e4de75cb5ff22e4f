//! One replay, wired: start the mocks and the booking service, drive the timeline on virtual
//! time, and collect the `ReplayOutcome`. Formats nothing.
//!
//! Each replay runs on its own thread with a current-thread tokio runtime and its own
//! `tracing` dispatcher, so the service's spawned tasks all see the replay's capture layer and
//! replays never share state.

pub mod load;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::Name;
use fake::Fake;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing_subscriber::filter::Targets;

use crate::booking::guard::panic_message;
use crate::booking::{
    AttendeeResponses, BookingRequest, BookingService, ServiceConfig, ServiceError, StatusCounts,
    REQUEST_ID_HEADER, STRIPE_SIGNATURE_HEADER, STRIPE_TOLERANCE, STRIPE_WEBHOOK_PATH,
    TRACE_ID_HEADER,
};
use crate::clock::{VirtualTime, LATENCY_HEADER, NOW_HEADER};
use crate::contract::routes;
use crate::mocks::{stripe, DeliveryCounts, MockKind, MockService, ReceivedRequest};
use crate::report::privacy::PersonalKind;
use crate::scenario::{
    Action, Attendee, BookStep, CronJob, Scenario, SignatureKind, StripeEvent, StripeStep,
};
use crate::trace::{
    self, CaptureSubscriber, Captured, IdGenerator, SpanData, TraceContext, TraceId, TraceStore,
};

/// How to replay.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Tracing opted in (the default) or out: with it off the service runs unchanged but every
    /// span is disabled.
    pub tracing: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { tracing: true }
    }
}

/// Everything one replay produced.
#[derive(Clone, Debug)]
pub struct ReplayOutcome {
    pub scenario: String,
    pub seed: u64,
    pub tracing: bool,
    pub captured: Captured,
    pub steps: Vec<StepOutcome>,
    /// Requests the mocks received, mock by mock (in name order), each in arrival order.
    pub requests: Vec<ReceivedRequest>,
    /// Contexts the runner itself sent in, as a caller from outside would.
    pub inbound_contexts: Vec<TraceContext>,
    /// `(status, count)` of the service's webhook jobs after the replay.
    pub webhook_jobs: StatusCounts,
    /// `(status, count)` of the service's attendee reminders after the replay.
    pub reminders: StatusCounts,
    /// Jobs that ended failed, with their reasons: `(table, id, reason)`.
    pub failed_jobs: Vec<(String, i64, String)>,
    /// How many times the service process was restarted on its database.
    pub restarts: u32,
    /// Per booking flow, the slowest step of its creation.
    pub bottlenecks: Vec<Bottleneck>,
    /// Every attendee name and address the runner sent in, for `report::privacy` to redact.
    pub personal_data: Vec<(String, PersonalKind)>,
    /// What each webhook subscriber did with its deliveries, by mock name.
    pub deliveries: Vec<(String, DeliveryCounts)>,
}

/// The slowest direct step of a booking's creation and its share of the whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    pub trace_id: TraceId,
    pub op: &'static str,
    pub duration: Duration,
    /// The `booking_creation` span's duration.
    pub total: Duration,
}

impl Bottleneck {
    /// `duration / total`, in tenths of a percent (923 = 92.3 %).
    pub fn share_permille(&self) -> u64 {
        let total = self.total.as_micros().max(1);
        u64::try_from(self.duration.as_micros() * 1000 / total).unwrap_or(1000)
    }
}

/// For every `booking_creation` span, its slowest child (the first of equals).
pub fn bottlenecks(captured: &Captured) -> Vec<Bottleneck> {
    captured
        .spans
        .iter()
        .filter(|s| s.op == crate::contract::BOOKING_CREATION && !s.duration().is_zero())
        .filter_map(|root| {
            let slowest = captured
                .children(root.span_id)
                .filter(|s| s.links.is_empty())
                .fold(None::<&SpanData>, |best, s| match best {
                    Some(b) if b.duration() >= s.duration() => Some(b),
                    _ => Some(s),
                })?;
            Some(Bottleneck {
                trace_id: root.trace_id,
                op: slowest.op,
                duration: slowest.duration(),
                total: root.duration(),
            })
        })
        .collect()
}

/// The HTTP exchange of one timeline step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    pub at: Duration,
    pub action: &'static str,
    pub status: u16,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// How long the service declared the request took, on virtual time.
    pub latency: Duration,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot start the replay runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot create the replay's database directory: {0}")]
    TempDir(std::io::Error),
    #[error("the booking service did not start: {0}")]
    Service(#[from] ServiceError),
    #[error("the {action} step at {at} could not reach the booking service: {source}")]
    Step {
        action: &'static str,
        at: String,
        source: reqwest::Error,
    },
    #[error("the stripe step at {at} names PaymentIntent #{n}, but Stripe received {created} creation request(s)")]
    NoPaymentIntent {
        at: String,
        n: usize,
        created: usize,
    },
    /// A bug, not an input: the replay panicked. Other replays are unaffected.
    #[error("the replay panicked: {0}")]
    Panicked(String),
    #[error("the {action} step at {at} carried an invalid traceparent `{value}`: {reason}")]
    Traceparent {
        action: &'static str,
        at: String,
        value: String,
        reason: trace::TraceparentError,
    },
}

/// What one replay (or load run) runs inside: its own store, its own dispatcher feeding that
/// store, and a current-thread runtime, so every task the service spawns reports to this store.
pub(crate) struct Sandbox {
    pub store: std::sync::Arc<TraceStore>,
    pub dispatch: tracing::Dispatch,
    pub runtime: tokio::runtime::Runtime,
}

impl Sandbox {
    pub(crate) fn new(seed: u64, tracing: bool) -> Result<Self, ReplayError> {
        let store = TraceStore::new();
        let capture = if tracing {
            CaptureSubscriber::new(store.clone(), IdGenerator::seeded(seed))
        } else {
            CaptureSubscriber::without_tracing(store.clone())
        };
        let subscriber = capture
            .with_targets(Targets::new().with_target("trace_harness", tracing::Level::TRACE));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplayError::Runtime)?;
        Ok(Sandbox {
            store,
            dispatch: tracing::Dispatch::new(subscriber),
            runtime,
        })
    }
}

/// Replays `scenario` on the calling thread.
pub fn replay(scenario: &Scenario, options: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let Sandbox {
        store,
        dispatch,
        runtime,
    } = Sandbox::new(scenario.seed, options.tracing)?;
    let mut outcome = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(drive(scenario, options))
    })?;
    drop(runtime);
    outcome.captured = store.snapshot();
    outcome.bottlenecks = bottlenecks(&outcome.captured);
    Ok(outcome)
}

/// The service route a cron step calls, as Cal.com's scheduler does.
pub(crate) fn cron_path(job: CronJob) -> &'static str {
    match job {
        CronJob::Webhooks => routes::WEBHOOK_CRON,
        CronJob::Reminders => routes::REMINDER_CRON,
    }
}

/// Starts the scenario's mocks and returns them with the service configuration that points at
/// them: the world a booking service runs in, for replays and load runs alike.
/// Starts the scenario's mocks, recording what they receive if `record_mocks`, and the
/// service's configuration pointing at them.
pub(crate) async fn start_world(
    scenario: &Scenario,
    database: PathBuf,
    record_mocks: bool,
) -> (Vec<MockService>, ServiceConfig) {
    let mut mocks = Vec::new();
    for (name, spec) in &scenario.mocks {
        // Subscribers verify deliveries with the scenario's secret, by default the service's.
        let secret = (spec.kind == MockKind::WebhookSubscriber).then(|| {
            spec.secret
                .clone()
                .unwrap_or_else(|| crate::contract::DEFAULT_WEBHOOK_SECRET.to_owned())
        });
        mocks.push(
            MockService::launch(
                name,
                spec.kind,
                &spec.route_behaviours(),
                secret,
                record_mocks,
            )
            .await,
        );
    }
    let mut config = ServiceConfig::new(database, scenario.seed);
    for mock in &mocks {
        match mock.kind {
            MockKind::GoogleCalendar => config.google_calendar_url = mock.base_url(),
            MockKind::Stripe => config.stripe_url = mock.base_url(),
            MockKind::EmailProvider => config.email_url = mock.base_url(),
            MockKind::WebhookSubscriber => config.webhook_subscribers.push(mock.webhook_url()),
        }
    }
    config.store_latency = scenario.service.store_latency;
    config.bugs = crate::booking::PlantedBugs(scenario.service.bugs.clone());
    config.event_types = scenario.event_types.clone();
    (mocks, config)
}

async fn drive(scenario: &Scenario, options: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    // The database outlives restarts: it is dropped with this directory, after the replay.
    let database = tempfile::tempdir().map_err(ReplayError::TempDir)?;
    let (mocks, mut config) =
        start_world(scenario, database.path().join("booking.sqlite3"), true).await;
    let mut service = BookingService::start(config.clone()).await?;
    let client = reqwest::Client::new();
    let mut attendees = ChaCha8Rng::seed_from_u64(trace::splitmix64(scenario.seed ^ 0x4154_5445));
    let mut steps = Vec::new();
    let mut inbound_contexts = Vec::new();
    let mut restarts = 0;
    let mut failure = None;
    let mut personal_data = Vec::new();
    for step in &scenario.timeline {
        let at = crate::clock::Compact(step.at).to_string();
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let (action, path, body, traceparent) = match &step.action {
            Action::Book(book) => {
                let request = booking_request(book, &mut attendees);
                for attendee in std::iter::once(&request.responses).chain(&request.guests) {
                    personal_data.push((attendee.name.clone(), PersonalKind::Name));
                    personal_data.push((attendee.email.clone(), PersonalKind::Email));
                }
                let body = serde_json::to_string(&request).unwrap_or_default();
                ("book", routes::BOOKINGS, body, book.traceparent.clone())
            }
            Action::Cron(job) => ("cron", cron_path(*job), String::new(), None),
            Action::Stripe(stripe_step) => {
                let event = stripe_event(stripe_step, &mocks, step.at, &at).await?;
                let sent_at = VirtualTime::from_micros(
                    u64::try_from(step.at.as_micros()).unwrap_or(u64::MAX),
                )
                .unix_seconds();
                let (secret, timestamp) = match stripe_step.signature {
                    SignatureKind::Valid => (config.stripe_webhook_secret.as_str(), sent_at),
                    SignatureKind::Forged => ("whsec_forged", sent_at),
                    SignatureKind::Stale => (
                        config.stripe_webhook_secret.as_str(),
                        sent_at.saturating_sub(STRIPE_TOLERANCE.as_secs() * 2),
                    ),
                };
                headers.push((
                    STRIPE_SIGNATURE_HEADER,
                    stripe::signature_header(secret, timestamp, &event),
                ));
                ("stripe", STRIPE_WEBHOOK_PATH, event, None)
            }
            Action::Restart => {
                service.stop().await;
                restarts += 1;
                config.generation = u64::from(restarts);
                service = BookingService::start(config.clone()).await?;
                continue;
            }
        };
        let mut request = client
            .post(format!("{}{path}", service.url()))
            .header(NOW_HEADER, step.at.as_micros().to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(value) = traceparent {
            let context = TraceContext::parse_traceparent(&value).map_err(|reason| {
                ReplayError::Traceparent {
                    action,
                    at: at.clone(),
                    value: value.clone(),
                    reason,
                }
            })?;
            inbound_contexts.push(context);
            request = request.header(trace::TRACEPARENT, value);
        }
        match exchange(request, step.at, action).await {
            Ok(outcome) => steps.push(outcome),
            Err(source) => {
                failure = Some(ReplayError::Step { action, at, source });
                break;
            }
        }
    }
    let mut requests = Vec::new();
    let mut deliveries = Vec::new();
    for mock in &mocks {
        requests.extend(mock.received().await);
        if mock.kind == MockKind::WebhookSubscriber {
            deliveries.push((mock.name.clone(), mock.delivery_counts()));
        }
    }
    let webhook_jobs = service.webhook_job_counts().unwrap_or_default();
    let reminders = service.reminder_counts().unwrap_or_default();
    let failed_jobs = service.failed_jobs().unwrap_or_default();
    service.stop().await;
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(ReplayOutcome {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        tracing: options.tracing,
        captured: Captured::default(),
        steps,
        requests,
        inbound_contexts,
        webhook_jobs,
        reminders,
        failed_jobs,
        restarts,
        bottlenecks: Vec::new(),
        personal_data,
        deliveries,
    })
}

/// The event Stripe sends for a step, about a PaymentIntent the Stripe mock created: rebuilt
/// from the creation request it received, exactly as the mock answered it.
async fn stripe_event(
    step: &StripeStep,
    mocks: &[MockService],
    at: Duration,
    at_text: &str,
) -> Result<String, ReplayError> {
    let mut created = Vec::new();
    for mock in mocks.iter().filter(|m| m.kind == MockKind::Stripe) {
        created.extend(
            mock.received()
                .await
                .into_iter()
                .filter(|r| r.path == crate::contract::peers::STRIPE_PAYMENT_INTENTS),
        );
    }
    let n = step.payment_intent;
    let Some(request) = n.checked_sub(1).and_then(|i| created.get(i)) else {
        return Err(ReplayError::NoPaymentIntent {
            at: at_text.to_owned(),
            n,
            created: created.len(),
        });
    };
    let intent = stripe::payment_intent(&request.body, n - 1, request.sent_at());
    let at = VirtualTime::from_micros(u64::try_from(at.as_micros()).unwrap_or(u64::MAX));
    let event = match step.event {
        StripeEvent::PaymentIntentSucceeded => stripe::succeeded_event(&intent, at),
    };
    Ok(event.to_string())
}

async fn exchange(
    request: reqwest::RequestBuilder,
    at: Duration,
    action: &'static str,
) -> Result<StepOutcome, reqwest::Error> {
    let response = request.send().await?;
    let header = |name| owned_header(response.headers(), name);
    let request_id = header(REQUEST_ID_HEADER);
    let trace_id = header(TRACE_ID_HEADER);
    let latency = header(LATENCY_HEADER)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros)
        .unwrap_or_default();
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(StepOutcome {
        at,
        action,
        status,
        request_id,
        trace_id,
        latency,
        body,
    })
}

/// A response header's value as text, if it has one. Not inlined, so the load runner's
/// `X-Trace-Id` read on a traced flow runs the code its `X-Request-Id` read already runs
/// (`benches/NOTES.md`, item 11).
#[inline(never)]
fn owned_header<K: axum::http::header::AsHeaderName>(
    headers: &axum::http::HeaderMap,
    name: K,
) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The request a booking step sends; attendees the step leaves out are seeded fake data.
fn booking_request(book: &BookStep, rng: &mut ChaCha8Rng) -> BookingRequest {
    let count = book.attendees.unwrap_or(1).max(1);
    let mut attendees: Vec<AttendeeResponses> = (1..=count)
        .map(|seat| {
            let attendee = match (&book.attendee, seat) {
                (Some(given), 1) => given.clone(),
                _ => Attendee {
                    name: Name().fake_with_rng(rng),
                    email: SafeEmail().fake_with_rng(rng),
                },
            };
            let email = if book.invalid_email.contains(&seat) {
                // A domain without a dot: the booking form lets it through, the provider won't.
                let local = attendee.email.split('@').next().unwrap_or_default();
                format!("{local}@invalid")
            } else {
                attendee.email
            };
            AttendeeResponses {
                name: attendee.name,
                email,
            }
        })
        .collect();
    let booker = attendees.remove(0);
    BookingRequest {
        event_type_id: book.event_type_id,
        title: book.title.clone(),
        start: book.start.clone(),
        end: book.end.clone(),
        responses: booker,
        guests: attendees,
    }
}

/// Replays several scenarios on up to `jobs` threads; results come back in input order.
pub fn replay_all(
    scenarios: &[Scenario],
    options: ReplayOptions,
    jobs: usize,
    on_done: impl Fn(&Scenario, &Result<ReplayOutcome, ReplayError>) + Sync,
) -> Vec<Result<ReplayOutcome, ReplayError>> {
    run_isolated(scenarios, jobs, |s| replay(s, options), on_done)
}

/// Runs `work` on every item on up to `jobs` threads, results in input order. A panic in one
/// item's work becomes [`ReplayError::Panicked`] for that item; the others run to the end.
pub fn run_isolated<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<R, ReplayError> + Sync,
    on_done: impl Fn(&T, &Result<R, ReplayError>) + Sync,
) -> Vec<Result<R, ReplayError>> {
    let next = AtomicUsize::new(0);
    let (done, results) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            let done = done.clone();
            let (next, on_done, work) = (&next, &on_done, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(item)))
                    .unwrap_or_else(|panic| Err(ReplayError::Panicked(panic_message(&*panic))));
                on_done(item, &result);
                if done.send((i, result)).is_err() {
                    break;
                }
            });
        }
    });
    drop(done);
    let mut results: Vec<_> = results.into_iter().collect();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}
