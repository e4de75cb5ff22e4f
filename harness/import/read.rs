//! An incident as its input shows it: traces, their spans in order, each span's lines (with
//! their times and levels where the input has them), the lines written outside any span, and,
//! from OTLP/JSON, each span's parent, start and end. A replay's capture reads into the same
//! shape ([`Incident::of_captured`]), so the fit compares like with like.

use std::collections::BTreeMap;

use crate::query::BadLine;
use crate::receive::{decode, Inbox, Limits, TimeBase, JSON};
use crate::report::epoch::parse_unix_us;
use crate::report::ndjson::NdjsonLine;
use crate::trace::{prefix_part, Captured, SeedLine, SeedLineError, SpanStatus};

/// Lines read from one log file; past this the import stops with an error.
pub(crate) const MAX_LINES: usize = 1_000_000;
/// Bad lines listed one by one.
pub const MAX_REPORTED_BAD_LINES: usize = 50;

/// How loud a line is. Seed-format text has no level: failure words stand in for `Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `debug` and `trace`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl Level {
    fn of(name: &str) -> Level {
        match name.to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// One log line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// 1-based line in the input (0 for lines of a replay or of an OTLP document).
    pub line: usize,
    /// Microseconds from the incident's first instant, when the input has times.
    pub at: Option<i64>,
    /// Its level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Its structured fields, as text.
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// Whether it was logged as an error.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// One span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Its id, as the input shows it.
    pub id: String,
    /// Its operation.
    pub op: String,
    /// Its lines, in order.
    pub lines: Vec<Line>,
    /// Start and end, from the incident's first instant, when the input has span times.
    pub times: Option<(i64, i64)>,
    /// Its status message, when the input says it ended in error.
    pub error: Option<String>,
    /// Its attributes, as text, when the input has them.
    pub fields: BTreeMap<String, String>,
}

impl Span {
    /// The first line whose message starts with `prefix`.
    pub fn line_starting(&self, prefix: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.message.starts_with(prefix))
    }

    /// When it began: its start, else its first line's time.
    pub fn first_at(&self) -> Option<i64> {
        self.times
            .map(|(start, _)| start)
            .or_else(|| self.lines.first().and_then(|l| l.at))
    }

    /// Whether it ended in error: its status where the input has one, else an error line.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.lines.iter().any(Line::is_error)
    }
}

/// One trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Its id, as the input shows it.
    pub id: String,
    /// Its spans, in order of first appearance (lines) or of creation (spans).
    pub spans: Vec<Span>,
}

impl Trace {
    /// Its spans of `op`, in order.
    pub fn of<'a>(&'a self, op: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| s.op == op)
    }
}

/// What the input shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Incident {
    /// Its traces, in order of first appearance.
    pub traces: Vec<Trace>,
    /// Lines written outside every span, in order.
    pub untraced: Vec<Line>,
    /// Whether lines carry times.
    pub timed: bool,
    /// Whether spans carry start and end times (OTLP/JSON).
    pub span_times: bool,
}

/// Which form the input was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `[trace:… span:… op:…] message` lines, as the seed prints them.
    SeedText,
    /// `trace-harness run --format ndjson` lines.
    Ndjson,
    /// One OTLP/JSON `ExportTraceServiceRequest` (`--format otlp-json`, or a trace exported
    /// from any OpenTelemetry pipeline).
    OtlpJson,
}

/// What reading the input gave: the incident, and the lines that could not be read.
#[derive(Debug)]
pub(crate) struct Read {
    /// The incident.
    pub incident: Incident,
    /// The input's form.
    pub form: Form,
    /// The first unusable lines.
    pub bad: Vec<BadLine>,
    /// How many lines were unusable in all.
    pub bad_count: usize,
    /// Lines in the input, blank ones included.
    pub lines: usize,
}

/// Why the input is not one.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Past [`MAX_LINES`].
    TooLong,
    /// A JSON document that is not OTLP/JSON either.
    Otlp(String),
}

/// Reads seed-format text, NDJSON or one OTLP/JSON document.
pub(crate) fn read(path: &std::path::Path, text: &str) -> Result<Read, ReadError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && trimmed.contains("\"resourceSpans\"") {
        return read_otlp(text).map(|incident| Read {
            incident,
            form: Form::OtlpJson,
            bad: Vec::new(),
            bad_count: 0,
            lines: text.lines().count(),
        });
    }
    let mut bad = Vec::new();
    let mut bad_count = 0;
    let mut parsed = Vec::new();
    let mut form = Form::SeedText;
    for (i, raw) in text.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(ReadError::TooLong);
        }
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match parse_line(i + 1, raw) {
            Ok((parsed_line, json)) => {
                if json {
                    form = Form::Ndjson;
                }
                parsed.push(parsed_line);
            }
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
    Ok(Read {
        incident: incident_of(parsed),
        form,
        bad,
        bad_count,
        lines: text.lines().count(),
    })
}

