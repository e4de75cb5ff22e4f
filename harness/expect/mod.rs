//! Judging a replay: built-in trace invariants that every replay must hold, and the scenario's
//! own assertions over span selectors. Produces findings; never prints.

mod bottleneck;
mod invariants;
mod isolation;

pub use bottleneck::{bottlenecks, Bottleneck};
pub use invariants::{check_invariants, MAX_SPANS_PER_TRACE};
pub use isolation::{check_isolation, webhook_deliveries, MAX_LISTED_FINDINGS};

use crate::clock::Compact;
use crate::outcome::ReplayOutcome;
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

/// Everything wrong with one replay; empty means it passed.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Invariants broken, in a stable order.
    pub violations: Vec<Violation>,
    /// Assertions that did not hold, in the scenario's order.
    pub failures: Vec<Failure>,
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
pub fn judge(outcome: &ReplayOutcome, assertions: &[Assertion]) -> Verdict {
    Verdict {
        violations: check_invariants(outcome),
        failures: assertions
            .iter()
            .filter(|a| outcome.tracing || matches!(a.target, Target::Mock(_)))
            .filter_map(|a| check_assertion(outcome, a))
            .collect(),
    }
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
            Box::new(move |s| match s.field(name) {
                Some(value) if test.holds(&value.to_string()) => None,
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
