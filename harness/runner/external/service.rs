//! One replay's external service: its process (restarted on the same database), the receiver
//! its spans arrive at, and the wait after each step until the step's telemetry is complete.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::process::{free_port, ServiceProcess, EXIT_GRACE};
use super::settle::{missing, named_senders, Caused};
use super::spec::{expand, RunningService, ServiceClock, ServiceSpec, Telemetry, HARNESS_BIN_VAR};
use crate::booking::ServiceConfig;
use crate::contract::{env, OPERATIONS};
use crate::mocks::{MockKind, ReceivedRequest};
use crate::outcome::{ForeignTrace, SpanSource, StepOutcome};
use crate::receive::{from_lines, Inbox, Receiver, TimeBase};
use crate::runner::ReplayError;
use crate::trace::{Captured, SpanId, TraceContext, TraceId};

/// A service under test for one replay.
pub(crate) struct ExternalService {
    /// Its own copy, so a load rig can keep the service as long as it likes.
    spec: ServiceSpec,
    tracing: bool,
    process: Option<ServiceProcess>,
    url: String,
    receiver: Receiver,
    inbox: Arc<Inbox>,
    /// Standard output of the processes already stopped (restarts), in order.
    earlier_stdout: Vec<String>,
}

/// What an external service sent, as the outcome holds it.
pub(crate) struct Received {
    /// The spans the harness judges.
    pub captured: Captured,
    /// Spans over OTLP, or a log-only service's lines.
    pub source: SpanSource,
    /// Traces kept apart.
    pub foreign: Vec<ForeignTrace>,
}

