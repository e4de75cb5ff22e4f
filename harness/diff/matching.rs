//! Which span of B is which span of A: matched by place in the aliased tree. Roots are matched
//! to roots and children to the children of their parent's match, by operation and order among
//! the siblings of that operation (the second `webhook_execution` under a scheduling span is
//! the second one there in B). Spans left over are then matched by operation in creation order,
//! as spans that moved (another parent, another trace); what is left after that was added or
//! removed.
//!
//! Without parents (log lines), each trace is flattened: its first span stands for the trace
//! and every other span of it is that span's child, so a span that moved to another trace is
//! still found.

use std::collections::VecDeque;

use crate::trace::{Captured, SpanId};

/// How a pair was matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Matched {
    /// At the same place in both trees.
    InPlace,
    /// By operation alone, after the places were matched: the span moved.
    Moved,
}

/// One side's tree, by index into `captured.spans`.
pub(super) struct Tree {
    ops: Vec<&'static str>,
    /// Each span's parent in this tree, if captured.
    pub(super) parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// The spans without a captured parent, in creation order.
    pub(super) roots: Vec<usize>,
}

impl Tree {
    /// The tree of `captured`: by parent, or flattened per trace when `by_parent` is false. A
    /// span not kept (`keep[i]` false) is in no tree: it has no parent, no children, and is
    /// no root; its children hang from the nearest kept ancestor.
    pub(super) fn of(captured: &Captured, by_parent: bool, keep: &[bool]) -> Tree {
        let spans = &captured.spans;
        let index = |id: SpanId| spans.iter().position(|s| s.span_id == id);
        let mut parent: Vec<Option<usize>> = if by_parent {
            spans
                .iter()
                .enumerate()
                // A span is never its own parent, even in a corrupt capture.
                .map(|(i, s)| s.parent_id().and_then(index).filter(|p| *p != i))
                .collect()
        } else {
            spans
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (0..spans.len())
                        .find(|f| keep[*f] && spans[*f].trace_id == s.trace_id)
                        .filter(|f| *f != i)
                })
                .collect()
        };
        // A parent cycle in a corrupt capture would hide its spans from every root: break it.
        for i in 0..spans.len() {
            let mut at = parent[i];
            let mut steps = 0;
            while let Some(p) = at {
                steps += 1;
                if p == i || steps > spans.len() {
                    parent[i] = None;
                    break;
                }
                at = parent[p];
            }
        }
        // Past the spans not kept, to the nearest kept ancestor.
        let original = parent.clone();
        for i in 0..spans.len() {
            let mut at = original[i];
            let mut steps = 0;
            while let Some(p) = at.filter(|p| !keep[*p]) {
                steps += 1;
                at = if steps > spans.len() {
                    None
                } else {
                    original[p]
                };
            }
            parent[i] = if keep[i] { at } else { None };
        }
        let mut children = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, p) in parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None if keep[i] => roots.push(i),
                None => {}
            }
        }
        Tree {
            ops: spans.iter().map(|s| s.op).collect(),
            parent,
            children,
            roots,
        }
    }

    fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether span `i` is in the tree.
    pub(super) fn has(&self, i: usize) -> bool {
        self.roots.contains(&i) || self.parent[i].is_some()
    }
}

/// Every pair `(index in A, index in B, how)`, in the order they were found.
pub(super) fn pairs(a: &Tree, b: &Tree) -> Vec<(usize, usize, Matched)> {
    let mut state = State {
        b_of_a: vec![None; a.len()],
        a_of_b: vec![None; b.len()],
        found: Vec::new(),
    };
    let mut queue = VecDeque::new();
    state.siblings(a, b, &a.roots, &b.roots, Matched::InPlace, &mut queue);
    state.descend(a, b, &mut queue);
    for i in 0..a.len() {
        if state.b_of_a[i].is_some() || !a.has(i) {
            continue;
        }
        let Some(j) =
            (0..b.len()).find(|j| b.has(*j) && state.a_of_b[*j].is_none() && b.ops[*j] == a.ops[i])
        else {
            continue;
        };
        state.pair(i, j, Matched::Moved, &mut queue);
        state.descend(a, b, &mut queue);
    }
    state.found
}

struct State {
    b_of_a: Vec<Option<usize>>,
    a_of_b: Vec<Option<usize>>,
    found: Vec<(usize, usize, Matched)>,
}

impl State {
    fn pair(&mut self, i: usize, j: usize, how: Matched, queue: &mut VecDeque<(usize, usize)>) {
        self.b_of_a[i] = Some(j);
        self.a_of_b[j] = Some(i);
        self.found.push((i, j, how));
        queue.push_back((i, j));
    }

    /// Children of matched pairs, breadth first, until no pair is left to look into.
    fn descend(&mut self, a: &Tree, b: &Tree, queue: &mut VecDeque<(usize, usize)>) {
        while let Some((i, j)) = queue.pop_front() {
            let (ca, cb) = (a.children[i].clone(), b.children[j].clone());
            self.siblings(a, b, &ca, &cb, Matched::InPlace, queue);
        }
    }

