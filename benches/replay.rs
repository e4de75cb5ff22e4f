//! Replay: every `scenarios/*.toml` end to end (each, and all of them as `run` does), and N
//! concurrent booking flows in one replay for N = 1, 100, 1 000, 10 000 — the throughput curve.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
use trace_harness::runner::{self, ReplayOptions};
use trace_harness::scenario::Scenario;

/// Every scenario file, whatever the branch holds: the bench follows the directory.
fn scenarios() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn replay_scenarios(c: &mut Criterion) {
    let scenarios = scenarios();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for scenario in &scenarios {
        group.bench_function(format!("scenario/{}", scenario.name), |b| {
            b.iter(|| runner::replay(scenario, ReplayOptions::default()).expect("replays"))
        });
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    group.bench_function("all_scenarios", |b| {
        b.iter(|| {
            let results = runner::replay_all(&scenarios, ReplayOptions::default(), jobs, |_, _| {});
            assert!(results.iter().all(Result::is_ok), "every scenario replays");
        })
    });
    group.finish();
}

/// N flows at once against one service; a sample is one batch (bookings, then the cron that
/// runs their webhooks). Elements are flows, so criterion reports flows/s.
fn concurrent_flows(c: &mut Criterion) {
    let scenario = scenarios()
        .into_iter()
        .find(|s| s.name == "calendar_failure")
        .expect("scenarios/calendar_failure.toml exists");
    let mut group = c.benchmark_group("concurrent_flows");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for flows in [1usize, 100, 1_000, 10_000] {
        let options = LoadOptions {
            tracing: true,
            transport: Transport::Http,
            record_mock_requests: true,
        };
        let mut rig = FlowRig::start(&scenario, options).expect("the rig starts");
        group.throughput(Throughput::Elements(flows as u64));
        group.bench_function(format!("http/{flows}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let outcome = rig.run(flows).expect("the batch runs");
                    elapsed += start.elapsed();
                    assert_eq!(outcome.failed_flows, 0, "{flows} flows");
                    assert_eq!(outcome.spans, flows * 4, "four spans per flow");
                    rig.store().clear();
                }
                elapsed
            })
        });
        rig.stop();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = replay_scenarios, concurrent_flows
}
criterion_main!(benches);
