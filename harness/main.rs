//! The `trace-harness` command line: parses the arguments into the options of
//! `trace_harness::cli`, which runs the command, and maps how it ended to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use trace_harness::cli::{self, Exit, ImportOptions, OtlpOptions, RunOptions, Shard};
use trace_harness::overhead::{self, OverheadOptions};
use trace_harness::query;
use trace_harness::receive::{TimeBase, DEFAULT_ADDR};
use trace_harness::report::epoch::{Epoch, DEFAULT_EPOCH};
use trace_harness::report::otlp_http::OtlpProtocol;
use trace_harness::report::text::View;
use trace_harness::report::Format as ReportFormat;
use trace_harness::runner::load::Transport;

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
        after_help = "Examples:\n  trace-harness run scenarios/\n  trace-harness run scenarios/calendar_failure.toml --format logs\n  trace-harness run scenarios/ --format request-ids --side-by-side\n  trace-harness run scenarios/ --format junit --out target/trace-harness\n  trace-harness run scenarios/ --shard 1/2      # this CI machine's half\n  trace-harness run scenarios/ --service examples/own-service/service.toml\n  trace-harness run scenarios/ --service examples/own-service/logs-only.toml  # judged by its log lines\n  trace-harness run scenarios/calendar_failure.toml --service running.toml --print-env  # for a service you start"
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
        after_help = "Examples:\n  trace-harness overhead\n  trace-harness overhead --flows 5000 --http\n  trace-harness overhead --http --noise-floor\n  trace-harness overhead --service examples/node-booking-service/service.toml\n\nReading it: an overhead inside the rounds' quartiles is noise, not cost."
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
        /// Measure the service this `service.toml` declares instead of the in-process one: one
        /// process traced and one with `OTEL_SDK_DISABLED=true`, over HTTP, each process's own
        /// CPU time per flow.
        #[arg(long, value_name = "FILE")]
        service: Option<PathBuf>,
    },
    /// Print what a scenario does and what it asserts.
    #[command(after_help = "Example:\n  trace-harness explain scenarios/calendar_failure.toml")]
    Explain {
        /// A scenario file.
        file: PathBuf,
    },
    /// Run the booking service: for manual use, with the W3C Trace Context test-service
    /// endpoint `POST /test`, until Ctrl-C or SIGTERM; or, with `--contract`, as the harness starts a
    /// service, configured by the contract environment.
    #[command(
        after_help = "`POST /test` takes a JSON array of {\"url\": …, \"arguments\": …} and POSTs each `arguments` to its `url`, propagating traceparent/tracestate. It calls any URL it is given: keep the service on loopback. Ctrl-C (SIGINT) or SIGTERM stops it: requests in flight finish (or are abandoned after 10 s), the jobs it still holds are given back (their leases released), its temporary database is removed, and it exits 0.\n\nWith --contract, nothing comes from the command line: the service reads PORT, DATABASE_PATH (both required; the database outlives the process, for the next one after a restart), GOOGLE_CALENDAR_API_URL, STRIPE_API_URL, EMAIL_API_URL, WEBHOOK_SUBSCRIBER_URLS (a JSON array), WEBHOOK_SECRET, CRON_API_KEY, STRIPE_WEBHOOK_SECRET, EVENT_TYPES (a JSON array), TRACE_HARNESS_BUGS, TRACE_HARNESS_SEED, TRACE_HARNESS_GENERATION, TRACE_HARNESS_STORE_LATENCY_US and the OTEL_* variables; an empty variable is an unset one. It listens on 127.0.0.1:PORT (0: any free port) without /test, and its first line on standard output, once the port accepts connections, is `listening on http://127.0.0.1:<port>`. Each span is exported over OTLP/HTTP as it closes (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf or http/json; service.name OTEL_SERVICE_NAME or cal.com), and standard output has nothing more. With OTEL_TRACES_EXPORTER=none it still traces but exports nothing and writes every log line to standard output in the seed's format ([trace:… span:… op:…] message); with OTEL_SDK_DISABLED=true tracing is off (no spans, no traceparent sent) and the lines are [Request ID: …] ones. SIGTERM or SIGINT stops it: in-flight requests finish (or are abandoned after 10 s), the jobs it still holds are given back, the spans not yet exported are, and it exits 0, or 3 if an export failed (each failure is on standard error as it happens). A cron call's x-virtual-crash header (after_claim, after_send or before_commit, with `; job=N` for the call's N-th job) makes it die at that point of that job: it exports the spans that have closed, says so on standard error and exits 70 at once, answering nothing and giving nothing back; the next process on the same database re-runs the job once its lease has expired.\n\nExamples:\n  trace-harness serve --addr 127.0.0.1:5000\n  curl -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \\\n       -d '[{\"url\": \"http://127.0.0.1:7777/0\", \"arguments\": []}]' http://127.0.0.1:5000/test\n  python test/test.py http://127.0.0.1:5000/test   # the W3C suite, from w3c/trace-context\n  PORT=0 DATABASE_PATH=/tmp/replay-1/booking.sqlite3 TRACE_HARNESS_SEED=1 \\\n    GOOGLE_CALENDAR_API_URL=http://127.0.0.1:7001 WEBHOOK_SUBSCRIBER_URLS='[\"http://127.0.0.1:7002/webhook\"]' \\\n    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 trace-harness serve --contract"
    )]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Base URL of a Google Calendar API for bookings (without it, calendar events fail).
        #[arg(long)]
        google_calendar_url: Option<String>,
        /// Configure the service from the contract environment alone, as the harness starts a
        /// service per replay, and export its spans over OTLP/HTTP as they close.
        #[arg(long, conflicts_with_all = ["addr", "google_calendar_url"])]
        contract: bool,
    },
    /// Receive spans over OTLP/HTTP and show them: a local trace viewer for any service.
    ///
    /// Listens for `POST /v1/traces` (protobuf or JSON, gzipped or not). While it runs, each
    /// batch of spans is printed as a tree on standard error (on a terminal; its aliases number
    /// that batch alone), and anything malformed as a warning. On Ctrl-C the whole collection
    /// goes to standard output, or to --out, in --format.
    #[command(after_help = "Examples:
  trace-harness receive
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 node service.js   # in another terminal
  trace-harness run scenarios/ --otlp-endpoint http://127.0.0.1:4318   # the replays' spans
  trace-harness receive --format html --out traces.html

