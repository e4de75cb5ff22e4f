//! The commands besides `run`: `list`, `explain`, `overhead`, `serve`, `import` and `query`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::progress::RoundsProgress;
use super::{bad_input, fail, write_atomically, Exit};
use crate::booking::{conformance, ServiceConfig};
use crate::overhead::{self, OverheadOptions};
use crate::process::{self, ContractEnv};
use crate::query::{self, QueryError, QueryResult};
use crate::report;
use crate::scenario::{self, Scenario};

/// `list`: every scenario's name and description, one line each.
pub fn list(paths: &[PathBuf]) -> Exit {
    match scenario::load_all(paths) {
        Ok(scenarios) => {
            for s in scenarios {
                let words: Vec<&str> = s.description.split_whitespace().collect();
                println!("{:<24} {}", s.name, words.join(" "));
            }
            Exit::Success
        }
        Err(errors) => bad_input(errors),
    }
}

/// `explain`: what the scenario in `file` does and asserts.
pub fn explain(file: &Path) -> Exit {
    match Scenario::load(file) {
        Ok(scenario) => {
            print!("{}", report::explain(&scenario));
            Exit::Success
        }
        Err(e) => bad_input(vec![e]),
    }
}

/// `overhead`: what tracing costs the booking flow of the scenario at `path`.
pub fn overhead(path: &Path, options: &OverheadOptions) -> Exit {
    let scenario = match Scenario::load(path) {
        Ok(scenario) => scenario,
        Err(e) => return fail(e),
    };
    let mut progress = RoundsProgress::new();
    let result = overhead::measure(&scenario, options, |done, total| {
        progress.rounds(done, total)
    });
    progress.finish();
    match result {
        Ok(report) => {
            print!("{report}");
            Exit::Success
        }
        // A scenario a load run cannot repeat is the input's fault, as a bad --flows is.
        Err(
            e @ (overhead::OverheadError::Flows(_)
            | overhead::OverheadError::Load(crate::runner::load::LoadError::Unsupported(_))),
        ) => fail(e),
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}

/// `serve`: the booking service on `addr` until Ctrl-C or SIGTERM.
pub fn serve(addr: SocketAddr, google_calendar_url: Option<String>) -> Exit {
    let config = |mut config: ServiceConfig| {
        config.google_calendar_url = google_calendar_url.unwrap_or_default();
        config
    };
    let result = conformance::serve(addr, config, |url| {
        println!(
            "booking service listening on {url} (W3C test endpoint: {url}/test); Ctrl-C or SIGTERM stops it"
        );
        let _ = std::io::stdout().flush();
    });
    match result {
        Ok(()) => Exit::Success,
        Err(e) => fail(e),
    }
}

/// `serve --contract`: the booking service configured by the contract environment, exporting
/// its spans as they close (or writing its log lines to standard output), until SIGTERM or
/// SIGINT. Standard output's first line is `listening on <base URL>`, the readiness signal.
pub fn serve_contract() -> Exit {
    let contract = match ContractEnv::read(|name| std::env::var_os(name)) {
        Ok(contract) => contract,
        Err(e) => return fail(e),
    };
    let served = process::serve_contract(
        contract,
        std::io::stdout,
        |url| {
            println!("listening on {url}");
            let _ = std::io::stdout().flush();
        },
        |e| eprintln!("error: {e}"),
    );
    match served {
        Ok(exported) if exported.lost_spans == 0 => Exit::Success,
        Ok(exported) => {
            eprintln!(
                "error: {} span(s) were not exported, {} were",
                exported.lost_spans, exported.spans
            );
            Exit::ExportFailed
        }
        Err(e) => fail(e),
    }
}

/// What `import` reads and writes.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Seed-format log lines or an NDJSON export.
    pub logfile: PathBuf,
    /// The trace to import (id, unique prefix or `trace_N`); every trace when `None`.
    pub trace: Option<String>,
    /// Where the scenario goes.
    pub output: PathBuf,
    /// Replace `output` if it exists.
    pub force: bool,
}

/// `import`: an incident's log lines as a scenario file.
pub fn import(options: &ImportOptions) -> Exit {
    if options.output.exists() && !options.force {
        return fail(format!(
            "{} exists; pass --force to replace it",
            options.output.display()
        ));
    }
    let text = match std::fs::read(&options.logfile) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return fail(format!("{}: cannot read: {e}", options.logfile.display())),
    };
    let description = format!("Imported from {}.", options.logfile.display());
    let imported = match crate::import::import(
        &options.logfile,
        &text,
        options.trace.as_deref(),
        &description,
    ) {
        Ok(imported) => imported,
        Err(e) => return fail(e),
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
            "left out {} other trace(s) of the log, such as {}",
            imported.other_traces.len(),
            imported.other_traces[0]
        );
    }
    // The file must load as it will be replayed; a failure here is a bug in the importer.
    if let Err(e) = Scenario::parse(&options.output, &imported.scenario) {
        return fail(format!("the imported scenario does not load:\n{e}"));
    }
    if let Err(e) = write_atomically(&options.output, &imported.scenario) {
        return fail(format!("{}: cannot write: {e}", options.output.display()));
    }
    let traces = match imported.traces.as_slice() {
        [one] => format!("trace {one}"),
        many => format!("{} traces", many.len()),
    };
    println!(
        "wrote {}: {traces}, {} span(s), {} TODO(s) to review{}",
        options.output.display(),
        imported.spans.len(),
        imported.todos,
        if imported.unmapped.is_empty() {
            ""
        } else {
            " (some of it not reproduced: see the TODO lines)"
        }
    );
    Exit::Success
}

/// One of the seed's three queries, with the NDJSON files it reads.
pub enum SeedQuery {
    /// Every line of one trace, in time order.
    TraceOperations {
        /// The trace id, as exported.
        trace_id: String,
        /// The NDJSON exports to read.
        files: Vec<PathBuf>,
    },
    /// Calendar-event errors joined to their booking's lines.
    FailedCalendar {
        /// The NDJSON exports to read.
        files: Vec<PathBuf>,
    },
    /// End-to-end booking durations, binned.
    BookingDuration {
        /// The NDJSON exports to read.
        files: Vec<PathBuf>,
        /// The width of one time bin.
        bin: std::time::Duration,
    },
}

/// `query`: a seed query's result, with what was skipped on the way.
pub fn query(query: &SeedQuery, output: query::Output) -> Exit {
    let result = match query {
        SeedQuery::TraceOperations { trace_id, files } => query::trace_operations(files, trace_id),
        SeedQuery::FailedCalendar { files } => query::failed_calendar_integrations(files),
        SeedQuery::BookingDuration { files, bin } => query::booking_duration(files, *bin),
    };
    print_query(result, output)
}

fn print_query(result: Result<QueryResult, QueryError>, output: query::Output) -> Exit {
    let result = match result {
        Ok(result) => result,
        Err(e) => return fail(e),
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
    print!("{}", query::render(&result, output));
    Exit::Success
}
