//! The seed's log-line prefixes (`[trace:… span:… op:…]`, `[Request ID: …]`), formatted in one
//! place for the capture's log writer and every report, and id aliases (`trace_1`, `span_001`).

use std::collections::HashMap;
use std::fmt;

use super::ids::{SpanId, TraceId};
use super::model::{Captured, SpanRef};

/// `[trace:<trace> span:<span> op:<op>]`, exactly as the seed prints it.
pub struct SeedPrefix<T, S> {
    /// The trace, as the output shows it (hex id or alias).
    pub trace: T,
    /// The span, as the output shows it (hex id or alias).
    pub span: S,
    /// The span's operation.
    pub op: &'static str,
}

impl<T: fmt::Display, S: fmt::Display> fmt::Display for SeedPrefix<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[trace:{} span:{} op:{}]",
            self.trace, self.span, self.op
        )
    }
}

/// `[Request ID: <id>]`, the prefix request-ID-only logging printed before tracing.
pub struct RequestIdPrefix<'a>(pub &'a str);

impl fmt::Display for RequestIdPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[Request ID: {}]", self.0)
    }
}

/// The prefix a log line starts with: [`SeedPrefix`] when it was written in a span,
/// [`RequestIdPrefix`] outside one with a request id, nothing otherwise. `Display` writes the
/// prefix alone; the crate's `write_before` writes it with the space before the message.
pub struct LinePrefix<'a, T, S> {
    span: Option<SeedPrefix<T, S>>,
    request_id: Option<&'a str>,
}

impl<'a, T: fmt::Display, S: fmt::Display> LinePrefix<'a, T, S> {
    /// The prefix of a line written in `span` (`(trace, span, operation)`, shown as given) or
    /// in the request `request_id`.
    pub(crate) fn new(span: Option<(T, S, &'static str)>, request_id: Option<&'a str>) -> Self {
        LinePrefix {
            span: span.map(|(trace, span, op)| SeedPrefix { trace, span, op }),
            request_id,
        }
    }

    /// Whether the line has no prefix: written outside any span and request.
    pub(crate) fn is_empty(&self) -> bool {
        self.span.is_none() && self.request_id.is_none()
    }

    /// Writes the prefix and the space that separates it from the message; nothing for a line
    /// without a prefix. `out` gets the line's start exactly as the seed writes it.
    #[inline]
    pub(crate) fn write_before(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        write!(out, "{self} ")
    }
}

impl<'a> LinePrefix<'a, TraceId, SpanId> {
    /// The prefix with the W3C hex ids, as the service writes it and the NDJSON export keeps it.
    #[inline]
    pub(crate) fn of(span: Option<SpanRef>, request_id: Option<&'a str>) -> Self {
        LinePrefix::new(span.map(|s| (s.trace_id, s.span_id, s.op)), request_id)
    }
}

impl<T: fmt::Display, S: fmt::Display> fmt::Display for LinePrefix<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.span, self.request_id) {
            (Some(span), _) => fmt::Display::fmt(span, f),
            (None, Some(id)) => fmt::Display::fmt(&RequestIdPrefix(id), f),
            (None, None) => Ok(()),
        }
    }
}

/// The text after `key` in a seed prefix, up to the next space or `]`: `trace:` gives the trace
/// id, `op:` the operation. The seed's `extract("trace:([^\\s]+)", 1, prefix)` stops only at
/// white space; stopping at `]` too keeps the operation, the prefix's last part, clean.
pub fn prefix_part<'a>(prefix: &'a str, key: &str) -> Option<&'a str> {
    let start = prefix.find(key)? + key.len();
    let rest = &prefix[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ']')
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// A log line in the seed's format, read back: `[trace:<trace> span:<span> op:<op>] <message>`,
/// the prefix anywhere in the line (a logger may write a timestamp or level before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedLine<'a> {
    /// The trace, as the line shows it.
    pub trace: &'a str,
    /// The span, as the line shows it.
    pub span: &'a str,
    /// The operation.
    pub op: &'a str,
    /// The text after the prefix, trimmed.
    pub message: &'a str,
}

/// Why a line is not in the seed's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedLineError {
    /// No `[trace:` in it.
    #[error("not a seed-format line `[trace:… span:… op:…] message`")]
    NoPrefix,
    /// `[trace:` without its `]`.
    #[error("the `[trace:…` prefix is not closed")]
    Unclosed,
    /// A prefix without one of its parts.
    #[error("the prefix lacks `trace:`, `span:` or `op:`")]
    MissingPart,
}

impl<'a> SeedLine<'a> {
    /// Reads `line`, or says why it is not in the seed's format.
    pub fn parse(line: &'a str) -> Result<Self, SeedLineError> {
        let start = line.find("[trace:").ok_or(SeedLineError::NoPrefix)?;
        let end = line[start..]
            .find(']')
            .map(|i| start + i)
            .ok_or(SeedLineError::Unclosed)?;
        let prefix = &line[start..=end];
        let part = |key| prefix_part(prefix, key).ok_or(SeedLineError::MissingPart);
        Ok(SeedLine {
            trace: part("trace:")?,
            span: part("span:")?,
            op: part("op:")?,
            message: line[end + 1..].trim(),
        })
    }
}

