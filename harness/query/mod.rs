//! The seed's three Axiom queries, run locally over NDJSON exports (`--format ndjson`), one line
//! at a time. Memory grows with what a query must remember (matching lines for query 1, failed
//! traces for query 2, one entry per trace for query 3), never with the file, and each of those
//! has a limit.
//!
//! | seed query | here |
//! |---|---|
//! | Find All Operations for a Specific Booking Flow | [`trace_operations`] |
//! | Identify Failed Calendar Integrations | [`failed_calendar_integrations`] |
//! | Monitor End-to-End Booking Performance | [`booking_duration`] |

mod read;
mod trace_ref;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

pub use crate::trace::prefix_part;
use read::{for_each_record, Parsed};
pub use read::{BadLine, ReadStats, MAX_LINE_BYTES, MAX_REPORTED_BAD_LINES};
pub use trace_ref::{resolve_trace_id, KnownTrace, TraceRefError};

use crate::contract::{BOOKING_CREATION, PAYMENT_SUCCESS_PROCESSING, WEBHOOK_EXECUTION};
use crate::report::epoch::format_unix_us;

/// Rows a query may return before it stops with an error rather than exhaust memory.
pub(crate) const MAX_ROWS: usize = 1_000_000;
/// Traces a query may remember at once (query 2's failed traces, query 3's open flows).
pub(crate) const MAX_TRACES: usize = 5_000_000;

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A log file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The query would have to keep more than its limit of rows or traces in memory.
    #[error("the query matched more than {limit} {what}; narrow it (fewer files, one trace)")]
    TooMany {
        /// What overflowed, plural, as the message shows it: `lines`, `rows`, `traces`, ….
        what: &'static str,
        /// The limit that was reached.
        limit: usize,
    },
    /// Lines were read and some were bad, but none was a usable log record (files holding
    /// only blank lines are no error).
    #[error("no usable log line in {lines} line(s) read{}", first_bad(.reported))]
    NothingUsable {
        /// Lines read across all files, blank ones included.
        lines: u64,
        /// The first [`MAX_REPORTED_BAD_LINES`] bad lines.
        reported: Vec<BadLine>,
    },
    /// The trace asked for is not one trace of the lines read.
    #[error(transparent)]
    Trace(#[from] TraceRefError),
    /// [`booking_duration`] was given a bin width under one second; holds it.
    #[error("the bin width must be at least one second, found {0:?}")]
    Bin(Duration),
}

fn first_bad(reported: &[BadLine]) -> String {
    reported
        .first()
        .map(|b| format!("; first bad line: {b}"))
        .unwrap_or_default()
}

/// A query's answer: named columns and rows of JSON values, plus what reading skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The column names, in order.
    pub columns: Vec<&'static str>,
    /// One value per column a row.
    pub rows: Vec<Vec<Value>>,
    /// What reading the files saw.
    pub stats: ReadStats,
}

/// Query 1: every log line of one trace, sorted by time, with the operation taken from the
/// prefix. The trace is named as [`resolve_trace_id`] reads it (a full id, a unique prefix,
/// an alias `trace_N`); one that names no single trace of the files is an error.
///
/// ```text
/// | where prefix contains "trace:<id>" | sort by timestamp asc
/// | project timestamp, operation=extract("op:…", 1, prefix), message, level
/// ```
pub fn trace_operations(paths: &[PathBuf], wanted: &str) -> Result<QueryResult, QueryError> {
    let full_id = wanted.trim().len() == 32;
    // A full id is searched for at once; a prefix or an alias needs the traces first.
    let trace_id = if full_id {
        wanted.trim().to_ascii_lowercase()
    } else {
        resolve_trace_id(wanted, &known_traces(paths)?)?
    };
    let result = lines_of_trace(paths, &trace_id)?;
    if result.rows.is_empty() {
        resolve_trace_id(wanted, &known_traces(paths)?)?;
    }
    Ok(result)
}

/// Every trace the files' prefixes name, in order of first appearance, with the replay each
/// line says it came from: what [`resolve_trace_id`] resolves against. One entry per trace and
/// replay, at most [`MAX_TRACES`].
pub fn known_traces(paths: &[PathBuf]) -> Result<Vec<KnownTrace>, QueryError> {
    let mut stats = ReadStats::default();
    let mut seen: HashSet<(String, Option<String>)> = HashSet::new();
    let mut known = Vec::new();
    for_each_record(paths, &mut stats, |Parsed { record, .. }| {
        let Some(id) = prefix_part(&record.prefix, "trace:") else {
            return Ok(());
        };
        let key = (id.to_owned(), record.scenario.as_deref().map(str::to_owned));
        if seen.contains(&key) {
            return Ok(());
        }
        if known.len() == MAX_TRACES {
            return Err(QueryError::TooMany {
                what: "traces",
                limit: MAX_TRACES,
            });
        }
        seen.insert(key.clone());
        known.push(KnownTrace {
            id: key.0,
            replay: key.1,
        });
        Ok(())
    })?;
    usable(&stats)?;
    Ok(known)
}

