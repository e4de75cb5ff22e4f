//! The booking service's SQLite store: bookings and scheduled webhook jobs, each job with the
//! W3C context of the span that scheduled it.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::VirtualTime;
use crate::trace::TraceContext;

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
    calendar_event  TEXT,
    request_id      TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_jobs (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings(id),
    trigger_event   TEXT NOT NULL,
    subscriber_url  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    scheduled_at_us INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    traceparent     TEXT,
    tracestate      TEXT,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    finished_at_us  INTEGER
);
-- The cron's question, answered without scanning every job ever scheduled: a long-running
-- service (or a load run) would otherwise slow down with each booking it has taken.
CREATE INDEX IF NOT EXISTS webhook_jobs_due ON webhook_jobs (status, scheduled_at_us);
";

#[derive(Debug, Clone)]
pub struct NewBooking {
    pub uid: String,
    pub event_type_id: u64,
    pub title: String,
    pub start_time: String,
    pub attendee_name: String,
    pub attendee_email: String,
    pub calendar_event: Option<String>,
    pub request_id: String,
    pub created_at: VirtualTime,
}

#[derive(Debug, Clone)]
pub struct NewWebhookJob {
    pub trigger_event: &'static str,
    pub subscriber_url: String,
    pub payload: String,
    pub scheduled_at: VirtualTime,
    pub context: Option<TraceContext>,
}

/// A job the cron picked up.
#[derive(Debug, Clone)]
pub struct DueWebhookJob {
    pub id: i64,
    pub trigger_event: String,
    pub subscriber_url: String,
    pub payload: String,
    pub created_at: VirtualTime,
    pub context: Option<TraceContext>,
}

#[derive(Debug, thiserror::Error)]
#[error("booking store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL's usual pairing: no fsync per commit (only at checkpoints). The database lives
        // in a replay's temporary directory, and an fsync per booking made every flow cost
        // milliseconds of disk wait, drowning what a flow itself costs.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a booking and its webhook jobs in one transaction: all or nothing.
    pub fn insert_booking(
        &self,
        booking: &NewBooking,
        jobs: impl FnOnce(i64) -> Vec<NewWebhookJob>,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO bookings (uid, event_type_id, title, start_time, attendee_name,
                attendee_email, status, calendar_event, request_id, created_at_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACCEPTED', ?7, ?8, ?9)",
            params![
                booking.uid,
                booking.event_type_id as i64,
                booking.title,
                booking.start_time,
                booking.attendee_name,
                booking.attendee_email,
                booking.calendar_event,
                booking.request_id,
                booking.created_at.as_micros() as i64,
            ],
        )?;
        let booking_id = tx.last_insert_rowid();
        for job in jobs(booking_id) {
            let (traceparent, tracestate) = match &job.context {
                Some(c) => (
                    Some(c.traceparent().to_string()),
                    c.tracestate.as_deref().map(str::to_owned),
                ),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO webhook_jobs (booking_id, trigger_event, subscriber_url, payload,
                    scheduled_at_us, created_at_us, traceparent, tracestate)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    booking_id,
                    job.trigger_event,
                    job.subscriber_url,
                    job.payload,
                    job.scheduled_at.as_micros() as i64,
                    booking.created_at.as_micros() as i64,
                    traceparent,
                    tracestate,
                ],
            )?;
        }
        tx.commit()?;
        Ok(booking_id)
    }

    /// Pending jobs due at `now`, oldest first.
    pub fn due_webhook_jobs(&self, now: VirtualTime) -> Result<Vec<DueWebhookJob>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, trigger_event, subscriber_url, payload, created_at_us, traceparent,
                    tracestate
             FROM webhook_jobs WHERE status = 'pending' AND scheduled_at_us <= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([now.as_micros() as i64], |row| {
            let traceparent: Option<String> = row.get(5)?;
            let tracestate: Option<String> = row.get(6)?;
            Ok(DueWebhookJob {
                id: row.get(0)?,
                trigger_event: row.get(1)?,
                subscriber_url: row.get(2)?,
                payload: row.get(3)?,
                created_at: VirtualTime::from_micros(row.get::<_, i64>(4)? as u64),
                context: TraceContext::from_headers(traceparent.as_deref(), tracestate.as_deref()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn finish_webhook_job(
        &self,
        id: i64,
        outcome: Result<(), &str>,
        attempts: u32,
        at: VirtualTime,
    ) -> Result<(), StoreError> {
        let (status, error) = match outcome {
            Ok(()) => ("delivered", None),
            Err(reason) => ("failed", Some(reason)),
        };
        self.conn().execute(
            "UPDATE webhook_jobs SET status = ?2, last_error = ?3, attempts = ?4,
                finished_at_us = ?5 WHERE id = ?1",
            params![id, status, error, attempts, at.as_micros() as i64],
        )?;
        Ok(())
    }

    /// `(status, count)` of webhook jobs, for checks after a replay.
    pub fn webhook_job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT status, COUNT(*) FROM webhook_jobs GROUP BY status ORDER BY status")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn booking_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM bookings", [], |row| row.get(0))
            .optional()?
            .unwrap_or(0))
    }
}