/// Short, stable names for ids, numbered by first appearance (span creation order), so replay
/// output reads like the seed and stays byte-identical across runs and machines.
#[derive(Debug, Default)]
pub struct Aliases {
    traces: HashMap<TraceId, usize>,
    spans: HashMap<SpanId, usize>,
}

impl Aliases {
    /// Aliases for every trace and span in `captured`, numbered in span creation order.
    pub fn of(captured: &Captured) -> Self {
        let mut aliases = Aliases::default();
        for span in &captured.spans {
            let n = aliases.traces.len() + 1;
            aliases.traces.entry(span.trace_id).or_insert(n);
            let n = aliases.spans.len() + 1;
            aliases.spans.entry(span.span_id).or_insert(n);
        }
        aliases
    }

    /// `trace_<n>` for a captured trace, its hex id otherwise.
    pub(crate) fn trace(&self, id: TraceId) -> Alias<TraceId> {
        Alias {
            id,
            n: self.traces.get(&id).copied(),
        }
    }

    /// `span_<nnn>` for a captured span, its hex id otherwise.
    pub fn span(&self, id: SpanId) -> Alias<SpanId> {
        Alias {
            id,
            n: self.spans.get(&id).copied(),
        }
    }
}

/// An id as replay output shows it: its alias, or its hex form if it was never captured (a
/// parent that came from outside the replay).
#[derive(Clone, Copy)]
pub struct Alias<I> {
    id: I,
    n: Option<usize>,
}

impl fmt::Display for Alias<TraceId> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.n {
            Some(n) => write!(f, "trace_{n}"),
            None => write!(f, "{}", self.id),
        }
    }
}

impl fmt::Display for Alias<SpanId> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.n {
            Some(n) => write!(f, "span_{n:03}"),
            None => write!(f, "{}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(prefix: LinePrefix<'_, &str, &str>, message: &str) -> String {
        let mut out = String::new();
        prefix.write_before(&mut out).unwrap();
        out.push_str(message);
        out
    }

    #[test]
    fn a_line_starts_with_its_span_then_its_request_then_nothing() {
        let span = Some(("trace_1", "span_001", "booking_creation"));
        assert_eq!(
            line(LinePrefix::new(span, Some("req-1")), "started"),
            "[trace:trace_1 span:span_001 op:booking_creation] started"
        );
        assert_eq!(
            line(LinePrefix::new(None, Some("req-1")), "started"),
            "[Request ID: req-1] started"
        );
        assert_eq!(line(LinePrefix::new(None, None), "started"), "started");
        assert_eq!(LinePrefix::<&str, &str>::new(None, None).to_string(), "");
        assert_eq!(
            LinePrefix::new(span, None).to_string(),
            "[trace:trace_1 span:span_001 op:booking_creation]"
        );
    }

    #[test]
    fn prefix_parts_are_extracted_like_the_seed_does() {
        let p = "[trace:abc123 span:span_002 op:calendar_event_creation]";
        assert_eq!(prefix_part(p, "trace:"), Some("abc123"));
        assert_eq!(prefix_part(p, "span:"), Some("span_002"));
        assert_eq!(prefix_part(p, "op:"), Some("calendar_event_creation"));
        assert_eq!(prefix_part("[Request ID: x]", "op:"), None);
        assert_eq!(prefix_part("[trace: span:s]", "trace:"), None);
    }

    #[test]
    fn a_seed_line_reads_back_as_it_was_written() {
        let line = "2026-12-01T10:00:00Z INFO [trace:trace_xyz123 span:span_002 op:calendar_event_creation] Google Calendar API error: Rate limit exceeded ";
        assert_eq!(
            SeedLine::parse(line),
            Ok(SeedLine {
                trace: "trace_xyz123",
                span: "span_002",
                op: "calendar_event_creation",
                message: "Google Calendar API error: Rate limit exceeded",
            })
        );
        assert_eq!(
            SeedLine::parse("[Request ID: r1] started"),
            Err(SeedLineError::NoPrefix)
        );
        assert_eq!(
            SeedLine::parse("[trace:t span:s op:o"),
            Err(SeedLineError::Unclosed)
        );
        assert_eq!(
            SeedLine::parse("[trace:t op:o] m"),
            Err(SeedLineError::MissingPart)
        );
    }

    #[test]
    fn with_w3c_ids_the_prefix_shows_them_in_hex() {
        let span = SpanRef {
            trace_id: TraceId::from_bytes([0xab; 16]).unwrap(),
            span_id: SpanId::from_bytes([0x01; 8]).unwrap(),
            op: "op",
        };
        assert_eq!(
            LinePrefix::of(Some(span), Some("ignored in a span")).to_string(),
            format!("[trace:{} span:0101010101010101 op:op]", "ab".repeat(16))
        );
    }
}
