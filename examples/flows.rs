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
    let usage = "usage: flows <traced|untraced> <http|in-process> <n>";
    let [side, transport, n] = args.as_slice() else {
        eprintln!("{usage}");
        exit(2);
    };
    let tracing = match side.as_str() {
        "traced" => true,
        "untraced" => false,
        _ => {
            eprintln!("{usage}");
            exit(2);
        }
    };
    let transport = match transport.as_str() {
        "http" => Transport::Http,
        "in-process" => Transport::InProcess,
        _ => {
            eprintln!("{usage}");
            exit(2);
        }
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("{usage}");
        exit(2);
    };
    let scenario = match Scenario::load(Path::new("scenarios/calendar_failure.toml")) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("{error}");
            exit(1);
        }
    };
    let options = LoadOptions {
        tracing,
        transport,
        // As `overhead` runs it: nothing reads what the mocks received.
        record_mock_requests: false,
    };
    let mut rig = match FlowRig::start(&scenario, options) {
        Ok(rig) => rig,
        Err(error) => {
            eprintln!("{error}");
            exit(1);
        }
    };
    // One warm-up round, and the store emptied after every round, as `overhead` does.
    for done in (0..ROUND_FLOWS).chain(0..n) {
        match rig.run(1) {
            Ok(outcome) if outcome.failed_flows == 0 => {}
            Ok(_) => {
                eprintln!("a flow failed: the booking did not answer 201 Created");
                exit(1);
            }
            Err(error) => {
                eprintln!("{error}");
                exit(1);
            }
        }
        if (done + 1) % ROUND_FLOWS == 0 {
            rig.store().clear();
        }
    }
    rig.stop();
}
