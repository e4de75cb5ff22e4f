//! The booking service's durable SQLite store: bookings, their attendees and payments, and the
//! scheduled jobs (webhook deliveries, attendee reminders), each job row with the W3C context of
//! the span that scheduled it so that a cron run, even in a restarted process, continues the
//! booking's trace. The context is kept as fixed-width bytes (see `CONTEXT_BYTES`) beside the
//! `tracestate` text, not as `traceparent` text to format on every insert and parse on every
//! claim.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Params, Row, Transaction};

use crate::clock::{self, VirtualTime};
use crate::contract::{self, Reclaim};
use crate::trace::{SpanId, TraceContext, TraceFlags, TraceId, TraceState};

mod records;
#[cfg(test)]
mod tests;
pub(crate) use records::{
    Claim, DueReminder, DueWebhookJob, NewBooking, NewPayment, NewReminder, NewWebhookJob,
    StoredPayment,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bookings (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    event_type_id   INTEGER NOT NULL,
    title           TEXT NOT NULL,
    start_time      TEXT NOT NULL,
    attendee_name   TEXT NOT NULL,
    attendee_email  TEXT NOT NULL,
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
    trace_context   BLOB,
    tracestate      TEXT
);
CREATE TABLE IF NOT EXISTS webhook_jobs (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    trigger_event   TEXT NOT NULL,
    subscriber_url  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    scheduled_at_us INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    trace_context   BLOB,
    tracestate      TEXT,
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
    trace_context   BLOB,
    tracestate      TEXT,
    status          TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    finished_at_us  INTEGER,
    claims          INTEGER NOT NULL DEFAULT 0,
    lease_holder    INTEGER,
    lease_until_us  INTEGER
);
-- The cron's question, answered without scanning every job ever scheduled: a long-running
-- service (or a load run) would otherwise slow down with each booking it has taken.
CREATE INDEX IF NOT EXISTS webhook_jobs_due ON webhook_jobs (status, scheduled_at_us);
CREATE INDEX IF NOT EXISTS reminders_due ON reminders (status, scheduled_at_us);
-- And the other half of its question: which running jobs' leases have expired.
CREATE INDEX IF NOT EXISTS webhook_jobs_leased ON webhook_jobs (status, lease_until_us);
CREATE INDEX IF NOT EXISTS reminders_leased ON reminders (status, lease_until_us);
";

/// The version of [`SCHEMA`], kept in the database as its `user_version`; a database with
/// another (0: none yet) is given the schema when a store opens it.
const SCHEMA_VERSION: i64 = 1;

/// Gives `conn`'s database the schema, in WAL mode.
fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

/// A failure of the SQLite store.
#[derive(Debug, thiserror::Error)]
#[error("booking store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// `(status, count)` rows of one job table.
pub(crate) type StatusCounts = Vec<(String, i64)>;

/// `sql` run once with `params`, its statement prepared once per connection: a replay runs
/// each of its statements several times (a claim per cron call, an update per job), and
/// parsing them again each time was the largest part of the service's CPU time.
fn run(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// A database that lives in this process's memory for as long as the handle does, for a replay
/// of the in-process service: SQLite's `memdb` VFS under a name (a URI filename, which
/// [`Store::open`] takes as any path) that every connection in the process opening it shares.
///
/// Why a replay may keep its database in memory: a `restart` step, and a crash, end the
/// service's process state (its connection, server and ids), never the OS process, and this
/// handle, held by the runner, keeps the database across them exactly as a file would be kept;
/// the next service opens the same name and reads every commit. Nothing reads the database
/// after its replay. What memory saves is the file itself: creating, writing, locking
/// (`fcntl`) and unlinking it cost a replay more time than its queries (`benches/NOTES.md`).
/// A service the harness did not write gets a file instead: it runs in a process of its own.
pub(crate) struct MemoryDatabase {
    path: PathBuf,
    /// The connection that keeps the database alive between the service's.
    _keeper: Connection,
}

impl MemoryDatabase {
    /// A new database with the schema and no rows, named apart from every other in this
    /// process. Its pages are copied from a database this thread gave the schema once:
    /// running the schema for every replay was a tenth of the replay's CPU time.
    pub(crate) fn new() -> Result<Self, StoreError> {
        thread_local! {
            static TEMPLATE: RefCell<Option<Connection>> = const { RefCell::new(None) };
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("file:/trace-harness-replay-{n}?vfs=memdb"));
        let mut keeper = Connection::open(&path)?;
        TEMPLATE.with(|template| -> Result<(), StoreError> {
            let mut template = template.borrow_mut();
            if template.is_none() {
                let made = Connection::open_in_memory()?;
                create_schema(&made)?;
                *template = Some(made);
            }
            let template = template.as_ref().expect("made above");
            Backup::new(template, &mut keeper)?.run_to_completion(
                i32::MAX,
                Duration::ZERO,
                None,
            )?;
            Ok(())
        })?;
        Ok(MemoryDatabase {
            path,
            _keeper: keeper,
        })
    }

    /// The name a service's configuration opens it by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The SQLite store: one connection, one transaction per write.
pub(crate) struct Store {
    conn: Mutex<Connection>,
    /// Declared cost of one transaction on the flow's virtual clock (a remote database's round
    /// trip in production); zero unless the scenario says otherwise.
    transaction_latency: Duration,
}

impl Store {
    /// Opens (creating if needed) the store at `path`; each transaction costs
    /// `transaction_latency` on the flow's clock.
    pub(crate) fn open(path: &Path, transaction_latency: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // No fsync at all: NORMAL's, at every checkpoint and close, made a replay wait on the
        // disk longer than it computes. `synchronous` decides only when SQLite waits for the
        // disk, never what reaches the file: a commit is in the WAL before it returns, and a
        // later connection reads it through the OS page cache. A `restart` step ends the
        // service's process state (server, connection, ids: `BookingService::stop`), not the
        // OS: the next process opens the same file and finds every commit, as SQLite promises
        // under OFF when the application, not the OS, goes down. Only an OS crash or power loss
        // could lose data, and every store is in a temporary directory its replay, load run or
        // `serve` removes, so none would outlive one anyway.
        // Set before WAL: switching a new file to WAL is a rollback-journal transaction, which
        // under the default would sync the journal, the directory and the database.
        conn.pragma_update(None, "synchronous", "OFF")?;
        // A database made from the schema already (a restart, or a replay's in-memory copy of
        // it) is not given it again: running the schema parses every statement of it.
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version != SCHEMA_VERSION {
            create_schema(&conn)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Store {
            conn: Mutex::new(conn),
            transaction_latency,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one transaction: all of it is committed or none.
    fn transaction<R>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, rusqlite::Error>,
    ) -> Result<R, StoreError> {
        clock::advance(self.transaction_latency);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let result = f(&tx)?;
        tx.commit()?;
        Ok(result)
    }

    /// Writes a booking, its attendees, its payment and its webhook jobs in one transaction.
    pub(crate) fn insert_booking(
        &self,
        booking: &NewBooking,
        jobs: impl FnOnce(i64) -> Vec<NewWebhookJob>,
    ) -> Result<i64, StoreError> {
        self.transaction(|tx| {
            let booker = booking.attendees.first().cloned().unwrap_or_default();
            run(
                tx,
                "INSERT INTO bookings (uid, event_type_id, title, start_time, attendee_name,
                    attendee_email, status, calendar_event, request_id, created_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    booking.uid,
                    booking.event_type_id as i64,
                    booking.title,
                    booking.start_time,
                    booker.0,
                    booker.1,
                    booking.status,
                    booking.calendar_event,
                    booking.request_id,
                    micros(booking.created_at),
                ],
            )?;
            let booking_id = tx.last_insert_rowid();
            for (seat, (name, email)) in booking.attendees.iter().enumerate() {
                run(
                    tx,
                    "INSERT INTO attendees (booking_id, seat, name, email) VALUES (?1, ?2, ?3, ?4)",
                    params![booking_id, seat as i64 + 1, name, email],
                )?;
            }
            if let Some(payment) = &booking.payment {
                let context = context_columns(payment.context.as_ref());
                run(
                    tx,
                    "INSERT INTO payments (booking_id, external_id, amount, currency,
                        created_at_us, trace_context, tracestate)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        booking_id,
                        payment.external_id,
                        payment.amount as i64,
                        payment.currency,
                        micros(payment.created_at),
                        context.0.as_ref().map(|c| c.as_slice()),
                        context.1,
                    ],
                )?;
            }
            for job in jobs(booking_id) {
                let context = context_columns(job.context.as_ref());
                run(
                    tx,
                    "INSERT INTO webhook_jobs (booking_id, trigger_event, subscriber_url, payload,
                        scheduled_at_us, created_at_us, trace_context, tracestate)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        booking_id,
                        job.trigger_event,
                        job.subscriber_url,
                        job.payload,
                        micros(job.scheduled_at),
                        micros(booking.created_at),
                        context.0.as_ref().map(|c| c.as_slice()),
                        context.1,
                    ],
                )?;
            }
            Ok(booking_id)
        })
    }

    /// Writes a booking's reminders in one transaction.
    pub(crate) fn insert_reminders(
        &self,
        booking_id: i64,
        reminders: &[NewReminder],
        created_at: VirtualTime,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            for r in reminders {
                let context = context_columns(r.context.as_ref());
                run(
                    tx,
                    "INSERT INTO reminders (booking_id, seat, name, email, batch_id,
                        scheduled_at_us, created_at_us, trace_context, tracestate)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        booking_id,
                        r.seat,
                        r.name,
                        r.email,
                        r.batch_id,
                        micros(r.scheduled_at),
                        micros(created_at),
                        context.0.as_ref().map(|c| c.as_slice()),
                        context.1,
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Claims the webhook jobs due at `now`, oldest first: the pending ones whose time has
    /// come and the running ones whose lease has expired (their holder died mid-job). Each is
    /// marked `running` and leased to `holder` in the same transaction
    /// ([`contract::lease_until_us`]), so no other cron call, in this process or a restarted
    /// one, takes it while the lease lasts.
    pub(crate) fn claim_due_webhook_jobs(
        &self,
        now: VirtualTime,
        holder: u64,
    ) -> Result<Vec<DueWebhookJob>, StoreError> {
        self.transaction(|tx| {
            let jobs = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, trigger_event, subscriber_url, payload, created_at_us,
                            trace_context, tracestate, status, claims, lease_holder
                     FROM webhook_jobs
                     WHERE (status = 'pending' AND scheduled_at_us <= ?1)
                        OR (status = 'running' AND lease_until_us <= ?1)
                     ORDER BY id",
                )?;
                let rows = stmt.query_map([micros(now)], |row| {
                    Ok(DueWebhookJob {
                        id: row.get(0)?,
                        trigger_event: row.get(1)?,
                        subscriber_url: row.get(2)?,
                        payload: row.get(3)?,
                        created_at: VirtualTime::from_micros(row.get::<_, i64>(4)? as u64),
                        context: context_from(row, 5)?,
                        claim: claim_from(row, 7)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let until = lease_until(now, jobs.len());
            for job in &jobs {
                run(
                    tx,
                    "UPDATE webhook_jobs SET status = 'running', claims = ?2, lease_holder = ?3,
                        lease_until_us = ?4 WHERE id = ?1",
                    params![job.id, job.claim.attempt, holder as i64, until],
                )?;
            }
            Ok(jobs)
        })
    }

    /// Records a webhook job's outcome after `attempts` attempts, in one transaction, if the
    /// job is still held under `claim`; whether it was (a holder whose lease expired while it
    /// ran finds the job re-claimed, and its outcome is not recorded).
    pub(crate) fn finish_webhook_job(
        &self,
        id: i64,
        claim: &Claim,
        outcome: Result<(), &str>,
        attempts: u32,
        at: VirtualTime,
    ) -> Result<bool, StoreError> {
        let (status, error) = match outcome {
            Ok(()) => ("delivered", None),
            Err(reason) => ("failed", Some(reason)),
        };
        self.transaction(|tx| {
            let changed = run(
                tx,
                "UPDATE webhook_jobs SET status = ?2, last_error = ?3, attempts = ?4,
                    finished_at_us = ?5
                 WHERE id = ?1 AND status = 'running' AND claims = ?6",
                params![id, status, error, attempts, micros(at), claim.attempt],
            )?;
            Ok(changed == 1)
        })
    }

    /// Claims the reminders due at `now`, by booking and seat, as
    /// [`Store::claim_due_webhook_jobs`] does: pending ones due and running ones whose lease
    /// has expired, leased to `holder`.
    pub(crate) fn claim_due_reminders(
        &self,
        now: VirtualTime,
        holder: u64,
    ) -> Result<Vec<DueReminder>, StoreError> {
        self.transaction(|tx| {
            let due = {
                let mut stmt = tx.prepare_cached(
                    "SELECT r.id, r.booking_id, b.uid, b.title, r.seat, r.name, r.email,
                            r.batch_id, r.trace_context, r.tracestate,
                            r.status, r.claims, r.lease_holder
                     FROM reminders r JOIN bookings b ON b.id = r.booking_id
                     WHERE (r.status = 'pending' AND r.scheduled_at_us <= ?1)
                        OR (r.status = 'running' AND r.lease_until_us <= ?1)
                     ORDER BY r.booking_id, r.seat, r.id",
                )?;
                let rows = stmt.query_map([micros(now)], |row| {
                    Ok(DueReminder {
                        id: row.get(0)?,
                        booking_id: row.get(1)?,
                        booking_uid: row.get(2)?,
                        title: row.get(3)?,
                        seat: row.get(4)?,
                        name: row.get(5)?,
                        email: row.get(6)?,
                        batch_id: row.get(7)?,
                        context: context_from(row, 8)?,
                        claim: claim_from(row, 10)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let until = lease_until(now, due.len());
            for r in &due {
                run(
                    tx,
                    "UPDATE reminders SET status = 'running', claims = ?2, lease_holder = ?3,
                        lease_until_us = ?4 WHERE id = ?1",
                    params![r.id, r.claim.attempt, holder as i64, until],
                )?;
            }
            Ok(due)
        })
    }

    /// Records a reminder's outcome, in one transaction, if it is still held under `claim`;
    /// whether it was, as for [`Store::finish_webhook_job`].
    pub(crate) fn finish_reminder(
        &self,
        id: i64,
        claim: &Claim,
        outcome: Result<(), &str>,
        at: VirtualTime,
    ) -> Result<bool, StoreError> {
        let (status, error) = match outcome {
            Ok(()) => ("sent", None),
            Err(reason) => ("failed", Some(reason)),
        };
        self.transaction(|tx| {
            let changed = run(
                tx,
                "UPDATE reminders SET status = ?2, last_error = ?3, finished_at_us = ?4
                 WHERE id = ?1 AND status = 'running' AND claims = ?5",
                params![id, status, error, micros(at), claim.attempt],
            )?;
            Ok(changed == 1)
        })
    }

    /// Gives back every job `holder` still holds, for the next cron call to take at once
    /// rather than after the lease: what a process that stops cleanly with work unfinished
    /// does (a crash gives nothing back, and its leases run out instead). Each job keeps its
    /// claim count, so the re-run says it is one. How many were given back.
    pub(crate) fn release_leases(&self, holder: u64) -> Result<usize, StoreError> {
        self.transaction(|tx| {
            let mut released = 0;
            for table in ["webhook_jobs", "reminders"] {
                released += run(
                    tx,
                    &format!(
                        "UPDATE {table} SET status = 'pending', lease_until_us = NULL
                         WHERE status = 'running' AND lease_holder = ?1"
                    ),
                    [holder as i64],
                )?;
            }
            Ok(released)
        })
    }

    /// The payment for PaymentIntent `external_id`, if there is one.
    pub(crate) fn payment(&self, external_id: &str) -> Result<Option<StoredPayment>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT booking_id, success, created_at_us, trace_context, tracestate
                 FROM payments WHERE external_id = ?1",
            )?
            .query_row([external_id], |row| {
                Ok(StoredPayment {
                    booking_id: row.get(0)?,
                    success: row.get::<_, i64>(1)? != 0,
                    created_at: VirtualTime::from_micros(row.get::<_, i64>(2)? as u64),
                    context: context_from(row, 3)?,
                })
            })
            .optional()?)
    }

    /// Marks the payment paid and its booking accepted, together.
    pub(crate) fn confirm_payment(
        &self,
        external_id: &str,
        at: VirtualTime,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            run(
                tx,
                "UPDATE payments SET success = 1, paid_at_us = ?2 WHERE external_id = ?1",
                params![external_id, micros(at)],
            )?;
            run(
                tx,
                "UPDATE bookings SET status = 'ACCEPTED', paid = 1
                 WHERE id = (SELECT booking_id FROM payments WHERE external_id = ?1)",
                [external_id],
            )?;
            Ok(())
        })
    }

    /// Records why an attempt to pay failed; the booking stays PENDING and unpaid, and a later
    /// success still confirms it.
    pub(crate) fn fail_payment(&self, external_id: &str, reason: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            run(
                tx,
                "UPDATE payments SET last_error = ?2 WHERE external_id = ?1 AND success = 0",
                params![external_id, reason],
            )?;
            Ok(())
        })
    }

    /// `(status, count)` of payments: `paid`, `failed` (an attempt failed and none succeeded
    /// since) or `pending`.
    pub(crate) fn payment_counts(&self) -> Result<StatusCounts, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT CASE WHEN success = 1 THEN 'paid'
                         WHEN last_error IS NOT NULL THEN 'failed'
                         ELSE 'pending' END AS status, COUNT(*)
             FROM payments GROUP BY status ORDER BY status",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `(status, count)` of webhook jobs, for checks after a replay.
    pub(crate) fn webhook_job_counts(&self) -> Result<StatusCounts, StoreError> {
        self.status_counts("webhook_jobs")
    }

    /// `(status, count)` of reminders.
    pub(crate) fn reminder_counts(&self) -> Result<StatusCounts, StoreError> {
        self.status_counts("reminders")
    }

    fn status_counts(&self, table: &'static str) -> Result<StatusCounts, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT status, COUNT(*) FROM {table} GROUP BY status ORDER BY status"
        ))?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows in every table, for checks that bad input left nothing behind.
    pub(crate) fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let conn = self.conn();
        let mut counts = Vec::new();
        for table in [
            "bookings",
            "attendees",
            "payments",
            "webhook_jobs",
            "reminders",
        ] {
            let n = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })?;
            counts.push((table, n));
        }
        Ok(counts)
    }

    /// Failed jobs with their reasons: `(table, id, reason)`.
    pub(crate) fn failed_jobs(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT 'webhook_jobs', id, COALESCE(last_error, '') FROM webhook_jobs
                WHERE status = 'failed'
             UNION ALL
             SELECT 'reminders', id, COALESCE(last_error, '') FROM reminders
                WHERE status = 'failed'
             ORDER BY 1, 2",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Bookings whose payment has been confirmed.
    pub(crate) fn paid_booking_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM bookings WHERE paid = 1", [], |row| {
                row.get(0)
            })?)
    }
}

