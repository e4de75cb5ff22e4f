//! Helpers shared by the integration tests: load a scenario (or an edited copy) and replay it.

#![allow(dead_code)]

/// A service the harness did not write, judged against the in-process one.
pub mod external;
/// The booking service on loopback with a wiremock target, driven over raw HTTP.
pub mod sut;

use std::path::{Path, PathBuf};

use trace_harness::expect::{judge, Verdict};
use trace_harness::outcome::ReplayOutcome;
use trace_harness::report;
use trace_harness::runner::{replay, ReplayOptions};
use trace_harness::scenario::Scenario;

/// `scenarios/<name>.toml` in this crate.
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// The scenario file `name`, loaded and validated.
pub fn load(name: &str) -> Scenario {
    let path = scenario_path(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The scenario file with `edit` applied to its text: a modified copy for "change X and the
/// output changes" tests. Panics if the edit did not apply.
pub fn edited(name: &str, from: &str, to: &str) -> Scenario {
    let path = scenario_path(name);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{name}.toml has no `{from}` to edit");
    Scenario::parse(&path, &text.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"))
}

/// A scenario written out in a test; `name` is the file its errors point at.
pub fn parse(name: &str, text: &str) -> Scenario {
    Scenario::parse(Path::new(name), text).unwrap_or_else(|e| panic!("{e}"))
}

/// Replays `scenario`, tracing on or off; panics if it cannot run.
pub fn run(scenario: &Scenario, tracing: bool) -> ReplayOutcome {
    replay(scenario, ReplayOptions { tracing }).unwrap_or_else(|e| panic!("{e}"))
}

/// Replays with tracing on and insists the replay passed.
pub fn run_green(scenario: &Scenario) -> ReplayOutcome {
    let outcome = run(scenario, true);
    let verdict = judge(&outcome, &scenario.expect);
    assert!(
        verdict.passed(),
        "{}",
        report::diagnostics(&outcome, &verdict)
    );
    outcome
}

/// The scenario's verdict on `outcome`.
pub fn verdict(scenario: &Scenario, outcome: &ReplayOutcome) -> Verdict {
    judge(outcome, &scenario.expect)
}

/// One line of a seed listing, `[trace:T span:S op:O] message`, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingLine {
    /// `trace:…`, as written.
    pub trace: String,
    /// The span alias.
    pub span: String,
    /// The operation.
    pub op: String,
    /// The message after the prefix.
    pub message: String,
}

/// A seed listing's lines, blank lines skipped; panics on a line without a prefix.
pub fn parse_listing(listing: &str) -> Vec<ListingLine> {
    listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (prefix, message) = line
                .strip_prefix("[trace:")
                .and_then(|rest| rest.split_once("] "))
                .unwrap_or_else(|| panic!("not a seed log line: {line}"));
            let mut parts = prefix.split(' ');
            let trace = parts.next().unwrap_or_default().to_owned();
            let span = parts
                .next()
                .and_then(|p| p.strip_prefix("span:"))
                .unwrap_or_default();
            let op = parts
                .next()
                .and_then(|p| p.strip_prefix("op:"))
                .unwrap_or_default();
            ListingLine {
                trace,
                span: span.to_owned(),
                op: op.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

/// Asserts the replay's log view, filtered to the listing's operations, reproduces the seed's
/// listing line for line: same operations in the same order, the same span pattern, one trace
/// throughout, and equivalent messages. A replay message is equivalent when it starts with the
/// seed's message, ignoring case (the replay may add detail, such as the event type id).
pub fn assert_reproduces_listing(outcome: &ReplayOutcome, listing: &str) {
    let seed = parse_listing(listing);
    let ops: Vec<&str> = seed.iter().map(|l| l.op.as_str()).collect();
    let ours: Vec<ListingLine> = report::seed_lines(outcome)
        .into_iter()
        .filter(|l| l.op().is_some_and(|op| ops.contains(&op)))
        .map(|l| {
            let text = l.traced();
            parse_listing(&text).remove(0)
        })
        .collect();
    let show = |lines: &[ListingLine]| {
        lines
            .iter()
            .map(|l| format!("  {} {} {}", l.span, l.op, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        ours.len(),
        seed.len(),
        "line count differs\nseed:\n{}\nreplay:\n{}",
        show(&seed),
        show(&ours)
    );
    for (mine, theirs) in ours.iter().zip(&seed) {
        assert_eq!(
            mine.op,
            theirs.op,
            "operation order differs\nreplay:\n{}",
            show(&ours)
        );
        assert_eq!(
            mine.span,
            theirs.span,
            "span pattern differs\nreplay:\n{}",
            show(&ours)
        );
        assert!(
            mine.message
                .to_lowercase()
                .starts_with(&theirs.message.to_lowercase()),
            "message `{}` is not equivalent to the seed's `{}`",
            mine.message,
            theirs.message
        );
    }
    let traces: std::collections::BTreeSet<&str> = ours.iter().map(|l| l.trace.as_str()).collect();
    assert_eq!(
        traces.len(),
        1,
        "the listing spans several traces: {traces:?}"
    );
}
