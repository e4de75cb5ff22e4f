//! Judging a replay: built-in trace invariants that every replay must hold, and the scenario's
//! own assertions over span selectors. Produces findings; never prints.

mod invariants;
mod selector;

use serde::Deserialize;

pub use invariants::check_invariants;
pub use selector::{Selector, SelectorError};

use crate::runner::ReplayOutcome;
use crate::trace::{SpanId, SpanStatus};

/// One `[[expect]]` entry of a scenario, validated.
#[derive(Clone, Debug)]
pub struct Assertion {
    pub name: String,
    pub target: Target,
    /// How many spans (or mock requests) must match.
    pub count: Option<usize>,
    /// Every matched span has this status.
    pub status: Option<ExpectedStatus>,
    /// Every matched span's parent matches this selector.
    pub child_of: Option<Selector>,
    /// Every matched span links follows-from to a span matching this selector.
    pub follows_from: Option<Selector>,
    /// Some log line written in the matched spans contains this text.
    pub log: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Target {
    Spans(Selector),
    /// The requests received by the named mock.
    Mock(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedStatus {
    Ok,
    Error,
}

/// A built-in invariant the replay broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub message: String,
    pub spans: Vec<SpanId>,
}

/// A scenario assertion that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub assertion: String,
    pub target: String,
    pub expected: String,
    pub actual: String,
    /// The spans the failure is about, for marking in the tree.
    pub spans: Vec<SpanId>,
}

/// Everything wrong with one replay; empty means it passed.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub failures: Vec<Failure>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.failures.is_empty()
    }

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

/// Checks the invariants and then every assertion.
pub fn judge(outcome: &ReplayOutcome, assertions: &[Assertion]) -> Verdict {
    Verdict {
        violations: check_invariants(outcome),
        failures: assertions
            .iter()
            .filter_map(|a| check_assertion(outcome, a))
            .collect(),
    }
}

/// The first way `assertion` fails on `outcome`, if any.
pub fn check_assertion(outcome: &ReplayOutcome, assertion: &Assertion) -> Option<Failure> {
    let captured = &outcome.captured;
    let fail = |expected: String, actual: String, spans: Vec<SpanId>| {
        Some(Failure {
            assertion: assertion.name.clone(),
            target: match &assertion.target {
                Target::Spans(s) => s.to_string(),
                Target::Mock(m) => format!("mock `{m}`"),
            },
            expected,
            actual,
            spans,
        })
    };
    let selector = match &assertion.target {
        Target::Mock(name) => {
            let received = outcome.requests.iter().filter(|r| &r.mock == name).count();
            return match assertion.count {
                Some(n) if n != received => fail(
                    format!("{n} requests"),
                    format!("{received} requests"),
                    vec![],
                ),
                _ => None,
            };
        }
        Target::Spans(selector) => selector,
    };
    let matched = selector.select(captured);
    let ids = |spans: &[&crate::trace::SpanData]| spans.iter().map(|s| s.span_id).collect();
    if let Some(n) = assertion.count {
        if matched.len() != n {
            return fail(
                format!("{n} matching spans"),
                format!("{} matching spans", matched.len()),
                ids(&matched),
            );
        }
    } else if matched.is_empty() {
        return fail("at least one matching span".into(), "none".into(), vec![]);
    }
    if let Some(expected) = assertion.status {
        let wrong: Vec<_> = matched
            .iter()
            .copied()
            .filter(|s| {
                matches!(s.status, SpanStatus::Error(_)) != (expected == ExpectedStatus::Error)
            })
            .collect();
        if let Some(first) = wrong.first() {
            let actual = match &first.status {
                SpanStatus::Ok => "ok".to_owned(),
                SpanStatus::Error(m) => format!("error: {m}"),
            };
            return fail(
                format!("status {expected:?}").to_lowercase(),
                actual,
                ids(&wrong),
            );
        }
    }
    if let Some(parent) = &assertion.child_of {
        let orphans: Vec<_> = matched
            .iter()
            .copied()
            .filter(|s| {
                s.parent_id()
                    .and_then(|p| captured.span(p))
                    .is_none_or(|p| !parent.matches(captured, p))
            })
            .collect();
        if let Some(first) = orphans.first() {
            let actual = match first.parent_id().and_then(|p| captured.span(p)) {
                Some(p) => format!("parent is `{}`", p.op),
                None => "no parent".to_owned(),
            };
            return fail(format!("child of {parent}"), actual, ids(&orphans));
        }
    }
    if let Some(cause) = &assertion.follows_from {
        let unlinked: Vec<_> = matched
            .iter()
            .copied()
            .filter(|s| {
                !s.links
                    .iter()
                    .filter_map(|l| captured.span(*l))
                    .any(|l| cause.matches(captured, l))
            })
            .collect();
        if !unlinked.is_empty() {
            return fail(
                format!("follows from {cause}"),
                "no such follows-from link".into(),
                ids(&unlinked),
            );
        }
    }
    if let Some(text) = &assertion.log {
        let found = captured.logs.iter().any(|line| {
            line.span
                .is_some_and(|s| matched.iter().any(|m| m.span_id == s.span_id))
                && line.message.contains(text.as_str())
        });
        if !found {
            return fail(
                format!("a log line containing {text:?}"),
                "no such line in the matched spans".into(),
                ids(&matched),
            );
        }
    }
    None
}
