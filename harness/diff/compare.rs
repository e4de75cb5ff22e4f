//! The comparison itself: spans matched (`matching`), then each pair's parent, status,
//! attributes, events, duration and links, and the context each mock request carried.

use super::changes::{
    Carried, Change, Difference, Holds, NotCompared, Parent, Place, RequestKey, Side, Target,
    TraceDiff,
};
use super::matching::{pairs, Matched, Tree};
use super::tolerance::Tolerance;
use crate::mocks::ReceivedRequest;
use crate::outcome::ReplayOutcome;
use crate::trace::{Captured, LogLine, SpanData, TraceContext};

/// One side of a diff: a replay's outcome and what its telemetry can show.
#[derive(Clone, Copy, Debug)]
pub struct Compared<'a> {
    /// The replay, run now or read back from an export.
    pub outcome: &'a ReplayOutcome,
    /// What its telemetry holds.
    pub holds: Holds,
}

/// Everything that differs between `a` and `b`, durations compared within `tolerance`.
pub fn diff(a: Compared<'_>, b: Compared<'_>, tolerance: Tolerance) -> TraceDiff {
    let holds = a.holds.both(b.holds);
    let not_compared = holds
        .missing()
        .into_iter()
        .map(|part| NotCompared {
            part,
            lacking: [(Side::A, a.holds), (Side::B, b.holds)]
                .into_iter()
                .filter(|(_, h)| h.missing().contains(&part))
                .map(|(side, _)| side)
                .collect(),
        })
        .collect();
    let (ca, cb) = (&a.outcome.captured, &b.outcome.captured);
    // A side that knows spans only by their lines cannot see the others: leave them out.
    let keep = |c: &Captured| -> Vec<bool> {
        c.spans
            .iter()
            .map(|s| {
                holds.silent_spans
                    || c.logs
                        .iter()
                        .any(|l| l.span.is_some_and(|r| r.span_id == s.span_id))
            })
            .collect()
    };
    let (ta, tb) = (
        Tree::of(ca, holds.parents, &keep(ca)),
        Tree::of(cb, holds.parents, &keep(cb)),
    );
    let found = pairs(&ta, &tb);
    let mut pairs: Vec<(usize, usize)> = found.iter().map(|(i, j, _)| (*i, *j)).collect();
    pairs.sort_unstable();
    let sides = Sides {
        a: ca,
        b: cb,
        ta: &ta,
        tb: &tb,
        pairs: &pairs,
        holds,
    };

    let mut differences = Vec::new();
    for i in tree_order(&ta) {
        match found.iter().find(|(x, _, _)| *x == i) {
            Some(&(_, j, how)) => sides.pair(i, j, how, tolerance, &mut differences),
            None => differences.push(Difference {
                a: Some(i),
                b: None,
                change: Change::Removed,
            }),
        }
    }
    for j in tree_order(&tb) {
        if !pairs.iter().any(|(_, y)| *y == j) {
            differences.push(Difference {
                a: None,
                b: Some(j),
                change: Change::Added,
            });
        }
    }
    if holds.requests {
        sides.requests(&a.outcome.requests, &b.outcome.requests, &mut differences);
    }
    TraceDiff {
        pairs,
        differences,
        not_compared,
        tolerance,
    }
}

/// A side's spans depth first from its roots, children in creation order: the tree view's
/// order.
fn tree_order(tree: &Tree) -> Vec<usize> {
    let n = tree.parent.len();
    let mut children = vec![Vec::new(); n];
    for (i, p) in tree.parent.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    let mut out = Vec::with_capacity(n);
    // Only the spans in the tree: its roots and their descendants.
    let mut stack: Vec<usize> = tree.roots.iter().rev().copied().collect();
    while let Some(i) = stack.pop() {
        out.push(i);
        stack.extend(children[i].iter().rev());
    }
    out
}

struct Sides<'a> {
    a: &'a Captured,
    b: &'a Captured,
    ta: &'a Tree,
    tb: &'a Tree,
    pairs: &'a [(usize, usize)],
    holds: Holds,
}

