//! Span lifecycle: one span with three fields and one event — created, entered, exited,
//! closed — under no subscriber, tracing's disabled filter, our opt-out, the Registry floor,
//! our capture subscriber (with and without the seed-format log line), `fmt`, and
//! `tracing-opentelemetry`. Also five nested spans, and two threads sharing one subscriber.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{span_with_event, Built, Setup};
use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{info, info_span};

/// The same span without its event: what the opt-out promise is about.
#[inline(never)]
fn span_only(event_type_id: u64) {
    let span = info_span!(
        "booking_creation",
        event_type_id,
        calendar = "google",
        paid = false
    );
    let entered = span.enter();
    black_box(&entered);
    drop(entered);
    drop(span);
}

/// Five spans, each inside the previous one, and one event in the innermost.
#[inline(never)]
fn nested(depth: usize, event_type_id: u64) {
    if depth == 0 {
        info!(
            "Booking creation started for eventTypeId: {}",
            event_type_id
        );
        return;
    }
    let span = info_span!("nested", depth, event_type_id, calendar = "google");
    let _entered = span.enter();
    nested(depth - 1, event_type_id);
}

fn lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_lifecycle");
    for setup in Setup::ALL {
        let built = Built::new(setup);
        group.bench_function(setup.name(), |b| {
            b.iter_custom(|iters| built.time(iters, || span_with_event(black_box(123))))
        });
    }
    group.finish();
}

fn disabled(c: &mut Criterion) {
    let mut group = c.benchmark_group("disabled_span");
    for setup in [
        Setup::NoSubscriber,
        Setup::FilteredOff,
        Setup::CaptureDisabled,
    ] {
        let built = Built::new(setup);
        group.bench_function(setup.name(), |b| {
            b.iter_custom(|iters| built.time(iters, || span_only(black_box(123))))
        });
    }
    group.finish();
}

/// The subscribers compared in the nested and two-thread cases.
const PEERS: [Setup; 6] = [
    Setup::NoSubscriber,
    Setup::TrivialLayer,
    Setup::Capture,
    Setup::Fmt,
    Setup::OtelNoop,
    Setup::OtelInMemory,
];

fn nested_depth_5(c: &mut Criterion) {
    let mut group = c.benchmark_group("nested_depth_5");
    for setup in PEERS {
        let built = Built::new(setup);
        group.bench_function(setup.name(), |b| {
            b.iter_custom(|iters| built.time(iters, || nested(5, black_box(123))))
        });
    }
    group.finish();
}

/// Two threads, one subscriber: each thread runs `iters` lifecycles; the figure is the wall
/// time per lifecycle on each thread, so contention shows as a rise over the 1-thread case.
fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads");
    for setup in PEERS {
        let built = Built::new(setup);
        group.bench_function(setup.name(), |b| {
            b.iter_custom(|iters| {
                let elapsed = std::thread::scope(|scope| {
                    let start = Instant::now();
                    let workers: Vec<_> = (0..2)
                        .map(|_| {
                            scope.spawn(|| {
                                built.run(|| {
                                    for _ in 0..iters {
                                        span_with_event(black_box(123));
                                    }
                                })
                            })
                        })
                        .collect();
                    for worker in workers {
                        let _ = worker.join();
                    }
                    start.elapsed()
                });
                built.clear();
                elapsed.max(Duration::from_nanos(1))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = lifecycle, disabled, nested_depth_5, two_threads
}
criterion_main!(benches);
