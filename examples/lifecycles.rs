//! Runs the span lifecycle benches' unit N times under one subscriber, for counting
//! instructions with callgrind (`benches/instructions.sh`): instruction counts do not move with
//! the load of a shared machine the way wall time does.
//!
//! Usage: `lifecycles <setup> <n>`, where setup is one of `trivial`, `capture`, `otel_noop`,
//! `otel_in_memory`, `none`.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{span_with_event, Built, Setup};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(setup), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: lifecycles <trivial|capture|otel_noop|otel_in_memory|none> <n>");
        std::process::exit(2);
    };
    let setup = match setup.as_str() {
        "trivial" => Setup::TrivialLayer,
        "capture" => Setup::Capture,
        "otel_noop" => Setup::OtelNoop,
        "otel_in_memory" => Setup::OtelInMemory,
        "none" => Setup::NoSubscriber,
        other => {
            eprintln!("unknown setup `{other}`");
            std::process::exit(2);
        }
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("n must be a whole number, got `{n}`");
        std::process::exit(2);
    };
    let built = Built::new(setup);
    built.run(|| {
        for _ in 0..n {
            span_with_event(black_box(123));
        }
    });
    // What the store keeps is dropped inside the count: capture pays for freeing it too.
    built.clear();
}
