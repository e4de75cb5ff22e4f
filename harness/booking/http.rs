//! What the service's handlers share: the trace context a request arrived with, header names
//! built once, reading and setting headers, and the error answers in Cal.com's shape.

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::error;

use super::StoreError;
use crate::contract;
use crate::trace::TraceContext;

// Header names built at compile time: naming a header by `&str` parses it per call. Shared by
// the service, its outbound client and the load runs that read its answers.
/// [`contract::headers::TRACE_ID`] as a header name.
pub(crate) static TRACE_ID_NAME: HeaderName = HeaderName::from_static(contract::headers::TRACE_ID);
/// [`contract::headers::REQUEST_ID`] as a header name.
pub(crate) static REQUEST_ID_NAME: HeaderName =
    HeaderName::from_static(contract::headers::REQUEST_ID);
/// [`contract::headers::TRACEPARENT`] as a header name.
pub(crate) static TRACEPARENT_NAME: HeaderName =
    HeaderName::from_static(contract::headers::TRACEPARENT);
pub(super) static LATENCY_NAME: HeaderName =
    HeaderName::from_static(contract::headers::VIRTUAL_LATENCY_US);

/// The trace context a request arrived with, if any.
#[derive(Clone)]
pub(super) struct Inbound(pub(super) Option<TraceContext>);

/// The text of header `name`, if present and visible ASCII.
pub(super) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// Sets header `name` to `value`; a value that is not a valid header value is left out.
pub(super) fn set_header(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

/// A 4xx answer with Cal.com's `{"message": …}` error body.
pub(super) fn client_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}

/// A body axum could not read as the route's JSON: its own explanation, in our error shape.
pub(super) fn rejected(rejection: JsonRejection) -> Response {
    client_error(rejection.status(), rejection.body_text())
}

/// A store failure: logged, and answered `500` without its details.
pub(super) fn internal_error(e: StoreError) -> Response {
    error!("{e}");
    internal_error_body()
}

/// `500` with Cal.com's `{"message":"Internal server error"}`, logging nothing: for a caller
/// that writes the reason in its own span.
pub(super) fn internal_error_body() -> Response {
    let body = serde_json::json!({ "message": "Internal server error" });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
