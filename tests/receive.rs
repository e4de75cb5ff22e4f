//! The OTLP/HTTP receiver through its front doors: every scenario's export received back into
//! the model the in-process capture made (views compared as text), a body shaped as the
//! OpenTelemetry JS SDK sends it, each kind of bad input, and real HTTP against `Receiver`.

mod common;

use std::io::Write as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use trace_harness::outcome::ReplayOutcome;
use trace_harness::receive::{
    DecodeError, Encoding, Inbox, Limits, Receiver, SpanKind, TimeBase, JSON, PROTOBUF,
};
use trace_harness::report::epoch::DEFAULT_EPOCH;
use trace_harness::report::otlp::{export_request, BOOKING_SERVICE};
use trace_harness::report::{seed_lines, seed_log_view, timing_view, tree};
use trace_harness::trace::{Captured, FieldValue, Fields, SpanId, TraceId};

const SCENARIOS: &[&str] = &[
    "calendar_failure",
    "performance",
    "seated_attendees",
    "slow_payment",
    "webhook_retries",
];

/// The replay's outcome with its spans and lines replaced by what the receiver rebuilt, and
/// nothing else: the views read nothing but `captured`.
fn received(original: &ReplayOutcome, captured: Captured) -> ReplayOutcome {
    ReplayOutcome::of_spans(&original.scenario, original.seed, captured)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// One export body through `decode` into a fresh inbox, and the booking service's snapshot.
fn round_trip(body: &[u8], content_type: &str, encoding: Option<&str>) -> Captured {
    let inbox = Inbox::new();
    let (ingested, _) = inbox
        .receive(body, Some(content_type), encoding)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ingested.rejected, 0, "{}", ingested.message);
    assert!(ingested.message.is_empty(), "{}", ingested.message);
    inbox.snapshot(Some(BOOKING_SERVICE), TimeBase::Virtual)
}

/// The original's seed log view without the lines written outside every span: those are OTLP
/// log records, which a trace export does not carry.
fn in_span_log_view(outcome: &ReplayOutcome) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut dropped = Vec::new();
    // The view leaves `debug` lines out; pair each shown line with its capture.
    let shown = outcome
        .captured
        .logs
        .iter()
        .filter(|l| l.level <= tracing::Level::INFO);
    for (line, seed) in shown.zip(seed_lines(outcome)) {
        if line.span.is_some() {
            kept.push_str(&seed.traced());
            kept.push('\n');
        } else {
            dropped.push(seed.traced());
        }
    }
    (kept, dropped)
}

/// Spans and in-span lines in creation order, as `(kind, id or message)`.
fn creation_order(captured: &Captured) -> Vec<(u32, String)> {
    let mut items: Vec<(u32, String)> = captured
        .spans
        .iter()
        .map(|s| (s.seq, format!("span {}", s.span_id)))
        .chain(
            captured
                .logs
                .iter()
                .filter(|l| l.span.is_some())
                .map(|l| (l.seq, format!("line {}", l.message))),
        )
        .collect();
    items.sort();
    items
        .into_iter()
        .enumerate()
        .map(|(i, (_, what))| (i as u32, what))
        .collect()
}

/// `fields` as OTLP carries them: its one integer type is signed, so a `u64` returns as `I64`
/// (one above `i64::MAX` travels as text).
fn signed(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FieldValue::U64(n) => match i64::try_from(*n) {
                    Ok(n) => FieldValue::I64(n),
                    Err(_) => FieldValue::Str(n.to_string().into()),
                },
                v => v.clone(),
            };
            (*k, v)
        })
        .collect()
}

fn assert_same_model(original: &Captured, back: &Captured, name: &str) {
    assert_eq!(back.spans.len(), original.spans.len(), "{name}: spans");
    for (a, b) in original.spans.iter().zip(&back.spans) {
        let what = format!("{name}: span {} {}", a.span_id, a.op);
        assert_eq!(b.span_id, a.span_id, "{what}: order");
        assert_eq!(b.trace_id, a.trace_id, "{what}");
        assert_eq!(b.parent, a.parent, "{what}: parent");
        assert_eq!(b.links, a.links, "{what}: links");
        assert_eq!(b.op, a.op, "{what}: op");
        assert_eq!(b.fields, signed(&a.fields), "{what}: fields");
        assert_eq!(b.status, a.status, "{what}: status");
        assert_eq!((b.start, b.end), (a.start, a.end), "{what}: times");
        assert_eq!(b.flags, a.flags, "{what}: flags");
        assert_eq!(b.tracestate, a.tracestate, "{what}: tracestate");
        assert_eq!(b.request_id, a.request_id, "{what}: request id");
    }
    let in_span: Vec<_> = original.logs.iter().filter(|l| l.span.is_some()).collect();
    assert_eq!(back.logs.len(), in_span.len(), "{name}: lines");
    for (a, b) in in_span.iter().zip(&back.logs) {
        let what = format!("{name}: line {:?}", a.message);
        assert_eq!(b.message, a.message, "{what}: order");
        assert_eq!(b.at, a.at, "{what}");
        assert_eq!(b.level, a.level, "{what}");
        assert_eq!(b.fields, signed(&a.fields), "{what}");
        assert_eq!(b.target, a.target, "{what}");
        assert_eq!(b.span, a.span, "{what}");
        assert_eq!(b.request_id, a.request_id, "{what}");
    }
    assert_eq!(
        creation_order(back),
        creation_order(original),
        "{name}: seq"
    );
    assert!(back.open.is_empty());
}

