//! `trace-harness diff`'s output: the differences between two replays as text (one block per
//! span, `~` changed, `-` only in A, `+` only in B), as JSON for tools, or as an HTML page with
//! the two waterfalls side by side and the differing spans marked (`html`).

use std::fmt::Write as _;

use serde_json::json;

use super::epoch::Epoch;
use super::one_line;
use crate::clock::Compact;
use crate::diff::{
    Carried, Change, Difference, Parent, Place, RequestKey, Side, Target, Tolerance, TraceDiff,
};
use crate::outcome::ReplayOutcome;
use crate::trace::{Aliases, SpanStatus};

/// One replay of the comparison, as the output names it.
#[derive(Clone, Copy, Debug)]
pub struct DiffSide<'a> {
    /// Where it came from: `scenarios/x.toml (in process)`, `baseline.json (JSON)`.
    pub label: &'a str,
    /// The replay.
    pub outcome: &'a ReplayOutcome,
}

/// Two replays of one scenario and what differs between them.
#[derive(Clone, Debug)]
pub struct Diffed<'a> {
    /// The scenario's name (A's, where the two differ).
    pub scenario: &'a str,
    /// The baseline.
    pub a: DiffSide<'a>,
    /// The replay compared with it.
    pub b: DiffSide<'a>,
    /// What differs.
    pub diff: &'a TraceDiff,
}

/// A whole `diff` run: every pair compared, and the scenarios only one side has.
#[derive(Clone, Debug, Default)]
pub struct DiffReport<'a> {
    /// The pairs, in A's order.
    pub compared: Vec<Diffed<'a>>,
    /// Scenarios A has and B does not.
    pub only_in_a: Vec<String>,
    /// Scenarios B has and A does not.
    pub only_in_b: Vec<String>,
}

impl DiffReport<'_> {
    /// Whether nothing differs.
    pub fn is_equal(&self) -> bool {
        self.only_in_a.is_empty()
            && self.only_in_b.is_empty()
            && self.compared.iter().all(|d| d.diff.is_empty())
    }
}

/// How one side's spans are named: by alias and operation.
struct Names<'a> {
    outcome: &'a ReplayOutcome,
    aliases: Aliases,
}

impl<'a> Names<'a> {
    fn of(outcome: &'a ReplayOutcome) -> Self {
        Names {
            outcome,
            aliases: Aliases::of(&outcome.captured),
        }
    }

    fn alias(&self, ix: usize) -> String {
        self.aliases
            .span(self.outcome.captured.spans[ix].span_id)
            .to_string()
    }

    fn op(&self, ix: usize) -> &'static str {
        self.outcome.captured.spans[ix].op
    }

    /// `span_003 webhook_scheduling`.
    fn span(&self, ix: usize) -> String {
        format!("{} {}", self.alias(ix), self.op(ix))
    }

    fn trace(&self, place: &Place) -> String {
        self.aliases.trace(place.trace).to_string()
    }

    fn parent(&self, parent: Option<Parent>) -> Option<String> {
        match parent? {
            Parent::Span(ix) => Some(self.alias(ix)),
            Parent::Remote(id) => Some(id.to_string()),
        }
    }

    fn target(&self, target: Target) -> String {
        match target {
            Target::Span(ix) => self.span(ix),
            Target::Remote(id) => format!("{id} (not captured)"),
        }
    }

    fn carried(&self, carried: &Carried) -> String {
        match carried {
            Carried::Nothing => "no traceparent".to_owned(),
            Carried::Invalid(text) => format!("an invalid traceparent `{}`", one_line(text)),
            Carried::Span(ix) => format!("the context of {}", self.span(*ix)),
            Carried::Remote(trace, span) => {
                format!("the context of span {span} in trace {trace} (not captured)")
            }
        }
    }

    /// `under span_003 webhook_scheduling in trace_1`, `the root of trace_2`.
    fn place(&self, place: &Place, held_parents: bool) -> String {
        match place.parent {
            Some(Parent::Span(ix)) => format!("under {} in {}", self.span(ix), self.trace(place)),
            Some(Parent::Remote(id)) => {
                format!("continuing {id} (remote parent) in {}", self.trace(place))
            }
            None if held_parents => format!("the root of {}", self.trace(place)),
            None => format!("in {}", self.trace(place)),
        }
    }
}

fn status(status: &SpanStatus) -> String {
    match status {
        SpanStatus::Ok => "ok".to_owned(),
        SpanStatus::Error(m) => format!("error: {}", one_line(m)),
    }
}