fn micros(t: VirtualTime) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}

/// The lease of a claim of `claimed` jobs at `now`, as its column holds it.
fn lease_until(now: VirtualTime, claimed: usize) -> i64 {
    i64::try_from(contract::lease_until_us(now.as_micros(), claimed)).unwrap_or(i64::MAX)
}

/// The claim a cron call makes of a row, from its `(status, claims, lease_holder)` columns
/// starting at `first`, read before the claim: a row held before is a re-claim, expired if it
/// was still `running` and released if its holder gave it back.
fn claim_from(row: &Row<'_>, first: usize) -> Result<Claim, rusqlite::Error> {
    let status: String = row.get(first)?;
    let claims: u32 = row.get(first + 1)?;
    let holder: Option<i64> = row.get(first + 2)?;
    let previous = holder.filter(|_| claims > 0).map(|holder| {
        let how = match status.as_str() {
            "running" => Reclaim::Expired,
            _ => Reclaim::Released,
        };
        (how, holder.max(0) as u64)
    });
    Ok(Claim {
        attempt: claims.saturating_add(1),
        previous,
    })
}

/// Width of a row's `trace_context`: the trace id (16 bytes), the parent span id (8) and the
/// trace flags (1), in that order: what a `traceparent` carries, without its text. One column
/// rather than three, because every statement is prepared per call and SQLite's parser pays
/// for each column a statement names.
const CONTEXT_BYTES: usize = 16 + 8 + 1;

