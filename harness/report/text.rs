//! The human-readable formats: per replay a header, the chosen view (tree, log lines, timings,
//! request ids), and PASS or the failure's diagnostics.

use super::pieces::{file, file_note, Judged, Piece, RenderOptions};
use super::{
    bottleneck_lines, diagnostics, failed_job_lines, one_line, request_id_view, seed_log_view,
    side_by_side, timing_view, trace_headers, tree, unjudged_lines,
};
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;
use crate::scenario::Scenario;

/// Which view of a replay the text shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The span tree and the seed-style log view, with bottlenecks and failed jobs.
    All,
    /// The span tree with timings, statuses and links.
    Tree,
    /// Log lines with the seed's prefix.
    Logs,
    /// One line per span of each booking's creation, and the bottleneck.
    Timings,
    /// The log lines as request-ID-only logging showed them.
    RequestIds,
}

/// Every replay's text, one after another on standard output or each in `<scenario>.txt`.
pub fn render(view: View, judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for replay in judged {
        let text = match &replay.result {
            Ok(r) => replay_text(
                replay.scenario,
                &r.outcome,
                &r.verdict,
                view,
                options.side_by_side,
            ),
            Err(e) => format!(
                "== {}\nERROR {}\n\n",
                one_line(&replay.scenario.name),
                one_line(e)
            ),
        };
        if options.to_files {
            pieces.push(file(replay.scenario, "txt", text));
            pieces.extend(file_note(replay));
        } else {
            pieces.push(Piece::Stdout(text));
        }
    }
    pieces
}

/// One replay's text: its header, the view, then PASS or the diagnostics.
pub(crate) fn replay_text(
    scenario: &Scenario,
    outcome: &ReplayOutcome,
    verdict: &Verdict,
    view: View,
    side_by_side_ids: bool,
) -> String {
    let description = scenario
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!(
        "== {} — {}\n",
        one_line(&scenario.name),
        one_line(&description)
    );
    match view {
        View::All => {
            out.push_str(&tree(outcome, &[]));
            out.push('\n');
            out.push_str(&seed_log_view(outcome));
            out.push_str(&bottleneck_lines(outcome));
            out.push_str(&failed_job_lines(outcome));
        }
        View::Tree => out.push_str(&tree(outcome, &[])),
        View::Logs => {
            out.push_str(&trace_headers(outcome));
            out.push_str(&seed_log_view(outcome));
        }
        View::RequestIds if side_by_side_ids => out.push_str(&side_by_side(outcome)),
        View::RequestIds => out.push_str(&request_id_view(outcome)),
        View::Timings => out.push_str(&timing_view(outcome)),
    }
    if verdict.passed() {
        out.push_str(&unjudged_lines(outcome, verdict));
        out.push_str(&format!("PASS {}\n\n", scenario.name));
    } else {
        out.push('\n');
        out.push_str(&diagnostics(outcome, verdict));
        out.push('\n');
    }
    out
}
