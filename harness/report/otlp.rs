//! OTLP export: a replay's spans as an OpenTelemetry `ExportTraceServiceRequest`, built from the
//! `opentelemetry-proto` types so that protobuf (prost) and JSON (their serde support, which
//! follows the OTLP/JSON rules: hex ids, lowerCamelCase names, integer enums, 64-bit integers
//! as strings) come from the official definitions rather than from us.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::epoch::Epoch;
use super::pieces::{exported, Judged, Piece, RenderOptions};
use crate::contract::CALENDAR_EVENT_CREATION;
use crate::mocks::ReceivedRequest;
use crate::outcome::ReplayOutcome;
use crate::trace::{
    splitmix64, Captured, FieldValue, LogLine, ParentKind, SpanData, SpanId, SpanStatus,
    TraceContext, TraceId,
};

/// The simulated booking service, as a tracing backend lists it.
pub const BOOKING_SERVICE: &str = crate::contract::DEFAULT_SERVICE_NAME;
/// Operations whose span wraps one outbound call to a third party.
const CLIENT_OPERATIONS: &[&str] = &[CALENDAR_EVENT_CREATION];

/// `SpanFlags`: bit 8 says whether the parent's remoteness is known, bit 9 that it is remote.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// The replay's spans as one export request: one resource per simulated service, one scope (the
/// harness), spans in creation order.
///
/// The booking service's spans are the captured ones. The mocked third parties record requests,
/// not spans; each request that arrived with a `traceparent` becomes a SERVER span of the mock's
/// own service, child of the span that sent it and timed like it (on virtual time the call is
/// all its sender does: it sends at its start and the declared latency ends it), so a tracing UI
/// shows which services a booking touched.
pub fn export_request(outcome: &ReplayOutcome, epoch: Epoch) -> ExportTraceServiceRequest {
    let captured = &outcome.captured;
    let mut services: Vec<(String, Vec<Span>)> = Vec::new();
    let booking = service_spans(captured, epoch);
    if !booking.is_empty() {
        services.push((BOOKING_SERVICE.to_owned(), booking));
    }
    for (i, request) in outcome.requests.iter().enumerate() {
        let Some(span) = mock_span(captured, request, i, epoch) else {
            continue;
        };
        let service = mock_service(outcome, request);
        match services.iter_mut().find(|(name, _)| *name == service) {
            Some((_, spans)) => spans.push(span),
            None => services.push((service, vec![span])),
        }
    }
    let resource_spans = services
        .into_iter()
        .map(|(service, spans)| {
            resource_spans(
                vec![
                    string_attribute("service.name", &service),
                    string_attribute("trace_harness.scenario", &outcome.scenario),
                    kv("trace_harness.seed", int_or_string(outcome.seed)),
                ],
                spans,
            )
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The booking service's spans in `captured`, in creation order, each with its events (the
/// lines in `captured` written in it), as [`export_request`] maps them.
pub fn service_spans(captured: &Captured, epoch: Epoch) -> Vec<Span> {
    let index = Index::of(captured);
    (captured.spans.iter())
        .map(|span| otlp_span(&index, span, epoch))
        .collect()
}

/// `spans` ([`service_spans`]) as one export request from the service named `service`, its
/// resource's only attribute (`service.name`): what the service sends of itself when it
/// exports as its spans close.
pub fn service_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            vec![string_attribute("service.name", service)],
            spans,
        )],
    }
}

/// What mapping a span looks up in the rest of the capture, found once per capture rather
/// than once per span: the lines written in each span, in order, and each span's trace.
struct Index<'a> {
    events: HashMap<SpanId, Vec<&'a LogLine>>,
    traces: HashMap<SpanId, TraceId>,
}

impl<'a> Index<'a> {
    fn of(captured: &'a Captured) -> Self {
        let mut events: HashMap<SpanId, Vec<&LogLine>> = HashMap::new();
        for line in &captured.logs {
            if let Some(span) = line.span {
                events.entry(span.span_id).or_default().push(line);
            }
        }
        let mut traces = HashMap::with_capacity(captured.spans.len());
        for span in &captured.spans {
            // The first span with an id, as `Captured::span` finds it.
            traces.entry(span.span_id).or_insert(span.trace_id);
        }
        Index { events, traces }
    }
}