#[test]
fn every_scenarios_export_comes_back_as_the_same_views() {
    for name in SCENARIOS {
        let outcome = common::run_green(&common::load(name));
        let request = export_request(&outcome, DEFAULT_EPOCH);
        let protobuf = request.encode_to_vec();
        let json = serde_json::to_vec(&request).unwrap();
        let (logs, dropped) = in_span_log_view(&outcome);
        // As an SDK's batch processor sends them: each span once it ended, children first.
        let mut by_end = request.clone();
        for resource in &mut by_end.resource_spans {
            for scope in &mut resource.scope_spans {
                scope.spans.sort_by_key(|s| s.end_time_unix_nano);
            }
        }
        let by_end = by_end.encode_to_vec();
        for (encoding, captured) in [
            (
                "protobuf, in the order spans ended",
                round_trip(&by_end, PROTOBUF, None),
            ),
            ("protobuf", round_trip(&protobuf, PROTOBUF, None)),
            ("json", round_trip(&json, JSON, None)),
            (
                "gzipped protobuf",
                round_trip(&gzip(&protobuf), PROTOBUF, Some("gzip")),
            ),
        ] {
            let what = format!("{name} as {encoding}");
            assert_same_model(&outcome.captured, &captured, &what);
            let back = received(&outcome, captured);
            assert_eq!(tree(&back, &[]), tree(&outcome, &[]), "{what}: tree");
            assert_eq!(seed_log_view(&back), logs, "{what}: seed log view");
            assert_eq!(timing_view(&back), timing_view(&outcome), "{what}: timings");
        }
        // What a trace export cannot carry, exactly: the lines outside every span (of those the
        // view shows; a cron run's `debug` line is not).
        let outside: Vec<String> = outcome
            .captured
            .logs
            .iter()
            .filter(|l| l.span.is_none() && l.level <= tracing::Level::INFO)
            .map(|l| {
                format!(
                    "[Request ID: {}] {}",
                    l.request_id.as_deref().unwrap_or("-"),
                    l.message
                )
            })
            .collect();
        assert_eq!(dropped, outside, "{name}");
        if *name == "slow_payment" {
            assert_eq!(
                dropped,
                ["[Request ID: gvhk2hzwb6] Stripe webhook rejected: no v1 signature matches the payload"],
                "the forged Stripe delivery is refused before any span opens"
            );
        } else {
            assert!(dropped.is_empty(), "{name}: {dropped:?}");
        }
    }
}

