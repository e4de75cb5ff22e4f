//! The invariants every replay must hold, whatever its scenario asks.

use std::collections::HashSet;

use super::{Unchecked, Violation};
use crate::contract::{
    BOOKING_CREATION, PAYMENT_FAILURE_PROCESSING, PAYMENT_SUCCESS_PROCESSING,
    SCHEDULE_MANDATORY_REMINDER, WEBHOOK_EXECUTION,
};
use crate::outcome::{ReplayOutcome, SpanSource, StepKind};
use crate::trace::{ParentKind, SpanData, SpanId, SpanStatus, TraceContext, TraceId};

/// Every violated invariant, in a stable order. With tracing off the only invariant is that
/// nothing was traced or propagated; from log lines, only those lines can show (the rest are
/// [`unchecked_from_lines`]).
pub fn check_invariants(outcome: &ReplayOutcome) -> Vec<Violation> {
    let mut found = Vec::new();
    if !outcome.tracing {
        opt_out_propagates_nothing(outcome, &mut found);
        return found;
    }
    let flows = flow_traces(outcome, &mut found);
    one_trace_per_flow(outcome, &flows, &mut found);
    if outcome.source == SpanSource::LogLines {
        one_booking_per_trace(outcome, &flows, &mut found);
        traces_within_budget(outcome, &mut found);
        mock_requests_carry_context(outcome, &flows, &mut found);
        redelivered_only_after_crashes(outcome, &mut found);
        return found;
    }
    flows_stay_apart(outcome, &mut found);
    traces_within_budget(outcome, &mut found);
    no_open_spans(outcome, &mut found);
    parents_exist(outcome, &mut found);
    children_within_parents(outcome, &mut found);
    async_work_follows_its_cause(outcome, &mut found);
    mock_requests_carry_context(outcome, &flows, &mut found);
    redelivered_only_after_crashes(outcome, &mut found);
    log_prefixes_match_spans(outcome, &mut found);
    server_errors_in_error(outcome, &mut found);
    found
}

fn violation(
    found: &mut Vec<Violation>,
    invariant: &'static str,
    message: String,
    spans: &[&SpanData],
) {
    found.push(Violation {
        invariant,
        message,
        spans: spans.iter().map(|s| s.span_id).collect(),
    });
}

/// The trace id each booking flow answered with (`X-Trace-Id`), in step order.
fn flow_traces(outcome: &ReplayOutcome, found: &mut Vec<Violation>) -> Vec<TraceId> {
    let mut traces = Vec::new();
    for step in outcome.steps.iter().filter(|s| s.action == StepKind::Book) {
        let parsed = step.trace_id.as_deref().and_then(|hex| {
            outcome
                .captured
                .trace_ids()
                .into_iter()
                .find(|t| t.to_string() == hex)
        });
        match parsed {
            Some(trace) => traces.push(trace),
            None => violation(
                found,
                "one-trace-per-flow",
                match &step.trace_id {
                    Some(id) => format!(
                        "the booking at {} answered with X-Trace-Id `{id}`, which names no captured trace",
                        crate::clock::Compact(step.at)
                    ),
                    None => format!(
                        "the booking at {} answered without an X-Trace-Id",
                        crate::clock::Compact(step.at)
                    ),
                },
                &[],
            ),
        }
    }
    traces
}

fn one_trace_per_flow(outcome: &ReplayOutcome, flows: &[TraceId], found: &mut Vec<Violation>) {
    let distinct: HashSet<_> = flows.iter().collect();
    if distinct.len() != flows.len() {
        violation(
            found,
            "one-trace-per-flow",
            "two booking flows share one trace id".into(),
            &[],
        );
    }
    let strays: Vec<&SpanData> = outcome
        .captured
        .spans
        .iter()
        .filter(|s| !flows.contains(&s.trace_id))
        .collect();
    if !strays.is_empty() {
        violation(
            found,
            "one-trace-per-flow",
            format!(
                "{} span(s) belong to no booking flow's trace (first: `{}`): context was lost somewhere",
                strays.len(),
                strays[0].op
            ),
            &strays,
        );
    }
}

/// Spans created while serving a booking request belong to that booking's trace, not another's.
fn flows_stay_apart(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    for step in outcome.steps.iter().filter(|s| s.action == StepKind::Book) {
        let (Some(request_id), Some(trace_hex)) = (&step.request_id, &step.trace_id) else {
            continue;
        };
        let strays: Vec<&SpanData> = outcome
            .captured
            .spans
            .iter()
            .filter(|s| s.request_id.as_deref() == Some(request_id.as_str()))
            .filter(|s| &s.trace_id.to_string() != trace_hex)
            .collect();
        if !strays.is_empty() {
            violation(
                found,
                "flow-isolation",
                format!(
                    "{} span(s) of the booking request {request_id} landed in another trace (first: `{}`)",
                    strays.len(),
                    strays[0].op
                ),
                &strays,
            );
        }
    }
}

