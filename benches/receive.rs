//! Receive: OTLP/HTTP ingest throughput, `decode` and `Inbox::ingest` together (no HTTP), for
//! batches of 512 spans, a batch processor's default size, as protobuf, JSON and gzipped
//! protobuf; and `decode` alone, to see which half costs what. Elements are spans, so
//! criterion reports spans/s.
//!
//! The spans are the `performance` scenario's booking service spans as the harness exports
//! them (fields, events with level and target, a follows-from link, a request id), copied
//! with fresh ids until the batch holds 512.

use std::hint::black_box;
use std::io::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use trace_harness::receive::{decode, Inbox, Limits, JSON, PROTOBUF};
use trace_harness::report::epoch::DEFAULT_EPOCH;
use trace_harness::report::otlp::export_request;
use trace_harness::runner::{self, ReplayOptions};
use trace_harness::scenario::Scenario;

mod common;

/// Spans per request.
const BATCH: usize = 512;

/// `id` with its last bytes mixed with `copy`, so each copy has ids of its own.
fn renumbered(id: &[u8], copy: usize) -> Vec<u8> {
    if id.is_empty() {
        return Vec::new();
    }
    let mut id = id.to_vec();
    let at = id.len() - 4;
    let mixed = u32::from_be_bytes(id[at..].try_into().expect("4 bytes")) ^ (copy as u32 + 1);
    id[at..].copy_from_slice(&mixed.to_be_bytes());
    assert!(id.iter().any(|b| *b != 0), "a renumbered id is not zero");
    id
}

/// The booking service's spans of one `performance` replay, copied to [`BATCH`] spans.
fn batch() -> ExportTraceServiceRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/performance.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let outcome = runner::replay(&scenario, ReplayOptions::default()).expect("replays");
    let mut request = export_request(&outcome, DEFAULT_EPOCH);
    request.resource_spans.truncate(1);
    let scope = &mut request.resource_spans[0].scope_spans[0];
    let one_flow = std::mem::take(&mut scope.spans);
    for copy in 0.. {
        for span in &one_flow {
            if scope.spans.len() == BATCH {
                return request;
            }
            let mut span = span.clone();
            span.trace_id = renumbered(&span.trace_id, copy);
            span.span_id = renumbered(&span.span_id, copy);
            span.parent_span_id = renumbered(&span.parent_span_id, copy);
            for link in &mut span.links {
                link.trace_id = renumbered(&link.trace_id, copy);
                link.span_id = renumbered(&link.span_id, copy);
            }
            scope.spans.push(span);
        }
    }
    unreachable!("the loop returns once the batch is full")
}

fn ingest(c: &mut Criterion) {
    let request = batch();
    let protobuf = request.encode_to_vec();
    let json = serde_json::to_vec(&request).expect("serialises");
    let gzipped = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&protobuf).expect("gzips");
        e.finish().expect("gzips")
    };
    let cases: [(&str, &[u8], &str, Option<&str>); 3] = [
        ("protobuf", &protobuf, PROTOBUF, None),
        ("json", &json, JSON, None),
        ("protobuf_gzip", &gzipped, PROTOBUF, Some("gzip")),
    ];
    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, body, content_type, encoding) in cases {
        // A fresh inbox per batch, made and dropped outside the measurement: the same spans
        // again would be duplicates, which cost less than spans.
        group.bench_function(format!("decode_ingest/{name}"), |b| {
            b.iter_batched(
                Inbox::new,
                |inbox| {
                    let (ingested, _) = inbox
                        .receive(black_box(body), Some(content_type), encoding)
                        .expect("decodes");
                    assert_eq!(ingested.accepted, BATCH);
                    inbox
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                decode(
                    black_box(body),
                    Some(content_type),
                    encoding,
                    Limits::DEFAULT,
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = ingest
}
criterion_main!(benches);
