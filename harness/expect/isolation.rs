//! Isolation at load: every span, log line and mock request of a load run belongs to exactly
//! the booking flow that caused it. Flows are told apart by what the service answered them
//! (`X-Trace-Id`, `X-Request-Id`, the booking's `uid`); nothing here trusts the spans to say
//! which flow they are.

use std::collections::BTreeMap;

use crate::mocks::{MockKind, ReceivedRequest};
use crate::outcome::FlowResponse;
use crate::trace::{Captured, TraceContext};

/// Findings past this many are counted, not listed: one leak usually shows up thousands of
/// times at load.
pub const MAX_LISTED_FINDINGS: usize = 20;

/// What broke isolation, in words; empty when every flow kept to itself. `flows` are the
/// flows' booking answers; `captured` and `requests` are everything the run produced.
pub fn check_isolation(
    flows: &[FlowResponse],
    captured: &Captured,
    requests: &[ReceivedRequest],
) -> Vec<String> {
    let mut findings = Findings::default();
    // Flow index by each identity the service handed out.
    let mut by_trace: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_request: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_uid: BTreeMap<&str, usize> = BTreeMap::new();
    for (flow, response) in flows.iter().enumerate() {
        let (Some(trace), Some(request), Some(uid)) = (
            response.trace_id.as_deref(),
            response.request_id.as_deref(),
            response.booking_uid.as_deref(),
        ) else {
            findings.push(format!(
                "flow {flow} got no trace id, request id or booking uid back: {response:?}"
            ));
            continue;
        };
        for (index, key, what) in [
            (&mut by_trace, trace, "trace"),
            (&mut by_request, request, "request id"),
            (&mut by_uid, uid, "booking uid"),
        ] {
            if let Some(other) = index.insert(key, flow) {
                findings.push(format!("flows {other} and {flow} share the {what} {key}"));
            }
        }
    }

    // Spans: each in a flow's trace, its request (when it served one of the flow requests)
    // that flow's, and exactly one booking per trace, the flow's own.
    let mut bookings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for span in &captured.spans {
        let trace = span.trace_id.to_string();
        let Some(&flow) = by_trace.get(trace.as_str()) else {
            findings.push(format!(
                "span {} ({}) is in trace {trace}, which no flow was given",
                span.span_id, span.op
            ));
            continue;
        };
        if let Some(request) = span.request_id.as_deref() {
            if let Some(&owner) = by_request.get(request) {
                if owner != flow {
                    findings.push(format!(
                        "span {} ({}) served flow {owner}'s request {request} but is in flow {flow}'s trace",
                        span.span_id, span.op
                    ));
                }
            }
        }
        if let Some(uid) = span.field("booking_uid") {
            let uid = uid.to_string();
            if span.op == crate::contract::BOOKING_CREATION {
                bookings.entry(trace.clone()).or_default().push(uid.clone());
            }
            if by_uid.get(uid.as_str()).is_some_and(|&owner| owner != flow) {
                findings.push(format!(
                    "span {} ({}) names booking {uid} of another flow but is in flow {flow}'s trace",
                    span.span_id, span.op
                ));
            }
        }
    }
    for (trace, &flow) in &by_trace {
        let expected = flows[flow].booking_uid.as_deref().unwrap_or_default();
        match bookings.get(*trace).map(Vec::as_slice) {
            Some([uid]) if uid == expected => {}
            found => findings.push(format!(
                "flow {flow}'s trace {trace} holds bookings {found:?}, expected exactly [{expected:?}]"
            )),
        }
    }
    for line in &captured.logs {
        let Some(span) = &line.span else { continue };
        if !by_trace.contains_key(span.trace_id.to_string().as_str()) {
            findings.push(format!(
                "log line `{}` is in trace {}, which no flow was given",
                line.message, span.trace_id
            ));
        }
    }

    // Mock requests: each carries a flow's trace, and a webhook carries that flow's booking.
    for request in requests {
        let Some(context) = request
            .traceparent
            .as_deref()
            .and_then(|h| TraceContext::parse_traceparent(h).ok())
        else {
            findings.push(format!(
                "{} {} to mock `{}` carried no valid traceparent",
                request.method, request.path, request.mock
            ));
            continue;
        };
        let trace = context.trace_id.to_string();
        let Some(&flow) = by_trace.get(trace.as_str()) else {
            findings.push(format!(
                "{} {} to mock `{}` carried trace {trace}, which no flow was given",
                request.method, request.path, request.mock
            ));
            continue;
        };
        if request.kind == MockKind::WebhookSubscriber {
            let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
            let uid = body["payload"]["uid"].as_str().unwrap_or_default();
            if flows[flow].booking_uid.as_deref() != Some(uid) {
                findings.push(format!(
                    "a webhook about booking {uid:?} carried flow {flow}'s trace {trace}"
                ));
            }
        }
    }
    findings.finish()
}

/// Findings, listing the first [`MAX_LISTED_FINDINGS`] and counting the rest.
#[derive(Default)]
struct Findings {
    listed: Vec<String>,
    unlisted: usize,
}

impl Findings {
    fn push(&mut self, finding: String) {
        if self.listed.len() < MAX_LISTED_FINDINGS {
            self.listed.push(finding);
        } else {
            self.unlisted += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.unlisted > 0 {
            self.listed
                .push(format!("… and {} more findings", self.unlisted));
        }
        self.listed
    }
}

/// Deliveries per booking uid the subscriber mocks accepted requests for, whatever they
/// answered: a helper for "each flow's webhook arrived exactly once".
pub fn webhook_deliveries(requests: &[ReceivedRequest]) -> BTreeMap<String, usize> {
    let mut deliveries = BTreeMap::new();
    for request in requests
        .iter()
        .filter(|r| r.kind == MockKind::WebhookSubscriber)
    {
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
        let uid = body["payload"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *deliveries.entry(uid).or_insert(0) += 1;
    }
    deliveries
}
