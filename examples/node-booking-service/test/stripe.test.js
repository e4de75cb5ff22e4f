'use strict';
// The Stripe webhook route through Fastify's inject: signatures made with the stripe package's
// generateTestHeaderString at the request's virtual instant; forged and stale events are
// refused and change nothing, a valid one confirms the payment once.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Stripe = require('stripe');
const { openStore } = require('../src/store');
const { serviceIds } = require('../src/ids');
const { outbound } = require('../src/outbound');
const { buildApp } = require('../src/app');

const SECRET = 'whsec_stripe_trace_harness';
const stripe = new Stripe('sk_test_unused');

/** @returns {import('../src/config').Config} */
function config(/** @type {string} */ databasePath) {
  return {
    port: 0, googleCalendarUrl: '', stripeUrl: '', emailUrl: '', webhookSubscribers: [],
    webhookSecret: 'whsec_trace_harness', cronApiKey: 'cron_trace_harness', stripeWebhookSecret: SECRET,
    databasePath, eventTypes: [], bugs: new Set(), seed: 1n, generation: 0n, storeLatencyUs: 0,
    tracing: false, exportSpans: false, protocol: 'http/protobuf', serviceName: 'cal.com',
    timeoutsUs: { calendar: 10e6, stripe: 80e6, email: 10e6, webhook: 10e6 },
  };
}

test('Stripe events are verified on virtual time and confirm a payment once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-booking-'));
  const file = path.join(dir, 'booking.sqlite3');
  const store = await openStore(file, 0);
  store.insertBooking(
    {
      uid: 'u1', eventTypeId: 789, title: 't', startTime: 'a', endTime: 'b', status: 'PENDING',
      attendees: [{ name: 'A', email: 'a@example.com' }], calendarEvent: null, requestId: 'r', createdAtUs: 0,
      payment: { externalId: 'pi_1', amount: 5000, currency: 'usd', createdAtUs: 0, context: undefined },
    },
    () => [],
  );
  const app = buildApp({ config: config(file), store, ids: serviceIds(1n, 0n), http: outbound({ propagate: false }) });
  const body = JSON.stringify({ id: 'evt_1', type: 'payment_intent.succeeded', data: { object: { id: 'pi_1', metadata: {} } } });
  const nowUs = 28 * 60e6;
  const nowS = 1772442000 + nowUs / 1e6;
  const send = (/** @type {string} */ signature) =>
    app.inject({
      method: 'POST',
      url: '/api/integrations/stripepayment/webhook',
      headers: { 'content-type': 'application/json', 'x-virtual-now-us': String(nowUs), 'stripe-signature': signature },
      payload: body,
    });
  const forged = await send(stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_other', timestamp: nowS }));
  assert.equal(forged.statusCode, 400);
  const stale = await send(stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET, timestamp: nowS - 600 }));
  assert.equal(stale.statusCode, 400);
  assert.equal(store.payment('pi_1')?.success, false);
  const valid = await send(stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET, timestamp: nowS }));
  assert.equal(valid.statusCode, 200);
  assert.deepEqual(valid.json(), { received: true });
  assert.ok(valid.headers['x-request-id']);
  assert.equal(store.payment('pi_1')?.success, true);
  const repeat = await send(stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET, timestamp: nowS }));
  assert.equal(repeat.statusCode, 200);
  await app.close();
  // The confirmation is on disk: a restarted process sees it.
  const reopened = await openStore(file, 0);
  assert.equal(reopened.payment('pi_1')?.success, true);
  fs.rmSync(dir, { recursive: true });
});
