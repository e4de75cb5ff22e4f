//! Incident import: seed-format log lines (`[trace:… span:… op:…] message`) or the NDJSON
//! export → the trace they show (spans, order, errors, timings) → a scenario file whose replay
//! reproduces that operation pattern, with `# TODO` comments where the logs do not say enough.
//!
//! The scenario language can only ask for what the simulated service does, so the import maps
//! what it recognises (booking creation, the Google Calendar call and its error, webhook
//! deliveries and their timing) and lists everything else as a TODO.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::clock::Compact;
use crate::contract::{
    BOOKING_CREATION, CALENDAR_EVENT_CREATION, WEBHOOK_EXECUTION, WEBHOOK_SCHEDULING,
};
use crate::mocks::{google_error_body, MockKind};
use crate::query::BadLine;
use crate::report::epoch::parse_unix_us;
use crate::report::ndjson::NdjsonLine;
use crate::trace::{prefix_part, SeedLine, SeedLineError};

/// The operations this importer turns into scenario steps. Any other operation in the logs is
/// listed as not reproduced, even when the simulated service knows it, until a mapping exists.
pub const MAPPED_OPERATIONS: &[&str] = &[
    BOOKING_CREATION,
    CALENDAR_EVENT_CREATION,
    WEBHOOK_SCHEDULING,
    WEBHOOK_EXECUTION,
];

/// Lines read from one log file; past this the import stops with an error.
pub(crate) const MAX_LINES: usize = 1_000_000;
/// Bad lines listed one by one.
pub const MAX_REPORTED_BAD_LINES: usize = 50;

/// Why a log cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No line is in the seed format or the NDJSON export (an empty log included).
    #[error("no usable log line: {lines} line(s), none in the seed format or the NDJSON export{}", first_bad(.bad))]
    NothingUsable {
        /// Lines in the log, blank ones included.
        lines: usize,
        /// The first [`MAX_REPORTED_BAD_LINES`] lines that could not be read, with why.
        bad: Vec<BadLine>,
    },
    /// The trace asked for has no usable line in the log.
    #[error("no line of trace `{trace}`; the log holds: {}", .known.join(", "))]
    NoSuchTrace {
        /// The trace id asked for.
        trace: String,
        /// The trace ids the log does hold, in order of first appearance.
        known: Vec<String>,
    },
    /// The log has more than a million lines; the import stops rather than read on.
    #[error("the log has more than {MAX_LINES} lines; cut out the incident's trace first")]
    TooLong,
}

fn first_bad(bad: &[BadLine]) -> String {
    bad.first()
        .map(|b| format!("; first bad line: {b}"))
        .unwrap_or_default()
}

/// One usable log line.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedLine {
    /// 1-based line in the log.
    pub line: usize,
    /// Microseconds since the Unix epoch, when the line had a timestamp (NDJSON does).
    pub at_us: Option<i64>,
    /// Whether it was logged at error level.
    pub error: bool,
    /// The trace id, as the prefix shows it.
    pub trace: String,
    /// The span id, as the prefix shows it.
    pub span: String,
    /// The operation.
    pub op: String,
    /// The message.
    pub message: String,
}

/// One span as the logs show it: its lines in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedSpan {
    /// The span id, as the prefix shows it.
    pub span: String,
    /// The operation.
    pub op: String,
    /// Its lines, in order.
    pub lines: Vec<ImportedLine>,
}

impl ImportedSpan {
    /// The first error message the span logged.
    pub(crate) fn error(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.error)
            .map(|l| l.message.as_str())
    }
    fn first_us(&self) -> Option<i64> {
        self.lines.first().and_then(|l| l.at_us)
    }
    fn last_us(&self) -> Option<i64> {
        self.lines.last().and_then(|l| l.at_us)
    }
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The imported trace.
    pub trace: String,
    /// Its spans, as the logs show them.
    pub spans: Vec<ImportedSpan>,
    /// The scenario file's text.
    pub scenario: String,
    /// Other traces in the log, which were not imported.
    pub other_traces: Vec<String>,
    /// The first unusable lines.
    pub bad: Vec<BadLine>,
    /// How many lines were unusable in all.
    pub bad_count: usize,
    /// `# TODO` lines in the scenario.
    pub todos: usize,
    /// What the scenario does not reproduce (also among the TODOs). Empty: its replay shows the
    /// logged operation pattern.
    pub unmapped: Vec<String>,
}

