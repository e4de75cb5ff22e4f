'use strict';
// The contract's environment (CONTRACT.md §3) read into the service's configuration. A bad
// value stops the process before it says it is ready, with the variable's name.

/**
 * @typedef {object} EventType
 * @property {number} id
 * @property {number | null} price  in the currency's smallest unit; null: free
 * @property {string} currency
 * @property {number | null} seats  null: not seated
 * @property {boolean} reminders
 */

/**
 * @typedef {object} Config
 * @property {number} port
 * @property {string} googleCalendarUrl  empty: no calendar events
 * @property {string} stripeUrl
 * @property {string} emailUrl  empty: no e-mail batch
 * @property {string[]} webhookSubscribers
 * @property {string} webhookSecret
 * @property {string} cronApiKey
 * @property {string} stripeWebhookSecret
 * @property {string} databasePath
 * @property {EventType[]} eventTypes
 * @property {Set<string>} bugs  planted bugs (CONTRACT.md §11)
 * @property {bigint | undefined} seed
 * @property {bigint} generation
 * @property {number} storeLatencyUs
 * @property {boolean} tracing  false under OTEL_SDK_DISABLED=true
 * @property {boolean} exportSpans  false under OTEL_TRACES_EXPORTER=none
 * @property {string} protocol  http/protobuf or http/json
 * @property {string} serviceName
 * @property {{calendar: number, stripe: number, email: number, webhook: number}} timeoutsUs
 */

const KNOWN_BUGS = ['drop_traceparent', 'orphan_jobs', 'unlinked_jobs', 'unmarked_server_errors'];

/**
 * @param {string} name
 * @returns {string}
 */
function text(name) {
  return process.env[name] ?? '';
}

/**
 * @param {string} name
 * @param {string} what
 * @returns {unknown}
 */
function json(name, what) {
  try {
    return JSON.parse(text(name));
  } catch (e) {
    throw new Error(`${name} is not ${what}: ${/** @type {Error} */ (e).message}`);
  }
}

/**
 * A decimal unsigned integer, or `fallback` when unset or empty.
 * @param {string} name
 * @param {bigint | undefined} fallback
 * @returns {bigint | undefined}
 */
function decimal(name, fallback) {
  const value = text(name).trim();
  if (value === '') return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`${name} is not a decimal number: ${value}`);
  return BigInt(value);
}

/**
 * @param {unknown} raw
 * @returns {EventType}
 */
function eventType(raw) {
  if (typeof raw !== 'object' || raw === null || !Number.isInteger(/** @type {any} */ (raw).id)) {
    throw new Error(`EVENT_TYPES is not a JSON array of event types: ${JSON.stringify(raw)}`);
  }
  const e = /** @type {Record<string, any>} */ (raw);
  return {
    id: e.id,
    price: typeof e.price === 'number' ? e.price : null,
    currency: typeof e.currency === 'string' ? e.currency : 'usd',
    seats: typeof e.seats === 'number' ? e.seats : null,
    reminders: e.reminders === true,
  };
}

/** @returns {Config} */
function loadConfig() {
  const port = Number(text('PORT'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT is not a port number: ${text('PORT')}`);
  }
  const subscribers = json('WEBHOOK_SUBSCRIBER_URLS', 'a JSON array of URLs');
  if (!Array.isArray(subscribers) || subscribers.some((u) => typeof u !== 'string')) {
    throw new Error('WEBHOOK_SUBSCRIBER_URLS is not a JSON array of URLs');
  }
  const types = text('EVENT_TYPES').trim() === '' ? [] : json('EVENT_TYPES', 'a JSON array');
  if (!Array.isArray(types)) throw new Error('EVENT_TYPES is not a JSON array of event types');
  const bugs = new Set(
    text('TRACE_HARNESS_BUGS')
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== ''),
  );
  for (const bug of bugs) {
    if (!KNOWN_BUGS.includes(bug)) {
      throw new Error(`TRACE_HARNESS_BUGS names an unknown bug: ${bug} (known: ${KNOWN_BUGS.join(', ')})`);
    }
  }
  const databasePath = text('DATABASE_PATH');
  if (databasePath === '') throw new Error('DATABASE_PATH is not set');
  return {
    port,
    googleCalendarUrl: text('GOOGLE_CALENDAR_API_URL'),
    stripeUrl: text('STRIPE_API_URL'),
    emailUrl: text('EMAIL_API_URL'),
    webhookSubscribers: /** @type {string[]} */ (subscribers),
    webhookSecret: text('WEBHOOK_SECRET'),
    cronApiKey: text('CRON_API_KEY'),
    stripeWebhookSecret: text('STRIPE_WEBHOOK_SECRET'),
    databasePath,
    eventTypes: types.map(eventType),
    bugs,
    seed: decimal('TRACE_HARNESS_SEED', undefined),
    generation: decimal('TRACE_HARNESS_GENERATION', 0n) ?? 0n,
    storeLatencyUs: Number(decimal('TRACE_HARNESS_STORE_LATENCY_US', 0n)),
    tracing: text('OTEL_SDK_DISABLED').trim().toLowerCase() !== 'true',
    exportSpans: text('OTEL_TRACES_EXPORTER').trim().toLowerCase() !== 'none',
    protocol: text('OTEL_EXPORTER_OTLP_PROTOCOL') || 'http/protobuf',
    serviceName: text('OTEL_SERVICE_NAME') || 'cal.com',
    // Each peer's timeout on virtual time (CONTRACT.md §6).
    timeoutsUs: { calendar: 10e6, stripe: 80e6, email: 10e6, webhook: 10e6 },
  };
}

/**
 * The event type `id`: a configured one, or a plain, free, unseated one without reminders.
 * @param {Config} config
 * @param {number} id
 * @returns {EventType}
 */
function eventTypeOf(config, id) {
  return (
    config.eventTypes.find((e) => e.id === id) ?? {
      id,
      price: null,
      currency: 'usd',
      seats: null,
      reminders: false,
    }
  );
}

module.exports = { loadConfig, eventTypeOf };
