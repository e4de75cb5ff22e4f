'use strict';
// The cron-run jobs (CONTRACT.md §5.2, §6.3, §6.4): BOOKING_CREATED webhook deliveries, signed
// with X-Cal-Signature-256 and retried with backoff inside one `webhook_execution` span, and
// attendee reminder e-mails, one `schedule_mandatory_reminder` span per booking. Each job
// continues the trace of the span that scheduled it, read from its row: that span is its remote
// parent and the target of a follows-from link (harness/booking/jobs.rs).
//
// A claim leases its jobs to this process (CONTRACT.md §6.5); a job re-claimed after its lease
// expired says so first in its span, and one claimed too often ends failed. A cron call's
// `x-virtual-crash` header arms a crash point: at it, this process exports what has ended and
// exits at once (src/crash.js).

const crypto = require('node:crypto');
const clock = require('./clock');
const { crashAt, die } = require('./crash');
const { MAX_JOB_CLAIMS } = require('./store');
const { inSpan, log, contextFrom, SpanKind, ROOT_CONTEXT, trace } = require('./telemetry');

const TARGET = 'trace_harness::booking::jobs';
const WEBHOOK_MAX_ATTEMPTS = 4;
/**
 * `410 Gone` ends a delivery at once: the subscriber no longer wants this webhook (Standard
 * Webhooks). Every other failure, another 4xx included, is retried, as Stripe and Shopify retry
 * every non-2xx answer. The reason, and its event's message after the attempt's prefix:
 */
const GONE_REASON = 'HTTP 410; giving up: 410 Gone is not retried';
/** What a job's span says when its outcome was not recorded: another claim holds it now. */
const LEASE_LOST = "Outcome not recorded: the job's lease expired and another claim holds it";

/**
 * The warning a re-claimed job's span opens with, if `claim` is a re-claim.
 * @param {import('./store').Claim} claim
 */
function announceRerun(claim) {
  if (!claim.previous) return;
  const { how, holder } = claim.previous;
  log('warn', TARGET, `Re-run after ${how} lease (attempt ${claim.attempt}, previous holder process ${holder})`, {
    claim: claim.attempt,
    previous_holder: holder,
  });
}

/**
 * Why a job claimed too often ends failed, or null if it may run.
 * @param {import('./store').Claim} claim
 * @returns {string | null}
 */
function abandoned(claim) {
  if (claim.attempt <= MAX_JOB_CLAIMS) return null;
  return `claimed ${MAX_JOB_CLAIMS} times without finishing (last holder process ${claim.previous?.holder ?? 0})`;
}

/**
 * `1 due job`, `2 due jobs`: what a cron run found to do, as its first line says.
 * @param {number} n
 * @param {string} what
 * @returns {string}
 */
function dueCount(n, what) {
  return `${n} due ${what}${n === 1 ? '' : 's'}`;
}

/**
 * The wait before retry `retry` (1-based): 30 s, 60 s, 120 s…, capped at 10 minutes.
 * @param {number} retry
 * @returns {number} microseconds
 */
function backoffUs(retry) {
  return Math.min(30e6 * 2 ** (retry - 1), 600e6);
}

/**
 * Cal.com's X-Cal-Signature-256: the hex HMAC-SHA256 of the raw body.
 * @param {string} secret
 * @param {string} body
 */
