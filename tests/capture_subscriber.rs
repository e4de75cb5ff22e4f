//! `CaptureSubscriber` keeps the span semantics `tracing_subscriber::Registry` gives a layer:
//! contextual, explicit and root parents, re-entered spans, parents that outlive their handles
//! while a child is open, spans closed on another thread, and several subscribers on one thread.

use std::sync::Arc;

use trace_harness::trace::{
    self, CaptureSubscriber, Captured, FieldValue, IdGenerator, SpanData, SpanStatus, TraceStore,
};
use tracing::{error, info, info_span, Dispatch, Span};

/// Runs `f` with a fresh capture as the thread's subscriber and returns what it captured.
fn capture(f: impl FnOnce()) -> Captured {
    let store = TraceStore::new();
    let dispatch = Dispatch::new(CaptureSubscriber::new(
        store.clone(),
        IdGenerator::seeded(5),
    ));
    tracing::dispatcher::with_default(&dispatch, f);
    store.snapshot()
}

fn span<'a>(captured: &'a Captured, op: &str) -> &'a SpanData {
    let mut found = captured.spans.iter().filter(|s| s.op == op);
    let span = found.next().unwrap_or_else(|| panic!("no `{op}` span"));
    assert!(found.next().is_none(), "more than one `{op}` span");
    span
}

#[test]
fn parents_are_contextual_explicit_or_none_and_children_share_the_trace() {
    let captured = capture(|| {
        let outer = info_span!("outer");
        let _in = outer.enter();
        info_span!("contextual").in_scope(|| info!("inside contextual"));
        let other = info_span!(parent: None, "explicit_root");
        info_span!(parent: &other, "explicit_child").in_scope(|| {});
        info_span!(parent: None, "root").in_scope(|| {});
        info!(parent: &other, "logged in explicit_root from outer");
    });
    let outer = span(&captured, "outer");
    let contextual = span(&captured, "contextual");
    let other = span(&captured, "explicit_root");
    let explicit = span(&captured, "explicit_child");
    let root = span(&captured, "root");
    assert_eq!(contextual.parent_id(), Some(outer.span_id));
    assert_eq!(contextual.trace_id, outer.trace_id);
    assert_eq!(explicit.parent_id(), Some(other.span_id));
    assert_eq!(explicit.trace_id, other.trace_id);
    for root_span in [other, root] {
        assert_eq!(root_span.parent_id(), None);
        assert_ne!(
            root_span.trace_id, outer.trace_id,
            "a root starts its own trace"
        );
    }
    let line = |text: &str| {
        let line = captured.logs.iter().find(|l| l.message == text);
        line.unwrap_or_else(|| panic!("no line `{text}`"))
    };
    assert_eq!(
        line("inside contextual").span.map(|s| s.span_id),
        Some(contextual.span_id)
    );
    assert_eq!(
        line("logged in explicit_root from outer")
            .span
            .map(|s| s.span_id),
        Some(other.span_id),
        "an explicit parent wins over the current span"
    );
    assert!(captured.open.is_empty());
}

#[test]
fn a_span_entered_again_while_entered_is_not_current_a_second_time() {
    let captured = capture(|| {
        let a = info_span!("a");
        let b = info_span!(parent: None, "b");
        let _a1 = a.enter();
        {
            let _b = b.enter();
            let _a2 = a.enter();
            // The registry's rule: `a` is already on the stack, so `b` stays current.
            info!("in b, a entered again");
        }
        // Leaving `a`'s second entry and `b` leaves `a` current.
        info!("in a");
        assert_eq!(Span::current().id(), a.id());
    });
    let op_of = |text: &str| {
        let line = captured.logs.iter().find(|l| l.message == text);
        line.and_then(|l| l.span).map(|s| s.op)
    };
    assert_eq!(op_of("in b, a entered again"), Some("b"));
    assert_eq!(op_of("in a"), Some("a"));
}

#[test]
fn a_parent_closes_after_its_last_child_and_fields_recorded_late_are_kept() {
    let store = TraceStore::new();
    let dispatch = Dispatch::new(CaptureSubscriber::new(
        store.clone(),
        IdGenerator::seeded(5),
    ));
    tracing::dispatcher::with_default(&dispatch, || {
        let child = {
            let parent = info_span!("parent", uid = tracing::field::Empty, n = 1);
            parent.record("uid", "booking-7");
            parent.record("n", 2);
            info_span!(parent: &parent, "child")
        };
        // The parent's own handle is gone; the open child keeps it open.
        let open: Vec<&str> = store.snapshot().open.iter().map(|s| s.op).collect();
        assert_eq!(open, ["parent", "child"]);
        child.in_scope(|| error!("child failed"));
    });
    let captured = store.snapshot();
    assert!(captured.open.is_empty());
    let parent = span(&captured, "parent");
    let child = span(&captured, "child");
    assert_eq!(child.parent_id(), Some(parent.span_id));
    // Stored in order of creation, whatever the order of closing.
    assert!(parent.seq < child.seq);
    // In the order first recorded; a value recorded again replaces the earlier one.
    assert_eq!(
        parent.fields.to_vec(),
        vec![
            ("n", FieldValue::I64(2)),
            ("uid", FieldValue::Str("booking-7".into())),
        ]
    );
    assert_eq!(child.status, SpanStatus::Error("child failed".into()));
    assert_eq!(parent.status, SpanStatus::Ok);
}

