//! The inbox: every span received since the last [`Inbox::clear`], grouped by the service that
//! sent it, what was malformed, a version that waiters watch, and the snapshots that turn it
//! into the trace model `expect` and `report` read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::convert::{convert, service_name, SpanKind, StoredSpan};
use super::decode::{decode, DecodeError, Encoding, Limits};
use super::intern::intern;
use super::order;
use crate::contract::EPOCH_UNIX_NANOS;
use crate::trace::{Captured, ParentKind, SpanId, TraceId};

/// The most problem messages an inbox keeps; the counts go on.
pub(crate) const MAX_MESSAGES: usize = 32;
/// The most problems one answer's `error_message` names.
const MAX_NAMED_PER_ANSWER: usize = 8;

/// Which received instant is a snapshot's virtual zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBase {
    /// The service honours virtual time: it stamps `EPOCH_UNIX_NANOS + virtual µs × 1000`, so
    /// `EPOCH_UNIX_NANOS` is zero (earlier instants read as zero).
    Virtual,
    /// The service keeps its own clock: the earliest start of any span received since the last
    /// clear is zero.
    EarliestSpan,
}

/// A received span, in brief: what the runner's completeness rules ask about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanSummary {
    /// The service that sent it (`service.name`).
    pub service: Arc<str>,
    /// Its trace.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent's id, if it has one.
    pub parent: Option<SpanId>,
    /// Its name.
    pub op: &'static str,
    /// Its OTLP kind.
    pub kind: SpanKind,
    /// When it started, in Unix nanoseconds as sent.
    pub start_unix_nanos: u64,
    /// When it ended, in Unix nanoseconds as sent.
    pub end_unix_nanos: u64,
}

/// What one request did to the inbox: the basis of its `ExportTraceServiceResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Spans stored.
    pub accepted: usize,
    /// Spans refused: invalid, or past the inbox's capacity.
    pub rejected: usize,
    /// Spans already received (a retried export): the first copy is kept, this one dropped.
    pub duplicates: usize,
    /// Why, for the answer's `partial_success.error_message`; empty when all was well.
    pub message: String,
}

impl Ingested {
    /// The OTLP answer: `partial_success` with the rejected count and the reasons, or with
    /// only a message (a warning, zero rejected) for duplicates; none when all was well.
    pub fn response(&self) -> ExportTraceServiceResponse {
        let partial_success =
            (self.rejected > 0 || !self.message.is_empty()).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                error_message: self.message.clone(),
            });
        ExportTraceServiceResponse { partial_success }
    }
}

/// What the senders got wrong since the last clear: enough for a replay to say "the service
/// sent malformed telemetry: …".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    /// Requests that did not decode (nothing of them was stored).
    pub malformed_requests: u64,
    /// Spans rejected from requests that did decode.
    pub rejected_spans: u64,
    /// Spans received twice.
    pub duplicate_spans: u64,
    /// The first 32 problems, in order: text from outside, to be made safe before printing.
    pub messages: Vec<String>,
}

impl Problems {
    /// Whether nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.malformed_requests == 0 && self.rejected_spans == 0 && self.duplicate_spans == 0
    }

    fn note(&mut self, message: String) {
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }
}

/// Received spans, shared between the receiver that fills it and the code that reads it
/// (`Arc<Inbox>`). Every method takes `&self`; a request is stored whole or not at all, and no
/// reader sees half of one.
pub struct Inbox {
    limits: Limits,
    state: Mutex<State>,
    /// Bumped by every change, so a waiter needs no polling.
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// In arrival order.
    spans: Vec<StoredSpan>,
    by_id: HashMap<SpanId, usize>,
    by_trace: HashMap<TraceId, Vec<usize>>,
    /// Trace ids in order of first arrival.
    traces: Vec<TraceId>,
    /// `service.name`s in order of first arrival, and as a set: a sender may invent many.
    services: Vec<Arc<str>>,
    service_set: HashSet<Arc<str>>,
    earliest_start_unix_nanos: Option<u64>,
    problems: Problems,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::new()
    }
}

impl Inbox {
    /// An empty inbox with the default [`Limits`].
    pub fn new() -> Self {
        Inbox::with_limits(Limits::DEFAULT)
    }

    /// An empty inbox that accepts what `limits` allow.
    pub fn with_limits(limits: Limits) -> Self {
        Inbox {
            limits,
            state: Mutex::new(State::default()),
            version: watch::Sender::new(0),
        }
    }

