//! The Node booking service (`examples/node-booking-service`: Fastify, the OpenTelemetry JS
//! SDK, `stripe`, sql.js) under the same scenario files as the in-process service. A suite of
//! its own, since it needs Node.js and the service's packages:
//!
//! ```sh
//! (cd examples/node-booking-service && npm ci)
//! cargo test --features node-service --test node_service
//! ```
//!
//! Without Node or without `npm ci`, it fails saying which; it never skips. Cargo builds it
//! only with the feature (`required-features`).

mod common;

use std::path::Path;

use common::external::service_file;
use trace_harness::runner::ServiceSpec;

/// `examples/node-booking-service/<file>`, once Node and the packages are known to be there.
fn node_service(file: &str) -> ServiceSpec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node-booking-service");
    match std::process::Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => panic!(
            "the node-service suite needs Node.js 20 or later as `node` on PATH \
             (Debian: apt-get install nodejs npm)"
        ),
    }
    assert!(
        dir.join("node_modules").is_dir(),
        "the node-service suite needs the service's packages: run `npm ci` in {}",
        dir.display()
    );
    service_file(&format!("examples/node-booking-service/{file}"))
}

#[test]
fn every_scenario_replays_against_node_as_it_does_in_process() {
    common::external::replays_like_in_process(&node_service("service.toml"));
}

#[test]
fn crashes_inside_jobs_kill_the_node_process_at_the_same_points_with_the_same_outcome() {
    common::external::crashes_like_in_process(&node_service("service.toml"));
}

#[test]
fn each_planted_bug_fails_against_node_with_the_in_process_diagnostic() {
    common::external::bugs_caught_like_in_process(&node_service("service.toml"));
}

#[test]
fn untraced_node_answers_alike_and_propagates_nothing() {
    // stripe-node words a refused signature its own way: bodies are compared with Node's
    // traced answers, statuses with in-process.
    common::external::untraced_like_in_process(
        &node_service("service.toml"),
        common::external::Answers::TracedSelf,
    );
}

#[test]
fn log_only_node_passes_on_its_lines() {
    common::external::passes_log_only(&node_service("logs-only.toml"));
}

#[test]
fn a_thousand_concurrent_flows_against_node_keep_to_their_own_traces() {
    common::external::flows_keep_apart(&node_service("service.toml"), 1_000);
}
