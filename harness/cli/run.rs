//! `run`: selects and repeats scenarios, replays them, and, one replay at a time in order,
//! judges and redacts the outcome, renders it in the chosen format and exports it over OTLP;
//! then ends the output and prints the summary.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::progress::Progress;
use super::{bad_input, write_atomically, Exit};
use crate::expect;
use crate::report::epoch::Epoch;
use crate::report::otlp_http::{OtlpExporter, OtlpProtocol};
use crate::report::text::View;
use crate::report::{self, Format, Judged, Piece, RenderOptions, Replayed, StreamRenderer};
use crate::runner::{self, ReplayOptions, ServiceSpec};
use crate::scenario::{self, Scenario};

/// Everything `run` is asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Scenario files, or directories of them.
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose name contains this text.
    pub filter: Option<String>,
    /// What to print for each replay.
    pub format: Format,
    /// With the request-ID view: the traced view beside it.
    pub side_by_side: bool,
    /// Write each scenario's output under this directory instead of standard output.
    pub out: Option<PathBuf>,
    /// Replays to run at once; [`runner::default_jobs`] when `None`.
    pub jobs: Option<usize>,
    /// Only this shard of the scenarios sorted by name.
    pub shard: Option<Shard>,
    /// Replay with tracing opted out.
    pub no_tracing: bool,
    /// Replay against the service this `service.toml` declares instead of the in-process one.
    pub service: Option<PathBuf>,
    /// Print the environment a running service (`url`) needs for each scenario; replay nothing.
    pub print_env: bool,
    /// Show attendee names and e-mail addresses instead of redacting them.
    pub show_personal_data: bool,
    /// The real instant virtual time zero stands for in exported timestamps.
    pub epoch: Epoch,
    /// Replays of each scenario, each with its own seed.
    pub repeat: u32,
    /// How far apart repeated replays start on exported timestamps.
    pub repeat_every: Duration,
    /// Scale every mock latency by a seeded random factor in each repetition.
    pub vary_latency: bool,
    /// Send each replay's spans to this OTLP/HTTP collector.
    pub otlp: Option<OtlpOptions>,
}

/// Where and how `run` exports spans over OTLP/HTTP.
#[derive(Clone, Debug)]
pub struct OtlpOptions {
    /// The collector's base URL, or its full `/v1/traces` URL.
    pub endpoint: String,
    /// The body encoding.
    pub protocol: OtlpProtocol,
    /// Gzip the bodies.
    pub gzip: bool,
}

/// Shard K of N (1-based): scenarios sorted by name, every Nth from the Kth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if index >= 1 && index <= count => Ok(Shard { index, count }),
            _ => Err(format!(
                "expected K/N with 1 <= K <= N, such as 1/2; found `{s}`"
            )),
        }
    }
}

