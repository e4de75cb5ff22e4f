//! `trace-harness diff` through the front door: a scenario against itself, every seed scenario
//! against its planted-bug copy (the difference each bug makes, named), saved exports read back
//! as baselines, the JSON output, and bad input (exit 2, one clear line).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trace_harness::contract::PlantedBug;

fn trace_harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "true")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every scenario file in `scenarios/` (each one `broken_copies.rs` breaks).
const SEEDS: [&str; 8] = [
    "calendar_failure",
    "card_declined",
    "performance",
    "seated_attendees",
    "slow_payment",
    "stripe_retry",
    "webhook_crash",
    "webhook_retries",
];

fn scenario(name: &str) -> String {
    format!("scenarios/{name}.toml")
}

#[test]
fn a_scenario_against_itself_has_no_differences() {
    for name in SEEDS {
        let path = scenario(name);
        let output = trace_harness(&["diff", &path, &path]);
        let text = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {text}{}",
            stderr(&output)
        );
        assert_eq!(
            text,
            format!(
                "A: {path}, replayed in process\nB: {path}, replayed in process\nno differences\n"
            )
        );
    }
}

/// The scenario file with `bug` planted in its `[service]`, as a copy beside the others.
fn planted_copy(dir: &Path, name: &str, bug: PlantedBug) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name)).unwrap();
    let planted = format!("bugs = [\"{}\"]", bug.name());
    let text = if text.contains("\n[service]\n") {
        text.replacen("\n[service]\n", &format!("\n[service]\n{planted}\n"), 1)
    } else {
        format!("{text}\n[service]\n{planted}\n")
    };
    let path = dir.join(format!("{name}_{}.toml", bug.name()));
    std::fs::write(&path, text).unwrap();
    path
}

