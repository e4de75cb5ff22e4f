//! The two signing schemes of the contract, both HMAC-SHA256 under a shared secret:
//! - Cal.com's webhook deliveries: `x-cal-signature-256` is the hex HMAC of the raw body;
//! - Stripe's events: `stripe-signature` is `t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">`,
//!   refused once `t` is older than [`STRIPE_TOLERANCE`].
//!
//! Checks compare in constant time, as a receiver comparing secrets must.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance between the signature's timestamp and the receiver's clock.
pub const STRIPE_TOLERANCE: Duration = Duration::from_secs(300);

/// The HMAC-SHA256 of the concatenated `message` parts, keyed with `secret`.
fn keyed(secret: &str, message: &[&[u8]]) -> Hmac<Sha256> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for part in message {
        mac.update(part);
    }
    mac
}

/// The HMAC-SHA256 tag of the concatenated `message` parts under `secret`.
pub fn hmac_sha256(secret: &str, message: &[&[u8]]) -> [u8; 32] {
    keyed(secret, message).finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of the concatenated `message` parts under `secret`,
/// compared in constant time.
pub fn hmac_sha256_matches(secret: &str, message: &[&[u8]], tag: &[u8]) -> bool {
    keyed(secret, message).verify_slice(tag).is_ok()
}

/// The `x-cal-signature-256` value of a delivery: the hex HMAC-SHA256 of `payload`.
pub fn cal_signature(secret: &str, payload: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[payload]))
}

/// Whether `header` (an `x-cal-signature-256` value) signs `payload` under `secret`.
pub fn cal_signature_matches(secret: &str, payload: &[u8], header: &str) -> bool {
    hex::decode(header.trim()).is_ok_and(|tag| hmac_sha256_matches(secret, &[payload], &tag))
}

/// The `stripe-signature` value for `payload` sent at Unix time `timestamp`.
pub fn stripe_signature(secret: &str, timestamp: u64, payload: &[u8]) -> String {
    let t = timestamp.to_string();
    let tag = hmac_sha256(secret, &[t.as_bytes(), b".", payload]);
    format!("t={t},v1={}", hex::encode(tag))
}

/// Why a `stripe-signature` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeSignatureError {
    /// The request has no `stripe-signature` header.
    #[error("no Stripe-Signature header")]
    Missing,
    /// The header has no `t=` entry that is a number.
    #[error("Stripe-Signature has no valid `t=` timestamp")]
    NoTimestamp,
    /// The header has no `v1=` entry in hex.
    #[error("Stripe-Signature has no `v1=` signature")]
    NoSignature,
    /// No `v1` entry is the payload's signature.
    #[error("no v1 signature matches the payload")]
    Mismatch,
    /// The signature is older than the tolerance.
    #[error("timestamp {timestamp} is outside the {tolerance_s}s tolerance (now {now})")]
    Stale {
        /// The header's `t`.
        timestamp: u64,
        /// The receiver's Unix time.
        now: u64,
        /// [`STRIPE_TOLERANCE`] in seconds.
        tolerance_s: u64,
    },
}

/// Verifies `header` for `payload` as Stripe's libraries do: any `v1` entry may match the
/// HMAC-SHA256 of `"{t}.{payload}"`, and `t` may not be older than [`STRIPE_TOLERANCE`] at
/// `now_unix_s`. A `t` in the future is accepted, as Stripe's libraries accept it.
pub fn verify_stripe_signature(
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
    let t = timestamp.to_string();
    let message: [&[u8]; 3] = [t.as_bytes(), b".", payload];
    if !signatures
        .iter()
        .any(|signature| hmac_sha256_matches(secret, &message, signature))
    {
        return Err(StripeSignatureError::Mismatch);
    }
    // Saturating: a correctly signed `t` near `u64::MAX` is far in the future, not an overflow.
    if timestamp.saturating_add(STRIPE_TOLERANCE.as_secs()) < now_unix_s {
        return Err(StripeSignatureError::Stale {
            timestamp,
            now: now_unix_s,
            tolerance_s: STRIPE_TOLERANCE.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const NOW: u64 = 1_772_442_000;
    const BODY: &[u8] = b"{\"a\":1}";

    fn check(header: &str, now: u64) -> Result<(), StripeSignatureError> {
        verify_stripe_signature(SECRET, Some(header), BODY, now)
    }

    #[test]
    fn a_signature_made_by_stripes_scheme_verifies() {
        assert_eq!(
            check(&stripe_signature(SECRET, NOW, BODY), NOW + 10),
            Ok(())
        );
    }

    #[test]
    fn a_correctly_signed_timestamp_near_the_end_of_time_is_not_an_overflow() {
        for t in [u64::MAX, u64::MAX - 1, u64::MAX - 299] {
            assert_eq!(
                check(&stripe_signature(SECRET, t, BODY), NOW),
                Ok(()),
                "t={t}"
            );
        }
    }

    #[test]
    fn forged_stale_and_malformed_signatures_are_refused() {
        let forged = stripe_signature("whsec_other", NOW, BODY);
        assert_eq!(check(&forged, NOW), Err(StripeSignatureError::Mismatch));
        let tampered = stripe_signature(SECRET, NOW, b"{\"a\":2}");
        assert_eq!(check(&tampered, NOW), Err(StripeSignatureError::Mismatch));
        let stale = stripe_signature(SECRET, NOW - 301, BODY);
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
            verify_stripe_signature(SECRET, None, b"", NOW),
            Err(StripeSignatureError::Missing)
        );
    }

    #[test]
    fn a_cal_signature_is_the_hex_hmac_of_the_body_alone() {
        let signature = cal_signature(SECRET, BODY);
        assert_eq!(signature.len(), 64);
        assert!(cal_signature_matches(SECRET, BODY, &signature));
        assert!(cal_signature_matches(
            SECRET,
            BODY,
            &format!(" {signature}\t")
        ));
        assert!(!cal_signature_matches("whsec_other", BODY, &signature));
        assert!(!cal_signature_matches(SECRET, b"{}", &signature));
        assert!(!cal_signature_matches(SECRET, BODY, "not hex"));
    }
}