fn request(key: &RequestKey) -> String {
    format!(
        "mock `{}` {} {} #{}",
        key.mock,
        key.method,
        one_line(&key.path),
        key.nth + 1
    )
}

/// `120ms → 127ms (+7ms, +5.8%)`.
fn duration_change(from: std::time::Duration, to: std::time::Duration) -> String {
    let sign = if to >= from { "+" } else { "-" };
    let by = Compact(from.abs_diff(to));
    let percent = if from.is_zero() {
        String::new()
    } else {
        let p = (to.as_secs_f64() - from.as_secs_f64()) / from.as_secs_f64() * 100.0;
        format!(", {p:+.1}%")
    };
    format!("{} → {} ({sign}{by}{percent})", Compact(from), Compact(to))
}

/// The line a change gets under its span's heading (without the span itself).
fn change_line(change: &Change, a: &Names<'_>, b: &Names<'_>, held_parents: bool) -> String {
    let names = |side| match side {
        Side::A => a,
        Side::B => b,
    };
    match change {
        Change::Added => "only in B".to_owned(),
        Change::Removed => "only in A".to_owned(),
        Change::Moved {
            from,
            to,
            own_trace,
        } => format!(
            "moved{}: {} → {}",
            if *own_trace {
                " to a trace of its own"
            } else {
                ""
            },
            a.place(from, held_parents),
            b.place(to, held_parents),
        ),
        Change::Status { from, to } => format!("status: {} → {}", status(from), status(to)),
        Change::Attribute { key, from, to } => match (from, to) {
            (Some(f), Some(t)) => format!("attribute {key}: {} → {}", one_line(f), one_line(t)),
            (Some(f), None) => format!("attribute {key} removed (was {})", one_line(f)),
            (None, Some(t)) => format!("attribute {key} added: {}", one_line(t)),
            (None, None) => format!("attribute {key}"),
        },
        Change::Event {
            only_in,
            level,
            message,
        } => format!(
            "event {}: {}{}",
            added_or_removed(*only_in),
            level.map(|l| format!("[{l}] ")).unwrap_or_default(),
            one_line(message)
        ),
        Change::Duration { from, to } => format!("duration: {}", duration_change(*from, *to)),
        Change::Link { only_in, target } => format!(
            "link {}: ⇠ follows {}",
            added_or_removed(*only_in),
            names(*only_in).target(*target)
        ),
        Change::Request { key, only_in } => {
            format!("request {}: {}", added_or_removed(*only_in), request(key))
        }
        Change::Context { key, from, to } => format!(
            "{} carried {} → {}",
            request(key),
            a.carried(from),
            b.carried(to)
        ),
    }
}

fn added_or_removed(only_in: Side) -> &'static str {
    match only_in {
        Side::A => "removed",
        Side::B => "added",
    }
}

/// The heading of a span's block: `~ webhook_execution span_004` (both aliases when they
/// differ), `- span_002 calendar_event_creation`, `+ …`.
fn heading(d: &Difference, a: &Names<'_>, b: &Names<'_>) -> String {
    match (d.a, d.b) {
        (Some(i), None) => format!("- {}", a.span(i)),
        (None, Some(j)) => format!("+ {}", b.span(j)),
        (Some(i), Some(j)) if a.alias(i) == b.alias(j) => format!("~ {}", a.span(i)),
        (Some(i), Some(j)) => format!("~ {} (A {} · B {})", a.op(i), a.alias(i), b.alias(j)),
        (None, None) => "~ mock requests".to_owned(),
    }
}