/// What `diff` says a planted bug changes in a seed scenario's trace, as fragments of its text.
fn difference_made(name: &str, bug: PlantedBug) -> &'static [&'static str] {
    match (name, bug) {
        // Only card_declined has a request answered 5xx (README, "Planted bugs").
        ("card_declined", PlantedBug::UnmarkedServerErrors) => &[
            "~ span_004 booking_creation\n    status: error: Payment could not be initiated: Your card was declined. (card_declined) → ok\n",
        ],
        (_, PlantedBug::UnmarkedServerErrors) => &["no differences"],
        ("card_declined", PlantedBug::OrphanJobs) => &[
            "~ span_007 webhook_execution\n    moved to a trace of its own: under span_003 webhook_scheduling in trace_1 → the root of trace_3\n    link removed: ⇠ follows span_003 webhook_scheduling\n",
        ],
        ("card_declined", PlantedBug::UnlinkedJobs) => &[
            "~ span_006 payment_failure_processing\n    link removed: ⇠ follows span_002 payment_processing\n",
            "~ span_007 webhook_execution\n    link removed: ⇠ follows span_003 webhook_scheduling\n",
        ],
        ("card_declined", PlantedBug::DropTraceparent) => &[
            "mock `stripe` POST /v1/payment_intents #2 carried the context of span_005 payment_processing → no traceparent",
            "mock `subscriber` POST /webhook #1 carried the context of span_007 webhook_execution → no traceparent",
        ],
        // The delivery the crash lost is named by its raw ids: its span never arrived.
        ("webhook_crash", PlantedBug::OrphanJobs) => &[
            "~ span_003 webhook_execution\n    moved to a trace of its own: under span_002 webhook_scheduling in trace_1 → the root of trace_2\n    link removed: ⇠ follows span_002 webhook_scheduling\n",
        ],
        ("webhook_crash", PlantedBug::DropTraceparent) => &[
            "(not captured) → no traceparent",
            "mock `subscriber` POST /webhook #2 carried the context of span_003 webhook_execution → no traceparent",
        ],
        // slow_payment schedules no job, so nothing is orphaned (README, "Planted bugs").
        ("slow_payment", PlantedBug::OrphanJobs) => &["no differences"],
        ("seated_attendees", PlantedBug::OrphanJobs) => &[
            "~ span_005 schedule_mandatory_reminder\n    moved to a trace of its own: under span_004 schedule_mandatory_reminder in trace_1 → the root of trace_2\n    link removed: ⇠ follows span_004 schedule_mandatory_reminder\n",
        ],
        ("calendar_failure", PlantedBug::OrphanJobs) => &[
            "~ span_004 webhook_execution\n    moved to a trace of its own: under span_003 webhook_scheduling in trace_1 → the root of trace_2\n    link removed: ⇠ follows span_003 webhook_scheduling\n",
        ],
        ("performance", PlantedBug::OrphanJobs) => &[
            "~ span_006 webhook_execution\n    moved to a trace of its own: under span_004 webhook_scheduling in trace_1 → the root of trace_2\n",
            "~ span_007 webhook_execution\n    moved to a trace of its own: under span_004 webhook_scheduling in trace_1 → the root of trace_3\n",
        ],
        ("webhook_retries", PlantedBug::OrphanJobs) => &[
            "~ span_003 webhook_execution\n    moved to a trace of its own: under span_002 webhook_scheduling in trace_1 → the root of trace_2\n    link removed: ⇠ follows span_002 webhook_scheduling\n",
        ],
        ("slow_payment", PlantedBug::UnlinkedJobs) => &[
            "~ span_004 payment_success_processing\n    link removed: ⇠ follows span_002 payment_processing\n1 difference in 1 span",
        ],
        ("seated_attendees", PlantedBug::UnlinkedJobs) => &[
            "~ span_005 schedule_mandatory_reminder\n    link removed: ⇠ follows span_004 schedule_mandatory_reminder\n1 difference in 1 span",
        ],
        ("performance", PlantedBug::UnlinkedJobs) => &[
            "~ span_006 webhook_execution\n    link removed: ⇠ follows span_004 webhook_scheduling\n",
            "~ span_007 webhook_execution\n    link removed: ⇠ follows span_004 webhook_scheduling\n",
        ],
        ("stripe_retry", PlantedBug::UnlinkedJobs) => &[
            "~ span_019 payment_success_processing\n    link removed: ⇠ follows span_003 payment_processing\n",
            "~ span_016 webhook_execution\n    link removed: ⇠ follows span_009 webhook_scheduling\n8 differences in 8 spans",
        ],
        ("stripe_retry", PlantedBug::OrphanJobs) => &[
            "~ span_016 webhook_execution\n    moved to a trace of its own: under span_009 webhook_scheduling in trace_2 → the root of trace_8\n",
            "12 differences in 6 spans",
        ],
        ("stripe_retry", PlantedBug::DropTraceparent) => &[
            "mock `stripe` POST /v1/payment_intents #2 carried the context of span_008 payment_processing → no traceparent",
            "12 differences in 12 mock requests",
        ],
        (_, PlantedBug::UnlinkedJobs) => &["webhook_execution\n    link removed: ⇠ follows "],
        ("calendar_failure", PlantedBug::DropTraceparent) => &[
            "mock `google` POST /calendar/v3/calendars/primary/events #1 carried the context of span_002 calendar_event_creation → no traceparent",
        ],
        ("performance", PlantedBug::DropTraceparent) => &[
            "mock `google` POST /calendar/v3/calendars/primary/events #1 carried the context of span_002 calendar_event_creation → no traceparent",
            "mock `stripe` POST /v1/payment_intents #1 carried the context of span_003 payment_processing → no traceparent",
        ],
        ("seated_attendees", PlantedBug::DropTraceparent) => &[
            "mock `email` POST /v3/mail/send #3 carried the context of span_005 schedule_mandatory_reminder → no traceparent",
        ],
        ("slow_payment", PlantedBug::DropTraceparent) => &[
            "mock `stripe` POST /v1/payment_intents #1 carried the context of span_002 payment_processing → no traceparent",
        ],
        ("webhook_retries", PlantedBug::DropTraceparent) => &[
            "mock `subscriber` POST /webhook #3 carried the context of span_003 webhook_execution → no traceparent",
        ],
        (other, bug) => panic!("no expectation for {other} with {bug:?}"),
    }
}

#[test]
fn every_seed_scenario_against_its_planted_bug_copy_names_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    for name in SEEDS {
        for bug in PlantedBug::ALL {
            let copy = planted_copy(dir.path(), name, bug);
            let output = trace_harness(&["diff", &scenario(name), copy.to_str().unwrap()]);
            let text = stdout(&output);
            let fragments = difference_made(name, bug);
            let equal = fragments == ["no differences"];
            assert_eq!(
                output.status.code(),
                Some(if equal { 0 } else { 1 }),
                "{name} with {bug:?}:\n{text}{}",
                stderr(&output)
            );
            for fragment in fragments {
                assert!(
                    text.contains(fragment),
                    "{name} with {bug:?}: no `{fragment}` in:\n{text}"
                );
            }
            // --bug replays the same copy without a file.
            let planted = trace_harness(&["diff", &scenario(name), "--bug", bug.name()]);
            let same = stdout(&planted);
            assert_eq!(planted.status.code(), output.status.code(), "{same}");
            let body = |t: &str| t.lines().skip(2).collect::<Vec<_>>().join("\n");
            assert_eq!(body(&same), body(&text), "{name} with {bug:?}");
        }
    }
}

