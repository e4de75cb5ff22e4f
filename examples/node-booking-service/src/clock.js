'use strict';
// Virtual time (CONTRACT.md §9). Each request has its own flow clock, kept in an
// AsyncLocalStorage: it starts at the request's `x-virtual-now-us` and only moves when the flow
// says so (a peer's declared latency, a store transaction, a webhook backoff). Spans and events
// are stamped with it, so durations and "5 minutes later" come out as the scenario wrote them,
// although nothing sleeps.

const { AsyncLocalStorage } = require('node:async_hooks');

/** Virtual zero, 2026-03-02T09:00:00Z, in Unix seconds. */
const EPOCH_UNIX_SECONDS = 1772442000;

/**
 * One request's flow: its clock (virtual microseconds) and its request id.
 * @typedef {object} Flow
 * @property {number} nowUs
 * @property {number} startUs
 * @property {string} requestId
 */

/** @type {AsyncLocalStorage<Flow>} */
const flows = new AsyncLocalStorage();

/**
 * A flow starting at the `x-virtual-now-us` header's value (0 if absent or not a number).
 * @param {string | string[] | undefined} header
 * @param {string} requestId
 * @returns {Flow}
 */
function newFlow(header, requestId) {
  const value = Array.isArray(header) ? header[0] : header;
  const parsed = value !== undefined && /^\d+$/.test(value.trim()) ? Number(value.trim()) : 0;
  const startUs = Number.isSafeInteger(parsed) ? parsed : 0;
  return { nowUs: startUs, startUs, requestId };
}

/**
 * Runs `fn` on `flow`'s clock.
 * @template T
 * @param {Flow} flow
 * @param {() => T} fn
 * @returns {T}
 */
function runInFlow(flow, fn) {
  return flows.run(flow, fn);
}

/** @returns {Flow | undefined} */
function currentFlow() {
  return flows.getStore();
}

/** @returns {number} the flow's virtual now, in microseconds (0 outside a flow) */
function now() {
  return flows.getStore()?.nowUs ?? 0;
}

/** @param {number} us microseconds to move the flow's clock on by */
function advance(us) {
  const flow = flows.getStore();
  if (flow && us > 0) flow.nowUs += us;
}

/**
 * A virtual instant as OpenTelemetry's HrTime, `[unix seconds, nanoseconds]`: exact, where a
 * millisecond number would round.
 * @param {number} us
 * @returns {[number, number]}
 */
function hrTime(us) {
  const seconds = Math.floor(us / 1e6);
  return [EPOCH_UNIX_SECONDS + seconds, (us - seconds * 1e6) * 1000];
}

/** @returns {[number, number]} the flow's now as HrTime */
function hrNow() {
  return hrTime(now());
}

/** @returns {number} the flow's now in Unix seconds, as Stripe's tolerance check reads it */
function unixSeconds() {
  return EPOCH_UNIX_SECONDS + Math.floor(now() / 1e6);
}

/**
 * A duration in the scenarios' notation: `0s`, `200ms`, `4.2s`, `1.25s`, `5m`, `1h30m`
 * (harness/clock.rs `Compact`).
 * @param {number} us
 * @returns {string}
 */
function compact(us) {
  const MS = 1e3;
  const S = 1e6;
  const M = 60 * S;
  const H = 60 * M;
  const trim = (/** @type {string} */ s) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (us === 0) return '0s';
  if (us % H === 0) return `${us / H}h`;
  if (us > H && us % M === 0) return `${Math.floor(us / H)}h${Math.floor((us % H) / M)}m`;
  if (us % M === 0) return `${us / M}m`;
  if (us > H) return `${Math.floor(us / H)}h${compact(us % H)}`;
  if (us > M) return `${Math.floor(us / M)}m${compact(us % M)}`;
  if (us >= S && us % (100 * MS) === 0) return `${trim((us / S).toFixed(1))}s`;
  if (us >= S) return `${trim((us / S).toFixed(3))}s`;
  if (us % MS === 0) return `${us / MS}ms`;
  return `${us}us`;
}

/**
 * A delay as log lines speak it: whole hours, else minutes rounded to the nearest, else the
 * compact notation (harness/clock.rs `Spoken`).
 * @param {number} us
 * @returns {string}
 */
function spoken(us) {
  const MINUTE = 60e6;
  const HOUR = 60 * MINUTE;
  const plural = (/** @type {number} */ n, /** @type {string} */ unit) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (us >= HOUR && us % HOUR === 0) return plural(us / HOUR, 'hour');
  if (us >= MINUTE) return plural(Math.floor((us + MINUTE / 2) / MINUTE), 'minute');
  return compact(us);
}

module.exports = {
  newFlow,
  runInFlow,
  currentFlow,
  now,
  advance,
  hrTime,
  hrNow,
  unixSeconds,
  spoken,
  compact,
};
