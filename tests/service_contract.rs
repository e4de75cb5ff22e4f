//! `trace-harness serve --contract` as the harness will run it: a child process configured by
//! the contract environment, driven over HTTP through a scenario's timeline against the
//! scenario's mocks, exporting its spans over OTLP/HTTP to a collector that records every
//! POST. Seeded, it is the in-process replay: the same responses, the same spans with the same
//! ids and events. Nothing here sleeps: waits are channel receives with a real-time guard.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::sync::Semaphore;

use trace_harness::contract::{env, headers, routes, DEFAULT_WEBHOOK_SECRET};
use trace_harness::mocks::{MockKind, MockService};
use trace_harness::outcome::{PersonalKind, ReplayOutcome};
use trace_harness::report::epoch::Epoch;
use trace_harness::report::otlp::{export_request, BOOKING_SERVICE};
use trace_harness::runner::{replay, ReplayOptions};
use trace_harness::scenario::{Action, CronJob, Scenario};
use trace_harness::trace::{RequestIdPrefix, SeedPrefix};

/// A real-time guard on every wait; a correct service answers and exports in milliseconds.
const GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The collector: records every POST, answering each once the test lets it.

/// One request the collector received.
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn decode(&self) -> ExportTraceServiceRequest {
        match self.content_type.as_str() {
            "application/x-protobuf" => ExportTraceServiceRequest::decode(self.body.as_slice())
                .unwrap_or_else(|e| panic!("not OTLP protobuf: {e}")),
            "application/json" => {
                serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not OTLP/JSON: {e}"))
            }
            other => panic!("content-type {other:?}"),
        }
    }
}

#[derive(Clone)]
struct CollectorState {
    received: Arc<Mutex<mpsc::Sender<Received>>>,
    /// One permit per answer: a gated collector holds every request until the test releases it.
    answers: Arc<Semaphore>,
    /// What it answers.
    status: StatusCode,
}

/// An OTLP/HTTP receiver on loopback that hands every request it gets to the test.
struct Collector {
    url: String,
    received: Receiver<Received>,
    answers: Arc<Semaphore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Collector {
    /// A collector that answers 200 at once.
    fn open() -> Collector {
        Self::start(Semaphore::MAX_PERMITS, StatusCode::OK)
    }

    /// A collector that holds every request until [`Collector::release`].
    fn gated() -> Collector {
        Self::start(0, StatusCode::OK)
    }

    /// A collector that refuses every request with `status`.
    fn refusing(status: StatusCode) -> Collector {
        Self::start(Semaphore::MAX_PERMITS, status)
    }

    fn start(permits: usize, status: StatusCode) -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sent, received) = mpsc::channel();
        let answers = Arc::new(Semaphore::new(permits));
        let state = CollectorState {
            received: Arc::new(Mutex::new(sent)),
            answers: answers.clone(),
            status,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(receive).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Collector {
            url,
            received,
            answers,
            stop: Some(stop),
        }
    }

    /// Lets every held request, and every later one, be answered.
    fn release(&self) {
        self.answers.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// The next request, waiting at most [`GUARD`].
    fn next(&self, what: &str) -> Received {
        self.received
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("the collector received no request: {what}"))
    }

