//! Leases: who holds a claimed job and until when, re-claims after the lease, the give-back on
//! a clean stop, and an outcome recorded only under the claim that holds the job.

use std::time::Duration;

use super::*;
use crate::contract::{Reclaim, JOB_LEASE, MAX_JOB_CLAIMS};

fn at(minutes: u64) -> VirtualTime {
    VirtualTime::from_micros(minutes * 60_000_000)
}

/// A booking for one attendee, made at minute 0.
fn booking(uid: &str) -> NewBooking {
    NewBooking {
        uid: uid.to_owned(),
        event_type_id: 1,
        title: "t".to_owned(),
        start_time: "2026-03-02T10:00:00Z".to_owned(),
        attendees: vec![("Ada".to_owned(), "ada@example.com".to_owned())],
        status: "ACCEPTED",
        calendar_event: None,
        payment: None,
        request_id: "r".to_owned(),
        created_at: at(0),
    }
}

/// A store with one booking holding `jobs` webhook jobs and one reminder, all due at once.
fn store_with_jobs(jobs: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir.path().join("booking.sqlite3"), Duration::ZERO)
        .unwrap_or_else(|e| panic!("{e}"));
    let booking = booking("uid1");
    let job = |n: usize| NewWebhookJob {
        trigger_event: "BOOKING_CREATED",
        subscriber_url: format!("http://127.0.0.1:1/webhook/{n}"),
        payload: format!("{{\"n\":{n}}}"),
        scheduled_at: at(0),
        context: None,
    };
    let id = store
        .insert_booking(&booking, |_| (0..jobs).map(job).collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let reminder = NewReminder {
        seat: 1,
        name: "Ada".to_owned(),
        email: "ada@example.com".to_owned(),
        batch_id: None,
        scheduled_at: at(0),
        context: None,
    };
    store
        .insert_reminders(id, &[reminder], at(0))
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, store)
}

fn claim(store: &Store, minutes: u64, holder: u64) -> Vec<DueWebhookJob> {
    store
        .claim_due_webhook_jobs(at(minutes), holder)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_claimed_job_is_nobody_elses_until_its_lease_expires_then_it_is_re_claimed() {
    let (_dir, store) = store_with_jobs(2);
    let first = claim(&store, 5, 0);
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|j| j.claim
        == Claim {
            attempt: 1,
            previous: None
        }));
    // Two jobs claimed at 5m: leased for 2 × 5 minutes, until 15m.
    assert_eq!(JOB_LEASE, Duration::from_secs(300));
    assert!(claim(&store, 5, 1).is_empty(), "taken twice at once");
    assert!(claim(&store, 14, 1).is_empty(), "taken inside the lease");
    let again = claim(&store, 15, 1);
    assert_eq!(again.len(), 2, "the lease ends at 15m");
    assert!(again.iter().all(|j| j.claim
        == Claim {
            attempt: 2,
            previous: Some((Reclaim::Expired, 0))
        }));
    // The reminder is leased on its own claim, not the webhook jobs'.
    let reminders = store
        .claim_due_reminders(at(5), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0].claim.attempt, 1);
}

#[test]
fn a_finished_job_is_never_claimed_again_and_only_its_holder_records_its_outcome() {
    let (_dir, store) = store_with_jobs(1);
    let stale = claim(&store, 5, 0).remove(0);
    let current = claim(&store, 60, 1).remove(0);
    // The first holder's lease ran out: its outcome is not recorded over the second claim.
    let recorded = store.finish_webhook_job(stale.id, &stale.claim, Ok(()), 1, at(61));
    assert!(!recorded.unwrap_or_else(|e| panic!("{e}")));
    let recorded = store.finish_webhook_job(current.id, &current.claim, Err("HTTP 500"), 4, at(62));
    assert!(recorded.unwrap_or_else(|e| panic!("{e}")));
    assert!(
        claim(&store, 600, 2).is_empty(),
        "a failed job stays failed"
    );
    let counts = store.webhook_job_counts().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts, [("failed".to_owned(), 1)]);
}

