//! The service's HTTP client: propagates the current span's context as `traceparent` and
//! settles each call on the flow's virtual clock (declared latency, virtual timeouts).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::clock::{self};
use crate::contract::headers::{VIRTUAL_FAULT, VIRTUAL_LATENCY_US, VIRTUAL_NOW_US};
use crate::contract::CrashPoint;
use crate::trace::{self, TRACESTATE};

use super::http::TRACEPARENT_NAME;
use super::ServiceError;

// Header names built at compile time: naming a header by `&str` parses and copies it per call.
static TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);
static NOW_NAME: HeaderName = HeaderName::from_static(VIRTUAL_NOW_US);
/// Headers the client and the connection add to every request after ours: `accept` (reqwest's
/// default), `host` and `content-length`.
const ADDED_HEADERS: usize = 3;

/// A guard against a peer that never answers: real time, never part of a replay's outcome.
const REAL_TIME_GUARD: Duration = Duration::from_secs(30);
/// The most of a reply body we read: a peer's error body ends up in a log line, and a hostile
/// or broken peer must not make us hold an unbounded one.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;

/// A peer's answer: its status and (at most [`MAX_REPLY_BYTES`] of) its body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as text, lossily decoded.
    pub body: String,
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
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

/// The service's one HTTP client, shared by every handler.
#[derive(Clone)]
pub(crate) struct Outbound {
    http: reqwest::Client,
    /// Whether calls carry `traceparent`; off only to reproduce that bug.
    propagate: bool,
}

impl Outbound {
    /// Calls through `http` (a [`peer_client`]), propagating the current context if
    /// `propagate`.
    pub(crate) fn new(http: reqwest::Client, propagate: bool) -> Self {
        Outbound { http, propagate }
    }

    /// POSTs `body` (already encoded, with its content type) and advances the flow's clock by
    /// the peer's declared latency, or by `timeout` if the peer is slower than that. A crash
    /// armed `after_send` on the job making the call happens once the call has settled,
    /// whatever its outcome (`crash::reached`).
    pub(crate) async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: String,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let reply = self.send(url, content_type, body, headers, timeout).await;
        super::crash::reached(CrashPoint::AfterSend).await;
        reply
    }

    async fn send(
        &self,
        url: &str,
        content_type: &str,
        body: String,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let context = trace::current_context().filter(|_| self.propagate);
        // Sized for every header the request will carry, so that none of them makes the map
        // grow (and rehash) on the way out.
        let propagated = context
            .as_ref()
            .map_or(0, |c| 1 + usize::from(c.tracestate.is_some()));
        let mut map = HeaderMap::with_capacity(2 + propagated + headers.len() + ADDED_HEADERS);
        let Ok(content_type) = HeaderValue::from_str(content_type) else {
            return Err(CallError::Connect("builder error".to_owned()));
        };
        map.append(CONTENT_TYPE, content_type);
        map.append(
            NOW_NAME.clone(),
            HeaderValue::from(clock::now().as_micros()),
        );
        if let Some(context) = &context {
            // The formatted value moves into the header's shared bytes: one allocation. A
            // value copied from a slice is allocated again when reqwest clones the request's
            // headers (it keeps them for redirects), to make it shareable.
            let traceparent = Bytes::from_owner(context.traceparent());
            if let Ok(value) = HeaderValue::from_maybe_shared(traceparent) {
                map.append(TRACEPARENT_NAME.clone(), value);
            }
            if let Some(state) = &context.tracestate {
                if let Ok(value) = HeaderValue::from_str(state.as_ref()) {
                    map.append(TRACESTATE_NAME.clone(), value);
                }
            }
        }
        for (name, value) in headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    map.append(name, value);
                }
                // What reqwest's builder answers for a header it cannot send.
                _ => return Err(CallError::Connect("builder error".to_owned())),
            }
        }
        let connect_error = |e: reqwest::Error| {
            if e.is_connect() {
                CallError::Refused
            } else {
                CallError::Connect(e.without_url().to_string())
            }
        };
        let mut request = self
            .http
            .post(url)
            .body(body)
            .build()
            .map_err(connect_error)?;
        *request.headers_mut() = map;
        let mut response = self.http.execute(request).await.map_err(connect_error)?;
        let latency = response
            .headers()
            .get(VIRTUAL_LATENCY_US)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_micros)
            .unwrap_or_default();
        if latency > timeout {
            clock::advance(timeout);
            return Err(CallError::Timeout);
        }
        clock::advance(latency);
        if response.headers().contains_key(VIRTUAL_FAULT) {
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

/// The HTTP client a service calls its peers with. Fails if it cannot be built: a default
/// client instead would have no timeout and would retry.
pub(crate) fn peer_client() -> Result<reqwest::Client, ServiceError> {
    client(reqwest::Client::builder())
}

/// `builder` with the service's settings, built; its error if it cannot be built.
fn client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, ServiceError> {
    builder
        .timeout(REAL_TIME_GUARD)
        // Retrying is the job queue's business, where each attempt is a span and a log line;
        // reqwest's own retry of refused HTTP/2 streams would be an attempt no trace shows.
        // With no retry allowed it also stops copying every request in case it must be sent
        // again.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .build()
        .map_err(|e| ServiceError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_default_client() {
        // A user agent that is no header value: reqwest reports it when the client is built.
        let broken = reqwest::Client::builder().user_agent("trace-harness\n");
        assert!(matches!(client(broken), Err(ServiceError::Client(_))));
        assert!(client(reqwest::Client::builder()).is_ok());
    }
}
