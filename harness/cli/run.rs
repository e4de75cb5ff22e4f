//! `run`: selects and repeats scenarios, replays them, judges and redacts the outcomes, renders
//! them in the chosen format, exports them over OTLP, and prints the summary.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::progress::Progress;
use super::{bad_input, write_atomically, Exit};
use crate::expect;
use crate::report::epoch::Epoch;
use crate::report::otlp_http::{OtlpExporter, OtlpProtocol};
use crate::report::text::View;
use crate::report::{self, Format, Judged, Piece, RenderOptions, Replayed};
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
    /// Replays to run at once; the number of cores when `None`.
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
pub fn run(options: &RunOptions) -> Exit {
    let (scenarios, anchors) = match selected(options) {
        Ok(selected) => selected,
        Err(errors) => return bad_input(errors),
    };
    // A mistyped filter or an empty directory must not turn a CI run green.
    if scenarios.is_empty() {
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
    if options.format == Format::Html && options.out.is_none() && scenarios.len() > 1 {
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
        return print_env(&scenarios, service.as_ref());
    }
    let jobs = options
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = Progress::new(scenarios.len());
    let replay_options = ReplayOptions {
        tracing: !options.no_tracing,
    };
    let results = runner::replay_all_against(
        &scenarios,
        replay_options,
        service.as_ref(),
        jobs,
        |s, _| progress.done(s),
    );
    progress.finish();
    // A service that cannot start is the input's fault: say so once and stop.
    if let Some(e) = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.is_bad_input())
    {
        eprintln!("error: {e}");
        return Exit::BadInput;
    }

    let judged: Vec<Judged<'_>> = scenarios
        .iter()
        .zip(results)
        .zip(anchors)
        .map(|((scenario, result), anchor)| Judged {
            scenario,
            anchor,
            result: result
                .map(|outcome| judge(outcome, scenario, options.show_personal_data))
                .map_err(|e| e.to_string()),
        })
        .collect();
    let passed = judged
        .iter()
        .filter(|j| j.result.as_ref().is_ok_and(|r| r.verdict.passed()))
        .count();
    let failed = judged.len() - passed;

    if let Err(e) = emit(options, &judged) {
        eprintln!("error: {e}");
        return Exit::BadInput;
    }
    let exported = match &options.otlp {
        Some(otlp) => match export(otlp, &judged) {
            Ok(all_sent) => all_sent,
            Err(code) => return code,
        },
        None => true,
    };
    let summary = format!("{passed} passed, {failed} failed");
    if options.format.is_document() && options.out.is_none() {
        // Standard output holds the document; keep it parseable.
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if !exported {
        Exit::ExportFailed
    } else if failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
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
fn print_env(scenarios: &[Scenario], service: Option<&ServiceSpec>) -> Exit {
    let mut out = String::new();
    for scenario in scenarios {
        // A new database per run; the name says for which scenario.
        let database =
            std::env::temp_dir().join(format!("trace-harness-{}.sqlite3", scenario.name));
        let Some(vars) =
            service.and_then(|spec| runner::running_service_env(scenario, spec, database))
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

/// The scenarios to replay (filtered, sharded, repeated) and each one's anchor: a repetition
/// starts `repeat_every` after the previous one of its scenario.
fn selected(
    options: &RunOptions,
) -> Result<(Vec<Scenario>, Vec<Epoch>), Vec<scenario::ScenarioError>> {
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
    if options.repeat <= 1 && !options.vary_latency {
        let anchors = vec![options.epoch; scenarios.len()];
        return Ok((scenarios, anchors));
    }
    let count = options.repeat as usize;
    let vary = options.vary_latency;
    let scenarios: Vec<Scenario> = scenarios
        .iter()
        .flat_map(|s| (0..count).map(move |i| crate::vary::repetition(s, i, count, vary)))
        .collect();
    let anchors = (0..scenarios.len())
        .map(|i| {
            let nth = (i % count) as u32;
            options
                .epoch
                .later_by(options.repeat_every.saturating_mul(nth))
        })
        .collect();
    Ok((scenarios, anchors))
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

/// Prints or writes every replay's output in the chosen format.
fn emit(options: &RunOptions, judged: &[Judged<'_>]) -> std::io::Result<()> {
    let render_options = RenderOptions {
        side_by_side: options.side_by_side,
        to_files: options.out.is_some(),
    };
    let pieces =
        report::render(options.format, judged, render_options).map_err(std::io::Error::other)?;
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
}

/// Sends every replay's spans to the collector; `Ok(false)` when some export failed (each
/// failure is reported), `Err` when the endpoint itself is unusable.
fn export(otlp: &OtlpOptions, judged: &[Judged<'_>]) -> Result<bool, Exit> {
    let exporter = OtlpExporter::new(&otlp.endpoint, otlp.protocol, otlp.gzip).map_err(|e| {
        eprintln!("error: {e}");
        Exit::BadInput
    })?;
    let mut all_sent = true;
    for replay in judged {
        let name = &replay.scenario.name;
        let Ok(replayed) = &replay.result else {
            eprintln!("error: {name} not exported: the replay itself failed");
            all_sent = false;
            continue;
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
            }
            Err(e) => {
                eprintln!("error: {name} not exported: {e}");
                all_sent = false;
            }
        }
    }
    Ok(all_sent)
}
