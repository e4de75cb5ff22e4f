//! The webhook retry policy (CONTRACT.md §6.3), stated once for the service that follows it
//! and the reports that explain it: how many attempts, how far apart, and the one answer that
//! ends a delivery at once.
//!
//! What real senders do decided it. Stripe retries every non-2xx answer for up to three days
//! (three times over a few hours in test mode); Shopify eight times over four hours; GitHub not
//! at all. Standard Webhooks (Svix's specification) treats every non-2xx answer as a failure,
//! except `410 Gone`: "Sender should disable the webhook endpoint, and stop sending it
//! messages". So a 4xx other than 410 is retried — a 401 or 404 is often a subscriber in the
//! middle of a deploy or of rotating its secret — and 410 ends the delivery with no retry.

use std::time::Duration;

/// Attempts per webhook delivery: the first and up to three retries.
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 4;
/// The wait before retry `n` is `base · 2^(n-1)`, capped at [`WEBHOOK_BACKOFF_CAP`].
pub const WEBHOOK_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest wait before a retry.
pub const WEBHOOK_BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);
/// The answer that ends a delivery at once: the subscriber no longer wants this webhook.
pub const WEBHOOK_GONE: u16 = 410;
/// The failure reason of a delivery answered [`WEBHOOK_GONE`], which its event's message
/// repeats after `Webhook execution failed: ` or `Retry attempt <n> failed: `.
pub const WEBHOOK_GONE_REASON: &str = "HTTP 410; giving up: 410 Gone is not retried";

/// The wait before retry `retry` (1-based): 30 s, 60 s, 120 s, … at most 10 minutes.
pub fn webhook_backoff(retry: u32) -> Duration {
    WEBHOOK_BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
        .min(WEBHOOK_BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let secs: Vec<u64> = (1..=6).map(|n| webhook_backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600]);
        assert_eq!(webhook_backoff(u32::MAX), WEBHOOK_BACKOFF_CAP);
    }

    #[test]
    fn the_gone_reason_names_its_status() {
        assert!(WEBHOOK_GONE_REASON.starts_with(&format!("HTTP {WEBHOOK_GONE};")));
    }
}