/// `run`: replays, reports and exports; the summary line last.
///
/// The replays stream: each is made from its index when a worker takes it, and judged,
/// rendered, printed and exported on this thread as its turn comes in order, then dropped, so
/// memory stays flat however many replays the run holds (see [`runner::run_streamed`]).
pub fn run(options: &RunOptions) -> Exit {
    let replays = match selected(options) {
        Ok(selected) => selected,
        Err(errors) => return bad_input(errors),
    };
    // A mistyped filter or an empty directory must not turn a CI run green.
    if replays.is_empty() {
        let why = match (&options.filter, options.shard) {
            (Some(filter), _) => format!("no scenario's name contains `{filter}`"),
            (None, Some(_)) => "this shard holds no scenario".to_owned(),
            (None, None) => "no scenario file was found".to_owned(),
        };
        eprintln!(
            "error: {why} in {}: nothing to replay",
            shown_paths(&options.paths)
        );
        return Exit::BadInput;
    }
    // Arguments that cannot work together are said before anything is replayed.
    if options.format == Format::Html && options.out.is_none() && replays.len() > 1 {
        eprintln!("error: {}", report::RenderError::HtmlNeedsOut);
        return Exit::BadInput;
    }
    if options.side_by_side && options.format != Format::Text(View::RequestIds) {
        eprintln!("error: --side-by-side shows the request-ID view beside the traced one: it needs --format request-ids");
        return Exit::BadInput;
    }

    let service = match options
        .service
        .as_deref()
        .map(ServiceSpec::load)
        .transpose()
    {
        Ok(service) => service,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    if options.print_env {
        return print_env(&replays, service.as_ref());
    }
    // So is an endpoint that cannot be used: exports go out as the replays end.
    let exporter = match options
        .otlp
        .as_ref()
        .map(|otlp| OtlpExporter::new(&otlp.endpoint, otlp.protocol, otlp.gzip))
        .transpose()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let jobs = options.jobs.unwrap_or_else(runner::default_jobs);
    let progress = Progress::new(replays.len());
    let replay_options = ReplayOptions {
        tracing: !options.no_tracing,
    };
    let mut emitter = Emitter::new(options, &replays, exporter, &progress);
    let _ = runner::replay_streamed_against(
        replays.len(),
        |i| replays.scenario(i),
        replay_options,
        service.as_ref(),
        jobs,
        |s, _| progress.done(s),
        |i, scenario, result| emitter.replayed(i, &scenario, result),
    );
    progress.finish();
    let tally = match emitter.finish() {
        Ok(tally) => tally,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let summary = format!("{} passed, {} failed", tally.passed, tally.failed);
    if options.format.is_document() && options.out.is_none() {
        // Standard output holds the document; keep it parseable.
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if !tally.all_sent {
        Exit::ExportFailed
    } else if tally.failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// The scenarios a run replays, each repeated as asked: replay `i` is made from its index, so
/// a long run never holds every copy.
struct Replays {
    /// Loaded, filtered and sharded.
    scenarios: Vec<Scenario>,
    /// Repetitions of each scenario, or `None` when each replays once as written.
    repeat: Option<usize>,
    vary_latency: bool,
    epoch: Epoch,
    repeat_every: Duration,
}

impl Replays {
    /// Replays in the run: every repetition of every scenario.
    fn len(&self) -> usize {
        self.scenarios.len() * self.repeat.unwrap_or(1)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replay `i`: the scenarios in order, each scenario's repetitions together.
    fn scenario(&self, i: usize) -> Scenario {
        match self.repeat {
            None => self.scenarios[i].clone(),
            Some(count) => crate::vary::repetition(
                &self.scenarios[i / count],
                i % count,
                count,
                self.vary_latency,
            ),
        }
    }

    /// Replay `i`'s anchor: a repetition starts `repeat_every` after the previous one of its
    /// scenario.
    fn anchor(&self, i: usize) -> Epoch {
        match self.repeat {
            None => self.epoch,
            Some(count) => {
                let nth = (i % count) as u32;
                self.epoch.later_by(self.repeat_every.saturating_mul(nth))
            }
        }
    }
}

/// What the run counted once every replay was emitted.
struct Tally {
    passed: usize,
    failed: usize,
    /// Every export was accepted (or none was asked for).
    all_sent: bool,
}

/// Judges, renders, prints and exports each replay as its turn comes, keeping nothing of it
/// but the counts and what a whole-run document still needs.
struct Emitter<'a> {
    options: &'a RunOptions,
    replays: &'a Replays,
    renderer: StreamRenderer,
    exporter: Option<OtlpExporter>,
    progress: &'a Progress,
    tally: Tally,
    /// Why the run stopped before its end: said once, as bad input.
    stopped: Option<String>,
}

impl<'a> Emitter<'a> {
    fn new(
        options: &'a RunOptions,
        replays: &'a Replays,
        exporter: Option<OtlpExporter>,
        progress: &'a Progress,
    ) -> Self {
        let render_options = RenderOptions {
            side_by_side: options.side_by_side,
            to_files: options.out.is_some(),
        };
        Emitter {
            options,
            replays,
            renderer: StreamRenderer::new(options.format, render_options),
            exporter,
            progress,
            tally: Tally {
                passed: 0,
                failed: 0,
                all_sent: true,
            },
            stopped: None,
        }
    }

    /// Replay `i`, in its turn.
    fn replayed(
        &mut self,
        i: usize,
        scenario: &Scenario,
        result: Result<runner::ReplayOutcome, runner::ReplayError>,
    ) -> ControlFlow<()> {
        // A service that cannot start is the input's fault: say so once and stop. The replays
        // before it in order have been printed (and exported) already; a whole-run document
        // (a JSON array, JUnit) is left unfinished, and the exit code says the run is unusable.
        if let Err(e) = &result {
            if e.is_bad_input() {
                self.stopped = Some(e.to_string());
                return ControlFlow::Break(());
            }
        }
        let replay = Judged {
            scenario,
            anchor: self.replays.anchor(i),
            result: result
                .map(|outcome| judge(outcome, scenario, self.options.show_personal_data))
                .map_err(|e| e.to_string()),
        };
        if replay.result.as_ref().is_ok_and(|r| r.verdict.passed()) {
            self.tally.passed += 1;
        } else {
            self.tally.failed += 1;
        }
        let pieces = self.renderer.push(&replay).map_err(std::io::Error::other);
        if let Err(e) =
            pieces.and_then(|pieces| Emitter::write_pieces(self.options, self.progress, pieces))
        {
            self.stopped = Some(e.to_string());
            return ControlFlow::Break(());
        }
        if let Some(exporter) = &self.exporter {
            self.tally.all_sent &= export(exporter, &replay);
        }
        ControlFlow::Continue(())
    }

    /// The end of the output once every replay is in, and the counts; `Err` when the run
    /// stopped early, saying why.
    fn finish(self) -> Result<Tally, String> {
        if let Some(why) = self.stopped {
            return Err(why);
        }
        let (pieces, tally) = (self.renderer.finish(), self.tally);
        let write = Emitter::write_pieces(self.options, self.progress, pieces);
        write.map(|()| tally).map_err(|e| e.to_string())
    }

    /// Prints or writes `pieces` in order, with the progress bar out of the way.
    fn write_pieces(
        options: &RunOptions,
        progress: &Progress,
        pieces: Vec<Piece>,
    ) -> std::io::Result<()> {
        if pieces.is_empty() {
            return Ok(());
        }
        progress.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            for piece in pieces {
                match piece {
                    Piece::Stdout(text) => stdout.write_all(text.as_bytes())?,
                    Piece::Stderr(text) => {
                        stdout.flush()?;
                        eprint!("{text}");
                    }
                    Piece::File { name, text } => {
                        let dir = options.out.as_deref().unwrap_or(std::path::Path::new("."));
                        write_atomically(&dir.join(name), &text)?;
                    }
                }
            }
            stdout.flush()
        })
    }
}

/// The scenario paths as the user gave them, for messages.
fn shown_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--print-env`: per scenario, the `export` lines that start a service already running as
/// its replay needs it.
fn print_env(replays: &Replays, service: Option<&ServiceSpec>) -> Exit {
    let mut out = String::new();
    for scenario in (0..replays.len()).map(|i| replays.scenario(i)) {
        // A new database per run; the name says for which scenario.
        let database =
            std::env::temp_dir().join(format!("trace-harness-{}.sqlite3", scenario.name));
        let Some(vars) =
            service.and_then(|spec| runner::running_service_env(&scenario, spec, database))
        else {
            eprintln!(
                "error: --print-env needs a service file with `url = …`: a service the harness starts gets its environment anew at every replay"
            );
            return Exit::BadInput;
        };
        let _ = writeln!(
            out,
            "# {}: start the service with this environment and a new database",
            scenario.name
        );
        for (name, value) in vars {
            // Quoting fails only on a NUL byte, which no contract value holds.
            let quoted = shlex::try_quote(&value).unwrap_or_else(|_| value.clone().into());
            let _ = writeln!(out, "export {name}={quoted}");
        }
    }
    print!("{out}");
    Exit::Success
}

/// The scenarios to replay: loaded, filtered, sharded, and repeated as asked.
fn selected(options: &RunOptions) -> Result<Replays, Vec<scenario::ScenarioError>> {
    let mut scenarios = scenario::load_all(&options.paths)?;
    if let Some(filter) = &options.filter {
        scenarios.retain(|s| s.name.contains(filter.as_str()));
    }
    if let Some(shard) = options.shard {
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        scenarios = scenarios
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % shard.count == shard.index - 1)
            .map(|(_, s)| s)
            .collect();
    }
    let repeat = (options.repeat > 1 || options.vary_latency).then_some(options.repeat as usize);
    Ok(Replays {
        scenarios,
        repeat,
        vary_latency: options.vary_latency,
        epoch: options.epoch,
        repeat_every: options.repeat_every,
    })
}

/// Judged on the real values; shown, by default, without personal data.
fn judge(outcome: runner::ReplayOutcome, scenario: &Scenario, show_personal: bool) -> Replayed {
    let verdict = expect::judge(&outcome, &scenario.expect);
    if show_personal {
        Replayed { outcome, verdict }
    } else {
        let (outcome, verdict) = report::privacy::redact(&outcome, &verdict);
        Replayed { outcome, verdict }
    }
}

/// Sends one replay's spans to the collector, saying on standard error what became of them;
/// `false` when they were not all sent.
fn export(exporter: &OtlpExporter, replay: &Judged<'_>) -> bool {
    let name = &replay.scenario.name;
    let Ok(replayed) = &replay.result else {
        eprintln!("error: {name} not exported: the replay itself failed");
        return false;
    };
    let request = report::otlp::export_request(&replayed.outcome, replay.anchor);
    match exporter.send(&request) {
        Ok(sent) => {
            eprintln!(
                "exported {} span(s) of {name} to {} ({} bytes, {} attempt(s))",
                sent.spans, sent.url, sent.bytes, sent.attempts
            );
            if let Some(warning) = sent.warning {
                eprintln!("warning: the collector said: {warning}");
            }
            true
        }
        Err(e) => {
            eprintln!("error: {name} not exported: {e}");
            false
        }
    }
}
