//! The OTLP/HTTP endpoint: `POST /v1/traces` on axum, feeding an [`Inbox`]. Anything else is
//! 404, another method on the path 405; a body is read up to the inbox's bound and no further.

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

use super::decode::{encode_response, DecodeError, Encoding};
use super::inbox::Inbox;

/// Where OTLP/HTTP receivers listen by default: loopback, OTLP/HTTP's port.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4318));
/// The traces path of OTLP/HTTP.
const TRACES_PATH: &str = "/v1/traces";

/// A running OTLP/HTTP trace receiver.
pub struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `addr` (port 0 picks one), on the caller's tokio runtime, storing what
    /// arrives in `inbox`. Give a loopback address unless other hosts must reach it.
    pub async fn start(addr: SocketAddr, inbox: Arc<Inbox>) -> io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .route(TRACES_PATH, post(export))
            .with_state(Arc::clone(&inbox));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Receiver {
            addr,
            inbox,
            shutdown: Some(shutdown),
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:<port>`: `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its traces URL, `…/v1/traces`: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.url())
    }

    /// The inbox it fills.
    pub fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// Stops listening, lets requests in flight finish, and waits until it has.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}

/// `POST /v1/traces`.
async fn export(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Body) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = text(header::CONTENT_TYPE);
    let content_encoding = text(header::CONTENT_ENCODING);
    let body = match read_body(&headers, body, inbox.limits().max_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            inbox.record_malformed(&error);
            return refused(&error, content_type);
        }
    };
    match inbox.receive(&body, content_type, content_encoding) {
        Ok((ingested, encoding)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            encode_response(&ingested.response(), encoding),
        )
            .into_response(),
        Err(error) => refused(&error, content_type),
    }
}

/// The body, refused past `limit` bytes: by its `Content-Length` before reading, otherwise
/// as soon as the bytes read exceed it.
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(DecodeError::BodyTooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| DecodeError::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(DecodeError::BodyTooLarge { limit });
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

fn refused(error: &DecodeError, content_type: Option<&str>) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let (content_type, body) = error.body(Encoding::of_content_type(content_type).ok());
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