/// A body shaped as `@opentelemetry/otlp-transformer`'s `JsonTraceSerializer` writes it (hex
/// ids, times as decimal strings, enums and `intValue` as numbers, `dropped…Count` zeros,
/// unset fields left out, `flags` with the remote bits): an HTTP server span from
/// instrumentation-http and a client span that recorded an exception, in the order the batch
/// processor sends them, the child first because it ended first.
const JS_SDK_BODY: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
{"key":"service.name","value":{"stringValue":"booking-node"}},
{"key":"telemetry.sdk.language","value":{"stringValue":"nodejs"}},
{"key":"telemetry.sdk.name","value":{"stringValue":"opentelemetry"}},
{"key":"telemetry.sdk.version","value":{"stringValue":"2.0.1"}}],"droppedAttributesCount":0},
"scopeSpans":[{"scope":{"name":"booking","version":"1.0.0"},"spans":[
{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"53995c3f42cd8ad8","parentSpanId":"00f067aa0ba902b7",
"name":"calendar_event_creation","kind":3,
"startTimeUnixNano":"1772442000010000000","endTimeUnixNano":"1772442000110000000",
"attributes":[{"key":"calendar","value":{"stringValue":"google"}},{"key":"retry","value":{"boolValue":false}},
{"key":"latency.ratio","value":{"doubleValue":0.5}}],"droppedAttributesCount":0,
"events":[{"attributes":[{"key":"exception.type","value":{"stringValue":"GaxiosError"}},
{"key":"exception.message","value":{"stringValue":"Rate Limit Exceeded"}}],
"name":"exception","timeUnixNano":"1772442000109000000","droppedAttributesCount":0}],"droppedEventsCount":0,
"status":{"code":2,"message":"Rate Limit Exceeded"},
"links":[{"attributes":[],"spanId":"b7ad6b7169203331","traceId":"4bf92f3577b34da6a3ce929d0e0e4736",
"droppedAttributesCount":0,"flags":257}],"droppedLinksCount":0,"flags":257}]},
{"scope":{"name":"@opentelemetry/instrumentation-http","version":"0.202.0"},"spans":[
{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331",
"traceState":"congo=t61rcWkgMzE","name":"POST /api/bookings","kind":2,
"startTimeUnixNano":"1772442000000000000","endTimeUnixNano":"1772442000120000000",
"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},
{"key":"http.response.status_code","value":{"intValue":201}}],"droppedAttributesCount":0,
"events":[],"droppedEventsCount":0,"status":{"code":0},"links":[],"droppedLinksCount":0,"flags":769}]}]}]}"#;

fn trace_id(hex: &str) -> TraceId {
    TraceId::from_bytes(hex::decode(hex).unwrap().try_into().unwrap()).unwrap()
}

fn span_id(hex: &str) -> SpanId {
    SpanId::from_bytes(hex::decode(hex).unwrap().try_into().unwrap()).unwrap()
}

#[test]
fn what_the_opentelemetry_js_sdk_sends_reads_as_the_model() {
    let inbox = Inbox::new();
    let (ingested, encoding) = inbox
        .receive(JS_SDK_BODY.as_bytes(), Some("application/json"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (ingested.accepted, ingested.rejected),
        (2, 0),
        "{}",
        ingested.message
    );
    assert_eq!(encoding, Encoding::Json);

    let trace = trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        inbox.services().iter().map(|s| &**s).collect::<Vec<_>>(),
        ["booking-node"]
    );
    let servers = inbox.server_spans(trace);
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0].op, servers[0].kind),
        ("POST /api/bookings", SpanKind::Server)
    );
    assert!(inbox.has_span(span_id("53995c3f42cd8ad8")));
    assert!(
        !inbox.has_span(span_id("b7ad6b7169203331")),
        "the caller's span was not sent"
    );

    let captured = inbox.snapshot(None, TimeBase::EarliestSpan);
    let outcome = received(
        &common::run(&common::load("calendar_failure"), true),
        captured,
    );
    // The server span first although it arrived last: it is the parent, and it started first.
    assert_eq!(
        tree(&outcome, &[]),
        "trace_1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n\
         └─ span_001 POST /api/bookings +0s 120ms ok http.request.method=POST http.response.status_code=201 ⇠ continues b7ad6b7169203331 (remote parent)\n   \
            └─ span_002 calendar_event_creation +10ms 100ms error: Rate Limit Exceeded calendar=google retry=false latency.ratio=0.5 ⇠ follows b7ad6b7169203331\n"
    );
    assert_eq!(
        seed_log_view(&outcome),
        "[trace:trace_1 span:span_002 op:calendar_event_creation] exception\n"
    );
    let [server, client] = &outcome.captured.spans[..] else {
        panic!("two spans")
    };
    use trace_harness::trace::ParentKind::{Local, Remote};
    assert_eq!(server.parent, Some((span_id("b7ad6b7169203331"), Remote)));
    assert_eq!(client.parent, Some((server.span_id, Local)));
    assert_eq!(server.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    assert!(server.flags.is_sampled());
    let line = &outcome.captured.logs[0];
    assert_eq!(
        line.level,
        tracing::Level::INFO,
        "an event without a level is INFO"
    );
    assert_eq!(
        line.target, "booking",
        "an event without a target has its scope's name"
    );
    assert_eq!(
        line.fields[1],
        (
            "exception.message",
            FieldValue::Str("Rate Limit Exceeded".into())
        )
    );
    // Virtual time: the SDK stamped virtual zero as `EPOCH_UNIX_NANOS`, so both bases agree.
    let virtual_time = inbox.snapshot(None, TimeBase::Virtual);
    assert_eq!(virtual_time.spans[1].start, client.start);
}