--format otlp-json re-exports the spans through the harness's own model: one resource per service.name, span kinds as the harness would give them.")]
    Receive {
        /// Address to listen on (loopback unless other hosts must reach it).
        #[arg(long, default_value_t = DEFAULT_ADDR)]
        addr: SocketAddr,
        /// What to print of the collection on Ctrl-C.
        #[arg(long, value_enum, default_value_t = ReceiveFormatArg::Tree)]
        format: ReceiveFormatArg,
        /// Write it to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Which instant is shown as +0s: the earliest span received (a service on its own
        /// clock), or virtual time's zero (a service that honours x-virtual-now-us).
        #[arg(long, value_enum, default_value_t = TimeBaseArg::EarliestSpan)]
        time_base: TimeBaseArg,
    },
    /// Compare two replays' traces: the spans added, removed or changed, and what each mock
    /// request carried.
    ///
    /// A and B are each a scenario file or a directory of them (replayed now, in process), or a
    /// saved export (`run --format json`, `--format ndjson` or `--format otlp-json`), so CI can
    /// compare a run with a baseline it saved. Without B, B is A replayed another way:
    /// `--service`, `--no-tracing` or `--bug` (each applies to B only). Spans are matched by
    /// their place in the aliased tree (operation, parent, order among siblings of that
    /// operation); a span found elsewhere is reported as moved. For each pair: parent or trace,
    /// status, attributes, events (log lines), duration beyond --tolerance, follows-from links;
    /// and each mock request's traceparent. What a side cannot show (NDJSON has no parents,
    /// OTLP/JSON no mock requests) is listed as not compared.
    #[command(after_help = "Examples:
  trace-harness diff scenarios/calendar_failure.toml scenarios/calendar_failure.toml   # no differences
  trace-harness diff scenarios/calendar_failure.toml --bug orphan_jobs
  trace-harness diff scenarios/ --service examples/own-service/service.toml
  trace-harness diff scenarios/slow_payment.toml --no-tracing
  trace-harness run scenarios/ --format json > baseline.json   # later, after a change:
  trace-harness diff baseline.json scenarios/ --tolerance 5%
  trace-harness diff baseline.json scenarios/ --format json --out target/diff.json
  trace-harness diff scenarios/webhook_retries.toml --bug orphan_jobs --format html --out diff.html

