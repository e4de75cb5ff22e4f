//! The `trace-harness` command line: replays scenario files and reports what their traces show.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use trace_harness::booking::{conformance, ServiceConfig};
use trace_harness::expect::{self, Verdict};
use trace_harness::report;
use trace_harness::runner::{self, ReplayOptions, ReplayOutcome};
use trace_harness::scenario::{Scenario, ScenarioError};

/// Exit codes: what CI scripts branch on.
const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "trace-harness",
    version,
    about = "Replays booking incidents against a simulated booking service and proves its distributed tracing end to end",
    after_help = "Exit codes: 0 all scenarios passed, 1 an assertion or invariant failed, 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay scenario files and check their traces.
    #[command(
        after_help = "Examples:\n  trace-harness run scenarios/\n  trace-harness run scenarios/calendar_failure.toml --format logs\n  trace-harness run scenarios/ --no-tracing --format request-ids"
    )]
    Run {
        /// Scenario files, or directories of them (`*.toml`).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// What to print for each replay.
        #[arg(long, value_enum, default_value_t = Format::All)]
        format: Format,
        /// Replay with tracing opted out: spans disabled, nothing propagated.
        #[arg(long)]
        no_tracing: bool,
        /// Replays to run at once (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Run the booking service for manual use, with the W3C Trace Context test-service
    /// endpoint `POST /test`, until Ctrl-C.
    #[command(
        after_help = "`POST /test` takes a JSON array of {\"url\": …, \"arguments\": …} and POSTs each `arguments` to its `url`, propagating traceparent/tracestate. It calls any URL it is given: keep the service on loopback.\n\nExamples:\n  trace-harness serve --addr 127.0.0.1:5000\n  curl -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \\\n       -d '[{\"url\": \"http://127.0.0.1:7777/0\", \"arguments\": []}]' http://127.0.0.1:5000/test\n  python test/test.py http://127.0.0.1:5000/test   # the W3C suite, from w3c/trace-context"
    )]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Base URL of a Google Calendar API for bookings (without it, calendar events fail).
        #[arg(long)]
        google_calendar_url: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The span tree and the seed-style log view.
    All,
    /// The span tree with timings, statuses and links.
    Tree,
    /// Log lines with the seed's `[trace:… span:… op:…]` prefix.
    Logs,
    /// The same log lines as request-ID-only logging showed them.
    RequestIds,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            format,
            no_tracing,
            jobs,
        } => run(&paths, format, !no_tracing, jobs),
        Command::Serve {
            addr,
            google_calendar_url,
        } => serve(addr, google_calendar_url),
    }
}

fn serve(addr: SocketAddr, google_calendar_url: Option<String>) -> ExitCode {
    let config = |database| {
        let mut config = ServiceConfig::new(database, 1);
        config.google_calendar_url = google_calendar_url.unwrap_or_default();
        config
    };
    let result = conformance::serve(addr, config, |url| {
        println!(
            "booking service listening on {url} (W3C test endpoint: {url}/test); Ctrl-C stops it"
        );
        let _ = std::io::stdout().flush();
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run(paths: &[PathBuf], format: Format, tracing: bool, jobs: Option<usize>) -> ExitCode {
    let scenarios = match load_all(paths) {
        Ok(scenarios) => scenarios,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}\n");
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let results = runner::replay_all(&scenarios, ReplayOptions { tracing }, jobs, |s, _| {
        if progress {
            eprintln!("replayed {}", s.name);
        }
    });

    let mut stdout = std::io::stdout().lock();
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for (scenario, result) in scenarios.iter().zip(results) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let _ = writeln!(
                    stdout,
                    "== {}\nERROR {}\n",
                    report::one_line(&scenario.name),
                    report::one_line(&e.to_string())
                );
                broken += 1;
                continue;
            }
        };
        let verdict = expect::judge(&outcome, &scenario.expect);
        let _ = write!(stdout, "{}", render(scenario, &outcome, &verdict, format));
        if verdict.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    let _ = writeln!(stdout, "{passed} passed, {} failed", failed + broken);
    if failed + broken > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn render(
    scenario: &Scenario,
    outcome: &ReplayOutcome,
    verdict: &Verdict,
    format: Format,
) -> String {
    let description = scenario
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!(
        "== {} — {}\n",
        report::one_line(&scenario.name),
        report::one_line(&description)
    );
    if matches!(format, Format::All | Format::Tree) {
        out.push_str(&report::tree(outcome, &[]));
    }
    if format == Format::All {
        out.push('\n');
    }
    if matches!(format, Format::All | Format::Logs) {
        out.push_str(&report::seed_log_view(outcome));
    }
    if format == Format::RequestIds {
        out.push_str(&report::request_id_view(outcome));
    }
    if verdict.passed() {
        out.push_str(&format!("PASS {}\n\n", scenario.name));
    } else {
        out.push('\n');
        out.push_str(&report::diagnostics(outcome, verdict));
        out.push('\n');
    }
    out
}

/// Loads every scenario named by `paths`; all errors are collected so one run shows them all.
fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match scenario_files(path) {
            Ok(found) => files.extend(found),
            Err(e) => errors.push(e),
        }
    }
    let mut scenarios = Vec::new();
    for file in files {
        match Scenario::load(&file) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read_error = |source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        // A missing file is reported by the load that follows, with its path.
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the directory holds no *.toml scenario files",
        )));
    }
    Ok(files)
}
