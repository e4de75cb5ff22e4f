'use strict';
// Crash points (CONTRACT.md §6.5), test-only like the virtual clock: a cron call's
// `x-virtual-crash` header (`after_send`, or `after_send; job=2`) arms one, and at that point
// of that job the process dies: it exports the spans that have ended, writes why on standard
// error and exits at once with status 70, answering nothing, committing nothing more and
// giving no lease back. The span still open is never exported, as with a real crash.

const { flushTelemetry } = require('./telemetry');

const POINTS = ['after_claim', 'after_send', 'before_commit'];
/** The exit status of a process that died at a crash point. */
const CRASH_EXIT_STATUS = 70;

/**
 * @typedef {object} ArmedCrash
 * @property {string} point  one of `after_claim`, `after_send`, `before_commit`
 * @property {number} job  which of the call's jobs, from 1
 */

/**
 * The crash a header value arms; null for an absent or unreadable one.
 * @param {string | string[] | undefined} value
 * @returns {ArmedCrash | null}
 */
function armedCrash(value) {
  if (typeof value !== 'string') return null;
  const parts = value.split(';').map((p) => p.trim());
  const [point, job, ...rest] = parts;
  if (!POINTS.includes(point) || rest.length > 0) return null;
  if (job === undefined) return { point, job: 1 };
  const n = /^job=([1-9][0-9]*)$/.exec(job);
  return n ? { point, job: Number(n[1]) } : null;
}

/**
 * The point armed on the call's `job`-th job, or null.
 * @param {ArmedCrash | null} crash
 * @param {number} job
 * @returns {string | null}
 */
function crashAt(crash, job) {
  return crash && crash.job === job ? crash.point : null;
}

/**
 * Dies at the armed point: never resolves.
 * @param {ArmedCrash | null} crash
 * @returns {Promise<never>}
 */
async function die(crash) {
  await flushTelemetry().catch(() => {});
  process.stderr.write(
    `crashed at \`${crash?.point}\` of the cron call's job ${crash?.job}, as its x-virtual-crash header asked\n`,
  );
  process.exit(CRASH_EXIT_STATUS);
}

module.exports = { armedCrash, crashAt, die, CRASH_EXIT_STATUS };
