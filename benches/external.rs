//! What a replay against an external service costs next to the in-process replay: every
//! scenario of `scenarios/` replayed in-process and against `trace-harness serve --contract` started per
//! replay from `examples/own-service/service.toml` (spans over OTLP/HTTP, completeness by
//! rules); as many replays that do no work, both ways, for the fixed cost of an external
//! replay; and, separately, what starting that process until it is ready and stopping it costs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion};
use trace_harness::runner::{replay, replay_against, ReplayOptions, ServiceSpec};
use trace_harness::scenario::Scenario;

fn scenarios() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    paths.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "toml"));
    paths.sort();
    paths
        .iter()
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn own_service() -> ServiceSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/own-service/service.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = text.replace("${TRACE_HARNESS_BIN}", env!("CARGO_BIN_EXE_trace-harness"));
    ServiceSpec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn every_scenario(c: &mut Criterion) {
    let scenarios = scenarios();
    let service = own_service();
    let mut group = c.benchmark_group("every_scenario");
    group.sample_size(20);
    group.bench_function("in_process", |b| {
        b.iter(|| {
            for s in &scenarios {
                replay(s, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    group.bench_function("external", |b| {
        b.iter(|| {
            for s in &scenarios {
                replay_against(s, ReplayOptions::default(), Some(&service))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    group.finish();
}

/// A scenario whose one step (a cron call with nothing due) does no work: replayed in-process
/// and externally, the difference is what an external replay costs beyond its work.
const IDLE: &str = r#"
description = "one webhook cron call with no job due"
seed = 1

[[timeline]]
at = "0s"
cron = "webhooks"
"#;

/// As many idle replays as there are scenarios, in-process and external.
fn idle_replays(c: &mut Criterion) {
    let n = scenarios().len();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("idle.toml");
    std::fs::write(&path, IDLE).unwrap_or_else(|e| panic!("{e}"));
    let idle = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let service = own_service();
    let mut group = c.benchmark_group("idle_replays");
    group.sample_size(20);
    group.bench_function("in_process", |b| {
        b.iter(|| {
            for _ in 0..n {
                replay(&idle, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    group.bench_function("external", |b| {
        b.iter(|| {
            for _ in 0..n {
                replay_against(&idle, ReplayOptions::default(), Some(&service))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        })
    });
    group.finish();
}

/// Spawning `serve --contract` as a replay does (a new database, spans to an OTLP endpoint)
/// until its readiness line, then SIGTERM and its exit: what each external replay pays once
/// (and once more per restart).
fn process_start(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("process");
    group.sample_size(20);
    let mut n = 0;
    group.bench_function("start_until_ready_and_stop", |b| {
        b.iter(|| {
            n += 1;
            let database = dir.path().join(format!("booking-{n}.sqlite3"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_trace-harness"))
                .args(["serve", "--contract"])
                .env("PORT", "0")
                .env("DATABASE_PATH", &database)
                // Nothing is exported by a service that served no request: no receiver needed.
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"));
            let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(line.starts_with("listening on"), "{line}");
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
                .unwrap_or_else(|e| panic!("{e}"));
            let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
            assert!(status.success(), "{status}");
        })
    });
    group.finish();
}

criterion_group!(benches, every_scenario, idle_replays, process_start);
criterion_main!(benches);
