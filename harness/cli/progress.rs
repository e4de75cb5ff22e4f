//! Progress on standard error: a bar on a terminal, plain lines in CI or a pipe.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::outcome::ReplayOutcome;
use crate::runner::ReplayError;
use crate::scenario::Scenario;

/// Replays done so far, out of how many.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: AtomicUsize,
}

impl Progress {
    /// Progress over `total` replays; silent for a single one outside a terminal.
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
        }
    }

    /// One more replay has ended.
    pub(super) fn done(&self, scenario: &Scenario, result: &Result<ReplayOutcome, ReplayError>) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(scenario.name.clone());
                bar.inc(1);
            }
            None if self.total > 1 => {
                let state = if result.is_ok() { "replayed" } else { "error" };
                eprintln!("[{n}/{}] {state} {}", self.total, scenario.name);
            }
            None => {}
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
