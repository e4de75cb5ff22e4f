//! Isolation at load: N concurrent booking flows against one service, and every span, log line
//! and mock request is attributed to exactly its own flow, every webhook is delivered once, and
//! the captured telemetry stays within a fixed number of bytes per item.
//!
//! CI runs 200 flows. The full 10 000 is ignored by default:
//! `cargo test --release --test load_isolation -- --ignored load` (README, "Load").

use std::path::Path;

use trace_harness::expect::{check_isolation, webhook_deliveries};
use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
use trace_harness::scenario::Scenario;

/// Heap bytes per captured item (span or log line) the store may hold. `benches/memory.rs`
/// measures about 240 at 10 000 flows; four times that still catches a per-flow leak or an
/// unbounded buffer, while leaving room for allocator and layout changes.
const MAX_BYTES_PER_ITEM: usize = 1_024;

#[path = "../benches/common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::store_bytes;

fn calendar_failure() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/calendar_failure.toml");
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `flows` flows of the calendar-failure incident at once and checks isolation, delivery
/// and memory.
fn isolated_flows(flows: usize, transport: Transport) {
    let options = LoadOptions {
        tracing: true,
        transport,
        record_mock_requests: true,
    };
    let mut rig = FlowRig::start(&calendar_failure(), options).unwrap_or_else(|e| panic!("{e}"));
    let batch = rig.run(flows).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.failed_flows, 0, "every booking is created");

    let captured = rig.store().snapshot();
    let requests = rig.mock_requests();
    let findings = check_isolation(rig.responses(), &captured, &requests);
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    assert!(captured.open.is_empty(), "open spans: {:?}", captured.open);
    assert_eq!(captured.trace_ids().len(), flows, "one trace per flow");

    // No job lost, none delivered twice.
    let jobs = rig.webhook_job_counts().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs, [("delivered".to_owned(), flows as i64)]);
    let deliveries = webhook_deliveries(&requests);
    assert_eq!(deliveries.len(), flows, "a delivery for every booking");
    assert!(deliveries.values().all(|&n| n == 1), "each delivered once");

    let items = batch.spans + batch.log_lines;
    let store = rig.store().clone();
    rig.stop();
    drop(captured);
    let bytes = store_bytes(store);
    assert!(
        bytes <= items * MAX_BYTES_PER_ITEM,
        "{bytes} bytes for {items} spans and log lines: more than {MAX_BYTES_PER_ITEM} B each"
    );
}

#[test]
fn load_200_flows_each_keep_to_their_own_trace() {
    isolated_flows(200, Transport::Http);
}

#[test]
#[ignore = "10 000 flows: about 5 s in release, 15 s in debug; run with -- --ignored load"]
fn load_10000_flows_each_keep_to_their_own_trace() {
    isolated_flows(10_000, Transport::Http);
}

#[test]
fn the_check_sees_jobs_that_leave_their_flow() {
    // With the planted `orphan_jobs` bug, webhooks start traces of their own: spans and mock
    // requests in traces no flow was given.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/calendar_failure.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{text}\n[service]\nbugs = [\"orphan_jobs\"]\n");
    let scenario = Scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let options = LoadOptions {
        tracing: true,
        transport: Transport::InProcess,
        record_mock_requests: true,
    };
    let mut rig = FlowRig::start(&scenario, options).unwrap_or_else(|e| panic!("{e}"));
    rig.run(5).unwrap_or_else(|e| panic!("{e}"));
    let findings = check_isolation(
        rig.responses(),
        &rig.store().snapshot(),
        &rig.mock_requests(),
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("webhook_execution") && f.contains("which no flow was given")),
        "{findings:#?}"
    );
    assert!(
        findings.iter().any(|f| f.contains("to mock `subscriber`")),
        "{findings:#?}"
    );
}

/// A load run zeroes every declared latency, a mock's other routes' too: the performance
/// scenario's e-mail batch call (`[mocks.email.routes] mail_batch`, 50ms) costs its flows
/// nothing, so the reminder scheduling takes only the store's declared 50ms transaction.
#[test]
fn a_load_run_zeroes_the_latency_of_every_route() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/performance.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let options = LoadOptions {
        tracing: true,
        transport: Transport::InProcess,
        record_mock_requests: false,
    };
    let mut rig = FlowRig::start(&scenario, options).unwrap_or_else(|e| panic!("{e}"));
    let batch = rig.run(1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.failed_flows, 0, "the booking is created");
    let captured = rig.store().snapshot();
    let durations: Vec<_> = captured
        .spans
        .iter()
        .filter(|s| s.op == "schedule_mandatory_reminder")
        .map(|s| s.duration())
        .collect();
    assert_eq!(durations, [std::time::Duration::from_millis(50)]);
}
