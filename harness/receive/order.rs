//! Received spans in the order the in-process store would have created them, as a
//! [`Captured`]: reports alias ids by creation order (`trace_1`, `span_001`), so the order must
//! be deterministic and as close to creation as OTLP lets us tell.
//!
//! OTLP carries no creation number. Spans are ordered by start time, a parent before its
//! children (a batch processor exports children first, as they end first), then by arrival;
//! each event becomes a log line placed by its time, after the span it was written in opened,
//! and, at one instant, in span order and then in the order its span carried them — except that
//! a span's event at the instant one of its synchronous children ended (having started
//! earlier) was written after that child closed, so it follows the child's lines and those of
//! the child's descendants. Spans and lines share one numbering, as they do in the store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::convert::StoredSpan;
use crate::clock::VirtualTime;
use crate::trace::{Captured, LogLine, ParentKind, Seq, SpanData, SpanId};

/// The model of `spans` (given in arrival order), times measured from `zero_unix_nanos`.
/// `parent_kind` says how a span came by its parent when the sender did not.
pub(crate) fn captured(
    spans: &[&StoredSpan],
    zero_unix_nanos: u64,
    parent_kind: impl Fn(&StoredSpan) -> ParentKind,
) -> Captured {
    let rank = creation_order(spans);
    let at = |nanos: u64| VirtualTime::from_micros(nanos.saturating_sub(zero_unix_nanos) / 1_000);
    let closed_children = closed_children(spans, &rank);

    // Every event with its sort key: (instant, the place it follows, whether it follows a
    // closed child, its span's place, its place in the span), and its span's place and number.
    // An event stamped before its span opened is placed at the opening.
    let mut lines: Vec<(LineKey, usize, usize)> = Vec::new();
    for (place, &i) in rank.iter().enumerate() {
        let span = spans[i];
        for (n, event) in span.events.iter().enumerate() {
            let instant = event.at_unix_nanos.max(span.start_unix_nanos);
            let after_child = closed_children[place]
                .iter()
                .filter(|c| c.end == instant && c.start < instant)
                .map(|c| c.last_place)
                .max();
            let key = match after_child {
                Some(last) => (instant, last, 1, place, n),
                None => (instant, place, 0, place, n),
            };
            lines.push((key, place, n));
        }
    }
    lines.sort_unstable_by_key(|(key, _, _)| *key);

    // One numbering, spans and lines merged by key; a line never before its own span.
    let mut span_seq = vec![0 as Seq; rank.len()];
    let mut line_seq = Vec::with_capacity(lines.len());
    let (mut next_span, mut next_line, mut seq) = (0, 0, 0 as Seq);
    while next_span < rank.len() || next_line < lines.len() {
        let span_key = (next_span < rank.len())
            .then(|| (spans[rank[next_span]].start_unix_nanos, next_span, 0, 0, 0));
        let line_first = match (lines.get(next_line), span_key) {
            (Some(&(key, place, _)), Some(span_key)) => place < next_span && key < span_key,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if line_first {
            line_seq.push(seq);
            next_line += 1;
        } else {
            span_seq[next_span] = seq;
            next_span += 1;
        }
        seq = seq.wrapping_add(1);
    }

    let data: Vec<SpanData> = rank
        .iter()
        .enumerate()
        .map(|(place, &i)| {
            let span = spans[i];
            SpanData {
                seq: span_seq[place],
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent: span.parent.map(|p| (p, parent_kind(span))),
                links: span.links.clone(),
                op: span.op,
                fields: span.fields.clone(),
                status: span.status.clone(),
                start: at(span.start_unix_nanos),
                end: at(span.end_unix_nanos),
                flags: span.flags,
                tracestate: span.tracestate.clone(),
                request_id: span.request_id.clone(),
            }
        })
        .collect();
    let logs = lines
        .iter()
        .zip(line_seq)
        .map(|(&((instant, ..), place, n), seq)| {
            let span = spans[rank[place]];
            let event = &span.events[n];
            LogLine {
                seq,
                at: at(instant),
                level: event.level,
                message: event.message.clone(),
                fields: event.fields.clone(),
                target: event.target,
                span: Some(data[place].span_ref()),
                request_id: span.request_id.clone(),
            }
        })
        .collect();
    Captured {
        spans: data,
        logs,
        open: Vec::new(),
    }
}

/// A line's sort key: (instant, the place it follows, 1 if that is a closed child's subtree,
/// its span's place, its place in the span).
type LineKey = (u64, usize, u8, usize, usize);

/// A synchronous child as its parent's lines see it: when it started and ended, and the last
/// place of its subtree.
struct ClosedChild {
    start: u64,
    end: u64,
    last_place: usize,
}

/// For each place, its span's synchronous children (a local parent, no follows-from link to
/// it), each with the last place among it and its descendants.
fn closed_children(spans: &[&StoredSpan], rank: &[usize]) -> Vec<Vec<ClosedChild>> {
    let mut place_of = vec![0; spans.len()];
    for (place, &i) in rank.iter().enumerate() {
        place_of[i] = place;
    }
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let parent_of = |i: usize| {
        spans[i]
            .parent
            .and_then(|p| index.get(&p).copied())
            .filter(|&p| p != i)
    };
    // Children come after their parents in `rank`, so walking it backwards sees every
    // descendant before its ancestors (a cycle's members aside, which only a broken sender
    // makes, and which only order lines less well).
    let mut last_place = place_of.clone();
    for &i in rank.iter().rev() {
        if let Some(p) = parent_of(i) {
            last_place[p] = last_place[p].max(last_place[i]);
        }
    }
    let mut children: Vec<Vec<ClosedChild>> = (0..spans.len()).map(|_| Vec::new()).collect();
    for (i, span) in spans.iter().enumerate() {
        let Some(p) = parent_of(i) else { continue };
        if span.links.contains(&spans[p].span_id) {
            continue;
        }
        children[place_of[p]].push(ClosedChild {
            start: span.start_unix_nanos,
            end: span.end_unix_nanos,
            last_place: last_place[i],
        });
    }
    children
}

/// Indexes into `spans` in creation order: the earliest-starting span first, then by arrival,
/// among those whose parent (if it is among `spans`) is already placed. Parents that form a
/// cycle (only a broken sender makes one) are broken at the earliest member.
fn creation_order(spans: &[&StoredSpan]) -> Vec<usize> {
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut ready = BinaryHeap::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent.and_then(|p| index.get(&p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => ready.push(Reverse((span.start_unix_nanos, i))),
        }
    }
    let mut placed = vec![false; spans.len()];
    let mut order = Vec::with_capacity(spans.len());
    // Cycle members are never ready; the earliest unplaced one is then placed as if a root.
    let mut by_start: Vec<usize> = (0..spans.len()).collect();
    by_start.sort_by_key(|&i| (spans[i].start_unix_nanos, i));
    let mut next_unplaced = by_start.into_iter();
    loop {
        while let Some(Reverse((_, i))) = ready.pop() {
            if placed[i] {
                continue;
            }
            placed[i] = true;
            order.push(i);
            for &child in &children[i] {
                ready.push(Reverse((spans[child].start_unix_nanos, child)));
            }
        }
        match next_unplaced.find(|&i| !placed[i]) {
            Some(i) => ready.push(Reverse((spans[i].start_unix_nanos, i))),
            None => break,
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::convert::{SpanKind, StoredEvent};
    use crate::trace::{SpanStatus, ThinVec, TraceFlags, TraceId};
    use std::sync::Arc;

    fn span(id: u8, parent: Option<u8>, start: u64, events: &[u64]) -> StoredSpan {
        StoredSpan {
            service: Arc::from("svc"),
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([id; 8]).unwrap(),
            parent: parent.and_then(|p| SpanId::from_bytes([p; 8])),
            parent_remote: Some(false),
            links: ThinVec::new(),
            op: "op",
            kind: SpanKind::Internal,
            fields: ThinVec::new(),
            status: SpanStatus::Ok,
            start_unix_nanos: start,
            end_unix_nanos: start + 10_000,
            flags: TraceFlags::from_byte(1),
            tracestate: None,
            request_id: None,
            events: events
                .iter()
                .enumerate()
                .map(|(n, &at)| StoredEvent {
                    at_unix_nanos: at,
                    level: tracing::Level::INFO,
                    message: format!("{id}.{n}"),
                    fields: ThinVec::new(),
                    target: "t",
                })
                .collect(),
        }
    }

    /// `(span id byte, seq)` of spans and `(message, seq)` of lines, in the model's order.
    fn check(arrived: &[StoredSpan], spans: &[(u8, Seq)], lines: &[(&str, Seq)]) {
        let refs: Vec<&StoredSpan> = arrived.iter().collect();
        let captured = captured(&refs, 0, |_| ParentKind::Local);
        let got: Vec<(u8, Seq)> = captured
            .spans
            .iter()
            .map(|s| (s.span_id.to_bytes()[0], s.seq))
            .collect();
        assert_eq!(got, spans);
        let got: Vec<(&str, Seq)> = captured
            .logs
            .iter()
            .map(|l| (l.message.as_str(), l.seq))
            .collect();
        assert_eq!(got, lines);
    }

    #[test]
    fn children_that_arrive_first_still_come_after_their_parent() {
        // A batch processor's order: the child ended first, so it arrived first.
        check(
            &[span(2, Some(1), 0, &[0]), span(1, None, 0, &[0])],
            &[(1, 0), (2, 2)],
            &[("1.0", 1), ("2.0", 3)],
        );
    }

    #[test]
    fn spans_go_by_start_then_arrival_and_lines_by_time_within() {
        check(
            &[
                span(1, None, 0, &[0, 5_000]),
                span(3, Some(1), 2_000, &[]),
                span(2, Some(1), 1_000, &[1_000]),
                span(4, Some(1), 2_000, &[]),
            ],
            &[(1, 0), (2, 2), (3, 4), (4, 5)],
            &[("1.0", 1), ("2.0", 3), ("1.1", 6)],
        );
    }

    #[test]
    fn a_line_at_the_instant_a_child_ended_follows_the_childs_lines() {
        // The parent writes at 10_000, when its child (1_000…10_000) ended with a line of its
        // own: the parent wrote after the child closed.
        let ending = |mut s: StoredSpan, end: u64| {
            s.end_unix_nanos = end;
            s
        };
        let parent = || ending(span(1, None, 0, &[0, 10_000]), 20_000);
        check(
            &[ending(span(2, Some(1), 1_000, &[10_000]), 10_000), parent()],
            &[(1, 0), (2, 2)],
            &[("1.0", 1), ("2.0", 3), ("1.1", 4)],
        );
        // A child that starts and ends at that instant leaves it open: span order decides.
        check(
            &[
                ending(span(3, Some(1), 10_000, &[10_000]), 10_000),
                parent(),
            ],
            &[(1, 0), (3, 3)],
            &[("1.0", 1), ("1.1", 2), ("3.0", 4)],
        );
    }

    #[test]
    fn a_line_stamped_before_its_span_opened_is_placed_at_the_opening() {
        check(&[span(1, None, 5_000, &[1_000])], &[(1, 0)], &[("1.0", 1)]);
    }

    #[test]
    fn a_parent_cycle_is_broken_at_its_earliest_member() {
        check(
            &[span(1, Some(2), 3_000, &[]), span(2, Some(1), 1_000, &[])],
            &[(2, 0), (1, 1)],
            &[],
        );
    }
}
