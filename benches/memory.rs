//! Memory per captured span, counted by a counting global allocator: the bytes a `TraceStore`
//! gives back when it is dropped, divided by the spans it held. Not a criterion bench (it
//! counts bytes, not time); it writes `target/criterion/memory/estimates.json` beside
//! criterion's figures for `benches/report.py`. `--test` runs a small case and writes nothing.

use std::path::Path;

use trace_harness::runner::load::{replay_flows, LoadOptions, Transport};
use trace_harness::scenario::Scenario;
use trace_harness::trace::{CaptureSubscriber, IdGenerator, TraceStore};
use tracing::{info, info_span};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::store_bytes;

struct Row {
    case: String,
    spans: usize,
    log_lines: usize,
    bytes: usize,
}

/// The span lifecycle bench's unit (three fields, one event), `n` times; without the event
/// when `event` is false, so the span's own bytes show.
fn lifecycles(n: usize, event: bool) -> Row {
    let store = TraceStore::new();
    let subscriber = CaptureSubscriber::new(store.clone(), IdGenerator::seeded(1));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n as u64 {
            let span = info_span!(
                "booking_creation",
                event_type_id = i,
                calendar = "google",
                paid = false
            );
            let _entered = span.enter();
            if event {
                info!("Booking creation started for eventTypeId: {}", i);
            }
        }
    });
    let (spans, log_lines) = (store.span_count(), store.log_count());
    Row {
        case: format!(
            "{}/{n}",
            if event {
                "span_with_event"
            } else {
                "span_only"
            }
        ),
        spans,
        log_lines,
        bytes: store_bytes(store),
    }
}

fn flows(scenario: &Scenario, n: usize) -> Row {
    let options = LoadOptions {
        tracing: true,
        transport: Transport::InProcess,
        record_mock_requests: true,
    };
    let (outcome, store) = replay_flows(scenario, n, options).expect("the flows replay");
    assert_eq!(outcome.failed_flows, 0, "{n} flows");
    Row {
        case: format!("booking_flows/{n}"),
        spans: outcome.spans,
        log_lines: outcome.log_lines,
        bytes: store_bytes(store),
    }
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = Scenario::load(&root.join("scenarios/calendar_failure.toml"))
        .expect("scenarios/calendar_failure.toml loads");
    let rows = if test_mode {
        vec![
            lifecycles(100, false),
            lifecycles(100, true),
            flows(&scenario, 10),
        ]
    } else {
        vec![
            lifecycles(10_000, false),
            lifecycles(10_000, true),
            flows(&scenario, 100),
            flows(&scenario, 1_000),
            flows(&scenario, 10_000),
        ]
    };
    println!(
        "memory/sizes: SpanData {} B, LogLine {} B (inline, before heap parts)",
        std::mem::size_of::<trace_harness::trace::SpanData>(),
        std::mem::size_of::<trace_harness::trace::LogLine>()
    );
    let mut json = String::from("[\n");
    for (i, row) in rows.iter().enumerate() {
        let per_span = row.bytes as f64 / row.spans.max(1) as f64;
        let per_item = row.bytes as f64 / (row.spans + row.log_lines).max(1) as f64;
        println!(
            "memory/{:<24} {:>7} spans {:>7} log lines {:>11} bytes  {:>7.1} B/span (log lines included)  {:>7.1} B/item",
            row.case, row.spans, row.log_lines, row.bytes, per_span, per_item
        );
        json.push_str(&format!(
            "  {{\"case\": \"{}\", \"spans\": {}, \"log_lines\": {}, \"bytes\": {}, \"bytes_per_span\": {:.1}, \"bytes_per_item\": {:.1}}}{}\n",
            row.case,
            row.spans,
            row.log_lines,
            row.bytes,
            per_span,
            per_item,
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    json.push_str("]\n");
    if test_mode {
        println!("memory: test mode, nothing written");
        return;
    }
    let dir = root.join("target/criterion/memory");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("estimates.json"), &json))
    {
        eprintln!("memory: cannot write {}: {e}", dir.display());
    }
}
