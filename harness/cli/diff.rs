//! `diff`: two replays' traces compared. Each side is scenario files (a file or a directory,
//! replayed now) or a saved export (JSON, NDJSON, OTLP/JSON); B may be A replayed another way
//! (`--service`, `--no-tracing`, `--bug`). Pairs replays by scenario name, compares each pair,
//! prints the differences, and exits 0 when nothing differs, 1 when something does.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{bad_input, fail, write_atomically, Exit};
use crate::contract::PlantedBug;
use crate::diff::{self, Compared, Holds, Saved, Tolerance, TraceDiff};
use crate::expect::Verdict;
use crate::outcome::{ReplayOutcome, SpanSource};
use crate::report;
use crate::report::diff::{DiffReport, DiffSide, Diffed};
use crate::runner::{self, ReplayOptions, ServiceSpec};
use crate::scenario::{self, Scenario};

/// How `diff` prints what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    /// A block per differing span.
    Text,
    /// One JSON document.
    Json,
    /// One HTML page: the two waterfalls side by side, differences marked.
    Html,
}

/// Everything `diff` is asked to do.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// The baseline: scenario files, a directory of them, or a saved export.
    pub a: PathBuf,
    /// The replays compared with it; A again when `None`, replayed as the options below say.
    pub b: Option<PathBuf>,
    /// Replay B's scenarios against the service this `service.toml` declares.
    pub service: Option<PathBuf>,
    /// Replay B's scenarios with tracing opted out.
    pub no_tracing: bool,
    /// Replay B's scenarios with these bugs planted in the service.
    pub bugs: Vec<PlantedBug>,
    /// How much a span's duration may change unreported.
    pub tolerance: Tolerance,
    /// What to print.
    pub format: DiffFormat,
    /// Write the output to this file instead of standard output.
    pub out: Option<PathBuf>,
    /// Replays to run at once; the number of cores when `None`.
    pub jobs: Option<usize>,
}

/// How B's scenarios are replayed: what B's label says and what the replay is given.
struct Replaying {
    service: Option<ServiceSpec>,
    service_path: Option<PathBuf>,
    tracing: bool,
    bugs: Vec<PlantedBug>,
}

impl Replaying {
    fn in_process() -> Self {
        Replaying {
            service: None,
            service_path: None,
            tracing: true,
            bugs: Vec::new(),
        }
    }

    fn changes_anything(&self) -> bool {
        self.service_path.is_some() || !self.tracing || !self.bugs.is_empty()
    }

    fn label(&self, path: &Path) -> String {
        let mut label = format!("{}, replayed ", path.display());
        match &self.service_path {
            Some(service) => label.push_str(&format!("against {}", service.display())),
            None => label.push_str("in process"),
        }
        if !self.tracing {
            label.push_str(", tracing off");
        }
        for bug in &self.bugs {
            label.push_str(&format!(", bug {} planted", bug.name()));
        }
        label
    }
}

/// One replay of a side: its scenario's name, what it holds and how it is labelled.
struct Entry {
    name: String,
    outcome: ReplayOutcome,
    holds: Holds,
    label: String,
}

/// `diff`: compares, prints, and says by its exit whether anything differs.
pub fn diff(options: &DiffOptions) -> Exit {
    let mut replaying = Replaying::in_process();
    replaying.tracing = !options.no_tracing;
    replaying.bugs = options.bugs.clone();
    if let Some(path) = &options.service {
        match ServiceSpec::load(path) {
            Ok(spec) => replaying.service = Some(spec),
            Err(e) => return fail(e),
        }
        replaying.service_path = Some(path.clone());
    }
    let b_path = match &options.b {
        Some(b) => b.clone(),
        None if replaying.changes_anything() => options.a.clone(),
        None => {
            return fail(
                "diff needs two replays: give B, or replay A another way with --service FILE, --no-tracing or --bug NAME",
            )
        }
    };
    let a = match side(&options.a, &Replaying::in_process(), options.jobs, "A") {
        Ok(entries) => entries,
        Err(exit) => return exit,
    };
    let b = match side(&b_path, &replaying, options.jobs, "B") {
        Ok(entries) => entries,
        Err(exit) => return exit,
    };
    let pairs = match paired(&a, &b) {
        Ok(pairs) => pairs,
        Err(message) => return fail(message),
    };
    let diffs: Vec<TraceDiff> = pairs
        .compared
        .iter()
        .map(|(x, y)| {
            diff::diff(
                Compared {
                    outcome: &x.outcome,
                    holds: x.holds,
                },
                Compared {
                    outcome: &y.outcome,
                    holds: y.holds,
                },
                options.tolerance,
            )
        })
        .collect();
    let report = DiffReport {
        compared: pairs
            .compared
            .iter()
            .zip(&diffs)
            .map(|((x, y), d)| Diffed {
                scenario: &x.name,
                a: DiffSide {
                    label: &x.label,
                    outcome: &x.outcome,
                },
                b: DiffSide {
                    label: &y.label,
                    outcome: &y.outcome,
                },
                diff: d,
            })
            .collect(),
        only_in_a: pairs.only_in_a,
        only_in_b: pairs.only_in_b,
    };
    let text = match options.format {
        DiffFormat::Text => report::diff::text(&report),
        DiffFormat::Json => {
            serde_json::to_string_pretty(&report::diff::json(&report)).unwrap_or_default() + "\n"
        }
        DiffFormat::Html => report::diff::html(&report, report::epoch::DEFAULT_EPOCH),
    };
    let written = match &options.out {
        Some(path) => write_atomically(path, &text),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        }
    };
    if let Err(e) = written {
        return fail(e);
    }
    if report.is_equal() {
        Exit::Success
    } else {
        Exit::Failed
    }
}