    /// What it accepts.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes one OTLP/HTTP body and stores its spans; a body that does not decode is counted
    /// as malformed and nothing of it is stored. The encoding is the answer's.
    pub fn receive(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<(Ingested, Encoding), DecodeError> {
        match decode(body, content_type, content_encoding, self.limits) {
            Ok((request, encoding)) => Ok((self.ingest(request), encoding)),
            Err(error) => {
                self.record_malformed(&error);
                Err(error)
            }
        }
    }

    /// Counts a request that could not be read (its reason kept among the problems).
    pub(crate) fn record_malformed(&self, error: &DecodeError) {
        let mut state = self.state.lock();
        state.problems.malformed_requests += 1;
        state.problems.note(format!("malformed request: {error}"));
        drop(state);
        self.bump();
    }

    /// Stores a decoded request's valid spans; each invalid one is rejected on its own.
    pub fn ingest(&self, request: ExportTraceServiceRequest) -> Ingested {
        // Checked and converted outside the lock: readers and other requests wait only for
        // the pushes.
        let mut converted = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut rejected = 0;
        for (r, resource_spans) in request.resource_spans.into_iter().enumerate() {
            let attributes = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            let service = match service_name(&attributes) {
                Ok(name) => Arc::<str>::from(name),
                Err(problem) => {
                    let count: usize = resource_spans
                        .scope_spans
                        .iter()
                        .map(|s| s.spans.len())
                        .sum();
                    rejected += count;
                    problems.push(format!("{count} span(s) of resource {r}: {problem}"));
                    continue;
                }
            };
            for scope_spans in resource_spans.scope_spans {
                let scope = scope_spans
                    .scope
                    .and_then(|s| intern(&s.name).ok())
                    .unwrap_or("");
                for span in scope_spans.spans {
                    match convert(span, &service, scope) {
                        Ok(span) => converted.push(span),
                        Err(rejection) => {
                            rejected += 1;
                            problems.push(format!(
                                "{} of {service:?} rejected: {}",
                                rejection.span, rejection.problem
                            ));
                        }
                    }
                }
            }
        }

        let mut state = self.state.lock();
        let mut accepted = 0;
        let mut duplicates = 0;
        let mut full = 0;
        for span in converted {
            if state.by_id.contains_key(&span.span_id) {
                duplicates += 1;
                continue;
            }
            if state.spans.len() >= self.limits.max_spans {
                full += 1;
                continue;
            }
            state.push(span);
            accepted += 1;
        }
        if full > 0 {
            rejected += full;
            problems.push(format!(
                "{full} span(s): the inbox is full ({} spans kept)",
                self.limits.max_spans
            ));
        }
        state.problems.rejected_spans += rejected as u64;
        state.problems.duplicate_spans += duplicates as u64;
        for problem in &problems {
            state.problems.note(problem.clone());
        }
        if duplicates > 0 {
            let message = format!("{duplicates} span(s) already received: the first copy is kept");
            state.problems.note(message.clone());
            problems.push(message);
        }
        drop(state);
        self.bump();
        Ingested {
            accepted,
            rejected,
            duplicates,
            message: summary(&problems),
        }
    }

    /// Forgets every span and problem, between replays. The version still goes up.
    pub fn clear(&self) {
        *self.state.lock() = State::default();
        self.bump();
    }

    /// A number that goes up with every change (a request stored, a malformed one counted, a
    /// clear).
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Waits until the version is past `version`: read [`version`](Self::version), look at
    /// the inbox, then wait with what was read, and no change between the two is missed.
    pub async fn changed_since(&self, version: u64) {
        let mut watching = self.version.subscribe();
        // The sender lives as long as `self`, so this ends only by a change.
        let _ = watching.wait_for(|v| *v > version).await;
    }

    /// Waits for the next change after the call.
    pub async fn changed(&self) {
        self.changed_since(self.version()).await
    }

    /// Spans stored.
    pub fn len(&self) -> usize {
        self.state.lock().spans.len()
    }

    /// Whether no span is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the span `id` was received.
    pub fn has_span(&self, id: SpanId) -> bool {
        self.state.lock().by_id.contains_key(&id)
    }

    /// Every received span id.
    pub fn span_ids(&self) -> HashSet<SpanId> {
        self.state.lock().by_id.keys().copied().collect()
    }

    /// Received trace ids, in order of first arrival.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        self.state.lock().traces.clone()
    }

    /// The trace ids received that are not among `ours`: traces the harness did not cause.
    pub fn foreign_traces(&self, ours: &[TraceId]) -> Vec<TraceId> {
        let ours: HashSet<&TraceId> = ours.iter().collect();
        let state = self.state.lock();
        state
            .traces
            .iter()
            .filter(|t| !ours.contains(t))
            .copied()
            .collect()
    }

    /// The services that sent spans, in order of first arrival.
    pub fn services(&self) -> Vec<Arc<str>> {
        self.state.lock().services.clone()
    }