#[test]
fn the_specs_own_example_is_accepted() {
    // `examples/trace.json` of opentelemetry-proto: upper-case hex, times as JSON numbers.
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":1544712661000000000,"kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;
    let inbox = Inbox::new();
    let (ingested, _) = inbox.receive(body.as_bytes(), Some(JSON), None).unwrap();
    assert_eq!(ingested.accepted, 1);
    let captured = inbox.snapshot(Some("my.service"), TimeBase::EarliestSpan);
    assert_eq!(captured.spans[0].op, "I'm a server span");
    assert_eq!(
        captured.spans[0].duration(),
        std::time::Duration::from_secs(1)
    );
    assert_eq!(
        captured.spans[0].parent.map(|p| p.1),
        Some(trace_harness::trace::ParentKind::Remote),
        "no remote bits and a parent no one sent: remote"
    );
}

// ----- bad input, one kind each -----

/// A small valid export: one booking span of `calendar_failure`'s shape, id bytes given.
fn request_of(spans: Vec<Span>) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("svc".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(trace: Vec<u8>, id: Vec<u8>, parent: Vec<u8>) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        name: "booking_creation".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    }
}

fn good(n: u8) -> Span {
    span(vec![1; 16], vec![n; 8], vec![])
}

fn expect_error(
    body: &[u8],
    content_type: Option<&str>,
    encoding: Option<&str>,
    limits: Limits,
) -> DecodeError {
    let inbox = Inbox::with_limits(limits);
    let error = inbox
        .receive(body, content_type, encoding)
        .expect_err("refused");
    assert!(inbox.is_empty(), "nothing stored of a refused request");
    assert_eq!(inbox.problems().malformed_requests, 1);
    assert_eq!(
        inbox.problems().messages,
        [format!("malformed request: {error}")]
    );
    error
}

#[test]
fn malformed_protobuf_is_400() {
    let error = expect_error(
        b"\x0a\xff\xff\xff\xff\x0f",
        Some(PROTOBUF),
        None,
        Limits::DEFAULT,
    );
    assert!(matches!(error, DecodeError::Protobuf(_)), "{error}");
    assert_eq!(error.http_status(), 400);
    assert!(
        error
            .to_string()
            .starts_with("not a protobuf ExportTraceServiceRequest: "),
        "{error}"
    );
}

#[test]
fn malformed_json_is_400_and_nothing_of_it_is_stored() {
    // Valid up to where it is cut off: the span before the cut is not stored either.
    let whole = serde_json::to_string(&request_of(vec![good(1), good(2)])).unwrap();
    let cut = &whole[..whole.len() - 20];
    let error = expect_error(cut.as_bytes(), Some(JSON), None, Limits::DEFAULT);
    assert!(matches!(error, DecodeError::Json(_)), "{error}");
    assert_eq!(error.http_status(), 400);
    // OTLP/JSON enums are integers; the proto3 JSON names are not OTLP/JSON.
    let named = whole.replacen("\"kind\":0", "\"kind\":\"SPAN_KIND_SERVER\"", 1);
    assert_ne!(named, whole);
    assert!(matches!(
        expect_error(named.as_bytes(), Some(JSON), None, Limits::DEFAULT),
        DecodeError::Json(_)
    ));
}

#[test]
fn wrong_id_lengths_reject_those_spans_and_keep_the_rest() {
    let inbox = Inbox::new();
    let ingested = inbox.ingest(request_of(vec![
        span(vec![1; 15], vec![2; 8], vec![]),
        good(3),
        span(vec![1; 16], vec![4; 9], vec![]),
        span(vec![1; 16], vec![5; 8], vec![6; 4]),
    ]));
    assert_eq!((ingested.accepted, ingested.rejected), (1, 3));
    assert_eq!(
        ingested.message,
        "span 0202020202020202 \"booking_creation\" of \"svc\" rejected: trace id of 15 bytes, not 16; \
         span 040404040404040404 \"booking_creation\" of \"svc\" rejected: span id of 9 bytes, not 8; \
         span 0505050505050505 \"booking_creation\" of \"svc\" rejected: parent span id of 4 bytes, not 8 (or none)"
    );
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox.problems().rejected_spans, 3);
}

#[test]
fn all_zero_ids_reject_those_spans() {
    let inbox = Inbox::new();
    let ingested = inbox.ingest(request_of(vec![
        span(vec![0; 16], vec![2; 8], vec![]),
        span(vec![1; 16], vec![0; 8], vec![]),
        span(vec![1; 16], vec![4; 8], vec![0; 8]),
        good(5),
    ]));
    assert_eq!((ingested.accepted, ingested.rejected), (1, 3));
    for reason in [
        "all-zero trace id",
        "all-zero span id",
        "all-zero parent span id",
    ] {
        assert!(
            ingested.message.contains(reason),
            "{reason}: {}",
            ingested.message
        );
    }
}

