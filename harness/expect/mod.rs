//! Judging a replay: built-in trace invariants that every replay must hold, and the scenario's
//! own assertions over span selectors. Produces findings; never prints.

mod bottleneck;
mod invariants;
mod isolation;
mod redelivery;

pub use bottleneck::{bottlenecks, Bottleneck};
pub use invariants::{check_invariants, MAX_SPANS_PER_TRACE};
pub use isolation::{check_isolation, webhook_deliveries, MAX_LISTED_FINDINGS};
pub use redelivery::{lost_at, redeliveries, Redelivery};

use crate::clock::Compact;
use crate::outcome::{ReplayOutcome, SpanSource};
use crate::scenario::{Assertion, ExpectedStatus, Target};
use crate::trace::{Captured, SpanData, SpanId, SpanStatus};

/// A built-in invariant the replay broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name: `one-trace-per-flow`, `async-after-cause`, ...
    pub invariant: &'static str,
    /// What broke it, in words.
    pub message: String,
    /// The spans it is about, for marking in the tree.
    pub spans: Vec<SpanId>,
}

/// A scenario assertion that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The assertion's name.
    pub assertion: String,
    /// What it selects: the selector, or the mock.
    pub target: String,
    /// What it expected, in words.
    pub expected: String,
    /// What a failing span (or the mock) showed instead.
    pub actual: String,
    /// The spans the failure is about, for marking in the tree.
    pub spans: Vec<SpanId>,
}

/// A check the replay's telemetry cannot support, said rather than passed silently: an
/// invariant, or part of an assertion, that needs what log lines do not show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    /// The invariant's name, or `assertion "<name>"` and the part left out.
    pub check: String,
    /// What the telemetry lacks for it.
    pub why: &'static str,
}

/// Everything wrong with one replay; empty means it passed.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Invariants broken, in a stable order.
    pub violations: Vec<Violation>,
    /// Assertions that did not hold, in the scenario's order.
    pub failures: Vec<Failure>,
    /// What could not be checked at all (log-only telemetry); it neither passes nor fails.
    pub unchecked: Vec<Unchecked>,
}

impl Verdict {
    /// Nothing broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.failures.is_empty()
    }

    /// Every span a violation or failure is about, sorted, each once.
    pub fn flagged_spans(&self) -> Vec<SpanId> {
        let mut spans: Vec<SpanId> = self
            .violations
            .iter()
            .flat_map(|v| v.spans.iter().copied())
            .chain(self.failures.iter().flat_map(|f| f.spans.iter().copied()))
            .collect();
        spans.sort();
        spans.dedup();
        spans
    }
}

/// Checks the invariants and then every assertion. With tracing opted out there are no spans to
/// select, so only the assertions on mocks apply (and the invariant that nothing was traced).
/// From a log-only service's lines, what lines cannot show is listed as unchecked, and each
/// assertion is checked on the rest of what it asks.
pub fn judge(outcome: &ReplayOutcome, assertions: &[Assertion]) -> Verdict {
    let mut unchecked = match outcome.source {
        SpanSource::LogLines if outcome.tracing => invariants::unchecked_from_lines(),
        _ => Vec::new(),
    };
    let mut failures = Vec::new();
    for assertion in assertions {
        if !outcome.tracing && matches!(assertion.target, Target::Spans(_)) {
            continue;
        }
        let failure = match outcome.source {
            SpanSource::Spans => check_assertion(outcome, assertion),
            SpanSource::LogLines => {
                let (readable, parts) = readable_from_lines(assertion);
                unchecked.extend(parts);
                readable.and_then(|a| check_assertion(outcome, &a))
            }
        };
        failures.extend(failure);
    }
    Verdict {
        violations: check_invariants(outcome),
        failures,
        unchecked,
    }
}

/// What of `assertion` log lines can show (its operation selector, `count`, `events`, `log`),
/// and the parts they cannot; `None` when its selector itself needs more than operations.
fn readable_from_lines(assertion: &Assertion) -> (Option<Assertion>, Vec<Unchecked>) {
    let part = |part: &str, why| Unchecked {
        check: format!("assertion {:?}: {part}", assertion.name),
        why,
    };
    if let Target::Spans(selector) = &assertion.target {
        if let Some(needs) = selector.beyond_operations() {
            let why = "log lines show a span's trace, operation and messages only";
            return (
                None,
                vec![part(
                    &format!("the whole of it (its selector needs {needs})"),
                    why,
                )],
            );
        }
    } else {
        return (Some(assertion.clone()), Vec::new());
    }
    let mut readable = assertion.clone();
    let mut parts = Vec::new();
    if readable.status.take().is_some() {
        parts.push(part("status", "log lines carry no span status"));
    }
    if readable.child_of.take().is_some() {
        parts.push(part("child_of", "log lines name no parent"));
    }
    if readable.follows_from.take().is_some() {
        parts.push(part("follows_from", "log lines carry no links"));
    }
    if readable.duration.take().is_some() {
        parts.push(part("duration", "log lines carry no span times"));
    }
    if !readable.attributes.is_empty() {
        readable.attributes.clear();
        parts.push(part("attributes", "log lines carry no attributes"));
    }
    (Some(readable), parts)
}

