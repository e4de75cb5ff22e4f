//! Deliveries sent again: one subscriber receiving the same signed body from more than one
//! span. Retries inside one job's span are not that (they are one span's attempts); a job run
//! again after its process died mid-job is, and it must be the only way it happens: at least
//! once, with the repeat in the same trace, never twice without a crash between send and
//! commit.

use crate::mocks::MockKind;
use crate::outcome::ReplayOutcome;
use crate::trace::{SpanId, TraceContext, TraceId};

/// One delivery a subscriber got from several spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redelivery {
    /// The subscriber mock's name.
    pub mock: String,
    /// Each span that sent the body, with the trace its `traceparent` named, in the order
    /// their first requests arrived.
    pub senders: Vec<(TraceId, SpanId)>,
}

/// Every body a webhook subscriber received from more than one span, in arrival order of the
/// first copy.
pub fn redeliveries(outcome: &ReplayOutcome) -> Vec<Redelivery> {
    // (the request's body, what was found for it so far)
    let mut found: Vec<(&str, Redelivery)> = Vec::new();
    for request in (outcome.requests.iter()).filter(|r| r.kind == MockKind::WebhookSubscriber) {
        let Some(sender) =
            (request.traceparent.as_deref()).and_then(|v| TraceContext::parse_traceparent(v).ok())
        else {
            continue;
        };
        let sender = (sender.trace_id, sender.span_id);
        let same = |(body, seen): &&mut (&str, Redelivery)| {
            seen.mock == request.mock && *body == request.body
        };
        match found.iter_mut().find(same) {
            Some((_, seen)) if !seen.senders.contains(&sender) => seen.senders.push(sender),
            Some(_) => {}
            None => found.push((
                &request.body,
                Redelivery {
                    mock: request.mock.clone(),
                    senders: vec![sender],
                },
            )),
        }
    }
    (found.into_iter())
        .map(|(_, seen)| seen)
        .filter(|seen| seen.senders.len() > 1)
        .collect()
}

/// When a crash lost `span`: the crash's offset and point.
pub fn lost_at(
    outcome: &ReplayOutcome,
    span: SpanId,
) -> Option<(std::time::Duration, &'static str)> {
    (outcome.crashes.iter())
        .find(|c| c.lost.iter().any(|(_, lost)| *lost == span))
        .map(|c| (c.at, c.point))
}