/// The invariants log lines cannot support, and why: said in every log-only verdict.
pub(crate) fn unchecked_from_lines() -> Vec<Unchecked> {
    [
        ("parent-exists", "log lines name no parent"),
        (
            "child-within-parent",
            "log lines name no parent and carry no span times",
        ),
        (
            "async-after-cause",
            "log lines carry no follows-from links and no span times",
        ),
        ("no-open-spans", "log lines do not show a span ending"),
        (
            "flow-isolation by request.id",
            "log lines carry no request.id; checked instead as one booking_creation per trace",
        ),
        (
            "server-error-status",
            "log lines carry no span status and no request.id",
        ),
    ]
    .into_iter()
    .map(|(check, why)| Unchecked {
        check: check.to_owned(),
        why,
    })
    .collect()
}

/// From log lines, where no span carries its request's id: a booking flow's trace holds one
/// `booking_creation` span, so two of them in one trace are two flows' lines mixed.
fn one_booking_per_trace(outcome: &ReplayOutcome, flows: &[TraceId], found: &mut Vec<Violation>) {
    for trace in flows {
        let bookings: Vec<&SpanData> = outcome
            .captured
            .spans
            .iter()
            .filter(|s| s.trace_id == *trace && s.op == BOOKING_CREATION)
            .collect();
        if bookings.len() > 1 {
            violation(
                found,
                "flow-isolation",
                format!(
                    "trace {trace} holds the lines of {} `{BOOKING_CREATION}` spans: another flow's lines landed in it",
                    bookings.len()
                ),
                &bookings,
            );
        }
    }
}

/// Most spans one trace may hold: a runaway retry loop or recursion shows up here.
pub const MAX_SPANS_PER_TRACE: usize = 10_000;

fn traces_within_budget(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let mut counts: std::collections::HashMap<TraceId, usize> = Default::default();
    for span in &outcome.captured.spans {
        *counts.entry(span.trace_id).or_default() += 1;
    }
    for trace in outcome.captured.trace_ids() {
        let n = counts.get(&trace).copied().unwrap_or_default();
        if n > MAX_SPANS_PER_TRACE {
            found.push(Violation {
                invariant: "spans-per-trace",
                message: format!(
                    "trace {trace} holds {n} spans; at most {MAX_SPANS_PER_TRACE} are allowed"
                ),
                spans: vec![],
            });
        }
    }
}

fn no_open_spans(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    for open in &outcome.captured.open {
        found.push(Violation {
            invariant: "no-open-spans",
            message: format!("span `{}` was never closed", open.op),
            spans: vec![open.span_id],
        });
    }
}

fn parents_exist(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let captured = &outcome.captured;
    for span in &captured.spans {
        let Some((parent_id, kind)) = span.parent else {
            continue;
        };
        match captured.span(parent_id) {
            Some(parent) if parent.trace_id == span.trace_id => {}
            Some(parent) => violation(
                found,
                "parent-exists",
                format!(
                    "`{}` has parent `{}` from another trace",
                    span.op, parent.op
                ),
                &[span, parent],
            ),
            // A parent from outside the replay is fine only if the runner sent it.
            None if kind == ParentKind::Remote && sent_by_runner(outcome, span) => {}
            None => violation(
                found,
                "parent-exists",
                format!(
                    "`{}` names parent {parent_id}, which no captured span has",
                    span.op
                ),
                &[span],
            ),
        }
    }
}

fn sent_by_runner(outcome: &ReplayOutcome, span: &SpanData) -> bool {
    outcome
        .inbound_contexts
        .iter()
        .any(|c: &TraceContext| Some(c.span_id) == span.parent_id() && c.trace_id == span.trace_id)
}

/// A synchronous child (no follows-from link to its parent) starts and ends within its parent.
fn children_within_parents(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let captured = &outcome.captured;
    for span in &captured.spans {
        let Some(parent) = span.parent_id().and_then(|p| captured.span(p)) else {
            continue;
        };
        if span.links.contains(&parent.span_id) {
            continue;
        }
        if span.start < parent.start || span.end > parent.end {
            violation(
                found,
                "child-within-parent",
                format!(
                    "`{}` ({}…{}) is not within its parent `{}` ({}…{})",
                    span.op, span.start, span.end, parent.op, parent.start, parent.end
                ),
                &[span, parent],
            );
        }
    }
}

