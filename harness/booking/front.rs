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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::booking::{peer_client, BookingService, MemoryDatabase, ServiceConfig};
    use crate::contract::{headers, routes};

    /// Sends a cron call without its key on `stream`, kept alive, and reads the whole answer:
    /// its status and its request id.
    async fn call(stream: &mut TcpStream) -> (u16, Option<String>) {
        let request = format!(
            "POST {} HTTP/1.1\r\nhost: front\r\ncontent-length: 0\r\n\r\n",
            routes::WEBHOOK_CRON
        );
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(n > 0, "the front closed the connection");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let header = |name: &str| {
                head.lines().find_map(|line| {
                    let (n, v) = line.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap_or(0));
            if body.len() < length {
                continue;
            }
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
            return (status.unwrap_or(0), header(headers::REQUEST_ID));
        }
    }

    #[test]
    fn a_connection_outlives_the_services_behind_its_front() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async {
            let front = Front::bind().await.unwrap_or_else(|e| panic!("{e}"));
            let database = MemoryDatabase::new().unwrap_or_else(|e| panic!("{e}"));
            let peers = peer_client().unwrap_or_else(|e| panic!("{e}"));
            let mut config = ServiceConfig::new(database.path().to_owned(), 7);
            let start = |config: &ServiceConfig| {
                BookingService::start_behind(config.clone(), &front, peers.clone(), None)
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            let mut stream = TcpStream::connect(front.addr())
                .await
                .unwrap_or_else(|e| panic!("{e}"));

            let first = start(&config);
            assert_eq!(first.url(), format!("http://{}", front.addr()));
            let (status, first_id) = call(&mut stream).await;
            assert_eq!(
                status, 401,
                "the service answers a cron call without its key"
            );
            assert!(first_id.is_some());
            first.stop().await;

            // Between two services: the front answers, and keeps the connection.
            assert_eq!(call(&mut stream).await, (503, None));

            // A restart: a new process, drawing other request ids, on the same connection.
            config.generation = 1;
            let second = start(&config);
            let (status, second_id) = call(&mut stream).await;
            assert_eq!(status, 401);
            assert!(second_id.is_some() && second_id != first_id);
            second.stop().await;
        });
    }
}
