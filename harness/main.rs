//! The `trace-harness` command line: replays scenario files and reports what their traces show.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use trace_harness::expect::{self, Verdict};
use trace_harness::overhead::{self, OverheadOptions};
use trace_harness::report;
use trace_harness::runner::load::Transport;
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
    /// Measure what tracing costs the booking flow on this machine.
    ///
    /// Runs the scenario's booking flow (booking, calendar call, webhook by cron) traced and
    /// untraced, alternating in rounds so that load on the machine hits both alike, and prints
    /// the median per-flow cost of each, their ratio and its spread across rounds.
    #[command(
        after_help = "Examples:\n  trace-harness overhead\n  trace-harness overhead --flows 5000 --http\n  trace-harness overhead --http --noise-floor\n\nReading it: an overhead inside the rounds' quartiles is noise, not cost."
    )]
    Overhead {
        /// Flows per side (traced and untraced), run in rounds of 25.
        #[arg(long, default_value_t = 1000)]
        flows: usize,
        /// Reach the service over loopback HTTP, as a real caller does (default: in-process
        /// through its router; the service's own calls to its peers are HTTP either way).
        #[arg(long)]
        http: bool,
        /// Run both sides untraced (an A/A run) to see how much this machine's noise alone
        /// moves the ratio.
        #[arg(long)]
        noise_floor: bool,
        /// The scenario whose booking flow is measured.
        #[arg(long, default_value_os_t = overhead::default_scenario())]
        scenario: PathBuf,
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
        Command::Overhead {
            flows,
            http,
            noise_floor,
            scenario,
        } => measure_overhead(&scenario, flows, http, noise_floor),
    }
}

fn measure_overhead(path: &Path, flows: usize, http: bool, noise_floor: bool) -> ExitCode {
    let scenario = match Scenario::load(path) {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let options = OverheadOptions {
        flows,
        transport: if http {
            Transport::Http
        } else {
            Transport::InProcess
        },
        noise_floor,
    };
    let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let rounds_style = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {pos}/{len} rounds, {eta} left",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar = interactive.then(|| {
        // A spinner while the service and mocks start; the bar once the rounds are known.
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message("starting the service and mocks");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let mut last_tenth = 0;
    let result = overhead::measure(&scenario, &options, |done, total| match &bar {
        Some(bar) => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if done == 0 {
                bar.set_style(rounds_style.clone());
                bar.set_message("traced vs untraced");
            }
        }
        None => {
            // Plain progress for logs: a line every tenth of the way.
            let tenth = done * 10 / total.max(1);
            if tenth > last_tenth {
                last_tenth = tenth;
                eprintln!("overhead: {done}/{total} rounds");
            }
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e @ overhead::OverheadError::Flows(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
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
                let _ = writeln!(stdout, "== {}\nERROR {e}\n", scenario.name);
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
    let mut out = format!("== {} — {}\n", scenario.name, scenario.description);
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