impl ExternalService {
    /// Starts the receiver and the service configured as `config` says.
    pub(crate) async fn start(
        spec: &ServiceSpec,
        config: &ServiceConfig,
        tracing: bool,
    ) -> Result<ExternalService, ReplayError> {
        let inbox = Arc::new(Inbox::new());
        let addr = match &spec.running {
            Some(running) => running.receiver,
            None => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let receiver = Receiver::start(addr, inbox.clone())
            .await
            .map_err(|e| ReplayError::Receiver { addr, source: e })?;
        let mut service = ExternalService {
            spec: spec.clone(),
            tracing,
            process: None,
            url: String::new(),
            receiver,
            inbox,
            earlier_stdout: Vec::new(),
        };
        match &spec.running {
            Some(running) => {
                reachable(&running.url).await?;
                service.url = running.url.clone();
            }
            None => service.launch(config).await?,
        }
        Ok(service)
    }

    /// Starts the process, on a free port, with the contract's environment.
    async fn launch(&mut self, config: &ServiceConfig) -> Result<(), ReplayError> {
        let spec = &self.spec;
        let port = free_port().map_err(ReplayError::Port)?;
        let mut vars = contract_env(config, spec, port, &self.receiver_url(), self.tracing);
        let bin = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        vars.push((HARNESS_BIN_VAR.to_owned(), bin));
        let expanded = |text: &str| {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(name).ok())
            };
            expand(text, lookup).map_err(|reason| ReplayError::ServiceFile {
                path: spec.path.clone(),
                reason,
            })
        };
        let argv = spec
            .argv
            .iter()
            .map(|a| expanded(a))
            .collect::<Result<Vec<_>, _>>()?;
        // Expanded first, then taken from the service file's directory unless absolute.
        let dir = spec.base.join(expanded(&spec.dir)?);
        let mut extra = Vec::with_capacity(spec.env.len());
        for (name, value) in &spec.env {
            extra.push((name.clone(), expanded(value)?));
        }
        vars.extend(extra);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let process =
            ServiceProcess::start(&argv, &dir, &vars, &spec.ready, addr, spec.ready_timeout)
                .await?;
        self.process = Some(process);
        self.url = format!("http://{addr}");
        Ok(())
    }

    /// The receiver's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` gives it.
    fn receiver_url(&self) -> String {
        format!("http://{}", self.receiver.addr())
    }

    /// The service's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops the process and starts a new one on the same database.
    pub(crate) async fn restart(&mut self, config: &ServiceConfig) -> Result<(), ReplayError> {
        if let Some(running) = &self.spec.running {
            return Err(ReplayError::CannotRestart {
                url: running.url.clone(),
            });
        }
        if let Some(process) = self.process.take() {
            self.earlier_stdout.extend(process.stop().await);
        }
        self.launch(config).await
    }

    /// An error if the process has died or dies within `grace` (to explain a request that
    /// got no answer, or telemetry that never came).
    pub(crate) async fn check_alive(&mut self, grace: Duration) -> Result<(), ReplayError> {
        match &mut self.process {
            Some(process) => Ok(process.check_alive(grace).await?),
            None => Ok(()),
        }
    }

    /// After a step armed with a crash got no answer: `None` if the process still runs (the
    /// step failed some other way); else it died at the crash point, and this is the spans it
    /// took with it — named by a request in `mock_requests`, arrived nowhere, and not among
    /// `lost_before` — once a new process runs on the same database, as after a restart.
    pub(crate) async fn crashed(
        &mut self,
        config: &ServiceConfig,
        mock_requests: &[ReceivedRequest],
        lost_before: &[SpanId],
    ) -> Result<Option<Vec<(TraceId, SpanId)>>, ReplayError> {
        let Some(process) = &mut self.process else {
            return Ok(None);
        };
        if process.check_alive(EXIT_GRACE).await.is_ok() {
            return Ok(None);
        }
        let arrived = self.arrived_spans();
        let lost = named_senders(mock_requests, |span| {
            !arrived.contains(&span) && !lost_before.contains(&span)
        });
        self.restart(config).await?;
        Ok(Some(lost))
    }

    /// Every span that has arrived: over OTLP, or as a log-only service's lines.
    fn arrived_spans(&self) -> HashSet<SpanId> {
        let captured = match self.spec.telemetry {
            Telemetry::Otlp(_) => self.captured(),
            Telemetry::Logs => {
                let current = self.process.as_ref().map(ServiceProcess::stdout_lines);
                let lines = self.earlier_stdout.iter().chain(current.iter().flatten());
                from_lines(lines.map(String::as_str)).captured
            }
        };
        captured.spans.iter().map(|s| s.span_id).collect()
    }

    /// [`check_alive`](Self::check_alive) after a request that got no answer.
    pub(crate) async fn check_alive_after_failure(&mut self) -> Result<(), ReplayError> {
        self.check_alive(EXIT_GRACE).await
    }

    /// Waits until everything `caused` names has arrived and the service has been quiet for
    /// the spec's quiet period; past the deadline, fails naming what is missing.
    pub(crate) async fn settle(
        &mut self,
        caused: &Caused<'_>,
        at: &str,
    ) -> Result<(), ReplayError> {
        if !self.tracing {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.spec.deadline;
        if self.spec.telemetry == Telemetry::Logs {
            // Lines name no parents or requests to wait for: only the quiet period applies.
            let quiet = match &self.process {
                Some(process) => process.stdout_quiet(self.spec.quiet, deadline).await,
                None => true,
            };
            return match quiet {
                true => Ok(()),
                false => Err(ReplayError::Incomplete {
                    at: at.to_owned(),
                    waited: self.spec.deadline,
                    missing: vec![format!(
                        "a pause of {} in its standard output: it kept writing lines",
                        crate::clock::Compact(self.spec.quiet)
                    )],
                }),
            };
        }
        loop {
            // Read the version first: a change after it wakes the wait below.
            let version = self.inbox.version();
            self.check_telemetry()?;
            let missing = missing(&self.captured(), caused);
            if missing.is_empty() {
                // No quiet period: settled now. A zero timeout would still wait for the timer
                // wheel's next millisecond tick, a millisecond a step (benches/NOTES.md).
                if self.spec.quiet.is_zero() {
                    return Ok(());
                }
                let quiet =
                    tokio::time::timeout(self.spec.quiet, self.inbox.changed_since(version));
                match quiet.await {
                    // Nothing more arrived in the quiet period: settled.
                    Err(_) => return Ok(()),
                    Ok(()) => continue,
                }
            }
            let next = tokio::time::timeout_at(deadline, self.inbox.changed_since(version));
            if next.await.is_err() {
                self.check_alive(Duration::ZERO).await?;
                return Err(ReplayError::Incomplete {
                    at: at.to_owned(),
                    waited: self.spec.deadline,
                    missing,
                });
            }
        }
    }

    /// An error if the service sent telemetry the receiver refused.
    fn check_telemetry(&self) -> Result<(), ReplayError> {
        let problems = self.inbox.problems();
        if problems.malformed_requests == 0 && problems.rejected_spans == 0 {
            return Ok(());
        }
        let messages: Vec<String> = problems
            .messages
            .iter()
            // Text from outside: control characters escaped, so it cannot fake a line.
            .map(|m| m.escape_debug().to_string())
            .collect();
        Err(ReplayError::MalformedTelemetry(format!(
            "{} request(s) unreadable, {} span(s) rejected: {}",
            problems.malformed_requests,
            problems.rejected_spans,
            messages.join("; ")
        )))
    }

    /// What the service's spans show so far.
    fn captured(&self) -> Captured {
        self.inbox
            .snapshot(Some(&self.spec.service_name), self.time_base())
    }

    /// Stops the service and the receiver; what its spans (or lines) showed, without the
    /// traces the replay did not cause: `steps` and `inbound` are what it did cause.
    pub(crate) async fn finish(
        mut self,
        steps: &[StepOutcome],
        inbound: &[TraceContext],
    ) -> Result<Received, ReplayError> {
        if let Some(process) = self.process.take() {
            self.earlier_stdout.extend(process.stop().await);
        }
        let received = self.received(steps, inbound);
        self.receiver.stop().await;
        received
    }

    /// What has arrived, judged as [`finish`](Self::finish) returns it.
    fn received(
        &self,
        steps: &[StepOutcome],
        inbound: &[TraceContext],
    ) -> Result<Received, ReplayError> {
        if self.spec.telemetry == Telemetry::Logs && self.tracing {
            let read = from_lines(self.earlier_stdout.iter().map(String::as_str));
            if read.malformed > 0 {
                return Err(ReplayError::MalformedTelemetry(format!(
                    "{} seed-format line(s) of its standard output unreadable: {}",
                    read.malformed,
                    read.problems.join("; ")
                )));
            }
            return Ok(Received {
                captured: read.captured,
                source: SpanSource::LogLines,
                foreign: Vec::new(),
            });
        }
        self.check_telemetry()?;
        let (ours, foreign) = self.sort_traces(steps, inbound);
        let captured =
            self.inbox
                .snapshot_traces(Some(&self.spec.service_name), &ours, self.time_base());
        Ok(Received {
            captured,
            source: SpanSource::Spans,
            foreign,
        })
    }

    /// Stops the service and the receiver after a load run: every span of `service_name` it
    /// sent, foreign traces included (a load run judges isolation itself).
    pub(crate) async fn finish_load(mut self) -> Captured {
        if let Some(process) = self.process.take() {
            process.stop().await;
        }
        let captured = self.captured();
        self.receiver.stop().await;
        captured
    }

    /// The process id of the service, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServiceProcess::pid)
    }

    /// The traces the replay caused, and the rest: a trace is the replay's when a booking
    /// answered with it, a context the harness sent names it, or one of its spans is an
    /// operation of the contract (a job that lost its context is still the replay's, and
    /// judged). Spans of another service are always kept apart.
    fn sort_traces(
        &self,
        steps: &[StepOutcome],
        inbound: &[TraceContext],
    ) -> (Vec<TraceId>, Vec<ForeignTrace>) {
        let named: HashSet<String> = steps
            .iter()
            .filter_map(|s| s.trace_id.clone())
            .chain(inbound.iter().map(|c| c.trace_id.to_string()))
            .collect();
        let service = self.spec.service_name.as_str();
        let (mut ours, mut foreign) = (Vec::new(), Vec::new());
        for trace in self.inbox.trace_ids() {
            let spans = self.inbox.trace_spans(trace);
            let own: Vec<_> = spans.iter().filter(|s| &*s.service == service).collect();
            let caused = named.contains(&trace.to_string())
                || own.iter().any(|s| OPERATIONS.contains(&s.op));
            if caused && !own.is_empty() {
                ours.push(trace);
            }
            let mut others: Vec<&str> = Vec::new();
            for span in &spans {
                let kept_apart = &*span.service != service || !caused;
                if kept_apart && !others.contains(&&*span.service) {
                    others.push(&span.service);
                }
            }
            for name in others {
                let of: Vec<_> = spans.iter().filter(|s| &*s.service == name).collect();
                foreign.push(ForeignTrace {
                    service: name.to_owned(),
                    trace_id: trace,
                    spans: of.len(),
                    first: of[0].op.to_owned(),
                });
            }
        }
        (ours, foreign)
    }

    fn time_base(&self) -> TimeBase {
        match self.spec.clock {
            ServiceClock::Virtual => TimeBase::Virtual,
            ServiceClock::Own => TimeBase::EarliestSpan,
        }
    }
}

