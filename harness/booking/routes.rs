//! The service's HTTP surface: the routes of the contract, the middleware every request runs
//! through (request id, header-size guard, flow clock, inbound trace context, panics answered)
//! and the helpers handlers answer with.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tracing::error;

use super::{conformance, create, guard, jobs, payment, App, StoreError};
use crate::clock::{FlowClock, VirtualTime};
use crate::contract::{self, routes};
use crate::trace::{self, TraceContext};

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
static LATENCY_NAME: HeaderName = HeaderName::from_static(contract::headers::VIRTUAL_LATENCY_US);

/// The service's routes over `app`, with every request's middleware.
pub(super) fn router(app: Arc<App>) -> Router {
    let router = Router::new()
        .route(routes::BOOKINGS, post(create::create_booking))
        .route(routes::WEBHOOK_CRON, post(jobs::run_webhook_cron))
        .route(routes::REMINDER_CRON, post(jobs::run_reminder_cron))
        .route(routes::STRIPE_WEBHOOK, post(payment::stripe_webhook));
    let router = if app.config.conformance_endpoint {
        router.route(routes::CONFORMANCE_TEST, post(conformance::run_test))
    } else {
        router
    };
    router
        .layer(DefaultBodyLimit::max(guard::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app)
}

/// The trace context a request arrived with, if any.
#[derive(Clone)]
pub(super) struct Inbound(pub(super) Option<TraceContext>);

/// Every request: a request id (logged as before tracing existed), a flow clock starting at the
/// request's virtual arrival time, and the inbound trace context for the handler to continue.
async fn request_context(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let request_id: Arc<str> = app.ids.request_id().into();
    let headers = req.headers();
    if let Some(mut refused) = guard::oversized_head(headers) {
        set_header(refused.headers_mut(), &REQUEST_ID_NAME, &request_id);
        return refused;
    }
    let start = header(headers, contract::headers::VIRTUAL_NOW_US)
        .and_then(|v| v.parse().ok())
        .map(VirtualTime::from_micros)
        .unwrap_or_default();
    let inbound = guard::inbound_context(headers);
    req.extensions_mut().insert(Inbound(inbound));
    let clock = FlowClock::starting_at(start);
    let handler = guard::answer_panics(next.run(req));
    let mut response = clock
        .clone()
        .scope(trace::with_request_id(request_id.clone(), handler))
        .await;
    let headers = response.headers_mut();
    set_header(headers, &REQUEST_ID_NAME, &request_id);
    set_header(
        headers,
        &LATENCY_NAME,
        &clock.now().since(start).as_micros().to_string(),
    );
    response
}

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
    let body = serde_json::json!({ "message": "Internal server error" });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
