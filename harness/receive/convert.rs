//! One OTLP span checked and turned into the form an inbox keeps: ids validated, names
//! interned, attributes as fields, events as log lines in the making. The inverse of
//! `report::otlp`'s `otlp_span`: span attributes are fields except `request.id`, an event's
//! name is its message, its `level` and `target` attributes its level and target, the rest its
//! fields; links are follows-from links; an error status is the span's error.
//!
//! Times stay Unix nanoseconds here: which instant is zero is a snapshot's choice.

use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::intern::{intern, InternError, MAX_NAME_BYTES};
use crate::trace::{
    FieldStr, FieldValue, Fields, SpanId, SpanStatus, ThinVec, TraceFlags, TraceId, TraceState,
};

/// Most attributes one span or event may carry: OpenTelemetry SDKs keep 128 by default.
pub(crate) const MAX_ATTRIBUTES: usize = 1024;
/// Most events one span may carry.
pub(crate) const MAX_EVENTS: usize = 1024;
/// Most links one span may carry.
pub(crate) const MAX_LINKS: usize = 128;

/// The span attribute that carries the legacy request id (`SpanData::request_id`).
pub(crate) const REQUEST_ID: &str = "request.id";
/// The event attribute that carries the log line's level, lowercase or not.
pub(crate) const LEVEL: &str = "level";
/// The event attribute that carries the log line's target, as `tracing-opentelemetry` sends it.
pub(crate) const TARGET: &str = "target";

/// `SpanFlags`: bit 8 says whether the parent's remoteness is known, bit 9 that it is remote.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// OTLP's span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Not said (0), or a value OTLP does not define.
    Unspecified,
    /// Work inside one service (1).
    Internal,
    /// The handling of a request from outside (2).
    Server,
    /// A call to another service (3).
    Client,
    /// The sending of a message handled later (4).
    Producer,
    /// The handling of such a message (5).
    Consumer,
}

impl SpanKind {
    fn of(kind: i32) -> Self {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// A received span, checked, as an inbox keeps it.
#[derive(Clone, Debug)]
pub(crate) struct StoredSpan {
    /// The `service.name` of the resource it came with.
    pub(crate) service: Arc<str>,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<SpanId>,
    /// Whether the parent is remote, if the sender said (`SpanFlags` bits 8 and 9).
    pub(crate) parent_remote: Option<bool>,
    pub(crate) links: ThinVec<SpanId>,
    pub(crate) op: &'static str,
    pub(crate) kind: SpanKind,
    pub(crate) fields: Fields,
    pub(crate) status: SpanStatus,
    pub(crate) start_unix_nanos: u64,
    pub(crate) end_unix_nanos: u64,
    pub(crate) flags: TraceFlags,
    pub(crate) tracestate: Option<TraceState>,
    pub(crate) request_id: Option<Arc<str>>,
    /// In the order the span carried them.
    pub(crate) events: Vec<StoredEvent>,
}

/// A span event, as the log line it becomes.
#[derive(Clone, Debug)]
pub(crate) struct StoredEvent {
    pub(crate) at_unix_nanos: u64,
    pub(crate) level: tracing::Level,
    pub(crate) message: String,
    pub(crate) fields: Fields,
    pub(crate) target: &'static str,
}

/// Why one span was rejected; the rest of its request is kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpanProblem {
    #[error("trace id of {0} bytes, not 16")]
    TraceIdLength(usize),
    #[error("all-zero trace id")]
    ZeroTraceId,
    #[error("span id of {0} bytes, not 8")]
    SpanIdLength(usize),
    #[error("all-zero span id")]
    ZeroSpanId,
    #[error("parent span id of {0} bytes, not 8 (or none)")]
    ParentIdLength(usize),
    #[error("all-zero parent span id (a root has none)")]
    ZeroParentId,
    #[error("a link with an invalid trace or span id")]
    LinkId,
    #[error("ends at {end} ns, before it starts at {start} ns")]
    EndBeforeStart { start: u64, end: u64 },
    #[error("no name")]
    EmptyName,
    #[error("span name: {0}")]
    Name(InternError),
    #[error("attribute key: {0}")]
    Key(InternError),
    #[error("event target: {0}")]
    Target(InternError),
    #[error("resource service.name: {0}")]
    Service(InternError),
    #[error("{count} {what}, more than the {max} accepted")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// A rejected span: which one, as its sender would know it, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// `span 00f067aa0ba902b7 "GET /x"`, shortened.
    pub(crate) span: String,
    pub(crate) problem: SpanProblem,
}

/// `span`, checked and converted. `service` is its resource's `service.name`; `scope` its
/// instrumentation scope's name, the target of events that name none.
pub(crate) fn convert(
    mut span: Span,
    service: &Arc<str>,
    scope: &'static str,
) -> Result<StoredSpan, Rejection> {
    // Taken out (no copy) so a rejection can still name the span: only a rejection pays for
    // its description.
    let id = std::mem::take(&mut span.span_id);
    let name = std::mem::take(&mut span.name);
    checked(span, &id, &name, service, scope).map_err(|problem| Rejection {
        span: describe(&id, &name),
        problem,
    })
}

fn checked(
    span: Span,
    id: &[u8],
    name: &str,
    service: &Arc<str>,
    scope: &'static str,
) -> Result<StoredSpan, SpanProblem> {
    let trace_id = valid_trace_id(&span.trace_id)?;
    let span_id = valid_span_id(id)?;
    let parent = match span.parent_span_id.len() {
        0 => None,
        8 => Some(span_id_of(&span.parent_span_id).ok_or(SpanProblem::ZeroParentId)?),
        n => return Err(SpanProblem::ParentIdLength(n)),
    };
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(SpanProblem::EndBeforeStart {
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
        });
    }
    if name.is_empty() {
        return Err(SpanProblem::EmptyName);
    }
    let op = intern(name).map_err(SpanProblem::Name)?;
    bounded("attributes", span.attributes.len(), MAX_ATTRIBUTES)?;
    bounded("events", span.events.len(), MAX_EVENTS)?;
    bounded("links", span.links.len(), MAX_LINKS)?;