/// An error unless something accepts connections at `url`'s host and port: a service already
/// running must be running before its first replay.
async fn reachable(url: &str) -> Result<(), ReplayError> {
    let not_running = |reason: String| ReplayError::NotRunning {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| not_running(e.to_string()))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map(drop)
        .map_err(|e| not_running(e.to_string()))
}

/// Binds, for a service already running, each of `world`'s mocks (name, kind; in start order)
/// to the next `[mocks]` address of its kind.
pub(crate) fn bind_fixed_mocks(
    spec: &ServiceSpec,
    running: &RunningService,
    scenario: &str,
    world: &[(&str, MockKind)],
) -> Result<Vec<Option<std::net::TcpListener>>, ReplayError> {
    let kinds: Vec<MockKind> = world.iter().map(|(_, kind)| *kind).collect();
    let addresses = running.mock_addresses(&kinds);
    let mut listeners = Vec::with_capacity(world.len());
    for ((name, kind), addr) in world.iter().zip(addresses) {
        let Some(addr) = addr else {
            let wanted = kinds.iter().filter(|k| *k == kind).count();
            let given = running.mocks.get(kind.name()).map_or(0, Vec::len);
            return Err(ReplayError::ServiceFile {
                path: spec.path.clone(),
                reason: format!(
                    "scenario `{scenario}` has {wanted} `{}` mock(s) and [mocks] gives {given} address(es) for them (mock `{name}` has none)",
                    kind.name(),
                ),
            });
        };
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| ReplayError::MockListen {
                mock: (*name).to_owned(),
                addr,
                source,
            })?;
        listeners.push(Some(listener));
    }
    Ok(listeners)
}

