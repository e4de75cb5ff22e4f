//! Booking flow: the calendar-failure flow (book, Google fails, webhook runs by cron) one flow
//! at a time, in-process and over loopback HTTP, with tracing on and off. Declared latency is
//! zero, so the traced/untraced ratio is the overhead of tracing on the same flow.

mod common;

use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
use trace_harness::scenario::Scenario;

fn calendar_failure() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/calendar_failure.toml");
    Scenario::load(&path).expect("scenarios/calendar_failure.toml loads")
}

fn booking_flow(c: &mut Criterion) {
    let scenario = calendar_failure();
    let mut group = c.benchmark_group("booking_flow");
    for (transport, transport_name) in [
        (Transport::InProcess, "in_process"),
        (Transport::Http, "http"),
    ] {
        for (tracing, tracing_name) in [(false, "untraced"), (true, "traced")] {
            let options = LoadOptions { tracing, transport };
            let mut rig = FlowRig::start(&scenario, options).expect("the rig starts");
            group.bench_function(format!("{transport_name}/{tracing_name}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let outcome = rig.run(1).expect("the flow runs");
                        assert_eq!(outcome.failed_flows, 0);
                    }
                    let elapsed = start.elapsed();
                    rig.store().clear();
                    elapsed
                })
            });
            rig.stop();
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = booking_flow
}
criterion_main!(benches);
