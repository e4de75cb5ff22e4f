//! Progress on standard error: a bar on a terminal; in CI or a pipe, a rare plain line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::scenario::Scenario;

/// Outside a terminal, the least time between two progress lines: a line per replay drowned
/// CI logs, while a long run still wants to show, to a reader or a job's no-output watchdog,
/// that it is alive. The wall clock read for it decides what goes to standard error, nothing a
/// replay does or an output holds.
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(10);

/// Replays done so far, out of how many.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: AtomicUsize,
    /// Outside a terminal: when the last plain line was printed, or the run started.
    last_line: parking_lot::Mutex<Instant>,
}

impl Progress {
    /// Progress over `total` replays; outside a terminal, silent unless the run is long.
    pub(super) fn new(total: usize) -> Self {
        let bar = (super::interactive() && total > 1).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            total,
            done: Default::default(),
            last_line: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// One more replay has ended. One that could not run is reported with the results.
    pub(super) fn done(&self, scenario: &Scenario) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(scenario.name.clone());
                bar.inc(1);
            }
            None if n < self.total => {
                let mut last_line = self.last_line.lock();
                if last_line.elapsed() >= PLAIN_LINE_INTERVAL {
                    *last_line = Instant::now();
                    eprintln!("{n}/{} replays done", self.total);
                }
            }
            // The last one: the summary follows.
            None => {}
        }
    }

    /// Runs `print` with the bar, if any, out of the way, so output printed while replays run
    /// is not drawn over.
    pub(super) fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress of the overhead measurement's rounds: a spinner while the service starts, then a
/// bar on a terminal; a line every tenth of the way otherwise.
pub(super) struct RoundsProgress {
    bar: Option<indicatif::ProgressBar>,
    style: indicatif::ProgressStyle,
    last_tenth: usize,
}

impl RoundsProgress {
    /// Starts the spinner, on a terminal.
    pub(super) fn new() -> Self {
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} rounds, {eta} left",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar = super::interactive().then(|| {
            // A spinner while the service and mocks start; the bar once the rounds are known.
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("starting the service and mocks");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        RoundsProgress {
            bar,
            style,
            last_tenth: 0,
        }
    }

    /// `done` of `total` rounds are measured.
    pub(super) fn rounds(&mut self, done: usize, total: usize) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if done == 0 {
                    bar.set_style(self.style.clone());
                    bar.set_message("traced vs untraced");
                }
            }
            None => {
                // Plain progress for logs: a line every tenth of the way.
                let tenth = done * 10 / total.max(1);
                if tenth > self.last_tenth {
                    self.last_tenth = tenth;
                    eprintln!("overhead: {done}/{total} rounds");
                }
            }
        }
    }

    /// Clears the bar.
    pub(super) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
