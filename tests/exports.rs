//! The export formats and what reads them back: NDJSON and the seed's three queries over it.
//! Expected values come from the replays themselves, never typed in.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use trace_harness::query::{self, QueryError};
use trace_harness::report::epoch::{parse_unix_us, Epoch};
use trace_harness::report::ndjson::{ndjson, ndjson_lines, NdjsonLine};
use trace_harness::runner::ReplayOutcome;
use trace_harness::vary;

const REPEAT: usize = 4;

/// `REPEAT` jittered replays of the calendar-failure scenario, anchored ten minutes apart, and
/// their NDJSON export in one file.
fn replays() -> (Vec<(ReplayOutcome, Epoch)>, tempfile::TempDir, PathBuf) {
    let scenario = common::load("calendar_failure");
    let epoch = Epoch::default();
    let outcomes: Vec<(ReplayOutcome, Epoch)> = (0..REPEAT)
        .map(|i| {
            let copy = vary::repetition(&scenario, i, REPEAT, true);
            let anchor = epoch.later_by(Duration::from_secs(600 * i as u64));
            (common::run_green(&copy), anchor)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.ndjson");
    let mut file = std::fs::File::create(&path).unwrap();
    for (outcome, anchor) in &outcomes {
        file.write_all(ndjson(outcome, *anchor).as_bytes()).unwrap();
    }
    (outcomes, dir, path)
}

#[test]
fn ndjson_lines_carry_the_seed_prefix_and_the_replay_timing() {
    let outcome = common::run_green(&common::load("calendar_failure"));
    let epoch = Epoch::default();
    let text = ndjson(&outcome, epoch);
    let lines: Vec<NdjsonLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, ndjson_lines(&outcome, epoch));
    assert_eq!(lines.len(), outcome.captured.logs.len());
    for (line, log) in lines.iter().zip(&outcome.captured.logs) {
        let Some(span) = log.span else {
            // A cron request's own line, before any job's span opens.
            assert!(line.prefix.starts_with("[Request ID: "), "{line:?}");
            assert!(
                line.message.starts_with("Cron webhookTriggers: "),
                "{line:?}"
            );
            assert_eq!(line.level, "debug");
            continue;
        };
        assert_eq!(
            line.prefix,
            format!(
                "[trace:{} span:{} op:{}]",
                span.trace_id, span.span_id, span.op
            )
        );
        assert_eq!(line.operation.as_deref(), Some(span.op));
        assert_eq!(line.message, log.message);
        assert_eq!(line.level, log.level.as_str().to_lowercase());
        assert_eq!(
            parse_unix_us(&line.timestamp),
            Some(epoch.unix_us() + log.at.as_micros() as i64)
        );
    }
    assert!(lines.iter().any(|l| l.level == "error"));
}

#[test]
fn the_seeds_three_queries_answer_from_the_export() {
    let (outcomes, _dir, path) = replays();
    let files = [path];

    // Query 1: one trace's operations in time order.
    let (first, anchor) = &outcomes[1];
    let trace = first.captured.spans[0].trace_id.to_string();
    let result = query::trace_operations(&files, &trace).unwrap();
    // The trace's lines: a cron request's own line belongs to no trace.
    let mut expected: Vec<_> = first
        .captured
        .logs
        .iter()
        .filter(|l| l.span.is_some())
        .collect();
    expected.sort_by_key(|l| l.at);
    let got: Vec<(String, String, String)> = result
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
                r[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|l| {
            (
                anchor.rfc3339_at(l.at),
                l.span.unwrap().op.to_owned(),
                l.message.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(result.stats.bad, 0);

    // Query 2: every replay's calendar error, joined to its booking's creation line.
    let result = query::failed_calendar_integrations(&files).unwrap();
    assert_eq!(result.rows.len(), REPEAT);
    for ((outcome, _), row) in outcomes.iter().zip(&result.rows) {
        let line_of = |op: &str, error: bool| {
            outcome
                .captured
                .logs
                .iter()
                .find(|l| {
                    l.span.is_some_and(|s| s.op == op)
                        && (l.level == tracing::Level::ERROR) == error
                })
                .unwrap()
        };
        assert_eq!(row[1], outcome.captured.spans[0].trace_id.to_string());
        assert_eq!(row[2], line_of("calendar_event_creation", true).message);
        assert_eq!(row[3], line_of("booking_creation", false).message);
    }

    // Query 3: booking start to last webhook execution, per 1-hour bin.
    let result = query::booking_duration(&files, Duration::from_secs(3600)).unwrap();
    let durations_ms: Vec<f64> = outcomes
        .iter()
        .map(|(o, _)| {
            let at = |op: &str| {
                o.captured
                    .logs
                    .iter()
                    .filter(|l| l.span.is_some_and(|s| s.op == op))
                    .map(|l| l.at)
                    .max()
                    .unwrap()
            };
            at("webhook_execution")
                .since(at("booking_creation"))
                .as_micros() as f64
                / 1e3
        })
        .collect();
    // Four replays ten minutes apart from 09:00 share the 09:00 bin.
    assert_eq!(result.rows.len(), 1, "{:?}", result.rows);
    let row = &result.rows[0];
    assert_eq!(row[0], "2026-03-02T09:00:00.000000Z");
    assert_eq!(row[1], REPEAT);
    let avg = durations_ms.iter().sum::<f64>() / REPEAT as f64;
    let max = durations_ms.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        (row[2].as_f64().unwrap() - avg).abs() < 0.001,
        "{row:?} vs {avg}"
    );
    assert_eq!(row[3].as_f64().unwrap(), (max * 1000.0).round() / 1000.0);
    // Jitter made the durations differ, so the summary summarises something.
    assert!(
        durations_ms.windows(2).any(|w| w[0] != w[1]),
        "{durations_ms:?}"
    );

    let csv = query::render(&result, query::Output::Csv);
    assert!(
        csv.starts_with("bin,bookings,avg_duration_ms,p95_duration_ms\r\n"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&query::render(&result, query::Output::Json)).unwrap();
    assert_eq!(json[0]["bookings"], REPEAT);
}

#[test]
fn bad_lines_are_reported_with_their_line_numbers_and_skipped() {
    let (outcomes, dir, path) = replays();
    let good = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(1, "not json at all");
    lines.insert(
        3,
        r#"{"timestamp":"yesterday","level":"info","prefix":"","message":"m"}"#,
    );
    let mixed = dir.path().join("mixed.ndjson");
    std::fs::write(&mixed, lines.join("\n")).unwrap();

    let result = query::failed_calendar_integrations(std::slice::from_ref(&mixed)).unwrap();
    assert_eq!(result.rows.len(), outcomes.len());
    let reported: Vec<u64> = result.stats.reported.iter().map(|b| b.line).collect();
    assert_eq!(reported, [2, 4]);
    assert!(result.stats.reported[1].reason.contains("yesterday"));
    assert!(result.stats.reported[0]
        .to_string()
        .starts_with(&format!("{}:2: ", mixed.display())));

    let garbage = dir.path().join("garbage.log");
    std::fs::write(&garbage, "foreign\nlines\n").unwrap();
    let error = query::booking_duration(&[garbage], Duration::from_secs(3600)).unwrap_err();
    assert!(
        matches!(error, QueryError::NothingUsable { lines: 2, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("garbage.log:1: not an NDJSON log record"),
        "{error}"
    );
}

mod otlp {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};
    use trace_harness::report::otlp::{export_request, otlp_json, BOOKING_SERVICE};
    use trace_harness::report::otlp_http::{ExportError, OtlpExporter, OtlpProtocol, MAX_ATTEMPTS};
    use trace_harness::trace::SpanStatus;

    /// The OTLP repository's own JSON example (`examples/trace.json` of opentelemetry-proto):
    /// upper-case hex ids and timestamps as JSON numbers, both of which OTLP/JSON receivers
    /// must accept.
    const SPEC_EXAMPLE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":1544712661000000000,"kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;

    /// Field names of the messages we emit, from the official `.proto` files (trace.proto,
    /// common.proto, resource.proto, trace_service.proto), in their JSON (lowerCamelCase) form.
    const PROTO_FIELDS: &[&str] = &[
        "resourceSpans",
        "resource",
        "scopeSpans",
        "schemaUrl",
        "scope",
        "spans",
        "name",
        "version",
        "attributes",
        "droppedAttributesCount",
        "traceId",
        "spanId",
        "traceState",
        "parentSpanId",
        "flags",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "events",
        "droppedEventsCount",
        "links",
        "droppedLinksCount",
        "status",
        "timeUnixNano",
        "message",
        "code",
        "key",
        "value",
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "bytesValue",
        "values",
        "entityRefs",
    ];

    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    fn is_lower_hex(text: &str, len: usize) -> bool {
        text.len() == len
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    }

    #[test]
    fn the_specs_example_decodes_with_the_types_we_encode_with() {
        let request: ExportTraceServiceRequest = serde_json::from_str(SPEC_EXAMPLE).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.kind, 2);
        // Re-encoded, it follows the rules we rely on: lower-case hex, 64-bit ints as strings.
        let again: Value = serde_json::to_value(&request).unwrap();
        let span = &again["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
        let mut names = Vec::new();
        keys(&again, &mut names);
        for name in names {
            assert!(
                PROTO_FIELDS.contains(&name.as_str()),
                "`{name}` is no proto field"
            );
        }
    }

    #[test]
    fn otlp_json_carries_ids_times_links_status_and_events_as_the_protocol_says() {
        let outcome = common::run_green(&common::load("calendar_failure"));
        let epoch = Epoch::default();
        let text = otlp_json(&outcome, epoch);
        let json: Value = serde_json::from_str(&text).unwrap();
        let mut names = Vec::new();
        keys(&json, &mut names);
        for name in &names {
            assert!(
                PROTO_FIELDS.contains(&name.as_str()),
                "`{name}` is no proto field"
            );
        }
        let resource = &json["resourceSpans"][0]["resource"]["attributes"];
        assert!(resource
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == BOOKING_SERVICE));
        let spans = json["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap();
        assert_eq!(spans.len(), outcome.captured.spans.len());
        for (ours, theirs) in outcome.captured.spans.iter().zip(spans) {
            assert_eq!(theirs["name"], ours.op);
            assert!(is_lower_hex(theirs["traceId"].as_str().unwrap(), 32));
            assert_eq!(theirs["traceId"], ours.trace_id.to_string());
            assert_eq!(theirs["spanId"], ours.span_id.to_string());
            match ours.parent_id() {
                Some(p) => assert_eq!(theirs["parentSpanId"], p.to_string()),
                None => assert!(theirs["parentSpanId"].as_str().unwrap_or("").is_empty()),
            }
            assert!(
                theirs["kind"].is_u64(),
                "enums are integers: {}",
                theirs["kind"]
            );
            let nanos = |t: trace_harness::clock::VirtualTime| {
                ((epoch.unix_us() as u64 + t.as_micros()) * 1000).to_string()
            };
            assert_eq!(theirs["startTimeUnixNano"], nanos(ours.start));
            assert_eq!(theirs["endTimeUnixNano"], nanos(ours.end));
            let code = theirs["status"]["code"].as_u64().unwrap_or(0);
            match &ours.status {
                SpanStatus::Ok => assert_eq!(code, 0),
                SpanStatus::Error(m) => {
                    assert_eq!(code, 2);
                    assert_eq!(theirs["status"]["message"], &**m);
                }
            }
            let links = theirs["links"].as_array().map_or(0, Vec::len);
            assert_eq!(links, ours.links.len());
            for (link, cause) in theirs["links"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(&ours.links)
            {
                assert_eq!(link["spanId"], cause.to_string());
                assert_eq!(link["traceId"], ours.trace_id.to_string());
            }
            let events = outcome
                .captured
                .logs
                .iter()
                .filter(|l| l.span.is_some_and(|s| s.span_id == ours.span_id))
                .count();
            assert_eq!(theirs["events"].as_array().map_or(0, Vec::len), events);
            for (key, value) in &ours.fields {
                let attr = theirs["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == *key)
                    .unwrap_or_else(|| panic!("no attribute {key}"));
                if let Some(int) = attr["value"].get("intValue") {
                    assert_eq!(
                        int,
                        &Value::from(value.to_string()),
                        "64-bit ints are strings"
                    );
                }
            }
        }
        // Every mock request that carried a context is a SERVER span of the mock's own service,
        // child of the span that sent it.
        let mocks: Vec<&Value> = json["resourceSpans"].as_array().unwrap()[1..]
            .iter()
            .collect();
        let mut server_spans = Vec::new();
        for resource in &mocks {
            let service = resource["resource"]["attributes"][0]["value"]["stringValue"]
                .as_str()
                .unwrap();
            for span in resource["scopeSpans"][0]["spans"].as_array().unwrap() {
                server_spans.push((service.to_owned(), span.clone()));
            }
        }
        let sent: Vec<_> = outcome
            .requests
            .iter()
            .filter(|r| r.traceparent.is_some())
            .collect();
        assert_eq!(server_spans.len(), sent.len());
        assert!(sent.len() >= 2, "Google and the subscriber were called");
        for (request, (service, span)) in sent.iter().zip(&server_spans) {
            assert_eq!(service, &request.kind.name().replace('_', "-"));
            let tp = request.traceparent.as_deref().unwrap();
            assert_eq!(span["traceId"], tp[3..35]);
            assert_eq!(span["parentSpanId"], tp[36..52]);
            assert_eq!(span["kind"], 2);
        }
        // The links and the error are really there.
        assert!(spans
            .iter()
            .any(|s| s["links"].as_array().is_some_and(|l| !l.is_empty())));
        assert!(spans.iter().any(|s| s["status"]["code"] == 2));
        // JSON and protobuf carry the same message.
        let request = export_request(&outcome, epoch);
        let decoded: ExportTraceServiceRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded, request);
        let bytes = request.encode_to_vec();
        assert_eq!(
            ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap(),
            request
        );
    }

    /// The exporter blocks on its own runtime, so it runs off the test's; wiremock serves from
    /// its own thread meanwhile.
    #[test]
    fn a_service_exporting_itself_maps_its_spans_as_the_replay_export_does() {
        use trace_harness::report::otlp::{service_request, service_spans};
        let outcome = common::run_green(&common::load("webhook_retries"));
        let epoch = Epoch::default();
        let whole = export_request(&outcome, epoch);
        let booking = whole
            .resource_spans
            .iter()
            .find(|r| {
                r.resource.as_ref().unwrap().attributes[0].value == string_value(BOOKING_SERVICE)
            })
            .unwrap();
        let own = service_request(
            "booking-under-test",
            service_spans(&outcome.captured, epoch),
        );
        assert_eq!(own.resource_spans.len(), 1);
        let resource = own.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 1, "service.name alone");
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(
            resource.attributes[0].value,
            string_value("booking-under-test")
        );
        assert_eq!(own.resource_spans[0].scope_spans, booking.scope_spans);
        let spans = &own.resource_spans[0].scope_spans[0].spans;
        assert!(spans
            .iter()
            .any(|s| !s.events.is_empty() && !s.links.is_empty()));
    }

    fn string_value(text: &str) -> Option<opentelemetry_proto::tonic::common::v1::AnyValue> {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(text.to_owned())),
        })
    }

    fn send_on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    fn recording(
        protocol: OtlpProtocol,
        gzip: bool,
        url: &str,
    ) -> (OtlpExporter, Arc<Mutex<Vec<Duration>>>) {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&waits);
        let exporter = OtlpExporter::new(url, protocol, gzip)
            .unwrap()
            .with_wait(move |d| record.lock().unwrap().push(d));
        (exporter, waits)
    }

    fn decode_body(body: &[u8], protocol: OtlpProtocol, gzip: bool) -> ExportTraceServiceRequest {
        let body = if gzip {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out).unwrap();
            out
        } else {
            body.to_vec()
        };
        match protocol {
            OtlpProtocol::Protobuf => ExportTraceServiceRequest::decode(body.as_slice()).unwrap(),
            OtlpProtocol::Json => serde_json::from_slice(&body).unwrap(),
        }
    }

    #[test]
    fn a_collector_receives_every_span_after_a_retry_it_asked_for() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let outcome = common::run_green(&common::load("calendar_failure"));
        let request = export_request(&outcome, Epoch::default());
        for (protocol, gzip, content_type) in [
            (OtlpProtocol::Protobuf, false, "application/x-protobuf"),
            (OtlpProtocol::Json, true, "application/json"),
        ] {
            let collector = rt.block_on(async {
                let collector = MockServer::start().await;
                Mock::given(method("POST"))
                    .and(path("/v1/traces"))
                    .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3"))
                    .up_to_n_times(1)
                    .mount(&collector)
                    .await;
                Mock::given(method("POST"))
                    .and(path("/v1/traces"))
                    .respond_with(ResponseTemplate::new(200))
                    .mount(&collector)
                    .await;
                collector
            });
            let (exporter, waits) = recording(protocol, gzip, &collector.uri());
            let sent = request.clone();
            let delivered = send_on_a_thread(move || exporter.send(&sent)).unwrap();
            assert_eq!(delivered.attempts, 2);
            let mock_spans = outcome
                .requests
                .iter()
                .filter(|r| r.traceparent.is_some())
                .count();
            assert_eq!(delivered.spans, outcome.captured.spans.len() + mock_spans);
            assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(3)]);
            let received = rt.block_on(collector.received_requests()).unwrap();
            assert_eq!(received.len(), 2);
            for r in &received {
                assert_eq!(r.headers["content-type"], content_type);
                assert_eq!(r.headers.get("content-encoding").is_some(), gzip);
                assert_eq!(decode_body(&r.body, protocol, gzip), request);
            }
        }
    }

    #[test]
    fn rejected_spans_and_a_missing_collector_are_errors_not_silence() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let outcome = common::run_green(&common::load("calendar_failure"));
        let request = export_request(&outcome, Epoch::default());

        let collector = rt.block_on(async {
            let collector = MockServer::start().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "partialSuccess": { "rejectedSpans": "1", "errorMessage": "span too old" }
                })))
                .mount(&collector)
                .await;
            collector
        });
        let (exporter, _) = recording(OtlpProtocol::Json, false, &collector.uri());
        let sent = request.clone();
        let error = send_on_a_thread(move || exporter.send(&sent)).unwrap_err();
        assert!(
            matches!(error, ExportError::PartlyRejected { rejected: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("span too old"), "{error}");

        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (exporter, waits) = recording(
            OtlpProtocol::Protobuf,
            false,
            &format!("http://127.0.0.1:{port}"),
        );
        let error = send_on_a_thread(move || exporter.send(&request)).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(
                error,
                ExportError::Unreachable {
                    attempts: MAX_ATTEMPTS,
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!("127.0.0.1:{port}/v1/traces")),
            "{text}"
        );
        assert!(text.contains("is a collector"), "{text}");
        let waits = waits.lock().unwrap();
        assert_eq!(waits.len() as u32, MAX_ATTEMPTS - 1);
        assert!(
            waits.windows(2).all(|w| w[1] > w[0]),
            "backoff grows: {waits:?}"
        );
    }
}

