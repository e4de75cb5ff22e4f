//! The one entry from judged replays to output: [`render`] picks the format's renderer and
//! returns what the run prints and writes, in order. Each format's text is made in its own file.

use super::pieces::{Judged, Piece, RenderOptions};
use super::{html, json, junit, ndjson, otlp, text};

/// What a run prints for each replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A human-readable view per replay (see [`text::View`]).
    Text(text::View),
    /// One JSON document per replay.
    Json,
    /// A JUnit XML report for the whole run.
    Junit,
    /// One JSON object per log line.
    Ndjson,
    /// One OTLP/JSON `ExportTraceServiceRequest` per replay.
    OtlpJson,
    /// A self-contained HTML waterfall per replay.
    Html,
}

impl Format {
    /// Whether standard output holds a document a program parses (the run's summary then goes
    /// to standard error, to keep it parseable), when nothing is written to files.
    pub(crate) fn is_document(self) -> bool {
        !matches!(self, Format::Text(_))
    }
}

/// Why the replays cannot be shown as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// Several HTML pages cannot share standard output.
    #[error("--format html writes one page per replay: give --out DIR")]
    HtmlNeedsOut,
}

/// Every replay's output in `format`, as the pieces to print and write in order.
pub fn render(
    format: Format,
    judged: &[Judged<'_>],
    options: RenderOptions,
) -> Result<Vec<Piece>, RenderError> {
    Ok(match format {
        Format::Text(view) => text::render(view, judged, options),
        Format::Json => json::render(judged, options),
        Format::Junit => junit::render(judged, options),
        Format::Ndjson => ndjson::render(judged, options),
        Format::OtlpJson => otlp::render(judged, options),
        Format::Html if !options.to_files && judged.len() > 1 => {
            return Err(RenderError::HtmlNeedsOut)
        }
        Format::Html => html::render(judged, options),
    })
}
