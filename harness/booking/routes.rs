//! The service's HTTP surface: the routes of the contract and the middleware every request runs
//! through (request id, header-size guard, flow clock, inbound trace context, panics answered).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::http::{header, set_header, Inbound, LATENCY_NAME, REQUEST_ID_NAME};
use super::{conformance, create, guard, jobs, payment, App};
use crate::clock::{FlowClock, VirtualTime};
use crate::contract::{self, routes};
use crate::trace;

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

/// Every request: a request id (logged as before tracing existed), a flow clock starting at the
/// request's virtual arrival time, and the inbound trace context for the handler to continue.
async fn request_context(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let _busy = Busy::counting(&app);
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
    let handler = clock
        .clone()
        .scope(trace::with_request_id(request_id.clone(), handler));
    // A service that dies (a crash point) or stops without waiting any longer drops its
    // handlers where they wait; what they would have done next never happens.
    let mut abandoned = app.abandoned.subscribe();
    let mut response = tokio::select! {
        biased;
        response = handler => response,
        _ = abandoned.wait_for(|gone| *gone) => abandoned_response(),
    };
    let headers = response.headers_mut();
    set_header(headers, &REQUEST_ID_NAME, &request_id);
    set_header(
        headers,
        &LATENCY_NAME,
        &clock.now().since(start).as_micros().to_string(),
    );
    response
}

/// What a request the service abandoned is answered, if anyone is still listening: `503`.
fn abandoned_response() -> Response {
    let body = serde_json::json!({ "message": "The service stopped before it answered" });
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(body),
    )
        .into_response()
}

/// One request in flight, counted in [`App::busy`] from its middleware's start to its end,
/// however it ends (answered, abandoned, or dropped by a closed connection).
struct Busy<'a>(&'a App);

impl<'a> Busy<'a> {
    fn counting(app: &'a App) -> Self {
        app.busy.send_modify(|n| *n += 1);
        Busy(app)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.send_modify(|n| *n -= 1);
    }
}
