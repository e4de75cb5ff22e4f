//! A log-only service's telemetry: the seed-format lines (`[trace:… span:… op:…] message`) it
//! wrote on standard output, read into the trace model so that selectors and views work on
//! them as on spans. What lines cannot show stays empty: no parent, no link, no time (every
//! span and line is at zero), no status, no attributes. `expect` knows this from the outcome
//! and says which checks it therefore could not make.

use std::collections::HashMap;

use super::intern::intern;
use crate::clock::VirtualTime;
use crate::trace::{
    Captured, Fields, LogLine, SeedLine, SeedLineError, Seq, SpanData, SpanId, TraceId,
};

/// How many malformed lines are described one by one.
const MAX_DESCRIBED: usize = 10;

/// What a service's output lines showed.
#[derive(Clone, Debug, Default)]
pub struct FromLines {
    /// One span per logged span id, in order of its first line; every line as a log line.
    pub captured: Captured,
    /// Lines with a seed prefix that could not be read (bad ids, a span under two operations).
    pub malformed: usize,
    /// The first of them, described: `line 12: …`.
    pub problems: Vec<String>,
}

/// Reads the seed-format lines among `lines` (1-based line numbers in the order given); any
/// other line (a start-up banner, a stack trace) is not telemetry and is passed over.
pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> FromLines {
    let mut out = FromLines::default();
    let mut index: HashMap<SpanId, usize> = HashMap::new();
    let mut seq: Seq = 0;
    for (n, text) in lines.into_iter().enumerate() {
        let mut bad = |why: String| {
            out.malformed += 1;
            if out.problems.len() < MAX_DESCRIBED {
                out.problems.push(format!("line {}: {why}", n + 1));
            }
        };
        let line = match SeedLine::parse(text) {
            Ok(line) => line,
            Err(SeedLineError::NoPrefix) => continue,
            Err(e) => {
                bad(e.to_string());
                continue;
            }
        };
        let Some(trace_id) = TraceId::from_hex(line.trace) else {
            bad(format!(
                "trace `{}` is not 32 lowercase hex digits, not all zero",
                line.trace
            ));
            continue;
        };
        let Some(span_id) = SpanId::from_hex(line.span) else {
            bad(format!(
                "span `{}` is not 16 lowercase hex digits, not all zero",
                line.span
            ));
            continue;
        };
        let op = match intern(line.op) {
            Ok(op) => op,
            Err(e) => {
                bad(format!("operation: {e}"));
                continue;
            }
        };
        let spans = &mut out.captured.spans;
        let at = *index.entry(span_id).or_insert_with(|| {
            spans.push(SpanData::seen_in_logs(
                seq,
                trace_id,
                span_id,
                op,
                VirtualTime::ZERO,
            ));
            seq += 1;
            spans.len() - 1
        });
        let span = &spans[at];
        if span.trace_id != trace_id || span.op != op {
            bad(format!(
                "span {span_id} logged as `{op}` in trace {trace_id}, first as `{}` in trace {}",
                span.op, span.trace_id
            ));
            continue;
        }
        let span = span.span_ref();
        out.captured.logs.push(LogLine {
            seq,
            at: VirtualTime::ZERO,
            level: tracing::Level::INFO,
            message: line.message.to_owned(),
            fields: Fields::new(),
            target: "",
            span: Some(span),
            request_id: None,
        });
        seq += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const T2: &str = "0af7651916cd43dd8448eb211c80319c";

    #[test]
    fn each_logged_span_becomes_a_span_and_each_line_one_of_its_lines() {
        let lines = [
            "listening on http://127.0.0.1:3000".to_owned(),
            format!("[trace:{T1} span:00f067aa0ba902b7 op:booking_creation] Booking creation started"),
            format!("[trace:{T1} span:00f067aa0ba902b8 op:calendar_event_creation] EventManager.create started"),
            format!("[trace:{T1} span:00f067aa0ba902b7 op:booking_creation] Booking created"),
            format!("[trace:{T2} span:00f067aa0ba902b9 op:webhook_execution] Webhook executed"),
        ];
        let read = from_lines(lines.iter().map(String::as_str));
        assert_eq!(read.malformed, 0, "{:?}", read.problems);
        let ops: Vec<&str> = read.captured.spans.iter().map(|s| s.op).collect();
        assert_eq!(
            ops,
            [
                "booking_creation",
                "calendar_event_creation",
                "webhook_execution"
            ]
        );
        assert!(read.captured.spans.iter().all(|s| s.parent.is_none()));
        assert_eq!(read.captured.trace_ids().len(), 2);
        let messages: Vec<&str> = read
            .captured
            .logs
            .iter()
            .map(|l| l.message.as_str())
            .collect();
        assert_eq!(
            messages,
            [
                "Booking creation started",
                "EventManager.create started",
                "Booking created",
                "Webhook executed"
            ]
        );
        let first = &read.captured.spans[0];
        assert_eq!(read.captured.logs[2].span, Some(first.span_ref()));
        // Spans and lines share one numbering, each span before its first line.
        let mut seqs: Vec<Seq> = read.captured.spans.iter().map(|s| s.seq).collect();
        seqs.extend(read.captured.logs.iter().map(|l| l.seq));
        seqs.sort_unstable();
        assert_eq!(seqs, (0..7).collect::<Vec<Seq>>());
    }

    #[test]
    fn lines_with_unreadable_ids_are_counted_and_described_not_kept() {
        let lines = [
            "[trace:trace_xyz123 span:span_001 op:booking_creation] Cal.com's own ids".to_owned(),
            format!("[trace:{T1} span:0000000000000000 op:booking_creation] zero span"),
            format!("[trace:{T1} span:00f067aa0ba902b7 op:booking_creation] fine"),
            format!(
                "[trace:{T2} span:00f067aa0ba902b7 op:webhook_execution] same span, other trace"
            ),
            format!("[trace:{T1} span:00f067aa0ba902b8 op:booking_creation unclosed"),
        ];
        let read = from_lines(lines.iter().map(String::as_str));
        assert_eq!(read.malformed, 4);
        assert!(
            read.problems[0].starts_with("line 1: trace `trace_xyz123` is not 32"),
            "{:?}",
            read.problems
        );
        assert!(read.problems[1].starts_with("line 2: span `0000000000000000`"));
        assert!(read.problems[2]
            .starts_with("line 4: span 00f067aa0ba902b7 logged as `webhook_execution`"));
        assert_eq!(
            read.problems[3],
            "line 5: the `[trace:…` prefix is not closed"
        );
        assert_eq!(read.captured.spans.len(), 1);
        assert_eq!(read.captured.logs.len(), 1);
    }
}