Pairs: one replay on each side is compared whatever their names; otherwise replays are paired by scenario name, and a scenario only one side has is a difference.

Exit codes: 0 no differences, 1 differences (or a replay that could not run), 2 bad input.")]
    Diff(DiffArgs),
    /// Turn an incident's logs or trace into a scenario whose replay reproduces it: its calls and
    /// their answers, retries, seats, payments, reminders, and, where the input has times, every
    /// step's timing (fitted by replaying).
    #[command(
        after_help = "Examples:\n  trace-harness import incident.log -o scenarios/incident_42.toml\n  trace-harness import logs.ndjson --trace 4bf92f35 -o scenarios/slow.toml\n  trace-harness import trace.otlp.json --trace trace_2 -o scenarios/second.toml\n\nReads seed-format lines, a `run --format ndjson` export, or an OTLP/JSON trace (`run --format otlp-json`, or one exported from Jaeger, Tempo or any OpenTelemetry pipeline). Every trace in the input is imported, as concurrent bookings, unless --trace picks one. `# TODO` lines in the scenario say what the input lacked and what was assumed; `# TODO (not reproduced)` lines, where the replay will differ."
    )]
    Import(ImportArgs),
    /// Run one of the seed's three Axiom queries locally over NDJSON exports.
    #[command(
        after_help = "Examples:\n  trace-harness run scenarios/ --repeat 200 --vary-latency --format ndjson > logs.ndjson\n  trace-harness query trace-operations 4bf92f3577b34da6a3ce929d0e0e4736 logs.ndjson\n  trace-harness query trace-operations 4bf92f logs.ndjson\n  trace-harness run scenarios/calendar_failure.toml --format ndjson > one.ndjson && trace-harness query trace-operations trace_1 one.ndjson\n  trace-harness query failed-calendar logs.ndjson --output csv\n  trace-harness query booking-duration logs.ndjson --output json"
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
struct DiffArgs {
    /// The baseline: a scenario file, a directory of them, or a saved export (JSON, NDJSON or
    /// OTLP/JSON).
    a: PathBuf,
    /// The replays compared with A, given the same way; A again when omitted (then --service,
    /// --no-tracing or --bug says how B differs).
    b: Option<PathBuf>,
    /// Replay B's scenarios against the service FILE declares (a `service.toml`) instead of the
    /// in-process one.
    #[arg(long, value_name = "FILE")]
    service: Option<PathBuf>,
    /// Replay B's scenarios with tracing opted out.
    #[arg(long)]
    no_tracing: bool,
    /// Replay B's scenarios with this planted bug (drop_traceparent, orphan_jobs,
    /// unlinked_jobs, unmarked_server_errors), as `[service] bugs` plants it; repeat for
    /// several.
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    bugs: Vec<trace_harness::contract::PlantedBug>,
    /// How much a span's duration may change unreported: a share of A's duration (`5%`) or a
    /// duration (`10ms`). Replays run on virtual time, so the default is exact.
    #[arg(long, value_name = "PERCENT|DURATION", default_value = "0s", value_parser = parse_tolerance)]
    tolerance: trace_harness::diff::Tolerance,
    /// What to print.
    #[arg(long, value_enum, default_value_t = DiffFormatArg::Text)]
    format: DiffFormatArg,
    /// Write it to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replays to run at once (default: two per core).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormatArg {
    /// A block per differing span: `~` changed, `-` only in A, `+` only in B.
    Text,
    /// One JSON document: `equal`, and per pair of replays every difference with its `kind`.
    Json,
    /// One self-contained HTML page: the two waterfalls side by side, differing spans marked.
    Html,
}

