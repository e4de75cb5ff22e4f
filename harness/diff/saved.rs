//! Replays saved as exports, read back so a run can be compared with a baseline it saved: the
//! JSON of `run --format json` (one array of documents, or one document per `--out` file), the
//! NDJSON of `--format ndjson` (one log line per line) and the OTLP/JSON of `--format
//! otlp-json` (one `ExportTraceServiceRequest` per replay and line, or `receive`'s one).
//!
//! Each holds what it exported and no more ([`Holds`]): NDJSON only which span wrote which line,
//! at what level and when; OTLP/JSON no mock requests but those that became spans. Times come
//! back on the replay's virtual clock when they were exported at the default epoch (or later),
//! and from the earliest instant in the file otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use serde::Deserialize;

use super::changes::Holds;
use crate::clock::{VirtualTime, EPOCH_UNIX_S};
use crate::contract::DEFAULT_SERVICE_NAME;
use crate::mocks::{MockKind, ReceivedRequest};
use crate::outcome::{ReplayOutcome, SpanSource};
use crate::receive::{intern, Inbox, TimeBase};
use crate::trace::{
    Captured, FieldValue, Fields, LogLine, ParentKind, SpanData, SpanId, SpanStatus, ThinVec,
    TraceFlags, TraceId,
};

/// The largest export read: a CI baseline of every scenario is a few megabytes.
pub const MAX_SAVED_BYTES: u64 = 256 << 20;

/// Which export a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavedFormat {
    /// `run --format json`.
    Json,
    /// `run --format ndjson`.
    Ndjson,
    /// `run --format otlp-json` or `receive --format otlp-json`.
    OtlpJson,
}

impl SavedFormat {
    /// The `--format` that writes it.
    pub fn name(self) -> &'static str {
        match self {
            SavedFormat::Json => "JSON",
            SavedFormat::Ndjson => "NDJSON",
            SavedFormat::OtlpJson => "OTLP/JSON",
        }
    }

    /// `a JSON export`, `an NDJSON export`.
    pub fn described(self) -> &'static str {
        match self {
            SavedFormat::Json => "a JSON export",
            SavedFormat::Ndjson => "an NDJSON export",
            SavedFormat::OtlpJson => "an OTLP/JSON export",
        }
    }

    /// What an export in this format can show.
    pub fn holds(self) -> Holds {
        match self {
            SavedFormat::Json => Holds::ALL,
            SavedFormat::Ndjson => Holds {
                status: true,
                levels: true,
                ..Holds::LINES
            },
            SavedFormat::OtlpJson => Holds {
                requests: false,
                ..Holds::ALL
            },
        }
    }
}

/// One replay read back from an export.
#[derive(Clone, Debug)]
pub struct Saved {
    /// Its spans and lines (and, from JSON, its mock requests), named by its scenario.
    pub outcome: ReplayOutcome,
    /// The format it was read from.
    pub format: SavedFormat,
}

/// Why a file cannot be read as saved replays.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Larger than [`MAX_SAVED_BYTES`].
    #[error("{}: {bytes} bytes; an export of more than {MAX_SAVED_BYTES} bytes is not read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// Not one of the three exports.
    #[error("{}: not a saved replay: expected the output of `trace-harness run --format json`, `--format ndjson` or `--format otlp-json`", path.display())]
    Unknown {
        /// The file.
        path: PathBuf,
    },
    /// Something at a place in the file is not what its format holds.
    #[error("{}:{line}:{column}: {what}", path.display())]
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected, and what was found.
        what: String,
    },
    /// The export holds no replay.
    #[error("{}: the {format} export holds no replay", path.display(), format = format.name())]
    Empty {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: SavedFormat,
    },
}

