//! The seed's log prefix `[trace:… span:… op:…]`, and id aliases (`trace_1`, `span_001`).

use std::collections::HashMap;
use std::fmt;

use super::ids::{SpanId, TraceId};
use super::model::Captured;

/// `[trace:<trace> span:<span> op:<op>]`, exactly as the seed prints it.
pub struct SeedPrefix<T, S> {
    pub trace: T,
    pub span: S,
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

/// Short, stable names for ids, numbered by first appearance (span creation order), so replay
/// output reads like the seed and stays byte-identical across runs and machines.
#[derive(Debug, Default)]
pub struct Aliases {
    traces: HashMap<TraceId, usize>,
    spans: HashMap<SpanId, usize>,
}

impl Aliases {
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

    pub fn trace(&self, id: TraceId) -> Alias<TraceId> {
        Alias {
            id,
            n: self.traces.get(&id).copied(),
        }
    }

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