/// The first way `assertion` fails on `outcome`, if any.
pub(crate) fn check_assertion(outcome: &ReplayOutcome, assertion: &Assertion) -> Option<Failure> {
    let captured = &outcome.captured;
    let fail = |expected: String, actual: String, spans: &[&SpanData]| {
        Some(Failure {
            assertion: assertion.name.clone(),
            target: match &assertion.target {
                Target::Spans(s) => s.to_string(),
                Target::Mock(m) => format!("mock `{m}`"),
                Target::Step { number, .. } => format!("step {number}"),
            },
            expected,
            actual,
            spans: spans.iter().map(|s| s.span_id).collect(),
        })
    };
    let selector = match &assertion.target {
        Target::Mock(name) => {
            let received = outcome.requests.iter().filter(|r| &r.mock == name).count();
            return match assertion.count {
                Some(n) if n != received => {
                    fail(format!("{n} requests"), format!("{received} requests"), &[])
                }
                _ => None,
            };
        }
        Target::Step {
            exchange, status, ..
        } => {
            let answered = outcome.steps.get(*exchange).map(|s| s.status);
            let crash = outcome.crashes.iter().find(|c| c.step == *exchange);
            return match (answered, crash) {
                (_, Some(crash)) => fail(
                    format!("HTTP {status}"),
                    format!("no answer: the service died at `{}`", crash.point),
                    &[],
                ),
                (Some(code), None) if code == *status => None,
                (Some(code), None) => fail(format!("HTTP {status}"), format!("HTTP {code}"), &[]),
                (None, None) => fail(format!("HTTP {status}"), "no answer".to_owned(), &[]),
            };
        }
        Target::Spans(selector) => selector,
    };
    let matched = selector.select(captured);
    match assertion.count {
        Some(n) if matched.len() != n => {
            return fail(
                format!("{n} matching spans"),
                format!("{} matching spans", matched.len()),
                &matched,
            )
        }
        None if matched.is_empty() => {
            return fail("at least one matching span".into(), "none".into(), &[])
        }
        _ => {}
    }
    // Each per-span check: what it expects, and what a failing span shows instead.
    let mut checks: Vec<(String, SpanCheck<'_>)> = Vec::new();
    if let Some(expected) = assertion.status {
        let want_error = expected == ExpectedStatus::Error;
        checks.push((
            format!("status {}", if want_error { "error" } else { "ok" }),
            Box::new(move |s| match (&s.status, want_error) {
                (SpanStatus::Ok, true) => Some("ok".into()),
                (SpanStatus::Error(m), false) => Some(format!("error: {m}")),
                _ => None,
            }),
        ));
    }
    if let Some(test) = &assertion.duration {
        checks.push((
            format!("duration {test}"),
            Box::new(move |s| {
                (!test.holds(s.duration())).then(|| format!("duration {}", Compact(s.duration())))
            }),
        ));
    }
    for (name, test) in &assertion.attributes {
        checks.push((
            format!("{name} {test}"),
            Box::new(move |s| match s.value_of(name) {
                Some(value) if test.holds(&value) => None,
                Some(value) => Some(format!("{name} = {value}")),
                None => Some(format!("no field `{name}`")),
            }),
        ));
    }
    if let Some(parent) = &assertion.child_of {
        checks.push((
            format!("child of {parent}"),
            Box::new(move |s| match parent_of(captured, s) {
                Some(p) if parent.matches(captured, p) => None,
                Some(p) => Some(format!("parent is `{}`", p.op)),
                None => Some("no parent".into()),
            }),
        ));
    }
    if let Some(cause) = &assertion.follows_from {
        checks.push((
            format!("follows from {cause}"),
            Box::new(move |s| {
                let linked = s.links.iter().filter_map(|l| captured.span(*l));
                let ops: Vec<&str> = linked.clone().map(|l| l.op).collect();
                match linked.clone().any(|l| cause.matches(captured, l)) {
                    true => None,
                    false if ops.is_empty() => Some("no follows-from link".into()),
                    false => Some(format!("follows from `{}`", ops.join("`, `"))),
                }
            }),
        ));
    }
    if let Some(events) = &assertion.events {
        let what = match &events.matching {
            Some(re) => format!("{} events matching /{re}/", events.count),
            None => format!("{} events", events.count),
        };
        checks.push((
            what,
            Box::new(move |s| {
                let n = span_logs(captured, s)
                    .filter(|m| events.matching.as_ref().is_none_or(|re| re.is_match(m)))
                    .count();
                (n != events.count).then(|| format!("{n} events"))
            }),
        ));
    }
    for (expected, check) in &checks {
        let offenders: Vec<(&SpanData, String)> = matched
            .iter()
            .filter_map(|s| check(s).map(|actual| (*s, actual)))
            .collect();
        if let Some((_, actual)) = offenders.first() {
            let spans: Vec<&SpanData> = offenders.iter().map(|(s, _)| *s).collect();
            return fail(expected.clone(), actual.clone(), &spans);
        }
    }
    if let Some(test) = &assertion.log {
        let found = matched
            .iter()
            .any(|s| span_logs(captured, s).any(|m| test.holds(m)));
        if !found {
            return fail(
                format!("a log line that {test}"),
                "no such line in the matched spans".into(),
                &matched,
            );
        }
    }
    None
}

/// A per-span check: `None` when the span passes, else what the span shows instead.
type SpanCheck<'a> = Box<dyn Fn(&SpanData) -> Option<String> + 'a>;

fn parent_of<'c>(captured: &'c Captured, span: &SpanData) -> Option<&'c SpanData> {
    captured.span(span.parent_id()?)
}

/// Messages logged inside `span`, in order.
fn span_logs<'c>(captured: &'c Captured, span: &SpanData) -> impl Iterator<Item = &'c str> + Clone {
    let id = span.span_id;
    captured
        .logs
        .iter()
        .filter(move |l| l.span.is_some_and(|s| s.span_id == id))
        .map(|l| l.message.as_str())
}
