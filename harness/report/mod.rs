//! Every output format of a replay: the span tree, the seed-style log view, the request-ID log
//! view, and failure diagnostics. Computes no facts of its own.

pub mod epoch;
pub mod html;
pub mod ndjson;
pub mod otlp;
pub mod otlp_http;
pub mod privacy;

use std::fmt::Write as _;

use crate::clock::Compact;
use crate::contract::{operation_label, BOOKING_CREATION};
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
pub fn bottleneck_lines(outcome: &ReplayOutcome) -> String {
    let aliases = Aliases::of(&outcome.captured);
    let mut out = String::new();
    for b in &outcome.bottlenecks {
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
pub fn failed_job_lines(outcome: &ReplayOutcome) -> String {
    let mut out = String::new();
    for (table, id, reason) in &outcome.failed_jobs {
        let _ = writeln!(out, "failed {table} #{id}: {}", one_line(reason));
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

/// The request-ID view and the traced view side by side: what tracing adds, line by line.
pub fn side_by_side(outcome: &ReplayOutcome) -> String {
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

/// One replay as a JSON document: spans, log lines, HTTP steps, mock requests and findings.
pub fn json(outcome: &ReplayOutcome, verdict: &Verdict) -> serde_json::Value {
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
    let logs: Vec<_> = captured
        .logs
        .iter()
        .zip(seed_lines(outcome))
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
        "spans": spans,
        "logs": logs,
        "steps": steps,
        "mock_requests": requests,
    })
}

/// A scenario's replay result, for a JUnit report.
pub enum JunitCase<'a> {
    Judged(&'a ReplayOutcome, &'a Verdict),
    /// The replay itself could not run.
    Broken(&'a str, String),
}

/// A JUnit XML report: one test case per scenario, failures carrying the diagnostic text.
pub fn junit(cases: &[JunitCase<'_>]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("scenarios");
    for case in cases {
        let (name, status) = match case {
            JunitCase::Judged(outcome, verdict) if verdict.passed() => {
                (outcome.scenario.as_str(), TestCaseStatus::success())
            }
            JunitCase::Judged(outcome, verdict) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let count = verdict.violations.len() + verdict.failures.len();
                status
                    .set_message(format!("{count} expectation(s) failed"))
                    .set_type("trace assertion")
                    .set_description(diagnostics(outcome, verdict));
                (outcome.scenario.as_str(), status)
            }
            JunitCase::Broken(name, error) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(error.clone()).set_type("replay error");
                (*name, status)
            }
        };
        let mut test = TestCase::new(name, status);
        test.set_classname("trace-harness");
        suite.add_test_case(test);
    }
    let mut report = Report::new("trace-harness");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

/// What a scenario does and asserts, in words.
pub fn explain(scenario: &crate::scenario::Scenario) -> String {
    use crate::expect::Target;
    use crate::scenario::{Action, CronJob};
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", scenario.name, scenario.path.display());
    let _ = writeln!(out, "{}\n", scenario.description);
    let _ = writeln!(
        out,
        "seed {}: every id and fake attendee derives from it\n",
        scenario.seed
    );
    let _ = writeln!(out, "Mocks:");
    for (name, spec) in &scenario.mocks {
        let _ = write!(out, "  {name} ({})", spec.kind.name());
        let behaviours = spec.behaviours();
        if behaviours.is_empty() {
            out.push_str(": answers 200 at once");
        }
        for (i, b) in behaviours.iter().enumerate() {
            let what = b
                .error
                .as_deref()
                .map_or(String::new(), |e| format!(" {e}"));
            let then = if i + 1 == behaviours.len() && i > 0 {
                " (repeats)"
            } else {
                ""
            };
            let _ = write!(
                out,
                "\n    request {}: {}{what} after {}{then}",
                i + 1,
                b.status,
                Compact(b.latency)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nTimeline (virtual time):");
    for step in &scenario.timeline {
        let what = match &step.action {
            Action::Book(b) => format!(
                "book event type {}{}",
                b.event_type_id,
                b.title
                    .as_deref()
                    .map_or(String::new(), |t| format!(" ({t:?})"))
            ),
            Action::Cron(CronJob::Webhooks) => "run the webhooks cron".to_owned(),
            Action::Cron(CronJob::Reminders) => "run the email reminders cron".to_owned(),
            Action::Stripe(stripe) => format!(
                "Stripe delivers {:?} for PaymentIntent #{} ({:?} signature)",
                stripe.event, stripe.payment_intent, stripe.signature
            ),
            Action::Restart => "restart the booking service on the same database".to_owned(),
        };
        let _ = writeln!(out, "  {:>8}  {what}", format!("+{}", Compact(step.at)));
    }
    let _ = writeln!(out, "\nAsserts:");
    for (i, a) in scenario.expect.iter().enumerate() {
        let target = match &a.target {
            Target::Spans(s) => s.to_string(),
            Target::Mock(m) => format!("requests to mock `{m}`"),
        };
        let mut parts = Vec::new();
        if let Some(n) = a.count {
            parts.push(format!("exactly {n}"));
        }
        if let Some(s) = a.status {
            parts.push(format!("status {s:?}").to_lowercase());
        }
        if let Some(p) = &a.child_of {
            parts.push(format!("child of {p}"));
        }
        if let Some(c) = &a.follows_from {
            parts.push(format!("follows from {c}"));
        }
        if let Some(d) = &a.duration {
            parts.push(format!("duration {d}"));
        }
        for (name, test) in &a.attributes {
            parts.push(format!("{name} {test}"));
        }
        if let Some(e) = &a.events {
            parts.push(format!("{} events", e.count));
        }
        if let Some(l) = &a.log {
            parts.push(format!("a log line that {l}"));
        }
        let _ = writeln!(
            out,
            "  {}. {}\n     {target}: {}",
            i + 1,
            a.name,
            parts.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\nEvery replay also checks the built-in invariants: one trace per booking flow, parents exist,\nno open spans, children within parents, async work linked to its cause, mock requests carry\nthe sender's traceparent, log prefixes match their spans."
    );
    out
}
