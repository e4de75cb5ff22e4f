'use strict';
// The service's outbound HTTP calls (CONTRACT.md §6, §7.2, §9), over Node's own fetch: each
// carries the current span's context (`propagation.inject`, unless the drop_traceparent bug is
// planted) and the flow's `x-virtual-now-us`, and settles on virtual time: the peer's declared
// `x-virtual-latency-us` moves the flow's clock, a declared latency over the peer's timeout is a
// `Connection timeout` after exactly the timeout, and `x-virtual-fault` is `Connection refused`.

const { context, propagation } = require('@opentelemetry/api');
const clock = require('./clock');

/** A guard against a peer that never answers: real time, never part of a replay's outcome. */
const REAL_TIME_GUARD_MS = 30_000;
/** The most of a reply body read into a log line. */
const MAX_REPLY_BYTES = 64 * 1024;

/** Why a call got no answer; its message is the contract's reason text. */
class CallError extends Error {}

/**
 * @typedef {object} Reply
 * @property {number} status
 * @property {string} body
 */

/**
 * @param {unknown} e
 * @returns {CallError}
 */
function transportFailure(e) {
  const error = /** @type {Error & {cause?: {code?: string, message?: string}}} */ (e);
  const code = error.cause?.code;
  if (code === 'ECONNREFUSED') return new CallError('Connection refused');
  const detail = error.cause?.message ?? error.message;
  return new CallError(`Connection failed: ${detail}`);
}

/**
 * Makes HTTP clients for one service.
 * @param {{propagate: boolean}} options  propagate: whether calls carry `traceparent`
 */
function outbound({ propagate }) {
  /**
   * POSTs `body` (already encoded) and advances the flow's clock by the peer's declared
   * latency, or by `timeoutUs` if the peer is slower than that.
   * @param {string} url
   * @param {string} contentType
   * @param {string} body
   * @param {Record<string, string>} extraHeaders
   * @param {number} timeoutUs
   * @returns {Promise<Reply>}  rejects with a CallError
   */
  async function post(url, contentType, body, extraHeaders, timeoutUs) {
    /** @type {Record<string, string>} */
    const headers = { 'content-type': contentType, 'x-virtual-now-us': String(clock.now()) };
    if (propagate) propagation.inject(context.active(), headers);
    Object.assign(headers, extraHeaders);
    // A URL that does not parse (an empty base URL leaves a bare path) is no call at all: what
    // the in-process service's client (reqwest) answers, a builder error.
    if (!URL.canParse(url)) throw new CallError('Connection failed: builder error');
    /** @type {Response} */
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(REAL_TIME_GUARD_MS),
      });
    } catch (e) {
      throw transportFailure(e);
    }
    const declared = Number(response.headers.get('x-virtual-latency-us') ?? '0');
    const latencyUs = Number.isFinite(declared) && declared > 0 ? declared : 0;
    if (latencyUs > timeoutUs) {
      await response.body?.cancel().catch(() => {});
      clock.advance(timeoutUs);
      throw new CallError('Connection timeout');
    }
    clock.advance(latencyUs);
    if (response.headers.has('x-virtual-fault')) {
      await response.body?.cancel().catch(() => {});
      throw new CallError('Connection refused');
    }
    let text;
    try {
      const bytes = Buffer.from(await response.arrayBuffer());
      text = bytes.subarray(0, MAX_REPLY_BYTES).toString('utf8');
    } catch (e) {
      throw transportFailure(e);
    }
    return { status: response.status, body: text };
  }
  return { post };
}

module.exports = { outbound, CallError };
