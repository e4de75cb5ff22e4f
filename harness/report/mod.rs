//! Every output format of a replay: the span tree, the seed-style log view, the request-ID log
//! view, and failure diagnostics. Computes no facts of its own.

use std::fmt::Write as _;

use crate::clock::Compact;
use crate::expect::Verdict;
use crate::runner::ReplayOutcome;
use crate::trace::{Aliases, Captured, RequestIdPrefix, SeedPrefix, SpanData, SpanId, SpanStatus};

/// One line of the seed-style log view, with its parts kept apart for tests and filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedLine {
    /// `(trace alias, span alias, operation)` when the line was written inside a span.
    pub prefix: Option<(String, String, &'static str)>,
    pub request_id: Option<String>,
    pub message: String,
}

impl SeedLine {
    pub fn op(&self) -> Option<&'static str> {
        self.prefix.as_ref().map(|(_, _, op)| *op)
    }

    /// `[trace:trace_1 span:span_001 op:booking_creation] Booking creation started…`
    pub fn traced(&self) -> String {
        match (&self.prefix, &self.request_id) {
            (Some((trace, span, op)), _) => {
                format!("{} {}", SeedPrefix { trace, span, op }, self.message)
            }
            (None, Some(id)) => format!("{} {}", RequestIdPrefix(id), self.message),
            (None, None) => self.message.clone(),
        }
    }

    /// `[Request ID: 5k2x…] Booking creation started…`, as logging showed it before tracing.
    pub fn with_request_id(&self) -> String {
        let id = self.request_id.as_deref().unwrap_or("-");
        format!("{} {}", RequestIdPrefix(id), self.message)
    }
}

/// The replay's log lines, in the order they were written, ids aliased.
pub fn seed_lines(outcome: &ReplayOutcome) -> Vec<SeedLine> {
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    captured
        .logs
        .iter()
        .map(|line| SeedLine {
            prefix: line.span.map(|s| {
                (
                    aliases.trace(s.trace_id).to_string(),
                    aliases.span(s.span_id).to_string(),
                    s.op,
                )
            }),
            request_id: line.request_id.as_deref().map(str::to_owned),
            message: one_line(&line.message),
        })
        .collect()
}

/// Text from outside (attendee names, a third party's error message) made safe to print on
/// one line of any output:
/// - control characters, C1 included, are escaped (`\n`, `\u{1b}`), so nothing splits a line
///   and no ANSI sequence reaches a terminal;
/// - line and paragraph separators and bidirectional overrides are escaped, so nothing looks
///   like a new line or reorders one on screen;
/// - a `[` that opens something shaped like our prefixes (`[trace:`, `[Request ID:`) becomes
///   `\[`, so a forged prefix never reads as a real one, even on a line without a prefix;
/// - `\` itself becomes `\\`, so every escape is unambiguous.
pub fn one_line(message: &str) -> String {
    if !message.chars().any(needs_escape) {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len() + 8);
    for (i, c) in message.char_indices() {
        match c {
            '\\' => out.push_str("\\\\"),
            '[' if opens_prefix(&message[i..]) => out.push_str("\\["),
            c if c.is_control() => out.extend(c.escape_default()),
            c if is_invisible_layout(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c == '[' || c.is_control() || is_invisible_layout(c)
}

/// U+2028/U+2029 end a line in some viewers; the bidi controls reorder what is shown.
fn is_invisible_layout(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn opens_prefix(rest: &str) -> bool {
    let rest = rest.as_bytes();
    let starts = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
    starts(b"[trace:") || starts(b"[request id:")
}

pub fn seed_log_view(outcome: &ReplayOutcome) -> String {
    lines(seed_lines(outcome).iter().map(SeedLine::traced))
}

pub fn request_id_view(outcome: &ReplayOutcome) -> String {
    lines(seed_lines(outcome).iter().map(SeedLine::with_request_id))
}

fn lines(lines: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The span tree, one trace after another; spans in `flagged` are marked with `✗`.
pub fn tree(outcome: &ReplayOutcome, flagged: &[SpanId]) -> String {
    let captured = &outcome.captured;
    if captured.spans.is_empty() {
        return "(no spans: tracing is off)\n".to_owned();
    }
    let aliases = Aliases::of(captured);
    let mut out = String::new();
    for trace in captured.trace_ids() {
        let _ = writeln!(out, "{}", aliases.trace(trace));
        let roots: Vec<&SpanData> = captured
            .spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .filter(|s| s.parent_id().and_then(|p| captured.span(p)).is_none())
            .collect();
        for (i, root) in roots.iter().enumerate() {
            let last = i + 1 == roots.len();
            write_span(&mut out, captured, &aliases, root, "", last, flagged);
        }
    }
    out
}

fn write_span(
    out: &mut String,
    captured: &Captured,
    aliases: &Aliases,
    span: &SpanData,
    indent: &str,
    last: bool,
    flagged: &[SpanId],
) {
    let mark = if flagged.is_empty() {
        ""
    } else if flagged.contains(&span.span_id) {
        "✗ "
    } else {
        "  "
    };
    let branch = if last { "└─ " } else { "├─ " };
    let status = match &span.status {
        SpanStatus::Ok => "ok".to_owned(),
        SpanStatus::Error(message) => format!("error: {}", one_line(message)),
    };
    let _ = write!(
        out,
        "{mark}{indent}{branch}{} {} {} {} {status}",
        aliases.span(span.span_id),
        span.op,
        span.start,
        Compact(span.duration()),
    );
    for (key, value) in &span.fields {
        let _ = write!(out, " {key}={}", one_line(&value.to_string()));
    }
    for link in &span.links {
        let _ = write!(out, " ⇠ follows {}", aliases.span(*link));
    }
    out.push('\n');
    let children: Vec<&SpanData> = captured.children(span.span_id).collect();
    let indent = format!("{indent}{}", if last { "   " } else { "│  " });
    for (i, child) in children.iter().enumerate() {
        write_span(
            out,
            captured,
            aliases,
            child,
            &indent,
            i + 1 == children.len(),
            flagged,
        );
    }
}

/// One screen explaining why a replay failed: every broken invariant and assertion, then the
/// tree with the offending spans marked.
pub fn diagnostics(outcome: &ReplayOutcome, verdict: &Verdict) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "FAILED {} (seed {}, tracing {})",
        outcome.scenario,
        outcome.seed,
        if outcome.tracing { "on" } else { "off" }
    );
    let aliases = Aliases::of(&outcome.captured);
    let named = |spans: &[SpanId]| {
        spans
            .iter()
            .map(|s| aliases.span(*s).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for v in &verdict.violations {
        let _ = writeln!(out, "  invariant {}: {}", v.invariant, one_line(&v.message));
        if !v.spans.is_empty() {
            let _ = writeln!(out, "    spans: {}", named(&v.spans));
        }
    }
    for f in &verdict.failures {
        let _ = writeln!(out, "  assertion {:?} on {}", f.assertion, f.target);
        let _ = writeln!(out, "    expected: {}", f.expected);
        let _ = writeln!(out, "    actual:   {}", one_line(&f.actual));
        if !f.spans.is_empty() {
            let _ = writeln!(out, "    matched:  {}", named(&f.spans));
        }
    }
    out.push('\n');
    out.push_str(&tree(outcome, &verdict.flagged_spans()));
    out
}