    let mut links = ThinVec::with_capacity(span.links.len());
    for link in &span.links {
        valid_trace_id(&link.trace_id).map_err(|_| SpanProblem::LinkId)?;
        links.push(valid_span_id(&link.span_id).map_err(|_| SpanProblem::LinkId)?);
    }
    let mut fields = Fields::with_capacity(span.attributes.len());
    let mut request_id = None;
    for KeyValue { key, value, .. } in span.attributes {
        let Some(value) = value.and_then(|v| v.value) else {
            continue;
        };
        match value {
            any_value::Value::StringValue(id) if key == REQUEST_ID => {
                request_id = Some(Arc::from(id));
            }
            value => {
                if let Some(value) = field(value) {
                    fields.push((intern(&key).map_err(SpanProblem::Key)?, value));
                }
            }
        }
    }
    let events = span
        .events
        .into_iter()
        .map(|e| event(e, scope))
        .collect::<Result<_, _>>()?;
    let status = match span.status {
        Some(status) if status.code == StatusCode::Error as i32 => {
            SpanStatus::Error(status.message.into_boxed_str())
        }
        _ => SpanStatus::Ok,
    };
    let parent_remote =
        (span.flags & FLAG_HAS_IS_REMOTE != 0).then_some(span.flags & FLAG_IS_REMOTE != 0);
    Ok(StoredSpan {
        service: Arc::clone(service),
        trace_id,
        span_id,
        parent,
        parent_remote,
        links,
        op,
        kind: SpanKind::of(span.kind),
        fields,
        status,
        start_unix_nanos: span.start_time_unix_nano,
        end_unix_nanos: span.end_time_unix_nano,
        flags: TraceFlags::from_byte((span.flags & 0xff) as u8),
        // An invalid tracestate is dropped, as the propagator drops an invalid header.
        tracestate: (!span.trace_state.is_empty())
            .then(|| TraceState::parse(&span.trace_state).ok())
            .flatten(),
        request_id,
        events,
    })
}

fn event(event: Event, scope: &'static str) -> Result<StoredEvent, SpanProblem> {
    bounded("event attributes", event.attributes.len(), MAX_ATTRIBUTES)?;
    let mut level = None;
    let mut target = None;
    let mut fields = Fields::with_capacity(event.attributes.len());
    for KeyValue { key, value, .. } in event.attributes {
        let Some(value) = value.and_then(|v| v.value) else {
            continue;
        };
        match value {
            // `tracing::Level` parses any case: ours send `info`, tracing-opentelemetry `INFO`.
            any_value::Value::StringValue(text) if key == LEVEL && level.is_none() => {
                match text.parse::<tracing::Level>() {
                    Ok(parsed) => level = Some(parsed),
                    Err(_) => fields.push((LEVEL, FieldValue::Str(FieldStr::from(text)))),
                }
            }
            any_value::Value::StringValue(text) if key == TARGET && target.is_none() => {
                target = Some(intern(&text).map_err(SpanProblem::Target)?);
            }
            value => {
                if let Some(value) = field(value) {
                    fields.push((intern(&key).map_err(SpanProblem::Key)?, value));
                }
            }
        }
    }
    Ok(StoredEvent {
        at_unix_nanos: event.time_unix_nano,
        level: level.unwrap_or(tracing::Level::INFO),
        message: event.name,
        fields,
        target: target.unwrap_or(scope),
    })
}