impl Sides<'_> {
    fn in_b(&self, i: usize) -> Option<usize> {
        self.pairs.iter().find(|(x, _)| *x == i).map(|(_, y)| *y)
    }

    /// The changes of A's span `i` matched to B's span `j`.
    fn pair(
        &self,
        i: usize,
        j: usize,
        how: Matched,
        tolerance: Tolerance,
        out: &mut Vec<Difference>,
    ) {
        let (sa, sb) = (&self.a.spans[i], &self.b.spans[j]);
        let mut push = |change| {
            out.push(Difference {
                a: Some(i),
                b: Some(j),
                change,
            })
        };
        if how == Matched::Moved {
            let own_trace = !self.pairs.iter().any(|&(x, y)| {
                (x, y) != (i, j)
                    && self.a.spans[x].trace_id == sa.trace_id
                    && self.b.spans[y].trace_id == sb.trace_id
            });
            push(Change::Moved {
                from: self.place(self.a, self.ta, i),
                to: self.place(self.b, self.tb, j),
                own_trace,
            });
        }
        if self.holds.status && sa.status != sb.status {
            push(Change::Status {
                from: sa.status.clone(),
                to: sb.status.clone(),
            });
        }
        if self.holds.attributes {
            for (key, value) in &sa.fields {
                let there = sb.field(key).map(ToString::to_string);
                let here = value.to_string();
                if there.as_deref() != Some(here.as_str()) {
                    push(Change::Attribute {
                        key: (*key).to_owned(),
                        from: Some(here),
                        to: there,
                    });
                }
            }
            for (key, value) in &sb.fields {
                if sa.field(key).is_none() {
                    push(Change::Attribute {
                        key: (*key).to_owned(),
                        from: None,
                        to: Some(value.to_string()),
                    });
                }
            }
        }
        for (only_in, line) in event_changes(self.a, sa, self.b, sb, self.holds.levels) {
            push(Change::Event {
                only_in,
                level: self.holds.levels.then_some(line.level),
                message: line.message.clone(),
            });
        }
        if self.holds.durations && tolerance.exceeded(sa.duration(), sb.duration()) {
            push(Change::Duration {
                from: sa.duration(),
                to: sb.duration(),
            });
        }
        if self.holds.links {
            let target = |c: &Captured, id| match c.spans.iter().position(|s| s.span_id == id) {
                Some(ix) => Target::Span(ix),
                None => Target::Remote(id),
            };
            let mapped: Vec<Target> = sa
                .links
                .iter()
                .map(|l| match target(self.a, *l) {
                    Target::Span(x) => self.in_b(x).map_or(Target::Remote(*l), Target::Span),
                    remote => remote,
                })
                .collect();
            let theirs: Vec<Target> = sb.links.iter().map(|l| target(self.b, *l)).collect();
            for (link, mapped) in sa.links.iter().zip(&mapped) {
                if !theirs.contains(mapped) {
                    push(Change::Link {
                        only_in: Side::A,
                        target: target(self.a, *link),
                    });
                }
            }
            for t in theirs {
                if !mapped.contains(&t) {
                    push(Change::Link {
                        only_in: Side::B,
                        target: t,
                    });
                }
            }
        }
    }

    fn place(&self, captured: &Captured, tree: &Tree, i: usize) -> Place {
        let span = &captured.spans[i];
        let parent = match tree.parent[i] {
            Some(p) if self.holds.parents => Some(Parent::Span(p)),
            _ if self.holds.parents => span.parent_id().map(Parent::Remote),
            _ => None,
        };
        Place {
            parent,
            trace: span.trace_id,
        }
    }

    /// Each mock's requests by method and path in arrival order, the k-th of A's to the k-th of
    /// B's: a request only one side's mock received, or one that carried another context.
    fn requests(&self, a: &[ReceivedRequest], b: &[ReceivedRequest], out: &mut Vec<Difference>) {
        let keyed = |requests: &[ReceivedRequest]| -> Vec<RequestKey> {
            let mut keys: Vec<RequestKey> = Vec::with_capacity(requests.len());
            for r in requests {
                let nth = keys
                    .iter()
                    .filter(|k| k.mock == r.mock && k.method == r.method && k.path == r.path)
                    .count();
                keys.push(RequestKey {
                    mock: r.mock.clone(),
                    method: r.method.clone(),
                    path: r.path.clone(),
                    nth,
                });
            }
            keys
        };
        let (ka, kb) = (keyed(a), keyed(b));
        let mut push = |change| {
            out.push(Difference {
                a: None,
                b: None,
                change,
            })
        };
        for (key, request) in ka.iter().zip(a) {
            let Some(there) = kb.iter().position(|k| k == key) else {
                push(Change::Request {
                    key: key.clone(),
                    only_in: Side::A,
                });
                continue;
            };
            let from = carried(self.a, request);
            let to = carried(self.b, &b[there]);
            let same = match (&from, &to) {
                (Carried::Span(x), Carried::Span(y)) => self.in_b(*x) == Some(*y),
                (Carried::Invalid(_), Carried::Invalid(_)) => true,
                (from, to) => from == to,
            };
            if !same {
                push(Change::Context {
                    key: key.clone(),
                    from,
                    to,
                });
            }
        }
        for key in kb.iter().filter(|k| !ka.contains(k)) {
            push(Change::Request {
                key: key.clone(),
                only_in: Side::B,
            });
        }
    }
}

