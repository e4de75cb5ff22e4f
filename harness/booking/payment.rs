//! Stripe's later callback: the webhook route verifies the `Stripe-Signature` header, then
//! continues the booking's trace from the PaymentIntent's metadata to confirm the booking, or,
//! when the payment failed, to record why and leave the booking unpaid.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{error, info, info_span, warn, Instrument};

use super::http::{client_error, header, internal_error};
use super::App;
use crate::clock::{self, Spoken};
use crate::contract::headers::STRIPE_SIGNATURE;
use crate::contract::stripe_events::{PAYMENT_INTENT_PAYMENT_FAILED, PAYMENT_INTENT_SUCCEEDED};
use crate::contract::{
    verify_stripe_signature, BOOKING_CONFIRMATION, PAYMENT_FAILURE_PROCESSING,
    PAYMENT_SUCCESS_PROCESSING,
};
use crate::trace::{self, TraceContext};

/// `POST /api/integrations/stripepayment/webhook`.
pub(super) async fn stripe_webhook(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_unix_s = clock::now().unix_seconds();
    if let Err(e) = verify_stripe_signature(
        &app.config.stripe_webhook_secret,
        header(&headers, STRIPE_SIGNATURE),
        &body,
        now_unix_s,
    ) {
        warn!("Stripe webhook rejected: {e}");
        return client_error(
            StatusCode::BAD_REQUEST,
            format!("Webhook signature verification failed: {e}"),
        );
    }
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(e) => return client_error(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")),
    };
    let kind = event["type"].as_str().unwrap_or_default();
    let succeeded = match kind {
        PAYMENT_INTENT_SUCCEEDED => true,
        PAYMENT_INTENT_PAYMENT_FAILED => false,
        _ => return Json(serde_json::json!({ "received": true, "ignored": kind })).into_response(),
    };
    let intent = &event["data"]["object"];
    let Some(intent_id) = intent["id"].as_str() else {
        return client_error(
            StatusCode::BAD_REQUEST,
            "event has no data.object.id".into(),
        );
    };
    let payment = match app.store.payment(intent_id) {
        Ok(Some(payment)) => payment,
        Ok(None) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                format!("No payment for PaymentIntent {intent_id}"),
            )
        }
        Err(e) => return internal_error(e),
    };
    // The metadata is what Stripe hands back; the stored context is the fallback for intents
    // created before tracing was switched on.
    let cause = intent["metadata"]["traceparent"]
        .as_str()
        .and_then(|v| TraceContext::parse_traceparent(v).ok())
        .or(payment.context.clone());
    let span = if succeeded {
        info_span!(
            parent: None,
            PAYMENT_SUCCESS_PROCESSING,
            payment_intent = intent_id,
            booking_id = payment.booking_id,
        )
    } else {
        info_span!(
            parent: None,
            PAYMENT_FAILURE_PROCESSING,
            payment_intent = intent_id,
            booking_id = payment.booking_id,
        )
    };
    if let Some(cause) = &cause {
        trace::continue_from(&span, cause, app.config.bugs.job_relation());
    }
    let confirmed = async {
        if payment.success {
            // Stripe delivers at least once, and in no guaranteed order: a repeat, or a failed
            // attempt reported after the payment went through, changes nothing.
            info!("Payment already processed");
            return Ok(());
        }
        if !succeeded {
            // The PaymentIntent is back at `requires_payment_method`: the customer may pay
            // again, so the booking stays PENDING and unpaid, with the reason kept.
            let reason = last_payment_error(intent);
            error!(
                "Payment failed after {}: {reason}",
                Spoken(clock::now().since(payment.created_at))
            );
            return app.store.fail_payment(intent_id, &reason);
        }
        info!(
            "Payment success after {}",
            Spoken(clock::now().since(payment.created_at))
        );
        async {
            app.store.confirm_payment(intent_id, clock::now())?;
            info!("Booking confirmed");
            Ok(())
        }
        .instrument(info_span!(
            BOOKING_CONFIRMATION,
            booking_id = payment.booking_id
        ))
        .await
    }
    .instrument(span.clone())
    .await;
    match confirmed {
        Ok(()) => Json(serde_json::json!({ "received": true })).into_response(),
        // The span served this request: a 5xx answer puts it in error, with the reason.
        Err(e) if app.config.bugs.marks_server_errors() => span.in_scope(|| internal_error(e)),
        Err(e) => internal_error(e),
    }
}

/// Why a payment attempt failed, from the PaymentIntent's `last_payment_error` as Stripe words
/// an API error: `<message> (<code>)`.
fn last_payment_error(intent: &serde_json::Value) -> String {
    let error = &intent["last_payment_error"];
    match (error["message"].as_str(), error["code"].as_str()) {
        (Some(message), Some(code)) => format!("{message} ({code})"),
        (Some(message), None) => message.to_owned(),
        (None, _) => "no last_payment_error in the event".to_owned(),
    }
}
