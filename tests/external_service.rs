//! The harness's own booking service as a service it did not write: `trace-harness serve
//! --contract` started per replay from a `service.toml`, its spans received over OTLP/HTTP.
//! The same scenario files give the same outcome as the in-process replay: the same span
//! tree, seed log view, timings view and verdict; and each planted bug fails the same check.

mod common;

use std::path::Path;

use common::external::{scenario, service_file};
use trace_harness::contract::PlantedBug;
use trace_harness::judge;
use trace_harness::report::tree;
use trace_harness::runner::{replay, replay_against, ReplayOptions, ServiceSpec};

/// The service file the README shows, with the test's build of the harness as its program.
fn own_service() -> ServiceSpec {
    service_file("examples/own-service/service.toml")
}

#[test]
fn every_scenario_replays_externally_as_it_does_in_process() {
    common::external::replays_like_in_process(&own_service());
}

#[test]
fn crashes_inside_jobs_kill_the_external_process_at_the_same_points_with_the_same_outcome() {
    common::external::crashes_like_in_process(&own_service());
}

#[test]
fn each_planted_bug_fails_externally_with_the_in_process_diagnostic() {
    common::external::bugs_caught_like_in_process(&own_service());
}

#[test]
fn concurrent_flows_against_one_external_process_keep_to_their_own_traces() {
    common::external::flows_keep_apart(&own_service(), 200);
}

#[test]
fn untraced_the_external_service_answers_alike_and_propagates_nothing() {
    common::external::untraced_like_in_process(
        &own_service(),
        common::external::Answers::InProcess,
    );
}

#[test]
fn log_only_every_scenario_passes_on_its_lines_and_says_what_lines_cannot_show() {
    common::external::passes_log_only(&service_file("examples/own-service/logs-only.toml"));
}

#[test]
fn log_only_the_lines_catch_lost_job_context_and_dropped_traceparents() {
    let service = service_file("examples/own-service/logs-only.toml");
    let scenario = scenario("webhook_retries");
    let verdict_with = |bug| {
        let mut broken = scenario.clone();
        broken.service.bugs = vec![bug];
        let outcome = replay_against(&broken, ReplayOptions::default(), Some(&service))
            .unwrap_or_else(|e| panic!("{bug:?}: {e}"));
        judge(&outcome, &broken.expect)
    };
    let messages = |verdict: &trace_harness::Verdict| {
        verdict
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.invariant, v.message))
            .collect::<Vec<_>>()
    };

    let orphaned = messages(&verdict_with(PlantedBug::OrphanJobs));
    assert!(
        orphaned.iter().any(|m| m.starts_with("one-trace-per-flow: 1 span(s) belong to no booking flow's trace (first: `webhook_execution`)")),
        "{orphaned:#?}"
    );
    let dropped = messages(&verdict_with(PlantedBug::DropTraceparent));
    assert!(
        dropped.iter().any(|m| m.starts_with("mock-requests-carry-context: POST /webhook to mock `subscriber` carried no valid traceparent")),
        "{dropped:#?}"
    );
    // Links are what lines cannot show: the replay passes and says so, never silently.
    let unlinked = verdict_with(PlantedBug::UnlinkedJobs);
    assert!(unlinked.passed(), "{:#?}", messages(&unlinked));
    assert!(
        unlinked
            .unchecked
            .iter()
            .any(|u| u.check == "async-after-cause"),
        "{:#?}",
        unlinked.unchecked
    );
}

/// `trace-harness run ARGS --service SERVICE` as a user runs it.
fn run_against(service: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--service", service.to_str().unwrap_or_default()]);
    trace_harness(&all)
}

