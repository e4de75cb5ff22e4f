//! When a step's telemetry is complete. The harness knows what it caused, so it waits for that,
//! not for a span count to stop changing: after each step, (a) the span that served every
//! request that named a trace has arrived, (b) every span's parent has arrived (or is a context
//! the harness itself sent in), (c) every mock request that carried a `traceparent` names a span
//! that has arrived. Work the service started without awaiting it (a cron that answers before
//! its deliveries end) is covered by a short quiet period after the rules hold, bounded by a
//! deadline. These are pure functions of what arrived; the waiting lives in `service.rs`.

use std::collections::HashSet;

use crate::mocks::ReceivedRequest;
use crate::outcome::StepOutcome;
use crate::trace::{Captured, ParentKind, SpanId, TraceContext, TraceId};

/// What the harness caused so far in a replay: what the rules check arrivals against.
pub(crate) struct Caused<'a> {
    /// The timeline's exchanges so far.
    pub steps: &'a [StepOutcome],
    /// Contexts the harness sent in (their spans never arrive: they are a caller's).
    pub inbound: &'a [TraceContext],
    /// What the mocks received so far.
    pub mock_requests: &'a [ReceivedRequest],
    /// Spans that were open when the service died at a crash point: never exported, so never
    /// waited for.
    pub lost: &'a [SpanId],
}

/// What has not arrived yet, one line each; empty when the rules hold.
pub(crate) fn missing(arrived: &Captured, caused: &Caused<'_>) -> Vec<String> {
    let ids: HashSet<SpanId> = arrived.spans.iter().map(|s| s.span_id).collect();
    let inbound: HashSet<SpanId> = caused.inbound.iter().map(|c| c.span_id).collect();
    let lost: HashSet<SpanId> = caused.lost.iter().copied().collect();
    let mut missing = Vec::new();
    for step in caused.steps {
        let (Some(trace), Some(request_id)) = (&step.trace_id, &step.request_id) else {
            continue;
        };
        // The serving span is the request's entry: its parent, if any, is remote.
        let served = arrived.spans.iter().any(|s| {
            s.trace_id.to_string() == *trace
                && s.request_id.as_deref() == Some(request_id)
                && s.parent.is_none_or(|(_, kind)| kind == ParentKind::Remote)
        });
        if !served {
            missing.push(format!(
                "the span serving the {} request at {} (X-Request-Id {request_id}, trace {trace})",
                step.action,
                crate::clock::Compact(step.at)
            ));
        }
    }
    for span in &arrived.spans {
        if let Some(parent) = span.parent_id() {
            if !ids.contains(&parent) && !inbound.contains(&parent) {
                missing.push(format!(
                    "span {} `{}`'s parent {parent} (trace {})",
                    span.span_id, span.op, span.trace_id
                ));
            }
        }
    }
    for request in caused.mock_requests {
        let Some(context) = request
            .traceparent
            .as_deref()
            .and_then(|v| TraceContext::parse_traceparent(v).ok())
        else {
            continue;
        };
        let sender = context.span_id;
        if !ids.contains(&sender) && !inbound.contains(&sender) && !lost.contains(&sender) {
            missing.push(format!(
                "the span {} that sent {} {} to mock `{}` (trace {})",
                context.span_id, request.method, request.path, request.mock, context.trace_id
            ));
        }
    }
    missing
}

/// The senders of `requests` (by their `traceparent`) that `lost` says a crash took, each once,
/// in order of its first request: the spans a crash lost that the replay can name.
pub(crate) fn named_senders(
    requests: &[ReceivedRequest],
    lost: impl Fn(SpanId) -> bool,
) -> Vec<(TraceId, SpanId)> {
    let mut named: Vec<(TraceId, SpanId)> = Vec::new();
    for request in requests {
        let Some(sender) =
            (request.traceparent.as_deref()).and_then(|v| TraceContext::parse_traceparent(v).ok())
        else {
            continue;
        };
        if lost(sender.span_id) && !named.iter().any(|(_, s)| *s == sender.span_id) {
            named.push((sender.trace_id, sender.span_id));
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{replay, ReplayOptions};
    use crate::scenario::Scenario;

    fn replayed(name: &str) -> crate::outcome::ReplayOutcome {
        let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let scenario =
            Scenario::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
        replay(&scenario, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn caused(outcome: &crate::outcome::ReplayOutcome) -> Caused<'_> {
        Caused {
            steps: &outcome.steps,
            inbound: &outcome.inbound_contexts,
            mock_requests: &outcome.requests,
            lost: &[],
        }
    }

    #[test]
    fn a_whole_replay_misses_nothing() {
        for name in [
            "calendar_failure",
            "slow_payment",
            "webhook_retries",
            "seated_attendees",
            "performance",
        ] {
            let outcome = replayed(name);
            let missing = missing(&outcome.captured, &caused(&outcome));
            assert!(missing.is_empty(), "{name}: {missing:?}");
        }
    }

    #[test]
    fn each_rule_names_what_has_not_arrived() {
        let outcome = replayed("slow_payment");
        let booking = outcome
            .captured
            .spans
            .iter()
            .find(|s| s.op == crate::contract::BOOKING_CREATION)
            .cloned()
            .unwrap_or_else(|| panic!("no booking span"));
        // Without the booking's own span: the request it served, its children's parent and the
        // mock requests it sent are all missing.
        let mut arrived = outcome.captured.clone();
        arrived.spans.retain(|s| s.span_id != booking.span_id);
        let missing = missing(&arrived, &caused(&outcome));
        let request_id = outcome.steps[0].request_id.clone().unwrap_or_default();
        assert!(
            missing
                .iter()
                .any(|m| m.starts_with("the span serving the book request at 0s")
                    && m.contains(&request_id)),
            "{missing:#?}"
        );
        assert!(
            missing
                .iter()
                .any(|m| m.contains(&format!("'s parent {}", booking.span_id))),
            "{missing:#?}"
        );
        // Without the span that created the PaymentIntent, Stripe's request names a span
        // that has not arrived.
        let sent = outcome
            .requests
            .iter()
            .find(|r| r.path == crate::contract::peers::STRIPE_PAYMENT_INTENTS)
            .and_then(|r| TraceContext::parse_traceparent(r.traceparent.as_deref()?).ok())
            .unwrap_or_else(|| panic!("Stripe got no traced request"));
        let mut arrived = outcome.captured.clone();
        arrived.spans.retain(|s| s.span_id != sent.span_id);
        let missing = super::missing(&arrived, &caused(&outcome));
        assert!(
            missing.iter().any(|m| m.starts_with(&format!(
                "the span {} that sent POST /v1/payment_intents to mock `stripe`",
                sent.span_id
            ))),
            "{missing:#?}"
        );
    }

    #[test]
    fn a_span_lost_at_a_crash_is_not_waited_for_and_is_named_by_its_requests() {
        let outcome = replayed("webhook_crash");
        let lost = &outcome.crashes[0].lost;
        assert_eq!(lost.len(), 1);
        let (trace, span) = lost[0];
        let unknown = |s: SpanId| outcome.captured.span(s).is_none();
        assert_eq!(named_senders(&outcome.requests, unknown), [(trace, span)]);
        let waited = missing(&outcome.captured, &caused(&outcome));
        assert_eq!(
            waited,
            [format!(
                "the span {span} that sent POST /webhook to mock `subscriber` (trace {trace})"
            )]
        );
        let spans: Vec<SpanId> = lost.iter().map(|(_, s)| *s).collect();
        let settled = Caused {
            lost: &spans,
            ..caused(&outcome)
        };
        assert!(missing(&outcome.captured, &settled).is_empty());
    }
}
