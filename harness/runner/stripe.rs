//! The runner acting as Stripe: it keeps the PaymentIntents Stripe answered during each booking
//! step, and later delivers a signed event about one of them to the service's webhook route.

use std::time::Duration;

use crate::booking::ServiceConfig;
use crate::clock::VirtualTime;
use crate::contract::{peers, STRIPE_TOLERANCE};
use crate::mocks::{stripe, MockKind, MockService};
use crate::scenario::{SignatureKind, StripeEvent, StripeStep};

use super::ReplayError;

/// The PaymentIntents the Stripe mock created so far, in creation order, as it answered them.
#[derive(Default)]
pub(super) struct PaymentIntents {
    created: Vec<serde_json::Value>,
}

impl PaymentIntents {
    /// Keeps the PaymentIntents created since the last call: run after each booking step, the
    /// only step that creates them.
    pub(super) async fn keep_new(&mut self, mocks: &[MockService]) {
        let mut requests = Vec::new();
        for mock in mocks.iter().filter(|m| m.kind == MockKind::Stripe) {
            requests.extend(
                mock.received()
                    .await
                    .into_iter()
                    .filter(|r| r.path == peers::STRIPE_PAYMENT_INTENTS),
            );
        }
        for (n, request) in requests.iter().enumerate().skip(self.created.len()) {
            // The mock's answer is a pure function of the request: the same object again.
            self.created
                .push(stripe::payment_intent(&request.body, n, request.sent_at()));
        }
    }

    /// The body of the event `step` delivers at `at` and its `Stripe-Signature`, signed as the
    /// step says with the secret of the endpoint `config` describes.
    pub(super) fn delivery(
        &self,
        step: &StripeStep,
        config: &ServiceConfig,
        at: Duration,
    ) -> Result<(String, String), ReplayError> {
        let n = step.payment_intent;
        let Some(intent) = n.checked_sub(1).and_then(|i| self.created.get(i)) else {
            return Err(ReplayError::NoPaymentIntent {
                at: crate::clock::Compact(at).to_string(),
                n,
                created: self.created.len(),
            });
        };
        let sent_at = VirtualTime::from_micros(u64::try_from(at.as_micros()).unwrap_or(u64::MAX));
        let event = match step.event {
            StripeEvent::PaymentIntentSucceeded => stripe::succeeded_event(intent, sent_at),
            StripeEvent::PaymentIntentPaymentFailed => {
                stripe::payment_failed_event(intent, sent_at)
            }
        }
        .to_string();
        let sent_at = sent_at.unix_seconds();
        let (secret, timestamp) = match step.signature {
            SignatureKind::Valid => (config.stripe_webhook_secret.as_str(), sent_at),
            SignatureKind::Forged => ("whsec_forged", sent_at),
            SignatureKind::Stale => (
                config.stripe_webhook_secret.as_str(),
                sent_at.saturating_sub(STRIPE_TOLERANCE.as_secs() * 2),
            ),
        };
        let signature = stripe::signature_header(secret, timestamp, &event);
        Ok((event, signature))
    }
}
