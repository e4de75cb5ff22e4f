//! The `trace-harness` command line: replays scenario files and reports what their traces show.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};
use trace_harness::booking::{conformance, ServiceConfig};
use trace_harness::expect::{self, Verdict};
use trace_harness::overhead::{self, OverheadOptions};
use trace_harness::query::{self, QueryError, QueryResult};
use trace_harness::report::epoch::{Epoch, DEFAULT_EPOCH};
use trace_harness::report::{self, JunitCase};
use trace_harness::runner::load::Transport;
use trace_harness::runner::{self, ReplayError, ReplayOptions, ReplayOutcome};
use trace_harness::scenario::{Scenario, ScenarioError};

/// Exit codes: what CI scripts branch on.
const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_EXPORT_FAILED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "trace-harness",
    version,
    about = "Replays booking incidents against a simulated booking service and proves its distributed tracing end to end",
    after_help = "Exit codes: 0 all scenarios passed, 1 an assertion or invariant failed, 2 bad input, 3 an OTLP export failed.\n\nExample:\n  trace-harness run scenarios/"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay scenario files and check their traces.
    #[command(
        after_help = "Examples:\n  trace-harness run scenarios/\n  trace-harness run scenarios/calendar_failure.toml --format logs\n  trace-harness run scenarios/ --format request-ids --side-by-side\n  trace-harness run scenarios/ --format junit --out target/trace-harness\n  trace-harness run scenarios/ --shard 1/2      # this CI machine's half"
    )]
    Run(RunArgs),
    /// List scenarios with their descriptions.
    #[command(after_help = "Example:\n  trace-harness list scenarios/")]
    List {
        /// Scenario files, or directories of them (`*.toml`).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Measure what tracing costs the booking flow on this machine.
    ///
    /// Runs the scenario's booking flow (booking, calendar call, webhook by cron) traced and
    /// untraced, alternating in rounds so that load on the machine hits both alike, on a fresh
    /// service and mocks every 1 000 flows a side, and prints the median per-flow cost of each,
    /// their ratio and its spread across rounds.
    #[command(
        after_help = "Examples:\n  trace-harness overhead\n  trace-harness overhead --flows 5000 --http\n  trace-harness overhead --http --noise-floor\n\nReading it: an overhead inside the rounds' quartiles is noise, not cost."
    )]
    Overhead {
        /// Flows per side (traced and untraced), run in rounds of 25. Fewer than about 4 000
        /// leave the median a percent or so to wander.
        #[arg(long, default_value_t = 4000)]
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
    /// Print what a scenario does and what it asserts.
    #[command(after_help = "Example:\n  trace-harness explain scenarios/calendar_failure.toml")]
    Explain {
        /// A scenario file.
        file: PathBuf,
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
    /// Turn an incident's log lines into a scenario that replays the same operation pattern.
    #[command(
        after_help = "Examples:\n  trace-harness import incident.log -o scenarios/incident_42.toml\n  trace-harness import logs.ndjson --trace 4bf92f3577b34da6a3ce929d0e0e4736 -o scenarios/slow.toml"
    )]
    Import(ImportArgs),
    /// Run one of the seed's three Axiom queries locally over NDJSON exports.
    #[command(
        after_help = "Examples:\n  trace-harness run scenarios/ --repeat 200 --vary-latency --format ndjson > logs.ndjson\n  trace-harness query trace-operations 4bf92f3577b34da6a3ce929d0e0e4736 logs.ndjson\n  trace-harness query failed-calendar logs.ndjson --output csv\n  trace-harness query booking-duration logs.ndjson --output json"
    )]
    Query {
        #[command(subcommand)]
        query: SeedQuery,
        /// How to print the result.
        #[arg(long, value_enum, default_value_t = QueryOutput::Table, global = true)]
        output: QueryOutput,
    },
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Seed-format log lines (`[trace:… span:… op:…] message`) or a `--format ndjson` export.
    logfile: PathBuf,
    /// The trace to import (default: the first in the file).
    #[arg(long, value_name = "ID")]
    trace: Option<String>,
    /// Where to write the scenario.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Replace the scenario file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand)]
