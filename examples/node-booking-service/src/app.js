'use strict';
// The service's HTTP surface on Fastify (CONTRACT.md §5): the four routes, and what every
// request gets — a request id (X-Request-Id, and the `[Request ID: …]` log prefix), a flow clock
// starting at its `x-virtual-now-us`, and its `x-virtual-latency-us` on the answer. Bodies are
// read as raw bytes and parsed by the routes: the Stripe webhook must verify the exact bytes it
// was sent, and the crons' bodies are empty.

const Fastify = require('fastify');
const clock = require('./clock');
const { log } = require('./telemetry');
const { bookingFlow, Refusal } = require('./bookings');
const { cronJobs } = require('./jobs');
const { armedCrash } = require('./crash');
const { stripeWebhook } = require('./payment');

/** The largest request body any route reads; a larger one is answered 413. */
const MAX_BODY_BYTES = 64 * 1024;
/** Request header fields beyond this many bytes (names and values) are answered 431. */
const MAX_HEADER_BYTES = 16 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Whether `contentType` is JSON's: `application/json` or `application/*+json`, any parameters.
 * @param {string | undefined} contentType
 */
function isJson(contentType) {
  const essence = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return /^application\/([^\s/]+\+)?json$/.test(essence);
}

/**
 * The service's Fastify instance over its parts.
 * @param {{config: import('./config').Config, store: any, ids: ReturnType<typeof import('./ids').serviceIds>,
 *   http: ReturnType<typeof import('./outbound').outbound>}} parts
 */
function buildApp(parts) {
  const { ids } = parts;
  const bookings = bookingFlow(parts);
  const crons = cronJobs(parts);
  const stripe = stripeWebhook(parts);

  // Node's own parser would refuse a head over 16 KiB with a bare 431 (no X-Request-Id): it is
  // given room, and the service counts header fields itself, as the in-process service does.
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES, http: { maxHeaderSize: 4 * MAX_HEADER_BYTES } });
  app.decorateRequest('flow', null);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    const flow = clock.newFlow(request.headers['x-virtual-now-us'], ids.requestId());
    /** @type {any} */ (request).flow = flow;
    reply.header('x-request-id', flow.requestId);
    const raw = request.raw.rawHeaders;
    let bytes = 0;
    for (const field of raw) bytes += Buffer.byteLength(field, 'latin1');
    if (bytes > MAX_HEADER_BYTES) {
      return reply.code(431).send({
        message: `Request headers are ${bytes} bytes; at most ${MAX_HEADER_BYTES} are accepted`,
      });
    }
  });
  app.addHook('onSend', async (request, reply, payload) => {
    /** @type {import('./clock').Flow | null} */
    const flow = /** @type {any} */ (request).flow;
    if (flow) reply.header('x-virtual-latency-us', String(flow.nowUs - flow.startUs));
    return payload;
  });
  app.setErrorHandler((/** @type {any} */ error, request, reply) => {
    const status = error?.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send({ message: String(error.message) });
    }
    // A store failure (or a bug): logged, and answered without its details.
    const flow = /** @type {any} */ (request).flow;
    if (flow) clock.runInFlow(flow, () => log('error', 'trace_harness::booking::http', String(error?.message ?? error)));
    return reply.code(500).send({ message: 'Internal server error' });
  });

  /**
   * A handler run on its request's flow clock; `work` answers `{status, body, traceId?}`.
   * @param {(request: import('fastify').FastifyRequest) => Promise<{status: number, body: unknown, traceId?: string}>} work
   */
  const onFlow = (work) => async (/** @type {import('fastify').FastifyRequest} */ request, /** @type {import('fastify').FastifyReply} */ reply) => {
    const answer = await clock.runInFlow(/** @type {any} */ (request).flow, () => work(request));
    if (answer.traceId) reply.header('x-trace-id', answer.traceId);
    return reply.code(answer.status).send(answer.body);
  };

  app.post(
    '/api/bookings',
    onFlow(async (request) => {
      if (!isJson(request.headers['content-type'])) {
        return { status: 415, body: { message: 'Expected request with `Content-Type: application/json`' } };
      }
      /** @type {unknown} */
      let body;
      try {
        const raw = /** @type {Buffer | undefined} */ (request.body) ?? Buffer.alloc(0);
        body = JSON.parse(utf8.decode(raw));
      } catch (e) {
        return { status: 400, body: { message: `Failed to parse the request body as JSON: ${/** @type {Error} */ (e).message}` } };
      }
      try {
        return await bookings.createBooking(body, request.headers);
      } catch (e) {
        if (e instanceof Refusal) return { status: e.status, body: { message: e.message } };
        throw e;
      }
    }),
  );

  const notAuthenticated = { status: 401, body: { message: 'Not authenticated' } };
  app.post(
    '/api/cron/webhookTriggers',
    onFlow(async (request) =>
      crons.authorised(request.headers, request.url)
        ? crons.runWebhookCron(armedCrash(request.headers['x-virtual-crash']))
        : notAuthenticated,
    ),
  );
  app.post(
    '/api/cron/workflows/scheduleEmailReminders',
    onFlow(async (request) =>
      crons.authorised(request.headers, request.url)
        ? crons.runReminderCron(armedCrash(request.headers['x-virtual-crash']))
        : notAuthenticated,
    ),
  );
  app.post(
    '/api/integrations/stripepayment/webhook',
    onFlow(async (request) =>
      stripe.handle(/** @type {Buffer | undefined} */ (request.body) ?? Buffer.alloc(0), request.headers['stripe-signature']),
    ),
  );

  return app;
}

module.exports = { buildApp };
