//! A run's output one replay at a time: what [`render()`](super::render()) makes of all the
//! replays at once, cut into pieces a run prints as each replay ends in order and then drops,
//! so a run of any length holds no replay it has shown.

use super::json::JsonArray;
use super::junit::{self, JunitCase};
use super::pieces::{Judged, Piece, RenderOptions};
use super::render::{render, Format, RenderError};

/// Renders replays one after another; [`StreamRenderer::finish`] ends the output.
///
/// **Invariant:** the pieces of every [`push`](StreamRenderer::push) in order, then those of
/// `finish`, are the pieces [`render()`](super::render()) returns for all the replays at once.
/// Per-replay formats are rendered a one-element slice at a time; the formats that are one
/// document for the whole run keep what they still need: the JSON array whether it has begun,
/// the JUnit report one small [`JunitCase`] per replay.
#[derive(Debug)]
#[must_use = "the output is complete only once `finish` has been called"]
pub struct StreamRenderer {
    format: Format,
    options: RenderOptions,
    /// Replays pushed so far.
    pushed: usize,
    whole: Whole,
}

/// What a whole-run document keeps between replays.
#[derive(Debug)]
enum Whole {
    /// Nothing: each replay's output stands alone.
    None,
    /// `--format json` on standard output: one array.
    JsonArray(JsonArray),
    /// `--format junit`: one report listing every case.
    Junit(Vec<JunitCase>),
}

impl StreamRenderer {
    /// A renderer of a run in `format`, laid out as `options` say.
    pub fn new(format: Format, options: RenderOptions) -> Self {
        let whole = match format {
            Format::Json if !options.to_files => Whole::JsonArray(JsonArray::default()),
            Format::Junit => Whole::Junit(Vec::new()),
            _ => Whole::None,
        };
        StreamRenderer {
            format,
            options,
            pushed: 0,
            whole,
        }
    }

    /// The pieces to print or write for the next replay, now.
    pub fn push(&mut self, replay: &Judged<'_>) -> Result<Vec<Piece>, RenderError> {
        self.pushed += 1;
        match &mut self.whole {
            Whole::JsonArray(array) => Ok(vec![Piece::Stdout(array.element(replay))]),
            Whole::Junit(cases) => {
                cases.push(JunitCase::of(replay));
                Ok(Vec::new())
            }
            // One page fills standard output; a second cannot join it.
            Whole::None
                if self.format == Format::Html && !self.options.to_files && self.pushed > 1 =>
            {
                Err(RenderError::HtmlNeedsOut)
            }
            Whole::None => render(self.format, std::slice::from_ref(replay), self.options),
        }
    }

    /// The pieces that end the output, once every replay has been pushed.
    pub fn finish(self) -> Vec<Piece> {
        match self.whole {
            Whole::None => Vec::new(),
            Whole::JsonArray(array) => vec![Piece::Stdout(array.end().to_owned())],
            Whole::Junit(cases) => junit::report(&cases, self.options),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::{self, Failure};
    use crate::report::epoch::Epoch;
    use crate::report::text::View;
    use crate::report::Replayed;
    use crate::scenario::Scenario;

    /// Two green replays, one whose assertion failed and one that could not run.
    fn scenarios() -> Vec<Scenario> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        [
            "calendar_failure",
            "card_declined",
            "seated_attendees",
            "webhook_crash",
        ]
        .iter()
        .map(|name| Scenario::load(&root.join(format!("{name}.toml"))).unwrap())
        .collect()
    }

    fn judged(scenarios: &[Scenario]) -> Vec<Judged<'_>> {
        scenarios
            .iter()
            .enumerate()
            .map(|(i, scenario)| {
                let outcome = crate::runner::replay(scenario, Default::default()).unwrap();
                let mut verdict = expect::judge(&outcome, &scenario.expect);
                if i == 2 {
                    verdict.failures.push(Failure {
                        assertion: "status".to_owned(),
                        target: "booking_creation".to_owned(),
                        expected: "ok".to_owned(),
                        actual: "error".to_owned(),
                        spans: Vec::new(),
                    });
                }
                let result = match i {
                    3 => Err("the booking service did not start: no".to_owned()),
                    _ => Ok(Replayed { outcome, verdict }),
                };
                Judged {
                    scenario,
                    anchor: Epoch::default(),
                    result,
                }
            })
            .collect()
    }

    fn streamed(format: Format, options: RenderOptions, judged: &[Judged<'_>]) -> Vec<Piece> {
        let mut renderer = StreamRenderer::new(format, options);
        let mut pieces = Vec::new();
        for replay in judged {
            pieces.extend(renderer.push(replay).unwrap());
        }
        pieces.extend(renderer.finish());
        pieces
    }

    #[test]
    fn a_replay_at_a_time_gives_the_bytes_of_all_at_once() {
        let scenarios = scenarios();
        let judged = judged(&scenarios);
        let formats = [
            Format::Text(View::All),
            Format::Text(View::RequestIds),
            Format::Json,
            Format::Junit,
            Format::Ndjson,
            Format::OtlpJson,
        ];
        for format in formats {
            for to_files in [false, true] {
                let options = RenderOptions {
                    to_files,
                    ..Default::default()
                };
                for n in 0..=judged.len() {
                    let all = render(format, &judged[..n], options).unwrap();
                    let one_by_one = streamed(format, options, &judged[..n]);
                    assert_eq!(
                        joined(&one_by_one),
                        joined(&all),
                        "{format:?}, to files {to_files}, {n} replays"
                    );
                }
            }
        }
        let html = RenderOptions {
            to_files: true,
            ..Default::default()
        };
        assert_eq!(
            streamed(Format::Html, html, &judged),
            render(Format::Html, &judged, html).unwrap()
        );
    }

    #[test]
    fn the_empty_json_array_and_a_second_html_page_on_standard_output_are_as_render_says() {
        let options = RenderOptions::default();
        assert_eq!(
            streamed(Format::Json, options, &[]),
            render(Format::Json, &[], options).unwrap()
        );
        let scenarios = scenarios();
        let judged = judged(&scenarios);
        let mut renderer = StreamRenderer::new(Format::Html, options);
        assert!(renderer.push(&judged[0]).is_ok());
        assert_eq!(renderer.push(&judged[1]), Err(RenderError::HtmlNeedsOut));
    }

    /// The pieces with neighbouring standard-output text joined: what a reader of the run
    /// sees, whichever way it was cut.
    fn joined(pieces: &[Piece]) -> Vec<Piece> {
        let mut joined: Vec<Piece> = Vec::new();
        for piece in pieces {
            match (joined.last_mut(), piece) {
                (Some(Piece::Stdout(text)), Piece::Stdout(more)) => text.push_str(more),
                _ => joined.push(piece.clone()),
            }
        }
        joined
    }
}