#[test]
fn an_oversized_body_is_413() {
    let limits = Limits {
        max_body_bytes: 100,
        ..Limits::DEFAULT
    };
    let error = expect_error(&[0; 101], Some(PROTOBUF), None, limits);
    assert_eq!(error, DecodeError::BodyTooLarge { limit: 100 });
    assert_eq!(error.http_status(), 413);
    assert_eq!(
        error.to_string(),
        "the body is larger than the 100 bytes accepted"
    );
    // At the bound exactly it is read (and here is no valid request).
    assert!(matches!(
        expect_error(&[0xff; 100], Some(PROTOBUF), None, limits),
        DecodeError::Protobuf(_)
    ));
}

#[test]
fn a_gzip_bomb_is_413_without_inflating_it() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0; 64 << 20]).unwrap();
    let bomb = e.finish().unwrap();
    assert!(
        bomb.len() < 100 << 10,
        "64 MiB of zeros gzip to {} bytes",
        bomb.len()
    );
    let error = expect_error(&bomb, Some(PROTOBUF), Some("gzip"), Limits::DEFAULT);
    assert_eq!(
        error,
        DecodeError::InflatesTooLarge {
            limit: Limits::DEFAULT.max_decompressed_bytes
        }
    );
    assert_eq!(error.http_status(), 413);
    let error = expect_error(
        b"not gzip at all",
        Some(PROTOBUF),
        Some("gzip"),
        Limits::DEFAULT,
    );
    assert!(matches!(error, DecodeError::Gzip(_)), "{error}");
}

#[test]
fn an_unknown_content_type_or_encoding_is_415() {
    let body = request_of(vec![good(1)]).encode_to_vec();
    let error = expect_error(&body, Some("text/plain"), None, Limits::DEFAULT);
    assert_eq!(error, DecodeError::UnknownContentType("text/plain".into()));
    assert_eq!(error.http_status(), 415);
    assert_eq!(
        expect_error(&body, None, None, Limits::DEFAULT),
        DecodeError::NoContentType
    );
    let error = expect_error(&body, Some(PROTOBUF), Some("br"), Limits::DEFAULT);
    assert_eq!(error, DecodeError::UnknownContentEncoding("br".into()));
    assert_eq!(error.http_status(), 415);
    // Its answer is plain text: there is no encoding to answer in.
    let (content_type, answer) = error.body(None);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(String::from_utf8(answer).unwrap(), format!("{error}\n"));
}

#[test]
fn partial_success_counts_rejected_spans_and_warns_of_duplicates() {
    let inbox = Inbox::with_limits(Limits {
        max_spans: 3,
        ..Limits::DEFAULT
    });
    let first = inbox.ingest(request_of(vec![good(1), good(2)]));
    assert_eq!(
        first.response(),
        ExportTraceServiceResponse {
            partial_success: None
        }
    );
    // One invalid, one already received (a retried export), one past the inbox's capacity.
    let second = inbox.ingest(request_of(vec![
        good(2),
        span(vec![1; 16], vec![9; 8], vec![]).tap(|s| s.end_time_unix_nano = 0),
        good(3),
        good(4),
    ]));
    assert_eq!(
        (second.accepted, second.rejected, second.duplicates),
        (1, 2, 1)
    );
    let partial = second.response().partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("ends at 0 ns, before it starts at 1 ns"),
        "{}",
        partial.error_message
    );
    assert!(
        partial
            .error_message
            .contains("1 span(s): the inbox is full (3 spans kept)"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("1 span(s) already received"),
        "{}",
        partial.error_message
    );
    // In JSON, rejectedSpans is an int64, hence a string.
    let json: serde_json::Value = serde_json::from_slice(&trace_harness::receive::encode_response(
        &second.response(),
        Encoding::Json,
    ))
    .unwrap();
    assert_eq!(json["partialSuccess"]["rejectedSpans"], "2");
    let problems = inbox.problems();
    assert_eq!(
        (
            problems.rejected_spans,
            problems.duplicate_spans,
            problems.malformed_requests
        ),
        (2, 1, 0)
    );
    // Duplicates alone are a warning: nothing rejected, a message all the same.
    let again = inbox
        .ingest(request_of(vec![good(1)]))
        .response()
        .partial_success
        .unwrap();
    assert_eq!(again.rejected_spans, 0);
    assert!(!again.error_message.is_empty());
    inbox.clear();
    assert!(inbox.is_empty() && inbox.problems().is_empty());
}

