//! The worker loop every multi-replay run goes through: items on `jobs` threads, each isolated
//! from the others' panics, results handed back in index order through a bounded window.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use super::ReplayError;
use crate::booking::guard::panic_message;

/// Runs `work` on every item on up to `jobs` threads, results in input order. A panic in one
/// item's work becomes [`ReplayError::Panicked`] for that item; the others run to the end.
pub fn run_isolated<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<R, ReplayError> + Sync,
    on_done: impl Fn(&T, &Result<R, ReplayError>) + Sync,
) -> Vec<Result<R, ReplayError>> {
    let mut results = Vec::with_capacity(items.len());
    // Every result is kept anyway, so holding workers back behind a slow item saves nothing:
    // the window spans the whole run.
    let _ = run_ordered(
        items.len(),
        jobs,
        items.len(),
        |i| &items[i],
        |item| work(item),
        |item, result| on_done(item, result),
        |_, _, result| {
            results.push(result);
            ControlFlow::Continue(())
        },
    );
    results
}

/// Items started but not yet consumed, per job, in [`run_streamed`]. A worker that finishes
/// takes the next item while an earlier, slower one still runs, so a window of exactly `jobs`
/// would idle every other worker behind one slow replay; a few items per job absorb the usual
/// spread of replay times while the run holds at most this many outcomes per job.
pub const WINDOW_PER_JOB: usize = 4;

