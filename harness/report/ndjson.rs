//! NDJSON export: one JSON object per log line, shaped like the seed's log store (Axiom's
//! `['cal.com']` dataset), so the seed's queries run over it unchanged.

use serde::{Deserialize, Serialize};

use super::epoch::Epoch;
use super::pieces::{exported, Judged, Piece, RenderOptions};
use crate::outcome::ReplayOutcome;
use crate::trace::{FieldValue, LinePrefix};

/// One exported log line. The field names are the ones the seed's queries use (`timestamp`,
/// `level`, `prefix`, `message`); the rest spare a reader from parsing the prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NdjsonLine {
    /// RFC 3339, UTC, microseconds: the replay's anchor plus the line's virtual time.
    pub timestamp: String,
    /// `info`, `error`, … in lower case, as the seed's `level == "error"` compares it.
    pub level: String,
    /// `[trace:<trace id> span:<span id> op:<operation>]`, exactly the seed's prefix, with the
    /// W3C hex ids (the same ids an OTLP export carries); `[Request ID: …]` for a line written
    /// outside any span.
    pub prefix: String,
    /// The line's message, as written.
    pub message: String,
    /// The W3C trace id (hex) of the span the line was written in.
    pub trace_id: Option<String>,
    /// The W3C span id (hex) of that span.
    pub span_id: Option<String>,
    /// That span's operation.
    pub operation: Option<String>,
    /// The request the line was written in.
    pub request_id: Option<String>,
    /// The line's structured fields.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The replayed scenario, so lines of many replays can share one file.
    #[serde(default)]
    pub scenario: Option<String>,
}

/// The replay's log lines as NDJSON, one line each, in the order they were written.
pub fn ndjson(outcome: &ReplayOutcome, epoch: Epoch) -> String {
    let mut out = String::new();
    for line in ndjson_lines(outcome, epoch) {
        // A struct of strings and JSON values always serialises.
        if let Ok(text) = serde_json::to_string(&line) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

/// The replay's log lines as NDJSON records, in the order they were written.
pub fn ndjson_lines(outcome: &ReplayOutcome, epoch: Epoch) -> Vec<NdjsonLine> {
    outcome
        .captured
        .logs
        .iter()
        .map(|line| {
            let prefix = LinePrefix::of(line.span, line.request_id.as_deref()).to_string();
            NdjsonLine {
                timestamp: epoch.rfc3339_at(line.at),
                level: line.level.as_str().to_ascii_lowercase(),
                prefix,
                message: line.message.clone(),
                trace_id: line.span.map(|s| s.trace_id.to_string()),
                span_id: line.span.map(|s| s.span_id.to_string()),
                operation: line.span.map(|s| s.op.to_owned()),
                request_id: line.request_id.as_deref().map(str::to_owned),
                fields: line
                    .fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), json_value(v)))
                    .collect(),
                scenario: Some(outcome.scenario.clone()),
            }
        })
        .collect()
}

pub(crate) fn json_value(value: &FieldValue) -> serde_json::Value {
    match value {
        FieldValue::Str(s) => serde_json::Value::from(s.as_str()),
        FieldValue::I64(n) => serde_json::Value::from(*n),
        FieldValue::U64(n) => serde_json::Value::from(*n),
        FieldValue::F64(n) => serde_json::Value::from(*n),
        FieldValue::Bool(b) => serde_json::Value::from(*b),
    }
}

/// Every replay's lines, one stream on standard output or each replay in `<scenario>.ndjson`.
pub fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    exported(judged, options, "ndjson", ndjson)
}