#[test]
fn spans_of_other_traces_are_kept_apart() {
    let inbox = Inbox::new();
    let ours = trace_id("0101010101010101010101010101010a");
    let theirs = trace_id("0202020202020202020202020202020b");
    inbox.ingest(request_of(vec![
        span(ours.to_bytes().to_vec(), vec![1; 8], vec![]),
        span(theirs.to_bytes().to_vec(), vec![2; 8], vec![]),
        span(ours.to_bytes().to_vec(), vec![3; 8], vec![1; 8]),
    ]));
    assert_eq!(inbox.trace_ids(), [ours, theirs]);
    assert_eq!(inbox.foreign_traces(&[ours]), [theirs]);
    let mine = inbox.snapshot_traces(None, &[ours], TimeBase::Virtual);
    assert_eq!(mine.spans.len(), 2);
    let other = inbox.snapshot_traces(None, &inbox.foreign_traces(&[ours]), TimeBase::Virtual);
    assert_eq!(
        other.spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        [span_id("0202020202020202")]
    );
    assert_eq!(inbox.trace_spans(ours).len(), 2);
    assert!(
        inbox.server_spans(ours).is_empty(),
        "kind unspecified is no server span"
    );
}

/// `tap` for building test values in place.
trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl Tap for Span {}

// ----- over HTTP -----

mod http {
    use super::*;
    use std::io::Read as _;
    use trace_harness::report::otlp_http::{ExportError, OtlpExporter, OtlpProtocol};

    async fn started(limits: Limits) -> Receiver {
        let addr = "127.0.0.1:0".parse().unwrap();
        Receiver::start(addr, Arc::new(Inbox::with_limits(limits)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn post(url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        reqwest::Client::new()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn protobuf_is_stored_and_answered_in_protobuf() {
        let receiver = started(Limits::DEFAULT).await;
        assert!(receiver.traces_url().ends_with("/v1/traces"));
        assert_eq!(receiver.addr().ip().to_string(), "127.0.0.1");
        let body = request_of(vec![good(1), good(2)]).encode_to_vec();
        let response = post(&receiver.traces_url(), PROTOBUF, body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], PROTOBUF);
        let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(answer.partial_success, None);
        assert_eq!(receiver.inbox().len(), 2);
        receiver.stop().await;
    }

    #[tokio::test]
    async fn a_rejected_span_is_a_json_partial_success() {
        let receiver = started(Limits::DEFAULT).await;
        let body = serde_json::to_vec(&request_of(vec![
            good(1),
            span(vec![0; 16], vec![2; 8], vec![]),
        ]))
        .unwrap();
        let response = post(
            &receiver.traces_url(),
            "application/json; charset=utf-8",
            body,
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], JSON);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
        assert!(answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("all-zero trace id"));
        receiver.stop().await;
    }

    #[tokio::test]
    async fn errors_carry_a_status_in_the_requests_encoding() {
        let receiver = started(Limits::DEFAULT).await;
        let url = receiver.traces_url();
        let response = post(&url, PROTOBUF, b"\x0a\xff\xff\xff\xff\x0f".to_vec()).await;
        assert_eq!(response.status(), 400);
        let body = response.bytes().await.unwrap();
        // google.rpc.Status: code 3 (INVALID_ARGUMENT), then the message.
        assert_eq!(&body[..3], &[0x08, 0x03, 0x12]);
        assert!(String::from_utf8_lossy(&body).contains("not a protobuf ExportTraceServiceRequest"));
        let response = post(&url, JSON, b"{\"resourceSpans\": [".to_vec()).await;
        assert_eq!(response.status(), 400);
        let status: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status["code"], 3);
        let response = post(&url, "text/plain", b"hello".to_vec()).await;
        assert_eq!(response.status(), 415);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("is neither application/x-protobuf nor application/json"));
        assert_eq!(receiver.inbox().problems().malformed_requests, 3);
        assert!(receiver.inbox().is_empty());
        receiver.stop().await;
    }

    #[tokio::test]
    async fn only_post_v1_traces_is_served() {
        let receiver = started(Limits::DEFAULT).await;
        let client = reqwest::Client::new();
        let get = client.get(receiver.traces_url()).send().await.unwrap();
        assert_eq!(get.status(), 405);
        let logs = client
            .post(format!("{}/v1/logs", receiver.url()))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(logs.status(), 404);
        receiver.stop().await;
    }