    /// Every request received so far, without waiting.
    fn so_far(&self) -> Vec<Received> {
        self.received.try_iter().collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(
    State(state): State<CollectorState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let received = Received {
        path: uri.path().to_owned(),
        content_type,
        body: body.to_vec(),
    };
    let _ = state.received.lock().unwrap().send(received);
    if let Ok(permit) = state.answers.acquire().await {
        permit.forget();
    }
    state.status
}

/// The spans of received requests, checked to be the booking service's under `service`.
fn spans_of(requests: &[Received], service: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    for request in requests {
        assert_eq!(request.path, "/v1/traces");
        let export = request.decode();
        assert_eq!(export.resource_spans.len(), 1, "one resource per request");
        let resource = &export.resource_spans[0];
        let attributes = &resource.resource.as_ref().unwrap().attributes;
        assert_eq!(attributes.len(), 1, "{attributes:?}");
        assert_eq!(attributes[0].key, "service.name");
        assert_eq!(text(&attributes[0].value), service);
        for scope in &resource.scope_spans {
            assert_eq!(scope.scope.as_ref().unwrap().name, "trace-harness");
            spans.extend(scope.spans.iter().cloned());
        }
    }
    spans
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    (span.attributes.iter())
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

// ---------------------------------------------------------------------------------------------
// The world: the scenario's mocks, and the environment a harness gives the service.

/// The scenario's mocks, started as a replay's world starts them, on threads of their own.
fn start_mocks(runtime: &tokio::runtime::Runtime, scenario: &Scenario) -> Vec<MockService> {
    runtime.block_on(async {
        let mut mocks = Vec::new();
        for (name, spec) in &scenario.mocks {
            let secret = (spec.kind == MockKind::WebhookSubscriber).then(|| {
                spec.secret
                    .clone()
                    .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRET.to_owned())
            });
            mocks.push(
                MockService::start_verifying(name, spec.kind, &spec.route_behaviours(), secret)
                    .await,
            );
        }
        mocks
    })
}

/// The contract environment for `scenario`'s service against `mocks`, on any free port.
fn contract_env(
    scenario: &Scenario,
    mocks: &[MockService],
    database: &Path,
) -> Vec<(String, String)> {
    let mut vars = vec![
        (env::PORT, "0".to_owned()),
        (env::DATABASE_PATH, database.display().to_string()),
        (env::SEED, scenario.seed.to_string()),
        (env::GENERATION, "0".to_owned()),
        (
            env::STORE_LATENCY_US,
            scenario.service.store_latency.as_micros().to_string(),
        ),
        (
            env::BUGS,
            (scenario.service.bugs.iter())
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (env::OTEL_TRACES_SAMPLER, "always_on".to_owned()),
    ];
    let event_types: Vec<serde_json::Value> = (scenario.event_types.iter())
        .map(|e| {
            serde_json::json!({
                "id": e.id, "price": e.price, "currency": e.currency,
                "seats": e.seats, "reminders": e.reminders,
            })
        })
        .collect();
    vars.push((
        env::EVENT_TYPES,
        serde_json::to_string(&event_types).unwrap(),
    ));
    let mut subscribers = Vec::new();
    for mock in mocks {
        match mock.kind {
            MockKind::GoogleCalendar => vars.push((env::GOOGLE_CALENDAR_URL, mock.base_url())),
            MockKind::Stripe => vars.push((env::STRIPE_URL, mock.base_url())),
            MockKind::EmailProvider => vars.push((env::EMAIL_URL, mock.base_url())),
            MockKind::WebhookSubscriber => subscribers.push(mock.webhook_url()),
        }
    }
    vars.push((
        env::WEBHOOK_SUBSCRIBERS,
        serde_json::to_string(&subscribers).unwrap(),
    ));
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A `serve --contract` process's world: a runtime for the mocks, the scenario's mocks, a
/// database directory, a collector, and the contract environment pointing at them all.
struct Served {
    runtime: tokio::runtime::Runtime,
    mocks: Vec<MockService>,
    collector: Collector,
    vars: Vec<(String, String)>,
    _database: tempfile::TempDir,
}

/// The world [`Served`] describes for `scenario`, exporting to `collector`.
fn served(scenario: &Scenario, collector: Collector) -> Served {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mocks = start_mocks(&runtime, scenario);
    let database = tempfile::tempdir().unwrap();
    let vars = contract_env(scenario, &mocks, &database.path().join("booking.sqlite3"));
    let vars = with(vars, env::OTEL_ENDPOINT, Some(&collector.url));
    Served {
        runtime,
        mocks,
        collector,
        vars,
        _database: database,
    }
}

/// `vars` with `name` set to `value` (or removed).
fn with(mut vars: Vec<(String, String)>, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    vars.retain(|(k, _)| k != name);
    if let Some(value) = value {
        vars.push((name.to_owned(), value.to_owned()));
    }
    vars
}

/// Every variable the contract names, so the test machine's own never leak in.
const CONTRACT_VARS: &[&str] = &[
    env::PORT,
    env::GOOGLE_CALENDAR_URL,
    env::STRIPE_URL,
    env::EMAIL_URL,
    env::WEBHOOK_SUBSCRIBERS,
    env::WEBHOOK_SECRET,
    env::CRON_API_KEY,
    env::STRIPE_WEBHOOK_SECRET,
    env::DATABASE_PATH,
    env::EVENT_TYPES,
    env::BUGS,
    env::SEED,
    env::GENERATION,
    env::STORE_LATENCY_US,
    env::OTEL_ENDPOINT,
    env::OTEL_TRACES_ENDPOINT,
    env::OTEL_PROTOCOL,
    env::OTEL_SERVICE_NAME,
    env::OTEL_TRACES_SAMPLER,
    env::OTEL_SDK_DISABLED,
    env::OTEL_TRACES_EXPORTER,
];

// ---------------------------------------------------------------------------------------------
// The service process.

/// A running `serve --contract`.
struct Service {
    child: Child,
    url: String,
    stdout: std::thread::JoinHandle<Vec<String>>,
    stderr: std::thread::JoinHandle<String>,
}

/// How a stopped service ended and what it printed after its first line.
struct Stopped {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

fn command(vars: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trace-harness"));
    command.args(["serve", "--contract"]);
    for var in CONTRACT_VARS {
        command.env_remove(var);
    }
    command.envs(vars.iter().map(|(k, v)| (k, v)));
    command
}

impl Service {
    fn start(vars: &[(String, String)]) -> Service {
        let mut child = command(vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start serve --contract: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let stderr =
            std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let Some(url) = first.trim_end().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!(
                "the first line is no readiness line: {first:?}; stderr: {}",
                stderr.join().unwrap()
            );
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let url = url.to_owned();
        let stdout = std::thread::spawn(move || stdout.lines().map_while(Result::ok).collect());
        Service {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` and waits for the process to end.
    fn stop(self, signal: &str) -> Stopped {
        let killed = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(killed.success());
        self.wait()
    }

    /// Waits for the process to end (on a thread, so the guard needs no polling).
    fn wait(self) -> Stopped {
        let Service {
            mut child,
            stdout,
            stderr,
            ..
        } = self;
        let (sent, ended) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sent.send(child.wait());
        });
        let status = ended
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("serve --contract did not stop"))
            .unwrap();
        Stopped {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the timeline, as the runner drives it in-process.

/// What the service answered one step.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    request_id: Option<String>,
    trace_id: Option<String>,
    body: String,
}

/// The bodies the in-process replay's booking steps sent: its seeded attendees are the
/// personal data it recorded, in order.
fn booking_bodies(scenario: &Scenario, outcome: &ReplayOutcome) -> Vec<String> {
    let mut people = outcome.personal_data.iter();
    let mut bodies = Vec::new();
    for step in &scenario.timeline {
        let Action::Book(book) = &step.action else {
            continue;
        };
        let mut attendees: Vec<serde_json::Value> = (0..book.attendees.unwrap_or(1).max(1))
            .map(|_| {
                let (name, kind) = people.next().unwrap();
                assert_eq!(*kind, PersonalKind::Name);
                let (email, kind) = people.next().unwrap();
                assert_eq!(*kind, PersonalKind::Email);
                serde_json::json!({ "name": name, "email": email })
            })
            .collect();
        let booker = attendees.remove(0);
        let mut body = serde_json::json!({
            "eventTypeId": book.event_type_id, "title": book.title,
            "start": book.start, "end": book.end, "responses": booker,
        });
        if !attendees.is_empty() {
            body["guests"] = attendees.into();
        }
        bodies.push(body.to_string());
    }
    bodies
}

/// Sends one step.
fn send(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    path: &str,
    at: Duration,
    body: String,
) -> Answer {
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{url}{path}"))
            .header(headers::VIRTUAL_NOW_US, at.as_micros().to_string())
            .header(
                headers::AUTHORIZATION,
                trace_harness::contract::DEFAULT_CRON_API_KEY,
            )
            .header("content-type", "application/json")
            .body(body)
            .timeout(GUARD)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let header = |name: &str| {
            (response.headers().get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (request_id, trace_id) = (header(headers::REQUEST_ID), header(headers::TRACE_ID));
        Answer {
            status: response.status().as_u16(),
            request_id,
            trace_id,
            body: response.text().await.unwrap(),
        }
    })
}

/// The in-process replay's answers, as [`Answer`]s.
fn replayed_answers(outcome: &ReplayOutcome) -> Vec<Answer> {
    (outcome.steps.iter())
        .map(|s| Answer {
            status: s.status,
            request_id: s.request_id.clone(),
            trace_id: s.trace_id.clone(),
            body: s.body.clone(),
        })
        .collect()
}

/// Drives `scenario`'s timeline against services started with `vars`: one process per
/// generation, stopped with SIGTERM at a restart and at the end. `after_step` runs after each
/// answer. Returns the answers and how each process ended.
fn drive(
    runtime: &tokio::runtime::Runtime,
    scenario: &Scenario,
    outcome: &ReplayOutcome,
    vars: &[(String, String)],
    mut after_step: impl FnMut(&Answer),
) -> (Vec<Answer>, Vec<Stopped>) {
    let mut bodies = booking_bodies(scenario, outcome).into_iter();
    let mut generation = 0;
    let mut service = Service::start(vars);
    let (mut answers, mut stopped) = (Vec::new(), Vec::new());
    for step in &scenario.timeline {
        let (path, body) = match &step.action {
            Action::Book(_) => (routes::BOOKINGS, bodies.next().unwrap()),
            Action::Cron(CronJob::Webhooks) => (routes::WEBHOOK_CRON, String::new()),
            Action::Cron(CronJob::Reminders) => (routes::REMINDER_CRON, String::new()),
            Action::Restart => {
                stopped.push(service.stop("-TERM"));
                generation += 1;
                let vars = with(
                    vars.to_vec(),
                    env::GENERATION,
                    Some(&generation.to_string()),
                );
                service = Service::start(&vars);
                continue;
            }
            Action::Stripe(_) => panic!("this test drives no Stripe steps"),
        };
        let answer = send(runtime, &service.url, path, step.at, body);
        after_step(&answer);
        answers.push(answer);
    }
    stopped.push(service.stop("-TERM"));
    (answers, stopped)
}

fn assert_clean_exit(stopped: &Stopped) {
    assert!(
        stopped.status.success(),
        "{:?}; stderr: {}",
        stopped.status,
        stopped.stderr
    );
    assert_eq!(stopped.stderr, "", "nothing on standard error");
}

/// The booking service's spans in the in-process replay's own OTLP export.
fn replayed_spans(outcome: &ReplayOutcome) -> Vec<Span> {
    let export = export_request(outcome, Epoch::default());
    let booking = (export.resource_spans.into_iter())
        .find(|r| text(&r.resource.as_ref().unwrap().attributes[0].value) == BOOKING_SERVICE)
        .unwrap();
    booking
        .scope_spans
        .into_iter()
        .flat_map(|s| s.spans)
        .collect()
}

/// `live` holds each of `replayed` once, equal in every field, and nothing else.
fn assert_same_spans(live: &[Span], replayed: &[Span]) {
    for span in live {
        let copies = live.iter().filter(|s| s.span_id == span.span_id).count();
        assert_eq!(copies, 1, "{} exported {copies} times", span.name);
    }
    assert_eq!(live.len(), replayed.len(), "live: {:?}", names(live));
    for expected in replayed {
        let found = live.iter().find(|s| s.span_id == expected.span_id);
        let found = found.unwrap_or_else(|| panic!("{} was not exported", expected.name));
        assert_eq!(found, expected, "{}", expected.name);
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// The in-process replay, traced or not.
fn replayed(scenario: &Scenario, tracing: bool) -> ReplayOutcome {
    replay(scenario, ReplayOptions { tracing }).unwrap_or_else(|e| panic!("{e}"))
}

/// The log lines the in-process replay's service wrote, as its log writer writes them.
fn replayed_lines(outcome: &ReplayOutcome) -> Vec<String> {
    (outcome.captured.logs.iter())
        .map(|line| {
            let prefix = match (&line.span, &line.request_id) {
                (Some(s), _) => format!(
                    "{} ",
                    SeedPrefix {
                        trace: s.trace_id,
                        span: s.span_id,
                        op: s.op
                    }
                ),
                (None, Some(id)) => format!("{} ", RequestIdPrefix(id)),
                (None, None) => String::new(),
            };
            assert!(!line.message.chars().any(char::is_control));
            format!("{prefix}{}", line.message)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_seeded_service_exports_the_replays_spans_with_their_events_as_each_request_ends() {
    let scenario = common::load("calendar_failure");
    let outcome = replayed(&scenario, true);
    let expected = replayed_spans(&outcome);
    let Served {
        runtime,
        mocks: _mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::open());
    let mut live = Vec::new();
    let (answers, stopped) = drive(&runtime, &scenario, &outcome, &vars, |answer| {
        // Each request's spans arrive once it has answered, before the next step is sent.
        let request_id = answer.request_id.clone();
        let mine = |spans: &[Span]| {
            (spans.iter())
                .filter(|s| attribute(s, "request.id") == request_id)
                .count()
        };
        let wanted = mine(&expected);
        assert!(wanted > 0);
        while mine(&live) < wanted {
            let received = collector.next("the spans of a request that has answered");
            live.extend(spans_of(&[received], BOOKING_SERVICE));
        }
    });
    assert_eq!(answers, replayed_answers(&outcome));
    assert_clean_exit(&stopped[0]);
    assert_eq!(
        stopped[0].stdout,
        Vec::<String>::new(),
        "stdout holds the readiness line alone"
    );
    live.extend(spans_of(&collector.so_far(), BOOKING_SERVICE));
    assert_same_spans(&live, &expected);
    let calendar = live
        .iter()
        .find(|s| s.name == "calendar_event_creation")
        .unwrap();
    let events: Vec<&str> = calendar.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.iter().any(|e| e.contains("Rate Limit Exceeded")),
        "{events:?}"
    );
}

#[test]
fn a_restarted_service_draws_the_ids_the_replays_restart_draws_and_exports_json_as_asked() {
    let scenario = common::edited(
        "calendar_failure",
        "[[timeline]]\nat = \"5m\"",
        "[[timeline]]\nat = \"1m\"\nrestart = true\n\n[[timeline]]\nat = \"5m\"",
    );
    let outcome = replayed(&scenario, true);
    assert_eq!(outcome.restarts, 1);
    let Served {
        runtime,
        mocks: _mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::open());
    // The traces endpoint alone, as a service may be given it.
    let vars = with(vars, env::OTEL_ENDPOINT, None);
    let vars = with(
        vars,
        env::OTEL_TRACES_ENDPOINT,
        Some(&format!("{}/v1/traces", collector.url)),
    );
    let vars = with(vars, env::OTEL_PROTOCOL, Some("http/json"));
    let vars = with(vars, env::OTEL_SERVICE_NAME, Some("booking-under-test"));
    let (answers, stopped) = drive(&runtime, &scenario, &outcome, &vars, |_| {});
    assert_eq!(answers, replayed_answers(&outcome));
    assert_eq!(stopped.len(), 2, "one process per generation");
    stopped.iter().for_each(assert_clean_exit);
    let received = collector.so_far();
    assert!(received
        .iter()
        .all(|r| r.content_type == "application/json"));
    let live = spans_of(&received, "booking-under-test");
    assert_same_spans(&live, &replayed_spans(&outcome));
    let execution = live.iter().find(|s| s.name == "webhook_execution").unwrap();
    assert!(
        !execution.links.is_empty(),
        "the job, run by the second process, is linked"
    );
    assert!(
        received.len() >= 2,
        "each process exported its own spans: {} request(s)",
        received.len()
    );
}

#[test]
fn with_the_sdk_disabled_the_answers_are_the_untraced_replays_and_nothing_propagates() {
    let scenario = common::load("calendar_failure");
    let untraced = replayed(&scenario, false);
    let Served {
        runtime,
        mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::open());
    let vars = with(vars, env::OTEL_SDK_DISABLED, Some("true"));
    let (answers, stopped) = drive(&runtime, &scenario, &untraced, &vars, |_| {});
    assert_eq!(answers, replayed_answers(&untraced));
    assert!(answers.iter().all(|a| a.trace_id.is_none()));
    assert_clean_exit(&stopped[0]);
    assert_eq!(collector.so_far().len(), 0, "no span is exported");
    let received = runtime.block_on(async {
        let mut all = Vec::new();
        for mock in &mocks {
            all.extend(mock.received().await);
        }
        all
    });
    assert!(received.len() >= 2, "google and the subscriber were called");
    for request in &received {
        assert_eq!(
            request.header("traceparent"),
            None,
            "{} {}",
            request.mock,
            request.path
        );
        assert_eq!(request.header("tracestate"), None);
    }
    // The log lines are the untraced service's, with their request ids.
    assert_eq!(stopped[0].stdout, replayed_lines(&untraced));
    assert!(stopped[0]
        .stdout
        .iter()
        .all(|l| l.starts_with("[Request ID: ")));
}

#[test]
fn logs_only_writes_the_replays_seed_format_lines_which_import_reads_back() {
    let scenario = common::load("calendar_failure");
    let outcome = replayed(&scenario, true);
    let Served {
        runtime,
        mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::open());
    let vars = with(vars, env::OTEL_TRACES_EXPORTER, Some("none"));
    let (answers, stopped) = drive(&runtime, &scenario, &outcome, &vars, |_| {});
    assert_eq!(answers, replayed_answers(&outcome));
    assert_clean_exit(&stopped[0]);
    assert_eq!(collector.so_far().len(), 0, "nothing is exported");
    // Traced: the calendar call carried the booking's context.
    let google = runtime.block_on(mocks[0].received());
    assert_eq!(mocks[0].kind, MockKind::GoogleCalendar);
    let trace_id = answers[0].trace_id.clone().unwrap();
    assert!(google[0]
        .traceparent
        .as_deref()
        .unwrap()
        .contains(&trace_id));

    let lines = &stopped[0].stdout;
    assert_eq!(*lines, replayed_lines(&outcome));
    let imported = trace_harness::import::import(
        Path::new("stdout"),
        &lines.join("\n"),
        None,
        "From serve --contract's standard output.",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(imported.bad_count, 0, "{:?}", imported.bad);
    assert_eq!(imported.trace, trace_id);
    let ops: Vec<&str> = imported.spans.iter().map(|s| s.op.as_str()).collect();
    for op in [
        "booking_creation",
        "calendar_event_creation",
        "webhook_execution",
    ] {
        assert!(ops.contains(&op), "{op} not in {ops:?}");
    }
}

#[test]
fn sigterm_waits_for_the_export_in_flight_and_flushes_what_closed_meanwhile() {
    let scenario = common::load("calendar_failure");
    let outcome = replayed(&scenario, true);
    let Served {
        runtime,
        mocks: _mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::gated());
    let service = Service::start(&vars);
    let bodies = booking_bodies(&scenario, &outcome);
    let booked = send(
        &runtime,
        &service.url,
        routes::BOOKINGS,
        Duration::ZERO,
        bodies[0].clone(),
    );
    assert_eq!(booked.status, 201);
    // The first export is held by the collector, unanswered.
    let first = collector.next("the booking's first spans");
    // The service answers meanwhile: no response waits for an export.
    let cron = send(
        &runtime,
        &service.url,
        routes::WEBHOOK_CRON,
        Duration::from_secs(300),
        String::new(),
    );
    assert_eq!(cron.status, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Only now can the first export end; the webhook's span closed after it began, and the
    // booking's root may have too: only the last drain, after SIGTERM, can send them.
    collector.release();
    let stopped = service.wait();
    assert_clean_exit(&stopped);
    let mut received = vec![first];
    received.extend(collector.so_far());
    let live = spans_of(&received, BOOKING_SERVICE);
    assert_same_spans(&live, &replayed_spans(&outcome));
}

#[test]
fn a_refused_export_is_reported_as_it_happens_and_the_exit_code_is_3() {
    let scenario = common::load("calendar_failure");
    let outcome = replayed(&scenario, true);
    let Served {
        runtime,
        mocks: _mocks,
        collector,
        vars,
        _database,
    } = served(&scenario, Collector::refusing(StatusCode::BAD_REQUEST));
    let (answers, stopped) = drive(&runtime, &scenario, &outcome, &vars, |_| {});
    assert_eq!(answers, replayed_answers(&outcome), "the service serves on");
    assert_eq!(stopped[0].status.code(), Some(3), "{}", stopped[0].stderr);
    let refused = format!(
        "the OTLP endpoint {}/v1/traces refused the export with HTTP 400",
        collector.url
    );
    assert!(
        stopped[0].stderr.starts_with(&format!("error: {refused}")),
        "{}",
        stopped[0].stderr
    );
    let spans = replayed_spans(&outcome).len();
    assert!(
        stopped[0].stderr.ends_with(&format!(
            "error: {spans} span(s) were not exported, 0 were\n"
        )),
        "{}",
        stopped[0].stderr
    );
}

#[test]
fn a_bad_variable_is_named_on_standard_error_with_exit_code_2() {
    let database = tempfile::tempdir().unwrap();
    let vars = vec![
        (env::PORT.to_owned(), "0".to_owned()),
        (
            env::DATABASE_PATH.to_owned(),
            database.path().join("db").display().to_string(),
        ),
        (
            env::EVENT_TYPES.to_owned(),
            r#"[{"id": "seven"}]"#.to_owned(),
        ),
        (env::OTEL_TRACES_EXPORTER.to_owned(), "none".to_owned()),
    ];
    let output = command(&vars).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: EVENT_TYPES is not a JSON array of event types"),
        "{stderr}"
    );
}