/// What `request` carried, against the spans `captured` holds.
fn carried(captured: &Captured, request: &ReceivedRequest) -> Carried {
    let Some(header) = &request.traceparent else {
        return Carried::Nothing;
    };
    match TraceContext::parse_traceparent(header) {
        Ok(context) => match captured
            .spans
            .iter()
            .position(|s| s.span_id == context.span_id)
        {
            Some(ix) => Carried::Span(ix),
            None => Carried::Remote(context.trace_id, context.span_id),
        },
        Err(_) => Carried::Invalid(header.clone()),
    }
}

/// The most lines of one span compared line by line; past it, as counts of each line.
const MAX_LINES_ALIGNED: usize = 2_000;

/// The lines only one of the two spans wrote, in order (A's first where both have some), by
/// the longest common subsequence of (level, message), or of messages alone without levels.
fn event_changes<'a>(
    a: &'a Captured,
    sa: &SpanData,
    b: &'a Captured,
    sb: &SpanData,
    levels: bool,
) -> Vec<(Side, &'a LogLine)> {
    let lines = |c: &'a Captured, s: &SpanData| -> Vec<&'a LogLine> {
        c.logs
            .iter()
            .filter(|l| l.span.is_some_and(|r| r.span_id == s.span_id))
            .collect()
    };
    let (la, lb) = (lines(a, sa), lines(b, sb));
    let same = |x: &LogLine, y: &LogLine| x.message == y.message && (!levels || x.level == y.level);
    let mut out = Vec::new();
    if la.len() > MAX_LINES_ALIGNED || lb.len() > MAX_LINES_ALIGNED {
        let mut unused: Vec<bool> = vec![true; lb.len()];
        for x in &la {
            match (0..lb.len()).find(|k| unused[*k] && same(x, lb[*k])) {
                Some(k) => unused[k] = false,
                None => out.push((Side::A, *x)),
            }
        }
        out.extend(
            lb.iter()
                .zip(unused)
                .filter(|(_, u)| *u)
                .map(|(y, _)| (Side::B, *y)),
        );
        return out;
    }
    // lcs[x][y]: the longest common subsequence of la[x..] and lb[y..].
    let mut lcs = vec![vec![0u32; lb.len() + 1]; la.len() + 1];
    for x in (0..la.len()).rev() {
        for y in (0..lb.len()).rev() {
            lcs[x][y] = if same(la[x], lb[y]) {
                lcs[x + 1][y + 1] + 1
            } else {
                lcs[x + 1][y].max(lcs[x][y + 1])
            };
        }
    }
    let (mut x, mut y) = (0, 0);
    while x < la.len() || y < lb.len() {
        if x < la.len() && y < lb.len() && same(la[x], lb[y]) {
            x += 1;
            y += 1;
        } else if y == lb.len() || (x < la.len() && lcs[x + 1][y] >= lcs[x][y + 1]) {
            out.push((Side::A, la[x]));
            x += 1;
        } else {
            out.push((Side::B, lb[y]));
            y += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::VirtualTime;
    use crate::mocks::MockKind;
    use crate::trace::{
        FieldValue, Fields, ParentKind, SpanId, SpanStatus, ThinVec, TraceFlags, TraceId,
    };

    fn trace(n: u128) -> TraceId {
        TraceId::from_bytes(n.to_be_bytes()).unwrap()
    }

    fn id(n: u64) -> SpanId {
        SpanId::from_bytes(n.to_be_bytes()).unwrap()
    }

    /// A span `n` of trace 1 under `parent`, from `start_ms` for `ms`.
    fn span(n: u64, parent: Option<u64>, op: &'static str, start_ms: u64, ms: u64) -> SpanData {
        SpanData {
            seq: n as u32,
            trace_id: trace(1),
            span_id: id(n),
            parent: parent.map(|p| (id(p), ParentKind::Local)),
            links: ThinVec::new(),
            op,
            fields: Fields::new(),
            status: SpanStatus::Ok,
            start: VirtualTime::from_micros(start_ms * 1_000),
            end: VirtualTime::from_micros((start_ms + ms) * 1_000),
            flags: TraceFlags::SAMPLED,
            tracestate: None,
            request_id: None,
        }
    }

    fn line(span: &SpanData, level: tracing::Level, message: &str) -> LogLine {
        LogLine {
            seq: 100,
            at: span.start,
            level,
            message: message.to_owned(),
            fields: Fields::new(),
            target: "",
            span: Some(span.span_ref()),
            request_id: None,
        }
    }

    /// calendar_failure's shape: a booking, its calendar call, the scheduling and its job.
    fn booking() -> ReplayOutcome {
        let mut spans = vec![
            span(1, None, "booking_creation", 0, 120),
            span(2, Some(1), "calendar_event_creation", 0, 120),
            span(3, Some(1), "webhook_scheduling", 120, 0),
            span(4, Some(3), "webhook_execution", 300_000, 80),
        ];
        spans[1]
            .fields
            .push(("calendar", FieldValue::Str("google".into())));
        spans[3].parent = Some((id(3), ParentKind::Remote));
        spans[3].links.push(id(3));
        let logs = vec![
            line(&spans[0], tracing::Level::INFO, "Booking creation started"),
            line(
                &spans[1],
                tracing::Level::INFO,
                "EventManager.create started",
            ),
            line(
                &spans[3],
                tracing::Level::INFO,
                "Webhook executed 5 minutes later",
            ),
        ];
        let captured = Captured {
            spans,
            logs,
            ..Captured::default()
        };
        ReplayOutcome::of_spans("calendar_failure", 1, captured)
    }

    fn edited(edit: impl FnOnce(&mut Captured)) -> ReplayOutcome {
        let mut outcome = booking();
        edit(&mut outcome.captured);
        outcome
    }

    fn changes_within(b: &ReplayOutcome, tolerance: Tolerance) -> Vec<Difference> {
        let a = booking();
        let side = |outcome| Compared {
            outcome,
            holds: Holds::ALL,
        };
        diff(side(&a), side(b), tolerance).differences
    }

    fn changes(b: &ReplayOutcome) -> Vec<Difference> {
        changes_within(b, Tolerance::default())
    }

    fn only(change: Change, a: Option<usize>, b: Option<usize>) -> Vec<Difference> {
        vec![Difference { a, b, change }]
    }

    #[test]
    fn a_replay_equals_itself() {
        assert_eq!(changes(&booking()), []);
    }

    #[test]
    fn added() {
        let b = edited(|c| c.spans.push(span(5, Some(1), "payment_processing", 0, 50)));
        assert_eq!(changes(&b), only(Change::Added, None, Some(4)));
    }

    #[test]
    fn removed() {
        let b = edited(|c| {
            c.spans.remove(1);
            c.logs.remove(1);
        });
        assert_eq!(changes(&b), only(Change::Removed, Some(1), None));
    }

    #[test]
    fn reparented() {
        // The job continues nothing: a root of a trace of its own, without its link.
        let b = edited(|c| {
            let job = &mut c.spans[3];
            job.trace_id = trace(2);
            job.parent = None;
            job.links.clear();
            c.logs[2].span = Some(c.spans[3].span_ref());
        });
        assert_eq!(
            changes(&b),
            vec![
                Difference {
                    a: Some(3),
                    b: Some(3),
                    change: Change::Moved {
                        from: Place {
                            parent: Some(Parent::Span(2)),
                            trace: trace(1)
                        },
                        to: Place {
                            parent: None,
                            trace: trace(2)
                        },
                        own_trace: true,
                    },
                },
                Difference {
                    a: Some(3),
                    b: Some(3),
                    change: Change::Link {
                        only_in: Side::A,
                        target: Target::Span(2)
                    },
                },
            ]
        );
        // Under another parent of the same trace: moved, not a trace of its own.
        let b = edited(|c| c.spans[3].parent = Some((id(1), ParentKind::Local)));
        assert!(matches!(
            changes(&b)[0].change,
            Change::Moved {
                to: Place {
                    parent: Some(Parent::Span(0)),
                    ..
                },
                own_trace: false,
                ..
            }
        ));
    }

    #[test]
    fn status() {
        let b = edited(|c| c.spans[1].status = SpanStatus::Error("Rate Limit Exceeded".into()));
        assert_eq!(
            changes(&b),
            only(
                Change::Status {
                    from: SpanStatus::Ok,
                    to: SpanStatus::Error("Rate Limit Exceeded".into())
                },
                Some(1),
                Some(1)
            )
        );
    }

    #[test]
    fn attribute() {
        let b = edited(|c| {
            c.spans[1].fields[0].1 = FieldValue::Str("outlook".into());
            c.spans[2].fields.push(("subscribers", FieldValue::U64(2)));
        });
        assert_eq!(
            changes(&b),
            vec![
                Difference {
                    a: Some(1),
                    b: Some(1),
                    change: Change::Attribute {
                        key: "calendar".into(),
                        from: Some("google".into()),
                        to: Some("outlook".into())
                    },
                },
                Difference {
                    a: Some(2),
                    b: Some(2),
                    change: Change::Attribute {
                        key: "subscribers".into(),
                        from: None,
                        to: Some("2".into())
                    },
                },
            ]
        );
    }

    #[test]
    fn event() {
        let b = edited(|c| {
            let error = line(
                &c.spans[1],
                tracing::Level::ERROR,
                "Google Calendar API error",
            );
            c.logs.insert(2, error);
            c.logs[0].message = "Booking creation started for eventTypeId: 123".into();
        });
        assert_eq!(
            changes(&b),
            vec![
                Difference {
                    a: Some(0),
                    b: Some(0),
                    change: Change::Event {
                        only_in: Side::A,
                        level: Some(tracing::Level::INFO),
                        message: "Booking creation started".into()
                    },
                },
                Difference {
                    a: Some(0),
                    b: Some(0),
                    change: Change::Event {
                        only_in: Side::B,
                        level: Some(tracing::Level::INFO),
                        message: "Booking creation started for eventTypeId: 123".into()
                    },
                },
                Difference {
                    a: Some(1),
                    b: Some(1),
                    change: Change::Event {
                        only_in: Side::B,
                        level: Some(tracing::Level::ERROR),
                        message: "Google Calendar API error".into()
                    },
                },
            ]
        );
    }

    #[test]
    fn duration_within_tolerance() {
        // 120ms → 125ms: 4.2%, 5ms.
        let b = edited(|c| c.spans[1].end = VirtualTime::from_micros(125_000));
        assert_eq!(changes_within(&b, Tolerance::Percent(5.0)), []);
        assert_eq!(
            changes_within(&b, Tolerance::Absolute(Duration::from_millis(5))),
            []
        );
    }

    #[test]
    fn duration_over_tolerance() {
        let b = edited(|c| c.spans[1].end = VirtualTime::from_micros(127_000));
        let over = only(
            Change::Duration {
                from: Duration::from_millis(120),
                to: Duration::from_millis(127),
            },
            Some(1),
            Some(1),
        );
        assert_eq!(changes_within(&b, Tolerance::Percent(5.0)), over);
        assert_eq!(
            changes_within(&b, Tolerance::Absolute(Duration::from_millis(5))),
            over
        );
        assert_eq!(changes(&b), over, "exact by default");
    }

    #[test]
    fn link() {
        let b = edited(|c| {
            c.spans[3].links.clear();
            c.spans[2].links.push(id(2));
        });
        assert_eq!(
            changes(&b),
            vec![
                Difference {
                    a: Some(2),
                    b: Some(2),
                    change: Change::Link {
                        only_in: Side::B,
                        target: Target::Span(1)
                    },
                },
                Difference {
                    a: Some(3),
                    b: Some(3),
                    change: Change::Link {
                        only_in: Side::A,
                        target: Target::Span(2)
                    },
                },
            ]
        );
    }

    fn request(traceparent: Option<&str>) -> ReceivedRequest {
        ReceivedRequest {
            mock: "google".into(),
            kind: MockKind::GoogleCalendar,
            method: "POST".into(),
            path: "/calendar/v3/calendars/primary/events".into(),
            traceparent: traceparent.map(str::to_owned),
            tracestate: None,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    #[test]
    fn a_request_that_lost_its_context_or_is_missing() {
        let sent = format!("00-{}-{}-01", trace(1), id(2));
        let mut a = booking();
        a.requests = vec![request(Some(&sent)), request(Some(&sent))];
        let mut b = booking();
        b.requests = vec![request(None)];
        let side = |outcome| Compared {
            outcome,
            holds: Holds::ALL,
        };
        let found = diff(side(&a), side(&b), Tolerance::default()).differences;
        let key = |nth| RequestKey {
            mock: "google".into(),
            method: "POST".into(),
            path: "/calendar/v3/calendars/primary/events".into(),
            nth,
        };
        assert_eq!(
            found,
            vec![
                Difference {
                    a: None,
                    b: None,
                    change: Change::Context {
                        key: key(0),
                        from: Carried::Span(1),
                        to: Carried::Nothing
                    },
                },
                Difference {
                    a: None,
                    b: None,
                    change: Change::Request {
                        key: key(1),
                        only_in: Side::A
                    },
                },
            ]
        );
    }

    #[test]
    fn what_one_side_cannot_show_is_not_compared_and_said_so() {
        let a = booking();
        let b = edited(|c| {
            for s in &mut c.spans {
                s.parent = None;
                s.links.clear();
                s.fields.clear();
                s.end = s.start;
            }
        });
        let result = diff(
            Compared {
                outcome: &a,
                holds: Holds::ALL,
            },
            Compared {
                outcome: &b,
                holds: Holds::LINES,
            },
            Tolerance::default(),
        );
        assert_eq!(result.differences, []);
        let parts: Vec<&str> = result.not_compared.iter().map(|n| n.part).collect();
        assert_eq!(
            parts,
            [
                "parents",
                "durations",
                "attributes",
                "links",
                "status",
                "log levels",
                "spans without log lines",
                "mock requests"
            ]
        );
        assert!(result.not_compared.iter().all(|n| n.lacking == [Side::B]));
    }
}
