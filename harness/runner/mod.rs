//! One replay, wired: start the world (the mocks and the booking service), drive the timeline
//! on virtual time, and produce the [`ReplayOutcome`]. Formats nothing and judges nothing.
//!
//! Each replay runs on its own thread with a current-thread tokio runtime and its own
//! `tracing` dispatcher, so the service's spawned tasks all report to the replay's store and
//! replays never share state.

pub mod external;
mod host;
pub mod load;
mod ordered;
mod requests;
mod stripe;
mod timeline;
mod world;

use std::ops::ControlFlow;

use tracing_subscriber::filter::Targets;

use crate::booking::ServiceError;
/// The outcome types moved to [`crate::outcome`]; these paths keep working meanwhile.
pub use crate::outcome::{ReplayOutcome, StepKind, StepOutcome};
use crate::scenario::Scenario;
use crate::trace::{self, CaptureSubscriber, IdGenerator, TraceStore};
pub use external::ServiceSpec;
pub use ordered::{run_isolated, run_streamed, WINDOW_PER_JOB};

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

/// Why a replay could not run to its end. A replay that ran but broke an invariant is not an
/// error: that is the verdict's business.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The replay's tokio runtime could not be built.
    #[error("cannot start the replay runtime: {0}")]
    Runtime(std::io::Error),
    /// The temporary directory for the service's database could not be made.
    #[error("cannot create the replay's database directory: {0}")]
    TempDir(std::io::Error),
    /// The booking service did not start (or restart).
    #[error("the booking service did not start: {0}")]
    Service(#[from] ServiceError),
    /// A step's request got no answer at all.
    #[error("the {action} step at {at} could not reach the booking service: {source}")]
    Step {
        /// The step's kind.
        action: StepKind,
        /// The step's offset, in scenario notation.
        at: String,
        /// What the HTTP client said.
        source: reqwest::Error,
    },
    /// A Stripe step names a PaymentIntent that Stripe never created.
    #[error("the stripe step at {at} names PaymentIntent #{n}, but Stripe received {created} creation request(s)")]
    NoPaymentIntent {
        /// The step's offset, in scenario notation.
        at: String,
        /// The PaymentIntent's number, counting from 1.
        n: usize,
        /// How many Stripe created.
        created: usize,
    },
    /// A bug, not an input: the replay panicked. Other replays are unaffected.
    #[error("the replay panicked: {0}")]
    Panicked(String),
    /// An external service did not start, or exited while the replay needed it.
    #[error(transparent)]
    Process(#[from] external::ProcessError),
    /// The service file's values do not expand (an unset `${VAR}`).
    #[error("{}: {reason}", path.display())]
    ServiceFile {
        /// The `service.toml`.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No free port could be found for the external service.
    #[error("cannot find a free loopback port for the service: {0}")]
    Port(std::io::Error),
    /// The replay's HTTP client could not be built.
    #[error("cannot build the replay's HTTP client: {0}")]
    Client(String),
    /// A service already running (`url`) does not accept connections.
    #[error("no service answers at {url} ({reason}): start it first, with the environment `trace-harness run … --service FILE --print-env` prints")]
    NotRunning {
        /// Its URL.
        url: String,
        /// What connecting said.
        reason: String,
    },
    /// A `restart = true` step against a service the harness did not start.
    #[error("a restart step needs a service the harness starts; the one at {url} is already running (use `command = […]`)")]
    CannotRestart {
        /// Its URL.
        url: String,
    },
    /// A cron step with `crash = …` against a service the harness did not start: it would die
    /// and never come back. Refused before any step runs.
    #[error("the crash at {at} needs a service the harness starts, to start it again; the one at {url} is already running (use `command = […]`)")]
    CannotCrash {
        /// The crash step's offset, in scenario notation.
        at: String,
        /// Its URL.
        url: String,
    },
    /// A mock could not listen on the fixed address a running service was told.
    #[error("mock `{mock}` cannot listen on {addr}: {source}")]
    MockListen {
        /// The mock's name.
        mock: String,
        /// The address, from `[mocks]`.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The OTLP receiver could not listen.
    #[error("the OTLP receiver cannot listen on {addr}: {source}")]
    Receiver {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// The service sent telemetry the receiver could not read.
    #[error("the service sent malformed telemetry: {0}")]
    MalformedTelemetry(String),
    /// A step's telemetry did not all arrive before the deadline.
    #[error("the telemetry of the step at {at} was still incomplete after {waited:?}; missing:{}", missing.iter().map(|m| format!("\n  - {m}")).collect::<String>())]
    Incomplete {
        /// The step's offset, in scenario notation.
        at: String,
        /// How long the harness waited.
        waited: std::time::Duration,
        /// What had not arrived, one line each.
        missing: Vec<String>,
    },
    /// A step's `traceparent` is not a valid header value.
    #[error("the {action} step at {at} carried an invalid traceparent `{value}`: {reason}")]
    Traceparent {
        /// The step's kind.
        action: StepKind,
        /// The step's offset, in scenario notation.
        at: String,
        /// The value as the scenario gives it.
        value: String,
        /// Why it does not parse.
        reason: trace::TraceparentError,
    },
}

impl ReplayError {
    /// Whether the error is the input's fault (exit 2): a service that cannot be started or
    /// never becomes ready, or a service file that does not expand. A service that dies or
    /// misbehaves mid-replay fails the replay instead (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReplayError::ServiceFile { .. }
                | ReplayError::Receiver { .. }
                | ReplayError::NotRunning { .. }
                | ReplayError::CannotRestart { .. }
                | ReplayError::CannotCrash { .. }
                | ReplayError::MockListen { .. }
                | ReplayError::Process(
                    external::ProcessError::Spawn { .. }
                        | external::ProcessError::NotReady { .. }
                        | external::ProcessError::Exited {
                            when: external::BEFORE_READY,
                            ..
                        }
                )
        )
    }
}

/// What one replay (or load run) runs inside: its own store, its own dispatcher feeding that
/// store, and a current-thread runtime, so every task the service spawns reports to this store.
pub(crate) struct Sandbox {
    /// What the dispatcher captures into.
    pub store: std::sync::Arc<TraceStore>,
    /// The capture subscriber, to install while the sandbox runs.
    pub dispatch: tracing::Dispatch,
    /// The current-thread runtime the service and its tasks run on.
    pub runtime: tokio::runtime::Runtime,
}

impl Sandbox {
    /// A sandbox whose ids are drawn from `seed`, with every span disabled unless `tracing`.
    pub(crate) fn new(seed: u64, tracing: bool) -> Result<Self, ReplayError> {
        let (store, dispatch) = capture(seed, tracing);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplayError::Runtime)?;
        Ok(Sandbox {
            store,
            dispatch,
            runtime,
        })
    }
}

/// A new store and the dispatcher that captures into it, ids drawn from `seed`, every span
/// disabled unless `tracing`.
fn capture(seed: u64, tracing: bool) -> (std::sync::Arc<TraceStore>, tracing::Dispatch) {
    let store = TraceStore::new();
    let capture = if tracing {
        CaptureSubscriber::new(store.clone(), IdGenerator::seeded(seed))
    } else {
        CaptureSubscriber::without_tracing(store.clone())
    };
    let subscriber =
        capture.with_targets(Targets::new().with_target("trace_harness", tracing::Level::TRACE));
    (store, tracing::Dispatch::new(subscriber))
}

/// How many replays run at once when a run is not told: two per core. A replay of the
/// in-process service is idle while its mocks answer (each wiremock server runs on a thread of
/// its own); a second replay per core computes meanwhile. Measured against one per core and
/// more in `benches/throughput.sh` (BENCHMARKS.md §7, benches/NOTES.md item 19).
pub fn default_jobs() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Replays `scenario` on the calling thread, against the in-process service.
pub fn replay(scenario: &Scenario, options: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    replay_against(scenario, options, None)
}

/// Replays `scenario` on the calling thread, against `external` (started per replay as its
/// `service.toml` says) or, when `None`, the in-process service.
pub fn replay_against(
    scenario: &Scenario,
    options: ReplayOptions,
    external: Option<&ServiceSpec>,
) -> Result<ReplayOutcome, ReplayError> {
    let Some(spec) = external else {
        // In-process: on this thread's runtime, behind its front (`host.rs`). Every task of
        // the replay has ended when `drive` returns (its service stopped and drained, its
        // mocks dropped), so the store holds every span there is.
        let (store, dispatch) = capture(scenario.seed, options.tracing);
        return host::Host::with(|host| {
            let observed = tracing::dispatcher::with_default(&dispatch, || {
                host.runtime.block_on(timeline::drive(
                    scenario,
                    timeline::Target::InProcess(host),
                    options.tracing,
                ))
            })?;
            Ok(observed.with_spans(scenario, options, store.snapshot()))
        })?;
    };
    let Sandbox {
        store,
        dispatch,
        runtime,
    } = Sandbox::new(scenario.seed, options.tracing)?;
    let observed = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(timeline::drive(
            scenario,
            timeline::Target::External(spec),
            options.tracing,
        ))
    })?;
    // Tasks the runtime still holds (an external service's output readers) close their spans
    // as it goes: snapshot after.
    drop(runtime);
    Ok(observed.with_spans(scenario, options, store.snapshot()))
}

