'use strict';
// Stripe's later callback, `POST /api/integrations/stripepayment/webhook` (CONTRACT.md §5.3):
// the Stripe-Signature is verified over the raw body by the `stripe` package's
// `webhooks.constructEvent`, at the request's virtual instant; then the booking's trace is
// continued from the PaymentIntent's `metadata.traceparent` (or the context stored with the
// payment) to confirm the booking, or, on `payment_intent.payment_failed`, to record why the
// payment failed and leave the booking unpaid (harness/booking/payment.rs).

const Stripe = require('stripe');
const clock = require('./clock');
const { inSpan, log, contextFrom, SpanKind, ROOT_CONTEXT, trace } = require('./telemetry');

const TARGET = 'trace_harness::booking::payment';
/** Stripe's default tolerance, in seconds. */
const TOLERANCE_S = 300;

/**
 * @param {{config: import('./config').Config, store: any}} app
 */
function stripeWebhook(app) {
  const { config, store } = app;
  // No API key is needed to verify signatures; the client never calls Stripe.
  const stripe = new Stripe('sk_test_unused', { maxNetworkRetries: 0 });

  /**
   * @param {Buffer} raw  the body, unparsed
   * @param {string | string[] | undefined} signature  the stripe-signature header
   * @returns {Promise<{status: number, body: unknown}>}
   */
  async function handle(raw, signature) {
    /** @type {any} */
    let event;
    try {
      // `receivedAt` (ms) is the request's virtual instant: Stripe's tolerance is judged on
      // the harness's clock, which signs events in 2026.
      event = stripe.webhooks.constructEvent(
        raw,
        Array.isArray(signature) ? signature[0] : (signature ?? ''),
        config.stripeWebhookSecret,
        TOLERANCE_S,
        undefined,
        clock.unixSeconds() * 1000,
      );
    } catch (e) {
      const error = /** @type {Error & {type?: string}} */ (e);
      if (error.type === 'StripeSignatureVerificationError') {
        log('warn', TARGET, `Stripe webhook rejected: ${error.message}`);
        return { status: 400, body: { message: `Webhook signature verification failed: ${error.message}` } };
      }
      // Signed, but not JSON: constructEvent's JSON.parse threw.
      return { status: 400, body: { message: `Invalid JSON: ${error.message}` } };
    }
    const kind = typeof event?.type === 'string' ? event.type : '';
    if (kind !== 'payment_intent.succeeded' && kind !== 'payment_intent.payment_failed') {
      return { status: 200, body: { ignored: kind, received: true } };
    }
    const succeeded = kind === 'payment_intent.succeeded';
    const intent = event?.data?.object;
    const intentId = intent?.id;
    if (typeof intentId !== 'string') return { status: 400, body: { message: 'event has no data.object.id' } };
    const payment = store.payment(intentId);
    if (!payment) return { status: 400, body: { message: `No payment for PaymentIntent ${intentId}` } };
    // The metadata is what Stripe hands back; the stored context is the fallback.
    const metadata = intent?.metadata?.traceparent;
    const cause =
      (typeof metadata === 'string' ? contextFrom({ traceparent: metadata }) : undefined) ?? contextFrom(payment.context);
    /** @type {import('./telemetry').SpanOptions} */
    const options = !cause
      ? { kind: SpanKind.SERVER, parent: ROOT_CONTEXT }
      : config.bugs.has('unlinked_jobs')
        ? { kind: SpanKind.SERVER, parent: cause }
        : { kind: SpanKind.CONSUMER, parent: cause, followsFrom: trace.getSpanContext(cause) };
    options.attributes = { payment_intent: intentId, booking_id: payment.bookingId };
    await inSpan(succeeded ? 'payment_success_processing' : 'payment_failure_processing', options, async () => {
      if (payment.success) {
        // Stripe delivers at least once, and in no guaranteed order: a repeat, or a failed
        // attempt reported after the payment went through, changes nothing.
        log('info', TARGET, 'Payment already processed');
        return;
      }
      if (!succeeded) {
        // The PaymentIntent is back at `requires_payment_method`: the customer may pay again,
        // so the booking stays PENDING and unpaid, with the reason kept.
        const reason = lastPaymentError(intent);
        log('error', TARGET, `Payment failed after ${clock.spoken(clock.now() - payment.createdAtUs)}: ${reason}`);
        store.failPayment(intentId, reason);
        return;
      }
      log('info', TARGET, `Payment success after ${clock.spoken(clock.now() - payment.createdAtUs)}`);
      await inSpan('booking_confirmation', { attributes: { booking_id: payment.bookingId } }, async () => {
        store.confirmPayment(intentId, clock.now());
        log('info', TARGET, 'Booking confirmed');
      });
    });
    return { status: 200, body: { received: true } };
  }

  return { handle };
}

/**
 * Why a payment attempt failed, from the PaymentIntent's `last_payment_error` as Stripe words an
 * API error: `<message> (<code>)`.
 * @param {any} intent
 * @returns {string}
 */
function lastPaymentError(intent) {
  const error = intent?.last_payment_error;
  if (typeof error?.message !== 'string') return 'no last_payment_error in the event';
  return typeof error.code === 'string' ? `${error.message} (${error.code})` : error.message;
}

module.exports = { stripeWebhook };
