//! One replay, wired: start the mocks and the booking service, drive the timeline on virtual
//! time, and collect the `ReplayOutcome`. Formats nothing.
//!
//! Each replay runs on its own thread with a current-thread tokio runtime and its own
//! `tracing` dispatcher, so the service's spawned tasks all see the replay's capture layer and
//! replays never share state.

pub mod load;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::Name;
use fake::Fake;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Registry;

use crate::booking::{
    AttendeeResponses, BookingRequest, BookingService, ServiceConfig, ServiceError,
    REQUEST_ID_HEADER, TRACE_ID_HEADER,
};
use crate::clock::{LATENCY_HEADER, NOW_HEADER};
use crate::mocks::{MockKind, MockService, ReceivedRequest};
use crate::scenario::{Action, Attendee, BookStep, CronJob, Scenario};
use crate::trace::{self, CaptureLayer, Captured, IdGenerator, TraceContext, TraceStore};

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
    pub webhook_jobs: Vec<(String, i64)>,
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
    #[error("the {action} step at {at} carried an invalid traceparent `{value}`: {reason}")]
    Traceparent {
        action: &'static str,
        at: String,
        value: String,
        reason: trace::TraceparentError,
    },
}

/// Replays `scenario` on the calling thread.
pub fn replay(scenario: &Scenario, options: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let store = TraceStore::new();
    let capture = if options.tracing {
        CaptureLayer::new(store.clone(), IdGenerator::seeded(scenario.seed))
    } else {
        CaptureLayer::without_tracing(store.clone())
    };
    let subscriber = Registry::default()
        .with(Targets::new().with_target("trace_harness", tracing::Level::TRACE))
        .with(capture);
    let dispatch = tracing::Dispatch::new(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReplayError::Runtime)?;
    let mut outcome = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(drive(scenario, options))
    })?;
    drop(runtime);
    outcome.captured = store.snapshot();
    Ok(outcome)
}

async fn drive(scenario: &Scenario, options: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let mut mocks = Vec::new();
    for (name, spec) in &scenario.mocks {
        mocks.push(MockService::start(name, spec.kind, &spec.behaviours()).await);
    }
    let database = tempfile::tempdir().map_err(ReplayError::TempDir)?;
    let mut config = ServiceConfig::new(database.path().join("booking.sqlite3"), scenario.seed);
    for mock in &mocks {
        match mock.kind {
            MockKind::GoogleCalendar => config.google_calendar_url = mock.base_url(),
            MockKind::WebhookSubscriber => config.webhook_subscribers.push(mock.webhook_url()),
        }
    }
    let service = BookingService::start(config).await?;
    let client = reqwest::Client::new();
    let mut attendees = ChaCha8Rng::seed_from_u64(trace::splitmix64(scenario.seed ^ 0x4154_5445));
    let mut steps = Vec::new();
    let mut inbound_contexts = Vec::new();
    let mut failure = None;
    for step in &scenario.timeline {
        let at = crate::clock::Compact(step.at).to_string();
        let (action, path, body, traceparent) = match &step.action {
            Action::Book(book) => {
                let request = booking_request(book, &mut attendees);
                let body = serde_json::to_string(&request).unwrap_or_default();
                ("book", "/api/bookings", body, book.traceparent.clone())
            }
            Action::Cron(CronJob::Webhooks) => ("cron", "/api/cron/webhooks", String::new(), None),
        };
        let mut request = client
            .post(format!("{}{path}", service.url()))
            .header(NOW_HEADER, step.at.as_micros().to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
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
    for mock in &mocks {
        requests.extend(mock.received().await);
    }
    let webhook_jobs = service.webhook_job_counts().unwrap_or_default();
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
    })
}

async fn exchange(
    request: reqwest::RequestBuilder,
    at: Duration,
    action: &'static str,
) -> Result<StepOutcome, reqwest::Error> {
    let response = request.send().await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
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

/// The request a booking step sends; an attendee the step leaves out is seeded fake data.
fn booking_request(book: &BookStep, rng: &mut ChaCha8Rng) -> BookingRequest {
    let attendee = book.attendee.clone().unwrap_or_else(|| Attendee {
        name: Name().fake_with_rng(rng),
        email: SafeEmail().fake_with_rng(rng),
    });
    BookingRequest {
        event_type_id: book.event_type_id,
        title: book.title.clone(),
        start: book.start.clone(),
        end: book.end.clone(),
        responses: AttendeeResponses {
            name: attendee.name,
            email: attendee.email,
        },
    }
}

/// Replays several scenarios on up to `jobs` threads; results come back in input order.
pub fn replay_all(
    scenarios: &[Scenario],
    options: ReplayOptions,
    jobs: usize,
    on_done: impl Fn(&Scenario, &Result<ReplayOutcome, ReplayError>) + Sync,
) -> Vec<Result<ReplayOutcome, ReplayError>> {
    let next = AtomicUsize::new(0);
    let (done, results) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, scenarios.len().max(1)) {
            let done = done.clone();
            let (next, on_done) = (&next, &on_done);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(scenario) = scenarios.get(i) else {
                    break;
                };
                let result = replay(scenario, options);
                on_done(scenario, &result);
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