/// Every replay in the export at `path`, in the order written.
pub fn read_saved(path: &Path) -> Result<Vec<Saved>, SavedError> {
    let read = |source| SavedError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(read)?.len();
    if bytes > MAX_SAVED_BYTES {
        return Err(SavedError::TooLarge {
            path: path.to_owned(),
            bytes,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let format = detect(path, &text)?;
    let saved = match format {
        SavedFormat::Json => json(path, &text)?,
        SavedFormat::Ndjson => ndjson(path, &text)?,
        SavedFormat::OtlpJson => otlp_json(path, &text)?,
    };
    if saved.is_empty() {
        return Err(SavedError::Empty {
            path: path.to_owned(),
            format,
        });
    }
    Ok(saved)
}

/// By the first value in the file: an array or a document with `spans` is JSON, a line with
/// `resourceSpans` OTLP/JSON, a line with `timestamp` and `prefix` NDJSON.
fn detect(path: &Path, text: &str) -> Result<SavedFormat, SavedError> {
    let unknown = || SavedError::Unknown {
        path: path.to_owned(),
    };
    let first = text.trim_start();
    if first.starts_with('[') {
        return Ok(SavedFormat::Json);
    }
    if !first.starts_with('{') {
        return Err(unknown());
    }
    let line = first.lines().next().unwrap_or_default();
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(line) {
        if object.contains_key("resourceSpans") || object.contains_key("resource_spans") {
            return Ok(SavedFormat::OtlpJson);
        }
        if object.contains_key("timestamp") && object.contains_key("prefix") {
            return Ok(SavedFormat::Ndjson);
        }
        if object.contains_key("spans") || object.contains_key("error") {
            return Ok(SavedFormat::Json);
        }
        return Err(unknown());
    }
    // A pretty-printed document spans many lines.
    Ok(SavedFormat::Json)
}

fn at(path: &Path, line: usize, column: usize, what: impl Into<String>) -> SavedError {
    SavedError::At {
        path: path.to_owned(),
        line,
        column,
        what: what.into(),
    }
}

/// A serde error at its place; `line` is added to its line (for one line of many).
fn serde_at(path: &Path, line: usize, e: &serde_json::Error) -> SavedError {
    at(path, line + e.line(), e.column().max(1), e.to_string())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFile {
    Many(Vec<JsonDocument>),
    One(Box<JsonDocument>),
}

/// The parts of `run --format json`'s document a diff reads.
#[derive(Deserialize)]
struct JsonDocument {
    scenario: String,
    #[serde(default)]
    seed: u64,
    #[serde(default = "yes")]
    tracing: bool,
    /// A replay that could not run.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    spans: Vec<JsonSpan>,
    #[serde(default)]
    logs: Vec<JsonLine>,
    #[serde(default)]
    mock_requests: Vec<JsonRequest>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct JsonSpan {
    span: String,
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    op: String,
    start_us: u64,
    end_us: u64,
    status: String,
    status_message: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    follows_from: Vec<String>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct JsonLine {
    at_us: u64,
    level: String,
    message: String,
    request_id: Option<String>,
    span: Option<String>,
}

#[derive(Deserialize)]
struct JsonRequest {
    mock: String,
    method: String,
    path: String,
    traceparent: Option<String>,
}

fn json(path: &Path, text: &str) -> Result<Vec<Saved>, SavedError> {
    let documents = match serde_json::from_str::<JsonFile>(text) {
        Ok(JsonFile::Many(documents)) => documents,
        Ok(JsonFile::One(document)) => vec![*document],
        // Untagged errors say only "did not match": read it again as the likelier shape.
        Err(_) => {
            let e = if text.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<JsonDocument>>(text).err()
            } else {
                serde_json::from_str::<JsonDocument>(text).err()
            };
            return Err(match e {
                Some(e) => serde_at(path, 0, &e),
                None => SavedError::Unknown {
                    path: path.to_owned(),
                },
            });
        }
    };
    documents
        .into_iter()
        .enumerate()
        .map(|(n, document)| json_document(path, n, document))
        .collect()
}

fn json_document(path: &Path, n: usize, d: JsonDocument) -> Result<Saved, SavedError> {
    let bad = |what: String| {
        at(
            path,
            1,
            1,
            format!("document {} (`{}`): {what}", n + 1, d.scenario),
        )
    };
    if let Some(error) = &d.error {
        return Err(bad(format!(
            "the replay could not run, so there is nothing to compare: {error}"
        )));
    }
    let mut by_alias: HashMap<&str, SpanId> = HashMap::new();
    for s in &d.spans {
        let id = SpanId::from_hex(&s.span_id)
            .ok_or_else(|| bad(format!("span_id `{}` is not 16 hex digits", s.span_id)))?;
        by_alias.insert(s.span.as_str(), id);
    }
    // A parent or a link is an alias when it was captured, a hex id when it came from outside.
    let resolve = |alias: &str| -> Result<(SpanId, ParentKind), SavedError> {
        match by_alias.get(alias) {
            Some(id) => Ok((*id, ParentKind::Local)),
            None => SpanId::from_hex(alias)
                .map(|id| (id, ParentKind::Remote))
                .ok_or_else(|| {
                    bad(format!(
                        "`{alias}` is neither a span of this replay nor a span id"
                    ))
                }),
        }
    };
    let mut captured = Captured::default();
    let mut seq = 0u32;
    for s in &d.spans {
        let trace_id = TraceId::from_hex(&s.trace_id)
            .ok_or_else(|| bad(format!("trace_id `{}` is not 32 hex digits", s.trace_id)))?;
        let status = match (s.status.as_str(), &s.status_message) {
            ("ok", _) => SpanStatus::Ok,
            ("error", message) => SpanStatus::Error(message.clone().unwrap_or_default().into()),
            (other, _) => return Err(bad(format!("status `{other}`: expected `ok` or `error`"))),
        };
        let mut fields = Fields::new();
        for (key, value) in &s.fields {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            fields.push((name(key).map_err(&bad)?, FieldValue::Str(text.into())));
        }
        let mut links = ThinVec::new();
        for link in &s.follows_from {
            links.push(resolve(link)?.0);
        }
        captured.spans.push(SpanData {
            seq,
            trace_id,
            span_id: by_alias[s.span.as_str()],
            parent: s.parent.as_deref().map(resolve).transpose()?,
            links,
            op: name(&s.op).map_err(&bad)?,
            fields,
            status,
            start: VirtualTime::from_micros(s.start_us),
            end: VirtualTime::from_micros(s.end_us.max(s.start_us)),
            flags: TraceFlags::SAMPLED,
            tracestate: None,
            request_id: s.request_id.as_deref().map(Arc::from),
        });
        seq += 1;
    }
    for line in &d.logs {
        let span = match &line.span {
            Some(alias) => {
                let id = by_alias.get(alias.as_str()).ok_or_else(|| {
                    bad(format!(
                        "log line in `{alias}`, which is not a span of this replay"
                    ))
                })?;
                captured.span(*id).map(SpanData::span_ref)
            }
            None => None,
        };
        captured.logs.push(LogLine {
            seq,
            at: VirtualTime::from_micros(line.at_us),
            level: level(&line.level).ok_or_else(|| bad(format!("level `{}`", line.level)))?,
            message: unescape_one_line(&line.message),
            fields: Fields::new(),
            target: "",
            span,
            request_id: line.request_id.as_deref().map(Arc::from),
        });
        seq += 1;
    }
    let mut outcome = ReplayOutcome::of_spans(&d.scenario, d.seed, captured);
    outcome.tracing = d.tracing;
    outcome.requests = d
        .mock_requests
        .into_iter()
        .map(|r| ReceivedRequest {
            mock: r.mock,
            // Not exported, and not compared: a mock is known by its name.
            kind: MockKind::WebhookSubscriber,
            method: r.method,
            path: r.path,
            traceparent: r.traceparent,
            tracestate: None,
            headers: Vec::new(),
            body: String::new(),
        })
        .collect();
    Ok(Saved {
        outcome,
        format: SavedFormat::Json,
    })
}

fn name(text: &str) -> Result<&'static str, String> {
    intern(text).map_err(|e| format!("name `{text}`: {e}"))
}

fn level(text: &str) -> Option<tracing::Level> {
    text.parse().ok()
}

/// The message as written, from the one-line form the views print (`report::one_line`): that
/// form escapes `\` itself, so it reads back unambiguously.
fn unescape_one_line(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') if chars.peek() == Some(&'{') => {
                chars.next();
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => {
                        out.push_str("\\u{");
                        out.push_str(&hex);
                        out.push('}');
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The parts of an NDJSON line a diff reads.
#[derive(Deserialize)]
struct NdjsonRecord {
    timestamp: String,
    level: String,
    message: String,
    trace_id: Option<String>,
    span_id: Option<String>,
    operation: Option<String>,
    request_id: Option<String>,
    scenario: Option<String>,
}

/// Microseconds since the Unix epoch of an RFC 3339 instant.
fn unix_us(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn ndjson(path: &Path, text: &str) -> Result<Vec<Saved>, SavedError> {
    // Per scenario, in order of first appearance: its lines with their Unix times.
    let mut replays: Vec<(String, Vec<(NdjsonRecord, i64)>)> = Vec::new();
    let default_name = path
        .file_stem()
        .map_or_else(|| "saved".to_owned(), |s| s.to_string_lossy().into_owned());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: NdjsonRecord = serde_json::from_str(line).map_err(|e| serde_at(path, n, &e))?;
        let unix = unix_us(&record.timestamp).ok_or_else(|| {
            at(
                path,
                n + 1,
                1,
                format!("timestamp `{}` is not RFC 3339", record.timestamp),
            )
        })?;
        if level(&record.level).is_none() {
            return Err(at(path, n + 1, 1, format!("level `{}`", record.level)));
        }
        let scenario = record
            .scenario
            .clone()
            .unwrap_or_else(|| default_name.clone());
        match replays.iter_mut().find(|(name, _)| *name == scenario) {
            Some((_, lines)) => lines.push((record, unix)),
            None => replays.push((scenario, vec![(record, unix)])),
        }
    }
    let epoch_us = EPOCH_UNIX_S as i64 * 1_000_000;
    replays
        .into_iter()
        .map(|(scenario, lines)| {
            let earliest = lines.iter().map(|(_, t)| *t).min().unwrap_or(epoch_us);
            let zero = if earliest >= epoch_us {
                epoch_us
            } else {
                earliest
            };
            let mut captured = Captured::default();
            let mut seq = 0u32;
            for (n, (record, unix)) in lines.into_iter().enumerate() {
                let when = VirtualTime::from_micros(u64::try_from(unix - zero).unwrap_or(0));
                let level = level(&record.level).unwrap_or(tracing::Level::INFO);
                let span = match (&record.trace_id, &record.span_id, &record.operation) {
                    (Some(t), Some(s), Some(op)) => {
                        let bad = |what: &str| {
                            at(
                                path,
                                n + 1,
                                1,
                                format!("{what} in the line of `{scenario}`"),
                            )
                        };
                        let trace_id = TraceId::from_hex(t)
                            .ok_or_else(|| bad("trace_id is not 32 hex digits"))?;
                        let span_id = SpanId::from_hex(s)
                            .ok_or_else(|| bad("span_id is not 16 hex digits"))?;
                        let op = name(op).map_err(|e| bad(&e))?;
                        let ix = match captured.spans.iter().position(|x| x.span_id == span_id) {
                            Some(ix) => ix,
                            None => {
                                captured.spans.push(SpanData {
                                    request_id: record.request_id.as_deref().map(Arc::from),
                                    ..SpanData::seen_in_logs(seq, trace_id, span_id, op, when)
                                });
                                seq += 1;
                                captured.spans.len() - 1
                            }
                        };
                        let span = &mut captured.spans[ix];
                        span.end = span.end.max(when);
                        // A span is in error once it logs at ERROR, with that first message.
                        if level == tracing::Level::ERROR && span.status == SpanStatus::Ok {
                            span.status = SpanStatus::Error(record.message.clone().into());
                        }
                        Some(span.span_ref())
                    }
                    _ => None,
                };
                captured.logs.push(LogLine {
                    seq,
                    at: when,
                    level,
                    message: record.message,
                    fields: Fields::new(),
                    target: "",
                    span,
                    request_id: record.request_id.as_deref().map(Arc::from),
                });
                seq += 1;
            }
            let mut outcome = ReplayOutcome::of_spans(&scenario, 0, captured);
            outcome.source = SpanSource::LogLines;
            Ok(Saved {
                outcome,
                format: SavedFormat::Ndjson,
            })
        })
        .collect()
}

fn otlp_json(path: &Path, text: &str) -> Result<Vec<Saved>, SavedError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let request: ExportTraceServiceRequest =
            serde_json::from_str(line).map_err(|e| serde_at(path, n, &e))?;
        let resource = |key: &str| {
            request
                .resource_spans
                .iter()
                .filter_map(|r| r.resource.as_ref())
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
        };
        let scenario = match resource("trace_harness.scenario") {
            Some(any_value::Value::StringValue(name)) => name,
            _ => format!(
                "{} line {}",
                path.file_stem().unwrap_or_default().to_string_lossy(),
                n + 1
            ),
        };
        let seed = match resource("trace_harness.seed") {
            Some(any_value::Value::IntValue(seed)) => seed as u64,
            Some(any_value::Value::StringValue(seed)) => seed.parse().unwrap_or_default(),
            _ => 0,
        };
        let inbox = Inbox::new();
        let ingested = inbox.ingest(request);
        if ingested.rejected > 0 {
            return Err(at(
                path,
                n + 1,
                1,
                format!(
                    "{} span(s) rejected: {}",
                    ingested.rejected, ingested.message
                ),
            ));
        }
        // The booking service's spans, as a replay captures them; mocks' spans are requests.
        let service = inbox
            .services()
            .iter()
            .any(|s| &**s == DEFAULT_SERVICE_NAME)
            .then_some(DEFAULT_SERVICE_NAME);
        let base =
            if inbox.zero_unix_nanos(TimeBase::EarliestSpan) >= crate::contract::EPOCH_UNIX_NANOS {
                TimeBase::Virtual
            } else {
                TimeBase::EarliestSpan
            };
        let captured = inbox.snapshot(service, base);
        out.push(Saved {
            outcome: ReplayOutcome::of_spans(&scenario, seed, captured),
            format: SavedFormat::OtlpJson,
        });
    }
    Ok(out)
}
