//! Every output format of a replay: the span tree, the seed-style log view, the request-ID log
//! view, and failure diagnostics here; one file per further format, all reached through
//! [`render()`] (or, a replay at a time, [`StreamRenderer`]). Computes no facts of its own.

pub mod diff;
pub mod epoch;
mod explain;
pub mod html;
mod json;
mod junit;
pub mod ndjson;
pub mod otlp;
pub mod otlp_http;
mod pieces;
pub(crate) mod privacy;
pub mod render;
mod stream;
pub mod text;

pub use explain::explain;
pub(crate) use json::json;
pub(crate) use junit::junit;
pub use pieces::{Judged, Piece, RenderOptions, Replayed};
pub use render::{render, Format, RenderError};
pub use stream::StreamRenderer;

use std::fmt::Write as _;

use crate::clock::Compact;
use crate::contract::{operation_label, BOOKING_CREATION};
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;
use crate::trace::{
    Aliases, Captured, LinePrefix, LogLine, ParentKind, RequestIdPrefix, SpanData, SpanId,
    SpanStatus,
};

/// One line of the seed-style log view, with its parts kept apart for tests and filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedLine {
    /// `(trace alias, span alias, operation)` when the line was written inside a span.
    pub prefix: Option<(String, String, &'static str)>,
    /// The request the line was written in, if any.
    pub request_id: Option<String>,
    /// The message, made safe for one line ([`one_line`]).
    pub message: String,
}

impl SeedLine {
    /// The operation of the span the line was written in.
    pub fn op(&self) -> Option<&'static str> {
        self.prefix.as_ref().map(|(_, _, op)| *op)
    }

    /// `[trace:trace_1 span:span_001 op:booking_creation] Booking creation started…`
    pub fn traced(&self) -> String {
        let span = self
            .prefix
            .as_ref()
            .map(|(trace, span, op)| (trace, span, *op));
        let mut line = String::new();
        // Writing into a String cannot fail.
        let _ = LinePrefix::new(span, self.request_id.as_deref()).write_before(&mut line);
        line.push_str(&self.message);
        line
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
        .filter(|line| in_seed_view(line))
        .map(|line| seed_line(&aliases, line))
        .collect()
}

/// Whether the seed-style log view shows `line`. The seed's listings are the `info`-and-above
/// story; the `debug` lines that mark where work ended or began are for the exports
/// (CONTRACT.md §8.5).
pub fn in_seed_view(line: &LogLine) -> bool {
    line.level <= tracing::Level::INFO
}