    /// The spans of `trace`, in arrival order.
    pub fn trace_spans(&self, trace: TraceId) -> Vec<SpanSummary> {
        let state = self.state.lock();
        let Some(indexes) = state.by_trace.get(&trace) else {
            return Vec::new();
        };
        indexes
            .iter()
            .map(|&i| summary_of(&state.spans[i]))
            .collect()
    }

    /// The SERVER spans of `trace`, in arrival order: each is a request a service handled.
    pub fn server_spans(&self, trace: TraceId) -> Vec<SpanSummary> {
        let mut spans = self.trace_spans(trace);
        spans.retain(|s| s.kind == SpanKind::Server);
        spans
    }

    /// What went wrong since the last clear.
    pub fn problems(&self) -> Problems {
        self.state.lock().problems.clone()
    }

    /// The Unix instant, in nanoseconds, that `base` makes zero.
    pub fn zero_unix_nanos(&self, base: TimeBase) -> u64 {
        self.zero(&self.state.lock(), base)
    }

    /// The trace model of every span `service` sent (every service's when `None`).
    pub fn snapshot(&self, service: Option<&str>, base: TimeBase) -> Captured {
        self.snapshot_where(base, |s| service.is_none_or(|name| *s.service == *name))
    }

    /// [`snapshot`](Self::snapshot) of only the spans of `traces`: the harness's own traces
    /// apart from the rest ([`foreign_traces`](Self::foreign_traces)).
    pub fn snapshot_traces(
        &self,
        service: Option<&str>,
        traces: &[TraceId],
        base: TimeBase,
    ) -> Captured {
        let traces: HashSet<&TraceId> = traces.iter().collect();
        self.snapshot_where(base, |s| {
            traces.contains(&s.trace_id) && service.is_none_or(|name| *s.service == *name)
        })
    }

    /// [`snapshot`](Self::snapshot) of every service's spans that arrived after the first
    /// `first` (as [`len`](Self::len) counted them): what came since a look at the inbox.
    pub fn snapshot_from(&self, first: usize, base: TimeBase) -> Captured {
        let state = self.state.lock();
        let zero = self.zero(&state, base);
        let spans: Vec<&StoredSpan> = state.spans.iter().skip(first).collect();
        order::captured(&spans, zero, |s| state.parent_kind(s))
    }

    fn snapshot_where(&self, base: TimeBase, keep: impl Fn(&StoredSpan) -> bool) -> Captured {
        let state = self.state.lock();
        let zero = self.zero(&state, base);
        let spans: Vec<&StoredSpan> = state.spans.iter().filter(|s| keep(s)).collect();
        order::captured(&spans, zero, |s| state.parent_kind(s))
    }

    fn zero(&self, state: &State, base: TimeBase) -> u64 {
        match base {
            TimeBase::Virtual => EPOCH_UNIX_NANOS,
            TimeBase::EarliestSpan => state.earliest_start_unix_nanos.unwrap_or_default(),
        }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

impl State {
    fn push(&mut self, span: StoredSpan) {
        let i = self.spans.len();
        self.by_id.insert(span.span_id, i);
        match self.by_trace.get_mut(&span.trace_id) {
            Some(indexes) => indexes.push(i),
            None => {
                self.by_trace.insert(span.trace_id, vec![i]);
                self.traces.push(span.trace_id);
            }
        }
        if self.service_set.insert(Arc::clone(&span.service)) {
            self.services.push(Arc::clone(&span.service));
        }
        self.earliest_start_unix_nanos = Some(
            self.earliest_start_unix_nanos
                .map_or(span.start_unix_nanos, |e| e.min(span.start_unix_nanos)),
        );
        self.spans.push(span);
    }

    /// As the sender said; when it did not (SDKs before `SpanFlags`' remote bits), local if
    /// the parent is a span the same service sent, remote otherwise.
    fn parent_kind(&self, span: &StoredSpan) -> ParentKind {
        let remote = span.parent_remote.unwrap_or_else(|| {
            let parent = span.parent.and_then(|p| self.by_id.get(&p));
            parent.is_none_or(|&i| self.spans[i].service != span.service)
        });
        if remote {
            ParentKind::Remote
        } else {
            ParentKind::Local
        }
    }
}

fn summary_of(span: &StoredSpan) -> SpanSummary {
    SpanSummary {
        service: Arc::clone(&span.service),
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent: span.parent,
        op: span.op,
        kind: span.kind,
        start_unix_nanos: span.start_unix_nanos,
        end_unix_nanos: span.end_unix_nanos,
    }
}

/// The answer's `error_message`: the first few problems, and how many more.
fn summary(problems: &[String]) -> String {
    let mut message = problems
        .iter()
        .take(MAX_NAMED_PER_ANSWER)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > MAX_NAMED_PER_ANSWER {
        message.push_str(&format!(
            "; and {} more",
            problems.len() - MAX_NAMED_PER_ANSWER
        ));
    }
    message
}
