//! The service's defences against hostile requests: bounds on request heads and bodies, the
//! inbound trace context read from possibly repeated or oversized headers, and a panic in a handler
//! answered as a 500 instead of a dropped connection.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::http::client_error;
use crate::trace::{tracestate, TraceContext, TRACEPARENT, TRACESTATE};

/// The largest request body any route reads; a larger one is answered `413`. A booking is a
/// few hundred bytes and a `/test` call list a few kilobytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Request headers beyond this many bytes (names and values) are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The `431` for a request whose header fields (names and values) exceed
/// [`MAX_HEADER_BYTES`], answered before any handler reads a header; `None` for any other.
pub(super) fn oversized_head(headers: &HeaderMap) -> Option<Response> {
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes > MAX_HEADER_BYTES).then(|| {
        client_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "Request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        )
    })
}

/// The trace context a request carries, read the way a vendor must:
/// - header names in any case (the `HeaderMap` already folds them);
/// - more than one `traceparent` field is invalid (it names two parents), so the trace
///   restarts and `tracestate` goes with it;
/// - several `tracestate` fields are combined in order;
/// - bytes that are not text become U+FFFD, which neither grammar admits, so such a header is
///   rejected by the codec like any other malformed one.
pub(crate) fn inbound_context(headers: &HeaderMap) -> Option<TraceContext> {
    let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let traceparent = match (parents.next(), parents.next()) {
        (Some(one), None) => text(one),
        _ => return None,
    };
    // One field more than the codec combines, so that it can report the excess.
    let states: Vec<Cow<'_, str>> = headers
        .get_all(TRACESTATE)
        .iter()
        .take(tracestate::MAX_HEADER_FIELDS + 1)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    TraceContext::from_header_fields(&traceparent, states.iter().map(|s| s.as_ref()))
}

/// Runs a handler so that a panic inside it becomes a `500` for that request alone: the
/// connection is answered, and every other flow on the server goes on.
pub(crate) async fn answer_panics<F>(handler: F) -> Response
where
    F: Future<Output = Response>,
{
    match CatchUnwind(Box::pin(handler)).await {
        Ok(response) => response,
        Err(panic) => {
            tracing::error!("request handler panicked: {}", panic_message(&*panic));
            let body = serde_json::json!({ "message": "Internal server error" });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

/// The text a panic was raised with.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Polls the inner future inside `catch_unwind`; after a panic it is dropped, never polled
/// again.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_handler_answers_500_and_the_next_request_is_served() {
        async fn handler(panic: bool) -> Response {
            assert!(!panic, "boom");
            StatusCode::NO_CONTENT.into_response()
        }
        let failed = answer_panics(handler(true)).await;
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let served = answer_panics(handler(false)).await;
        assert_eq!(served.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn repeated_traceparent_fields_restart_the_trace() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(valid));
        headers.append(TRACESTATE, HeaderValue::from_static("a=1"));
        assert!(inbound_context(&headers).is_some());
        headers.append(TRACEPARENT, HeaderValue::from_static(valid));
        assert_eq!(inbound_context(&headers), None);
    }

    #[test]
    fn non_text_header_bytes_are_rejected_not_panicked_on() {
        let mut headers = HeaderMap::new();
        let bytes = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff";
        headers.append(TRACEPARENT, HeaderValue::from_bytes(bytes).unwrap());
        assert_eq!(inbound_context(&headers), None);
    }
}
