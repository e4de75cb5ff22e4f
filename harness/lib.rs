//! trace-harness replays booking incidents against a simulated booking service and proves that
//! its distributed tracing follows each booking end to end.
//!
//! This page is the guide to using it as a library; `trace-harness --help` is the guide to the
//! command line, and the README to writing scenarios.
//!
//! # Replay a scenario in code
//!
//! A replay reads a scenario, starts wiremock servers for the third parties (Google Calendar,
//! Stripe, webhook subscribers, the email provider) and the booking service on loopback, drives
//! the timeline on virtual time and captures every span. [`judge`] then checks the built-in
//! invariants and the scenario's own assertions:
//!
//! ```
//! use std::path::Path;
//! use trace_harness::{judge, replay, seed_log_view, ReplayOptions, Scenario};
//!
//! let scenario = Scenario::parse(
//!     Path::new("incident.toml"),
//!     r#"
//!         description = "Google rate-limits events.insert; the webhook still runs"
//!         seed = 1
//!
//!         [mocks.google]
//!         kind = "google_calendar"
//!         respond = [{ status = 403, error = "rateLimitExceeded", latency = "120ms" }]
//!
//!         [mocks.subscriber]
//!         kind = "webhook_subscriber"
//!
//!         [[timeline]]
//!         at = "0s"
//!         book = { event_type_id = 123 }
//!
//!         [[timeline]]
//!         at = "5m"
//!         cron = "webhooks"
//!
//!         [[expect]]
//!         select = 'span[op="calendar_event_creation"]'
//!         status = "error"
//!         child_of = 'span[op="booking_creation"]'
//!     "#,
//! )?;
//! let outcome = replay(&scenario, ReplayOptions::default())?;
//! let verdict = judge(&outcome, &scenario.expect);
//! assert!(verdict.passed());
//!
//! // Virtual time: the webhook ran five minutes after the booking, replayed in microseconds.
//! let logs = seed_log_view(&outcome);
//! assert!(logs.contains("[trace:trace_1 span:span_004 op:webhook_execution] Webhook executed 5 minutes later"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A failed check explains itself: [`diagnostics`] prints the selector, what matched and the
//! span tree with the offending spans marked.
//!
//! # Capture spans in your own test
//!
//! [`CaptureSubscriber`] is a whole `tracing` subscriber (not a layer) that writes every span
//! and log line into a [`TraceStore`]; ids come from a seeded [`IdGenerator`], so a test sees
//! the same ids every run:
//!
//! ```
//! use trace_harness::{CaptureSubscriber, IdGenerator, SpanStatus, TraceStore};
//!
//! let store = TraceStore::new();
//! let subscriber = CaptureSubscriber::new(store.clone(), IdGenerator::seeded(7));
//! tracing::subscriber::with_default(subscriber, || {
//!     let booking = tracing::info_span!("booking_creation", event_type_id = 123);
//!     let _in_booking = booking.enter();
//!     tracing::info!("Booking creation started");
//!     let calendar = tracing::info_span!("calendar_event_creation");
//!     let _in_calendar = calendar.enter();
//!     tracing::error!("Google Calendar API error: Rate Limit Exceeded");
//! });
//!
//! let captured = store.snapshot();
//! assert_eq!(captured.trace_ids().len(), 1, "one trace for the whole booking");
//! let [booking, calendar] = &captured.spans[..] else { panic!("two spans") };
//! assert_eq!(calendar.parent_id(), Some(booking.span_id));
//! // Logging at ERROR puts the span in error, with the message as the reason.
//! assert_eq!(
//!     calendar.status,
//!     SpanStatus::Error("Google Calendar API error: Rate Limit Exceeded".into())
//! );
//! assert_eq!(captured.logs[0].message, "Booking creation started");
//! ```
//!
//! # Query what was captured
//!
//! A [`Captured`] snapshot is plain data: spans in creation order, log lines in the order they
//! were written, and the spans that never closed. [`Aliases`] names ids the way every report
//! does (`trace_1`, `span_001`):
//!
//! ```
//! use trace_harness::{Aliases, CaptureSubscriber, FieldValue, IdGenerator, TraceStore};
//!
//! let store = TraceStore::new();
//! tracing::subscriber::with_default(CaptureSubscriber::new(store.clone(), IdGenerator::seeded(1)), || {
//!     let root = tracing::info_span!("webhook_scheduling", subscribers = 2u64);
//!     let _in_root = root.enter();
//!     tracing::info_span!("webhook_execution", job_id = 1u64).in_scope(|| {});
//!     tracing::info_span!("webhook_execution", job_id = 2u64).in_scope(|| {});
//! });
//!
//! let captured = store.snapshot();
//! let root = &captured.spans[0];
//! let jobs: Vec<_> = captured.children(root.span_id).filter_map(|s| s.field("job_id")).collect();
//! assert_eq!(jobs, [&FieldValue::U64(1), &FieldValue::U64(2)]);
//! assert!(captured.open.is_empty(), "every span closed");
//!
//! let aliases = Aliases::of(&captured);
//! assert_eq!(aliases.span(captured.spans[2].span_id).to_string(), "span_003");
//! ```
//!
//! What tracing costs is measured, not asserted: `trace-harness overhead` runs the booking flow
//! traced and untraced in interleaved rounds, and `benches/` compares the capture subscriber and
//! the `traceparent` codec with `fmt` and `tracing-opentelemetry` (`BENCHMARKS.md`).

#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod booking;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod clock;
#[doc(hidden)]
pub mod contract;
#[doc(hidden)]
pub mod diff;
#[doc(hidden)]
pub mod expect;
#[doc(hidden)]
pub mod import;
#[doc(hidden)]
pub mod mocks;
#[doc(hidden)]
pub mod outcome;
#[doc(hidden)]
pub mod overhead;
#[doc(hidden)]
pub mod process;
#[doc(hidden)]
pub mod query;
#[doc(hidden)]
pub mod receive;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod runner;
#[doc(hidden)]
pub mod scenario;
#[doc(hidden)]
pub mod trace;
#[doc(hidden)]
pub mod vary;

pub use expect::{judge, Failure, Unchecked, Verdict, Violation};
pub use outcome::{ReplayOutcome, StepKind, StepOutcome};
pub use report::{diagnostics, seed_log_view, tree};
pub use runner::{replay, replay_all, ReplayError, ReplayOptions};
pub use scenario::{Scenario, ScenarioError};
pub use trace::{
    Aliases, CaptureSubscriber, Captured, FieldValue, IdGenerator, LogLine, SpanData, SpanId,
    SpanStatus, TraceContext, TraceId, TraceStore,
};