/// Async work starts after the span that scheduled it ended, and links to it.
fn async_work_follows_its_cause(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let captured = &outcome.captured;
    for span in &captured.spans {
        for cause_id in &span.links {
            match captured.span(*cause_id) {
                Some(cause) if span.start >= cause.end && cause.trace_id == span.trace_id => {}
                Some(cause) => violation(
                    found,
                    "async-after-cause",
                    format!(
                        "`{}` starts at {} but follows from `{}`, which ends at {} (or is in another trace)",
                        span.op, span.start, cause.op, cause.end
                    ),
                    &[span, cause],
                ),
                None => violation(
                    found,
                    "async-after-cause",
                    format!("`{}` follows from {cause_id}, which no captured span has", span.op),
                    &[span],
                ),
            }
        }
        // A root of async work (a job, a callback) must say what caused it. The same operation
        // may also run synchronously inside a request (a reminder is scheduled in-request and
        // sent by cron under the same name), so only spans without a local parent count.
        let job_root = !matches!(span.parent, Some((_, ParentKind::Local)));
        if job_root && span.links.is_empty() && ASYNC_OPERATIONS.contains(&span.op) {
            violation(
                found,
                "async-after-cause",
                format!(
                    "`{}` runs asynchronously but has no follows-from link",
                    span.op
                ),
                &[span],
            );
        }
    }
}

/// Operations that run after the request that caused them has answered.
pub(crate) const ASYNC_OPERATIONS: &[&str] = &[
    WEBHOOK_EXECUTION,
    PAYMENT_SUCCESS_PROCESSING,
    PAYMENT_FAILURE_PROCESSING,
    SCHEDULE_MANDATORY_REMINDER,
];

/// Every request a mock received names the flow's trace and the span that sent it.
fn mock_requests_carry_context(
    outcome: &ReplayOutcome,
    flows: &[TraceId],
    found: &mut Vec<Violation>,
) {
    let captured = &outcome.captured;
    for request in &outcome.requests {
        let context = request
            .traceparent
            .as_deref()
            .and_then(|h| TraceContext::parse_traceparent(h).ok());
        let Some(context) = context else {
            found.push(Violation {
                invariant: "mock-requests-carry-context",
                message: format!(
                    "{} {} to mock `{}` carried no valid traceparent{}",
                    request.method,
                    request.path,
                    request.mock,
                    match &request.traceparent {
                        Some(value) => format!(" (it sent `{value}`)"),
                        None => String::new(),
                    }
                ),
                spans: vec![],
            });
            continue;
        };
        let sender = captured.span(context.span_id);
        match sender {
            Some(span)
                if span.trace_id == context.trace_id && flows.contains(&context.trace_id) => {}
            Some(span) if span.trace_id != context.trace_id => violation(
                found,
                "mock-requests-carry-context",
                format!(
                    "{} {} to mock `{}` names span `{}` but trace {} (the span's trace is {})",
                    request.method,
                    request.path,
                    request.mock,
                    span.op,
                    context.trace_id,
                    span.trace_id
                ),
                &[span],
            ),
            Some(span) => violation(
                found,
                "mock-requests-carry-context",
                format!(
                    "{} {} to mock `{}` names span `{}` of trace {}, which no booking flow answered with",
                    request.method, request.path, request.mock, span.op, context.trace_id
                ),
                &[span],
            ),
            // A span open when the service died at a crash point is never exported; the
            // requests it made are still the flow's.
            None if lost_in_crash(outcome, context.span_id) && flows.contains(&context.trace_id) => {
            }
            // From log lines, a span that wrote none is unseen: its trace is all there is.
            None if outcome.source == SpanSource::LogLines && flows.contains(&context.trace_id) => {
            }
            None if outcome.source == SpanSource::LogLines => found.push(Violation {
                invariant: "mock-requests-carry-context",
                message: format!(
                    "{} {} to mock `{}` names trace {}, which no booking flow's lines are in",
                    request.method, request.path, request.mock, context.trace_id
                ),
                spans: vec![],
            }),
            None => found.push(Violation {
                invariant: "mock-requests-carry-context",
                message: format!(
                    "{} {} to mock `{}` names parent {}, which no captured span has",
                    request.method, request.path, request.mock, context.span_id
                ),
                spans: vec![],
            }),
        }
    }
}

