//! A listening port, and the connections callers keep to it, that outlive the services behind
//! them: a runner that starts one service after another on one thread (replay after replay,
//! restart after restart) starts each behind the same front instead of on a port of its own.
//!
//! Why: a service on a port of its own binds a new listener and, when it stops, closes every
//! connection its callers kept; each closed connection waits a minute in TIME_WAIT. Ten
//! thousand replays a minute left tens of thousands of such sockets, and every `bind` and
//! `connect` searched the port range past them. Behind a front a replay binds nothing and
//! closes nothing: its caller's connection from the replay before answers it.
//!
//! To a caller the front is the service: requests go to whichever service is behind it when
//! they arrive, with nothing in between but a lookup. A service stopping leaves first (later
//! requests get 503 until the next one starts), then waits for its own requests in flight
//! (`BookingService::stop`), so a stop means what it meant on a port of its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use tower::ServiceExt;

/// The routes of the service behind a front, or none between two services.
pub(super) type Behind = Arc<Mutex<Option<Router>>>;

/// A loopback listener served on the current runtime, for as long as that runtime runs.
pub(crate) struct Front {
    addr: SocketAddr,
    behind: Behind,
}

impl Front {
    /// Binds an ephemeral loopback port and serves it on the current runtime, with no service
    /// behind it yet.
    pub(crate) async fn bind() -> std::io::Result<Front> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let behind: Behind = Arc::default();
        let current = behind.clone();
        let front = Router::new().fallback_service(tower::service_fn(move |request: Request| {
            // Cloned out of the lock: the request runs without holding it.
            let router = current.lock().clone();
            async move {
                Ok::<Response, Infallible>(match router {
                    Some(router) => router.oneshot(request).await.unwrap_or_else(|e| match e {}),
                    None => nobody_behind(),
                })
            }
        }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, front).await;
        });
        Ok(Front { addr, behind })
    }

    /// The address callers reach the front, and whatever service is behind it, at.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn behind(&self) -> &Behind {
        &self.behind
    }
}

/// What a request that reaches the front between two services is answered: `503`.
fn nobody_behind() -> Response {
    let body = serde_json::json!({ "message": "No booking service is running" });
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(body),
    )
        .into_response()
}
