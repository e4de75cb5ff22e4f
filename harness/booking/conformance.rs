//! The W3C Trace Context test-service endpoint, `POST /test`, and the `serve` runtime that
//! runs the booking service for manual use: the only service that mounts `/test`.
//!
//! `/test` is the contract the W3C's conformance suite drives: the body is a JSON array of
//! `{"url": …, "arguments": …}`; for each element, in order, the service POSTs `arguments` as
//! a JSON body to `url`, propagating the incoming context as a child with a new parent id for
//! every call, and answers `200` once all calls are done. The calls go through the service's
//! own outbound client, so they propagate exactly as a booking's calls do.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use tracing::{info_span, Instrument};

use super::http::Inbound;
use super::{App, BookingService, ServiceConfig, ServiceError};
use crate::trace::{self, CaptureSubscriber, IdGenerator, Relation, TraceStore};

/// Most calls one `/test` request may ask for; the suite asks for at most a handful.
pub(crate) const MAX_TEST_CALLS: usize = 32;
/// Virtual timeout of each call. (The outbound client also has a real-time guard.)
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One element of a `/test` body.
#[derive(Debug, Deserialize)]
pub(crate) struct TestCall {
    /// Where to POST.
    pub url: String,
    /// The JSON body to POST there.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// `POST /test`: spans `conformance_test` (continuing the inbound context) and one
/// `conformance_call` child per call, so each call carries its own parent id.
pub(super) async fn run_test(
    State(app): State<Arc<App>>,
    Extension(inbound): Extension<Inbound>,
    body: Bytes,
) -> Response {
    // Read whatever the content type: the suite's client is the only caller that matters.
    let calls: Vec<TestCall> = match serde_json::from_slice(&body) {
        Ok(calls) => calls,
        Err(e) => return bad_request(format!("expected a JSON array of {{url, arguments}}: {e}")),
    };
    if calls.len() > MAX_TEST_CALLS {
        return bad_request(format!(
            "{} calls asked for; at most {MAX_TEST_CALLS} per request",
            calls.len()
        ));
    }
    let span = info_span!("conformance_test", calls = calls.len());
    if let Some(parent) = &inbound.0 {
        trace::continue_from(&span, parent, Relation::ChildOf);
    }
    async {
        let mut results = Vec::with_capacity(calls.len());
        for call in &calls {
            let reply = app
                .outbound
                .post(
                    &call.url,
                    "application/json",
                    call.arguments.to_string(),
                    &[],
                    CALL_TIMEOUT,
                )
                .instrument(info_span!("conformance_call"))
                .await;
            results.push(match reply {
                Ok(reply) => serde_json::json!({ "url": call.url, "status": reply.status }),
                Err(e) => serde_json::json!({ "url": call.url, "error": e.to_string() }),
            });
        }
        (StatusCode::OK, Json(results)).into_response()
    }
    .instrument(span)
    .await
}

fn bad_request(message: String) -> Response {
    let body = serde_json::json!({ "message": message });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The tokio runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The temporary database directory could not be created.
    #[error("cannot create the database directory: {0}")]
    TempDir(std::io::Error),
    /// The service could not start on `addr`.
    #[error("cannot serve on {addr}: {source}")]
    Service {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the service did not start.
        source: ServiceError,
    },
    /// SIGINT (Ctrl-C) and SIGTERM could not be listened for, so `serve` could not stop
    /// cleanly.
    #[error("cannot listen for SIGINT and SIGTERM: {0}")]
    Signal(std::io::Error),
}

/// The configuration `serve` runs the service with: `database`, ids seeded with `seed`, and
/// the W3C test endpoint (`POST /test`) mounted, which no replay's service has.
pub fn serve_config(database: PathBuf, seed: u64) -> ServiceConfig {
    let mut config = ServiceConfig::new(database, seed);
    config.conformance_endpoint = true;
    config
}

/// Runs the booking service on `addr` with tracing on (random ids) until SIGINT (Ctrl-C) or
/// SIGTERM, then stops it (requests in flight finish or are abandoned, unfinished jobs given
/// back) and removes its temporary database. `configure` adjusts [`serve_config`] (seeded from
/// the OS: `serve` is not a replay, and each run's request ids differ); `on_listening` receives
/// the service's base URL once it accepts connections.
pub fn serve(
    addr: SocketAddr,
    configure: impl FnOnce(ServiceConfig) -> ServiceConfig,
    on_listening: impl FnOnce(&str),
) -> Result<(), ServeError> {
    let database = tempfile::tempdir().map_err(ServeError::TempDir)?;
    let config = configure(serve_config(
        database.path().join("booking.sqlite3"),
        rand::random(),
    ));
    // Spans must be captured for contexts to exist; the store is the service's only memory of
    // them. It grows with traffic: `serve` is for manual use and conformance runs.
    let dispatch = tracing::Dispatch::new(CaptureSubscriber::new(
        TraceStore::new(),
        IdGenerator::Random,
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let served = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            // Listened for before the port is, so a signal sent once it accepts connections
            // is never the default action's (which would leave the database behind).
            let stop = stop_signal().map_err(ServeError::Signal)?;
            let service = BookingService::start_on(config, addr)
                .await
                .map_err(|source| ServeError::Service { addr, source })?;
            on_listening(&service.url());
            stop.await;
            service.stop().await;
            Ok(())
        })
    });
    // The store's connection is closed with the service; now its files can go.
    drop(runtime);
    drop(database);
    served
}

/// Completes at the first SIGTERM or SIGINT: how a service the harness (or a user) runs is
/// asked to stop. Call it inside the runtime, before the port accepts connections.
#[cfg(unix)]
pub(crate) fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes at Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
pub(crate) fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
