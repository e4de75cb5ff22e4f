//! The vocabulary of a diff: which side, what a side's telemetry holds, and each difference
//! between a span of A and its match in B (or a span only one side has).

use std::time::Duration;

use super::tolerance::Tolerance;
use crate::trace::{SpanId, SpanStatus, TraceId};

/// One of the two replays compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first, the baseline.
    A,
    /// The second, compared with it.
    B,
}

impl Side {
    /// `A` or `B`.
    pub fn letter(self) -> &'static str {
        match self {
            Side::A => "A",
            Side::B => "B",
        }
    }
}

/// What a side's telemetry can show. A replay in process, a JSON export and an OTLP/JSON export
/// hold spans whole; an NDJSON export or a log-only service's lines hold only which span wrote
/// which line. A part is compared only when both sides hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holds {
    /// Each span's parent, hence the tree.
    pub parents: bool,
    /// When each span opened and closed.
    pub durations: bool,
    /// Span attributes (fields).
    pub attributes: bool,
    /// Follows-from links.
    pub links: bool,
    /// Span status (error or ok).
    pub status: bool,
    /// Each log line's level.
    pub levels: bool,
    /// The requests the mocks received, with the `traceparent` each carried.
    pub requests: bool,
    /// Spans that wrote no log line (a log-line export knows a span only by its lines).
    pub silent_spans: bool,
}

impl Holds {
    /// Everything: a replay that captured spans.
    pub const ALL: Holds = Holds {
        parents: true,
        durations: true,
        attributes: true,
        links: true,
        status: true,
        levels: true,
        requests: true,
        silent_spans: true,
    };

    /// Which span wrote which line, and nothing else (a log-only service's output).
    pub const LINES: Holds = Holds {
        parents: false,
        durations: false,
        attributes: false,
        links: false,
        status: false,
        levels: false,
        requests: false,
        silent_spans: false,
    };

    /// What both `self` and `other` hold.
    pub fn both(self, other: Holds) -> Holds {
        Holds {
            parents: self.parents && other.parents,
            durations: self.durations && other.durations,
            attributes: self.attributes && other.attributes,
            links: self.links && other.links,
            status: self.status && other.status,
            levels: self.levels && other.levels,
            requests: self.requests && other.requests,
            silent_spans: self.silent_spans && other.silent_spans,
        }
    }

    /// The parts missing from `self`, by the name a report gives them.
    pub fn missing(self) -> Vec<&'static str> {
        let parts = [
            (self.parents, "parents"),
            (self.durations, "durations"),
            (self.attributes, "attributes"),
            (self.links, "links"),
            (self.status, "status"),
            (self.levels, "log levels"),
            (self.silent_spans, "spans without log lines"),
            (self.requests, "mock requests"),
        ];
        parts
            .into_iter()
            .filter(|(held, _)| !held)
            .map(|(_, name)| name)
            .collect()
    }
}

/// A part of the comparison that was not made, and which side lacks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCompared {
    /// `parents`, `durations`, …, as [`Holds::missing`] names them.
    pub part: &'static str,
    /// The sides whose telemetry does not hold it.
    pub lacking: Vec<Side>,
}

/// Where a span sits: under which parent, in which trace. Span indices are into that side's
/// `captured.spans`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// Its parent: a captured span, a context from outside the replay, or none (a root).
    pub parent: Option<Parent>,
    /// Its trace.
    pub trace: TraceId,
}

/// A span's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// A span captured on the same side, by index.
    Span(usize),
    /// A context that came from outside the replay (a caller's `traceparent`).
    Remote(SpanId),
}

/// What a follows-from link points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A span captured on the link's side, by index.
    Span(usize),
    /// A span that was not captured.
    Remote(SpanId),
}

/// The context a mock request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carried {
    /// No `traceparent` header.
    Nothing,
    /// A `traceparent` that does not parse.
    Invalid(String),
    /// The context of a span captured on that side, by index.
    Span(usize),
    /// The context of a span that was not captured (trace id, span id).
    Remote(TraceId, SpanId),
}

