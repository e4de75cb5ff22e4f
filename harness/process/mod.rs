//! The booking service as a process the harness starts (`trace-harness serve --contract`):
//! configured by the contract environment exactly as a replay configures its in-process
//! service, listening on `127.0.0.1:PORT`, exporting each span over OTLP/HTTP as it closes
//! (or writing its log lines, when nothing is exported), until SIGTERM or SIGINT, when it
//! stops serving, exports what is left and returns.
//!
//! With `TRACE_HARNESS_SEED` its ids are a replay's: the same capture subscriber, seeded the
//! same way for the same generation, over the same service, so the trace, span and request
//! ids and booking uids of a scenario driven against it are those of its in-process replay.

mod env;
mod export;

use std::net::SocketAddr;
use std::sync::Arc;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

pub use env::{ContractEnv, EnvError, OtlpTarget, Telemetry};
pub use export::Exported;
use export::{Flusher, LiveExport, Sink};

use crate::booking::{conformance, BookingService, CrashHook, ServiceError};
use crate::contract::ArmedCrash;
use crate::report::otlp_http::{ExportError, OtlpExporter};
use crate::trace::{CaptureSubscriber, IdGenerator, TraceStore};

/// Why the service process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The service's runtime or the export thread could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The OTLP endpoint is unusable.
    #[error(transparent)]
    Endpoint(ExportError),
    /// The service could not start on `addr`.
    #[error("cannot serve on {addr}: {source}")]
    Service {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the service did not start.
        source: ServiceError,
    },
    /// SIGTERM or SIGINT could not be listened for, so the process could not stop cleanly.
    #[error("cannot listen for SIGTERM and SIGINT: {0}")]
    Signal(std::io::Error),
    /// The export thread panicked; what it had not sent is lost.
    #[error("the export thread panicked: {0}")]
    ExportPanicked(String),
}

/// Runs the service `contract` describes until SIGTERM or SIGINT, then exports what is left
/// and returns what was exported.
///
/// `on_listening` gets the base URL once the port accepts connections (before any request is
/// served). When spans are not exported ([`Telemetry::LogsOnly`], [`Telemetry::Disabled`]),
/// every log line goes to `log_lines` as it is written, in the seed's format. `on_export_error`
/// hears of each failed export request, on the export thread, as it fails.
pub fn serve_contract<W>(
    contract: ContractEnv,
    log_lines: W,
    on_listening: impl FnOnce(&str),
    on_export_error: impl Fn(&ExportError) + Send + 'static,
) -> Result<Exported, ProcessError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let store = TraceStore::new();
    let tracing_on = contract.telemetry != Telemetry::Disabled;
    let capture = match (tracing_on, contract.seed) {
        (false, _) => CaptureSubscriber::without_tracing(store.clone()),
        (true, Some(seed)) => CaptureSubscriber::new(
            store.clone(),
            IdGenerator::seeded_generation(seed, contract.service.generation),
        ),
        (true, None) => CaptureSubscriber::new(store.clone(), IdGenerator::Random),
    };
    // What a replay's sandbox captures: the service's own spans and lines, no dependency's,
    // which would also draw ids.
    let capture =
        capture.with_targets(Targets::new().with_target("trace_harness", tracing::Level::TRACE));
    let sink = match &contract.telemetry {
        Telemetry::Otlp(target) => Some(Sink {
            exporter: OtlpExporter::to_traces_url(&target.url, target.protocol, false)
                .map_err(ProcessError::Endpoint)?,
            service_name: target.service_name.clone(),
        }),
        Telemetry::LogsOnly | Telemetry::Disabled => None,
    };
    let capture = match sink {
        Some(_) => capture,
        None => capture.with_log_writer(log_lines),
    };
    let (export, doorbell) = LiveExport::start(store, sink, !tracing_on, on_export_error)
        .map_err(ProcessError::Runtime)?;
    let crash_hook = die_at_crash_points(export.flusher());
    let dispatch = tracing::Dispatch::new(capture.with(doorbell));
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProcessError::Runtime)
        .and_then(|runtime| {
            let addr = SocketAddr::from(([127, 0, 0, 1], contract.port));
            let served = tracing::dispatcher::with_default(&dispatch, || {
                runtime.block_on(serve_until_signal(contract, addr, crash_hook, on_listening))
            });
            // Tasks the runtime still holds close their spans as it goes: finish after.
            drop(runtime);
            served
        });
    let exported = export.finish().map_err(ProcessError::ExportPanicked);
    served.and(exported)
}

/// The exit status of a process that died at a crash point a cron call armed.
pub const CRASH_EXIT_STATUS: i32 = 70;

/// How the process dies at a crash point (`x-virtual-crash`): what has closed is exported (so
/// what a replay judges does not depend on how far the exporter had got), what is still open
/// is not, and the process exits at once with [`CRASH_EXIT_STATUS`], answering nothing,
/// committing nothing more and giving no lease back.
fn die_at_crash_points(export: Flusher) -> CrashHook {
    Arc::new(move |armed: ArmedCrash| {
        export.flush();
        eprintln!(
            "crashed at `{}` of the cron call's job {}, as its {} header asked",
            armed.point.name(),
            armed.job,
            crate::contract::headers::CRASH
        );
        std::process::exit(CRASH_EXIT_STATUS);
    })
}

async fn serve_until_signal(
    contract: ContractEnv,
    addr: SocketAddr,
    crash_hook: CrashHook,
    on_listening: impl FnOnce(&str),
) -> Result<(), ProcessError> {
    // Listened for before the port is, so a signal sent once it accepts connections is never
    // the default action's.
    let stop = conformance::stop_signal().map_err(ProcessError::Signal)?;
    let service = BookingService::start_crashable(contract.service, addr, Some(crash_hook))
        .await
        .map_err(|source| ProcessError::Service { addr, source })?;
    on_listening(&service.url());
    stop.await;
    // In-flight requests finish; their spans close before the last export.
    service.stop().await;
    Ok(())
}