function calSignature(secret, body) {
  return crypto.createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * @param {{config: import('./config').Config, store: any, http: ReturnType<typeof import('./outbound').outbound>}} app
 */
function cronJobs(app) {
  const { config, store, http } = app;

  /**
   * How a job's span stands to the span that scheduled it: its parent (remote) and, unless the
   * unlinked_jobs bug is planted, a follows-from link; a row without a valid context starts a
   * trace of its own.
   * @param {Record<string, string> | undefined} carrier
   * @returns {import('./telemetry').SpanOptions}
   */
  function continuing(carrier) {
    const cause = contextFrom(carrier);
    if (!cause) return { kind: SpanKind.SERVER, parent: ROOT_CONTEXT };
    if (config.bugs.has('unlinked_jobs')) return { kind: SpanKind.SERVER, parent: cause };
    return { kind: SpanKind.CONSUMER, parent: cause, followsFrom: trace.getSpanContext(cause) };
  }

  /**
   * Whether a cron call presents the key: the whole `authorization` header or, without that
   * header, the `apiKey` query parameter (Cal.com's `req.headers.authorization || req.query.apiKey`).
   * @param {Record<string, string | string[] | undefined>} headers
   * @param {string} url
   */
  function authorised(headers, url) {
    const header = headers.authorization;
    const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
    const presented = typeof header === 'string' ? header : new URLSearchParams(query).get('apiKey');
    return presented !== null && presented === config.cronApiKey;
  }

  /**
   * `POST /api/cron/webhookTriggers`: delivers every due webhook job, one after another.
   * @param {import('./crash').ArmedCrash | null} crash  the crash the call's header arms
   * @returns {Promise<{status: number, body: unknown}>}
   */
  async function runWebhookCron(crash) {
    const jobs = store.claimDueWebhookJobs(clock.now(), Number(config.generation));
    log('debug', TARGET, `Cron webhookTriggers: ${dueCount(jobs.length, 'job')}`);
    let delivered = 0;
    for (const [i, job] of jobs.entries()) {
      const here = crashAt(crash, i + 1);
      if (here === 'after_claim') await die(crash);
      if (await executeWebhook(job, here, crash)) delivered += 1;
    }
    return { status: 200, body: { delivered, executed: jobs.length } };
  }

  /**
   * Records a webhook job's outcome; a crash armed `before_commit` on it happens first.
   * @param {import('./store').DueWebhookJob} job
   * @param {string | null} failure
   * @param {number} attempts
   * @param {string | null} here  the crash point armed on this job
   * @param {import('./crash').ArmedCrash | null} crash
   */
  async function finishWebhook(job, failure, attempts, here, crash) {
    if (here === 'before_commit') await die(crash);
    if (!store.finishWebhookJob(job.id, job.claim, failure, attempts, clock.now())) log('warn', TARGET, LEASE_LOST);
  }

  /**
   * One job in its own `webhook_execution` span: up to four attempts, the same bytes each time,
   * and none after a `410 Gone`.
   * @param {import('./store').DueWebhookJob} job
   * @param {string | null} here  the crash point armed on this job
   * @param {import('./crash').ArmedCrash | null} crash
   * @returns {Promise<boolean>} whether the subscriber accepted it
   */
  async function executeWebhook(job, here, crash) {
    const { _traceContext: carrier, ...delivery } = JSON.parse(job.payload);
    const options = continuing(carrier);
    options.attributes = { job_id: job.id, trigger_event: job.triggerEvent };
    return inSpan('webhook_execution', options, async () => {
      announceRerun(job.claim);
      const reason = abandoned(job.claim);
      if (reason !== null) {
        log('error', TARGET, `Giving up: ${reason}`);
        await finishWebhook(job, reason, 0, here, crash);
        return false;
      }
      const delayUs = clock.now() - job.createdAtUs;
      const body = JSON.stringify(delivery);
      const signature = calSignature(config.webhookSecret, body);
      let attempt = 1;
      /** @type {string | null} */
      let failure;
      for (;;) {
        failure = null;
        let gone = false;
        try {
          const reply = await http.post(
            job.subscriberUrl,
            'application/json',
            body,
            { 'x-cal-signature-256': signature },
            config.timeoutsUs.webhook,
          );
          if (reply.status === 410) gone = true;
          if (reply.status < 200 || reply.status >= 300) failure = `HTTP ${reply.status}`;
        } catch (e) {
          failure = /** @type {Error} */ (e).message;
        }
        // After the subscriber's answer to the job's first send, before anything else.
        if (here === 'after_send') await die(crash);
        const retry = attempt - 1;
        if (failure === null && retry === 0) {
          log('info', TARGET, `Webhook executed ${clock.spoken(delayUs)} later`, { attempt });
        } else if (failure === null) {
          log('info', TARGET, `Retry attempt ${retry} succeeded`, { attempt });
        } else if (gone) {
          failure = GONE_REASON;
          const failed = retry === 0 ? 'Webhook execution failed' : `Retry attempt ${retry} failed`;
          log('error', TARGET, `${failed}: ${GONE_REASON}`, { attempt });
          break;
        } else if (attempt === WEBHOOK_MAX_ATTEMPTS) {
          log('error', TARGET, `Retry attempt ${retry} failed: ${failure}; giving up after ${attempt} attempts`, { attempt });
        } else if (retry === 0) {
          log('warn', TARGET, `Webhook execution failed: ${failure}`, { attempt });
        } else {
          log('warn', TARGET, `Retry attempt ${retry} failed: ${failure}`, { attempt });
        }
        if (failure === null || attempt === WEBHOOK_MAX_ATTEMPTS) break;
        clock.advance(backoffUs(attempt));
        attempt += 1;
      }
      await finishWebhook(job, failure, attempt, here, crash);
      return failure === null;
    });
  }

  /**
   * `POST /api/cron/workflows/scheduleEmailReminders`: sends every due reminder, one span per
   * booking, attendee by attendee in seat order.
   * @param {import('./crash').ArmedCrash | null} crash  the crash the call's header arms
   * @returns {Promise<{status: number, body: unknown}>}
   */
  async function runReminderCron(crash) {
    /** @type {import('./store').DueReminder[]} */
    const due = store.claimDueReminders(clock.now(), Number(config.generation));
    log('debug', TARGET, `Cron scheduleEmailReminders: ${dueCount(due.length, 'reminder')}`);
    let sent = 0;
    for (let i = 0; i < due.length; ) {
      let j = i;
      while (j < due.length && due[j].bookingId === due[i].bookingId) j += 1;
      sent += await sendReminders(due.slice(i, j), i + 1, crash);
      i = j;
    }
    return { status: 200, body: { due: due.length, sent } };
  }

  /**
   * Records a reminder's outcome; a crash armed `before_commit` on it happens first.
   * @param {import('./store').DueReminder} reminder
   * @param {string | null} failure
   * @param {string | null} here
   * @param {import('./crash').ArmedCrash | null} crash
   */
  async function finishReminder(reminder, failure, here, crash) {
    if (here === 'before_commit') await die(crash);
    if (!store.finishReminder(reminder.id, reminder.claim, failure, clock.now())) {
      log('warn', TARGET, LEASE_LOST, { attendee: reminder.seat });
    }
  }

  /**
   * One booking's due reminders in one span that continues the booking's trace; each
   * attendee's result is logged and stored on its own. They are the cron call's jobs
   * `firstJob`, `firstJob + 1`, …, for `crash`.
   * @param {import('./store').DueReminder[]} reminders
   * @param {number} firstJob
   * @param {import('./crash').ArmedCrash | null} crash
   * @returns {Promise<number>} how many the provider accepted
   */
  async function sendReminders(reminders, firstJob, crash) {
    const first = reminders[0];
    if (crashAt(crash, firstJob) === 'after_claim') await die(crash);
    const options = continuing(first.context);
    options.attributes = { booking_uid: first.bookingUid, reminders: reminders.length };
    return inSpan('schedule_mandatory_reminder', options, async () => {
      // One claim took the booking's reminders together: one line says it is a re-run.
      const again = reminders.find((r) => r.claim.previous !== null);
      if (again) announceRerun(again.claim);
      let sent = 0;
      for (const [i, reminder] of reminders.entries()) {
        const here = crashAt(crash, firstJob + i);
        if (i > 0 && here === 'after_claim') await die(crash);
        const seat = reminder.seat;
        const reason = abandoned(reminder.claim);
        if (reason !== null) {
          log('error', TARGET, `Email to attendee ${seat} not sent: ${reason}`, { attendee: seat });
          await finishReminder(reminder, reason, here, crash);
          continue;
        }
        const failure = await sendEmail(reminder);
        // After the provider's answer, before anything else.
        if (here === 'after_send') await die(crash);
        if (failure === null) {
          sent += 1;
          log('info', TARGET, `Email sent to attendee ${seat}: success`, { attendee: seat });
        } else {
          log('error', TARGET, `Email sent to attendee ${seat}: failed (${failure.reason})`, {
            attendee: seat,
            provider_message: failure.detail,
          });
        }
        await finishReminder(reminder, failure && `${failure.reason}: ${failure.detail}`, here, crash);
      }
      return sent;
    });
  }

  /**
   * `POST /v3/mail/send` for one reminder; null when accepted, else why not.
   * @param {import('./store').DueReminder} reminder
   * @returns {Promise<{reason: string, detail: string} | null>}
   */
  async function sendEmail(reminder) {
    // Keys in the order the in-process service writes them (serde_json sorts them).
    const mail = {
      ...(reminder.batchId !== null ? { batch_id: reminder.batchId } : {}),
      content: [{ type: 'text/plain', value: `Hi ${reminder.name}, this is a reminder of ${reminder.title}.` }],
      custom_args: { bookingUid: reminder.bookingUid },
      from: { email: 'notifications@cal.com', name: 'Cal.com' },
      personalizations: [{ to: [{ email: reminder.email, name: reminder.name }] }],
      subject: `Reminder: ${reminder.title}`,
    };
    try {
      const reply = await http.post(
        `${config.emailUrl}/v3/mail/send`,
        'application/json',
        JSON.stringify(mail),
        { authorization: 'Bearer SG.trace-harness' },
        config.timeoutsUs.email,
      );
      if (reply.status >= 200 && reply.status < 300) return null;
      /** @type {any} */
      let first;
      try {
        first = JSON.parse(reply.body)?.errors?.[0];
      } catch {
        first = undefined;
      }
      const detail = typeof first?.message === 'string' ? first.message : `HTTP ${reply.status}`;
      const onEmail = typeof first?.field === 'string' && first.field.endsWith('.email');
      return { reason: onEmail ? 'invalid email' : `HTTP ${reply.status}`, detail };
    } catch (e) {
      const reason = /** @type {Error} */ (e).message;
      return { reason, detail: reason };
    }
  }

  return { authorised, runWebhookCron, runReminderCron };
}

module.exports = { cronJobs, backoffUs, calSignature };