/// Reads `text` (from `path`, for messages), picks `trace` (or the first trace) and writes the
/// scenario.
pub fn import(
    path: &std::path::Path,
    text: &str,
    trace: Option<&str>,
    description: &str,
) -> Result<Imported, ImportError> {
    let mut bad = Vec::new();
    let mut bad_count = 0;
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(ImportError::TooLong);
        }
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match parse_line(i + 1, raw) {
            Ok(line) => lines.push(line),
            Err(reason) => {
                bad_count += 1;
                if bad.len() < MAX_REPORTED_BAD_LINES {
                    bad.push(BadLine {
                        path: path.to_owned(),
                        line: (i + 1) as u64,
                        reason,
                    });
                }
            }
        }
    }
    if lines.is_empty() {
        return Err(ImportError::NothingUsable {
            lines: text.lines().count(),
            bad,
        });
    }
    let mut traces: Vec<String> = Vec::new();
    for line in &lines {
        if !traces.contains(&line.trace) {
            traces.push(line.trace.clone());
        }
    }
    let chosen = match trace {
        Some(t) if traces.iter().any(|x| x == t) => t.to_owned(),
        Some(t) => {
            return Err(ImportError::NoSuchTrace {
                trace: t.to_owned(),
                known: traces,
            })
        }
        None => traces[0].clone(),
    };
    let mut spans: Vec<ImportedSpan> = Vec::new();
    for line in lines.into_iter().filter(|l| l.trace == chosen) {
        match spans.iter_mut().find(|s| s.span == line.span) {
            Some(span) => span.lines.push(line),
            None => spans.push(ImportedSpan {
                span: line.span.clone(),
                op: line.op.clone(),
                lines: vec![line],
            }),
        }
    }
    let (scenario, todos, unmapped) = scenario_text(&chosen, &spans, description);
    Ok(Imported {
        trace: chosen.clone(),
        spans,
        scenario,
        other_traces: traces.into_iter().filter(|t| *t != chosen).collect(),
        bad,
        bad_count,
        todos,
        unmapped,
    })
}

/// A line of the NDJSON export, or a seed-format text line.
fn parse_line(line: usize, raw: &str) -> Result<ImportedLine, String> {
    if raw.starts_with('{') {
        let record: NdjsonLine =
            serde_json::from_str(raw).map_err(|e| format!("not an NDJSON log record: {e}"))?;
        let at_us = parse_unix_us(&record.timestamp)
            .ok_or_else(|| format!("timestamp `{}` is not RFC 3339", record.timestamp))?;
        let (trace, span, op) = seed_prefix(&record.prefix)
            .ok_or_else(|| "its prefix is not the seed's `[trace:… span:… op:…]`".to_owned())?;
        return Ok(ImportedLine {
            line,
            at_us: Some(at_us),
            error: record.level.eq_ignore_ascii_case("error"),
            trace,
            span,
            op,
            message: record.message,
        });
    }
    let seed = SeedLine::parse(raw).map_err(|e| match e {
        SeedLineError::NoPrefix => {
            "neither JSON nor a seed-format line `[trace:… span:… op:…] message`".to_owned()
        }
        other => other.to_string(),
    })?;
    let message = seed.message.to_owned();
    let lower = message.to_lowercase();
    Ok(ImportedLine {
        line,
        at_us: None,
        // Text lines carry no level: failure words stand in for it.
        error: lower.contains("error") || lower.contains("failed"),
        trace: seed.trace.to_owned(),
        span: seed.span.to_owned(),
        op: seed.op.to_owned(),
        message,
    })
}

fn seed_prefix(prefix: &str) -> Option<(String, String, String)> {
    Some((
        prefix_part(prefix, "trace:")?.to_owned(),
        prefix_part(prefix, "span:")?.to_owned(),
        prefix_part(prefix, "op:")?.to_owned(),
    ))
}

