//! Incident import: seed-format log lines (`[trace:… span:… op:…] message`), the NDJSON
//! export, or an OTLP/JSON trace (`--format otlp-json`, or one exported from any OpenTelemetry
//! pipeline) → the incident they show (`read`) → the scenario that makes the service do it
//! again (`infer`: event types, every mock's answers in call order, the timeline) → its times,
//! fitted by replaying it against the times the input shows (`fit`) → the file (`draft`).
//!
//! An input holding several traces imports them all, as concurrent bookings; `--trace` picks
//! one. `# TODO` lines say what the input lacks and what was assumed; `# TODO (not
//! reproduced)` lines, what the replay will show otherwise than the incident.
//!
//! Files import only those listed before them: `draft`, `read`, `infer`, `fit`.

mod draft;
mod fit;
mod infer;
mod read;

pub use read::{Form, Incident, Level, Line, Span, Trace, MAX_REPORTED_BAD_LINES};

use crate::query::BadLine;
use read::{ReadError, MAX_LINES};

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
    /// `--trace` names no trace of the log, or more than one.
    #[error("{error}; the log holds: {}", .known.join(", "))]
    NoSuchTrace {
        /// Why the name does not pick one trace.
        error: crate::query::TraceRefError,
        /// The trace ids the log does hold, in order of first appearance.
        known: Vec<String>,
    },
    /// The log has more than a million lines; the import stops rather than read on.
    #[error("the log has more than {MAX_LINES} lines; cut out the incident's trace first")]
    TooLong,
    /// A JSON document that is not an OTLP/JSON trace export.
    #[error("{path}: not an OTLP/JSON trace export: {reason}")]
    NotOtlp {
        /// The input.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The scenario written does not replay: a bug of the importer, reported with the file.
    #[error("{0}")]
    Fit(String),
}

fn first_bad(bad: &[BadLine]) -> String {
    bad.first()
        .map(|b| format!("; first bad line: {b}"))
        .unwrap_or_default()
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The first imported trace.
    pub trace: String,
    /// Every imported trace, in order of first appearance.
    pub traces: Vec<String>,
    /// Their spans, as the input shows them.
    pub spans: Vec<Span>,
    /// The input's form.
    pub form: Form,
    /// The scenario file's text.
    pub scenario: String,
    /// Traces in the log that `--trace` left out.
    pub other_traces: Vec<String>,
    /// The first unusable lines.
    pub bad: Vec<BadLine>,
    /// How many lines were unusable in all.
    pub bad_count: usize,
    /// `# TODO` lines in the scenario.
    pub todos: usize,
    /// What the scenario does not reproduce (also among the TODOs). Empty: its replay shows
    /// the incident's operations, nesting, statuses and, where the input has times, timings.
    pub unmapped: Vec<String>,
}

/// Reads `text` (from `path`, for messages), keeps `trace` (an id, a unique prefix of one, or
/// `trace_N`, the N-th in order of first appearance) or every trace, and writes the scenario.
pub fn import(
    path: &std::path::Path,
    text: &str,
    trace: Option<&str>,
    description: &str,
) -> Result<Imported, ImportError> {
    let read = read::read(path, text).map_err(|e| match e {
        ReadError::TooLong => ImportError::TooLong,
        ReadError::Otlp(reason) => ImportError::NotOtlp {
            path: path.to_owned(),
            reason,
        },
    })?;
    let mut incident = read.incident;
    if incident.traces.is_empty() && incident.untraced.is_empty() {
        return Err(ImportError::NothingUsable {
            lines: read.lines,
            bad: read.bad,
        });
    }
    let known: Vec<String> = incident.traces.iter().map(|t| t.id.clone()).collect();
    let mut other_traces = Vec::new();
    if let Some(asked) = trace {
        let chosen = match pick(&known, asked) {
            Ok(chosen) => chosen,
            Err(error) => return Err(ImportError::NoSuchTrace { error, known }),
        };
        other_traces = known.iter().filter(|t| **t != chosen).cloned().collect();
        incident.traces.retain(|t| t.id == chosen);
    }
    let mut draft = infer::draft(&incident);
    if incident.timed {
        let fitted =
            fit::fit(&mut draft, &incident).map_err(|e| ImportError::Fit(e.to_string()))?;
        for param in fitted.unmeasured {
            draft.todos.push(format!(
                "nothing in the log measures {param}: kept as guessed"
            ));
        }
        if !fitted.mismatches.is_empty() {
            let shown: Vec<&str> = fitted
                .mismatches
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            draft.unmapped.push(format!(
                "the replay's times differ from the log's in {} place(s): {}",
                fitted.mismatches.len(),
                shown.join("; ")
            ));
        }
    }
    let traces: Vec<String> = incident.traces.iter().map(|t| t.id.clone()).collect();
    let header = format!(
        "# Imported by `trace-harness import` from {} ({}).\n",
        match traces.as_slice() {
            [one] => format!("trace {one}"),
            many => format!("{} concurrent traces: {}", many.len(), many.join(", ")),
        },
        match read.form {
            Form::SeedText => "seed-format lines",
            Form::Ndjson => "NDJSON",
            Form::OtlpJson => "OTLP/JSON",
        }
    );
    let scenario = draft.render(&header, description);
    Ok(Imported {
        trace: traces.first().cloned().unwrap_or_default(),
        spans: incident
            .traces
            .iter()
            .flat_map(|t| t.spans.clone())
            .collect(),
        traces,
        form: read.form,
        scenario,
        other_traces,
        bad: read.bad,
        bad_count: read.bad_count,
        todos: draft.todos.len() + draft.unmapped.len(),
        unmapped: draft.unmapped,
    })
}

/// The trace `asked` names among `known`: the id itself (seed-format ids need not be hex), or
/// what `query` accepts — a unique prefix of a hex id in any case, or `trace_N`, the N-th in
/// order of first appearance, as the views alias them.
fn pick(known: &[String], asked: &str) -> Result<String, crate::query::TraceRefError> {
    if known.iter().any(|t| t == asked) {
        return Ok(asked.to_owned());
    }
    let known: Vec<crate::query::KnownTrace> = known
        .iter()
        .map(|id| crate::query::KnownTrace {
            id: id.clone(),
            replay: None,
        })
        .collect();
    crate::query::resolve_trace_id(asked, &known)
}
