//! Personal data in outputs: attendee names and e-mail addresses are redacted by default in
//! every format the CLI writes, shown with `--show-personal-data`, and assertions still see the
//! real values.

use std::process::Command;

/// An attendee whose address and name come back inside Google's error message: the service
/// logs it, so it reaches the span status, the log views and every export.
const SCENARIO: &str = r#"
description = "personal data echoed by a third party"
seed = 3

[[event_types]]
id = 7
seats = 5
reminders = true

[mocks.google]
kind = "google_calendar"
respond = [{ status = 400, body = '{"error": {"message": "Invalid attendee email: eve@example.com (Eve Adams); cc ann@other.example"}}' }]

[mocks.hook]
kind = "webhook_subscriber"

[mocks.email]
kind = "email_provider"

[[timeline]]
at = "0s"
book = { event_type_id = 7, title = "Call", attendee = { name = "Eve Adams", email = "eve@example.com" } }

[[timeline]]
at = "1h"
cron = "webhooks"

[[timeline]]
at = "1h"
cron = "reminders"

[[expect]]
name = "assertions see the real address"
select = 'span[op="calendar_event_creation"]'
log = "eve@example.com (Eve Adams)"
"#;

const FORMATS: [&str; 9] = [
    "all",
    "json",
    "ndjson",
    "otlp-json",
    "junit",
    "html",
    "timings",
    "request-ids",
    "logs",
];

fn run(dir: &std::path::Path, format: &str, show: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trace-harness"));
    command
        .arg("run")
        .arg(dir.join("personal.toml"))
        .args(["--format", format]);
    if show {
        command.arg("--show-personal-data");
    }
    let output = command.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success(), "{format}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn names_and_addresses_are_redacted_in_every_format_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("personal.toml"), SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    for format in FORMATS {
        let shown = run(dir.path(), format, false);
        for personal in ["eve@example.com", "Eve Adams", "ann@other.example"] {
            assert!(
                !shown.contains(personal),
                "{format} shows {personal}:\n{shown}"
            );
        }
    }
    let logs = run(dir.path(), "logs", false);
    assert!(
        logs.contains(
            "Invalid attendee email: [redacted email] ([redacted name]); cc [redacted email]"
        ),
        "{logs}"
    );
    let logs = run(dir.path(), "logs", true);
    assert!(
        logs.contains("Invalid attendee email: eve@example.com (Eve Adams); cc ann@other.example"),
        "{logs}"
    );
}