/// One resource's spans under the harness's scope.
fn resource_spans(attributes: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "trace-harness".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `google-calendar`, `webhook-subscriber`; with several mocks of one kind, `…/<mock name>`.
fn mock_service(outcome: &ReplayOutcome, request: &ReceivedRequest) -> String {
    let kind = request.kind.name().replace('_', "-");
    let mut names: Vec<&str> = outcome
        .requests
        .iter()
        .filter(|r| r.kind == request.kind)
        .map(|r| r.mock.as_str())
        .collect();
    names.dedup();
    if names.len() > 1 {
        format!("{kind}/{}", request.mock)
    } else {
        kind
    }
}

/// The SERVER span of a mock that received `request`, if the request carried a context whose
/// sender was captured.
fn mock_span(
    captured: &Captured,
    request: &ReceivedRequest,
    index: usize,
    epoch: Epoch,
) -> Option<Span> {
    let context = TraceContext::parse_traceparent(request.traceparent.as_deref()?).ok()?;
    let sender = captured.span(context.span_id)?;
    // A deterministic id: the sender's id and the request's place, mixed.
    let seed = u64::from_be_bytes(context.span_id.to_bytes()) ^ (index as u64 + 1);
    let span_id = SpanId::from_bytes(splitmix64(seed).to_be_bytes())?;
    Some(Span {
        trace_id: context.trace_id.to_bytes().to_vec(),
        span_id: span_id.to_bytes().to_vec(),
        trace_state: request.tracestate.clone().unwrap_or_default(),
        parent_span_id: context.span_id.to_bytes().to_vec(),
        flags: u32::from(context.flags.to_byte()) | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
        name: format!("{} {}", request.method, request.path),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: epoch.unix_nanos_at(sender.start),
        end_time_unix_nano: epoch.unix_nanos_at(sender.end),
        attributes: vec![
            string_attribute("http.request.method", &request.method),
            string_attribute("url.path", &request.path),
            string_attribute("trace_harness.mock", &request.mock),
        ],
        status: Some(Status::default()),
        ..Default::default()
    })
}

/// OTLP/JSON text of [`export_request`].
pub fn otlp_json(outcome: &ReplayOutcome, epoch: Epoch) -> String {
    // The generated types serialise infallibly: strings, numbers and lists only.
    serde_json::to_string(&export_request(outcome, epoch)).unwrap_or_default()
}

fn otlp_span(index: &Index<'_>, span: &SpanData, epoch: Epoch) -> Span {
    let kind = match span.parent {
        Some((_, ParentKind::Remote)) if !span.links.is_empty() => SpanKind::Consumer,
        Some((_, ParentKind::Remote)) | None => SpanKind::Server,
        Some((_, ParentKind::Local)) if CLIENT_OPERATIONS.contains(&span.op) => SpanKind::Client,
        Some((_, ParentKind::Local)) => SpanKind::Internal,
    };
    let remote = match span.parent {
        Some((_, ParentKind::Remote)) => FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
        _ => FLAG_HAS_IS_REMOTE,
    };
    let mut attributes: Vec<KeyValue> = span
        .fields
        .iter()
        .map(|(key, value)| kv(key, any_value(value)))
        .collect();
    if let Some(id) = &span.request_id {
        attributes.push(string_attribute("request.id", id));
    }
    let events = (index.events.get(&span.span_id).into_iter().flatten())
        .map(|line| {
            // `level` and `target` as tracing-opentelemetry sends them, so a receiver gets the
            // whole log line back.
            let mut attributes = vec![
                string_attribute("level", &line.level.as_str().to_ascii_lowercase()),
                string_attribute("target", line.target),
            ];
            attributes.extend(
                line.fields
                    .iter()
                    .map(|(key, value)| kv(key, any_value(value))),
            );
            Event {
                time_unix_nano: epoch.unix_nanos_at(line.at),
                name: line.message.clone(),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    let links = span
        .links
        .iter()
        .map(|cause| {
            let trace_id = (index.traces.get(cause).copied())
                .unwrap_or(span.trace_id)
                .to_bytes()
                .to_vec();
            Link {
                trace_id,
                span_id: cause.to_bytes().to_vec(),
                // Jaeger shows a link with this attribute as a FOLLOWS_FROM reference.
                attributes: vec![string_attribute("opentracing.ref_type", "follows_from")],
                flags: FLAG_HAS_IS_REMOTE,
                ..Default::default()
            }
        })
        .collect();
    let status = match &span.status {
        SpanStatus::Ok => Status::default(),
        SpanStatus::Error(message) => Status {
            message: message.to_string(),
            code: StatusCode::Error as i32,
        },
    };
    Span {
        trace_id: span.trace_id.to_bytes().to_vec(),
        span_id: span.span_id.to_bytes().to_vec(),
        trace_state: span.tracestate.as_deref().unwrap_or_default().to_owned(),
        parent_span_id: span
            .parent_id()
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default(),
        flags: u32::from(span.flags.to_byte()) | remote,
        name: span.op.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: epoch.unix_nanos_at(span.start),
        end_time_unix_nano: epoch.unix_nanos_at(span.end),
        attributes,
        events,
        links,
        status: Some(status),
        ..Default::default()
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    kv(
        key,
        AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        },
    )
}

/// OTLP integers are signed 64-bit; a larger unsigned value travels as its decimal text.
fn int_or_string(n: u64) -> AnyValue {
    let value = match i64::try_from(n) {
        Ok(n) => any_value::Value::IntValue(n),
        Err(_) => any_value::Value::StringValue(n.to_string()),
    };
    AnyValue { value: Some(value) }
}

fn any_value(value: &FieldValue) -> AnyValue {
    match value {
        FieldValue::Str(s) => AnyValue {
            value: Some(any_value::Value::StringValue(s.to_string())),
        },
        FieldValue::I64(n) => AnyValue {
            value: Some(any_value::Value::IntValue(*n)),
        },
        FieldValue::U64(n) => int_or_string(*n),
        FieldValue::F64(x) => AnyValue {
            value: Some(any_value::Value::DoubleValue(*x)),
        },
        FieldValue::Bool(b) => AnyValue {
            value: Some(any_value::Value::BoolValue(*b)),
        },
    }
}

/// Every replay's request, one per line on standard output or each in `<scenario>.otlp.json`.
pub fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    exported(judged, options, "otlp.json", |outcome, epoch| {
        otlp_json(outcome, epoch) + "\n"
    })
}
