//! The service's HTTP client: propagates the current span's context as `traceparent` and
//! settles each call on the flow's virtual clock (declared latency, virtual timeouts).

use std::time::Duration;

use crate::clock::{self, FAULT_HEADER, LATENCY_HEADER, NOW_HEADER};
use crate::trace::{self, TRACEPARENT, TRACESTATE};

/// A guard against a peer that never answers: real time, never part of a replay's outcome.
const REAL_TIME_GUARD: Duration = Duration::from_secs(30);
/// The most of a reply body we read: a peer's error body ends up in a log line, and a hostile
/// or broken peer must not make us hold an unbounded one.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The peer's declared latency exceeded our timeout: we gave up at `start + timeout`.
    #[error("Connection timeout")]
    Timeout,
    /// The peer refused the connection.
    #[error("Connection refused")]
    Refused,
    /// Any other transport failure.
    #[error("Connection failed: {0}")]
    Connect(String),
}

#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    /// Whether calls carry `traceparent`; off only to reproduce that bug.
    propagate: bool,
}

impl Outbound {
    pub fn new(propagate: bool) -> Self {
        Outbound {
            propagate,
            http: reqwest::Client::builder()
                .timeout(REAL_TIME_GUARD)
                .build()
                .unwrap_or_default(),
        }
    }

    /// POSTs `body` (already encoded, with its content type) and advances the flow's clock by
    /// the peer's declared latency, or by `timeout` if the peer is slower than that.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: String,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(NOW_HEADER, clock::now().as_micros().to_string())
            .body(body);
        if let Some(context) = trace::current_context().filter(|_| self.propagate) {
            request = request.header(TRACEPARENT, context.traceparent().as_str());
            if let Some(state) = &context.tracestate {
                request = request.header(TRACESTATE, state.as_ref());
            }
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_connect() {
                CallError::Refused
            } else {
                CallError::Connect(e.without_url().to_string())
            }
        })?;
        let latency = response
            .headers()
            .get(LATENCY_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_micros)
            .unwrap_or_default();
        if latency > timeout {
            clock::advance(timeout);
            return Err(CallError::Timeout);
        }
        clock::advance(latency);
        if response.headers().contains_key(FAULT_HEADER) {
            return Err(CallError::Refused);
        }
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CallError::Connect(e.without_url().to_string()))?
        {
            let room = MAX_REPLY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_REPLY_BYTES {
                break;
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        Ok(Reply { status, body })
    }
}