/// One pair's differences as text: a block per span, then the mock requests; `no
/// differences` when there are none.
fn text_of(d: &Diffed<'_>) -> String {
    let (a, b) = (Names::of(d.a.outcome), Names::of(d.b.outcome));
    let held_parents = !d.diff.not_compared.iter().any(|n| n.part == "parents");
    let mut out = String::new();
    let _ = writeln!(out, "A: {}", d.a.label);
    let _ = writeln!(out, "B: {}", d.b.label);
    // One line per set of sides lacking parts: `not compared: parents, links (A cannot show them)`.
    let mut lacking: Vec<(&[Side], Vec<&str>)> = Vec::new();
    for n in &d.diff.not_compared {
        match lacking
            .iter_mut()
            .find(|(sides, _)| *sides == n.lacking.as_slice())
        {
            Some((_, parts)) => parts.push(n.part),
            None => lacking.push((&n.lacking, vec![n.part])),
        }
    }
    for (sides, parts) in lacking {
        let sides: Vec<&str> = sides.iter().map(|s| s.letter()).collect();
        let _ = writeln!(
            out,
            "not compared: {} ({} cannot show them)",
            parts.join(", "),
            sides.join(" and ")
        );
    }
    if d.diff.is_empty() {
        out.push_str("no differences\n");
        return out;
    }
    let mut last: Option<(Option<usize>, Option<usize>)> = None;
    let mut spans = 0;
    let mut requests = 0;
    for difference in &d.diff.differences {
        let key = (difference.a, difference.b);
        if last != Some(key) {
            let _ = writeln!(out, "{}", heading(difference, &a, &b));
            if key != (None, None) {
                spans += 1;
            }
            last = Some(key);
        }
        if key == (None, None) {
            requests += 1;
        }
        let _ = writeln!(
            out,
            "    {}",
            change_line(&difference.change, &a, &b, held_parents)
        );
    }
    let count = d.diff.differences.len();
    let mut in_what = Vec::new();
    if spans > 0 {
        in_what.push(format!("{spans} span{}", plural(spans)));
    }
    if requests > 0 {
        in_what.push(format!("{requests} mock request{}", plural(requests)));
    }
    let tolerance = match d.diff.tolerance {
        Tolerance::Absolute(d) if d.is_zero() => "durations compared exactly".to_owned(),
        t => format!("durations within {t}"),
    };
    let _ = writeln!(
        out,
        "{count} difference{} in {} ({tolerance})",
        plural(count),
        in_what.join(" and ")
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The whole run as text: each pair (headed `== <scenario>` when there are several), the
/// scenarios only one side has, and, with several, how many differ.
pub fn text(report: &DiffReport<'_>) -> String {
    let several = report.compared.len() + report.only_in_a.len() + report.only_in_b.len() > 1;
    let mut out = String::new();
    for d in &report.compared {
        if several {
            let _ = writeln!(out, "== {}", d.scenario);
        }
        out.push_str(&text_of(d));
        if several {
            out.push('\n');
        }
    }
    for name in &report.only_in_a {
        let _ = writeln!(out, "== {name}\nonly in A: B has no replay of it\n");
    }
    for name in &report.only_in_b {
        let _ = writeln!(out, "== {name}\nonly in B: A has no replay of it\n");
    }
    if several {
        let differ = report
            .compared
            .iter()
            .filter(|d| !d.diff.is_empty())
            .count()
            + report.only_in_a.len()
            + report.only_in_b.len();
        let total = report.compared.len() + report.only_in_a.len() + report.only_in_b.len();
        let _ = writeln!(out, "{differ} of {total} replays differ");
    }
    out
}

fn carried_json(names: &Names<'_>, carried: &Carried) -> serde_json::Value {
    match carried {
        Carried::Nothing => json!({ "kind": "none" }),
        Carried::Invalid(text) => json!({ "kind": "invalid", "traceparent": text }),
        Carried::Span(ix) => {
            json!({ "kind": "span", "span": names.alias(*ix), "op": names.op(*ix) })
        }
        Carried::Remote(trace, span) => {
            json!({ "kind": "remote", "trace_id": trace.to_string(), "span_id": span.to_string() })
        }
    }
}

fn place_json(names: &Names<'_>, place: &Place) -> serde_json::Value {
    json!({ "parent": names.parent(place.parent), "trace": names.trace(place) })
}

fn difference_json(d: &Difference, a: &Names<'_>, b: &Names<'_>) -> serde_json::Value {
    let names = |side| match side {
        Side::A => a,
        Side::B => b,
    };
    let mut value = match &d.change {
        Change::Added => json!({ "kind": "added" }),
        Change::Removed => json!({ "kind": "removed" }),
        Change::Moved {
            from,
            to,
            own_trace,
        } => json!({
            "kind": "moved", "from": place_json(a, from), "to": place_json(b, to), "own_trace": own_trace,
        }),
        Change::Status { from, to } => {
            json!({ "kind": "status", "from": status(from), "to": status(to) })
        }
        Change::Attribute { key, from, to } => {
            json!({ "kind": "attribute", "key": key, "from": from, "to": to })
        }
        Change::Event {
            only_in,
            level,
            message,
        } => json!({
            "kind": "event", "only_in": only_in.letter(),
            "level": level.map(|l| l.as_str().to_ascii_lowercase()), "message": message,
        }),
        Change::Duration { from, to } => json!({
            "kind": "duration", "from_us": from.as_micros() as u64, "to_us": to.as_micros() as u64,
        }),
        Change::Link { only_in, target } => {
            let target = match target {
                Target::Span(ix) => {
                    json!({ "span": names(*only_in).alias(*ix), "op": names(*only_in).op(*ix) })
                }
                Target::Remote(id) => json!({ "span_id": id.to_string() }),
            };
            json!({ "kind": "link", "only_in": only_in.letter(), "follows": target })
        }
        Change::Request { key, only_in } => json!({
            "kind": "request", "only_in": only_in.letter(),
            "mock": key.mock, "method": key.method, "path": key.path, "nth": key.nth + 1,
        }),
        Change::Context { key, from, to } => json!({
            "kind": "context", "mock": key.mock, "method": key.method, "path": key.path,
            "nth": key.nth + 1, "from": carried_json(a, from), "to": carried_json(b, to),
        }),
    };
    if let Some(object) = value.as_object_mut() {
        let op = d.a.map(|i| a.op(i)).or(d.b.map(|j| b.op(j)));
        object.insert("op".into(), json!(op));
        object.insert("a".into(), json!(d.a.map(|i| a.alias(i))));
        object.insert("b".into(), json!(d.b.map(|j| b.alias(j))));
    }
    value
}

/// The whole run as one JSON document: `equal`, then per pair its sides, what was not
/// compared and every difference (`kind`: added, removed, moved, status, attribute, event,
/// duration, link, request, context), then the scenarios only one side has.
pub fn json(report: &DiffReport<'_>) -> serde_json::Value {
    let replays: Vec<serde_json::Value> = report
        .compared
        .iter()
        .map(|d| {
            let (a, b) = (Names::of(d.a.outcome), Names::of(d.b.outcome));
            json!({
                "scenario": d.scenario,
                "equal": d.diff.is_empty(),
                "a": { "from": d.a.label, "spans": d.a.outcome.captured.spans.len() },
                "b": { "from": d.b.label, "spans": d.b.outcome.captured.spans.len() },
                "tolerance": d.diff.tolerance.to_string(),
                "not_compared": d.diff.not_compared.iter().map(|n| json!({
                    "part": n.part,
                    "lacking": n.lacking.iter().map(|s| s.letter()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "differences": d.diff.differences.iter().map(|x| difference_json(x, &a, &b)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "equal": report.is_equal(),
        "replays": replays,
        "only_in_a": report.only_in_a,
        "only_in_b": report.only_in_b,
    })
}

/// The whole run as one self-contained page: per pair, the differences listed, then A's and
/// B's waterfalls side by side, the spans a difference is about marked (only on that side:
/// green; changed: amber).
pub fn html(report: &DiffReport<'_>, epoch: Epoch) -> String {
    use super::html::{chart, escape, page, Frame, Mark};
    let half = Frame::HALF;
    let marks = |d: &Diffed<'_>, side| -> Vec<(usize, Mark)> {
        d.diff
            .marked(side)
            .into_iter()
            .map(|(ix, alone)| (ix, if alone { Mark::Alone } else { Mark::Changed }))
            .collect()
    };
    let mut body = String::new();
    let status = if report.is_equal() {
        "no differences".to_owned()
    } else {
        let differ = report
            .compared
            .iter()
            .filter(|d| !d.diff.is_empty())
            .count()
            + report.only_in_a.len()
            + report.only_in_b.len();
        format!(
            "{differ} of {} replays differ",
            report.compared.len() + report.only_in_a.len() + report.only_in_b.len()
        )
    };
    let _ = writeln!(
        body,
        r#"<header class="txt"><h1>trace-harness diff</h1><p>{} · <span class="key k-alone">only on this side</span> <span class="key k-changed">changed</span></p></header>"#,
        escape(&status)
    );
    for (n, d) in report.compared.iter().enumerate() {
        let _ = writeln!(
            body,
            r#"<section class="pair" id="pair-{n}"><h2>{}</h2><pre class="summary">{}</pre><div class="diff"><div>{}</div><div>{}</div></div></section>"#,
            escape(d.scenario),
            escape(&text_of(d)),
            chart(
                d.a.outcome,
                epoch,
                half,
                &format!("a{n}"),
                &marks(d, Side::A)
            ),
            chart(
                d.b.outcome,
                epoch,
                half,
                &format!("b{n}"),
                &marks(d, Side::B)
            ),
        );
    }
    for (side, names) in [("A", &report.only_in_a), ("B", &report.only_in_b)] {
        for name in names {
            let _ = writeln!(
                body,
                r#"<section class="pair"><h2>{}</h2><p>only in {side}</p></section>"#,
                escape(name)
            );
        }
    }
    page("trace-harness diff", &body)
}