/// A mock request's place among the requests one mock received: the `nth` (0-based) with this
/// method and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestKey {
    /// The mock's name in the scenario.
    pub mock: String,
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// Which of the requests with this method and path, in arrival order.
    pub nth: usize,
}

/// One way in which B differs from A.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A span only B has.
    Added,
    /// A span only A has.
    Removed,
    /// The span is under another parent, or in another trace.
    Moved {
        /// Where it was in A.
        from: Place,
        /// Where it is in B.
        to: Place,
        /// B's trace holds nothing of A's trace: the span left for a trace of its own.
        own_trace: bool,
    },
    /// The span's status changed.
    Status {
        /// In A.
        from: SpanStatus,
        /// In B.
        to: SpanStatus,
    },
    /// An attribute was added, removed or changed (values as text).
    Attribute {
        /// The attribute's key.
        key: String,
        /// Its value in A, if any.
        from: Option<String>,
        /// Its value in B, if any.
        to: Option<String>,
    },
    /// A log line (span event) only one side's span wrote.
    Event {
        /// The side that has it.
        only_in: Side,
        /// Its level, when both sides hold levels.
        level: Option<tracing::Level>,
        /// Its message, as the seed-style log view prints it.
        message: String,
    },
    /// The span's duration changed by more than the tolerance.
    Duration {
        /// In A.
        from: Duration,
        /// In B.
        to: Duration,
    },
    /// A follows-from link only one side's span has.
    Link {
        /// The side that has it.
        only_in: Side,
        /// What it points at, on that side.
        target: Target,
    },
    /// A request only one side's mock received.
    Request {
        /// Which request.
        key: RequestKey,
        /// The side that has it.
        only_in: Side,
    },
    /// A request both mocks received, carrying different contexts.
    Context {
        /// Which request.
        key: RequestKey,
        /// What it carried in A.
        from: Carried,
        /// What it carried in B.
        to: Carried,
    },
}

/// A change, and the spans it is about: indices into A's and B's `captured.spans` (only `b`
/// for an added span, only `a` for a removed one, neither for a mock request).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The span in A.
    pub a: Option<usize>,
    /// The span in B.
    pub b: Option<usize>,
    /// What differs.
    pub change: Change,
}

/// Everything that differs between two replays.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceDiff {
    /// Spans matched, `(index in A, index in B)`, in A's creation order.
    pub pairs: Vec<(usize, usize)>,
    /// The differences: span by span in A's tree order (a span's own changes together), then
    /// the spans only B has in B's tree order, then the mock requests.
    pub differences: Vec<Difference>,
    /// What was not compared, because a side cannot show it.
    pub not_compared: Vec<NotCompared>,
    /// The tolerance durations were compared with.
    pub tolerance: Tolerance,
}

impl TraceDiff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }

    /// B's span matched to A's span `a`.
    pub fn in_b(&self, a: usize) -> Option<usize> {
        self.pairs.iter().find(|(x, _)| *x == a).map(|(_, b)| *b)
    }

    /// A's span matched to B's span `b`.
    pub fn in_a(&self, b: usize) -> Option<usize> {
        self.pairs.iter().find(|(_, y)| *y == b).map(|(a, _)| *a)
    }

    /// The spans of `side` that some difference is about, with whether the span itself is
    /// only on that side (added or removed).
    pub fn marked(&self, side: Side) -> Vec<(usize, bool)> {
        let mut out: Vec<(usize, bool)> = Vec::new();
        for d in &self.differences {
            let (ix, alone) = match side {
                Side::A => (d.a, matches!(d.change, Change::Removed)),
                Side::B => (d.b, matches!(d.change, Change::Added)),
            };
            if let Some(ix) = ix {
                match out.iter_mut().find(|(i, _)| *i == ix) {
                    Some(entry) => entry.1 |= alone,
                    None => out.push((ix, alone)),
                }
            }
        }
        out
    }
}