enum SeedQuery {
    /// "Find All Operations for a Specific Booking Flow": one trace's lines, sorted by time.
    TraceOperations {
        /// The trace id, as it appears in the prefix after `trace:`.
        trace_id: String,
        /// NDJSON files written by `run --format ndjson`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// "Identify Failed Calendar Integrations": calendar errors joined to their booking.
    FailedCalendar {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// "Monitor End-to-End Booking Performance": booking start to last webhook execution or
    /// payment success, average and p95 per time bin.
    BookingDuration {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Width of a time bin.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        bin: std::time::Duration,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueryOutput {
    Table,
    Json,
    Csv,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    trace_harness::clock::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_epoch(text: &str) -> Result<Epoch, String> {
    Epoch::parse(text).map_err(|e| e.to_string())
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario files, or directories of them (`*.toml`).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only scenarios whose name contains this text.
    #[arg(long, value_name = "NAME")]
    filter: Option<String>,
    /// What to print for each replay.
    #[arg(long, value_enum, default_value_t = Format::All)]
    format: Format,
    /// With `--format request-ids`: the traced view beside it, to show what tracing adds.
    #[arg(long)]
    side_by_side: bool,
    /// Write each scenario's output to DIR/<scenario>.<ext> (JUnit: DIR/junit.xml) instead of
    /// standard output.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replays to run at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only shard K of N: scenarios sorted by name, every Nth from the Kth (1-based).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Replay with tracing opted out: spans disabled, nothing propagated.
    #[arg(long)]
    no_tracing: bool,
    /// Show attendee names and e-mail addresses in every output and export; by default they
    /// are replaced by `[redacted name]` and `[redacted email]`.
    #[arg(long)]
    show_personal_data: bool,
    /// The real instant virtual time zero stands for in exported timestamps (NDJSON, OTLP).
    #[arg(long, value_name = "RFC3339", default_value = DEFAULT_EPOCH, value_parser = parse_epoch)]
    epoch: Epoch,
    /// Replay each scenario N times, each repetition with its own seed (hence trace ids) and
    /// anchored `--repeat-every` after the previous one.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=trace_harness::vary::MAX_REPEAT as i64))]
    repeat: u32,
    /// How far apart repeated replays start, on exported timestamps.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    repeat_every: std::time::Duration,
    /// Scale every mock latency by a seeded random factor (0.5×–4×) in each repetition.
    #[arg(long)]
    vary_latency: bool,
    /// Send each replay's spans over OTLP/HTTP to this collector (base URL such as
    /// http://localhost:4318, or the full .../v1/traces URL).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The OTLP/HTTP encoding.
    #[arg(long, value_enum, default_value_t = OtlpProtocolArg::HttpProtobuf, requires = "otlp_endpoint")]
    otlp_protocol: OtlpProtocolArg,
    /// Gzip the OTLP/HTTP request bodies.
    #[arg(long, requires = "otlp_endpoint")]
    otlp_gzip: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OtlpProtocolArg {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The span tree and the seed-style log view.
    All,
    /// The span tree with timings, statuses and links.
    Tree,
    /// Log lines with the seed's `[trace:… span:… op:…]` prefix.
    Logs,
    /// One line per span of each booking's creation with its duration, and the bottleneck.
    Timings,
    /// The same log lines as request-ID-only logging showed them.
    RequestIds,
    /// One JSON document per replay: spans, log lines, requests, findings.
    Json,
    /// A JUnit XML report, one test case per scenario.
    Junit,
    /// One JSON object per log line, shaped like the seed's log store (for `query`).
    Ndjson,
    /// OTLP/JSON: one ExportTraceServiceRequest per replay, one per line.
    OtlpJson,
    /// A self-contained HTML waterfall per replay (with several replays, needs --out).
    Html,
}

#[derive(Clone, Copy, Debug)]
struct Shard {
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::List { paths } => match load_all(&paths) {
            Ok(scenarios) => {
                for s in scenarios {
                    let words: Vec<&str> = s.description.split_whitespace().collect();
                    println!("{:<24} {}", s.name, words.join(" "));
                }
                ExitCode::SUCCESS
            }
            Err(errors) => bad_input(errors),
        },
        Command::Explain { file } => match Scenario::load(&file) {
            Ok(scenario) => {
                print!("{}", report::explain(&scenario));
                ExitCode::SUCCESS
            }
            Err(e) => bad_input(vec![e]),
        },
        Command::Query { query, output } => run_query(query, output),
        Command::Import(args) => run_import(args),
        Command::Serve {
            addr,
            google_calendar_url,
        } => serve(addr, google_calendar_url),
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

fn serve(addr: SocketAddr, google_calendar_url: Option<String>) -> ExitCode {
    let config = |mut config: ServiceConfig| {
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

fn run_import(args: ImportArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_BAD_INPUT)
    };
    if args.output.exists() && !args.force {
        return fail(format!(
            "{} exists; pass --force to replace it",
            args.output.display()
        ));
    }
    let text = match std::fs::read(&args.logfile) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return fail(format!("{}: cannot read: {e}", args.logfile.display())),
    };
    let description = format!("Imported from {}.", args.logfile.display());
    let imported = match trace_harness::import::import(
        &args.logfile,
        &text,
        args.trace.as_deref(),
        &description,
    ) {
        Ok(imported) => imported,
        Err(e) => return fail(e.to_string()),
    };
    for bad in &imported.bad {
        eprintln!("skipped {bad}");
    }
    if imported.bad_count > imported.bad.len() {
        eprintln!(
            "skipped {} more bad line(s)",
            imported.bad_count - imported.bad.len()
        );
    }
    if !imported.other_traces.is_empty() {
        eprintln!(
            "the log holds {} other trace(s); import one with --trace ID, such as {}",
            imported.other_traces.len(),
            imported.other_traces[0]
        );
    }
    // The file must load as it will be replayed; a failure here is a bug in the importer.
    if let Err(e) = Scenario::parse(&args.output, &imported.scenario) {
        return fail(format!("the imported scenario does not load:\n{e}"));
    }
    if let Err(e) = write_atomically(&args.output, &imported.scenario) {
        return fail(format!("{}: cannot write: {e}", args.output.display()));
    }
    println!(
        "wrote {}: trace {}, {} span(s), {} TODO(s) to review",
        args.output.display(),
        imported.trace,
        imported.spans.len(),
        imported.todos
    );
    ExitCode::SUCCESS
}

fn run_query(query: SeedQuery, output: QueryOutput) -> ExitCode {
    let result: Result<QueryResult, QueryError> = match &query {
        SeedQuery::TraceOperations { trace_id, files } => query::trace_operations(files, trace_id),
        SeedQuery::FailedCalendar { files } => query::failed_calendar_integrations(files),
        SeedQuery::BookingDuration { files, bin } => query::booking_duration(files, *bin),
    };
    let result = match result {
        Ok(result) => result,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    for bad in &result.stats.reported {
        eprintln!("skipped {bad}");
    }
    let unreported = result.stats.bad - result.stats.reported.len() as u64;
    if unreported > 0 {
        eprintln!("skipped {unreported} more bad line(s)");
    }
    eprintln!(
        "{} line(s) read, {} usable, {} skipped",
        result.stats.lines, result.stats.usable, result.stats.bad
    );
    let output = match output {
        QueryOutput::Table => query::Output::Table,
        QueryOutput::Json => query::Output::Json,
        QueryOutput::Csv => query::Output::Csv,
    };
    print!("{}", query::render(&result, output));
    ExitCode::SUCCESS
}

fn bad_input(errors: Vec<ScenarioError>) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}\n");
    }
    ExitCode::from(EXIT_BAD_INPUT)
}

fn run(args: RunArgs) -> ExitCode {
    let mut scenarios = match load_all(&args.paths) {
        Ok(scenarios) => scenarios,
        Err(errors) => return bad_input(errors),
    };
    if let Some(filter) = &args.filter {
        scenarios.retain(|s| s.name.contains(filter.as_str()));
    }
    if let Some(shard) = args.shard {
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        scenarios = scenarios
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % shard.count == shard.index - 1)
            .map(|(_, s)| s)
            .collect();
    }
    // Each repetition is anchored `repeat_every` after the previous one of its scenario.
    let mut anchors = Vec::new();
    if args.repeat > 1 || args.vary_latency {
        let count = args.repeat as usize;
        scenarios = scenarios
            .iter()
            .flat_map(|s| {
                (0..count)
                    .map(move |i| trace_harness::vary::repetition(s, i, count, args.vary_latency))
            })
            .collect();
        for i in 0..scenarios.len() {
            let nth = (i % count) as u32;
            anchors.push(args.epoch.later_by(args.repeat_every.saturating_mul(nth)));
        }
    } else {
        anchors = vec![args.epoch; scenarios.len()];
    }
    if scenarios.is_empty() {
        eprintln!("no scenario matches: nothing to replay");
        let _ = writeln!(std::io::stdout(), "0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }

    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = Progress::new(scenarios.len());
    let options = ReplayOptions {
        tracing: !args.no_tracing,
    };
    let results = runner::replay_all(&scenarios, options, jobs, |s, r| progress.done(s, r));
    progress.finish();

    let judged: Vec<Judged<'_>> = scenarios
        .iter()
        .zip(results)
        .map(|(s, r)| {
            let judged = r
                .map(|outcome| {
                    // Judged on the real values; shown, by default, without personal data.
                    let verdict = expect::judge(&outcome, &s.expect);
                    if args.show_personal_data {
                        (outcome, verdict)
                    } else {
                        report::privacy::redact(&outcome, &verdict)
                    }
                })
                .map_err(|e: ReplayError| e.to_string());
            (s, judged)
        })
        .collect();
    let passed = judged
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|(_, v)| v.passed()))
        .count();
    let failed = judged.len() - passed;

    if let Err(e) = emit(&args, &judged, &anchors) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let exported = match &args.otlp_endpoint {
        Some(endpoint) => match export(&args, endpoint, &judged, &anchors) {
            Ok(all_sent) => all_sent,
            Err(code) => return code,
        },
        None => true,
    };
    let summary = format!("{passed} passed, {failed} failed");
    if matches!(
        args.format,
        Format::Json | Format::Junit | Format::Ndjson | Format::OtlpJson | Format::Html
    ) && args.out.is_none()
    {
        // Standard output holds the document; keep it parseable.
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if !exported {
        ExitCode::from(EXIT_EXPORT_FAILED)
    } else if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Sends every replay's spans to the collector; `Ok(false)` when some export failed (each
/// failure is reported), `Err` when the endpoint itself is unusable.
fn export(
    args: &RunArgs,
    endpoint: &str,
    judged: &[Judged<'_>],
    anchors: &[Epoch],
) -> Result<bool, ExitCode> {
    use trace_harness::report::otlp_http::{OtlpExporter, OtlpProtocol};
    let protocol = match args.otlp_protocol {
        OtlpProtocolArg::HttpProtobuf => OtlpProtocol::Protobuf,
        OtlpProtocolArg::HttpJson => OtlpProtocol::Json,
    };
    let exporter = OtlpExporter::new(endpoint, protocol, args.otlp_gzip).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    let mut all_sent = true;
    for ((scenario, result), anchor) in judged.iter().zip(anchors) {
        let Ok((outcome, _)) = result else {
            eprintln!(
                "error: {} not exported: the replay itself failed",
                scenario.name
            );
            all_sent = false;
            continue;
        };
        let request = report::otlp::export_request(outcome, *anchor);
        match exporter.send(&request) {
            Ok(sent) => {
                eprintln!(
                    "exported {} span(s) of {} to {} ({} bytes, {} attempt(s))",
                    sent.spans, scenario.name, sent.url, sent.bytes, sent.attempts
                );
                if let Some(warning) = sent.warning {
                    eprintln!("warning: the collector said: {warning}");
                }
            }
            Err(e) => {
                eprintln!("error: {} not exported: {e}", scenario.name);
                all_sent = false;
            }
        }
    }
    Ok(all_sent)
}

type Judged<'a> = (&'a Scenario, Result<(ReplayOutcome, Verdict), String>);

/// Prints or writes every replay's output in the chosen format.
fn emit(args: &RunArgs, judged: &[Judged<'_>], anchors: &[Epoch]) -> std::io::Result<()> {
    if args.format == Format::Junit {
        let cases: Vec<JunitCase<'_>> = judged
            .iter()
            .map(|(s, r)| match r {
                Ok((outcome, verdict)) => JunitCase::Judged(outcome, verdict),
                Err(e) => JunitCase::Broken(&s.name, e.clone()),
            })
            .collect();
        let xml = report::junit(&cases);
        return match &args.out {
            Some(dir) => write_atomically(&dir.join("junit.xml"), &xml),
            None => {
                println!("{}", xml.trim_end());
                Ok(())
            }
        };
    }
    let mut json_documents = Vec::new();
    if args.format == Format::Html && args.out.is_none() && judged.len() > 1 {
        return Err(std::io::Error::other(
            "--format html writes one page per replay: give --out DIR",
        ));
    }
    let mut stdout = std::io::stdout().lock();
    for ((scenario, result), anchor) in judged.iter().zip(anchors) {
        let text = match (result, args.format) {
            (Err(e), Format::Ndjson) => {
                eprintln!("ERROR {}: {e}", scenario.name);
                String::new()
            }
            (Ok((outcome, _)), Format::Ndjson) => report::ndjson::ndjson(outcome, *anchor),
            (Err(e), Format::OtlpJson) => {
                eprintln!("ERROR {}: {e}", scenario.name);
                String::new()
            }
            (Err(e), Format::Html) => {
                eprintln!("ERROR {}: {e}", scenario.name);
                String::new()
            }
            (Ok((outcome, _)), Format::Html) => report::html::waterfall(outcome, *anchor),
            (Ok((outcome, _)), Format::OtlpJson) => {
                report::otlp::otlp_json(outcome, *anchor) + "\n"
            }
            (Err(e), Format::Json) => {
                serde_json::json!({ "scenario": scenario.name, "error": e }).to_string() + "\n"
            }
            (Err(e), _) => format!(
                "== {}\nERROR {}\n\n",
                report::one_line(&scenario.name),
                report::one_line(e)
            ),
            (Ok((outcome, verdict)), Format::Json) => {
                let document = report::json(outcome, verdict);
                let text = serde_json::to_string_pretty(&document).unwrap_or_default() + "\n";
                json_documents.push(document);
                text
            }
            (Ok((outcome, verdict)), format) => {
                render(scenario, outcome, verdict, format, args.side_by_side)
            }
        };
        match &args.out {
            Some(dir) => {
                let ext = match args.format {
                    Format::Json => "json",
                    Format::Ndjson => "ndjson",
                    Format::OtlpJson => "otlp.json",
                    Format::Html => "html",
                    _ => "txt",
                };
                write_atomically(&dir.join(format!("{}.{ext}", scenario.name)), &text)?;
                if let Err(e) = result {
                    println!("ERROR {}: {e}", scenario.name);
                } else if let Ok((outcome, verdict)) = result {
                    if !verdict.passed() {
                        print!("{}", report::diagnostics(outcome, verdict));
                    }
                }
            }
            None if args.format != Format::Json => stdout.write_all(text.as_bytes())?,
            None => {}
        }
    }
    if args.format == Format::Json && args.out.is_none() {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_documents).unwrap_or_default()
        );
    }
    Ok(())
}

fn render(
    scenario: &Scenario,
    outcome: &ReplayOutcome,
    verdict: &Verdict,
    format: Format,
    side_by_side: bool,
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
    match format {
        Format::All => {
            out.push_str(&report::tree(outcome, &[]));
            out.push('\n');
            out.push_str(&report::seed_log_view(outcome));
        }
        Format::Tree => out.push_str(&report::tree(outcome, &[])),
        Format::Logs => out.push_str(&report::seed_log_view(outcome)),
        Format::RequestIds if side_by_side => out.push_str(&report::side_by_side(outcome)),
        Format::RequestIds => out.push_str(&report::request_id_view(outcome)),
        Format::Timings => out.push_str(&report::timing_view(outcome)),
        Format::Json | Format::Junit | Format::Ndjson | Format::OtlpJson | Format::Html => {}
    }
    if format == Format::All {
        out.push_str(&report::bottleneck_lines(outcome));
        out.push_str(&report::failed_job_lines(outcome));
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

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Progress on standard error: a bar on a terminal, plain lines in CI or a pipe.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = (interactive && total > 1).then(|| {
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

    fn done(&self, scenario: &Scenario, result: &Result<ReplayOutcome, ReplayError>) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
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

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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
