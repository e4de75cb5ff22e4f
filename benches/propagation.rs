//! Propagation: `traceparent`/`tracestate` format and parse, ours against the `opentelemetry`
//! SDK's `TraceContextPropagator` inject/extract, valid and invalid inputs.
//!
//! The peer gets the cheapest carrier its API allows (one slot, no `HashMap`), so the figures
//! compare the codecs, not the header maps.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use trace_harness::trace::TraceContext;

mod common;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
/// Headers a strict reader must refuse, each for a different reason.
const INVALID: [(&str, &str); 5] = [
    (
        "uppercase",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ),
    (
        "zero_trace_id",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ),
    (
        "version_ff",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    (
        "too_long",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ),
    ("garbage", "not a traceparent at all"),
];

/// The peer's carrier: one slot per header, nothing else.
#[derive(Default)]
struct Headers {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" => self.tracestate = Some(value),
            _ => {}
        }
    }
}

struct Inbound<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Inbound<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

fn format(c: &mut Criterion) {
    let ours = TraceContext::from_headers(Some(VALID), None).expect("valid");
    let ours_with_state = TraceContext::from_headers(Some(VALID), Some(STATE)).expect("valid");
    let propagator = TraceContextPropagator::new();
    let span_context = |state: TraceState| {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            state,
        )
    };
    let theirs = Context::new().with_remote_span_context(span_context(TraceState::default()));
    let theirs_with_state = Context::new().with_remote_span_context(span_context(
        STATE.parse::<TraceState>().expect("valid tracestate"),
    ));

    let mut group = c.benchmark_group("propagation_format");
    group.bench_function("ours/traceparent", |b| {
        b.iter(|| black_box(black_box(&ours).traceparent()))
    });
    group.bench_function("otel/traceparent", |b| {
        b.iter(|| {
            let mut headers = Headers::default();
            propagator.inject_context(black_box(&theirs), &mut headers);
            black_box(headers)
        })
    });
    group.bench_function("ours/with_tracestate", |b| {
        b.iter(|| {
            let context = black_box(&ours_with_state);
            black_box((context.traceparent(), context.tracestate.clone()))
        })
    });
    group.bench_function("otel/with_tracestate", |b| {
        b.iter(|| {
            let mut headers = Headers::default();
            propagator.inject_context(black_box(&theirs_with_state), &mut headers);
            black_box(headers)
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let propagator = TraceContextPropagator::new();
    let mut group = c.benchmark_group("propagation_parse");
    group.bench_function("ours/traceparent", |b| {
        b.iter(|| black_box(TraceContext::parse_traceparent(black_box(VALID))))
    });
    group.bench_function("otel/traceparent", |b| {
        b.iter(|| {
            let inbound = Inbound {
                traceparent: black_box(VALID),
                tracestate: None,
            };
            black_box(propagator.extract(&inbound))
        })
    });
    group.bench_function("ours/with_tracestate", |b| {
        b.iter(|| {
            black_box(TraceContext::from_headers(
                Some(black_box(VALID)),
                Some(black_box(STATE)),
            ))
        })
    });
    group.bench_function("otel/with_tracestate", |b| {
        b.iter(|| {
            let inbound = Inbound {
                traceparent: black_box(VALID),
                tracestate: Some(black_box(STATE)),
            };
            black_box(propagator.extract(&inbound))
        })
    });
    for (name, header) in INVALID {
        assert!(TraceContext::parse_traceparent(header).is_err(), "{name}");
        group.bench_function(format!("ours/invalid_{name}"), |b| {
            b.iter(|| black_box(TraceContext::parse_traceparent(black_box(header))))
        });
        group.bench_function(format!("otel/invalid_{name}"), |b| {
            b.iter(|| {
                let inbound = Inbound {
                    traceparent: black_box(header),
                    tracestate: None,
                };
                black_box(propagator.extract(&inbound))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = format, parse
}
criterion_main!(benches);
