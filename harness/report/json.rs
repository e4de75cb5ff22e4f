//! The JSON format: one document per replay (spans, log lines, HTTP steps, mock requests and
//! findings); on standard output, one array of them.

use super::pieces::{file, file_note, Judged, Piece, RenderOptions};
use super::seed_line;
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;
use crate::trace::{Aliases, SpanStatus};

/// Every replay's document: one pretty-printed array on standard output, or each in
/// `<scenario>.json`. A replay that could not run is `{"error": …, "scenario": …}`.
pub(super) fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    let mut documents = Vec::new();
    let mut pieces = Vec::new();
    for replay in judged {
        if options.to_files {
            let text = match &replay.result {
                Ok(_) => serde_json::to_string_pretty(&document(replay)).unwrap_or_default(),
                Err(_) => document(replay).to_string(),
            };
            pieces.push(file(replay.scenario, "json", text + "\n"));
            pieces.extend(file_note(replay));
        } else {
            documents.push(document(replay));
        }
    }
    if !options.to_files {
        let text = serde_json::to_string_pretty(&documents).unwrap_or_default();
        pieces.push(Piece::Stdout(text + "\n"));
    }
    pieces
}

/// The array [`render`] prints on standard output, written one element at a time: the same
/// bytes `serde_json::to_string_pretty` gives for the whole array, without holding it.
#[derive(Debug, Default)]
pub(super) struct JsonArray {
    /// Whether an element was written, so the next one follows a comma and the end is `]`
    /// on a line of its own rather than the empty array's `[]`.
    started: bool,
}

impl JsonArray {
    /// The text that adds `replay`'s document to the array: the opening bracket before the
    /// first one, a comma before the others.
    pub(super) fn element(&mut self, replay: &Judged<'_>) -> String {
        // Pretty-printed as an array's only element, the document is indented as it would be
        // among others; what surrounds it is `[\n` and `\n]`.
        let alone = serde_json::to_string_pretty(&[document(replay)]).unwrap_or_default();
        let indented = alone
            .strip_prefix("[\n")
            .and_then(|rest| rest.strip_suffix("\n]"))
            .unwrap_or_default();
        let before = if self.started { ",\n" } else { "[\n" };
        self.started = true;
        format!("{before}{indented}")
    }

    /// The text that closes the array, and the run's output with it.
    pub(super) fn end(self) -> &'static str {
        if self.started {
            "\n]\n"
        } else {
            "[]\n"
        }
    }
}

/// A replay's document, or the one saying why it could not run.
fn document(replay: &Judged<'_>) -> serde_json::Value {
    match &replay.result {
        Ok(r) => json(&r.outcome, &r.verdict),
        Err(e) => broken(&replay.scenario.name, e),
    }
}

/// The document of a replay that could not run.
fn broken(scenario: &str, error: &str) -> serde_json::Value {
    serde_json::json!({ "scenario": scenario, "error": error })
}

/// One replay as a JSON document: spans, log lines, HTTP steps, mock requests and findings.
pub(crate) fn json(outcome: &ReplayOutcome, verdict: &Verdict) -> serde_json::Value {
    use serde_json::json;
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    let spans: Vec<_> = captured
        .spans
        .iter()
        .map(|s| {
            let fields: serde_json::Map<String, serde_json::Value> = s
                .fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v.to_string())))
                .collect();
            json!({
                "span": aliases.span(s.span_id).to_string(),
                "trace": aliases.trace(s.trace_id).to_string(),
                "trace_id": s.trace_id.to_string(),
                "span_id": s.span_id.to_string(),
                "parent": s.parent_id().map(|p| aliases.span(p).to_string()),
                "op": s.op,
                "start_us": s.start.as_micros(),
                "end_us": s.end.as_micros(),
                "duration_us": s.end.as_micros() - s.start.as_micros(),
                "status": match &s.status { SpanStatus::Ok => "ok", SpanStatus::Error(_) => "error" },
                "status_message": match &s.status { SpanStatus::Ok => None, SpanStatus::Error(m) => Some(m) },
                "fields": fields,
                "follows_from": s.links.iter().map(|l| aliases.span(*l).to_string()).collect::<Vec<_>>(),
                "request_id": s.request_id.as_deref(),
            })
        })
        .collect();
    // Every line, `debug` ones too (the view leaves them out, the exports carry them), each
    // with its own text.
    let logs: Vec<_> = captured
        .logs
        .iter()
        .map(|line| (line, seed_line(&aliases, line)))
        .map(|(line, seed)| {
            json!({
                "at_us": line.at.as_micros(),
                "level": line.level.as_str(),
                "line": seed.traced(),
                "message": seed.message,
                "request_id": seed.request_id,
                "trace": seed.prefix.as_ref().map(|p| p.0.clone()),
                "span": seed.prefix.as_ref().map(|p| p.1.clone()),
                "op": seed.op(),
            })
        })
        .collect();
    let steps: Vec<_> = outcome
        .steps
        .iter()
        .map(|s| {
            json!({
                "at_us": s.at.as_micros(),
                "action": s.action,
                "status": s.status,
                "request_id": s.request_id,
                "trace": s.trace_id.as_ref().and_then(|hex| {
                    captured.trace_ids().into_iter().find(|t| &t.to_string() == hex)
                }).map(|t| aliases.trace(t).to_string()),
                "latency_us": s.latency.as_micros() as u64,
            })
        })
        .collect();
    let requests: Vec<_> = outcome
        .requests
        .iter()
        .map(|r| json!({ "mock": r.mock, "method": r.method, "path": r.path, "traceparent": r.traceparent }))
        .collect();
    json!({
        "scenario": outcome.scenario,
        "seed": outcome.seed,
        "tracing": outcome.tracing,
        "passed": verdict.passed(),
        "violations": verdict.violations.iter().map(|v| json!({ "invariant": v.invariant, "message": v.message })).collect::<Vec<_>>(),
        "failures": verdict.failures.iter().map(|f| json!({
            "assertion": f.assertion, "target": f.target, "expected": f.expected, "actual": f.actual,
        })).collect::<Vec<_>>(),
        "unchecked": verdict.unchecked.iter().map(|u| json!({ "check": u.check, "why": u.why })).collect::<Vec<_>>(),
        "kept_apart": outcome.foreign.iter().map(|f| json!({
            "trace_id": f.trace_id.to_string(), "service": f.service, "spans": f.spans, "first": f.first,
        })).collect::<Vec<_>>(),
        "spans": spans,
        "logs": logs,
        "steps": steps,
        "mock_requests": requests,
    })
}
