//! The export formats and what reads them back: NDJSON and the seed's three queries over it.
//! Expected values come from the replays themselves, never typed in.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use trace_harness::query::{self, QueryError};
use trace_harness::report::epoch::{parse_unix_us, Epoch};
use trace_harness::report::ndjson::{ndjson, ndjson_lines, NdjsonLine};
use trace_harness::runner::ReplayOutcome;
use trace_harness::vary;

const REPEAT: usize = 4;

/// `REPEAT` jittered replays of the calendar-failure scenario, anchored ten minutes apart, and
/// their NDJSON export in one file.
fn replays() -> (Vec<(ReplayOutcome, Epoch)>, tempfile::TempDir, PathBuf) {
    let scenario = common::load("calendar_failure");
    let epoch = Epoch::default();
    let outcomes: Vec<(ReplayOutcome, Epoch)> = (0..REPEAT)
        .map(|i| {
            let copy = vary::repetition(&scenario, i, REPEAT, true);
            let anchor = epoch.later_by(Duration::from_secs(600 * i as u64));
            (common::run_green(&copy), anchor)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.ndjson");
    let mut file = std::fs::File::create(&path).unwrap();
    for (outcome, anchor) in &outcomes {
        file.write_all(ndjson(outcome, *anchor).as_bytes()).unwrap();
    }
    (outcomes, dir, path)
}

#[test]
fn ndjson_lines_carry_the_seed_prefix_and_the_replay_timing() {
    let outcome = common::run_green(&common::load("calendar_failure"));
    let epoch = Epoch::default();
    let text = ndjson(&outcome, epoch);
    let lines: Vec<NdjsonLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, ndjson_lines(&outcome, epoch));
    assert_eq!(lines.len(), outcome.captured.logs.len());
    for (line, log) in lines.iter().zip(&outcome.captured.logs) {
        let span = log
            .span
            .expect("every line of a traced replay is in a span");
        assert_eq!(
            line.prefix,
            format!(
                "[trace:{} span:{} op:{}]",
                span.trace_id, span.span_id, span.op
            )
        );
        assert_eq!(line.operation.as_deref(), Some(span.op));
        assert_eq!(line.message, log.message);
        assert_eq!(line.level, log.level.as_str().to_lowercase());
        assert_eq!(
            parse_unix_us(&line.timestamp),
            Some(epoch.unix_us() + log.at.as_micros() as i64)
        );
    }
    assert!(lines.iter().any(|l| l.level == "error"));
}

#[test]
fn the_seeds_three_queries_answer_from_the_export() {
    let (outcomes, _dir, path) = replays();
    let files = [path];

    // Query 1: one trace's operations in time order.
    let (first, anchor) = &outcomes[1];
    let trace = first.captured.spans[0].trace_id.to_string();
    let result = query::trace_operations(&files, &trace).unwrap();
    let mut expected: Vec<_> = first.captured.logs.iter().collect();
    expected.sort_by_key(|l| l.at);
    let got: Vec<(String, String, String)> = result
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
                r[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|l| {
            (
                anchor.rfc3339_at(l.at),
                l.span.unwrap().op.to_owned(),
                l.message.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(result.stats.bad, 0);

    // Query 2: every replay's calendar error, joined to its booking's creation line.
    let result = query::failed_calendar_integrations(&files).unwrap();
    assert_eq!(result.rows.len(), REPEAT);
    for ((outcome, _), row) in outcomes.iter().zip(&result.rows) {
        let line_of = |op: &str, error: bool| {
            outcome
                .captured
                .logs
                .iter()
                .find(|l| {
                    l.span.is_some_and(|s| s.op == op)
                        && (l.level == tracing::Level::ERROR) == error
                })
                .unwrap()
        };
        assert_eq!(row[1], outcome.captured.spans[0].trace_id.to_string());
        assert_eq!(row[2], line_of("calendar_event_creation", true).message);
        assert_eq!(row[3], line_of("booking_creation", false).message);
    }

    // Query 3: booking start to last webhook execution, per 1-hour bin.
    let result = query::booking_duration(&files, Duration::from_secs(3600)).unwrap();
    let durations_ms: Vec<f64> = outcomes
        .iter()
        .map(|(o, _)| {
            let at = |op: &str| {
                o.captured
                    .logs
                    .iter()
                    .filter(|l| l.span.is_some_and(|s| s.op == op))
                    .map(|l| l.at)
                    .max()
                    .unwrap()
            };
            at("webhook_execution")
                .since(at("booking_creation"))
                .as_micros() as f64
                / 1e3
        })
        .collect();
    // Four replays ten minutes apart from 09:00 share the 09:00 bin.
    assert_eq!(result.rows.len(), 1, "{:?}", result.rows);
    let row = &result.rows[0];
    assert_eq!(row[0], "2026-03-02T09:00:00.000000Z");
    assert_eq!(row[1], REPEAT);
    let avg = durations_ms.iter().sum::<f64>() / REPEAT as f64;
    let max = durations_ms.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        (row[2].as_f64().unwrap() - avg).abs() < 0.001,
        "{row:?} vs {avg}"
    );
    assert_eq!(row[3].as_f64().unwrap(), (max * 1000.0).round() / 1000.0);
    // Jitter made the durations differ, so the summary summarises something.
    assert!(
        durations_ms.windows(2).any(|w| w[0] != w[1]),
        "{durations_ms:?}"
    );

    let csv = query::render(&result, query::Output::Csv);
    assert!(
        csv.starts_with("bin,bookings,avg_duration_ms,p95_duration_ms\r\n"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&query::render(&result, query::Output::Json)).unwrap();
    assert_eq!(json[0]["bookings"], REPEAT);
}

#[test]
fn bad_lines_are_reported_with_their_line_numbers_and_skipped() {
    let (outcomes, dir, path) = replays();
    let good = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(1, "not json at all");
    lines.insert(
        3,
        r#"{"timestamp":"yesterday","level":"info","prefix":"","message":"m"}"#,
    );
    let mixed = dir.path().join("mixed.ndjson");
    std::fs::write(&mixed, lines.join("\n")).unwrap();

    let result = query::failed_calendar_integrations(std::slice::from_ref(&mixed)).unwrap();
    assert_eq!(result.rows.len(), outcomes.len());
    let reported: Vec<u64> = result.stats.reported.iter().map(|b| b.line).collect();
    assert_eq!(reported, [2, 4]);
    assert!(result.stats.reported[1].reason.contains("yesterday"));
    assert!(result.stats.reported[0]
        .to_string()
        .starts_with(&format!("{}:2: ", mixed.display())));

    let garbage = dir.path().join("garbage.log");
    std::fs::write(&garbage, "foreign\nlines\n").unwrap();
    let error = query::booking_duration(&[garbage], Duration::from_secs(3600)).unwrap_err();
    assert!(
        matches!(error, QueryError::NothingUsable { lines: 2, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("garbage.log:1: not an NDJSON log record"),
        "{error}"
    );
}