/// A request answered 5xx leaves the span that served it in error, with the reason as its
/// status message: OpenTelemetry's HTTP conventions for a server span, and what an engineer
/// holding the request's trace looks for first. The answer is the one the harness itself
/// received, so a service cannot pass by reporting a status of its own; the span serving it is
/// the request's entry span (its `request.id`, no local parent). A cron call has none: it
/// opens no span, and its jobs' spans are the jobs' own work.
fn server_errors_in_error(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let served = outcome
        .steps
        .iter()
        .filter(|step| step.action != StepKind::Cron && step.status >= 500);
    for step in served {
        let Some(request_id) = step.request_id.as_deref() else {
            continue;
        };
        let entry_spans = outcome.captured.spans.iter().filter(|span| {
            span.request_id.as_deref() == Some(request_id)
                && !matches!(span.parent, Some((_, ParentKind::Local)))
        });
        for span in entry_spans {
            let problem = match &span.status {
                SpanStatus::Error(reason) if !reason.trim().is_empty() => continue,
                SpanStatus::Error(_) => "is in error without a reason",
                SpanStatus::Ok => "is ok",
            };
            violation(
                found,
                "server-error-status",
                format!(
                    "the {} step at {} was answered {}, but `{}`, the span that served it, {problem}: a 5xx answer puts its server span in error, with the reason",
                    step.action,
                    crate::clock::Compact(step.at),
                    step.status,
                    span.op,
                ),
                &[span],
            );
        }
    }
}

/// Whether a crash lost `span`: its process died before it could end and be exported.
fn lost_in_crash(outcome: &ReplayOutcome, span: SpanId) -> bool {
    super::lost_at(outcome, span).is_some()
}

/// A subscriber gets the same delivery from a second span only because the first one's
/// process died between sending it and committing its outcome, and the job ran again after
/// its lease: every sender but the last was lost in a crash, and all are in one trace.
fn redelivered_only_after_crashes(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    for redelivery in super::redeliveries(outcome) {
        let (first_trace, _) = redelivery.senders[0];
        let last = redelivery.senders.len() - 1;
        for (i, (trace, span)) in redelivery.senders.iter().enumerate() {
            let sent = |span: &SpanId| match outcome.captured.span(*span) {
                Some(s) => format!("`{}` {span}", s.op),
                None => format!("span {span}"),
            };
            if *trace != first_trace {
                found.push(Violation {
                    invariant: "redelivery-after-crash",
                    message: format!(
                        "mock `{}` got one delivery in trace {first_trace} and again from {} in trace {trace}: a re-run must continue the job's trace",
                        redelivery.mock,
                        sent(span)
                    ),
                    spans: vec![*span],
                });
            } else if i < last && !lost_in_crash(outcome, *span) {
                let again = redelivery.senders[i + 1].1;
                found.push(Violation {
                    invariant: "redelivery-after-crash",
                    message: format!(
                        "mock `{}` got the same delivery from {} and again from {}, with no crash between its send and its commit: a job ran twice",
                        redelivery.mock,
                        sent(span),
                        sent(&again)
                    ),
                    spans: [*span, again].into(),
                });
            }
        }
    }
}

fn log_prefixes_match_spans(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let captured = &outcome.captured;
    for line in &captured.logs {
        let Some(prefix) = line.span else { continue };
        let ok = captured
            .span(prefix.span_id)
            .is_some_and(|s| s.trace_id == prefix.trace_id && s.op == prefix.op);
        if !ok {
            found.push(Violation {
                invariant: "log-prefix-matches-span",
                message: format!(
                    "log line {:?} claims span {} op `{}`, which does not match a captured span",
                    line.message, prefix.span_id, prefix.op
                ),
                spans: vec![],
            });
        }
    }
}

/// Tracing off: no spans, no `traceparent` on the wire, no `X-Trace-Id` in responses.
fn opt_out_propagates_nothing(outcome: &ReplayOutcome, found: &mut Vec<Violation>) {
    let mut leak = |what: String| {
        found.push(Violation {
            invariant: "opt-out-propagates-nothing",
            message: what,
            spans: vec![],
        })
    };
    if !outcome.captured.spans.is_empty() {
        leak(format!(
            "{} spans were captured with tracing off",
            outcome.captured.spans.len()
        ));
    }
    for r in outcome.requests.iter().filter(|r| r.traceparent.is_some()) {
        leak(format!(
            "{} {} to mock `{}` carried a traceparent with tracing off",
            r.method, r.path, r.mock
        ));
    }
    for s in outcome.steps.iter().filter(|s| s.trace_id.is_some()) {
        leak(format!(
            "the {} step at {} answered with X-Trace-Id with tracing off",
            s.action,
            crate::clock::Compact(s.at)
        ));
    }
}
