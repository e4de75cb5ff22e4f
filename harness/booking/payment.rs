//! Stripe's later callback: the webhook route verifies the `Stripe-Signature` header, then
//! continues the booking's trace from the PaymentIntent's metadata to confirm the booking.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{info, info_span, warn, Instrument};

use super::{client_error, header, internal_error, App};
use crate::clock::{self, Spoken};
use crate::trace::{self, TraceContext};

pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// Stripe's default tolerance between the signature's timestamp and the receiver's clock.
pub const STRIPE_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a `Stripe-Signature` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeSignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature has no valid `t=` timestamp")]
    NoTimestamp,
    #[error("Stripe-Signature has no `v1=` signature")]
    NoSignature,
    #[error("no v1 signature matches the payload")]
    Mismatch,
    #[error("timestamp {timestamp} is outside the {tolerance_s}s tolerance (now {now})")]
    Stale {
        timestamp: u64,
        now: u64,
        tolerance_s: u64,
    },
}

/// Verifies `header` for `payload` as Stripe's libraries do: any `v1` entry may match the
/// HMAC-SHA256 of `"{t}.{payload}"`, compared in constant time, and `t` may not be older than
/// the tolerance.
pub fn verify_signature(
    secret: &str,
    header: Option<&str>,
    payload: &[u8],
    now_unix_s: u64,
) -> Result<(), StripeSignatureError> {
    let header = header.ok_or(StripeSignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v1)) => signatures.extend(hex::decode(v1).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(StripeSignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(StripeSignatureError::NoSignature);
    }
    let matches = signatures.iter().any(|signature| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.verify_slice(signature).is_ok()
    });
    if !matches {
        return Err(StripeSignatureError::Mismatch);
    }
    if timestamp + STRIPE_TOLERANCE.as_secs() < now_unix_s {
        return Err(StripeSignatureError::Stale {
            timestamp,
            now: now_unix_s,
            tolerance_s: STRIPE_TOLERANCE.as_secs(),
        });
    }
    Ok(())
}

/// `POST /api/integrations/stripepayment/webhook`.
pub(super) async fn stripe_webhook(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_unix_s = clock::now().unix_seconds();
    if let Err(e) = verify_signature(
        &app.config.stripe_webhook_secret,
        header(&headers, STRIPE_SIGNATURE_HEADER),
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
    if kind != "payment_intent.succeeded" {
        return Json(serde_json::json!({ "received": true, "ignored": kind })).into_response();
    }
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
    let span = info_span!(
        parent: None,
        "payment_success_processing",
        payment_intent = intent_id,
        booking_id = payment.booking_id,
    );
    if let Some(cause) = &cause {
        trace::continue_from(&span, cause, app.config.bugs.job_relation());
    }
    let confirmed = async {
        if payment.success {
            // Stripe delivers at least once: a repeat changes nothing.
            info!("Payment already processed");
            return Ok(());
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
            "booking_confirmation",
            booking_id = payment.booking_id
        ))
        .await
    }
    .instrument(span)
    .await;
    match confirmed {
        Ok(()) => Json(serde_json::json!({ "received": true })).into_response(),
        Err(e) => internal_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mocks::stripe::signature_header;

    const SECRET: &str = "whsec_test";
    const NOW: u64 = 1_772_442_000;

    fn check(header: &str, now: u64) -> Result<(), StripeSignatureError> {
        verify_signature(SECRET, Some(header), b"{\"a\":1}", now)
    }

    #[test]
    fn a_signature_made_by_stripes_scheme_verifies() {
        assert_eq!(
            check(&signature_header(SECRET, NOW, "{\"a\":1}"), NOW + 10),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_malformed_signatures_are_refused() {
        let forged = signature_header("whsec_other", NOW, "{\"a\":1}");
        assert_eq!(check(&forged, NOW), Err(StripeSignatureError::Mismatch));
        let tampered = signature_header(SECRET, NOW, "{\"a\":2}");
        assert_eq!(check(&tampered, NOW), Err(StripeSignatureError::Mismatch));
        let stale = signature_header(SECRET, NOW - 301, "{\"a\":1}");
        assert!(matches!(
            check(&stale, NOW),
            Err(StripeSignatureError::Stale { .. })
        ));
        assert_eq!(check("v1=00", NOW), Err(StripeSignatureError::NoTimestamp));
        assert_eq!(
            check(&format!("t={NOW}"), NOW),
            Err(StripeSignatureError::NoSignature)
        );
        assert_eq!(
            verify_signature(SECRET, None, b"", NOW),
            Err(StripeSignatureError::Missing)
        );
    }
}
