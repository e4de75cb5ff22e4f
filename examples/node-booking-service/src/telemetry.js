'use strict';
// OpenTelemetry set up by hand from the contract's OTEL_* variables (CONTRACT.md §3, §8): a
// tracer provider with the W3C propagator and an AsyncLocalStorage context manager, an
// OTLP/HTTP exporter in the asked-for encoding behind a batch processor with a 1 ms delay (its
// exports run one at a time, so spans arrive in the order they ended), and no automatic
// instrumentation at all. Operation spans are opened by `inSpan`, on the flow's virtual clock;
// log lines are written by `log`, as events of the current span and on standard output.

const api = require('@opentelemetry/api');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { resourceFromAttributes, defaultResource } = require('@opentelemetry/resources');
const { BasicTracerProvider, BatchSpanProcessor, AlwaysOnSampler } = require('@opentelemetry/sdk-trace-base');

const clock = require('./clock');
const { SeededIdGenerator } = require('./ids');

const { context, propagation, trace, SpanKind, SpanStatusCode, ROOT_CONTEXT } = api;

/** @type {import('@opentelemetry/sdk-trace-base').BasicTracerProvider | undefined} */
let provider;
/** @type {api.Tracer | undefined} */
let tracer;
/** @type {SeededIdGenerator | undefined} */
let seededIds;
/** Each open span's operation, for the log lines' `op:` prefix. */
const operations = new WeakMap();
/** Spans whose status is already error: the first error event's message is the status. */
const failed = new WeakSet();

/**
 * Sets up tracing as `config` says; with tracing off (`OTEL_SDK_DISABLED=true`) registers
 * nothing, so no span is made and nothing is propagated.
 * @param {import('./config').Config} config
 */