    /// Raw HTTP on a thread: the test's runtime keeps serving meanwhile.
    async fn raw(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
        let (sent, answered) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            // The server may answer and close before the whole body is written.
            let _ = stream.write_all(&request);
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            let _ = sent.send(reply);
        });
        answered.await.unwrap()
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_413_by_length_or_by_what_was_read() {
        let receiver = started(Limits {
            max_body_bytes: 1000,
            ..Limits::DEFAULT
        })
        .await;
        let head = "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\nconnection: close\r\n";
        let declared = format!("{head}content-length: 1001\r\n\r\n{}", "a".repeat(1001));
        let reply = raw(receiver.addr(), declared.into_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        // Chunked, no length declared: refused once the bytes read pass the bound.
        let chunk = "a".repeat(600);
        let chunked = format!(
            "{head}transfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        );
        let reply = raw(receiver.addr(), chunked.into_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(
            reply.contains("the body is larger than the 1000 bytes accepted"),
            "{reply}"
        );
        assert_eq!(receiver.inbox().problems().malformed_requests, 2);
        receiver.stop().await;
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_spans_arrive() {
        let receiver = started(Limits::DEFAULT).await;
        let inbox = Arc::clone(receiver.inbox());
        let seen = inbox.version();
        let waiter = tokio::spawn(async move {
            inbox.changed_since(seen).await;
            inbox.len()
        });
        let body = request_of(vec![good(1)]).encode_to_vec();
        assert_eq!(
            post(&receiver.traces_url(), PROTOBUF, body).await.status(),
            200
        );
        assert_eq!(waiter.await.unwrap(), 1);
        // A change already made is not waited for again.
        receiver.inbox().changed_since(seen).await;
        // `changed` waits for the next one, whatever came before.
        let inbox = Arc::clone(receiver.inbox());
        let next = tokio::spawn(async move {
            inbox.changed().await;
            inbox.span_ids()
        });
        tokio::task::yield_now().await;
        let body = request_of(vec![good(2)]).encode_to_vec();
        assert_eq!(
            post(&receiver.traces_url(), PROTOBUF, body).await.status(),
            200
        );
        let ids = next.await.unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&SpanId::from_bytes([2; 8]).unwrap()));
        receiver.stop().await;
    }

    #[tokio::test]
    async fn a_stopped_receiver_accepts_nothing() {
        let receiver = started(Limits::DEFAULT).await;
        let url = receiver.traces_url();
        receiver.stop().await;
        let sent = reqwest::Client::new().post(&url).body("x").send().await;
        assert!(sent.is_err(), "{sent:?}");
    }

    /// The harness's own exporter, blocking on its own runtime, sends from a thread.
    async fn export(
        url: String,
        protocol: OtlpProtocol,
        gzip: bool,
        request: ExportTraceServiceRequest,
    ) -> Result<trace_harness::report::otlp_http::Delivered, ExportError> {
        let (sent, delivered) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let exporter = OtlpExporter::new(&url, protocol, gzip)
                .unwrap()
                .with_wait(|_| {});
            let _ = sent.send(exporter.send(&request));
        });
        delivered.await.unwrap()
    }

    #[test]
    fn the_harness_exporter_delivers_to_it_in_both_encodings_and_hears_rejections() {
        // Replayed before the runtime: a replay runs its own.
        let outcome = common::run_green(&common::load("calendar_failure"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(exported_and_rejected(outcome));
    }

    async fn exported_and_rejected(outcome: ReplayOutcome) {
        let request = export_request(&outcome, DEFAULT_EPOCH);
        for (protocol, gzip) in [(OtlpProtocol::Protobuf, false), (OtlpProtocol::Json, true)] {
            let receiver = started(Limits::DEFAULT).await;
            let delivered = export(receiver.url(), protocol, gzip, request.clone())
                .await
                .unwrap();
            assert_eq!(delivered.warning, None);
            let captured = receiver
                .inbox()
                .snapshot(Some(BOOKING_SERVICE), TimeBase::Virtual);
            assert_eq!(
                tree(&received(&outcome, captured), &[]),
                tree(&outcome, &[])
            );
            // The mocks' SERVER spans came too, each under its own service.
            assert!(receiver.inbox().services().len() > 1);
            receiver.stop().await;
        }
        let receiver = started(Limits::DEFAULT).await;
        let bad = request_of(vec![good(1), span(vec![1; 16], vec![0; 8], vec![])]);
        match export(receiver.url(), OtlpProtocol::Json, false, bad).await {
            Err(ExportError::PartlyRejected {
                rejected: 1,
                sent: 2,
                message,
                ..
            }) => {
                assert!(message.contains("all-zero span id"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        receiver.stop().await;
    }
}

// ----- `trace-harness receive` -----

mod command {
    use super::*;
    use std::io::{BufRead, BufReader, Read as _};
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// A real-time guard on the child; a correct `receive` starts and stops in well under a second.
    const GUARD: Duration = Duration::from_secs(30);

    /// `receive` on an ephemeral port: the child, its address, and the rest of its stderr.
    fn start(args: &[&str]) -> (Child, String, BufReader<std::process::ChildStderr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trace-harness"))
            .args(["receive", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start receive: {e}"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://")?.strip_suffix("/v1/traces"))
            .unwrap_or_else(|| panic!("no traces URL in {line:?}"))
            .to_owned();
        (child, url, stderr)
    }

    /// `POST /v1/traces` over raw HTTP: the status.
    fn post(addr: &str, content_type: &str, body: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply)
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Ctrl-C's signal, then the exit status, standard output and the rest of standard error.
    fn interrupt(
        mut child: Child,
        mut stderr: BufReader<std::process::ChildStderr>,
    ) -> (bool, String, String) {
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut stdout = child.stdout.take().unwrap();
        let (sent, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let mut err = String::new();
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            let _ = sent.send((child.wait(), out, err));
        });
        let (status, out, err) = ended
            .recv_timeout(GUARD)
            .expect("receive stopped on SIGINT");
        (status.unwrap().success(), out, err)
    }

    /// The booking service's resource of a scenario's export, as protobuf.
    fn booking_export(outcome: &ReplayOutcome) -> Vec<u8> {
        let mut request = export_request(outcome, DEFAULT_EPOCH);
        request.resource_spans.truncate(1);
        request.encode_to_vec()
    }

    #[test]
    fn it_prints_the_tree_of_what_arrived_on_ctrl_c() {
        let outcome = common::run_green(&common::load("calendar_failure"));
        let (child, addr, stderr) = start(&[]);
        assert_eq!(post(&addr, PROTOBUF, &booking_export(&outcome)), 200);
        let (ok, out, err) = interrupt(child, stderr);
        assert!(ok, "{err}");
        assert_eq!(out, tree(&outcome, &[]));
        assert!(
            err.contains("received 4 span(s) in 1 trace(s) from cal.com; nothing malformed"),
            "{err}"
        );
    }

    #[test]
    fn it_writes_the_log_view_to_a_file_and_warns_of_malformed_telemetry() {
        let outcome = common::run_green(&common::load("webhook_retries"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("received.log");
        let (child, addr, stderr) = start(&[
            "--format",
            "logs",
            "--time-base",
            "virtual",
            "--out",
            file.to_str().unwrap(),
        ]);
        assert_eq!(post(&addr, PROTOBUF, b"\x0a\xff\xff"), 400);
        assert_eq!(post(&addr, PROTOBUF, &booking_export(&outcome)), 200);
        let (ok, out, err) = interrupt(child, stderr);
        assert!(ok, "{err}");
        assert_eq!(out, "", "the collection went to the file");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            seed_log_view(&outcome)
        );
        assert!(
            err.contains("warning: the sender sent malformed telemetry: malformed request: not a protobuf ExportTraceServiceRequest"),
            "{err}"
        );
        assert!(
            err.contains("1 malformed request(s), 0 span(s) rejected"),
            "{err}"
        );
    }
}

/// A span's `trace_state` is a `tracestate` header's value (OTLP's `Span.trace_state`), read
/// as one: "failure to parse `tracestate` MUST NOT affect the parsing of `traceparent`", so a
/// span whose `trace_state` does not parse is kept, without it, and a valid one is kept whole.
#[test]
fn an_invalid_trace_state_is_dropped_and_its_span_kept() {
    let inbox = Inbox::new();
    let mut invalid = good(1);
    invalid.trace_state = "congo=t61rcWkgMzE,Rojo=00f067aa0ba902b7".into();
    let mut valid = good(2);
    valid.trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into();
    let ingested = inbox.ingest(request_of(vec![invalid, valid]));
    assert_eq!((ingested.accepted, ingested.rejected), (2, 0));
    let captured = inbox.snapshot(None, TimeBase::EarliestSpan);
    let states: Vec<Option<&str>> = captured
        .spans
        .iter()
        .map(|s| s.tracestate.as_deref())
        .collect();
    assert_eq!(
        states,
        [None, Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")]
    );
}
