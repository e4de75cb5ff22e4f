//! Driving one replay's timeline: booking requests, cron calls, Stripe deliveries and restarts,
//! each at its virtual offset, and what the world shows once the timeline has run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::booking::{BookingService, CrashHook, MemoryDatabase, ServiceConfig, ServiceError};
use crate::contract::headers::{
    AUTHORIZATION, CRASH, REQUEST_ID, STRIPE_SIGNATURE, TRACE_ID, VIRTUAL_LATENCY_US,
    VIRTUAL_NOW_US,
};
use crate::contract::{routes, ArmedCrash};
use crate::mocks::{DeliveryCounts, MockKind, ReceivedRequest};
use crate::outcome::{Crash, PersonalKind, ReplayOutcome, SpanSource, StepKind, StepOutcome};
use crate::scenario::{Action, Scenario};
use crate::trace::{self, Captured, SpanId, SpanRef, TraceContext};

use super::external::{
    bind_fixed_mocks, named_senders, Caused, ExternalService, Received, ServiceSpec,
};
use super::host::Host;
use super::requests::{booking_request, cron_path, owned_header};
use super::stripe::PaymentIntents;
use super::world::World;
use super::{ReplayError, ReplayOptions};

/// What a replay observed before its spans are snapshot: every fact of the outcome but the
/// captured spans, which are complete only once the replay's runtime is gone.
pub(super) struct Observed {
    steps: Vec<StepOutcome>,
    requests: Vec<ReceivedRequest>,
    inbound_contexts: Vec<TraceContext>,
    webhook_jobs: Vec<(String, i64)>,
    reminders: Vec<(String, i64)>,
    payments: Vec<(String, i64)>,
    failed_jobs: Vec<(String, i64, String)>,
    restarts: u32,
    crashes: Vec<Crash>,
    /// In-process: the spans open at each crash, which a process dying there never exports.
    unexported: Vec<SpanId>,
    personal_data: Vec<(String, PersonalKind)>,
    deliveries: Vec<(String, DeliveryCounts)>,
    /// What an external service sent; `None` in-process, where the replay's store holds the
    /// spans.
    pub(super) exported: Option<Received>,
}

impl Observed {
    /// The replay's outcome: these facts and the spans captured meanwhile.
    pub(super) fn with_spans(
        self,
        scenario: &Scenario,
        options: ReplayOptions,
        mut captured: Captured,
    ) -> ReplayOutcome {
        // In-process the store saw every span open; those open at a crash are the ones a
        // process that died there never exports, and are dropped with their lines.
        let lost = &self.unexported;
        if self.exported.is_none() && !lost.is_empty() {
            captured.spans.retain(|s| !lost.contains(&s.span_id));
            (captured.logs).retain(|l| l.span.is_none_or(|s| !lost.contains(&s.span_id)));
            captured.open.retain(|s| !lost.contains(&s.span_id));
        }
        let received = self.exported.unwrap_or(Received {
            captured,
            source: SpanSource::Spans,
            foreign: Vec::new(),
        });
        ReplayOutcome {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            tracing: options.tracing,
            captured: received.captured,
            source: received.source,
            foreign: received.foreign,
            steps: self.steps,
            requests: self.requests,
            inbound_contexts: self.inbound_contexts,
            webhook_jobs: self.webhook_jobs,
            reminders: self.reminders,
            payments: self.payments,
            failed_jobs: self.failed_jobs,
            restarts: self.restarts,
            crashes: self.crashes,
            personal_data: self.personal_data,
            deliveries: self.deliveries,
        }
    }
}

/// The service a timeline drives: the harness's own, in-process, or one it did not write.
enum Running<'h> {
    InProcess(InProcess<'h>),
    /// Boxed: it is several times the size of the in-process handle.
    External(Box<ExternalService>),
}

/// The in-process service and how it tells the runner it reached an armed crash point: its
/// hook sends what was open then, and its task waits until the runner stops the service.
struct InProcess<'h> {
    service: BookingService,
    hook: CrashHook,
    crashed: mpsc::UnboundedReceiver<(ArmedCrash, Vec<SpanRef>)>,
    /// The thread's front and peer client each process starts with.
    host: &'h Host,
}