function setupTelemetry(config) {
  if (!config.tracing) return;
  const spanProcessors = [];
  if (config.exportSpans) {
    // The exporters read OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or …_ENDPOINT) themselves.
    const { OTLPTraceExporter } =
      config.protocol === 'http/json'
        ? require('@opentelemetry/exporter-trace-otlp-http')
        : require('@opentelemetry/exporter-trace-otlp-proto');
    spanProcessors.push(
      // OTEL_BSP_SCHEDULE_DELAY may still override the delay; the JS default, 5000 ms, would
      // make every step of a replay wait five seconds (CONTRACT.md §8.7).
      new BatchSpanProcessor(new OTLPTraceExporter(), {
        scheduledDelayMillis: Number(process.env.OTEL_BSP_SCHEDULE_DELAY ?? 1),
      }),
    );
  }
  // With TRACE_HARNESS_SEED, trace and span ids are the in-process replay's (src/ids.js).
  seededIds = config.seed === undefined ? undefined : new SeededIdGenerator(config.seed, config.generation);
  provider = new BasicTracerProvider({
    ...(seededIds ? { idGenerator: seededIds } : {}),
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': config.serviceName })),
    sampler: new AlwaysOnSampler(),
    spanProcessors,
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  tracer = trace.getTracer('node-booking-service', '0.1.0');
}

/** Exports every span that has ended, and returns once they are sent (a crash point). */
async function flushTelemetry() {
  if (!provider) return;
  await provider.forceFlush();
}

/** Exports every span that has ended and stops the exporter (SIGTERM). */
async function shutdownTelemetry() {
  if (!provider) return;
  await provider.forceFlush();
  await provider.shutdown();
}

/** @returns {boolean} whether spans are made */
function tracing() {
  return tracer !== undefined;
}

/**
 * @typedef {object} SpanOptions
 * @property {api.SpanKind} [kind]
 * @property {api.Attributes} [attributes]
 * @property {api.Context} [parent]  the parent context; by default the active one
 * @property {api.SpanContext} [followsFrom]  a follows-from link to this span
 */

/**
 * Runs `fn` in a new span named `op`, which starts and ends on the flow's clock. Every span
 * carries the flow's `request.id`.
 * @template T
 * @param {string} op
 * @param {SpanOptions} options
 * @param {(span: api.Span | undefined) => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function inSpan(op, options, fn) {
  if (!tracer) return fn(undefined);
  const parent = options.parent ?? context.active();
  const requestId = clock.currentFlow()?.requestId;
  const attributes = { ...options.attributes, ...(requestId ? { 'request.id': requestId } : {}) };
  const links = options.followsFrom
    ? [{ context: options.followsFrom, attributes: { 'opentracing.ref_type': 'follows_from' } }]
    : [];
  const parentContext = trace.getSpanContext(parent);
  const localParent = parentContext !== undefined && trace.isSpanContextValid(parentContext) && !parentContext.isRemote;
  seededIds?.plan(!localParent);
  const span = tracer.startSpan(
    op,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes, links, startTime: clock.hrNow() },
    parent,
  );
  seededIds?.settle();
  // OpenTelemetry JS sets only the sampled flag (01). Like the in-process service, also set
  // W3C Trace Context Level 2's random flag (02) on a trace this service starts (its trace ids
  // are random, or seeded as the harness's are), and keep a parent's: `traceparent`s then read
  // `-03` as the in-process replay's do. Flags are not judged (CONTRACT.md §7.1); this is for
  // byte-equal reports. The SDK's span context is a plain object read at export and inject.
  const random = parentContext && trace.isSpanContextValid(parentContext) ? parentContext.traceFlags & 0x02 : 0x02;
  span.spanContext().traceFlags |= random;
  operations.set(span, op);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } finally {
    span.end(clock.hrNow());
  }
}

/**
 * The remote context a job row or Stripe's metadata carries (`{traceparent, tracestate}`),
 * read with the W3C propagator; undefined when it names no valid context.
 * @param {Record<string, string> | undefined | null} carrier
 * @returns {api.Context | undefined}
 */
function contextFrom(carrier) {
  if (!tracer || !carrier || typeof carrier.traceparent !== 'string') return undefined;
  const extracted = propagation.extract(ROOT_CONTEXT, carrier);
  const spanContext = trace.getSpanContext(extracted);
  return spanContext && trace.isSpanContextValid(spanContext) ? extracted : undefined;
}

/**
 * The active span's context as a carrier (`{traceparent, tracestate?}`), as Cal.com stores it
 * in a job's `_traceContext`; undefined when untraced.
 * @returns {Record<string, string> | undefined}
 */
function currentCarrier() {
  if (!tracer) return undefined;
  /** @type {Record<string, string>} */
  const carrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ? carrier : undefined;
}

/**
 * Writes a log line: an event of the current span (its `level` and `target` attributes, then
 * `fields`), stamped on the flow's clock, and a line on standard output in the seed's format
 * (`[trace:… span:… op:…] message`, or `[Request ID: …] message` outside a span). An `error`
 * line makes its span's status error, with the first such message.
 * @param {'debug' | 'info' | 'warn' | 'error'} level
 * @param {string} target  the module the line comes from
 * @param {string} message
 * @param {api.Attributes} [fields]
 */
function log(level, target, message, fields = {}) {
  const span = trace.getSpan(context.active());
  const op = span && operations.get(span);
  const oneLine = message.replace(/[\r\n]+/g, ' ');
  if (span && op && span.isRecording()) {
    span.addEvent(message, { level, target, ...fields }, clock.hrNow());
    if (level === 'error' && !failed.has(span)) {
      failed.add(span);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    const { traceId, spanId } = span.spanContext();
    process.stdout.write(`[trace:${traceId} span:${spanId} op:${op}] ${oneLine}\n`);
  } else {
    const requestId = clock.currentFlow()?.requestId ?? '-';
    process.stdout.write(`[Request ID: ${requestId}] ${oneLine}\n`);
  }
}

module.exports = {
  setupTelemetry,
  flushTelemetry,
  shutdownTelemetry,
  tracing,
  inSpan,
  contextFrom,
  currentCarrier,
  log,
  SpanKind,
  context,
  propagation,
  trace,
  ROOT_CONTEXT,
};
