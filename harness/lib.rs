//! trace-harness replays booking incidents against a simulated booking service and proves that
//! its distributed tracing follows each booking end to end.
//!
//! A replay reads a scenario file, starts wiremock servers for the third parties (Google
//! Calendar, Stripe, webhook subscribers, the email provider) and the booking service on
//! loopback, drives the scenario's timeline on virtual time, captures every span, then checks
//! the built-in invariants and the scenario's assertions:
//!
//! ```no_run
//! use std::path::Path;
//! use trace_harness::{expect, report, runner, scenario::Scenario};
//!
//! let scenario = Scenario::load(Path::new("scenarios/calendar_failure.toml"))?;
//! let outcome = runner::replay(&scenario, runner::ReplayOptions::default())?;
//! let verdict = expect::judge(&outcome, &scenario.expect);
//! print!("{}", report::seed_log_view(&outcome));
//! assert!(verdict.passed(), "{}", report::diagnostics(&outcome, &verdict));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What tracing costs is measured, not asserted: `trace-harness overhead` runs the booking flow
//! traced and untraced in interleaved rounds and prints the ratio on this machine
//! ([`overhead`]), [`runner::load`] replays many flows at once, and `benches/` compares the
//! capture subscriber and the `traceparent` codec with `fmt` and `tracing-opentelemetry`
//! (`BENCHMARKS.md`).

pub mod booking;
pub mod cli;
pub mod clock;
pub mod contract;
pub mod expect;
pub mod import;
pub mod mocks;
pub mod outcome;
pub mod overhead;
pub mod query;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod trace;
pub mod vary;
