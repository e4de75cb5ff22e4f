//! Stripe as the booking service sees it: the PaymentIntent resource `POST /v1/payment_intents`
//! returns, Stripe's error bodies, and the events (with their `Stripe-Signature`) that Stripe
//! delivers later to the service's webhook endpoint.

use crate::clock::VirtualTime;
use crate::contract;
use crate::contract::stripe_events::{PAYMENT_INTENT_PAYMENT_FAILED, PAYMENT_INTENT_SUCCEEDED};

/// Stripe's error codes this mock answers with: `(code, type, message)`, as Stripe's API
/// reference ("Error codes") words them.
pub(super) const ERRORS: [(&str, &str, &str); 5] = [
    ("card_declined", "card_error", "Your card was declined."),
    (
        "amount_too_small",
        "invalid_request_error",
        "Amount must be at least $0.50 usd",
    ),
    (
        "api_key_expired",
        "invalid_request_error",
        "Expired API Key provided: sk_test_****4242",
    ),
    (
        "rate_limit",
        "invalid_request_error",
        "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
    ),
    (
        "idempotency_key_in_use",
        "idempotency_error",
        "There is currently another in-progress request using this Stripe-Idempotency-Key.",
    ),
];

/// `{"error": {"type", "code", "message", "doc_url"}}`, Stripe's error shape.
pub(crate) fn error_body(code: &str) -> Option<serde_json::Value> {
    let (code, kind, message) = ERRORS.into_iter().find(|(c, _, _)| *c == code)?;
    let mut error = serde_json::json!({
        "code": code,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
        "message": message,
        "type": kind,
    });
    if code == "card_declined" {
        error["decline_code"] = "generic_decline".into();
    }
    Some(serde_json::json!({ "error": error }))
}

/// The PaymentIntent Stripe answers the `n`-th (0-based) creation request with, echoing the
/// form-encoded request `body`. A pure function, so the runner (acting as Stripe later) can
/// rebuild the same object for its event.
pub fn payment_intent(body: &str, n: usize, created: VirtualTime) -> serde_json::Value {
    let mut amount = 0u64;
    let mut currency = String::new();
    let mut metadata = serde_json::Map::new();
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        match key.as_ref() {
            "amount" => amount = value.parse().unwrap_or(0),
            "currency" => currency = value.into_owned(),
            _ => {
                if let Some(field) = key
                    .strip_prefix("metadata[")
                    .and_then(|k| k.strip_suffix(']'))
                {
                    metadata.insert(field.to_owned(), value.into_owned().into());
                }
            }
        }
    }
    let id = format!("pi_{}", base62(n as u64 ^ 0x5354_5249_5045, 24));
    let secret = base62(n as u64 ^ 0x5345_4352_4554, 24);
    serde_json::json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "capture_method": "automatic",
        "client_secret": format!("{id}_secret_{secret}"),
        "confirmation_method": "automatic",
        "created": created.unix_seconds(),
        "currency": currency,
        "livemode": false,
        "metadata": metadata,
        "payment_method_types": ["card"],
        "status": "requires_payment_method",
    })
}

/// The `payment_intent.succeeded` event for `intent`, delivered at `at`.
pub fn succeeded_event(intent: &serde_json::Value, at: VirtualTime) -> serde_json::Value {
    let mut object = intent.clone();
    object["status"] = "succeeded".into();
    object["amount_received"] = intent["amount"].clone();
    event(PAYMENT_INTENT_SUCCEEDED, object, at)
}

/// The `payment_intent.payment_failed` event for `intent`, delivered at `at`: a confirmation
/// with Stripe's generic-decline test card (`…0002`) was declined, so the PaymentIntent is
/// back at `requires_payment_method` with the decline as its `last_payment_error` (the
/// error object of Stripe's API, with the charge and the payment method it was made with).
pub fn payment_failed_event(intent: &serde_json::Value, at: VirtualTime) -> serde_json::Value {
    let mut object = intent.clone();
    let seed = seed_of(intent["id"].as_str().unwrap_or_default());
    let charge = format!("ch_{}", base62(seed ^ 0x4348_4152_4745, 24));
    let method = format!("pm_{}", base62(seed ^ 0x504d, 24));
    let mut error = error_body("card_declined")
        .map(|body| body["error"].clone())
        .unwrap_or_default();
    error["charge"] = charge.clone().into();
    error["payment_method"] = serde_json::json!({
        "id": method,
        "object": "payment_method",
        "billing_details": { "address": null, "email": null, "name": null, "phone": null },
        "card": {
            "brand": "visa",
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "last4": "0002",
        },
        "created": at.unix_seconds(),
        "customer": null,
        "livemode": false,
        "metadata": {},
        "type": "card",
    });
    object["status"] = "requires_payment_method".into();
    object["amount_received"] = 0.into();
    object["last_payment_error"] = error;
    object["latest_charge"] = charge.into();
    object["payment_method"] = serde_json::Value::Null;
    event(PAYMENT_INTENT_PAYMENT_FAILED, object, at)
}

/// Stripe's event envelope of type `kind` around `object`, its id drawn from the object's id
/// and the type, so each event of a PaymentIntent has its own.
fn event(kind: &str, object: serde_json::Value, at: VirtualTime) -> serde_json::Value {
    let seed = seed_of(object["id"].as_str().unwrap_or_default());
    let seed = if kind == PAYMENT_INTENT_SUCCEEDED {
        seed
    } else {
        seed_of(kind) ^ seed
    };
    serde_json::json!({
        "id": format!("evt_{}", base62(seed, 24)),
        "object": "event",
        "api_version": "2024-06-20",
        "created": at.unix_seconds(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

fn seed_of(text: &str) -> u64 {
    text.bytes()
        .fold(0u64, |h, b| crate::trace::splitmix64(h ^ u64::from(b)))
}

/// The `Stripe-Signature` header value for `payload` sent at Unix time `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>">`, keyed with the endpoint's
/// signing secret ([`contract::stripe_signature`]).
pub fn signature_header(secret: &str, timestamp: u64, payload: &str) -> String {
    contract::stripe_signature(secret, timestamp, payload.as_bytes())
}

/// `len` characters of Stripe-looking base62 drawn from `seed`.
fn base62(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = crate::trace::splitmix64(state);
            char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
        })
        .collect()
}