/// The resource's `service.name`, interned per request by the caller; OpenTelemetry's
/// `unknown_service` when it has none.
pub(crate) fn service_name(attributes: &[KeyValue]) -> Result<&str, SpanProblem> {
    let name = attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(name) => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or("unknown_service");
    if name.len() > MAX_NAME_BYTES {
        return Err(SpanProblem::Service(InternError::TooLong {
            len: name.len(),
        }));
    }
    Ok(name)
}

/// An attribute's value as a field. OTLP has one integer type, signed, so every integer reads
/// back as `I64`: a field recorded as `u64` returns as the same number typed `I64` (and one
/// above `i64::MAX`, which travels as text, as text); every view prints them alike, and
/// selectors compare printed values. Byte strings become hex, arrays and maps JSON text; a
/// profiling string-table index means nothing outside profiles and is ignored, as OTLP asks.
fn field(value: any_value::Value) -> Option<FieldValue> {
    Some(match value {
        any_value::Value::StringValue(text) => FieldValue::Str(FieldStr::from(text)),
        any_value::Value::BoolValue(b) => FieldValue::Bool(b),
        any_value::Value::IntValue(n) => FieldValue::I64(n),
        any_value::Value::DoubleValue(x) => FieldValue::F64(x),
        any_value::Value::BytesValue(bytes) => FieldValue::Str(FieldStr::from(hex::encode(bytes))),
        value @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            let mut text = String::new();
            write_json(&mut text, &AnyValue { value: Some(value) });
            FieldValue::Str(FieldStr::from(text))
        }
        any_value::Value::StringValueStrindex(_) => return None,
    })
}