/// The environment a service already running must have been started with to replay
/// `config`'s world (pointed at the mocks' `[mocks]` addresses and at a new database): what
/// `run --print-env` prints.
pub(crate) fn running_env(
    config: &ServiceConfig,
    spec: &ServiceSpec,
    running: &RunningService,
) -> Vec<(String, String)> {
    let port = reqwest::Url::parse(&running.url)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(80);
    contract_env(
        config,
        spec,
        port,
        &format!("http://{}", running.receiver),
        true,
    )
}

/// The contract's environment for a service configured as `config`, listening on `port` and
/// exporting to `receiver`.
fn contract_env(
    config: &ServiceConfig,
    spec: &ServiceSpec,
    port: u16,
    receiver: &str,
    tracing: bool,
) -> Vec<(String, String)> {
    let json = |value: serde_json::Value| value.to_string();
    let bugs: Vec<String> = config
        .bugs
        .0
        .iter()
        .filter_map(|bug| serde_json::to_value(bug).ok()?.as_str().map(str::to_owned))
        .collect();
    let exporter = match spec.telemetry {
        Telemetry::Otlp(_) => "otlp",
        Telemetry::Logs => "none",
    };
    let protocol = match spec.telemetry {
        Telemetry::Otlp(protocol) => protocol.as_str(),
        Telemetry::Logs => super::spec::Protocol::Protobuf.as_str(),
    };
    [
        (env::PORT, port.to_string()),
        (env::GOOGLE_CALENDAR_URL, config.google_calendar_url.clone()),
        (env::STRIPE_URL, config.stripe_url.clone()),
        (env::EMAIL_URL, config.email_url.clone()),
        (
            env::WEBHOOK_SUBSCRIBERS,
            json(serde_json::json!(config.webhook_subscribers)),
        ),
        (env::WEBHOOK_SECRET, config.webhook_secret.clone()),
        (env::CRON_API_KEY, config.cron_api_key.clone()),
        (
            env::STRIPE_WEBHOOK_SECRET,
            config.stripe_webhook_secret.clone(),
        ),
        (env::DATABASE_PATH, config.database.display().to_string()),
        (
            env::EVENT_TYPES,
            json(serde_json::json!(config.event_types)),
        ),
        (env::BUGS, bugs.join(",")),
        (env::SEED, config.seed.to_string()),
        (env::GENERATION, config.generation.to_string()),
        (
            env::STORE_LATENCY_US,
            config.store_latency.as_micros().to_string(),
        ),
        (env::OTEL_ENDPOINT, receiver.to_owned()),
        (env::OTEL_TRACES_ENDPOINT, format!("{receiver}/v1/traces")),
        (env::OTEL_PROTOCOL, protocol.to_owned()),
        (env::OTEL_SERVICE_NAME, spec.service_name.clone()),
        (env::OTEL_TRACES_SAMPLER, "always_on".to_owned()),
        (env::OTEL_SDK_DISABLED, (!tracing).to_string()),
        (env::OTEL_TRACES_EXPORTER, exporter.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
