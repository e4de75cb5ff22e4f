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
fn a_payment_that_fails_then_succeeds_then_fails_again_replays_against_node_as_in_process() {
    // card_declined's first booking: declined at 3m, paid with another card at 4m, and a late
    // failure report at 6m that changes nothing.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/card_declined.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let retried = text
        .replace(
            "[[timeline]]\nat = \"5m\"\ncron = \"webhooks\"\n",
            "[[timeline]]\nat = \"4m\"\nstripe = { event = \"payment_intent.succeeded\" }\n\n\
             [[timeline]]\nat = \"5m\"\ncron = \"webhooks\"\n\n\
             [[timeline]]\nat = \"6m\"\nstripe = { event = \"payment_intent.payment_failed\" }\n",
        )
        .replace(
            "name = \"neither booking is confirmed\"\nselect = 'span[op=\"booking_confirmation\"]'\ncount = 0",
            "name = \"the first booking is confirmed once\"\nselect = 'span[op=\"booking_confirmation\"]'\ncount = 1",
        )
        .replace("\ncount = 1\nstatus = \"error\"\nfollows_from", "\ncount = 2\nfollows_from");
    assert_ne!(retried, text);
    let scenario =
        trace_harness::scenario::Scenario::parse(&path, &retried).unwrap_or_else(|e| panic!("{e}"));
    common::external::replays_one_like_in_process(&node_service("service.toml"), &scenario);
}

#[test]
fn the_webhook_retry_policy_holds_against_node_as_in_process() {
    // 410 Gone on a retry ends one delivery; a 404 is retried until it is delivered.
    let text = r#"
description = "the retry policy: 410 Gone is not retried, another 4xx is"
seed = 8

[mocks.gone]
kind = "webhook_subscriber"
respond = [{ status = 503 }, { status = 410 }, { status = 200 }]

[mocks.moved]
kind = "webhook_subscriber"
respond = [{ status = 404 }, { status = 404 }, { status = 200 }]

[[timeline]]
at = "0s"
book = { event_type_id = 1 }

[[timeline]]
at = "1m"
cron = "webhooks"

[[expect]]
select = 'span[op="webhook_execution"][status=error]'
count = 1
log = "Retry attempt 1 failed: HTTP 410; giving up: 410 Gone is not retried"

[[expect]]
select = 'span[op="webhook_execution"][status=ok]'
count = 1
log = "Retry attempt 2 succeeded"

[[expect]]
mock = "gone"
count = 2

[[expect]]
mock = "moved"
count = 3
"#;
    let scenario = trace_harness::scenario::Scenario::parse(Path::new("retry_policy.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"));
    common::external::replays_one_like_in_process(&node_service("service.toml"), &scenario);
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
