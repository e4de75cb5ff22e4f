//! What a replay or a load run observed, as plain facts: the captured spans and log lines, each
//! timeline step's HTTP exchange, what the mocks received, the service's job counts, and the
//! personal data the runner sent in. The runner produces it; `expect` and `report` consume it.
//!
//! Facts only: analyses of them (bottlenecks, invariants, isolation) belong to `expect`. This
//! module imports only the types that record the facts (`trace`'s spans, `mocks`' received
//! requests), never the runner, `expect`, `report` or `scenario`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::mocks::{DeliveryCounts, ReceivedRequest};
use crate::trace::{Captured, SpanId, TraceContext, TraceId};

/// Everything one replay produced, built once when the replay has ended.
#[derive(Clone, Debug)]
pub struct ReplayOutcome {
    /// The scenario's name.
    pub scenario: String,
    /// The seed it was replayed with.
    pub seed: u64,
    /// Whether tracing was on.
    pub tracing: bool,
    /// Every span and log line the service produced.
    pub captured: Captured,
    /// Where `captured` came from, and so what it can show.
    pub source: SpanSource,
    /// Traces an external service sent that the harness did not cause, kept out of
    /// `captured` and not judged.
    pub foreign: Vec<ForeignTrace>,
    /// The timeline's HTTP exchanges, in order; restarts have none.
    pub steps: Vec<StepOutcome>,
    /// Requests the mocks received, mock by mock (in name order), each in arrival order.
    pub requests: Vec<ReceivedRequest>,
    /// Contexts the runner itself sent in, as a caller from outside would.
    pub inbound_contexts: Vec<TraceContext>,
    /// `(status, count)` of the service's webhook jobs after the replay.
    pub webhook_jobs: Vec<(String, i64)>,
    /// `(status, count)` of the service's attendee reminders after the replay.
    pub reminders: Vec<(String, i64)>,
    /// `(status, count)` of the service's payments after the replay: `paid`, `failed` (an
    /// attempt failed, none succeeded since), `pending`.
    pub payments: Vec<(String, i64)>,
    /// Jobs that ended failed, with their reasons: `(table, id, reason)`.
    pub failed_jobs: Vec<(String, i64, String)>,
    /// How many times the service process was restarted on its database (a crash's restart
    /// not counted).
    pub restarts: u32,
    /// The crashes cron steps armed that happened, in step order: each time the service died
    /// inside a job, and a new process started on the same database.
    pub crashes: Vec<Crash>,
    /// Every attendee name and address the runner sent in, for `report::privacy` to redact.
    pub personal_data: Vec<(String, PersonalKind)>,
    /// What each webhook subscriber did with its deliveries, by mock name.
    pub deliveries: Vec<(String, DeliveryCounts)>,
}

impl ReplayOutcome {
    /// An outcome holding `captured` (traced spans) and no other fact, named `scenario` with
    /// `seed`: what the views need around spans no replay of this process produced (received
    /// over OTLP, say).
    pub fn of_spans(scenario: &str, seed: u64, captured: Captured) -> ReplayOutcome {
        ReplayOutcome {
            scenario: scenario.to_owned(),
            seed,
            tracing: true,
            captured,
            source: SpanSource::Spans,
            foreign: Vec::new(),
            steps: Vec::new(),
            requests: Vec::new(),
            inbound_contexts: Vec::new(),
            webhook_jobs: Vec::new(),
            reminders: Vec::new(),
            payments: Vec::new(),
            failed_jobs: Vec::new(),
            restarts: 0,
            crashes: Vec::new(),
            personal_data: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// The service dying at a crash point a cron step armed (`crash = "after_send"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    /// The cron step's offset on the virtual timeline.
    pub at: Duration,
    /// The step's place among [`ReplayOutcome::steps`], whose exchange there has no answer
    /// (status 0).
    pub step: usize,
    /// The crash point, as scenarios name it (`after_send`).
    pub point: &'static str,
    /// Which of the call's jobs it died in, from 1.
    pub job: u32,
    /// The generation of the process that died (`TRACE_HARNESS_GENERATION`); the next one
    /// is one higher.
    pub process: u64,
    /// The spans open when it died, which no exporter ever sent, as far as anything names
    /// them: the senders of the requests mocks received (their `traceparent`), in order of
    /// each one's first. A re-run of the job continues the same trace from the span that
    /// scheduled it.
    pub lost: Vec<(TraceId, SpanId)>,
}

/// Where a replay's spans came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanSource {
    /// Spans, from the in-process capture or over OTLP: parents, links, times, status and
    /// attributes as the service recorded them.
    #[default]
    Spans,
    /// A log-only service's seed-format output lines: one span per logged span id, with its
    /// trace, operation and lines, and nothing else.
    LogLines,
}

/// A trace an external service sent that no request of the replay caused: no booking answered
/// with it, no context the harness sent names it, and none of its spans is an operation of the
/// contract (start-up work, a timer of the service's own) — or spans of another service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignTrace {
    /// The `service.name` that sent it.
    pub service: String,
    /// Its id.
    pub trace_id: TraceId,
    /// How many spans of it arrived.
    pub spans: usize,
    /// The name of its first span to arrive.
    pub first: String,
}

/// The HTTP exchange of one timeline step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    /// The step's offset on the virtual timeline.
    pub at: Duration,
    /// What kind of step it was.
    pub action: StepKind,
    /// The service's HTTP status.
    pub status: u16,
    /// `X-Request-Id` of the answer.
    pub request_id: Option<String>,
    /// `X-Trace-Id` of the answer.
    pub trace_id: Option<String>,
    /// How long the service declared the request took, on virtual time.
    pub latency: Duration,
    /// The answer's body.
    pub body: String,
}

/// The timeline steps that send the service a request (a restart sends none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// `POST /api/bookings`.
    Book,
    /// A cron route, as the scheduler calls it.
    Cron,
    /// A Stripe event delivered to the service's webhook route.
    Stripe,
}

impl StepKind {
    /// The step's key in a scenario file: `book`, `cron`, `stripe`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Book => "book",
            StepKind::Cron => "cron",
            StepKind::Stripe => "stripe",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one load-run flow's booking request got back: enough to attribute spans and mock
/// requests to the flow afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowResponse {
    /// The service's HTTP status.
    pub status: u16,
    /// `X-Trace-Id`: the trace the service put the flow in.
    pub trace_id: Option<String>,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
    /// The booking's `uid` from the response body.
    pub booking_uid: Option<String>,
}

/// What a personal value is, for its placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PersonalKind {
    /// An attendee's name.
    Name,
    /// An attendee's e-mail address.
    Email,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_kind_reads_as_its_scenario_key_in_text_and_json() {
        for kind in [StepKind::Book, StepKind::Cron, StepKind::Stripe] {
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
    }
}