/// One line as the seed-style log view prints it, ids aliased by `aliases`.
pub(crate) fn seed_line(aliases: &Aliases, line: &LogLine) -> SeedLine {
    SeedLine {
        prefix: line.span.map(|s| {
            (
                aliases.trace(s.trace_id).to_string(),
                aliases.span(s.span_id).to_string(),
                s.op,
            )
        }),
        request_id: line.request_id.as_deref().map(str::to_owned),
        message: one_line(&line.message),
    }
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

/// The seed-style log view: every log line with its `[trace:… span:… op:…]` prefix.
pub fn seed_log_view(outcome: &ReplayOutcome) -> String {
    lines(seed_lines(outcome).iter().map(SeedLine::traced))
}

/// Every log line as request-ID-only logging showed it.
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

/// The performance view, one line per span of each booking's creation, like the seed's
/// Scenario 5: the booking span with its first log line, every other span with its duration
/// on virtual time (`EventManager.create: 200ms`).
pub fn timing_lines(outcome: &ReplayOutcome) -> Vec<SeedLine> {
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    let mut out = Vec::new();
    for root in captured.spans.iter().filter(|s| s.op == BOOKING_CREATION) {
        let prefix = |s: &SpanData| {
            Some((
                aliases.trace(s.trace_id).to_string(),
                aliases.span(s.span_id).to_string(),
                s.op,
            ))
        };
        let first_line = captured
            .logs
            .iter()
            .find(|l| l.span.is_some_and(|r| r.span_id == root.span_id));
        out.push(SeedLine {
            prefix: prefix(root),
            request_id: root.request_id.as_deref().map(str::to_owned),
            message: first_line.map_or_else(
                || format!("{}: {}", operation_label(root.op), Compact(root.duration())),
                |l| one_line(&l.message),
            ),
        });
        // Only the request's own work: async jobs (linked follows-from) ran later, elsewhere.
        let in_request = |s: &&SpanData| s.links.is_empty();
        let mut stack: Vec<&SpanData> =
            captured.children(root.span_id).filter(in_request).collect();
        stack.reverse();
        while let Some(span) = stack.pop() {
            out.push(SeedLine {
                prefix: prefix(span),
                request_id: span.request_id.as_deref().map(str::to_owned),
                message: format!("{}: {}", operation_label(span.op), Compact(span.duration())),
            });
            let mut children: Vec<&SpanData> =
                captured.children(span.span_id).filter(in_request).collect();
            children.reverse();
            stack.extend(children);
        }
    }
    out
}

/// The performance view and, per booking, its bottleneck.
pub fn timing_view(outcome: &ReplayOutcome) -> String {
    let mut out = lines(timing_lines(outcome).iter().map(SeedLine::traced));
    out.push_str(&bottleneck_lines(outcome));
    out
}

/// `bottleneck trace_1: payment_processing 4.2s of 4.55s (92.3%)`, one line per booking.
pub(crate) fn bottleneck_lines(outcome: &ReplayOutcome) -> String {
    let aliases = Aliases::of(&outcome.captured);
    let mut out = String::new();
    for b in &crate::expect::bottlenecks(&outcome.captured) {
        let share = b.share_permille();
        let _ = writeln!(
            out,
            "bottleneck {}: {} {} of {} ({}.{}%)",
            aliases.trace(b.trace_id),
            b.op,
            Compact(b.duration),
            Compact(b.total),
            share / 10,
            share % 10
        );
    }
    out
}

/// `failed webhook_jobs #1: HTTP 503`, one line per job that ended failed.
pub(crate) fn failed_job_lines(outcome: &ReplayOutcome) -> String {
    let mut out = String::new();
    for (table, id, reason) in &outcome.failed_jobs {
        let _ = writeln!(out, "failed {table} #{id}: {}", one_line(reason));
    }
    out
}

/// A trace's header line: its alias and, once, its real id (`trace_1 trace_id=4bf9…`), which
/// `query trace-operations` takes as readily as the alias.
fn trace_header(aliases: &Aliases, trace: crate::trace::TraceId) -> String {
    format!("{} trace_id={trace}", aliases.trace(trace))
}

/// One [`trace_header`] line per trace, in order of first appearance: what the log view opens
/// with when no tree precedes it.
pub fn trace_headers(outcome: &ReplayOutcome) -> String {
    let aliases = Aliases::of(&outcome.captured);
    let mut out = String::new();
    for trace in outcome.captured.trace_ids() {
        let _ = writeln!(out, "{}", trace_header(&aliases, trace));
    }
    out
}

/// What the crashes a replay's cron steps armed did, one line each, then one line per
/// delivery a subscriber got again because of them:
/// `crash at 5m: the service died at after_send in the cron call's job 1 (process 0; process 1 took over); never exported: 1 span of trace_1 that had sent requests`
/// `redelivered to subscriber in trace_1: first by a span lost in the crash at 5m, again by span_003`
pub fn crash_lines(outcome: &ReplayOutcome) -> String {
    let aliases = Aliases::of(&outcome.captured);
    let mut out = String::new();
    for crash in &outcome.crashes {
        let _ = write!(
            out,
            "crash at {}: the service died at {} in the cron call's job {} (process {}; process {} took over)",
            Compact(crash.at),
            crash.point,
            crash.job,
            crash.process,
            crash.process + 1
        );
        let mut traces: Vec<String> = Vec::new();
        for (trace, _) in &crash.lost {
            let alias = aliases.trace(*trace).to_string();
            if !traces.contains(&alias) {
                traces.push(alias);
            }
        }
        match crash.lost.len() {
            0 => out.push('\n'),
            n => {
                let _ = writeln!(
                    out,
                    "; never exported: {n} span{} of {} that had sent requests",
                    if n == 1 { "" } else { "s" },
                    traces.join(", ")
                );
            }
        }
    }
    for redelivery in crate::expect::redeliveries(outcome) {
        let (trace, _) = redelivery.senders[0];
        let senders: Vec<String> = (redelivery.senders.iter())
            .map(|(_, span)| match crate::expect::lost_at(outcome, *span) {
                Some((at, _)) => format!("a span lost in the crash at {}", Compact(at)),
                None => aliases.span(*span).to_string(),
            })
            .collect();
        let (first, again) = senders.split_at(1);
        let _ = writeln!(
            out,
            "redelivered to {} in {}: first by {}, again by {}",
            one_line(&redelivery.mock),
            aliases.trace(trace),
            first.join(""),
            again.join(", then by ")
        );
    }
    out
}

/// The span tree, one trace after another; spans in `flagged` are marked with `✗`. A replay
/// whose service died at a crash point ends with [`crash_lines`].
pub fn tree(outcome: &ReplayOutcome, flagged: &[SpanId]) -> String {
    let mut out = spans_tree(outcome, flagged);
    out.push_str(&crash_lines(outcome));
    out
}

fn spans_tree(outcome: &ReplayOutcome, flagged: &[SpanId]) -> String {
    let captured = &outcome.captured;
    if captured.spans.is_empty() {
        return "(no spans: tracing is off)\n".to_owned();
    }
    let aliases = Aliases::of(captured);
    let mut out = String::new();
    for trace in captured.trace_ids() {
        let _ = writeln!(out, "{}", trace_header(&aliases, trace));
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
    // A parent from outside the replay (a caller's `traceparent`): the trace continues it.
    if let Some((parent, ParentKind::Remote)) = span.parent {
        if captured.span(parent).is_none() {
            let _ = write!(out, " ⇠ continues {parent} (remote parent)");
        }
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
    out.push_str(&unjudged_lines(outcome, verdict));
    out.push('\n');
    out.push_str(&tree(outcome, &verdict.flagged_spans()));
    out
}

/// What a verdict leaves unjudged, one line each: checks the replay's telemetry could not
/// support, and traces kept apart as not the replay's. Nothing for an in-process replay.
pub(crate) fn unjudged_lines(outcome: &ReplayOutcome, verdict: &Verdict) -> String {
    let mut out = String::new();
    for unchecked in &verdict.unchecked {
        let _ = writeln!(
            out,
            "  not checked: {} ({})",
            one_line(&unchecked.check),
            unchecked.why
        );
    }
    for foreign in &outcome.foreign {
        let _ = writeln!(
            out,
            "  kept apart, not judged: trace {} from `{}`, {} span(s), first `{}`",
            foreign.trace_id,
            one_line(&foreign.service),
            foreign.spans,
            one_line(&foreign.first)
        );
    }
    out
}

/// The request-ID view and the traced view side by side: what tracing adds, line by line.
pub(crate) fn side_by_side(outcome: &ReplayOutcome) -> String {
    let lines = seed_lines(outcome);
    let left: Vec<String> = lines.iter().map(SeedLine::with_request_id).collect();
    let width = left.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut out = format!(
        "{:width$}   {}\n",
        "request IDs only", "with distributed tracing"
    );
    for (l, line) in left.iter().zip(&lines) {
        let pad = width - l.chars().count();
        let _ = writeln!(out, "{l}{}   {}", " ".repeat(pad), line.traced());
    }
    out
}