/// Runs `work` on items `make(0)`, `make(1)`, … `make(count - 1)`, each made on the worker
/// that runs it, on up to `jobs` threads, and hands each item with its result to `consume` on
/// the calling thread in index order. `on_done` is called on the worker as each item ends, in
/// whatever order they end.
///
/// At most [`WINDOW_PER_JOB`] × `jobs` items are started and not yet consumed: item `i` is
/// not made until item `i − W` has been consumed, so memory stays flat however long the run.
/// A panic in one item's work becomes [`ReplayError::Panicked`] for that item. When `consume`
/// returns [`ControlFlow::Break`], no further item is started, the items already running end,
/// and `run_streamed` returns `Break` without consuming anything more.
pub fn run_streamed<T: Send, R: Send>(
    count: usize,
    jobs: usize,
    make: impl Fn(usize) -> T + Sync,
    work: impl Fn(&T) -> Result<R, ReplayError> + Sync,
    on_done: impl Fn(&T, &Result<R, ReplayError>) + Sync,
    consume: impl FnMut(usize, T, Result<R, ReplayError>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let window = WINDOW_PER_JOB * jobs.clamp(1, count.max(1));
    run_ordered(count, jobs, window, make, work, on_done, consume)
}

/// Which items workers may start: the next one, if it lies within the window of the
/// consumer's position, and whether the run was stopped.
struct Window {
    state: std::sync::Mutex<WindowState>,
    /// Signalled when the consumer moves on or the run stops.
    moved: std::sync::Condvar,
}

#[derive(Default)]
struct WindowState {
    /// The next item to start.
    next: usize,
    /// Items consumed so far: item `i` may start once `i < consumed + window`.
    consumed: usize,
    /// No further item starts: the consumer stopped, or something panicked.
    stopped: bool,
}

impl Window {
    /// Claims the next item to start, waiting until the window allows it; `None` when the run
    /// is over or stopped.
    fn claim(&self, count: usize, window: usize) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next >= count {
                return None;
            }
            if state.next < state.consumed + window {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.moved.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn consumed_one(&self) {
        self.lock().consumed += 1;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.moved.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        // The state is three counters updated in one step each: a panic elsewhere cannot
        // leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the run when dropped: when `consume` stops early or panics, or a worker panics
/// outside the item's work (in `make` or `on_done`), the workers waiting on the window are
/// released instead of leaving the scope waiting for them forever. At the run's end it changes
/// nothing: every item was started.
struct StopOnDrop<'a>(&'a Window);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The one worker loop behind [`run_streamed`] and [`run_isolated`], with the window given.
fn run_ordered<T: Send, R: Send>(
    count: usize,
    jobs: usize,
    window: usize,
    make: impl Fn(usize) -> T + Sync,
    work: impl Fn(&T) -> Result<R, ReplayError> + Sync,
    on_done: impl Fn(&T, &Result<R, ReplayError>) + Sync,
    mut consume: impl FnMut(usize, T, Result<R, ReplayError>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    assert!(
        window >= 1 || count == 0,
        "a window of no item never starts one"
    );
    let gate = Window {
        state: Default::default(),
        moved: Default::default(),
    };
    let (done, results) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            let done = done.clone();
            let (gate, make, work, on_done) = (&gate, &make, &work, &on_done);
            scope.spawn(move || {
                let _stop = StopOnDrop(gate);
                while let Some(i) = gate.claim(count, window) {
                    let item = make(i);
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(&item)))
                        .unwrap_or_else(|panic| Err(ReplayError::Panicked(panic_message(&*panic))));
                    on_done(&item, &result);
                    if done.send((i, item, result)).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the workers hold senders now: when they have all ended, `recv` says so.
        drop(done);
        let _stop = StopOnDrop(&gate);
        // Results that arrived before their turn; never more than the window holds.
        let mut early = std::collections::BTreeMap::new();
        let mut turn = 0;
        while turn < count {
            let (item, result) = match early.remove(&turn) {
                Some(ready) => ready,
                None => match results.recv() {
                    Ok((i, item, result)) if i == turn => (item, result),
                    Ok((i, item, result)) => {
                        early.insert(i, (item, result));
                        continue;
                    }
                    // A worker panicked outside the item's work (in `make` or `on_done`):
                    // the others have stopped, and the scope passes the panic on.
                    Err(_) => return ControlFlow::Continue(()),
                },
            };
            debug_assert!(early.len() < window, "the window bounds early results");
            if consume(turn, item, result).is_break() {
                return ControlFlow::Break(());
            }
            // Only now is the item gone, so only now may one more start.
            gate.consumed_one();
            turn += 1;
        }
        ControlFlow::Continue(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    /// A counter others can wait on, so tests order threads without sleeping.
    #[derive(Default)]
    struct Count {
        value: Mutex<usize>,
        changed: Condvar,
    }

    impl Count {
        fn add(&self) -> usize {
            let mut value = self.value.lock().unwrap();
            *value += 1;
            self.changed.notify_all();
            *value
        }

        fn get(&self) -> usize {
            *self.value.lock().unwrap()
        }

        fn wait_for(&self, at_least: usize) {
            let value = self.value.lock().unwrap();
            drop(self.changed.wait_while(value, |v| *v < at_least).unwrap());
        }
    }

    fn consumed_in_order(
        count: usize,
        jobs: usize,
        work: impl Fn(&usize) -> Result<usize, ReplayError> + Sync,
    ) -> Vec<(usize, usize, Result<usize, ReplayError>)> {
        let mut consumed = Vec::new();
        let flow = run_streamed(
            count,
            jobs,
            |i| i,
            work,
            |_, _| {},
            |i, item, result| {
                consumed.push((i, item, result));
                ControlFlow::Continue(())
            },
        );
        assert_eq!(flow, ControlFlow::Continue(()));
        consumed
    }

    #[test]
    fn results_are_consumed_in_index_order_though_items_end_out_of_order() {
        let ended = Mutex::new(Vec::new());
        let later_ones_ended = Count::default();
        let consumed = consumed_in_order(40, 4, |&i| {
            // Item 0 ends only after items 1, 2 and 3, which the other workers run.
            if i == 0 {
                later_ones_ended.wait_for(3);
            } else if i <= 3 {
                later_ones_ended.add();
            }
            ended.lock().unwrap().push(i);
            Ok(i * 10)
        });
        let ended = ended.into_inner().unwrap();
        assert_ne!(ended[0], 0, "item 0 ended first: {ended:?}");
        assert_eq!(ended.len(), 40);
        for (turn, (i, item, result)) in consumed.iter().enumerate() {
            assert_eq!((*i, *item), (turn, turn));
            assert_eq!(result.as_ref().ok(), Some(&(turn * 10)));
        }
        assert_eq!(consumed.len(), 40);
    }

    #[test]
    fn no_more_than_the_window_is_started_and_not_yet_consumed() {
        let jobs = 3;
        let window = WINDOW_PER_JOB * jobs;
        let (started, consumed) = (Count::default(), AtomicUsize::new(0));
        let most_in_flight = AtomicUsize::new(0);
        let make = |i| {
            let in_flight = started.add() - consumed.load(Ordering::SeqCst);
            most_in_flight.fetch_max(in_flight, Ordering::SeqCst);
            i
        };
        let mut turns = Vec::new();
        let flow = run_streamed(
            200,
            jobs,
            make,
            |&i| Ok(i),
            |_, _| {},
            |i, _, _| {
                // Held at the first item until the workers have filled the window, and with
                // nothing to hold them back they would run on through all 200.
                if i == 0 {
                    started.wait_for(window);
                }
                consumed.fetch_add(1, Ordering::SeqCst);
                turns.push(i);
                ControlFlow::Continue(())
            },
        );
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(turns, (0..200).collect::<Vec<_>>());
        assert_eq!(most_in_flight.into_inner(), window);
    }

    #[test]
    fn a_consumer_that_stops_stops_the_workers_within_the_window() {
        let jobs = 4;
        let started = AtomicUsize::new(0);
        let mut turns = Vec::new();
        let make = |i| {
            started.fetch_add(1, Ordering::SeqCst);
            i
        };
        let flow = run_streamed(
            10_000,
            jobs,
            make,
            |&i| Ok(i),
            |_, _| {},
            |i, _, _| {
                turns.push(i);
                if i == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(turns, [0, 1, 2, 3, 4, 5]);
        // Five consumed when the sixth said stop: at most a window beyond them had started.
        let started = started.into_inner();
        assert!(started <= 5 + WINDOW_PER_JOB * jobs, "{started} started");
    }

    #[test]
    fn a_panic_in_one_item_fails_that_item_alone() {
        let consumed = consumed_in_order(12, 3, |&i| {
            assert_ne!(i, 7, "item seven is broken");
            Ok(i)
        });
        for (i, _, result) in consumed {
            match result {
                Err(ReplayError::Panicked(message)) if i == 7 => {
                    assert!(message.contains("item seven is broken"), "{message}");
                }
                Ok(n) if i != 7 => assert_eq!(n, i),
                other => panic!("item {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_panic_outside_the_items_work_ends_the_run_instead_of_hanging_it() {
        let in_make = std::panic::catch_unwind(|| {
            let make = |i| {
                assert_ne!(i, 9, "cannot make item nine");
                i
            };
            run_streamed(
                100,
                2,
                make,
                |&i| Ok(i),
                |_, _| {},
                |_, _, _| ControlFlow::Continue(()),
            )
        });
        assert!(in_make.is_err());
        let in_consume = std::panic::catch_unwind(|| {
            run_streamed(
                100,
                2,
                |i| i,
                |&i| Ok(i),
                |_, _| {},
                |i, _, _| {
                    assert_ne!(i, 3, "cannot consume item three");
                    ControlFlow::Continue(())
                },
            )
        });
        assert!(in_consume.is_err());
    }

    #[test]
    fn run_isolated_collects_every_result_in_input_order() {
        let items: Vec<usize> = (0..30).rev().collect();
        let ended = Count::default();
        let results = run_isolated(
            &items,
            4,
            |&n| Ok(n * 2),
            |_, _| {
                ended.add();
            },
        );
        let results: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(ended.get(), 30);
        assert!(run_isolated(&[] as &[usize], 4, |&n| Ok(n), |_, _| {}).is_empty());
    }
}