/// A line with where it belongs: `(trace, span, op)` or none.
struct Parsed {
    owner: Option<(String, String, String)>,
    unix_us: Option<i64>,
    line: Line,
}

fn incident_of(parsed: Vec<Parsed>) -> Incident {
    let t0 = parsed.iter().filter_map(|p| p.unix_us).min();
    let mut incident = Incident {
        timed: t0.is_some(),
        ..Incident::default()
    };
    for Parsed {
        owner,
        unix_us,
        mut line,
    } in parsed
    {
        line.at = unix_us.zip(t0).map(|(at, t0)| at - t0);
        let Some((trace, span, op)) = owner else {
            incident.untraced.push(line);
            continue;
        };
        let t = match incident.traces.iter().position(|t| t.id == trace) {
            Some(t) => t,
            None => {
                incident.traces.push(Trace {
                    id: trace,
                    spans: Vec::new(),
                });
                incident.traces.len() - 1
            }
        };
        let spans = &mut incident.traces[t].spans;
        match spans.iter_mut().find(|s| s.id == span) {
            Some(s) => s.lines.push(line),
            None => spans.push(Span {
                id: span,
                op,
                lines: vec![line],
                times: None,
                error: None,
                fields: BTreeMap::new(),
            }),
        }
    }
    incident
}

/// A line of the NDJSON export (`true`), or a seed-format text line (`false`).
fn parse_line(line: usize, raw: &str) -> Result<(Parsed, bool), String> {
    if raw.starts_with('{') {
        let record: NdjsonLine =
            serde_json::from_str(raw).map_err(|e| format!("not an NDJSON log record: {e}"))?;
        let at_us = parse_unix_us(&record.timestamp)
            .ok_or_else(|| format!("timestamp `{}` is not RFC 3339", record.timestamp))?;
        let owner = if record.prefix.starts_with("[Request ID:") {
            None
        } else {
            Some(seed_prefix(&record.prefix).ok_or_else(|| {
                "its prefix is neither the seed's `[trace:… span:… op:…]` nor `[Request ID: …]`"
                    .to_owned()
            })?)
        };
        let fields = record
            .fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        let parsed = Parsed {
            owner,
            unix_us: Some(at_us),
            line: Line {
                line,
                at: None,
                level: Level::of(&record.level),
                message: record.message,
                fields,
            },
        };
        return Ok((parsed, true));
    }
    if let Some(rest) = raw.strip_prefix("[Request ID:") {
        let message = rest.split_once("] ").map_or("", |(_, m)| m).to_owned();
        let level = text_level(&message);
        return Ok((
            Parsed {
                owner: None,
                unix_us: None,
                line: Line {
                    line,
                    at: None,
                    level,
                    message,
                    fields: BTreeMap::new(),
                },
            },
            false,
        ));
    }
    let seed = SeedLine::parse(raw).map_err(|e| match e {
        SeedLineError::NoPrefix => {
            "neither JSON nor a seed-format line `[trace:… span:… op:…] message`".to_owned()
        }
        other => other.to_string(),
    })?;
    let message = seed.message.to_owned();
    Ok((
        Parsed {
            owner: Some((
                seed.trace.to_owned(),
                seed.span.to_owned(),
                seed.op.to_owned(),
            )),
            unix_us: None,
            line: Line {
                line,
                at: None,
                level: text_level(&message),
                message,
                fields: BTreeMap::new(),
            },
        },
        false,
    ))
}

/// Text lines carry no level: the service's failure words stand in for it. A failed attempt
/// that is retried is a warning; a last one, an e-mail that failed, an API error are errors.
fn text_level(message: &str) -> Level {
    let lower = message.to_lowercase();
    if lower.contains("giving up") {
        Level::Error
    } else if lower.starts_with("webhook execution failed")
        || (lower.starts_with("retry attempt") && lower.contains("failed"))
        || lower.contains("rejected")
        || lower.starts_with("booking refused")
        || lower.starts_with("email batch not created")
    {
        Level::Warn
    } else if lower.contains("error") || lower.contains("failed") || lower.contains("could not") {
        Level::Error
    } else {
        Level::Info
    }
}

