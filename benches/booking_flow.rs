//! Booking flow: the calendar-failure flow (book, Google fails, webhook runs by cron) one flow
//! at a time, in-process and over loopback HTTP, with tracing on and off. Declared latency is
//! zero, so the traced/untraced ratio is the overhead of tracing on the same flow.
//!
//! Measured twice: wall time (`booking_flow`), and the CPU time of the whole process — caller,
//! service and mocks (`booking_flow_cpu`), which other programs loading the machine do not move.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trace_harness::overhead::{ROUND_FLOWS, SEGMENT_ROUNDS};
use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
use trace_harness::scenario::Scenario;

fn calendar_failure() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/calendar_failure.toml");
    Scenario::load(&path).expect("scenarios/calendar_failure.toml loads")
}

/// What a sample measures: the wall clock, or the process's CPU time.
trait Clock {
    fn now(&self) -> Duration;
}

struct Wall(Instant);

impl Clock for Wall {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

struct Cpu;

impl Clock for Cpu {
    fn now(&self) -> Duration {
        process_cpu_time()
    }
}

fn flows<M: Measurement<Value = Duration>>(
    c: &mut Criterion<M>,
    group_name: &str,
    clock: &dyn Clock,
) {
    let scenario = calendar_failure();
    let mut group = c.benchmark_group(group_name);
    for (transport, transport_name) in [
        (Transport::InProcess, "in_process"),
        (Transport::Http, "http"),
    ] {
        for (tracing, tracing_name) in [(false, "untraced"), (true, "traced")] {
            let options = LoadOptions {
                tracing,
                transport,
                // As `trace-harness overhead` runs it: nothing reads what the mocks received.
                record_mock_requests: false,
            };
            let start_rig = || FlowRig::start(&scenario, options).expect("the rig starts");
            let mut rig = start_rig();
            let mut served = 0;
            group.bench_function(format!("{transport_name}/{tracing_name}"), |b| {
                b.iter_custom(|iters| {
                    // A fresh rig as often as `overhead` takes one, outside the timing: a rig
                    // that has served thousands of flows can drift (see SEGMENT_ROUNDS).
                    if served >= SEGMENT_ROUNDS * ROUND_FLOWS {
                        std::mem::replace(&mut rig, start_rig()).stop();
                        served = 0;
                    }
                    served += iters as usize;
                    let start = clock.now();
                    for _ in 0..iters {
                        let outcome = rig.run(1).expect("the flow runs");
                        assert_eq!(outcome.failed_flows, 0);
                    }
                    let elapsed = clock.now().saturating_sub(start);
                    rig.store().clear();
                    elapsed
                })
            });
            rig.stop();
        }
    }
    group.finish();
}

fn booking_flow(c: &mut Criterion) {
    flows(c, "booking_flow", &Wall(Instant::now()));
}

fn booking_flow_cpu(c: &mut Criterion<ProcessCpuTime>) {
    flows(c, "booking_flow_cpu", &Cpu);
}

/// CPU time consumed so far by every thread of this process.
fn process_cpu_time() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .expect("CLOCK_PROCESS_CPUTIME_ID is readable");
    Duration::from(now)
}

/// A criterion measurement of process CPU time (values are `Duration`s, as wall time's are).
struct ProcessCpuTime;

impl Measurement for ProcessCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        process_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        process_cpu_time().saturating_sub(start)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else if typical_ns < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        for v in values.iter_mut() {
            *v *= factor;
        }
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values.iter_mut() {
            *v = per * 1e9 / *v;
        }
        "per cpu second"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = booking_flow
}
criterion_group! {
    name = benches_cpu;
    config = common::criterion().with_measurement(ProcessCpuTime);
    targets = booking_flow_cpu
}
criterion_main!(benches, benches_cpu);