/// `run scenarios/ --format FORMAT` written to a file in `dir`.
fn exported(dir: &Path, format: &str) -> PathBuf {
    let output = trace_harness(&["run", "scenarios/", "--format", format]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let path = dir.join(format!("baseline.{format}"));
    std::fs::write(&path, output.stdout).unwrap();
    path
}

#[test]
fn every_export_read_back_as_a_baseline_equals_the_replays() {
    let dir = tempfile::tempdir().unwrap();
    for (format, not_compared) in [
        ("json", None),
        ("otlp-json", Some("not compared: mock requests (A cannot show them)")),
        (
            "ndjson",
            Some("not compared: parents, durations, attributes, links, spans without log lines, mock requests (A cannot show them)"),
        ),
    ] {
        let baseline = exported(dir.path(), format);
        let output = trace_harness(&["diff", baseline.to_str().unwrap(), "scenarios/"]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{format}:\n{text}{}", stderr(&output));
        assert_eq!(text.matches("no differences\n").count(), SEEDS.len(), "{text}");
        assert!(
            text.ends_with(&format!("0 of {} replays differ\n", SEEDS.len())),
            "{text}"
        );
        match not_compared {
            Some(line) => assert_eq!(text.matches(line).count(), SEEDS.len(), "{text}"),
            None => assert!(!text.contains("not compared"), "{text}"),
        }
        // One scenario against the baseline of all: its own replay there is picked.
        let one = trace_harness(&[
            "diff",
            baseline.to_str().unwrap(),
            "scenarios/webhook_retries.toml",
        ]);
        assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
        assert!(stdout(&one).ends_with("no differences\n"));
    }
}

#[test]
fn a_baseline_from_before_a_change_shows_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = exported(dir.path(), "json");
    // The subscriber answers at once instead of timing out twice.
    let text = std::fs::read_to_string(scenario("webhook_retries")).unwrap();
    let slow =
        "    { status = 200, latency = \"30s\" },\n    { status = 200, latency = \"45s\" },\n";
    assert!(text.contains(slow), "{text}");
    let changed = dir.path().join("webhook_retries.toml");
    std::fs::write(&changed, text.replace(slow, "")).unwrap();
    let output = trace_harness(&[
        "diff",
        baseline.to_str().unwrap(),
        changed.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    for fragment in [
        "~ span_003 webhook_execution\n",
        "    event removed: [WARN] Webhook execution failed: Connection timeout\n",
        "    event removed: [WARN] Retry attempt 1 failed: Connection timeout\n",
        "    duration: 1m50.12s → ",
        "request removed: mock `subscriber` POST /webhook #2",
    ] {
        assert!(text.contains(fragment), "no `{fragment}` in:\n{text}");
    }
    // Within a tolerance wide enough, the duration passes; the rest does not.
    let wide = trace_harness(&[
        "diff",
        baseline.to_str().unwrap(),
        changed.to_str().unwrap(),
        "--tolerance",
        "100%",
    ]);
    assert!(!stdout(&wide).contains("duration:"), "{}", stdout(&wide));
    assert_eq!(wide.status.code(), Some(1));
}

#[test]
fn json_output_lists_each_difference_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diff.json");
    let output = trace_harness(&[
        "diff",
        "scenarios/calendar_failure.toml",
        "--bug",
        "orphan_jobs",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "the document went to --out");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(document["equal"], false);
    let replay = &document["replays"][0];
    assert_eq!(replay["scenario"], "calendar_failure");
    let kinds: Vec<&str> = replay["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["moved", "link"]);
    let moved = &replay["differences"][0];
    assert_eq!(moved["op"], "webhook_execution");
    assert_eq!(moved["from"]["parent"], "span_003");
    assert_eq!(moved["to"]["parent"], serde_json::Value::Null);
    assert_eq!(moved["to"]["trace"], "trace_2");
    assert_eq!(moved["own_trace"], true);
    assert_eq!(replay["differences"][1]["only_in"], "A");
    assert_eq!(
        replay["differences"][1]["follows"]["op"],
        "webhook_scheduling"
    );

    let same = trace_harness(&[
        "diff",
        "scenarios/calendar_failure.toml",
        "scenarios/calendar_failure.toml",
        "--format",
        "json",
    ]);
    let document: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(document["equal"], true);
    assert_eq!(document["replays"][0]["differences"], serde_json::json!([]));
}

/// Runs `diff` with `args`, expecting bad input: exit 2, nothing on standard output, and
/// `expected` in the message.
fn rejects(args: &[&str], expected: &str) {
    let output = trace_harness(args);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
    assert_eq!(stdout(&output), "", "{args:?}");
    assert!(
        message.contains(expected),
        "{args:?}: no `{expected}` in:\n{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn bad_input_is_exit_2_with_what_was_expected() {
    let calendar = "scenarios/calendar_failure.toml";
    rejects(
        &["diff", calendar],
        "diff needs two replays: give B, or replay A another way",
    );
    rejects(
        &["diff", calendar, "--bug", "orphan_job"],
        "expected one of drop_traceparent, orphan_jobs, unlinked_jobs, unmarked_server_errors; found `orphan_job`",
    );
    rejects(
        &["diff", calendar, calendar, "--tolerance", "5 percent"],
        "expected a share of A's duration such as `5%`",
    );
    rejects(
        &["diff", calendar, "scenarios/no_such.toml"],
        "scenarios/no_such.toml: cannot read the scenario",
    );
    rejects(
        &["diff", "no_such.json", calendar],
        "no_such.json: cannot read",
    );

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let baseline = exported(dir.path(), "json");
    let baseline = baseline.to_str().unwrap();
    rejects(
        &["diff", baseline, "--no-tracing"],
        "a saved export: --service, --no-tracing and --bug replay scenario files",
    );
    let broken = write(
        "broken.json",
        "[{\"scenario\": \"x\", \"spans\": [{\"span\": 1}]}]",
    );
    rejects(&["diff", &broken, calendar], &format!("{broken}:1:"));
    let unknown = write("notes.txt", "nothing of the kind\n");
    rejects(
        &["diff", &unknown, calendar],
        "not a saved replay: expected the output of `trace-harness run --format json`",
    );
    let ndjson = write(
        "bad.ndjson",
        "{\"timestamp\":\"2026-03-02T09:00:00Z\",\"level\":\"info\",\"prefix\":\"\",\"message\":\"m\"}\n{\"timestamp\":\"yesterday\",\"level\":\"info\",\"prefix\":\"\",\"message\":\"m\"}\n",
    );
    rejects(
        &["diff", &ndjson, calendar],
        &format!("{ndjson}:2:1: timestamp `yesterday` is not RFC 3339"),
    );
    // A saved file of several replays and a scenario it has no replay of.
    let renamed = write(
        "calendar_failur.toml",
        &std::fs::read_to_string(calendar).unwrap(),
    );
    rejects(
        &["diff", baseline, &renamed],
        "A holds no replay of `calendar_failur`, only of calendar_failure, card_declined, performance, seated_attendees, slow_payment, stripe_retry, webhook_crash, webhook_retries; did you mean `calendar_failure`?",
    );
}

#[test]
fn help_has_examples() {
    let output = trace_harness(&["diff", "--help"]);
    let help = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    for needle in [
        "Examples:",
        "trace-harness diff scenarios/calendar_failure.toml --bug orphan_jobs",
        "--tolerance <PERCENT|DURATION>",
        "Exit codes: 0 no differences, 1 differences",
    ] {
        assert!(help.contains(needle), "no `{needle}` in:\n{help}");
    }
}

#[test]
fn the_readme_example_is_what_diff_prints() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let command = "$ trace-harness diff scenarios/calendar_failure.toml --bug orphan_jobs\n";
    let start = readme.find(command).expect("the README shows a diff") + command.len();
    let shown = &readme[start..start + readme[start..].find("```").unwrap()];
    let output = trace_harness(&[
        "diff",
        "scenarios/calendar_failure.toml",
        "--bug",
        "orphan_jobs",
    ]);
    assert_eq!(stdout(&output), shown);
}

#[test]
fn html_output_puts_both_waterfalls_side_by_side_with_the_differences_marked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diff.html");
    let output = trace_harness(&[
        "diff",
        "scenarios/calendar_failure.toml",
        "--bug",
        "orphan_jobs",
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    for needle in [
        r#"<section class="waterfall" id="a0""#,
        r#"<section class="waterfall" id="b0""#,
        "moved to a trace of its own",
        // The moved job, marked on each side.
        r#"<div class="row changed" data-row="3" data-span="span_004" data-op="webhook_execution""#,
    ] {
        assert!(page.contains(needle), "no `{needle}` in the page");
    }
    assert_eq!(page.matches(r#"class="row changed""#).count(), 2);
}

#[test]
fn a_json_baseline_gives_back_messages_as_written() {
    // The JSON export prints messages on one line (`report::one_line`); read back, they are
    // the messages again, so a replay compares equal to its baseline whatever they hold.
    let written = "line one\nline two \\ [trace:forged span:x op:y] \u{1b}[31m \u{2028} tab\t";
    let shown = trace_harness::report::one_line(written);
    assert_ne!(shown, written);
    let document = serde_json::json!([{
        "scenario": "escapes",
        "spans": [{
            "span": "span_001", "trace": "trace_1",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
            "parent": null, "op": "booking_creation", "start_us": 0, "end_us": 10,
            "status": "ok", "status_message": null, "fields": {}, "follows_from": [],
            "request_id": null,
        }],
        "logs": [{ "at_us": 0, "level": "INFO", "message": shown, "request_id": null, "span": "span_001" }],
    }]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("escapes.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let saved = trace_harness::diff::read_saved(&path).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].outcome.captured.logs[0].message, written);
}
