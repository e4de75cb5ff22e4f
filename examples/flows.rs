//! Runs the calendar-failure booking flow N times on one side (traced or untraced, over
//! loopback HTTP or in-process), as `trace-harness overhead` runs its rounds, for counting
//! instructions with callgrind (`benches/instructions.sh --flow`).
//!
//! Usage: `flows <traced|untraced> <http|in-process> <n>`.

use std::path::Path;
use std::process::exit;

use trace_harness::overhead::ROUND_FLOWS;
use trace_harness::runner::load::{FlowRig, LoadOptions, Transport};
use trace_harness::scenario::Scenario;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [side, transport, n] = args.as_slice() else {
        usage()
    };
    let tracing = match side.as_str() {
        "traced" => true,
        "untraced" => false,
        _ => usage(),
    };
    let transport = match transport.as_str() {
        "http" => Transport::Http,
        "in-process" => Transport::InProcess,
        _ => usage(),
    };
    let Ok(n) = n.parse::<usize>() else { usage() };
    let scenario = Scenario::load(Path::new("scenarios/calendar_failure.toml"))
        .unwrap_or_else(|error| fail(error));
    let options = LoadOptions {
        tracing,
        transport,
        // As `overhead` runs it: nothing reads what the mocks received.
        record_mock_requests: false,
    };
    let mut rig = FlowRig::start(&scenario, options).unwrap_or_else(|error| fail(error));
    // One warm-up round, and the store emptied after every round, as `overhead` does.
    for done in (0..ROUND_FLOWS).chain(0..n) {
        match rig.run(1) {
            Ok(outcome) if outcome.failed_flows == 0 => {}
            Ok(_) => fail("a flow failed: the booking did not answer 201 Created"),
            Err(error) => fail(error),
        }
        if (done + 1) % ROUND_FLOWS == 0 {
            rig.store().clear();
        }
    }
    rig.stop();
}

fn usage() -> ! {
    eprintln!("usage: flows <traced|untraced> <http|in-process> <n>");
    exit(2)
}

fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("{error}");
    exit(1)
}