fn parse_bug(text: &str) -> Result<trace_harness::contract::PlantedBug, String> {
    use trace_harness::contract::PlantedBug;
    PlantedBug::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        format!("expected one of {}; found `{text}`", names.join(", "))
    })
}

fn parse_tolerance(text: &str) -> Result<trace_harness::diff::Tolerance, String> {
    text.parse()
        .map_err(|e: trace_harness::diff::ToleranceError| e.to_string())
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Seed-format log lines (`[trace:… span:… op:…] message`), a `--format ndjson` export or
    /// an OTLP/JSON trace export.
    logfile: PathBuf,
    /// The one trace to import: its id, a unique prefix of it, or `trace_N` (the N-th in order
    /// of first appearance, as the views alias it). Default: every trace.
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
        /// The trace: its id (32 hex digits, as a tree's header `trace_1 trace_id=…` shows it),
        /// a prefix of the id no other trace shares, or its alias `trace_N` (the N-th trace of
        /// its replay; ambiguous in a file of several replays). One that names no single trace
        /// is an error (exit 2).
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
enum ReceiveFormatArg {
    /// The span tree with timings, statuses and links.
    Tree,
    /// The spans' events with the seed's `[trace:… span:… op:…]` prefix.
    Logs,
    /// A self-contained HTML waterfall.
    Html,
    /// OTLP/JSON: one ExportTraceServiceRequest.
    OtlpJson,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TimeBaseArg {
    /// The earliest span start received.
    EarliestSpan,
    /// Virtual time's zero, 2026-03-02T09:00:00Z.
    Virtual,
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
    /// Replays to run at once (default: two per core).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only shard K of N: scenarios sorted by name, every Nth from the Kth (1-based).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Replay with tracing opted out: spans disabled, nothing propagated.
    #[arg(long)]
    no_tracing: bool,
    /// Replay against the service FILE declares (a `service.toml`: its command, environment
    /// and readiness, started per replay; or the `url` of one already running) instead of the
    /// in-process one; its spans arrive over OTLP/HTTP, or its seed-format log lines on
    /// stdout. See CONTRACT.md.
    #[arg(long, value_name = "FILE")]
    service: Option<PathBuf>,
    /// With a `--service` file that has a `url`: print, for each scenario, the environment to
    /// start that service with (as `export` lines for a POSIX shell), and replay nothing.
    #[arg(long, requires = "service")]
    print_env: bool,
    /// Show attendee names and e-mail addresses in every output and export; by default they
    /// are replaced by `[redacted name]` and `[redacted email]`.
    #[arg(long)]
    show_personal_data: bool,
    /// The real instant virtual time zero stands for in exported timestamps (NDJSON, OTLP).
    #[arg(long, value_name = "RFC3339", default_value_t = DEFAULT_EPOCH, value_parser = parse_epoch)]
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
    /// http://localhost:4318, or the full .../v1/traces URL). Each replay is exported as its
    /// output is printed, so the `exported …` lines on standard error come between replays.
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
    /// JSON: on standard output one array holding a document per replay; with --out one
    /// `<scenario>.json` each. A document: scenario, seed, tracing, passed, violations,
    /// failures, unchecked, kept_apart, spans, logs, steps, mock_requests.
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

fn main() -> ExitCode {
    let exit = match Cli::parse().command {
        Command::Run(args) => cli::run(&args.into()),
        Command::List { paths } => cli::list(&paths),
        Command::Explain { file } => cli::explain(&file),
        Command::Query { query, output } => {
            let query = match query {
                SeedQuery::TraceOperations { trace_id, files } => {
                    cli::SeedQuery::TraceOperations { trace_id, files }
                }
                SeedQuery::FailedCalendar { files } => cli::SeedQuery::FailedCalendar { files },
                SeedQuery::BookingDuration { files, bin } => {
                    cli::SeedQuery::BookingDuration { files, bin }
                }
            };
            let output = match output {
                QueryOutput::Table => query::Output::Table,
                QueryOutput::Json => query::Output::Json,
                QueryOutput::Csv => query::Output::Csv,
            };
            cli::query(&query, output)
        }
        Command::Diff(args) => cli::diff(&cli::DiffOptions {
            a: args.a,
            b: args.b,
            service: args.service,
            no_tracing: args.no_tracing,
            bugs: args.bugs,
            tolerance: args.tolerance,
            format: match args.format {
                DiffFormatArg::Text => cli::DiffFormat::Text,
                DiffFormatArg::Json => cli::DiffFormat::Json,
                DiffFormatArg::Html => cli::DiffFormat::Html,
            },
            out: args.out,
            jobs: args.jobs,
        }),
        Command::Import(args) => cli::import(&ImportOptions {
            logfile: args.logfile,
            trace: args.trace,
            output: args.output,
            force: args.force,
        }),
        Command::Serve { contract: true, .. } => cli::serve_contract(),
        Command::Serve {
            addr,
            google_calendar_url,
            contract: false,
        } => cli::serve(addr, google_calendar_url),
        Command::Receive {
            addr,
            format,
            out,
            time_base,
        } => cli::receive(&cli::ReceiveOptions {
            addr,
            format: match format {
                ReceiveFormatArg::Tree => cli::ReceiveFormat::Tree,
                ReceiveFormatArg::Logs => cli::ReceiveFormat::Logs,
                ReceiveFormatArg::Html => cli::ReceiveFormat::Html,
                ReceiveFormatArg::OtlpJson => cli::ReceiveFormat::OtlpJson,
            },
            out,
            time_base: match time_base {
                TimeBaseArg::EarliestSpan => TimeBase::EarliestSpan,
                TimeBaseArg::Virtual => TimeBase::Virtual,
            },
        }),
        Command::Overhead {
            flows,
            http,
            noise_floor,
            scenario,
            service,
        } => match service
            .as_deref()
            .map(trace_harness::runner::ServiceSpec::load)
            .transpose()
        {
            Err(e) => {
                eprintln!("error: {e}");
                Exit::BadInput
            }
            Ok(service) => cli::overhead(
                &scenario,
                &OverheadOptions {
                    flows,
                    // An external service is always reached over HTTP.
                    transport: if http || service.is_some() {
                        Transport::Http
                    } else {
                        Transport::InProcess
                    },
                    noise_floor,
                    service,
                },
            ),
        },
    };
    ExitCode::from(match exit {
        Exit::Success => 0,
        Exit::Failed => EXIT_FAILED,
        Exit::BadInput => EXIT_BAD_INPUT,
        Exit::ExportFailed => EXIT_EXPORT_FAILED,
    })
}

impl From<RunArgs> for RunOptions {
    fn from(args: RunArgs) -> Self {
        let format = match args.format {
            Format::All => ReportFormat::Text(View::All),
            Format::Tree => ReportFormat::Text(View::Tree),
            Format::Logs => ReportFormat::Text(View::Logs),
            Format::Timings => ReportFormat::Text(View::Timings),
            Format::RequestIds => ReportFormat::Text(View::RequestIds),
            Format::Json => ReportFormat::Json,
            Format::Junit => ReportFormat::Junit,
            Format::Ndjson => ReportFormat::Ndjson,
            Format::OtlpJson => ReportFormat::OtlpJson,
            Format::Html => ReportFormat::Html,
        };
        let otlp = args.otlp_endpoint.map(|endpoint| OtlpOptions {
            endpoint,
            protocol: match args.otlp_protocol {
                OtlpProtocolArg::HttpProtobuf => OtlpProtocol::Protobuf,
                OtlpProtocolArg::HttpJson => OtlpProtocol::Json,
            },
            gzip: args.otlp_gzip,
        });
        RunOptions {
            paths: args.paths,
            filter: args.filter,
            format,
            side_by_side: args.side_by_side,
            out: args.out,
            jobs: args.jobs,
            shard: args.shard,
            no_tracing: args.no_tracing,
            service: args.service,
            print_env: args.print_env,
            show_personal_data: args.show_personal_data,
            epoch: args.epoch,
            repeat: args.repeat,
            repeat_every: args.repeat_every,
            vary_latency: args.vary_latency,
            otlp,
        }
    }
}