#[test]
fn claims_are_counted_past_the_limit_for_the_job_to_end_failed() {
    let (_dir, store) = store_with_jobs(1);
    let mut last = None;
    for (n, minutes) in (1..=MAX_JOB_CLAIMS + 1).zip([5, 20, 40, 60]) {
        let job = claim(&store, minutes, u64::from(n) - 1).remove(0);
        assert_eq!(job.claim.attempt, n);
        assert_eq!(job.claim.exhausted(), n > MAX_JOB_CLAIMS);
        last = Some(job);
    }
    let last = last.unwrap_or_else(|| panic!("no claim"));
    assert_eq!(last.claim.previous, Some((Reclaim::Expired, 2)));
}

#[test]
fn a_clean_stop_gives_its_jobs_back_for_the_next_cron_to_take_at_once() {
    let (_dir, store) = store_with_jobs(1);
    claim(&store, 5, 0);
    store
        .claim_due_reminders(at(5), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    // Another holder's jobs are not this one's to give back.
    assert_eq!(store.release_leases(7).unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(store.release_leases(0).unwrap_or_else(|e| panic!("{e}")), 2);
    let again = claim(&store, 6, 1);
    assert_eq!(
        again[0].claim,
        Claim {
            attempt: 2,
            previous: Some((Reclaim::Released, 0))
        }
    );
}

#[test]
fn a_stored_tracestate_that_does_not_parse_is_dropped_and_the_context_kept() {
    let (_dir, store) = store_with_jobs(0);
    let context =
        TraceContext::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap_or_else(|e| panic!("{e}"));
    let booking_id: i64 = store
        .conn()
        .query_row("SELECT id FROM bookings", [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let job = NewWebhookJob {
        trigger_event: "BOOKING_CREATED",
        subscriber_url: "http://127.0.0.1:1/webhook".to_owned(),
        payload: "{}".to_owned(),
        scheduled_at: at(0),
        context: Some(context.clone()),
    };
    // A row written by a service whose own tracestate check was looser: "failure to parse
    // `tracestate` MUST NOT affect the parsing of `traceparent`".
    let (bytes, _) = context_columns(Some(&context));
    store
        .conn()
        .execute(
            "INSERT INTO webhook_jobs (booking_id, trigger_event, subscriber_url, payload,
                scheduled_at_us, created_at_us, trace_context, tracestate)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, 'Congo=t61rcWkgMzE')",
            params![
                booking_id,
                job.trigger_event,
                job.subscriber_url,
                job.payload,
                bytes.as_ref().map(|b| b.as_slice())
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = claim(&store, 5, 0).remove(0);
    let read = claimed
        .context
        .unwrap_or_else(|| panic!("the context was dropped"));
    assert_eq!(read.trace_id, context.trace_id);
    assert_eq!(read.span_id, context.span_id);
    assert_eq!(read.tracestate, None);
}

/// Rows per table, only the tables that hold any.
fn rows(store: &Store) -> Vec<(&'static str, i64)> {
    let mut counts = store.row_counts().unwrap_or_else(|e| panic!("{e}"));
    counts.retain(|(_, n)| *n > 0);
    counts
}

#[test]
fn an_in_memory_database_outlives_its_stores_and_is_nobody_elses() {
    let open = |db: &MemoryDatabase| {
        Store::open(db.path(), Duration::ZERO).unwrap_or_else(|e| panic!("{e}"))
    };
    let first = MemoryDatabase::new().unwrap_or_else(|e| panic!("{e}"));
    let other = MemoryDatabase::new().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first.path(), other.path());
    let store = open(&first);
    assert_eq!(
        rows(&store),
        [],
        "a new database holds the schema and no rows"
    );
    store
        .insert_booking(&booking("uid1"), |_| Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    // A restart: the store (the service's connection) goes, the database stays.
    drop(store);
    let restarted = open(&first);
    assert_eq!(rows(&restarted), [("bookings", 1), ("attendees", 1)]);
    // Another replay's database shares nothing with it.
    assert_eq!(rows(&open(&other)), []);
    // Gone with its handle: a database of the same name would start empty.
    let name = first.path().to_owned();
    drop((restarted, first));
    let reopened = Store::open(&name, Duration::ZERO).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&reopened), []);
}