/// Query 1 for the trace `trace_id` (hex, as prefixes carry it).
fn lines_of_trace(paths: &[PathBuf], trace_id: &str) -> Result<QueryResult, QueryError> {
    let needle = format!("trace:{trace_id}");
    let mut stats = ReadStats::default();
    let mut rows: Vec<(i64, Vec<Value>)> = Vec::new();
    for_each_record(paths, &mut stats, |Parsed { record, unix_us }| {
        if !record.prefix.contains(&needle) {
            return Ok(());
        }
        if rows.len() == MAX_ROWS {
            return Err(QueryError::TooMany {
                what: "lines",
                limit: MAX_ROWS,
            });
        }
        rows.push((
            unix_us,
            vec![
                json!(record.timestamp),
                json!(prefix_part(&record.prefix, "op:")),
                json!(record.message),
                json!(record.level),
            ],
        ));
        Ok(())
    })?;
    usable(&stats)?;
    // Stable: lines written at the same instant keep their order in the file.
    rows.sort_by_key(|(t, _)| *t);
    Ok(QueryResult {
        columns: vec!["timestamp", "operation", "message", "level"],
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        stats,
    })
}

/// Query 2: calendar-event errors joined, by trace, to their booking's `booking_creation` lines.
///
/// Two passes over the files, so only failed traces are remembered: the first finds the errors,
/// the second the booking lines of those traces. An inner join, as Axiom's: one row per error
/// line and booking line of the same trace.
pub fn failed_calendar_integrations(paths: &[PathBuf]) -> Result<QueryResult, QueryError> {
    let mut stats = ReadStats::default();
    let mut failures: Vec<(i64, String, String, String)> = Vec::new();
    let mut failed_traces: HashSet<String> = HashSet::new();
    for_each_record(paths, &mut stats, |Parsed { record, unix_us }| {
        if !(record.prefix.contains("op:calendar_event_creation") && record.level == "error") {
            return Ok(());
        }
        let Some(trace) = prefix_part(&record.prefix, "trace:") else {
            return Ok(());
        };
        if failures.len() == MAX_ROWS || failed_traces.len() == MAX_TRACES {
            return Err(QueryError::TooMany {
                what: "calendar errors",
                limit: MAX_ROWS.min(MAX_TRACES),
            });
        }
        failed_traces.insert(trace.to_owned());
        failures.push((
            unix_us,
            record.timestamp.into_owned(),
            trace.to_owned(),
            record.message.into_owned(),
        ));
        Ok(())
    })?;
    usable(&stats)?;

    let mut bookings: HashMap<String, Vec<String>> = HashMap::new();
    let mut booking_lines = 0usize;
    if !failed_traces.is_empty() {
        // The second pass re-reads the same files; its counts would repeat the first's.
        let mut again = ReadStats::default();
        for_each_record(paths, &mut again, |Parsed { record, .. }| {
            if prefix_part(&record.prefix, "op:") != Some(BOOKING_CREATION) {
                return Ok(());
            }
            let Some(trace) = prefix_part(&record.prefix, "trace:") else {
                return Ok(());
            };
            if !failed_traces.contains(trace) {
                return Ok(());
            }
            booking_lines += 1;
            if booking_lines > MAX_ROWS {
                return Err(QueryError::TooMany {
                    what: "booking lines",
                    limit: MAX_ROWS,
                });
            }
            bookings
                .entry(trace.to_owned())
                .or_default()
                .push(record.message.into_owned());
            Ok(())
        })?;
    }

    failures.sort_by_key(|(t, ..)| *t);
    let mut rows = Vec::new();
    for (_, timestamp, trace, message) in failures {
        for details in bookings.get(&trace).into_iter().flatten() {
            if rows.len() == MAX_ROWS {
                return Err(QueryError::TooMany {
                    what: "rows",
                    limit: MAX_ROWS,
                });
            }
            rows.push(vec![
                json!(timestamp),
                json!(trace),
                json!(message),
                json!(details),
            ]);
        }
    }
    Ok(QueryResult {
        columns: vec!["timestamp", "trace_id", "message", "booking_details"],
        rows,
        stats,
    })
}