    /// The k-th unmatched span of each operation among `xs` to the k-th among `ys`.
    fn siblings(
        &mut self,
        a: &Tree,
        b: &Tree,
        xs: &[usize],
        ys: &[usize],
        how: Matched,
        queue: &mut VecDeque<(usize, usize)>,
    ) {
        let mut taken = vec![false; ys.len()];
        for &i in xs {
            if self.b_of_a[i].is_some() {
                continue;
            }
            let found = ys
                .iter()
                .enumerate()
                .find(|(k, j)| !taken[*k] && self.a_of_b[**j].is_none() && b.ops[**j] == a.ops[i]);
            if let Some((k, &j)) = found {
                taken[k] = true;
                self.pair(i, j, how, queue);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualTime;
    use crate::trace::{Fields, ParentKind, SpanData, SpanStatus, ThinVec, TraceFlags, TraceId};

    /// `(id, trace, parent, op)` rows as a capture.
    fn captured(rows: &[(u64, u128, Option<u64>, &'static str)]) -> Captured {
        Captured {
            spans: rows
                .iter()
                .enumerate()
                .map(|(seq, (id, trace, parent, op))| SpanData {
                    seq: seq as u32,
                    trace_id: TraceId::from_bytes(trace.to_be_bytes()).unwrap(),
                    span_id: SpanId::from_bytes(id.to_be_bytes()).unwrap(),
                    parent: parent.map(|p| {
                        (
                            SpanId::from_bytes(p.to_be_bytes()).unwrap(),
                            ParentKind::Local,
                        )
                    }),
                    links: ThinVec::new(),
                    op,
                    fields: Fields::new(),
                    status: SpanStatus::Ok,
                    start: VirtualTime::ZERO,
                    end: VirtualTime::ZERO,
                    flags: TraceFlags::SAMPLED,
                    tracestate: None,
                    request_id: None,
                })
                .collect(),
            ..Captured::default()
        }
    }

    fn matched(a: &Captured, b: &Captured, by_parent: bool) -> Vec<(usize, usize, Matched)> {
        let mut found = pairs(
            &Tree::of(a, by_parent, &vec![true; a.spans.len()]),
            &Tree::of(b, by_parent, &vec![true; b.spans.len()]),
        );
        found.sort_unstable_by_key(|p| p.0);
        found
    }

    #[test]
    fn siblings_match_by_operation_and_order_whatever_else_was_added() {
        let a = captured(&[
            (1, 1, None, "booking_creation"),
            (2, 1, Some(1), "calendar_event_creation"),
            (3, 1, Some(1), "webhook_scheduling"),
            (4, 1, Some(3), "webhook_execution"),
            (5, 1, Some(3), "webhook_execution"),
        ]);
        // B adds a payment before the others and drops the second job.
        let b = captured(&[
            (11, 7, None, "booking_creation"),
            (12, 7, Some(11), "payment_processing"),
            (13, 7, Some(11), "calendar_event_creation"),
            (14, 7, Some(11), "webhook_scheduling"),
            (15, 7, Some(14), "webhook_execution"),
        ]);
        use Matched::InPlace;
        assert_eq!(
            matched(&a, &b, true),
            [
                (0, 0, InPlace),
                (1, 2, InPlace),
                (2, 3, InPlace),
                (3, 4, InPlace)
            ]
        );
    }

    #[test]
    fn a_span_under_another_parent_or_in_its_own_trace_is_matched_as_moved() {
        let a = captured(&[
            (1, 1, None, "booking_creation"),
            (2, 1, Some(1), "webhook_scheduling"),
            (3, 1, Some(2), "webhook_execution"),
        ]);
        let b = captured(&[
            (1, 1, None, "booking_creation"),
            (2, 1, Some(1), "webhook_scheduling"),
            (3, 2, None, "webhook_execution"),
        ]);
        use Matched::{InPlace, Moved};
        assert_eq!(
            matched(&a, &b, true),
            [(0, 0, InPlace), (1, 1, InPlace), (2, 2, Moved)]
        );
        // Without parents, the trace is what moved.
        assert_eq!(
            matched(&a, &b, false),
            [(0, 0, InPlace), (1, 1, InPlace), (2, 2, Moved)]
        );
    }

    #[test]
    fn the_children_of_a_moved_span_stay_matched_in_place_under_it() {
        let a = captured(&[
            (1, 1, None, "payment_processing"),
            (2, 1, Some(1), "payment_success_processing"),
            (3, 1, Some(2), "booking_confirmation"),
        ]);
        let b = captured(&[
            (1, 1, None, "payment_processing"),
            (2, 2, None, "payment_success_processing"),
            (3, 2, Some(2), "booking_confirmation"),
        ]);
        use Matched::{InPlace, Moved};
        assert_eq!(
            matched(&a, &b, true),
            [(0, 0, InPlace), (1, 1, Moved), (2, 2, InPlace)]
        );
    }

    #[test]
    fn a_parent_cycle_does_not_hide_spans() {
        let a = captured(&[(1, 1, Some(2), "x"), (2, 1, Some(1), "y")]);
        let tree = Tree::of(&a, true, &[true, true]);
        assert!(!tree.roots.is_empty());
        assert_eq!(matched(&a, &a, true).len(), 2);
    }
}
