//! Every scenario's replay, snapshotted: the span tree, the seed-style log view and the
//! request-ID view. Replays are deterministic and ids are aliased, so no redactions are needed.

mod common;

use trace_harness::report;
use trace_harness::scenario::Scenario;

#[test]
fn every_scenario_replays_to_its_snapshot() {
    insta::glob!("../scenarios", "*.toml", |path| {
        let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
        let outcome = common::run_green(&scenario);
        let text = format!(
            "{}\n{}\n{}",
            report::tree(&outcome, &[]),
            report::seed_log_view(&outcome),
            report::request_id_view(&outcome)
        );
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../snapshots");
        settings.set_prepend_module_to_snapshot(false);
        // Named after the scenario alone: `snapshots/<scenario>.snap`.
        settings.remove_snapshot_suffix();
        settings.set_description(scenario.description.clone());
        settings.bind(|| insta::assert_snapshot!(scenario.name.as_str(), text));
    });
}