/// The replays `path` stands for: scenario files replayed now, or an export read back.
fn side(
    path: &Path,
    replaying: &Replaying,
    jobs: Option<usize>,
    letter: &str,
) -> Result<Vec<Entry>, Exit> {
    if is_scenarios(path) {
        let mut scenarios = scenario::load_all(&[path.to_owned()]).map_err(bad_input)?;
        for scenario in &mut scenarios {
            for bug in &replaying.bugs {
                if !scenario.service.bugs.contains(bug) {
                    scenario.service.bugs.push(*bug);
                }
            }
        }
        return replayed(path, &scenarios, replaying, jobs, letter);
    }
    if replaying.changes_anything() {
        return Err(fail(format!(
            "{letter} is `{}`, a saved export: --service, --no-tracing and --bug replay scenario files, and a saved replay cannot be replayed again",
            path.display()
        )));
    }
    let saved = diff::read_saved(path).map_err(fail)?;
    Ok(saved
        .into_iter()
        .map(|Saved { outcome, format }| Entry {
            name: outcome.scenario.clone(),
            label: format!("{}, {}", path.display(), format.described()),
            holds: format.holds(),
            outcome,
        })
        .collect())
}

/// A directory, or a `.toml` file: scenarios. Anything else is read as an export.
fn is_scenarios(path: &Path) -> bool {
    path.is_dir() || path.extension().is_some_and(|e| e == "toml")
}

fn replayed(
    path: &Path,
    scenarios: &[Scenario],
    replaying: &Replaying,
    jobs: Option<usize>,
    letter: &str,
) -> Result<Vec<Entry>, Exit> {
    let jobs = jobs.unwrap_or_else(crate::runner::default_jobs);
    let results = runner::replay_all_against(
        scenarios,
        ReplayOptions {
            tracing: replaying.tracing,
        },
        replaying.service.as_ref(),
        jobs,
        |_, _| {},
    );
    let mut entries = Vec::new();
    for (scenario, result) in scenarios.iter().zip(results) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) if e.is_bad_input() => return Err(fail(e)),
            Err(e) => {
                eprintln!(
                    "error: {letter}: {} could not be replayed: {e}",
                    scenario.name
                );
                return Err(Exit::Failed);
            }
        };
        // Shown, and so compared, as every export shows it: without personal data.
        let (outcome, _) = report::privacy::redact(&outcome, &Verdict::default());
        let holds = match outcome.source {
            SpanSource::Spans => Holds::ALL,
            SpanSource::LogLines => Holds {
                requests: true,
                ..Holds::LINES
            },
        };
        let file = if path.is_dir() {
            scenario.path.clone()
        } else {
            path.to_owned()
        };
        entries.push(Entry {
            name: scenario.name.clone(),
            label: replaying.label(&file),
            holds,
            outcome,
        });
    }
    Ok(entries)
}

/// Which replay of A goes with which of B.
struct Pairs<'a> {
    compared: Vec<(&'a Entry, &'a Entry)>,
    only_in_a: Vec<String>,
    only_in_b: Vec<String>,
}

/// One replay on each side: those two. One on a side and several on the other: the other's of
/// the same scenario. Several on both: by scenario name, the rest only on one side.
fn paired<'a>(a: &'a [Entry], b: &'a [Entry]) -> Result<Pairs<'a>, String> {
    for (letter, side) in [("A", a), ("B", b)] {
        for (i, entry) in side.iter().enumerate() {
            if side[..i].iter().any(|e| e.name == entry.name) {
                return Err(format!(
                    "{letter} holds more than one replay of `{}` (saved with --repeat?): diff compares one replay of each scenario",
                    entry.name
                ));
            }
        }
    }
    let find = |side: &'a [Entry], name: &str, letter: &str| -> Result<&'a Entry, String> {
        side.iter().find(|e| e.name == name).ok_or_else(|| {
            let names: Vec<&str> = side.iter().map(|e| e.name.as_str()).collect();
            let nearest = names
                .iter()
                .min_by_key(|n| strsim::levenshtein(n, name))
                .filter(|n| strsim::levenshtein(n, name) <= name.len() / 3 + 1)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            format!(
                "{letter} holds no replay of `{name}`, only of {}{nearest}",
                names.join(", ")
            )
        })
    };
    let mut pairs = Pairs {
        compared: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
    };
    match (a, b) {
        ([x], [y]) => pairs.compared.push((x, y)),
        ([x], _) => pairs.compared.push((x, find(b, &x.name, "B")?)),
        (_, [y]) => pairs.compared.push((find(a, &y.name, "A")?, y)),
        _ => {
            for x in a {
                match b.iter().find(|y| y.name == x.name) {
                    Some(y) => pairs.compared.push((x, y)),
                    None => pairs.only_in_a.push(x.name.clone()),
                }
            }
            for y in b.iter().filter(|y| !a.iter().any(|x| x.name == y.name)) {
                pairs.only_in_b.push(y.name.clone());
            }
        }
    }
    Ok(pairs)
}