#[test]
fn a_span_opened_on_one_thread_can_close_on_another_and_parent_a_span_there() {
    let captured = capture(|| {
        let span = info_span!("moved");
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let _in = span.enter();
                info_span!("on_the_other_thread").in_scope(|| info!("there"));
            });
        })
        .join()
        .expect("the other thread finishes");
    });
    let moved = span(&captured, "moved");
    let there = span(&captured, "on_the_other_thread");
    assert_eq!(there.parent_id(), Some(moved.span_id));
    assert!(captured.open.is_empty(), "both closed: {:?}", captured.open);
}

#[test]
fn a_span_opened_on_one_thread_is_recorded_failed_and_closed_from_another() {
    let captured = capture(|| {
        let opened = info_span!("opened_here", uid = tracing::field::Empty, n = 1);
        info!(parent: &opened, "before the move");
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        let (to_there, from_here) = std::sync::mpsc::channel::<Span>();
        let there = std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let span = from_here.recv().expect("the span arrives");
                span.record("uid", "booking-9");
                span.record("n", 2);
                span.in_scope(|| {
                    error!("failed over there");
                    info_span!("child_there").in_scope(|| info!("in the child"));
                });
                // The last handle is dropped here: the span closes on this thread.
            });
        });
        to_there.send(opened).expect("the other thread waits");
        there.join().expect("the other thread finishes");
        info!("after the join");
    });
    assert!(captured.open.is_empty(), "all closed: {:?}", captured.open);
    let opened = span(&captured, "opened_here");
    let child = span(&captured, "child_there");
    assert_eq!(
        opened.fields.to_vec(),
        vec![
            ("n", FieldValue::I64(2)),
            ("uid", FieldValue::Str("booking-9".into())),
        ]
    );
    assert_eq!(opened.status, SpanStatus::Error("failed over there".into()));
    assert_eq!(child.parent_id(), Some(opened.span_id));
    assert_eq!(child.trace_id, opened.trace_id);
    assert!(opened.seq < child.seq);
    // Lines come back in the order they were written, whichever thread wrote them, each in
    // its span.
    let lines: Vec<(&str, Option<&str>)> = (captured.logs.iter())
        .map(|l| (l.message.as_str(), l.span.map(|s| s.op)))
        .collect();
    assert_eq!(
        lines,
        [
            ("before the move", Some("opened_here")),
            ("failed over there", Some("opened_here")),
            ("in the child", Some("child_there")),
            ("after the join", None),
        ]
    );
    assert!(captured.logs.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn subscribers_nested_on_one_thread_keep_their_own_current_span() {
    let inner_store = TraceStore::new();
    let inner = Dispatch::new(CaptureSubscriber::new(
        Arc::clone(&inner_store),
        IdGenerator::seeded(9),
    ));
    let outer = capture(|| {
        let _outer_span = info_span!("outer_span").entered();
        tracing::dispatcher::with_default(&inner, || {
            // The outer subscriber's span is not this subscriber's current span.
            info_span!("inner_span").in_scope(|| info!("inner line"));
        });
        info!("outer line");
    });
    let inner = inner_store.snapshot();
    assert_eq!(span(&inner, "inner_span").parent_id(), None);
    assert_eq!(
        inner.logs[0].span.map(|s| s.op),
        Some("inner_span"),
        "{:?}",
        inner.logs
    );
    assert_eq!(outer.logs.len(), 1);
    assert_eq!(outer.logs[0].span.map(|s| s.op), Some("outer_span"));
}

#[test]
fn follows_from_links_and_contexts_reach_the_store() {
    let captured = capture(|| {
        let cause = info_span!("cause");
        let cause_context = trace::context_of(&cause).expect("a captured span has a context");
        let effect = info_span!(parent: None, "effect");
        effect.follows_from(&cause);
        let continued = info_span!(parent: None, "continued");
        trace::continue_from(&continued, &cause_context, trace::Relation::FollowsFrom);
        let _in = continued.enter();
        let current = trace::current_context().expect("inside a span");
        assert_eq!(current.trace_id, cause_context.trace_id);
        drop(cause);
    });
    let cause = span(&captured, "cause");
    assert_eq!(
        span(&captured, "effect").links.to_vec(),
        vec![cause.span_id]
    );
    let continued = span(&captured, "continued");
    assert_eq!(continued.trace_id, cause.trace_id);
    assert_eq!(continued.parent_id(), Some(cause.span_id));
    assert_eq!(continued.links.to_vec(), vec![cause.span_id]);
}

#[test]
fn with_targets_captures_only_what_the_targets_enable() {
    use tracing_subscriber::filter::Targets;
    let store = TraceStore::new();
    let subscriber = CaptureSubscriber::new(store.clone(), IdGenerator::seeded(5))
        .with_targets(Targets::new().with_target("kept", tracing::Level::INFO));
    tracing::dispatcher::with_default(&Dispatch::new(subscriber), || {
        info_span!(target: "kept::inner", "kept_span").in_scope(|| {
            info!(target: "kept", "kept line");
            tracing::debug!(target: "kept", "below the level");
            info!(target: "dropped", "other target");
        });
        info_span!(target: "dropped", "dropped_span").in_scope(|| {
            info!(target: "kept", "kept line in a dropped span");
        });
    });
    let captured = store.snapshot();
    let ops: Vec<_> = captured.spans.iter().map(|s| s.op).collect();
    assert_eq!(ops, ["kept_span"]);
    let kept = span(&captured, "kept_span");
    let lines: Vec<_> = (captured.logs.iter())
        .map(|l| (l.message.as_str(), l.span.map(|s| s.span_id)))
        .collect();
    assert_eq!(
        lines,
        [
            ("kept line", Some(kept.span_id)),
            // The dropped span is not a span at all: the line belongs to no span.
            ("kept line in a dropped span", None),
        ]
    );
}
