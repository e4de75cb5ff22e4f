//! Load runs: one scenario's bookings replayed as many concurrent flows against one booking
//! service, for throughput benchmarks and the `overhead` command. Asserts nothing about traces
//! beyond counting them; `expect` judges single replays.
//!
//! A [`FlowRig`] starts the mocks and the service once on its own current-thread runtime and
//! `tracing` dispatcher, then runs batches: every booking step of the timeline `flows` times
//! at once, then the timeline's cron steps, which execute the batch's webhooks. Nothing
//! sleeps, and declared latencies are zeroed: they are virtual and would only move timestamps.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::external::{ExternalService, ServiceSpec};
use super::requests::{booking_request, cron_path, owned_header};
use super::world::World;
use super::ReplayError;
use crate::booking::{
    BookingService, StatusCounts, StoreError, REQUEST_ID_NAME, TRACEPARENT_NAME, TRACE_ID_NAME,
};
use crate::contract::headers::{AUTHORIZATION, VIRTUAL_NOW_US};
use crate::mocks::{MockService, ReceivedRequest};
/// Moved to [`crate::outcome`]; this path keeps working meanwhile.
pub use crate::outcome::FlowResponse;
use crate::outcome::StepKind;
use crate::scenario::{Action, Scenario};
use crate::trace::{self, Captured, TraceStore};

/// Flows on the wire at once. Each in-flight flow holds up to four sockets (caller, service,
/// mock, and the mock's side), so this keeps 10 000-flow runs inside common descriptor limits;
/// the rest wait their turn, already submitted.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// The most flows one batch may ask for: a bound on the store and on the service's database.
pub(crate) const MAX_FLOWS: usize = 100_000;

/// How the caller reaches the booking service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Through the service's router in the same task: no socket on the caller's side.
    InProcess,
    /// Real HTTP over loopback, as `replay` drives it.
    Http,
}

/// How a load run is driven.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Tracing on, or every span disabled.
    pub tracing: bool,
    /// How the flows reach the service.
    pub transport: Transport,
    /// Whether the mocks keep every request they receive, for [`FlowRig::mock_requests`]. A run
    /// that never reads them (`overhead`) leaves this off: recording copies each request.
    pub record_mock_requests: bool,
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Flows the batch ran.
    pub flows: usize,
    /// Flows whose booking request did not answer `201 Created`.
    pub failed_flows: usize,
    /// Spans the batch added to the store.
    pub spans: usize,
    /// Log lines the batch added to the store.
    pub log_lines: usize,
}

/// Why a load run could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The sandbox, the mocks or the service did not start.
    #[error(transparent)]
    Setup(#[from] ReplayError),
    /// The scenario has no booking to repeat.
    #[error("scenario `{0}` has no booking step to repeat")]
    NoBooking(String),
    /// More flows asked for than a batch holds (100 000); holds the number asked for.
    #[error("{0} flows asked for; a batch holds at most {MAX_FLOWS}")]
    TooManyFlows(usize),
    /// The timeline has steps a load run cannot repeat.
    #[error(
        "scenario `{0}` has stripe, restart or crash steps; load runs repeat book and plain cron steps only"
    )]
    Unsupported(String),
    /// A step's request got no answer, or a cron call failed.
    #[error("the {action} step could not reach the booking service: {reason}")]
    Step {
        /// The step's kind.
        action: StepKind,
        /// What went wrong.
        reason: String,
    },
}

/// A started booking service with its mocks, ready to run batches of flows.
pub struct FlowRig {
    scenario: Scenario,
    options: LoadOptions,
    store: Arc<TraceStore>,
    dispatch: tracing::Dispatch,
    runtime: tokio::runtime::Runtime,
    parts: Option<Parts>,
    attendees: ChaCha8Rng,
    /// The last batch's flows, in submission order.
    responses: Vec<FlowResponse>,
    _database: tempfile::TempDir,
}

/// What lives on the rig's runtime.
struct Parts {
    mocks: Vec<MockService>,
    service: RigService,
    client: reqwest::Client,
    cron_key: String,
}

/// The service a rig drives: the in-process one, or one the harness did not write (always
/// reached over HTTP, its spans received over OTLP).
enum RigService {
    InProcess(BookingService),
    External(Box<ExternalService>),
}

impl RigService {
    fn url(&self) -> String {
        match self {
            RigService::InProcess(service) => service.url(),
            RigService::External(service) => service.url().to_owned(),
        }
    }