impl<'h> InProcess<'h> {
    async fn start(config: &ServiceConfig, host: &'h Host) -> Result<Self, ReplayError> {
        let (notify, crashed) = mpsc::unbounded_channel();
        // Read in the dying task itself, before anything else can run: the spans it had open.
        let hook: CrashHook = Arc::new(move |armed| {
            let _ = notify.send((armed, trace::open_spans()));
        });
        let service = Self::launch(config, &hook, host)?;
        Ok(InProcess {
            service,
            hook,
            crashed,
            host,
        })
    }

    fn launch(
        config: &ServiceConfig,
        hook: &CrashHook,
        host: &Host,
    ) -> Result<BookingService, ReplayError> {
        Ok(BookingService::start_behind(
            config.clone(),
            &host.front,
            host.peers.clone(),
            Some(hook.clone()),
        )?)
    }

    /// Stops the process (cleanly, or as it dies at a crash point) and starts a new one on
    /// the same database, for `config.generation`.
    async fn relaunch(self, config: &ServiceConfig, crashed: bool) -> Result<Self, ReplayError> {
        let InProcess {
            service,
            hook,
            crashed: notices,
            host,
        } = self;
        match crashed {
            true => service.crash().await,
            false => service.stop().await,
        }
        // A restarted process draws span ids afresh for its generation, as one the harness
        // starts separately does.
        trace::start_id_generation(config.generation);
        let service = Self::launch(config, &hook, host)?;
        Ok(InProcess {
            service,
            hook,
            crashed: notices,
            host,
        })
    }
}

impl<'h> Running<'h> {
    async fn start(
        config: &ServiceConfig,
        target: Target<'h>,
        tracing: bool,
    ) -> Result<Running<'h>, ReplayError> {
        Ok(match target {
            Target::InProcess(host) => Running::InProcess(InProcess::start(config, host).await?),
            Target::External(spec) => Running::External(Box::new(
                ExternalService::start(spec, config, tracing).await?,
            )),
        })
    }

    fn url(&self) -> String {
        match self {
            Running::InProcess(running) => running.service.url(),
            Running::External(service) => service.url().to_owned(),
        }
    }

    /// A new process on the same database: every piece of in-memory state is gone.
    async fn restart(self, config: &ServiceConfig) -> Result<Running<'h>, ReplayError> {
        match self {
            Running::InProcess(running) => {
                Ok(Running::InProcess(running.relaunch(config, false).await?))
            }
            Running::External(mut service) => {
                service.restart(config).await?;
                Ok(Running::External(service))
            }
        }
    }
}

/// What a replay runs against: the in-process service, started behind the thread's front, or
/// one the harness did not write.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    InProcess(&'a Host),
    External(&'a ServiceSpec),
}

