//! The command line through the front door: exit codes and one-screen messages for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn trace_harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "true")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes `text` as a scenario file and runs it, expecting bad input (exit 2).
fn rejects(text: &str, expected_location: &str, expected_message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let output = trace_harness(&["run", path.to_str().unwrap()]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    let location = format!("{}:{expected_location}: ", path.display());
    assert!(
        message.contains(&location),
        "no `{location}` in:\n{message}"
    );
    assert!(
        message.contains(expected_message),
        "no `{expected_message}` in:\n{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

const GOOD: &str =
    "description = \"ok\"\nseed = 1\n\n[[timeline]]\nat = \"0s\"\nbook = { event_type_id = 1 }\n";

#[test]
fn the_scenarios_directory_replays_green() {
    let output = trace_harness(&["run", "scenarios/"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr(&output));
    assert!(
        stdout.contains("[trace:trace_1 span:span_001 op:booking_creation]"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}

#[test]
fn a_missing_file_is_bad_input_naming_the_file() {
    let output = trace_harness(&["run", "scenarios/no_such_scenario.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("scenarios/no_such_scenario.toml: cannot read the scenario"),
        "{message}"
    );
}

#[test]
fn invalid_toml_is_bad_input_with_line_and_column() {
    rejects(
        &GOOD.replace("seed = 1", "seed = = 1"),
        "2:8",
        "extra `=`, expected nothing",
    );
}

#[test]
fn an_unknown_key_is_bad_input_with_line_and_column() {
    rejects(
        &GOOD.replace("seed = 1", "seed = 1\ncolour = \"blue\""),
        "3:1",
        "unknown field `colour`",
    );
}

#[test]
fn a_wrong_type_is_bad_input_with_line_and_column() {
    rejects(
        &GOOD.replace("event_type_id = 1", "event_type_id = \"one\""),
        "6:26",
        "invalid type: string \"one\", expected a whole number, 0 or more",
    );
}

#[test]
fn a_bad_duration_is_bad_input_with_line_and_column() {
    rejects(
        &GOOD.replace("\"0s\"", "\"soon\""),
        "5:6",
        "expected a duration",
    );
}

#[test]
fn a_failed_assertion_exits_1_with_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(Path::new("scenarios/calendar_failure.toml")).unwrap();
    let broken = text.replacen("status = \"error\"", "status = \"ok\"", 1);
    assert_ne!(text, broken);
    std::fs::write(&path, broken).unwrap();
    let output = trace_harness(&["run", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED wrong (seed 1, tracing on)"),
        "{stdout}"
    );
    assert!(stdout.contains("expected: status ok"), "{stdout}");
    assert!(
        stdout.contains("✗ "),
        "the offending span is marked:\n{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn every_command_has_help_with_an_example() {
    for (command, example) in [
        ("run", "trace-harness run scenarios/"),
        ("serve", "trace-harness serve --addr 127.0.0.1:5000"),
    ] {
        let output = trace_harness(&[command, "--help"]);
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success());
        assert!(help.contains(example), "{help}");
    }
}

#[test]
fn serve_prints_its_address_and_answers_the_w3c_endpoint() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let host = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split([' ', '/']).next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(line.contains("/test"), "{line}");
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    stream
        .write_all(
            b"POST /test HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]",
        )
        .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    // It runs until interrupted: still alive after answering.
    assert_eq!(child.try_wait().unwrap(), None);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn serve_on_an_address_in_use_is_bad_input_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = trace_harness(&["serve", "--addr", &addr]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot serve on {addr}")),
        "{message}"
    );
}

#[test]
fn invalid_selectors_unknown_operations_and_undefined_mocks_are_bad_input() {
    let with = |expect: &str| format!("{GOOD}\n[[expect]]\n{expect}\n");
    rejects(
        &with("select = 'span[op=\"x\"'"),
        "9:22",
        "invalid selector: expected `]`",
    );
    rejects(
        &with("select = 'span[op=\"webhook_executoin\"]'"),
        "9:20",
        "unknown operation `webhook_executoin`; did you mean `webhook_execution`?",
    );
    rejects(
        &with("mock = \"stripe\"\ncount = 1"),
        "9:8",
        "no mock named `stripe`",
    );
    rejects(
        &with("select = 'span'\nduration = \"< 3 fortnights\""),
        "10:12",
        "expected a duration",
    );
    rejects(
        &with("step = 2\nstatus = 201"),
        "9:8",
        "`step = 2`: the timeline has steps 1–1",
    );
    rejects(
        &with("select = 'span'\nstatus = 201"),
        "10:10",
        "`status = 201` is a step's HTTP status: it goes with `step = N`",
    );
    rejects(
        &with("step = 1\nstatus = \"ok\""),
        "8:1",
        "a `step` expectation needs `status = CODE`",
    );
    // A mistyped field is an error, not a filter that matches nothing (`count = 0` would pass).
    rejects(
        &with("select = 'span[staus=error]'\ncount = 0"),
        "9:16",
        "no span field `staus`: did you mean `status`?",
    );
    rejects(
        &with("select = 'span[op=\"webhook_execution\"][trigger=\"BOOKING_CREATED\"]'"),
        "9:40",
        "no span field `trigger`: did you mean `trigger_event`? `webhook_execution` spans record `job_id`, `trigger_event`",
    );
    rejects(
        &with("select = 'span[op=\"booking_creation\"]'\nattributes = { event_typeid = 1 }"),
        "10:16",
        "no span field `event_typeid`: did you mean `event_type_id`? `booking_creation` spans record `event_type_id`, `booking_uid`",
    );
}

#[test]
fn limits_are_bad_input() {
    let step = "[[timeline]]\nat = \"0s\"\ncron = \"webhooks\"\n";
    let text = format!("description = \"big\"\nseed = 1\n{}", step.repeat(1_001));
    rejects(&text, "3:1", "1001 steps; at most 1000 are allowed");
}

/// A directory with `n` copies of the calendar-failure scenario, named `copy_1` … `copy_n`.
fn copies(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("scenarios/calendar_failure.toml").unwrap();
    for i in 1..=n {
        std::fs::write(dir.path().join(format!("copy_{i}.toml")), &text).unwrap();
    }
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn shards_split_the_scenarios_without_overlap() {
    let dir = copies(5);
    let names = |shard: &str| -> Vec<String> {
        let output = trace_harness(&[
            "run",
            dir.path().to_str().unwrap(),
            "--shard",
            shard,
            "--format",
            "tree",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .filter_map(|l| l.strip_prefix("PASS "))
            .map(str::to_owned)
            .collect()
    };
    let (first, second) = (names("1/2"), names("2/2"));
    assert_eq!(first, ["copy_1", "copy_3", "copy_5"]);
    assert_eq!(second, ["copy_2", "copy_4"]);
    let output = trace_harness(&["run", "--shard", "3/2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("expected K/N"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn junit_is_well_formed_xml_listing_every_scenario() {
    let dir = copies(3);
    let out = tempfile::tempdir().unwrap();
    let output = trace_harness(&[
        "run",
        dir.path().to_str().unwrap(),
        "--format",
        "junit",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let xml = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let cases: Vec<&str> = document
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(cases, ["copy_1", "copy_2", "copy_3"]);
    assert!(stdout(&output).contains("3 passed, 0 failed"));
}

#[test]
fn junit_failures_carry_the_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("scenarios/calendar_failure.toml").unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        text.replace("== 120ms", "== 121ms"),
    )
    .unwrap();
    let output = trace_harness(&["run", dir.path().to_str().unwrap(), "--format", "junit"]);
    assert_eq!(output.status.code(), Some(1));
    let xml = stdout(&output);
    let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let failure = document
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a <failure> element");
    assert!(
        failure
            .text()
            .unwrap_or_default()
            .contains("expected: duration == 121ms"),
        "{xml}"
    );
}

#[test]
fn json_output_parses_and_describes_the_replay() {
    let output = trace_harness(&["run", "scenarios/calendar_failure.toml", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let documents: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let replay = &documents[0];
    assert_eq!(replay["scenario"], "calendar_failure");
    assert_eq!(replay["passed"], true);
    assert_eq!(replay["spans"].as_array().map(Vec::len), Some(4));
    assert_eq!(replay["spans"][3]["follows_from"][0], "span_003");
    // Every line, `debug` ones too, each with its own level, time and text.
    let logs = replay["logs"].as_array().unwrap();
    let job = logs
        .iter()
        .find(|l| l["op"] == "webhook_execution")
        .expect("the job's line");
    assert_eq!(
        job["line"],
        "[trace:trace_1 span:span_004 op:webhook_execution] Webhook executed 5 minutes later"
    );
    assert_eq!(
        (&job["level"], &job["at_us"]),
        (&"INFO".into(), &300_080_000.into())
    );
    assert!(logs.iter().any(|l| l["level"] == "DEBUG"));
    assert!(logs.iter().all(|l| l["line"]
        .as_str()
        .unwrap()
        .ends_with(l["message"].as_str().unwrap())));
    // `run --help` names exactly the keys a document has.
    let help = stdout(&trace_harness(&["run", "--help"]));
    let listed: std::collections::BTreeSet<String> = help
        .split("A document: ")
        .nth(1)
        .and_then(|rest| rest.split('\n').next())
        .unwrap_or_else(|| panic!("no key list in:\n{help}"))
        .split(", ")
        .map(|key| key.trim().to_owned())
        .collect();
    let keys: std::collections::BTreeSet<String> = replay
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(listed, keys);
}

#[test]
fn list_and_explain_describe_scenarios() {
    let output = trace_harness(&["list"]);
    assert!(output.status.success());
    assert!(
        stdout(&output).starts_with("calendar_failure"),
        "{}",
        stdout(&output)
    );
    let output = trace_harness(&["explain", "scenarios/calendar_failure.toml"]);
    let text = stdout(&output);
    assert!(output.status.success());
    assert!(
        text.contains("request 1: 403 rateLimitExceeded after 120ms"),
        "{text}"
    );
    assert!(text.contains("+5m  run the webhooks cron"), "{text}");
    assert!(text.contains("duration == 120ms"), "{text}");
    // The service's settings, the event types and each booking's options are said too.
    let text = stdout(&trace_harness(&["explain", "scenarios/performance.toml"]));
    assert!(
        text.contains("Service:\n  every store transaction takes 50ms\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Event types:\n  321: price 2500 usd (paid through Stripe), reminder e-mails\n"
        ),
        "{text}"
    );
    let text = stdout(&trace_harness(&[
        "explain",
        "scenarios/seated_attendees.toml",
    ]));
    assert!(
        text.contains("2026-03-02T10:00:00Z to 2026-03-02T10:30:00Z, 3 attendees, the address of attendee 2 refused"),
        "{text}"
    );
    assert!(text.contains("events matching /"), "{text}");
    let text = stdout(&trace_harness(&["explain", "scenarios/webhook_crash.toml"]));
    assert!(
        text.contains("       +5m  run the webhooks cron; the service dies at after_send in the call's job 1 and restarts on the same database\n"),
        "{text}"
    );
    let output = trace_harness(&["explain", "scenarios/nope.toml"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn side_by_side_shows_what_tracing_adds() {
    let output = trace_harness(&["run", "--format", "request-ids", "--side-by-side"]);
    let text = stdout(&output);
    assert!(text.contains("request IDs only"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("Webhook executed"))
        .expect("the webhook row");
    assert!(row.starts_with("[Request ID: "), "{row}");
    assert!(
        row.contains("   [trace:trace_1 span:span_004 op:webhook_execution]"),
        "{row}"
    );
}

#[test]
fn with_tracing_off_every_scenario_behaves_the_same_and_mock_assertions_still_apply() {
    let output = trace_harness(&[
        "run",
        "scenarios/",
        "--no-tracing",
        "--format",
        "request-ids",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("[trace:"), "{text}");
    assert!(text.contains("[Request ID: "), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string("scenarios/calendar_failure.toml").unwrap();
    let wrong = scenario.replacen(
        "mock = \"google\"\ncount = 1",
        "mock = \"google\"\ncount = 2",
        1,
    );
    assert_ne!(scenario, wrong);
    std::fs::write(dir.path().join("wrong_count.toml"), wrong).unwrap();
    let output = trace_harness(&["run", dir.path().to_str().unwrap(), "--no-tracing"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("expected: 2 requests"), "{text}");
}

/// A scenario whose replay cannot run: its Stripe step names a PaymentIntent nobody created.
const CANNOT_RUN: &str = "description = \"broken\"\nseed = 1\n\n[[timeline]]\nat = \"0s\"\nstripe = { event = \"payment_intent.succeeded\" }\n";

/// A directory holding `broken.toml` (cannot run) and `good.toml` (passes).
fn broken_and_good() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.toml"), CANNOT_RUN).unwrap();
    std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
    dir
}

#[test]
fn json_on_standard_output_keeps_replays_that_could_not_run() {
    let dir = broken_and_good();
    let output = trace_harness(&["run", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let documents: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let documents = documents.as_array().unwrap();
    assert_eq!(documents.len(), 2, "{documents:?}");
    assert_eq!(documents[0]["scenario"], "broken");
    assert!(
        documents[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("names PaymentIntent #1")),
        "{documents:?}"
    );
    assert_eq!(documents[1]["scenario"], "good");
    assert_eq!(documents[1]["passed"], true);
}

#[test]
fn out_writes_no_empty_export_for_a_replay_that_could_not_run_and_reports_it_once() {
    let scenarios = broken_and_good();
    for (format, ext) in [
        ("ndjson", "ndjson"),
        ("otlp-json", "otlp.json"),
        ("html", "html"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let output = trace_harness(&[
            "run",
            scenarios.path().to_str().unwrap(),
            "--format",
            format,
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(1), "{format}: {all}");
        assert!(
            !out.path().join(format!("broken.{ext}")).exists(),
            "{format}: a file was written for a replay that could not run"
        );
        let good = std::fs::read_to_string(out.path().join(format!("good.{ext}"))).unwrap();
        assert!(!good.is_empty(), "{format}");
        assert_eq!(
            all.matches("ERROR broken: ").count(),
            1,
            "{format}: the error is not reported exactly once:\n{all}"
        );
    }
}

#[test]
fn vary_latency_varies_every_route_of_a_mock() {
    // The reminder's 100ms are one store transaction (50ms) and the e-mail batch route (50ms).
    let plain = trace_harness(&["run", "scenarios/performance.toml", "--format", "json"]);
    let varied = trace_harness(&[
        "run",
        "scenarios/performance.toml",
        "--repeat",
        "3",
        "--vary-latency",
        "--format",
        "json",
    ]);
    let reminder_us = |output: &Output| -> Vec<u64> {
        let documents: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
        documents
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["spans"].as_array().unwrap().clone())
            .filter(|s| s["op"] == "schedule_mandatory_reminder")
            .map(|s| s["duration_us"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(reminder_us(&plain), [100_000]);
    let varied = reminder_us(&varied);
    assert_eq!(varied.len(), 3);
    assert!(
        varied.iter().all(|us| *us != 100_000),
        "the mail_batch route kept its latency: {varied:?}"
    );
}

#[test]
fn explain_lists_every_route_and_every_invariant() {
    let output = trace_harness(&["explain", "scenarios/performance.toml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("    route mail_batch\n      request 1: 201 after 50ms\n"),
        "{text}"
    );
    let invariants = text.split("built-in invariants").nth(1).unwrap_or_default();
    for invariant in ["flows stay apart", "spans per trace"] {
        assert!(
            invariants.contains(invariant),
            "no `{invariant}` in:\n{text}"
        );
    }
}

/// How many scenario files `scenarios/` holds: what `run scenarios/` replays.
fn scenario_files() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count()
}

/// What a run leaves in a CI log: the summary, and nothing per replay.
#[test]
fn in_ci_run_prints_the_summary_and_no_line_per_replay() {
    let output = trace_harness(&["run", "scenarios/", "--repeat", "20", "--format", "ndjson"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{message}");
    assert!(!message.contains("replayed"), "{message}");
    // A run long enough may add a line every few seconds; nothing else precedes the summary.
    let lines: Vec<&str> = message
        .lines()
        .filter(|line| !line.ends_with(" replays done"))
        .collect();
    let summary = format!("{} passed, 0 failed", 20 * scenario_files());
    assert_eq!(lines, [summary.as_str()], "{message}");
    assert_eq!(
        stdout(&output).lines().next().map(|l| l.starts_with('{')),
        Some(true)
    );
}

/// Runs the binary on a pseudo-terminal, outside CI, and returns what it wrote there (standard
/// output discarded). The terminal comes from util-linux's `script`; without it the test fails.
fn on_a_terminal(args: &[&str]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_trace-harness"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect();
    let command = format!("{} > /dev/null", quoted.join(" "));
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CI")
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` runs, to give the binary a pseudo-terminal");
    let terminal = stdout(&output);
    assert!(output.status.success(), "{terminal}{}", stderr(&output));
    terminal
}

#[test]
fn on_a_terminal_run_draws_a_progress_bar_instead_of_lines() {
    let terminal = on_a_terminal(&["run", "scenarios/", "--repeat", "20", "--format", "ndjson"]);
    assert!(
        terminal.contains('█') || terminal.contains('░'),
        "no bar in {terminal:?}"
    );
    let replays = 20 * scenario_files();
    assert!(
        terminal.contains(&format!("/{replays} ")),
        "no count in {terminal:?}"
    );
    assert!(!terminal.contains("replayed"), "{terminal:?}");
    assert!(
        terminal.contains(&format!("{replays} passed, 0 failed")),
        "{terminal:?}"
    );
}

#[test]
fn a_filter_or_shard_that_matches_nothing_is_bad_input_not_a_green_run() {
    let output = trace_harness(&["run", "scenarios/", "--filter", "nomatch"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("no scenario's name contains `nomatch` in `scenarios/`: nothing to replay"),
        "{}",
        stderr(&output)
    );
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = trace_harness(&["run", empty.path().to_str().unwrap_or_default()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the directory holds no *.toml scenario files"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn arguments_that_cannot_work_together_are_refused_before_any_replay() {
    for (args, message) in [
        (
            &["run", "scenarios/", "--format", "html"][..],
            "--format html writes one page per replay: give --out DIR",
        ),
        (
            &["run", "scenarios/", "--side-by-side"][..],
            "--side-by-side shows the request-ID view beside the traced one: it needs --format request-ids",
        ),
    ] {
        let output = trace_harness(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
        // Nothing was replayed: no summary line.
        assert!(!stdout(&output).contains("passed"), "{args:?}: {}", stdout(&output));
    }
}

#[test]
fn files_written_with_out_are_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = trace_harness(&[
        "run",
        "scenarios/calendar_failure.toml",
        "--format",
        "junit",
        "--out",
        out.path().to_str().unwrap_or_default(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mode = std::fs::metadata(out.path().join("junit.xml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "{mode:o}");
}

#[test]
fn overhead_says_what_its_figures_are_and_refuses_a_scenario_it_cannot_repeat() {
    let output = trace_harness(&[
        "overhead",
        "--scenario",
        "scenarios/slow_payment.toml",
        "--flows",
        "25",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("scenario `slow_payment` has stripe, restart or crash steps"),
        "{}",
        stderr(&output)
    );
    let output = trace_harness(&["overhead", "--flows", "25", "--noise-floor"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(text.contains("\n  untraced A "), "{text}");
    assert!(text.contains("\n  untraced B "), "{text}");
    assert!(!text.contains("\n  traced "), "{text}");
    assert!(
        text.contains("(median of the per-round traced/untraced ratios "),
        "{text}"
    );
    // A service of its own, its own CPU time measured.
    let output = trace_harness(&[
        "overhead",
        "--flows",
        "25",
        "--service",
        "examples/own-service/service.toml",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        text.contains(
            "flow against examples/own-service/service.toml (its own CPU time): 25 flows per side"
        ),
        "{text}"
    );
    assert!(text.contains("\n  traced "), "{text}");
    let output = trace_harness(&["overhead", "--service", "no/such/service.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no/such/service.toml: cannot read the service file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_readme_lists_each_mock_kinds_error_reasons_as_the_mocks_answer_them() {
    use trace_harness::mocks::MockKind;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    for kind in MockKind::ALL {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` | ", kind.name())))
            .unwrap_or_else(|| panic!("no README row for {}", kind.name()));
        let listed: Vec<&str> = row
            .split(" | ")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(" |")
            .split(", ")
            .filter_map(|r| r.strip_prefix('`')?.strip_suffix('`'))
            .collect();
        assert_eq!(listed, kind.error_reasons(), "{row}");
    }
}

/// `run --format ndjson` of `scenarios` into a file in `dir`, and the trace ids the tree's
/// headers show, in order.
fn ndjson_of(dir: &Path, scenarios: &[&str]) -> (String, Vec<String>) {
    let mut args = vec!["run"];
    args.extend(scenarios);
    let tree = trace_harness(&[&args[..], &["--format", "tree"]].concat());
    assert_eq!(tree.status.code(), Some(0), "{}", stderr(&tree));
    let ids: Vec<String> = stdout(&tree)
        .lines()
        .filter_map(|line| line.split_once(" trace_id=").map(|(_, id)| id.to_owned()))
        .collect();
    let ndjson = trace_harness(&[&args[..], &["--format", "ndjson"]].concat());
    assert_eq!(ndjson.status.code(), Some(0), "{}", stderr(&ndjson));
    let path = dir.join("logs.ndjson");
    std::fs::write(&path, &ndjson.stdout).unwrap();
    (path.to_string_lossy().into_owned(), ids)
}

#[test]
fn the_tree_shows_each_trace_id_once_and_query_takes_it_its_prefix_or_its_alias() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, ids) = ndjson_of(dir.path(), &["scenarios/card_declined.toml"]);
    assert_eq!(ids.len(), 2, "two traces, each id once: {ids:?}");
    let query = |trace: &str| {
        let output = trace_harness(&["query", "trace-operations", trace, &logs, "--output", "csv"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{trace}: {}",
            stderr(&output)
        );
        stdout(&output)
    };
    let second = query(&ids[1]);
    assert!(
        second.contains("Payment could not be initiated"),
        "{second}"
    );
    assert!(!second.contains("Webhook executed"), "{second}");
    assert_eq!(query("trace_2"), second);
    assert_eq!(query(&ids[1][..8]), second);
    assert_eq!(query(&ids[1].to_uppercase()), second);
    assert!(query("trace_1").contains("Webhook executed 5 minutes later"));
    // The logs view names the traces too, once each.
    let view = trace_harness(&["run", "scenarios/card_declined.toml", "--format", "logs"]);
    for id in &ids {
        assert_eq!(stdout(&view).matches(id.as_str()).count(), 1, "{id}");
    }
}

#[test]
fn a_trace_that_names_nothing_is_bad_input_not_an_empty_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, ids) = ndjson_of(
        dir.path(),
        &[
            "scenarios/calendar_failure.toml",
            "scenarios/slow_payment.toml",
        ],
    );
    let rejected = |trace: &str, fragments: &[&str]| {
        let output = trace_harness(&["query", "trace-operations", trace, &logs]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{trace}: {}",
            stdout(&output)
        );
        let message = stderr(&output);
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{trace}: no `{fragment}` in {message}"
            );
        }
        assert!(stdout(&output).is_empty(), "{trace}");
    };
    rejected(
        "trace_2",
        &["no trace `trace_2`", "calendar_failure trace_1 = ", &ids[0]],
    );
    rejected(
        "0123456789abcdef0123456789abcdef",
        &["no trace `0123456789abcdef0123456789abcdef`", "2 trace(s)"],
    );
    // Each replay has a trace_1: the alias is ambiguous in a file of two replays.
    rejected(
        "trace_1",
        &[
            "names a trace in each of 2 replays",
            "calendar_failure = ",
            "slow_payment = ",
        ],
    );
    rejected("span_001", &["is not a trace id"]);
}

/// Replays end in any order on many threads; what a run prints does not show it. A long
/// run's output is streamed through a window of a few replays per job, so a run on one thread
/// and on eight cut it at different places: the bytes must not differ, the JSON array must be
/// the one pretty-printed document, and JUnit must list every case in order.
#[test]
fn one_job_or_eight_print_the_same_bytes_in_every_format() {
    let dir = broken_and_good();
    let text = std::fs::read_to_string("scenarios/calendar_failure.toml").unwrap();
    let failing = text.replacen("status = \"error\"", "status = \"ok\"", 1);
    std::fs::write(dir.path().join("wrong.toml"), failing).unwrap();
    let path = dir.path().to_str().unwrap();
    let repeated = |format: &str, jobs: &str| {
        let args = [
            "run", path, "--repeat", "7", "--format", format, "--jobs", jobs,
        ];
        let output = trace_harness(&args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        (stdout(&output), stderr(&output))
    };
    for format in ["json", "junit", "ndjson", "otlp-json", "all", "logs"] {
        let (one, eight) = (repeated(format, "1"), repeated(format, "8"));
        assert!(one == eight, "{format}: --jobs 1 and --jobs 8 differ");
        let all = format!("{}{}", one.0, one.1);
        assert!(all.contains("7 passed, 14 failed\n"), "{format}: {all}");
        let names = ["broken", "good", "wrong"]
            .iter()
            .flat_map(|name| (1..=7).map(move |i| format!("{name}-{i}")));
        match format {
            "json" => {
                let documents: serde_json::Value = serde_json::from_str(&one.0).unwrap();
                let pretty = serde_json::to_string_pretty(&documents).unwrap() + "\n";
                assert!(one.0 == pretty, "not one pretty-printed array");
                let scenarios: Vec<_> = (documents.as_array().unwrap().iter())
                    .map(|d| d["scenario"].as_str().unwrap_or_default().to_owned())
                    .collect();
                assert_eq!(scenarios, names.collect::<Vec<_>>());
            }
            "junit" => {
                let xml = roxmltree::Document::parse(&one.0).unwrap();
                let cases: Vec<_> = (xml.descendants())
                    .filter(|n| n.has_tag_name("testcase"))
                    .map(|n| n.attribute("name").unwrap_or_default().to_owned())
                    .collect();
                assert_eq!(cases, names.collect::<Vec<_>>());
            }
            _ => {}
        }
    }
}
