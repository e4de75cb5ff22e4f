//! What every format's renderer shares: the judged replays it reads, the layout options, and
//! the pieces of output (standard output, standard error, files) it returns in order.

use super::epoch::Epoch;
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;
use crate::scenario::Scenario;

/// A replay that ran, and what its expectations say of it.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// What the replay did.
    pub outcome: ReplayOutcome,
    /// The invariants and assertions checked against it.
    pub verdict: Verdict,
}

/// One scenario's replay as the run reports it.
#[derive(Debug)]
pub struct Judged<'a> {
    /// The scenario replayed (a repetition's copy with `--repeat`).
    pub scenario: &'a Scenario,
    /// The real instant the replay's virtual time zero stands for in exported timestamps.
    pub anchor: Epoch,
    /// The judged replay, or why it could not run.
    pub result: Result<Replayed, String>,
}

/// How the output is laid out.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// With the request-ID view: the traced view beside it.
    pub side_by_side: bool,
    /// Each replay's output goes to a file of its own (`--out DIR`) rather than to standard
    /// output.
    pub to_files: bool,
}

/// One piece of a run's output, in the order the run emits them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Text for standard output.
    Stdout(String),
    /// Text for standard error.
    Stderr(String),
    /// A file to write under the output directory, by name.
    File {
        /// The file's name in the directory (`calendar_failure.ndjson`).
        name: String,
        /// Its whole content.
        text: String,
    },
}

/// For the exports that have nothing to show for a replay that could not run (NDJSON, OTLP,
/// HTML): each replay that ran as its text (or its file, `<scenario>.<ext>`); each that could
/// not, as one error line.
pub(crate) fn exported(
    judged: &[Judged<'_>],
    options: RenderOptions,
    ext: &str,
    text: impl Fn(&ReplayOutcome, Epoch) -> String,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for replay in judged {
        match &replay.result {
            Ok(replayed) if options.to_files => {
                pieces.push(file(
                    replay.scenario,
                    ext,
                    text(&replayed.outcome, replay.anchor),
                ));
                pieces.extend(file_note(replay));
            }
            Ok(replayed) => pieces.push(Piece::Stdout(text(&replayed.outcome, replay.anchor))),
            // Written to files, the error goes with the other replays' notes on standard
            // output; otherwise standard output holds the export, so the error goes beside it.
            Err(_) if options.to_files => pieces.extend(file_note(replay)),
            Err(e) => pieces.push(Piece::Stderr(error_line(replay.scenario, e))),
        }
    }
    pieces
}

/// `<scenario>.<ext>` holding `text`.
pub(crate) fn file(scenario: &Scenario, ext: &str, text: String) -> Piece {
    Piece::File {
        name: format!("{}.{ext}", scenario.name),
        text,
    }
}

/// What standard output says of a replay whose output went to a file: why it could not run,
/// or the diagnostics of a failure; nothing for a pass.
pub(crate) fn file_note(replay: &Judged<'_>) -> Option<Piece> {
    match &replay.result {
        Err(e) => Some(Piece::Stdout(error_line(replay.scenario, e))),
        Ok(r) if !r.verdict.passed() => {
            Some(Piece::Stdout(super::diagnostics(&r.outcome, &r.verdict)))
        }
        Ok(_) => None,
    }
}

fn error_line(scenario: &Scenario, error: &str) -> String {
    format!("ERROR {}: {error}\n", scenario.name)
}