/// A context as its row's `(trace_context, tracestate)`. Flags are stored as they would be
/// propagated (unknown bits cleared), as a `traceparent` written for the row would carry them.
fn context_columns(context: Option<&TraceContext>) -> (Option<[u8; CONTEXT_BYTES]>, Option<&str>) {
    let Some(context) = context else {
        return (None, None);
    };
    let mut bytes = [0u8; CONTEXT_BYTES];
    bytes[..16].copy_from_slice(&context.trace_id.to_bytes());
    bytes[16..24].copy_from_slice(&context.span_id.to_bytes());
    bytes[24] = context.flags.propagated().to_byte();
    (Some(bytes), context.tracestate.as_deref())
}

/// Reads the context from the `(trace_context, tracestate)` columns starting at `first`. A
/// `trace_context` that is not a valid context (absent, of another width, a zero id) yields
/// `None` and its `tracestate` is dropped with it, as an invalid `traceparent` would be; an
/// invalid `tracestate` is dropped and the context kept.
fn context_from(row: &Row<'_>, first: usize) -> Result<Option<TraceContext>, rusqlite::Error> {
    let ValueRef::Blob(bytes) = row.get_ref(first)? else {
        return Ok(None);
    };
    let Ok(bytes) = <&[u8; CONTEXT_BYTES]>::try_from(bytes) else {
        return Ok(None);
    };
    let trace_id = <[u8; 16]>::try_from(&bytes[..16])
        .ok()
        .and_then(TraceId::from_bytes);
    let span_id = <[u8; 8]>::try_from(&bytes[16..24])
        .ok()
        .and_then(SpanId::from_bytes);
    let (Some(trace_id), Some(span_id)) = (trace_id, span_id) else {
        return Ok(None);
    };
    let tracestate = match row.get_ref(first + 1)? {
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| TraceState::combine([text]).ok())
            .filter(|state| !state.is_empty()),
        _ => None,
    };
    Ok(Some(TraceContext {
        trace_id,
        span_id,
        flags: TraceFlags::from_byte(bytes[24]),
        tracestate,
    }))
}
