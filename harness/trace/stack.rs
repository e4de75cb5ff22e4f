//! `SpanStack`: the spans each thread has entered, innermost last, per subscriber. The current
//! span of a capture subscriber is read here.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::store::LiveId;

/// The spans this thread has entered, innermost last, each with the subscriber that owns it
/// (a thread may run under several, one inside another). A span entered again while already
/// on the stack is marked a duplicate: it is not the current span a second time, and leaving
/// it pops the right entry (the same rules as `tracing_subscriber::Registry`'s stack).
///
/// **Invariant:** for each owner and span, the earliest entry is the one that is not a
/// duplicate, and it is the last of them to be popped.
#[derive(Debug, Default)]
pub(super) struct SpanStack(Vec<StackEntry>);

/// One entered span.
#[derive(Clone, Copy, Debug)]
struct StackEntry {
    /// The subscriber the span belongs to ([`next_stack_owner`]).
    owner: u64,
    id: LiveId,
    /// Entered while already on the stack: never the current span.
    duplicate: bool,
}

impl SpanStack {
    /// Enters `id`: it becomes `owner`'s current span unless it already is on the stack.
    #[inline]
    pub(super) fn push(&mut self, owner: u64, id: LiveId) {
        let duplicate = self.0.iter().any(|e| e.owner == owner && e.id == id);
        self.0.push(StackEntry {
            owner,
            id,
            duplicate,
        });
    }

    /// Leaves `id`: removes its latest entry, wherever it is (spans may be left out of order).
    /// Leaving a span that was never entered does nothing.
    #[inline]
    pub(super) fn pop(&mut self, owner: u64, id: LiveId) {
        let this = |e: &StackEntry| e.owner == owner && e.id == id;
        if self.0.last().is_some_and(this) {
            self.0.pop();
        } else if let Some(at) = self.0.iter().rposition(this) {
            self.0.remove(at);
        }
    }

    /// `owner`'s innermost entered span.
    #[inline]
    pub(super) fn current(&self, owner: u64) -> Option<LiveId> {
        let entry = self
            .0
            .iter()
            .rev()
            .find(|e| e.owner == owner && !e.duplicate);
        entry.map(|e| e.id)
    }
}

// One plain `thread_local!` for all subscribers rather than a per-subscriber `ThreadLocal`:
// entering and leaving spans happens on every poll of an instrumented future, and a std
// thread-local with a const initialiser is one TLS access where a per-instance one first
// looks the thread up.
thread_local! {
    static STACK: RefCell<SpanStack> = const { RefCell::new(SpanStack(Vec::new())) };
}

/// A new subscriber's mark for its entries in the threads' stacks, unique in the process.
pub(super) fn next_stack_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// [`SpanStack::push`] on this thread's stack. Does nothing while the thread exits.
#[inline]
pub(super) fn enter(owner: u64, id: LiveId) {
    let _ = STACK.try_with(|stack| {
        if let Ok(mut stack) = stack.try_borrow_mut() {
            stack.push(owner, id);
        }
    });
}

/// [`SpanStack::pop`] on this thread's stack. Does nothing while the thread exits.
#[inline]
pub(super) fn exit(owner: u64, id: LiveId) {
    let _ = STACK.try_with(|stack| {
        if let Ok(mut stack) = stack.try_borrow_mut() {
            stack.pop(owner, id);
        }
    });
}

/// [`SpanStack::current`] on this thread's stack; `None` while the thread exits.
#[inline]
pub(super) fn current(owner: u64) -> Option<LiveId> {
    STACK
        .try_with(|stack| stack.try_borrow().ok()?.current(owner))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::{Enter, Exit};

    const OURS: u64 = 1;
    const THEIRS: u64 = 2;

    #[derive(Clone, Copy, Debug)]
    enum Step {
        Enter,
        Exit,
    }

    /// Runs `script` on a fresh stack: after each step, `[OURS, THEIRS]`'s current spans must
    /// be as listed.
    fn check(script: &[(Step, u64, LiveId, [Option<LiveId>; 2])]) {
        let mut stack = SpanStack::default();
        for (n, &(step, owner, id, expected)) in script.iter().enumerate() {
            match step {
                Enter => stack.push(owner, id),
                Exit => stack.pop(owner, id),
            }
            let current = [stack.current(OURS), stack.current(THEIRS)];
            assert_eq!(
                current, expected,
                "after step {n}, {step:?} {id} of {owner}"
            );
        }
    }

    #[test]
    fn the_innermost_span_is_current_and_leaving_it_restores_its_parent() {
        check(&[
            (Enter, OURS, 10, [Some(10), None]),
            (Enter, OURS, 20, [Some(20), None]),
            (Exit, OURS, 20, [Some(10), None]),
            (Exit, OURS, 10, [None, None]),
        ]);
    }

    #[test]
    fn each_owner_sees_only_its_own_spans() {
        check(&[
            (Enter, OURS, 10, [Some(10), None]),
            // The same id under another owner is another span, not a duplicate.
            (Enter, THEIRS, 10, [Some(10), Some(10)]),
            (Enter, THEIRS, 30, [Some(10), Some(30)]),
            (Exit, THEIRS, 10, [Some(10), Some(30)]),
            // Not ours to leave.
            (Exit, OURS, 30, [Some(10), Some(30)]),
        ]);
    }

    #[test]
    fn a_span_entered_again_is_not_current_a_second_time() {
        check(&[
            (Enter, OURS, 10, [Some(10), None]),
            (Enter, OURS, 20, [Some(20), None]),
            (Enter, OURS, 10, [Some(20), None]),
            // Leaving it removes the duplicate, not the first entry.
            (Exit, OURS, 10, [Some(20), None]),
            (Exit, OURS, 20, [Some(10), None]),
        ]);
    }

    #[test]
    fn the_first_entry_outlives_its_duplicates_whatever_is_above_them() {
        check(&[
            (Enter, OURS, 10, [Some(10), None]),
            (Enter, OURS, 10, [Some(10), None]),
            (Enter, OURS, 20, [Some(20), None]),
            // Not the top entry: the latest entry of 10, the duplicate, goes.
            (Exit, OURS, 10, [Some(20), None]),
            (Exit, OURS, 20, [Some(10), None]),
            (Exit, OURS, 10, [None, None]),
        ]);
    }

    #[test]
    fn leaving_out_of_order_or_a_span_never_entered_keeps_the_rest() {
        check(&[
            (Enter, OURS, 10, [Some(10), None]),
            (Enter, OURS, 20, [Some(20), None]),
            (Exit, OURS, 99, [Some(20), None]),
            (Exit, OURS, 10, [Some(20), None]),
            (Exit, OURS, 20, [None, None]),
            (Exit, OURS, 20, [None, None]),
        ]);
    }

    #[test]
    fn each_thread_has_its_own_stack_and_owners_are_unique() {
        let (a, b) = (next_stack_owner(), next_stack_owner());
        assert_ne!(a, b);
        enter(a, 10);
        let elsewhere = std::thread::spawn(move || current(a)).join().unwrap();
        assert_eq!(elsewhere, None);
        assert_eq!(current(a), Some(10));
        assert_eq!(current(b), None);
        exit(a, 10);
        assert_eq!(current(a), None);
    }
}