/// The environment a service already running (`spec` has a `url`) must be started with to
/// replay `scenario`: the contract's variables (§3 of CONTRACT.md) with the fixed addresses of
/// `spec`'s receiver and mocks, and `database` as its new database. `None` for a service the
/// harness starts, which gets its own per replay.
pub fn running_service_env(
    scenario: &Scenario,
    spec: &ServiceSpec,
    database: std::path::PathBuf,
) -> Option<Vec<(String, String)>> {
    let running = spec.running.as_ref()?;
    let world = world::World::of(scenario);
    let kinds: Vec<_> = world
        .mock_kinds()
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    let urls = kinds
        .iter()
        .zip(running.mock_addresses(&kinds))
        .filter_map(|(kind, addr)| Some((*kind, format!("http://{}", addr?))));
    let config = world.pointed_at(database, urls);
    Some(external::running_env(&config, spec, running))
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

/// [`replay_all`] against `external`, or in-process when `None`. A service already running
/// (`url`) has one set of addresses, so its replays run one at a time whatever `jobs` says.
pub fn replay_all_against(
    scenarios: &[Scenario],
    options: ReplayOptions,
    external: Option<&ServiceSpec>,
    jobs: usize,
    on_done: impl Fn(&Scenario, &Result<ReplayOutcome, ReplayError>) + Sync,
) -> Vec<Result<ReplayOutcome, ReplayError>> {
    run_isolated(
        scenarios,
        jobs_against(external, jobs),
        |s| replay_against(s, options, external),
        on_done,
    )
}

/// [`replay_all_against`] without holding the run: scenario `i` of `0..count` is made by
/// `make(i)` on a worker when its turn comes, and handed with its result to `consume` in index
/// order, as [`run_streamed`] does. Returns [`ControlFlow::Break`] when `consume` stopped early.
pub fn replay_streamed_against(
    count: usize,
    make: impl Fn(usize) -> Scenario + Sync,
    options: ReplayOptions,
    external: Option<&ServiceSpec>,
    jobs: usize,
    on_done: impl Fn(&Scenario, &Result<ReplayOutcome, ReplayError>) + Sync,
    consume: impl FnMut(usize, Scenario, Result<ReplayOutcome, ReplayError>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    run_streamed(
        count,
        jobs_against(external, jobs),
        make,
        |s| replay_against(s, options, external),
        on_done,
        consume,
    )
}

/// Replays at once against `external`: one for a service already running, `jobs` otherwise.
fn jobs_against(external: Option<&ServiceSpec>, jobs: usize) -> usize {
    match external.and_then(|spec| spec.running.as_ref()) {
        Some(_) => 1,
        None => jobs,
    }
}