/// Starts the world, runs the timeline against `target`, and stops it.
pub(super) async fn drive(
    scenario: &Scenario,
    target: Target<'_>,
    tracing: bool,
) -> Result<Observed, ReplayError> {
    let external = match target {
        Target::External(spec) => Some(spec),
        Target::InProcess(_) => None,
    };
    if let Some(running) = external.and_then(|spec| spec.running.as_ref()) {
        if let Some(step) = scenario.timeline.iter().find(|s| s.crash.is_some()) {
            return Err(ReplayError::CannotCrash {
                at: crate::clock::Compact(step.at).to_string(),
                url: running.url.clone(),
            });
        }
    }
    // The database outlives restarts: it is dropped after the replay.
    let database = Database::new(external.is_some())?;
    let world = World::of(scenario);
    // A service already running was told fixed addresses for its mocks: they listen there.
    let listeners = match external.and_then(|spec| Some((spec, spec.running.as_ref()?))) {
        Some((spec, running)) => {
            bind_fixed_mocks(spec, running, &scenario.name, &world.mock_kinds())?
        }
        None => Vec::new(),
    };
    let (mocks, mut config) = world.start_on(database.path(), true, listeners).await;
    let mut service = Running::start(&config, target, tracing).await?;
    // A foreign service that hangs must not hang the replay: its answers get the deadline.
    let client = match target {
        Target::External(spec) => reqwest::Client::builder()
            .timeout(spec.deadline)
            .build()
            .map_err(|e| ReplayError::Client(e.to_string()))?,
        Target::InProcess(host) => host.caller.clone(),
    };
    let mut attendees = ChaCha8Rng::seed_from_u64(trace::splitmix64(scenario.seed ^ 0x4154_5445));
    let delivers_stripe_events = scenario
        .timeline
        .iter()
        .any(|s| matches!(s.action, Action::Stripe(_)));
    let mut payment_intents = PaymentIntents::default();
    let mut steps = Vec::new();
    let mut inbound_contexts = Vec::new();
    let mut restarts = 0;
    let mut crashes: Vec<Crash> = Vec::new();
    let mut unexported: Vec<SpanId> = Vec::new();
    let mut failure = None;
    let mut personal_data = Vec::new();
    for step in &scenario.timeline {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let (action, path, body, traceparent) = match &step.action {
            Action::Book(book) => {
                let request = booking_request(book, &mut attendees);
                for attendee in std::iter::once(&request.responses).chain(&request.guests) {
                    personal_data.push((attendee.name.clone(), PersonalKind::Name));
                    personal_data.push((attendee.email.clone(), PersonalKind::Email));
                }
                let body = serde_json::to_string(&request).unwrap_or_default();
                (
                    StepKind::Book,
                    routes::BOOKINGS,
                    body,
                    book.traceparent.clone(),
                )
            }
            Action::Cron(job) => {
                headers.push((AUTHORIZATION, config.cron_api_key.clone()));
                (StepKind::Cron, cron_path(*job), String::new(), None)
            }
            Action::Stripe(stripe_step) => {
                let (event, signature) = payment_intents.delivery(stripe_step, &config, step.at)?;
                headers.push((STRIPE_SIGNATURE, signature));
                (StepKind::Stripe, routes::STRIPE_WEBHOOK, event, None)
            }
            Action::Restart => {
                restarts += 1;
                config.generation += 1;
                service = service.restart(&config).await?;
                continue;
            }
        };
        let at = || crate::clock::Compact(step.at).to_string();
        let mut request = client
            .post(format!("{}{path}", service.url()))
            .header(VIRTUAL_NOW_US, step.at.as_micros().to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(value) = traceparent {
            let context = TraceContext::parse_traceparent(&value).map_err(|reason| {
                ReplayError::Traceparent {
                    action,
                    at: at(),
                    value: value.clone(),
                    reason,
                }
            })?;
            inbound_contexts.push(context);
            request = request.header(trace::TRACEPARENT, value);
        }
        if let Some(armed) = step.crash {
            request = request.header(CRASH, armed.header_value());
        }
        let answer = match &mut service {
            // The hook speaks before the request could answer: the service is dying.
            Running::InProcess(running) if step.crash.is_some() => tokio::select! {
                biased;
                Some((_, open)) = running.crashed.recv() => Answer::Crashed(open),
                reply = exchange(request, step.at, action) => Answer::Replied(reply),
            },
            _ => Answer::Replied(exchange(request, step.at, action).await),
        };
        let lost = match answer {
            Answer::Replied(Ok(outcome)) => {
                steps.push(outcome);
                None
            }
            Answer::Crashed(open) => {
                config.generation += 1;
                service = match service {
                    Running::InProcess(running) => {
                        Running::InProcess(running.relaunch(&config, true).await?)
                    }
                    external => external,
                };
                // What the outcome can name of them, as it could of a foreign service's: the
                // spans whose requests reached a mock.
                let open: Vec<SpanId> = open.iter().map(|s| s.span_id).collect();
                let lost = named_senders(&all_received(&mocks).await, |s| open.contains(&s));
                unexported.extend(open);
                Some(lost)
            }
            Answer::Replied(Err(source)) => {
                let died = match (&mut service, step.crash) {
                    // An external service dies at the crash point by exiting: then it is
                    // restarted as the in-process one is.
                    (Running::External(external), Some(_)) => {
                        let mock_requests = all_received(&mocks).await;
                        let lost_before = lost_spans(&crashes);
                        config.generation += 1;
                        match external
                            .crashed(&config, &mock_requests, &lost_before)
                            .await
                        {
                            Ok(Some(lost)) => Ok(lost),
                            Ok(None) => {
                                config.generation -= 1;
                                Err(None)
                            }
                            Err(e) => Err(Some(e)),
                        }
                    }
                    (Running::External(external), None) => {
                        Err(external.check_alive_after_failure().await.err())
                    }
                    (Running::InProcess(_), _) => Err(None),
                };
                match died {
                    Ok(lost) => Some(lost),
                    Err(died) => {
                        failure = Some(died.unwrap_or(ReplayError::Step {
                            action,
                            at: at(),
                            source,
                        }));
                        break;
                    }
                }
            }
        };
        if let (Some(lost), Some(armed)) = (lost, step.crash) {
            // The exchange is still a step (`step = N` counts it), with no answer.
            steps.push(StepOutcome {
                at: step.at,
                action,
                status: 0,
                request_id: None,
                trace_id: None,
                latency: Duration::ZERO,
                body: String::new(),
            });
            crashes.push(Crash {
                at: step.at,
                step: steps.len() - 1,
                point: armed.point.name(),
                job: armed.job,
                process: config.generation - 1,
                lost,
            });
        }
        if let Running::External(external) = &mut service {
            let mock_requests = all_received(&mocks).await;
            let lost = lost_spans(&crashes);
            let caused = Caused {
                steps: &steps,
                inbound: &inbound_contexts,
                mock_requests: &mock_requests,
                lost: &lost,
            };
            if let Err(e) = external.settle(&caused, &at()).await {
                failure = Some(e);
                break;
            }
        }
        if action == StepKind::Book && delivers_stripe_events {
            payment_intents.keep_new(&mocks).await;
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
    // The mocks stop before the service, so that they, the servers, close the connections the
    // service keeps to them: the closing side's socket waits a minute in TIME_WAIT, and a
    // client's would hold one of the ephemeral ports every replay's listeners bind from (ten
    // thousand replays in a minute would run out of them).
    drop(mocks);
    let (webhook_jobs, reminders, payments, failed_jobs, exported) = match service {
        Running::InProcess(InProcess { service, .. }) => {
            let facts = (
                service.webhook_job_counts().unwrap_or_default(),
                service.reminder_counts().unwrap_or_default(),
                service.payment_counts().unwrap_or_default(),
                service.failed_jobs().unwrap_or_default(),
            );
            service.stop().await;
            (facts.0, facts.1, facts.2, facts.3, None)
        }
        // A foreign service's database is its own: its job states are not read.
        Running::External(service) => {
            let received = service.finish(&steps, &inbound_contexts).await;
            let received = match received {
                Ok(received) => Some(received),
                Err(e) => {
                    failure.get_or_insert(e);
                    None
                }
            };
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), received)
        }
    };
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(Observed {
        steps,
        requests,
        inbound_contexts,
        webhook_jobs,
        reminders,
        payments,
        failed_jobs,
        restarts,
        crashes,
        unexported,
        personal_data,
        deliveries,
        exported,
    })
}

/// A replay's database: in memory for the in-process service, a file in a temporary directory
/// for one the harness did not write (a process of its own opens it).
enum Database {
    Memory(MemoryDatabase),
    File(tempfile::TempDir),
}

impl Database {
    fn new(external: bool) -> Result<Database, ReplayError> {
        Ok(match external {
            false => Database::Memory(MemoryDatabase::new().map_err(ServiceError::from)?),
            true => Database::File(tempfile::tempdir().map_err(ReplayError::TempDir)?),
        })
    }

    fn path(&self) -> PathBuf {
        match self {
            Database::Memory(memory) => memory.path().to_owned(),
            Database::File(dir) => dir.path().join("booking.sqlite3"),
        }
    }
}

/// How a step's request ended: answered (or failed to be), or the service died at the crash
/// point the step armed, with these spans open.
enum Answer {
    Replied(Result<StepOutcome, reqwest::Error>),
    Crashed(Vec<SpanRef>),
}

/// Every request every mock has received so far, mock by mock.
async fn all_received(mocks: &[crate::mocks::MockService]) -> Vec<ReceivedRequest> {
    let mut requests = Vec::new();
    for mock in mocks {
        requests.extend(mock.received().await);
    }
    requests
}

/// The spans every crash so far took with it.
fn lost_spans(crashes: &[Crash]) -> Vec<SpanId> {
    (crashes.iter())
        .flat_map(|c| c.lost.iter().map(|(_, span)| *span))
        .collect()
}

/// Sends one step's request and reads the whole answer.
async fn exchange(
    request: reqwest::RequestBuilder,
    at: Duration,
    action: StepKind,
) -> Result<StepOutcome, reqwest::Error> {
    let response = request.send().await?;
    let header = |name| owned_header(response.headers(), name);
    let request_id = header(REQUEST_ID);
    let trace_id = header(TRACE_ID);
    let latency = header(VIRTUAL_LATENCY_US)
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