    /// Stops it; an external service's spans (flushed as it stops) come back.
    async fn stop(self) -> Option<Captured> {
        match self {
            RigService::InProcess(service) => {
                service.stop().await;
                None
            }
            RigService::External(service) => Some(service.finish_load().await),
        }
    }
}

impl FlowRig {
    /// Starts the scenario's mocks and one service for them, with declared latencies zeroed.
    pub fn start(scenario: &Scenario, options: LoadOptions) -> Result<Self, LoadError> {
        Self::start_against(scenario, options, None)
    }

    /// [`start`](Self::start), against the service `external` declares when given (reached
    /// over HTTP whatever the transport; its spans over OTLP, read by [`finish`](Self::finish)).
    pub fn start_against(
        scenario: &Scenario,
        options: LoadOptions,
        external: Option<&ServiceSpec>,
    ) -> Result<Self, LoadError> {
        let mut scenario = scenario.clone();
        if !scenario
            .timeline
            .iter()
            .any(|s| matches!(s.action, Action::Book(_)))
        {
            return Err(LoadError::NoBooking(scenario.name));
        }
        for spec in scenario.mocks.values_mut() {
            for behaviour in spec.behaviours_mut() {
                behaviour.latency = Duration::ZERO;
            }
        }
        let super::Sandbox {
            store,
            dispatch,
            runtime,
        } = super::Sandbox::new(scenario.seed, options.tracing)?;
        let database = tempfile::tempdir().map_err(ReplayError::TempDir)?;
        let path = database.path().join("booking.sqlite3");
        let parts = tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(start_parts(
                &scenario,
                path,
                options.record_mock_requests,
                external,
                options.tracing,
            ))
        })?;
        let attendees = ChaCha8Rng::seed_from_u64(trace::splitmix64(scenario.seed ^ 0x4c4f_4144));
        Ok(FlowRig {
            scenario,
            options,
            store,
            dispatch,
            runtime,
            parts: Some(parts),
            attendees,
            responses: Vec::new(),
            _database: database,
        })
    }

    /// Everything captured so far; [`TraceStore::clear`] it between batches to keep memory flat.
    pub fn store(&self) -> &Arc<TraceStore> {
        &self.store
    }

    /// Runs `flows` concurrent copies of the timeline's bookings, then its cron steps.
    pub fn run(&mut self, flows: usize) -> Result<BatchOutcome, LoadError> {
        if flows > MAX_FLOWS {
            return Err(LoadError::TooManyFlows(flows));
        }
        let Some(parts) = &self.parts else {
            return Ok(BatchOutcome::default());
        };
        let spans_before = self.store.span_count();
        let logs_before = self.store.log_count();
        let responses = tracing::dispatcher::with_default(&self.dispatch, || {
            self.runtime.block_on(run_batch(
                &self.scenario,
                parts,
                self.options.transport,
                flows,
                &mut self.attendees,
            ))
        })?;
        let failed_flows = responses
            .iter()
            .filter(|r| r.status != StatusCode::CREATED.as_u16())
            .count();
        self.responses = responses;
        Ok(BatchOutcome {
            flows,
            failed_flows,
            spans: self.store.span_count().saturating_sub(spans_before),
            log_lines: self.store.log_count().saturating_sub(logs_before),
        })
    }

    /// What each flow of the last batch got back, in submission order.
    pub fn responses(&self) -> &[FlowResponse] {
        &self.responses
    }

    /// Every request the mocks received so far, mock by mock, each in arrival order; none
    /// unless the rig was started with [`LoadOptions::record_mock_requests`].
    pub fn mock_requests(&self) -> Vec<ReceivedRequest> {
        let Some(parts) = &self.parts else {
            return Vec::new();
        };
        self.runtime.block_on(async {
            let mut requests = Vec::new();
            for mock in &parts.mocks {
                requests.extend(mock.received().await);
            }
            requests
        })
    }

    /// `(status, count)` of the service's webhook jobs; nothing for an external service,
    /// whose database is its own.
    pub fn webhook_job_counts(&self) -> Result<StatusCounts, StoreError> {
        match self.parts.as_ref().map(|p| &p.service) {
            Some(RigService::InProcess(service)) => service.webhook_job_counts(),
            _ => Ok(Vec::new()),
        }
    }

    /// The process id of an external service, for measuring what it spends; `None` in-process.
    pub fn service_pid(&self) -> Option<u32> {
        match self.parts.as_ref().map(|p| &p.service) {
            Some(RigService::External(service)) => service.pid(),
            _ => None,
        }
    }

    /// Stops the service and the mocks.
    pub fn stop(mut self) {
        self.stop_parts();
    }

    /// Stops the service and the mocks, and returns every span the run produced: the store's,
    /// or what an external service sent, including what it flushed as it stopped.
    pub fn finish(mut self) -> Captured {
        self.stop_parts().unwrap_or_else(|| self.store.snapshot())
    }

    fn stop_parts(&mut self) -> Option<Captured> {
        let parts = self.parts.take()?;
        let received = tracing::dispatcher::with_default(&self.dispatch, || {
            self.runtime.block_on(parts.service.stop())
        });
        drop(parts.mocks);
        received
    }
}