/// Google error reasons by the message the Calendar API sends with them, and their status.
fn google_reason(message: &str) -> Option<(&'static str, u16)> {
    MockKind::GoogleCalendar
        .error_reasons()
        .into_iter()
        .map(|reason| {
            let status = match reason {
                "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded" => 403,
                "notFound" => 404,
                "authError" => 401,
                _ => 500,
            };
            (reason, status)
        })
        .find(|(reason, status)| {
            google_error_body(reason, *status)
                .and_then(|b| {
                    b["error"]["message"]
                        .as_str()
                        .map(|m| message.to_lowercase().ends_with(&m.to_lowercase()))
                })
                .unwrap_or(false)
        })
}

fn offset(t0: Option<i64>, at: Option<i64>) -> Option<Duration> {
    let us = at?.checked_sub(t0?)?;
    u64::try_from(us).ok().map(Duration::from_micros)
}

/// The scenario file and the number of TODOs in it.
fn scenario_text(
    trace: &str,
    spans: &[ImportedSpan],
    description: &str,
) -> (String, usize, Vec<String>) {
    let mut todos = Vec::new();
    let mut unmapped = Vec::new();
    let mut out = String::new();
    let t0 = spans.iter().filter_map(ImportedSpan::first_us).min();
    let timed = t0.is_some();
    if !timed {
        todos.push(
            "the log lines carry no timestamps: every latency and step time below is a guess"
                .to_owned(),
        );
    }
    let _ = writeln!(
        out,
        "description = \"\"\"\n{}\"\"\"",
        description.replace('"', "'")
    );
    let _ = writeln!(
        out,
        "# The incident's own ids cannot be replayed; any seed reproduces the pattern."
    );
    let _ = writeln!(out, "seed = 1\n");

    // Google Calendar: the calendar span's outcome and how long it took.
    let calendar: Vec<&ImportedSpan> = spans
        .iter()
        .filter(|s| s.op == CALENDAR_EVENT_CREATION)
        .collect();
    let mut google = Vec::new();
    for span in &calendar {
        let latency = offset(span.first_us(), span.last_us()).unwrap_or_default();
        match span.error() {
            Some(message) => {
                match google_reason(message) {
                    Some((reason, status)) => google.push(format!(
                        "{{ status = {status}, error = \"{reason}\", latency = \"{}\" }}",
                        Compact(latency)
                    )),
                    None => {
                        unmapped.push(format!("calendar error `{message}` is not one the Google mock knows; answered 500"));
                        google.push(format!(
                            "{{ status = 500, latency = \"{}\" }}",
                            Compact(latency)
                        ));
                    }
                }
            }
            None => {
                if span.lines.len() < 2 {
                    todos.push(
                        "the calendar call logged only its start: its latency is unknown"
                            .to_owned(),
                    );
                }
                google.push(format!(
                    "{{ status = 200, latency = \"{}\" }}",
                    Compact(latency)
                ));
            }
        }
    }
    if calendar.is_empty() {
        todos.push(
            "no calendar_event_creation line: the Google mock answers 200 at once".to_owned(),
        );
    }
    let _ = writeln!(out, "[mocks.google]\nkind = \"google_calendar\"");
    if !google.is_empty() {
        let _ = writeln!(out, "respond = [{}]", google.join(", "));
    }
    out.push('\n');

    // Webhook deliveries: the cron step runs at the whole second before the line; the rest is
    // the subscriber's latency (the service logs a delivery after the subscriber answered).
    let executions: Vec<&ImportedSpan> =
        spans.iter().filter(|s| s.op == WEBHOOK_EXECUTION).collect();
    let mut deliveries = Vec::new();
    let mut crons: Vec<Duration> = Vec::new();
    for span in &executions {
        let retried = span
            .lines
            .iter()
            .any(|l| l.message.to_lowercase().contains("retry"));
        if retried || span.lines.len() > 1 {
            unmapped.push(format!(
                "webhook_execution span {} logged {} lines{}; each becomes one delivery answered by its first outcome",
                span.span,
                span.lines.len(),
                if retried { " with retries" } else { "" }
            ));
        }
        let done = offset(t0, span.last_us());
        let (cron, latency) = match done {
            Some(done) => {
                let cron = Duration::from_secs(done.as_secs());
                (cron, done - cron)
            }
            None => {
                let spoken = span.lines.iter().find_map(|l| spoken_delay(&l.message));
                (spoken.unwrap_or(Duration::from_secs(300)), Duration::ZERO)
            }
        };
        if !crons.contains(&cron) {
            crons.push(cron);
        }
        let status = match span.error() {
            None => 200,
            Some(message) => message
                .split("HTTP ")
                .nth(1)
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    unmapped.push(format!(
                        "webhook failure `{message}` names no HTTP status; answered 500"
                    ));
                    500
                }),
        };
        deliveries.push(format!(
            "{{ status = {status}, latency = \"{}\" }}",
            Compact(latency)
        ));
    }
    if timed && !executions.is_empty() {
        todos.push("cron runs are placed at the whole second before each delivery line; the remainder is the subscriber's latency".to_owned());
    }
    let scheduled = spans.iter().any(|s| s.op == WEBHOOK_SCHEDULING);
    if scheduled || !executions.is_empty() {
        let _ = writeln!(out, "[mocks.subscriber]\nkind = \"webhook_subscriber\"");
        if !deliveries.is_empty() {
            let _ = writeln!(out, "respond = [{}]", deliveries.join(", "));
        }
        out.push('\n');
    }
    if scheduled && executions.is_empty() {
        unmapped.push("a webhook was scheduled but no execution is in the logs: add a `cron = \"webhooks\"` step to replay one".to_owned());
    }

    // The booking request that started it all.
    let event_type_id = spans
        .iter()
        .filter(|s| s.op == BOOKING_CREATION)
        .flat_map(|s| &s.lines)
        .find_map(|l| l.message.split("eventTypeId: ").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    let event_type_id = event_type_id.unwrap_or_else(|| {
        todos.push(
            "no `eventTypeId:` in the booking lines: event type 1 is a placeholder".to_owned(),
        );
        1
    });
    let _ = writeln!(
        out,
        "[[timeline]]\nat = \"0s\"\nbook = {{ event_type_id = {event_type_id} }}\n"
    );
    for cron in &crons {
        let _ = writeln!(
            out,
            "[[timeline]]\nat = \"{}\"\ncron = \"webhooks\"\n",
            Compact(*cron)
        );
    }

    // What the scenario language cannot ask for yet.
    for span in spans
        .iter()
        .filter(|s| !MAPPED_OPERATIONS.contains(&s.op.as_str()))
    {
        unmapped.push(format!(
            "the logs show `{}` (span {}, {} line(s), first: {:?}); the simulated service has no step for it yet",
            span.op,
            span.span,
            span.lines.len(),
            span.lines.first().map(|l| l.message.as_str()).unwrap_or_default()
        ));
    }

    // Expectations: the pattern the logs showed, per known operation.
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for span in spans
        .iter()
        .filter(|s| MAPPED_OPERATIONS.contains(&s.op.as_str()))
    {
        let entry = per_op.entry(span.op.as_str()).or_default();
        entry.0 += 1;
        if span.error().is_some() {
            entry.1 += 1;
        }
    }
    for op in MAPPED_OPERATIONS {
        let Some((count, errors)) = per_op.get(op) else {
            continue;
        };
        let _ = writeln!(
            out,
            "[[expect]]\nname = \"the logs showed {count} {op} span(s), {errors} failed\""
        );
        let _ = writeln!(out, "select = 'span[op=\"{op}\"]'\ncount = {count}");
        match (errors, count) {
            (0, _) => out.push_str("status = \"ok\"\n"),
            (e, c) if e == c => out.push_str("status = \"error\"\n"),
            _ => {}
        }
        out.push('\n');
    }

    let mut header = format!("# Imported by `trace-harness import` from trace {trace}.\n");
    for todo in &unmapped {
        let _ = writeln!(header, "# TODO (not reproduced): {todo}");
    }
    for todo in &todos {
        let _ = writeln!(header, "# TODO: {todo}");
    }
    (header + &out, todos.len() + unmapped.len(), unmapped)
}

/// `Webhook executed 5 minutes later` → 5 minutes.
fn spoken_delay(message: &str) -> Option<Duration> {
    let words: Vec<&str> = message.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.starts_with("minute") || w.starts_with("hour"))?;
    let n: u64 = words.get(i.checked_sub(1)?)?.parse().ok()?;
    let unit = if words[i].starts_with("hour") {
        3600
    } else {
        60
    };
    Some(Duration::from_secs(n * unit))
}
