'use strict';
// The durable store: SQLite compiled to WebAssembly (sql.js), so it installs from the npm
// registry alone. The database lives in memory and is written to DATABASE_PATH after every
// committed transaction (to a temporary file, then renamed over the old one), so a restarted
// process on the same path finds every booking and job row. sql.js is synchronous: a
// transaction runs to its end without yielding, so no other request interleaves with it.
//
// Each transaction costs TRACE_HARNESS_STORE_LATENCY_US on the flow's clock, as the in-process
// service's do (CONTRACT.md §9). Job rows keep the W3C context of the span that scheduled them:
// a webhook job in its payload's `_traceContext` (as Cal.com's tracing does), a reminder and a
// payment in a `trace_context` column, each as the `{traceparent, tracestate}` carrier the
// propagator wrote.

const fs = require('node:fs');
const path = require('node:path');
const initSqlJs = require('sql.js');
const clock = require('./clock');

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bookings (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    event_type_id   INTEGER NOT NULL,
    title           TEXT NOT NULL,
    start_time      TEXT NOT NULL,
    end_time        TEXT NOT NULL,
    status          TEXT NOT NULL,
    paid            INTEGER NOT NULL DEFAULT 0,
    calendar_event  TEXT,
    request_id      TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attendees (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    seat            INTEGER NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    UNIQUE (booking_id, seat)
);
CREATE TABLE IF NOT EXISTS payments (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    external_id     TEXT NOT NULL UNIQUE,
    amount          INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    success         INTEGER NOT NULL DEFAULT 0,
    created_at_us   INTEGER NOT NULL,
    paid_at_us      INTEGER,
    last_error      TEXT,
    trace_context   TEXT
);
CREATE TABLE IF NOT EXISTS webhook_jobs (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    trigger_event   TEXT NOT NULL,
    subscriber_url  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    scheduled_at_us INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    finished_at_us  INTEGER,
    claims          INTEGER NOT NULL DEFAULT 0,
    lease_holder    INTEGER,
    lease_until_us  INTEGER
);
CREATE TABLE IF NOT EXISTS reminders (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    seat            INTEGER NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    batch_id        TEXT,
    scheduled_at_us INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    trace_context   TEXT,
    status          TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    finished_at_us  INTEGER,
    claims          INTEGER NOT NULL DEFAULT 0,
    lease_holder    INTEGER,
    lease_until_us  INTEGER
);
CREATE INDEX IF NOT EXISTS webhook_jobs_due ON webhook_jobs (status, scheduled_at_us);
CREATE INDEX IF NOT EXISTS reminders_due ON reminders (status, scheduled_at_us);
CREATE INDEX IF NOT EXISTS webhook_jobs_leased ON webhook_jobs (status, lease_until_us);
CREATE INDEX IF NOT EXISTS reminders_leased ON reminders (status, lease_until_us);
`;

/** How long one job of a claim is leased for (CONTRACT.md §6.5): 5 virtual minutes. */
const JOB_LEASE_US = 300e6;
/** The most times one job is claimed; one claimed again after that ends failed. */
const MAX_JOB_CLAIMS = 3;

/**
 * The claim a cron call makes of a row, from the row as it was before: a row held before is
 * a re-claim, `expired` if it was still running and `released` if its holder gave it back.
 * @param {Record<string, any>} row  with `status`, `claims`, `lease_holder`
 * @returns {Claim}
 */
function claimOf(row) {
  const claims = Number(row.claims);
  const previous =
    claims > 0 && row.lease_holder !== null
      ? {
          how: /** @type {'expired' | 'released'} */ (row.status === 'running' ? 'expired' : 'released'),
          holder: Number(row.lease_holder),
        }
      : null;
  return { attempt: claims + 1, previous };
}

/**
 * @typedef {{name: string, email: string}} Attendee
 * @typedef {Record<string, string>} Carrier
 * @typedef {object} NewBooking
 * @property {string} uid
 * @property {number} eventTypeId
 * @property {string} title
 * @property {string} startTime
 * @property {string} endTime
 * @property {string} status
 * @property {Attendee[]} attendees
 * @property {string | null} calendarEvent
 * @property {string} requestId
 * @property {number} createdAtUs
 * @property {{externalId: string, amount: number, currency: string, createdAtUs: number,
 *   context: Carrier | undefined} | undefined} payment
 * @typedef {object} Claim  one claim of a job by a cron call
 * @property {number} attempt  1 for its first claim, 2 for its first re-claim, …
 * @property {{how: 'expired' | 'released', holder: number} | null} previous  for a re-claim
 * @typedef {object} DueWebhookJob
 * @property {number} id
 * @property {string} triggerEvent
 * @property {string} subscriberUrl
 * @property {string} payload  as stored, `_traceContext` included
 * @property {number} createdAtUs
 * @property {Claim} claim
 * @typedef {object} DueReminder
 * @property {number} id
 * @property {number} bookingId
 * @property {string} bookingUid
 * @property {string} title
 * @property {number} seat
 * @property {string} name
 * @property {string} email
 * @property {string | null} batchId
 * @property {Carrier | undefined} context
 * @property {Claim} claim
 * @typedef {object} StoredPayment
 * @property {number} bookingId
 * @property {boolean} success
 * @property {number} createdAtUs
 * @property {Carrier | undefined} context
 */

/**
 * @param {string | null | undefined} text
 * @returns {Carrier | undefined}
 */
function carrierOf(text) {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens (creating if needed) the store at `file`; each transaction costs `latencyUs`.
 * @param {string} file
 * @param {number} latencyUs
 */
async function openStore(file, latencyUs) {
  const SQL = await initSqlJs();
  const db = fs.existsSync(file) ? new SQL.Database(fs.readFileSync(file)) : new SQL.Database();
  db.run('PRAGMA foreign_keys = ON');
  db.exec(SCHEMA);
  persist();

  function persist() {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
    fs.writeFileSync(tmp, db.export());
    fs.renameSync(tmp, file);
    // `export` resets pragmas.
    db.run('PRAGMA foreign_keys = ON');
  }

  /**
   * Rows of `sql` as objects.
   * @param {string} sql
   * @param {import('sql.js').BindParams} params
   * @returns {Record<string, any>[]}
   */
  function all(sql, params) {
    const stmt = db.prepare(sql);
    try {
      stmt.bind(params);
      const rows = [];
      while (stmt.step()) rows.push(stmt.getAsObject());
      return rows;
    } finally {
      stmt.free();
    }
  }

  /** @returns {number} */
  function lastId() {
    return Number(db.exec('SELECT last_insert_rowid()')[0].values[0][0]);
  }

  /**
   * Runs `fn` in one transaction, committed and written to disk, or rolled back.
   * @template T
   * @param {() => T} fn
   * @returns {T}
   */
  function transaction(fn) {
    clock.advance(latencyUs);
    db.run('BEGIN');
    try {
      const result = fn();
      db.run('COMMIT');
      persist();
      return result;
    } catch (e) {
      try {
        db.run('ROLLBACK');
      } catch {
        // Already rolled back by SQLite.
      }
      throw e;
    }
  }

  return {
    /**
     * Writes a booking, its attendees, its payment and its webhook jobs in one transaction.
     * `jobs` gets the booking's id and returns the jobs' rows.
     * @param {NewBooking} b
     * @param {(bookingId: number) => {triggerEvent: string, subscriberUrl: string, payload: string}[]} jobs
     * @returns {number} the booking's id
     */
    insertBooking(b, jobs) {
      return transaction(() => {
        db.run(
          `INSERT INTO bookings (uid, event_type_id, title, start_time, end_time, status,
              calendar_event, request_id, created_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [b.uid, b.eventTypeId, b.title, b.startTime, b.endTime, b.status, b.calendarEvent, b.requestId, b.createdAtUs],
        );
        const bookingId = lastId();
        b.attendees.forEach((a, i) => {
          db.run('INSERT INTO attendees (booking_id, seat, name, email) VALUES (?, ?, ?, ?)', [
            bookingId,
            i + 1,
            a.name,
            a.email,
          ]);
        });
        if (b.payment) {
          const p = b.payment;
          db.run(
            `INSERT INTO payments (booking_id, external_id, amount, currency, created_at_us, trace_context)
               VALUES (?, ?, ?, ?, ?, ?)`,
            [bookingId, p.externalId, p.amount, p.currency, p.createdAtUs, p.context ? JSON.stringify(p.context) : null],
          );
        }
        for (const job of jobs(bookingId)) {
          db.run(
            `INSERT INTO webhook_jobs (booking_id, trigger_event, subscriber_url, payload,
                scheduled_at_us, created_at_us) VALUES (?, ?, ?, ?, ?, ?)`,
            [bookingId, job.triggerEvent, job.subscriberUrl, job.payload, b.createdAtUs, b.createdAtUs],
          );
        }
        return bookingId;
      });
    },

    /**
     * Writes a booking's reminders, one per attendee (seat order), in one transaction.
     * @param {number} bookingId
     * @param {{seat: number, name: string, email: string, batchId: string | null}[]} reminders
     * @param {Carrier | undefined} context
     * @param {number} nowUs
     */
    insertReminders(bookingId, reminders, context, nowUs) {
      transaction(() => {
        for (const r of reminders) {
          db.run(
            `INSERT INTO reminders (booking_id, seat, name, email, batch_id, scheduled_at_us,
                created_at_us, trace_context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
            [bookingId, r.seat, r.name, r.email, r.batchId, nowUs, nowUs, context ? JSON.stringify(context) : null],
          );
        }
      });
    },

    /**
     * Claims the webhook jobs due at `nowUs`, oldest first: the pending ones whose time has come
     * and the running ones whose lease has expired (their holder died mid-job). Each is marked
     * `running` and leased to `holder` in the same transaction, for 5 minutes per job claimed,
     * so that no other cron call (here or after a restart) takes it while the lease lasts.
     * @param {number} nowUs
     * @param {number} holder  this process's generation
     * @returns {DueWebhookJob[]}
     */
    claimDueWebhookJobs(nowUs, holder) {
      return transaction(() => {
        const rows = all(
          `SELECT id, trigger_event, subscriber_url, payload, created_at_us, status, claims, lease_holder
             FROM webhook_jobs
             WHERE (status = 'pending' AND scheduled_at_us <= ?) OR (status = 'running' AND lease_until_us <= ?)
             ORDER BY id`,
          [nowUs, nowUs],
        );
        const until = nowUs + JOB_LEASE_US * rows.length;
        const jobs = rows.map((row) => ({
          id: Number(row.id),
          triggerEvent: String(row.trigger_event),
          subscriberUrl: String(row.subscriber_url),
          payload: String(row.payload),
          createdAtUs: Number(row.created_at_us),
          claim: claimOf(row),
        }));
        for (const job of jobs) {
          db.run(
            "UPDATE webhook_jobs SET status = 'running', claims = ?, lease_holder = ?, lease_until_us = ? WHERE id = ?",
            [job.claim.attempt, holder, until, job.id],
          );
        }
        return jobs;
      });
    },

    /**
     * Records a webhook job's outcome if the job is still held under `claim`; whether it was.
     * @param {number} id
     * @param {Claim} claim
     * @param {string | null} error  null: delivered
     * @param {number} attempts
     * @param {number} atUs
     * @returns {boolean}
     */
    finishWebhookJob(id, claim, error, attempts, atUs) {
      return transaction(() => {
        db.run(
          `UPDATE webhook_jobs SET status = ?, last_error = ?, attempts = ?, finished_at_us = ?
             WHERE id = ? AND status = 'running' AND claims = ?`,
          [error === null ? 'delivered' : 'failed', error, attempts, atUs, id, claim.attempt],
        );
        return db.getRowsModified() === 1;
      });
    },

    /**
     * Claims the reminders due at `nowUs`, by booking and seat, as `claimDueWebhookJobs` does.
     * @param {number} nowUs
     * @param {number} holder
     * @returns {DueReminder[]}
     */
    claimDueReminders(nowUs, holder) {
      return transaction(() => {
        const rows = all(
          `SELECT r.id, r.booking_id, b.uid, b.title, r.seat, r.name, r.email, r.batch_id,
                  r.trace_context, r.status, r.claims, r.lease_holder
             FROM reminders r JOIN bookings b ON b.id = r.booking_id
             WHERE (r.status = 'pending' AND r.scheduled_at_us <= ?) OR (r.status = 'running' AND r.lease_until_us <= ?)
             ORDER BY r.booking_id, r.seat, r.id`,
          [nowUs, nowUs],
        );
        const until = nowUs + JOB_LEASE_US * rows.length;
        const due = rows.map((row) => ({
          id: Number(row.id),
          bookingId: Number(row.booking_id),
          bookingUid: String(row.uid),
          title: String(row.title),
          seat: Number(row.seat),
          name: String(row.name),
          email: String(row.email),
          batchId: row.batch_id === null ? null : String(row.batch_id),
          context: carrierOf(row.trace_context),
          claim: claimOf(row),
        }));
        for (const r of due) {
          db.run(
            "UPDATE reminders SET status = 'running', claims = ?, lease_holder = ?, lease_until_us = ? WHERE id = ?",
            [r.claim.attempt, holder, until, r.id],
          );
        }
        return due;
      });
    },

    /**
     * Records a reminder's outcome if it is still held under `claim`; whether it was.
     * @param {number} id
     * @param {Claim} claim
     * @param {string | null} error  null: sent
     * @param {number} atUs
     * @returns {boolean}
     */
    finishReminder(id, claim, error, atUs) {
      return transaction(() => {
        db.run(
          `UPDATE reminders SET status = ?, last_error = ?, finished_at_us = ?
             WHERE id = ? AND status = 'running' AND claims = ?`,
          [error === null ? 'sent' : 'failed', error, atUs, id, claim.attempt],
        );
        return db.getRowsModified() === 1;
      });
    },

    /**
     * Gives back every job `holder` still holds, for the next cron call to take at once (a
     * clean stop with work unfinished; a crash gives nothing back). How many.
     * @param {number} holder
     * @returns {number}
     */
    releaseLeases(holder) {
      return transaction(() => {
        let released = 0;
        for (const table of ['webhook_jobs', 'reminders']) {
          db.run(
            `UPDATE ${table} SET status = 'pending', lease_until_us = NULL WHERE status = 'running' AND lease_holder = ?`,
            [holder],
          );
          released += db.getRowsModified();
        }
        return released;
      });
    },

    /**
     * The payment for PaymentIntent `externalId` (a read, not a transaction).
     * @param {string} externalId
     * @returns {StoredPayment | undefined}
     */
    payment(externalId) {
      const [row] = all(
        'SELECT booking_id, success, created_at_us, trace_context FROM payments WHERE external_id = ?',
        [externalId],
      );
      if (!row) return undefined;
      return {
        bookingId: Number(row.booking_id),
        success: Number(row.success) !== 0,
        createdAtUs: Number(row.created_at_us),
        context: carrierOf(row.trace_context),
      };
    },

    /**
     * Marks the payment paid and its booking accepted, together.
     * @param {string} externalId
     * @param {number} atUs
     */
    confirmPayment(externalId, atUs) {
      transaction(() => {
        db.run('UPDATE payments SET success = 1, paid_at_us = ? WHERE external_id = ?', [atUs, externalId]);
        db.run(
          `UPDATE bookings SET status = 'ACCEPTED', paid = 1
             WHERE id = (SELECT booking_id FROM payments WHERE external_id = ?)`,
          [externalId],
        );
      });
    },

    /**
     * Records why an attempt to pay failed; the booking stays PENDING and unpaid, and a later
     * success still confirms it.
     * @param {string} externalId
     * @param {string} reason
     */
    failPayment(externalId, reason) {
      transaction(() => {
        db.run('UPDATE payments SET last_error = ? WHERE external_id = ? AND success = 0', [reason, externalId]);
      });
    },

    /** Writes the database one last time and frees it. */
    close() {
      persist();
      db.close();
    },
  };
}

module.exports = { openStore, MAX_JOB_CLAIMS };