mod html {
    use super::*;
    use std::collections::HashSet;
    use trace_harness::report::html::waterfall;
    use trace_harness::trace::{Aliases, Captured, SpanData, SpanStatus};

    /// Span aliases in tree order: roots, each followed by its subtree.
    fn tree_order(captured: &Captured) -> Vec<String> {
        fn walk(c: &Captured, s: &SpanData, a: &Aliases, out: &mut Vec<String>) {
            out.push(a.span(s.span_id).to_string());
            for child in c.children(s.span_id) {
                walk(c, child, a, out);
            }
        }
        let aliases = Aliases::of(captured);
        let mut out = Vec::new();
        for root in captured
            .spans
            .iter()
            .filter(|s| s.parent_id().and_then(|p| captured.span(p)).is_none())
        {
            walk(captured, root, &aliases, &mut out);
        }
        out
    }

    fn attribute_values<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
        let needle = format!("{name}=\"");
        page.match_indices(&needle)
            .map(|(i, _)| {
                let rest = &page[i + needle.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn the_page_is_self_contained_and_marks_errors_links_and_the_critical_path() {
        let outcome = common::run_green(&common::load("calendar_failure"));
        let captured = &outcome.captured;
        let aliases = Aliases::of(captured);
        let page = waterfall(&outcome, Epoch::default());
        for external in ["http://", "https://", "src=", "href=", "@import", "url("] {
            assert!(
                !page.contains(external),
                "the page refers outside itself: {external}"
            );
        }
        assert_eq!(attribute_values(&page, "data-span"), tree_order(captured));
        let bars: Vec<&str> = attribute_values(&page, "class")
            .into_iter()
            .filter(|c| c.split(' ').next() == Some("bar"))
            .collect();
        assert_eq!(bars.len(), captured.spans.len());
        let errors = captured
            .spans
            .iter()
            .filter(|s| matches!(s.status, SpanStatus::Error(_)))
            .count();
        assert_eq!(bars.iter().filter(|c| c.contains("error")).count(), errors);
        assert!(errors > 0);
        // The critical path: the last span to finish and its ancestors.
        let mut critical = HashSet::new();
        let mut at = captured.spans.iter().max_by_key(|s| s.end);
        while let Some(s) = at {
            critical.insert(s.span_id);
            at = s.parent_id().and_then(|p| captured.span(p));
        }
        assert_eq!(
            bars.iter().filter(|c| c.contains("critical")).count(),
            critical.len()
        );
        assert!(critical.len() >= 2);
        let links: Vec<(String, String)> = captured
            .spans
            .iter()
            .flat_map(|s| s.links.iter().map(move |l| (*l, s.span_id)))
            .map(|(from, to)| (aliases.span(from).to_string(), aliases.span(to).to_string()))
            .collect();
        let drawn: Vec<(String, String)> = attribute_values(&page, "data-from")
            .into_iter()
            .zip(attribute_values(&page, "data-to"))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(drawn, links);
        assert!(!links.is_empty());
        // The seed-style log lines are beside the waterfall.
        for line in trace_harness::report::seed_lines(&outcome) {
            let text = line.traced().replace('"', "&quot;").replace('\'', "&#39;");
            assert!(page.contains(&text), "missing log line {text}");
        }
    }
}

mod import {
    use super::*;
    use trace_harness::import::import;
    use trace_harness::scenario::Scenario;
    use trace_harness::trace::{Captured, SpanStatus};

    /// The tree as the round trip must keep it: per span, its operation, its parent's operation,
    /// whether it failed, and (when `timed`) its duration.
    fn shape(
        captured: &Captured,
        timed: bool,
    ) -> Vec<(String, Option<String>, bool, Option<Duration>)> {
        captured
            .spans
            .iter()
            .map(|s| {
                (
                    s.op.to_owned(),
                    s.parent_id()
                        .and_then(|p| captured.span(p))
                        .map(|p| p.op.to_owned()),
                    matches!(s.status, SpanStatus::Error(_)),
                    timed.then(|| s.duration()),
                )
            })
            .collect()
    }

    /// The seed log view with request ids hidden: they are drawn from the replay's seed, which
    /// no log records, and stand for nothing of the incident.
    fn log_view(outcome: &ReplayOutcome) -> String {
        trace_harness::report::seed_log_view(outcome)
            .lines()
            .map(|line| match line.strip_prefix("[Request ID: ") {
                Some(rest) => format!(
                    "[Request ID: …]{}",
                    rest.split_once(']').map_or("", |(_, m)| m)
                ),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every seed scenario and every incident of tests/incidents/, loaded.
    fn originals() -> Vec<Scenario> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in ["scenarios", "tests/incidents"] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(Scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        assert!(out.len() >= 12, "five seed scenarios and seven incidents");
        out
    }

    fn reimport(text: &str, name: &str) -> (Scenario, trace_harness::import::Imported) {
        let imported = import(
            std::path::Path::new("incident.log"),
            text,
            None,
            "round trip",
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = PathBuf::from(format!("{name}_imported.toml"));
        let scenario = Scenario::parse(&path, &imported.scenario)
            .unwrap_or_else(|e| panic!("{e}\n{}", imported.scenario));
        (scenario, imported)
    }

    #[test]
    fn every_scenario_and_incident_round_trips_through_ndjson_otlp_json_and_seed_style_logs() {
        for original in originals() {
            let name = original.name.clone();
            let before = common::run_green(&original);
            // A log shows a job re-run after its lease expired, not when or where in the job
            // its process died (a crash leaves no line, and its open span is never exported):
            // the import of a crash says it did not reproduce the log, rather than pass.
            let crashes = original.timeline.iter().any(|s| s.crash.is_some());
            for (form, text) in [
                ("ndjson", ndjson(&before, Epoch::default())),
                (
                    "otlp-json",
                    trace_harness::report::otlp::otlp_json(&before, Epoch::default()),
                ),
            ] {
                let (scenario, imported) = reimport(&text, &name);
                if crashes {
                    assert!(
                        imported
                            .unmapped
                            .iter()
                            .any(|u| u.contains("a process died holding the job")),
                        "{name} ({form}): a crash imported as if it were reproduced\n{}",
                        imported.scenario
                    );
                    continue;
                }
                assert!(
                    imported.unmapped.is_empty(),
                    "{name} ({form}): the import is partial: {:?}\n{}",
                    imported.unmapped,
                    imported.scenario
                );
                let after = common::run_green(&scenario);
                assert_eq!(
                    shape(&after.captured, true),
                    shape(&before.captured, true),
                    "{name} ({form}): the imported scenario replays a different tree\n{}",
                    imported.scenario
                );
                if form == "ndjson" {
                    assert_eq!(
                        log_view(&after),
                        log_view(&before),
                        "{name}: a different log\n{}",
                        imported.scenario
                    );
                }
            }

            // The seed's text format has no timestamps: operations, nesting and statuses only.
            let seed_text = trace_harness::report::seed_log_view(&before);
            let (scenario, imported) = reimport(&seed_text, &name);
            assert!(imported.scenario.contains("carry no timestamps"));
            assert_eq!(
                imported
                    .unmapped
                    .iter()
                    .any(|u| u.contains("a process died holding the job")),
                crashes,
                "{name} (seed text): {:?}\n{}",
                imported.unmapped,
                imported.scenario
            );
            if crashes {
                // Named as not reproduced above; the lines it does reproduce still follow.
                assert_eq!(imported.unmapped.len(), 1, "{:?}", imported.unmapped);
            } else {
                assert!(
                    imported.unmapped.is_empty(),
                    "{name} (seed text): {:?}\n{}",
                    imported.unmapped,
                    imported.scenario
                );
            }
            let after = common::run_green(&scenario);
            assert_eq!(
                shape(&after.captured, false),
                shape(&before.captured, false),
                "{name} (seed text)\n{}",
                imported.scenario
            );
        }
    }

    #[test]
    fn a_log_of_two_bookings_imports_both_unless_one_is_picked() {
        let original = Scenario::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/incidents/concurrent_bookings.toml"),
        )
        .unwrap();
        let before = common::run_green(&original);
        let text = ndjson(&before, Epoch::default());
        let (_, both) = reimport(&text, "both");
        assert_eq!(both.traces.len(), 2, "{}", both.scenario);
        assert_eq!(both.scenario.matches("book = {").count(), 2);
        for asked in ["trace_2", &both.traces[1][..8]] {
            let one = import(std::path::Path::new("i.log"), &text, Some(asked), "one").unwrap();
            assert_eq!(one.traces, [both.traces[1].clone()], "{asked}");
            assert_eq!(one.other_traces, [both.traces[0].clone()]);
            assert_eq!(one.scenario.matches("book = {").count(), 1);
        }
    }

    #[test]
    fn the_seeds_own_listing_imports_with_todos_and_foreign_lines_are_skipped() {
        // Seed scenario 1's listing, as the seed prints it, with a foreign line mixed in.
        let listing = "[trace:trace_xyz123 span:span_001 op:booking_creation] Booking creation started\n\
            [trace:trace_xyz123 span:span_002 op:calendar_event_creation] EventManager.create started\n\
            2026-03-02 GET /health 200\n\
            [trace:trace_xyz123 span:span_002 op:calendar_event_creation] Google Calendar API error: Rate limit exceeded\n\
            [trace:trace_xyz123 span:span_003 op:webhook_scheduling] Scheduling BOOKING_CREATED webhook\n\
            [trace:trace_xyz123 span:span_004 op:webhook_execution] Webhook executed 5 minutes later\n";
        let imported = import(std::path::Path::new("incident.log"), listing, None, "seed").unwrap();
        assert_eq!(imported.trace, "trace_xyz123");
        assert_eq!(imported.bad.len(), 1);
        assert_eq!(imported.bad[0].line, 3);
        let text = &imported.scenario;
        assert!(text.contains("error = \"rateLimitExceeded\""), "{text}");
        assert!(text.contains("at = \"5m\"\ncron = \"webhooks\""), "{text}");
        assert!(
            text.contains("TODO: trace trace_xyz123: no `eventTypeId:`"),
            "{text}"
        );
        assert!(imported.unmapped.is_empty(), "{:?}", imported.unmapped);
        let scenario = Scenario::parse(std::path::Path::new("seed.toml"), text).unwrap();
        let outcome = common::run_green(&scenario);
        let ops: Vec<&str> = outcome.captured.spans.iter().map(|s| s.op).collect();
        assert_eq!(
            ops,
            [
                "booking_creation",
                "calendar_event_creation",
                "webhook_scheduling",
                "webhook_execution"
            ]
        );

        // Seed scenario 3: a timeout, a failed retry, a delivered one, each its own answer.
        let retries = "[trace:trace_def456 span:span_001 op:booking_creation] Booking created for eventTypeId: 123\n\
            [trace:trace_def456 span:span_002 op:webhook_scheduling] Scheduling webhook for BOOKING_CREATED\n\
            [trace:trace_def456 span:span_003 op:webhook_execution] Webhook execution failed: Connection timeout\n\
            [trace:trace_def456 span:span_003 op:webhook_execution] Retry attempt 1 failed: HTTP 503\n\
            [trace:trace_def456 span:span_003 op:webhook_execution] Retry attempt 2 succeeded\n";
        let imported = import(std::path::Path::new("r.log"), retries, None, "seed 3").unwrap();
        assert!(imported.unmapped.is_empty(), "{:?}", imported.unmapped);
        let text = &imported.scenario;
        assert!(text.contains("book = { event_type_id = 123 }"), "{text}");
        assert!(text.contains("{ fault = \"timeout\" }"), "{text}");
        assert!(
            text.contains("{ status = 503, latency = \"0s\" }"),
            "{text}"
        );
        let scenario = Scenario::parse(std::path::Path::new("r.toml"), text).unwrap();
        let outcome = common::run_green(&scenario);
        let execution = outcome
            .captured
            .spans
            .iter()
            .find(|s| s.op == "webhook_execution")
            .unwrap();
        assert_eq!(execution.status, SpanStatus::Ok, "delivered on attempt 3");
        assert_eq!(
            outcome.requests.len(),
            3,
            "three attempts reached the subscriber"
        );

        let error = import(std::path::Path::new("x.log"), "just\nnoise\n", None, "").unwrap_err();
        assert!(error.to_string().contains("x.log:1:"), "{error}");
        let error = import(
            std::path::Path::new("x.log"),
            listing,
            Some("trace_nope"),
            "",
        )
        .unwrap_err();
        assert!(error.to_string().contains("trace_xyz123"), "{error}");
    }
}

mod cli {
    use super::*;
    use std::process::{Command, Output};

    fn trace_harness(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trace-harness"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CI", "true")
            .output()
            .expect("the binary runs")
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn repeated_ndjson_runs_feed_the_query_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = trace_harness(&[
            "run",
            "scenarios/calendar_failure.toml",
            "--format",
            "ndjson",
            "--repeat",
            "3",
            "--vary-latency",
            "--epoch",
            "2026-05-01T12:00:00Z",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<NdjsonLine> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let traces: std::collections::HashSet<_> =
            lines.iter().filter_map(|l| l.trace_id.clone()).collect();
        assert_eq!(traces.len(), 3, "each repetition has its own trace");
        assert!(lines[0].timestamp.starts_with("2026-05-01T12:00:00"));
        let file = dir.path().join("logs.ndjson");
        std::fs::write(&file, &stdout).unwrap();
        let file = file.to_str().unwrap();

        let out = trace_harness(&["query", "booking-duration", file, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows[0]["bin"], "2026-05-01T12:00:00.000000Z");
        assert_eq!(rows[0]["bookings"], 3);

        let out = trace_harness(&["query", "failed-calendar", "missing.ndjson"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("missing.ndjson: cannot read"),
            "{}",
            text(&out.stderr)
        );

        let scenario = dir.path().join("imported.toml");
        let scenario = scenario.to_str().unwrap();
        let out = trace_harness(&["import", file, "-o", scenario]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(": 3 traces,"),
            "every repetition is imported: {}",
            text(&out.stdout)
        );
        let out = trace_harness(&["run", scenario]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let out = trace_harness(&["import", file, "-o", scenario]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "an existing scenario is not overwritten"
        );
        let out = trace_harness(&[
            "import", file, "--trace", "trace_2", "--force", "-o", scenario,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("left out 2 other trace(s)"),
            "{}",
            text(&out.stderr)
        );
        let out = trace_harness(&["run", scenario]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    }

    #[test]
    fn otlp_json_is_one_request_per_line_and_bad_anchors_are_refused() {
        let out = trace_harness(&[
            "run",
            "scenarios/calendar_failure.toml",
            "--format",
            "otlp-json",
            "--repeat",
            "2",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 2);
        for line in stdout.lines() {
            let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
                serde_json::from_str(line).unwrap();
            assert_eq!(
                request.resource_spans.len(),
                3,
                "cal.com, google-calendar, webhook-subscriber"
            );
        }
        let out = trace_harness(&["run", "--epoch", "yesterday"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("RFC 3339"),
            "{}",
            text(&out.stderr)
        );
    }
}