/// `trace-harness` as a user runs it.
fn trace_harness(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "true")
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn run_with_the_readme_service_file_passes_every_scenario() {
    let output = run_against(
        Path::new("examples/own-service/service.toml"),
        &["scenarios/", "--format", "logs"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary = format!("{} passed, 0 failed", common::external::scenarios().len());
    assert!(stdout.contains(&summary), "{stdout}");
    assert!(
        stdout.contains("op:payment_success_processing] Payment success after 28 minutes"),
        "{stdout}"
    );
}

/// Runs one scenario against a service file with `text`, expecting exit 2 and `expected` in
/// the message.
fn service_fails_to_start(text: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("service.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let output = run_against(&path, &["scenarios/calendar_failure.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "no `{part}` in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_service_that_cannot_start_is_bad_input_with_its_command_status_and_stderr() {
    service_fails_to_start(
        "command = [\"/nonexistent/booking-service\"]\n",
        &["cannot run the service `/nonexistent/booking-service`"],
    );
    service_fails_to_start(
        "command = [\"sh\", \"-c\", \"echo cannot open database >&2; exit 3\"]\n",
        &[
            "the service `sh -c echo cannot open database >&2; exit 3` exited before it was ready with exit status: 3",
            "  cannot open database",
        ],
    );
    service_fails_to_start(
        "command = [\"sh\", \"-c\", \"echo starting >&2; exec sleep 30\"]\n\
         ready = { stdout = \"listening on\", timeout = \"300ms\" }\n",
        &[
            "was not ready after 300ms (a line containing `listening on` on stdout)",
            "  starting",
        ],
    );
    service_fails_to_start(
        "command = [\"x\"]\nready = { stdout = 1 }\n",
        &["service.toml:2:20:"],
    );
}

/// `dir/service.toml` for the own service started by `sh -c "<before>; exec serve --contract"`,
/// ready at `listening on`, with `more` appended: a service that misbehaves as `before` says.
fn wrapped_service(dir: &Path, before: &str, more: &str) -> std::path::PathBuf {
    let path = dir.join("service.toml");
    let script = format!("{before}; exec \"$0\" serve --contract");
    std::fs::write(
        &path,
        format!(
            "command = [\"sh\", \"-c\", {script:?}, {:?}]\nready = {{ stdout = \"listening on\" }}\n{more}",
            env!("CARGO_BIN_EXE_trace-harness")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn a_service_that_dies_mid_replay_fails_that_replay_with_its_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // With a Stripe mock (slow_payment) it is ready, then gone before the booking arrives;
    // without one (calendar_failure) it is the own service.
    let path = wrapped_service(
        dir.path(),
        "if [ -n \"$STRIPE_API_URL\" ]; then echo listening on; echo out of memory >&2; exit 9; fi",
        "",
    );
    let output = run_against(
        &path,
        &[
            "scenarios/calendar_failure.toml",
            "scenarios/slow_payment.toml",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("exited during the replay with exit status: 9"),
        "{all}"
    );
    assert!(all.contains("  out of memory"), "{all}");
    // The other replay, with its own process, is unaffected.
    assert!(stdout.contains("PASS calendar_failure"), "{all}");
    assert!(stdout.contains("1 passed, 1 failed"), "{all}");
}

/// A service that first sends the receiver one OTLP/HTTP request with `body` (as
/// `content_type`), then becomes the own service: what a service's start-up work, a second
/// service sharing its exporter, or a broken exporter sends.
fn service_sending_first(dir: &Path, content_type: &str, body: &str) -> ServiceSpec {
    std::fs::write(dir.join("body"), body).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("content-type"), content_type).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("send-first.sh"),
        r#"set -e
hp=${OTEL_EXPORTER_OTLP_ENDPOINT#http://}
exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}"
body=$(cat body)
printf 'POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
  "$hp" "$(cat content-type)" "${#body}" "$body" >&3
cat <&3 >/dev/null
exec "$1" serve --contract
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("service.toml");
    let text = format!(
        "command = [\"bash\", \"send-first.sh\", {:?}]\nready = {{ stdout = \"listening on\" }}\nquiet = \"0s\"\n",
        env!("CARGO_BIN_EXE_trace-harness")
    );
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    ServiceSpec::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// One span in OTLP/JSON, as an SDK encodes it.
fn otlp_json_span(service: &str, trace_id: &str, name: &str) -> String {
    // Span ids are unique per trace here: a span id seen twice is kept once.
    let span_id = &trace_id[..16];
    format!(
        r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{trace_id}","spanId":"{span_id}","name":"{name}","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"}}]}}]}}"#
    )
}

#[test]
fn traces_the_replay_did_not_cause_are_kept_apart_and_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let body = format!(
        r#"{{"resourceSpans":[{},{}]}}"#,
        otlp_json_span("cal.com", "5b8efff798038103d269b633813fc60c", "db.migrate"),
        otlp_json_span(
            "payments-worker",
            "6c9f00a8a9149214e37ac744924ed71d",
            "poll"
        ),
    );
    let service = service_sending_first(dir.path(), "application/json", &body);
    let scenario = scenario("calendar_failure");
    let inside = replay(&scenario, ReplayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let outside = replay_against(&scenario, ReplayOptions::default(), Some(&service))
        .unwrap_or_else(|e| panic!("{e}"));
    let kept: Vec<(String, String, usize, String)> = outside
        .foreign
        .iter()
        .map(|f| {
            (
                f.service.clone(),
                f.trace_id.to_string(),
                f.spans,
                f.first.clone(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (
                "cal.com".to_owned(),
                "5b8efff798038103d269b633813fc60c".to_owned(),
                1,
                "db.migrate".to_owned()
            ),
            (
                "payments-worker".to_owned(),
                "6c9f00a8a9149214e37ac744924ed71d".to_owned(),
                1,
                "poll".to_owned()
            ),
        ]
    );
    // Never mixed into a flow: the judged spans are the in-process replay's.
    assert_eq!(tree(&outside, &[]), tree(&inside, &[]));
    assert!(judge(&outside, &scenario.expect).passed());

    let output = run_against(
        &dir.path().join("service.toml"),
        &["scenarios/calendar_failure.toml"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("  kept apart, not judged: trace 5b8efff798038103d269b633813fc60c from `cal.com`, 1 span(s), first `db.migrate`\n"),
        "{stdout}"
    );
}

#[test]
fn a_service_that_sends_malformed_telemetry_fails_its_replay_saying_so() {
    let cases = [
        // Unreadable: the request is refused whole (400).
        (
            "application/json",
            r#"{"resourceSpans":[{"scopeSpans":"#.to_owned(),
            "1 request(s) unreadable, 0 span(s) rejected",
        ),
        // Readable, but a trace id of 15 bytes: the span is rejected (partial success).
        (
            "application/json",
            format!(
                r#"{{"resourceSpans":[{}]}}"#,
                otlp_json_span("cal.com", "5b8efff798038103d269b633813fc6", "db.migrate")
            ),
            "0 request(s) unreadable, 1 span(s) rejected",
        ),
    ];
    for (content_type, body, expected) in cases {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        service_sending_first(dir.path(), content_type, &body);
        let output = run_against(
            &dir.path().join("service.toml"),
            &["scenarios/calendar_failure.toml"],
        );
        let all = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(
            all.contains(&format!("the service sent malformed telemetry: {expected}")),
            "{all}"
        );
    }
}

/// A loopback port nothing listens on now.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port()
}

#[test]
fn a_service_already_running_is_replayed_at_its_url_with_the_environment_print_env_gives() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let [service_port, receiver, google, subscriber] = [(); 4].map(|()| unused_port());
    let path = dir.path().join("running.toml");
    std::fs::write(
        &path,
        format!(
            "url = \"http://127.0.0.1:{service_port}\"\nreceiver = \"127.0.0.1:{receiver}\"\nquiet = \"0s\"\n\
             [mocks]\ngoogle_calendar = \"127.0.0.1:{google}\"\nwebhook_subscriber = [\"127.0.0.1:{subscriber}\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = path.to_str().unwrap_or_default();
    let scenario = "scenarios/calendar_failure.toml";

    // Nothing runs there yet: bad input, saying what to do.
    let output = trace_harness(&["run", scenario, "--service", path]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no service answers at http://127.0.0.1:{service_port}"
        )),
        "{stderr}"
    );

    // The environment to start it with, as `export` lines.
    let output = trace_harness(&["run", scenario, "--service", path, "--print-env"]);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{printed}");
    let mut vars: Vec<(String, String)> = printed
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
            let value = shlex::split(value)
                .unwrap_or_else(|| panic!("{value}"))
                .concat();
            (name.to_owned(), value)
        })
        .collect();
    let var = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in:\n{printed}"))
    };
    assert_eq!(var("PORT"), service_port.to_string());
    assert_eq!(
        var("GOOGLE_CALENDAR_API_URL"),
        format!("http://127.0.0.1:{google}")
    );
    assert_eq!(
        var("WEBHOOK_SUBSCRIBER_URLS"),
        format!("[\"http://127.0.0.1:{subscriber}/webhook\"]")
    );
    assert_eq!(
        var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        format!("http://127.0.0.1:{receiver}")
    );
    // A database of this test's own.
    vars.retain(|(k, _)| k != "DATABASE_PATH");
    vars.push((
        "DATABASE_PATH".to_owned(),
        dir.path().join("booking.sqlite3").display().to_string(),
    ));

    // Started by hand, then replayed against twice: the service outlives its replays.
    let mut service = std::process::Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(["serve", "--contract"])
        .envs(vars)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = service.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.starts_with("listening on"), "{line}");
    let inside = trace_harness(&["run", scenario, "--format", "logs"]);
    let outside = trace_harness(&["run", scenario, "--format", "logs", "--service", path]);
    let again = trace_harness(&["run", "scenarios/webhook_retries.toml", "--service", path]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = service.wait();
    let outside_text = String::from_utf8_lossy(&outside.stdout);
    assert_eq!(outside.status.code(), Some(0), "{outside_text}");
    assert_eq!(outside_text, String::from_utf8_lossy(&inside.stdout));
    // Another scenario on the same addresses runs too (its verdict is not this test's point:
    // the service was started with calendar_failure's event types).
    let again_text = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(again_text.contains("== webhook_retries"), "{again_text}");
}

#[test]
fn a_service_already_running_cannot_be_restarted_or_crashed_and_needs_an_address_per_mock() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let path = dir.path().join("running.toml");
    std::fs::write(
        &path,
        format!(
            "url = \"http://127.0.0.1:{port}\"\nreceiver = \"127.0.0.1:{}\"\n",
            unused_port()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let scenario = dir.path().join("restart.toml");
    std::fs::write(
        &scenario,
        "description = \"a restart\"\nseed = 1\n\n[[timeline]]\nat = \"0s\"\nrestart = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Something listens (the test's socket), so the harness gets as far as the restart.
    let output = run_against(&path, &[scenario.to_str().unwrap_or_default()]);
    // Its [mocks] give no address for calendar_failure's Google Calendar mock.
    let unplaced = run_against(&path, &["scenarios/calendar_failure.toml"]);
    // A crash would kill it for good: refused before any step runs.
    let crash = dir.path().join("crash.toml");
    std::fs::write(
        &crash,
        "description = \"a crash\"\nseed = 1\n\n[[timeline]]\nat = \"0s\"\nbook = { event_type_id = 1 }\n\n[[timeline]]\nat = \"5m\"\ncron = \"webhooks\"\ncrash = \"after_send\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let crashed = run_against(&path, &[crash.to_str().unwrap_or_default()]);
    drop(listener);
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert_eq!(crashed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("the crash at 5m needs a service the harness starts, to start it again; the one at http://127.0.0.1:{port} is already running")),
        "{stderr}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a restart step needs a service the harness starts"),
        "{stderr}"
    );
    let stderr = String::from_utf8_lossy(&unplaced.stderr);
    assert_eq!(unplaced.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scenario `calendar_failure` has 1 `google_calendar` mock(s) and [mocks] gives 0 address(es) for them (mock `google` has none)"),
        "{stderr}"
    );
}

#[test]
fn telemetry_that_never_arrives_fails_the_replay_at_the_deadline_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The own service, exporting nothing: no span ever reaches the harness.
    let path = wrapped_service(
        dir.path(),
        "export OTEL_TRACES_EXPORTER=none",
        "deadline = \"300ms\"\n",
    );
    let output = run_against(&path, &["scenarios/calendar_failure.toml"]);
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("the telemetry of the step at 0s was still incomplete after 300ms; missing:"),
        "{all}"
    );
    assert!(
        all.contains("- the span serving the book request at 0s"),
        "{all}"
    );
}