fn seed_prefix(prefix: &str) -> Option<(String, String, String)> {
    Some((
        prefix_part(prefix, "trace:")?.to_owned(),
        prefix_part(prefix, "span:")?.to_owned(),
        prefix_part(prefix, "op:")?.to_owned(),
    ))
}

/// One OTLP/JSON document, through the receiver's own decoding and model.
fn read_otlp(text: &str) -> Result<Incident, ReadError> {
    let inbox = Inbox::new();
    // One document, or one export request per line (`--format otlp-json` of several replays).
    let whole = decode(text.as_bytes(), Some(JSON), None, Limits::DEFAULT);
    let requests = match whole {
        Ok((request, _)) => vec![request],
        Err(whole) => {
            let mut requests = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let (request, _) = decode(line.as_bytes(), Some(JSON), None, Limits::DEFAULT)
                    .map_err(|e| {
                        ReadError::Otlp(format!(
                            "{whole}; read as one request a line, line {}: {e}",
                            i + 1
                        ))
                    })?;
                requests.push(request);
            }
            requests
        }
    };
    for request in requests {
        let ingested = inbox.ingest(request);
        if ingested.rejected > 0 && inbox.is_empty() {
            return Err(ReadError::Otlp(format!(
                "no span could be read: {}",
                ingested.message
            )));
        }
    }
    if inbox.is_empty() {
        return Err(ReadError::Otlp("the document holds no span".to_owned()));
    }
    Ok(Incident::of_captured(
        &inbox.snapshot(None, TimeBase::EarliestSpan),
        true,
    ))
}

impl Incident {
    /// A capture as an incident: with `span_times`, every span in creation order with its
    /// times and status; without, as a log shows it (only spans that wrote a line, in order of
    /// their first line, no times but the lines').
    pub fn of_captured(captured: &Captured, span_times: bool) -> Incident {
        let us = |t: crate::clock::VirtualTime| i64::try_from(t.as_micros()).unwrap_or(i64::MAX);
        let mut incident = Incident {
            timed: true,
            span_times,
            ..Incident::default()
        };
        let mut index: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        let mut place = |incident: &mut Incident, trace: String, span: &crate::trace::SpanData| {
            let key = (trace.clone(), span.span_id.to_string());
            if let Some(at) = index.get(&key) {
                return *at;
            }
            let t = match incident.traces.iter().position(|t| t.id == trace) {
                Some(t) => t,
                None => {
                    incident.traces.push(Trace {
                        id: trace.clone(),
                        spans: Vec::new(),
                    });
                    incident.traces.len() - 1
                }
            };
            incident.traces[t].spans.push(Span {
                id: span.span_id.to_string(),
                op: span.op.to_owned(),
                lines: Vec::new(),
                times: span_times.then(|| (us(span.start), us(span.end))),
                error: match (&span.status, span_times) {
                    (SpanStatus::Error(m), true) => Some(m.to_string()),
                    _ => None,
                },
                fields: if span_times {
                    span.fields
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                        .collect()
                } else {
                    BTreeMap::new()
                },
            });
            let at = (t, incident.traces[t].spans.len() - 1);
            index.insert(key, at);
            at
        };
        if span_times {
            // The service's operations; an exporter's client spans (`POST /webhook`) are how
            // the calls travelled, not steps of the incident.
            for span in captured
                .spans
                .iter()
                .filter(|s| crate::contract::OPERATIONS.contains(&s.op))
            {
                place(&mut incident, span.trace_id.to_string(), span);
            }
        }
        let mut lines: Vec<&crate::trace::LogLine> = captured.logs.iter().collect();
        if span_times {
            // Received events come span by span; a log reads in time order.
            lines.sort_by_key(|l| (l.at, l.seq));
        }
        for log in lines {
            let line = Line {
                line: 0,
                at: Some(us(log.at)),
                level: match log.level {
                    tracing::Level::ERROR => Level::Error,
                    tracing::Level::WARN => Level::Warn,
                    tracing::Level::INFO => Level::Info,
                    _ => Level::Debug,
                },
                message: log.message.clone(),
                fields: log
                    .fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                    .collect(),
            };
            let Some(owner) = log.span.and_then(|r| captured.span(r.span_id)) else {
                // OTLP carries no line written outside a span: a replay's would match nothing.
                if !span_times {
                    incident.untraced.push(line);
                }
                continue;
            };
            let (t, s) = place(&mut incident, owner.trace_id.to_string(), owner);
            incident.traces[t].spans[s].lines.push(line);
        }
        incident
    }
}