/// Query 3: end-to-end booking duration — from a `booking_creation` line saying "started" to the
/// trace's last `webhook_execution` or `payment_success_processing` line — as its average and
/// 95th percentile per bin of booking start time (the seed bins by one hour).
///
/// Percentiles are exact (nearest rank over the bin's durations) where Axiom estimates them.
pub fn booking_duration(paths: &[PathBuf], bin: Duration) -> Result<QueryResult, QueryError> {
    let bin_us = i64::try_from(bin.as_micros()).unwrap_or(i64::MAX);
    if bin < Duration::from_secs(1) {
        return Err(QueryError::Bin(bin));
    }
    let mut stats = ReadStats::default();
    // Trace ids are hex in our exports; `TraceKey` keeps them in 16 bytes rather than a String.
    let mut starts: Vec<(TraceKey, i64)> = Vec::new();
    let mut last_end: HashMap<TraceKey, i64> = HashMap::new();
    for_each_record(paths, &mut stats, |Parsed { record, unix_us }| {
        let prefix = &record.prefix;
        let op = prefix_part(prefix, "op:");
        let is_start = op == Some(BOOKING_CREATION) && record.message.contains("started");
        let is_end = matches!(op, Some(WEBHOOK_EXECUTION | PAYMENT_SUCCESS_PROCESSING));
        if !(is_start || is_end) {
            return Ok(());
        }
        let Some(trace) = prefix_part(prefix, "trace:") else {
            return Ok(());
        };
        let key = TraceKey::of(trace);
        if is_start {
            if starts.len() == MAX_TRACES {
                return Err(QueryError::TooMany {
                    what: "booking starts",
                    limit: MAX_TRACES,
                });
            }
            starts.push((key.clone(), unix_us));
        }
        if is_end {
            if last_end.len() == MAX_TRACES && !last_end.contains_key(&key) {
                return Err(QueryError::TooMany {
                    what: "traces",
                    limit: MAX_TRACES,
                });
            }
            let end = last_end.entry(key).or_insert(unix_us);
            *end = (*end).max(unix_us);
        }
        Ok(())
    })?;
    usable(&stats)?;

    let mut bins: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (trace, start_us) in &starts {
        if let Some(end_us) = last_end.get(trace) {
            let bin_start = start_us.div_euclid(bin_us) * bin_us;
            bins.entry(bin_start).or_default().push(end_us - start_us);
        }
    }
    let rows = bins
        .into_iter()
        .map(|(bin_start, mut durations)| {
            durations.sort_unstable();
            let n = durations.len();
            let sum: i128 = durations.iter().map(|d| i128::from(*d)).sum();
            let avg_us = sum as f64 / n as f64;
            // Nearest rank: the smallest duration at or above 95 % of the bin's bookings.
            let rank = (n * 95).div_ceil(100).clamp(1, n);
            let p95_us = durations[rank - 1];
            vec![
                json!(format_unix_us(bin_start)),
                json!(n),
                json!(round_ms(avg_us / 1_000.0)),
                json!(round_ms(p95_us as f64 / 1_000.0)),
            ]
        })
        .collect();
    Ok(QueryResult {
        columns: vec!["bin", "bookings", "avg_duration_ms", "p95_duration_ms"],
        rows,
        stats,
    })
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1_000.0).round() / 1_000.0
}

fn usable(stats: &ReadStats) -> Result<(), QueryError> {
    if stats.usable == 0 && stats.bad > 0 {
        return Err(QueryError::NothingUsable {
            lines: stats.lines,
            reported: stats.reported.clone(),
        });
    }
    Ok(())
}

/// A trace id as a map key: 16 bytes when it is 32 hex digits, the text otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TraceKey {
    Hex(u128),
    Text(Box<str>),
}

impl TraceKey {
    fn of(trace: &str) -> Self {
        match (trace.len(), u128::from_str_radix(trace, 16)) {
            (32, Ok(n)) => TraceKey::Hex(n),
            _ => TraceKey::Text(trace.into()),
        }
    }
}

/// How to print a [`QueryResult`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON array of objects.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// The result as a table, JSON or CSV.
pub fn render(result: &QueryResult, output: Output) -> String {
    match output {
        Output::Json => {
            let rows: Vec<Value> = result
                .rows
                .iter()
                .map(|row| {
                    let object: serde_json::Map<String, Value> = result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), v.clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect();
            serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
        }
        Output::Csv => {
            let mut out = String::new();
            let header: Vec<String> = result.columns.iter().map(|c| csv_field(c)).collect();
            out.push_str(&header.join(","));
            out.push_str("\r\n");
            for row in &result.rows {
                let fields: Vec<String> = row.iter().map(|v| csv_field(&cell(v))).collect();
                out.push_str(&fields.join(","));
                out.push_str("\r\n");
            }
            out
        }
        Output::Table => {
            let cells: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|row| row.iter().map(cell).collect())
                .collect();
            let mut widths: Vec<usize> = result.columns.iter().map(|c| c.len()).collect();
            for row in &cells {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let mut out = String::new();
            let line = |out: &mut String, row: &[String]| {
                let mut text = String::new();
                for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
                    if i > 0 {
                        text.push_str("  ");
                    }
                    let _ = write!(text, "{c:w$}");
                }
                out.push_str(text.trim_end());
                out.push('\n');
            };
            let header: Vec<String> = result.columns.iter().map(|c| (*c).to_owned()).collect();
            line(&mut out, &header);
            for row in &cells {
                line(&mut out, row);
            }
            let _ = writeln!(out, "({} rows)", result.rows.len());
            out
        }
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
