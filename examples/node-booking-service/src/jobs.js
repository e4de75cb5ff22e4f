'use strict';
// The cron-run jobs (CONTRACT.md §5.2, §6.3, §6.4): BOOKING_CREATED webhook deliveries, signed
// with X-Cal-Signature-256 and retried with backoff inside one `webhook_execution` span, and
// attendee reminder e-mails, one `schedule_mandatory_reminder` span per booking. Each job
// continues the trace of the span that scheduled it, read from its row: that span is its remote
// parent and the target of a follows-from link (harness/booking/jobs.rs).

const crypto = require('node:crypto');
const clock = require('./clock');
const { inSpan, log, contextFrom, SpanKind, ROOT_CONTEXT, trace } = require('./telemetry');

const TARGET = 'trace_harness::booking::jobs';
const WEBHOOK_MAX_ATTEMPTS = 4;
/**
 * `410 Gone` ends a delivery at once: the subscriber no longer wants this webhook (Standard
 * Webhooks). Every other failure, another 4xx included, is retried, as Stripe and Shopify retry
 * every non-2xx answer. The reason, and its event's message after the attempt's prefix:
 */
const GONE_REASON = 'HTTP 410; giving up: 410 Gone is not retried';

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
   * @returns {Promise<{status: number, body: unknown}>}
   */
  async function runWebhookCron() {
    const jobs = store.claimDueWebhookJobs(clock.now());
    log('debug', TARGET, `Cron webhookTriggers: ${dueCount(jobs.length, 'job')}`);
    let delivered = 0;
    for (const job of jobs) {
      if (await executeWebhook(job)) delivered += 1;
    }
    return { status: 200, body: { delivered, executed: jobs.length } };
  }

  /**
   * One job in its own `webhook_execution` span: up to four attempts, the same bytes each time,
   * and none after a `410 Gone`.
   * @param {import('./store').DueWebhookJob} job
   * @returns {Promise<boolean>} whether the subscriber accepted it
   */
  async function executeWebhook(job) {
    const { _traceContext: carrier, ...delivery } = JSON.parse(job.payload);
    const options = continuing(carrier);
    options.attributes = { job_id: job.id, trigger_event: job.triggerEvent };
    return inSpan('webhook_execution', options, async () => {
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
      store.finishWebhookJob(job.id, failure, attempt, clock.now());
      return failure === null;
    });
  }

  /**
   * `POST /api/cron/workflows/scheduleEmailReminders`: sends every due reminder, one span per
   * booking, attendee by attendee in seat order.
   * @returns {Promise<{status: number, body: unknown}>}
   */
  async function runReminderCron() {
    /** @type {import('./store').DueReminder[]} */
    const due = store.claimDueReminders(clock.now());
    log('debug', TARGET, `Cron scheduleEmailReminders: ${dueCount(due.length, 'reminder')}`);
    let sent = 0;
    for (let i = 0; i < due.length; ) {
      let j = i;
      while (j < due.length && due[j].bookingId === due[i].bookingId) j += 1;
      sent += await sendReminders(due.slice(i, j));
      i = j;
    }
    return { status: 200, body: { due: due.length, sent } };
  }

  /**
   * One booking's due reminders in one span that continues the booking's trace; each
   * attendee's result is logged and stored on its own.
   * @param {import('./store').DueReminder[]} reminders
   * @returns {Promise<number>} how many the provider accepted
   */
  async function sendReminders(reminders) {
    const first = reminders[0];
    const options = continuing(first.context);
    options.attributes = { booking_uid: first.bookingUid, reminders: reminders.length };
    return inSpan('schedule_mandatory_reminder', options, async () => {
      let sent = 0;
      for (const reminder of reminders) {
        const seat = reminder.seat;
        const failure = await sendEmail(reminder);
        if (failure === null) {
          sent += 1;
          log('info', TARGET, `Email sent to attendee ${seat}: success`, { attendee: seat });
        } else {
          log('error', TARGET, `Email sent to attendee ${seat}: failed (${failure.reason})`, {
            attendee: seat,
            provider_message: failure.detail,
          });
        }
        store.finishReminder(reminder.id, failure && `${failure.reason}: ${failure.detail}`, clock.now());
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