impl Drop for FlowRig {
    fn drop(&mut self) {
        self.stop_parts();
    }
}

/// One batch of `flows` flows on a fresh rig: start, run, stop. The store comes back with
/// everything the batch captured.
pub fn replay_flows(
    scenario: &Scenario,
    flows: usize,
    options: LoadOptions,
) -> Result<(BatchOutcome, Arc<TraceStore>), LoadError> {
    let mut rig = FlowRig::start(scenario, options)?;
    let outcome = rig.run(flows)?;
    let store = rig.store().clone();
    rig.stop();
    Ok((outcome, store))
}

async fn start_parts(
    scenario: &Scenario,
    database: std::path::PathBuf,
    record_mocks: bool,
    external: Option<&ServiceSpec>,
    tracing: bool,
) -> Result<Parts, ReplayError> {
    let (mocks, config) = World::of(scenario).start(database, record_mocks).await;
    let cron_key = config.cron_api_key.clone();
    let service = match external {
        None => RigService::InProcess(BookingService::start(config).await?),
        Some(spec) => RigService::External(Box::new(
            ExternalService::start(spec, &config, tracing).await?,
        )),
    };
    Ok(Parts {
        mocks,
        service,
        client: reqwest::Client::new(),
        cron_key,
    })
}

/// Runs the timeline once with every booking step fanned out to `flows` flows; returns what
/// each flow's booking got back.
async fn run_batch(
    scenario: &Scenario,
    parts: &Parts,
    transport: Transport,
    flows: usize,
    attendees: &mut ChaCha8Rng,
) -> Result<Vec<FlowResponse>, LoadError> {
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut responses = vec![FlowResponse::default(); flows];
    for step in &scenario.timeline {
        let at_us = step.at.as_micros().to_string();
        match &step.action {
            Action::Book(book) => {
                let mut in_flight = JoinSet::new();
                for flow in 0..flows {
                    let body = serde_json::to_string(&booking_request(book, attendees))
                        .unwrap_or_default();
                    let call = Call {
                        path: crate::contract::routes::BOOKINGS,
                        at_us: at_us.clone(),
                        body,
                        traceparent: book.traceparent.clone(),
                        cron_key: None,
                    };
                    let gate = gate.clone();
                    let endpoint = Endpoint::of(parts, transport);
                    in_flight.spawn(async move {
                        // The gate is never closed, so acquiring only waits for a free place.
                        let _permit = gate.acquire_owned().await.ok();
                        (flow, endpoint.send(call).await)
                    });
                }
                while let Some(joined) = in_flight.join_next().await {
                    match joined {
                        Ok((flow, Ok(response))) => {
                            if let Some(slot) = responses.get_mut(flow) {
                                *slot = response;
                            }
                        }
                        Ok((_, Err(reason))) => {
                            return Err(LoadError::Step {
                                action: StepKind::Book,
                                reason,
                            })
                        }
                        Err(join) => {
                            return Err(LoadError::Step {
                                action: StepKind::Book,
                                reason: join.to_string(),
                            })
                        }
                    }
                }
            }
            Action::Stripe(_) | Action::Restart => {
                return Err(LoadError::Unsupported(scenario.name.clone()))
            }
            // A crash kills the one process every flow shares.
            Action::Cron(_) if step.crash.is_some() => {
                return Err(LoadError::Unsupported(scenario.name.clone()))
            }
            Action::Cron(job) => {
                let call = Call {
                    path: cron_path(*job),
                    at_us,
                    body: String::new(),
                    traceparent: None,
                    cron_key: Some(parts.cron_key.clone()),
                };
                let status = Endpoint::of(parts, transport)
                    .send(call)
                    .await
                    .map_err(|reason| LoadError::Step {
                        action: StepKind::Cron,
                        reason,
                    })?
                    .status;
                if !(200..300).contains(&status) {
                    return Err(LoadError::Step {
                        action: StepKind::Cron,
                        reason: format!("HTTP {status}"),
                    });
                }
            }
        }
    }
    Ok(responses)
}