/// Nested values as compact JSON. Depth is bounded by the decoders (prost's recursion limit,
/// serde_json's), so this recursion is too.
fn write_json(out: &mut String, value: &AnyValue) {
    match &value.value {
        None | Some(any_value::Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(any_value::Value::StringValue(s)) => {
            out.push_str(&serde_json::Value::from(s.as_str()).to_string())
        }
        Some(any_value::Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(any_value::Value::IntValue(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(any_value::Value::DoubleValue(x)) => {
            out.push_str(&serde_json::Value::from(*x).to_string())
        }
        Some(any_value::Value::BytesValue(b)) => {
            let _ = write!(out, "\"{}\"", hex::encode(b));
        }
        Some(any_value::Value::ArrayValue(array)) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(map)) => {
            out.push('{');
            for (i, kv) in map.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(kv.key.as_str()).to_string());
                out.push(':');
                match &kv.value {
                    Some(v) => write_json(out, v),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

/// `span 00f067aa0ba902b7 "GET /x"`: ids and names from outside, shortened.
fn describe(span_id: &[u8], name: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut shown: String = name.chars().take(MAX_CHARS).collect();
    if name.chars().count() > MAX_CHARS {
        shown.push('…');
    }
    let id = if span_id.len() <= 16 {
        hex::encode(span_id)
    } else {
        format!("{}…", hex::encode(&span_id[..16]))
    };
    format!("span {id} {shown:?}")
}

fn bounded(what: &'static str, count: usize, max: usize) -> Result<(), SpanProblem> {
    if count > max {
        return Err(SpanProblem::TooMany { what, count, max });
    }
    Ok(())
}

fn valid_trace_id(bytes: &[u8]) -> Result<TraceId, SpanProblem> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| SpanProblem::TraceIdLength(bytes.len()))?;
    TraceId::from_bytes(bytes).ok_or(SpanProblem::ZeroTraceId)
}

fn valid_span_id(bytes: &[u8]) -> Result<SpanId, SpanProblem> {
    if bytes.len() != 8 {
        return Err(SpanProblem::SpanIdLength(bytes.len()));
    }
    span_id_of(bytes).ok_or(SpanProblem::ZeroSpanId)
}

/// An 8-byte id, `None` if zero (or not 8 bytes).
fn span_id_of(bytes: &[u8]) -> Option<SpanId> {
    SpanId::from_bytes(bytes.try_into().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn valid() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /api/bookings".into(),
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        }
    }

    fn check(edit: impl FnOnce(&mut Span)) -> Result<StoredSpan, SpanProblem> {
        let mut span = valid();
        edit(&mut span);
        convert(span, &Arc::from("svc"), "scope").map_err(|r| r.problem)
    }

    #[test]
    fn each_invalid_id_is_named() {
        assert!(check(|_| {}).is_ok());
        type Case = (fn(&mut Span), SpanProblem);
        let cases: [Case; 8] = [
            (|s| s.trace_id = vec![1; 15], SpanProblem::TraceIdLength(15)),
            (|s| s.trace_id = vec![0; 16], SpanProblem::ZeroTraceId),
            (|s| s.span_id = vec![], SpanProblem::SpanIdLength(0)),
            (|s| s.span_id = vec![0; 8], SpanProblem::ZeroSpanId),
            (
                |s| s.parent_span_id = vec![3; 9],
                SpanProblem::ParentIdLength(9),
            ),
            (|s| s.parent_span_id = vec![0; 8], SpanProblem::ZeroParentId),
            (|s| s.name.clear(), SpanProblem::EmptyName),
            (
                |s| s.end_time_unix_nano = 9,
                SpanProblem::EndBeforeStart { start: 10, end: 9 },
            ),
        ];
        for (edit, problem) in cases {
            assert_eq!(check(edit).err(), Some(problem));
        }
    }

    #[test]
    fn flags_say_whether_the_parent_is_remote_when_they_know() {
        let remote = |flags| check(|s| s.flags = flags).unwrap().parent_remote;
        assert_eq!(remote(0x301), Some(true));
        assert_eq!(remote(0x101), Some(false));
        assert_eq!(remote(0x001), None);
        assert_eq!(check(|s| s.flags = 0x301).unwrap().flags.to_byte(), 1);
    }

    #[test]
    fn values_become_fields_and_nested_values_json() {
        let span = check(|s| {
            s.attributes = vec![
                kv("n", any_value::Value::IntValue(3)),
                kv("neg", any_value::Value::IntValue(-3)),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(any_value::Value::StringValue("a\"b".into())),
                            },
                            AnyValue {
                                value: Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![kv("k", any_value::Value::BoolValue(true))],
                                })),
                            },
                        ],
                    }),
                ),
                kv("bytes", any_value::Value::BytesValue(vec![0xab, 0x01])),
                kv(REQUEST_ID, any_value::Value::StringValue("r1".into())),
            ]
        })
        .unwrap();
        let shown: Vec<String> = span
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        assert_eq!(
            shown,
            [
                "n=I64(3)",
                "neg=I64(-3)",
                r#"list=Str("[\"a\\\"b\",{\"k\":true}]")"#,
                r#"bytes=Str("ab01")"#
            ]
        );
        assert_eq!(span.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn an_events_level_and_target_are_read_off_its_attributes() {
        let span = check(|s| {
            s.events = vec![
                Event {
                    name: "Google Calendar API error".into(),
                    time_unix_nano: 15,
                    attributes: vec![
                        kv(LEVEL, any_value::Value::StringValue("ERROR".into())),
                        kv(
                            TARGET,
                            any_value::Value::StringValue("app::calendar".into()),
                        ),
                        kv("attempt", any_value::Value::IntValue(1)),
                    ],
                    ..Default::default()
                },
                Event {
                    name: "plain".into(),
                    attributes: vec![kv(LEVEL, any_value::Value::StringValue("loud".into()))],
                    ..Default::default()
                },
            ]
        })
        .unwrap();
        let [error, plain] = &span.events[..] else {
            panic!("two events")
        };
        assert_eq!(error.level, tracing::Level::ERROR);
        assert_eq!(error.target, "app::calendar");
        assert_eq!(error.fields.len(), 1);
        // No level it understands: INFO, and the attribute stays a field; no target: the scope.
        assert_eq!(plain.level, tracing::Level::INFO);
        assert_eq!(plain.target, "scope");
        assert_eq!(plain.fields[0].0, LEVEL);
    }

    #[test]
    fn too_many_events_reject_the_span() {
        let problem = check(|s| s.events = vec![Event::default(); MAX_EVENTS + 1]).err();
        assert_eq!(
            problem,
            Some(SpanProblem::TooMany {
                what: "events",
                count: MAX_EVENTS + 1,
                max: MAX_EVENTS
            })
        );
    }
}