struct Call {
    path: &'static str,
    at_us: String,
    body: String,
    traceparent: Option<String>,
    /// A cron call's key, sent as the `authorization` header.
    cron_key: Option<String>,
}

/// Where a call goes: the router in-process, or the service's URL over loopback.
enum Endpoint {
    Router(axum::Router),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

impl Endpoint {
    fn of(parts: &Parts, transport: Transport) -> Endpoint {
        match (&parts.service, transport) {
            (RigService::InProcess(service), Transport::InProcess) => {
                Endpoint::Router(service.router())
            }
            _ => Endpoint::Http {
                client: parts.client.clone(),
                url: parts.service.url(),
            },
        }
    }

    /// Sends the call and reads the whole response.
    async fn send(self, call: Call) -> Result<FlowResponse, String> {
        match self {
            Endpoint::Router(router) => {
                let mut request = Request::post(call.path)
                    .header(VIRTUAL_NOW_US, call.at_us)
                    .header("content-type", "application/json");
                if let Some(value) = call.traceparent {
                    request = request.header(trace::TRACEPARENT, value);
                }
                if let Some(key) = call.cron_key {
                    request = request.header(AUTHORIZATION, key);
                }
                let request = request
                    .body(Body::from(call.body))
                    .map_err(|e| e.to_string())?;
                let response = router.oneshot(request).await.map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut flow = flow_response(parts.status.as_u16(), &parts.headers);
                flow.booking_uid = booking_uid(&body);
                Ok(flow)
            }
            Endpoint::Http { client, url } => {
                let mut request = client
                    .post(format!("{url}{}", call.path))
                    .header(VIRTUAL_NOW_US, call.at_us)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(call.body);
                if let Some(value) = call.traceparent {
                    request = request.header(TRACEPARENT_NAME.clone(), value);
                }
                if let Some(key) = call.cron_key {
                    request = request.header(AUTHORIZATION, key);
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                // The ids are read before the body takes the response: no copy of its headers.
                let mut flow = flow_response(response.status().as_u16(), response.headers());
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                flow.booking_uid = booking_uid(&body);
                Ok(flow)
            }
        }
    }
}

/// A booking answer is a few hundred bytes; more is a service bug, not something to buffer.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The flow's status and ids from its response head; the booking's `uid` comes from the body.
fn flow_response(status: u16, headers: &HeaderMap) -> FlowResponse {
    FlowResponse {
        status,
        trace_id: owned_header(headers, &TRACE_ID_NAME),
        request_id: owned_header(headers, &REQUEST_ID_NAME),
        booking_uid: None,
    }
}

/// The booking's `uid` from a response body.
fn booking_uid(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["uid"].as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn calendar_failure() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/calendar_failure.toml");
        Scenario::load(&path).expect("the calendar-failure scenario loads")
    }

    #[test]
    fn every_flow_of_a_batch_books_and_is_traced_in_both_transports() {
        for transport in [Transport::InProcess, Transport::Http] {
            let options = LoadOptions {
                tracing: true,
                transport,
                record_mock_requests: true,
            };
            let (outcome, store) = replay_flows(&calendar_failure(), 20, options).unwrap();
            assert_eq!(outcome.failed_flows, 0, "{transport:?}");
            // booking, calendar event, webhook scheduling, webhook execution: four per flow.
            assert_eq!(outcome.spans, 20 * 4, "{transport:?}");
            let captured = store.snapshot();
            assert_eq!(captured.trace_ids().len(), 20, "one trace per flow");
            assert!(captured.open.is_empty());
        }
    }

    #[test]
    fn with_tracing_off_a_batch_captures_log_lines_but_no_span() {
        let options = LoadOptions {
            tracing: false,
            transport: Transport::InProcess,
            record_mock_requests: true,
        };
        let (outcome, _) = replay_flows(&calendar_failure(), 5, options).unwrap();
        assert_eq!(outcome.failed_flows, 0);
        assert_eq!(outcome.spans, 0);
        assert!(outcome.log_lines >= 5);
    }
}
