//! Timings by replay: the service itself is the model of when each line is written. Every time
//! in a replay is a sum of step times, store latencies and answer latencies, so the fit replays
//! the draft once as guessed and once per parameter moved by [`PROBE`], reads how much each
//! line (and, from OTLP/JSON, each span's start and end) moved, solves the linear system for the
//! times the incident shows, and replays the result to check it, line by line.
//!
//! A parameter no time depends on keeps its guess; one that cannot be told apart from an
//! earlier one (a cron run's time and the store's latency before its first line) is explained
//! by the earlier (see [`Draft::params`]), and said so.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::draft::Draft;
use super::read::Incident;
use crate::runner::{replay, ReplayOptions};
use crate::scenario::Scenario;

/// How far a parameter is moved to see what it moves.
const PROBE: Duration = Duration::from_millis(1);
/// Replays of the solved draft, each re-linearised where the last one was not exact.
const ROUNDS: usize = 3;

/// Where an observed time is: which trace, which span (its operation and its rank among that
/// trace's spans of the operation), and what of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Line {
        trace: usize,
        op: String,
        rank: usize,
        line: usize,
    },
    Start {
        trace: usize,
        op: String,
        rank: usize,
    },
    End {
        trace: usize,
        op: String,
        rank: usize,
    },
    Untraced(usize),
}

/// Every time an incident shows, by key, from its first instant.
fn observations(incident: &Incident) -> BTreeMap<Key, i64> {
    let mut out = BTreeMap::new();
    for (t, trace) in incident.traces.iter().enumerate() {
        let mut ranks: BTreeMap<&str, usize> = BTreeMap::new();
        for span in &trace.spans {
            let rank = ranks.entry(span.op.as_str()).or_default();
            let op = span.op.clone();
            if let Some((start, end)) = span.times {
                out.insert(
                    Key::Start {
                        trace: t,
                        op: op.clone(),
                        rank: *rank,
                    },
                    start,
                );
                out.insert(
                    Key::End {
                        trace: t,
                        op: op.clone(),
                        rank: *rank,
                    },
                    end,
                );
            }
            for (i, line) in span.lines.iter().enumerate() {
                if let Some(at) = line.at {
                    out.insert(
                        Key::Line {
                            trace: t,
                            op: op.clone(),
                            rank: *rank,
                            line: i,
                        },
                        at,
                    );
                }
            }
            *rank += 1;
        }
    }
    for (i, line) in incident.untraced.iter().enumerate() {
        if let Some(at) = line.at {
            out.insert(Key::Untraced(i), at);
        }
    }
    let t0 = out.values().copied().min().unwrap_or(0);
    for v in out.values_mut() {
        *v -= t0;
    }
    out
}

/// Why a draft's replay cannot be compared with the incident.
#[derive(Debug)]
pub(crate) enum FitError {
    /// The draft is not a valid scenario (a bug of the import: it writes what it parses).
    Invalid(String),
    /// The replay failed.
    Replay(String),
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::Invalid(e) => write!(f, "the imported scenario does not parse: {e}"),
            FitError::Replay(e) => write!(f, "the imported scenario does not replay: {e}"),
        }
    }
}

/// The draft's replay, as the incident's form shows it.
pub(crate) fn replayed(draft: &Draft, span_times: bool) -> Result<Incident, FitError> {
    let text = draft.render("", "fit");
    let scenario = Scenario::parse(Path::new("imported.toml"), &text)
        .map_err(|e| FitError::Invalid(format!("{e}\n{text}")))?;
    let outcome =
        replay(&scenario, ReplayOptions::default()).map_err(|e| FitError::Replay(e.to_string()))?;
    Ok(Incident::of_captured(&outcome.captured, span_times))
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What the fit found.
pub(crate) struct Fitted {
    /// Times the replay shows otherwise than the incident, described; empty when it matches.
    pub(crate) mismatches: Vec<String>,
    /// Parameters nothing in the incident measures, described.
    pub(crate) unmeasured: Vec<String>,
}

/// Sets the draft's times so that its replay shows the incident's.
pub(crate) fn fit(draft: &mut Draft, incident: &Incident) -> Result<Fitted, FitError> {
    let target = observations(incident);
    let params = draft.params();
    let mut unmeasured = Vec::new();
    for _ in 0..ROUNDS {
        let base = observations(&replayed(draft, incident.span_times)?);
        // Not the same lines: times cannot fix that; the final comparison says what differs.
        if differences(&target, &base).is_empty() || target.keys().ne(base.keys()) {
            break;
        }
        let keys: Vec<&Key> = target.keys().collect();
        let mut columns: Vec<Vec<i64>> = Vec::new();
        for &param in &params {
            let mut moved = draft.clone();
            moved.set(param, draft.get(param) + PROBE);
            let probed = observations(&replayed(&moved, incident.span_times)?);
            let column = keys
                .iter()
                .map(|k| {
                    let delta = probed.get(*k).copied().unwrap_or(0) - base[*k];
                    // Every time is a sum of parameters: a probe moves it by whole probes.
                    (delta as f64 / us(PROBE) as f64).round() as i64
                })
                .collect();
            columns.push(column);
        }
        let rhs: Vec<i64> = keys.iter().map(|k| target[*k] - base[*k]).collect();
        let (solution, free) = solve(&columns, &rhs);
        unmeasured = free.iter().map(|&j| draft.describe(params[j])).collect();
        for (j, delta) in solution.into_iter().enumerate() {
            let value = us(draft.get(params[j])) + delta;
            draft.set(
                params[j],
                Duration::from_micros(u64::try_from(value.max(0)).unwrap_or(0)),
            );
        }
    }
    let last = observations(&replayed(draft, incident.span_times)?);
    let mismatches = differences(&target, &last);
    Ok(Fitted {
        mismatches,
        unmeasured,
    })
}

/// How `got` differs from `want`, in words.
fn differences(want: &BTreeMap<Key, i64>, got: &BTreeMap<Key, i64>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, w) in want {
        match got.get(key) {
            None => out.push(format!("{} is not in the replay", describe(key))),
            Some(g) if g != w => out.push(format!(
                "{} is at +{}us in the log, +{g}us in the replay",
                describe(key),
                w
            )),
            Some(_) => {}
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("the replay has {} the log does not", describe(key)));
    }
    out
}

fn describe(key: &Key) -> String {
    match key {
        Key::Line {
            trace,
            op,
            rank,
            line,
        } => format!(
            "line {} of {op} span {} in trace {}",
            line + 1,
            rank + 1,
            trace + 1
        ),
        Key::Start { trace, op, rank } => {
            format!("the start of {op} span {} in trace {}", rank + 1, trace + 1)
        }
        Key::End { trace, op, rank } => {
            format!("the end of {op} span {} in trace {}", rank + 1, trace + 1)
        }
        Key::Untraced(i) => format!("untraced line {}", i + 1),
    }
}

/// Solves `Σ_j columns[j][i] · x_j = rhs[i]` exactly, preferring earlier unknowns: an unknown
/// whose column adds nothing to those before it is free and stays 0. Returns the solution and
/// the free unknowns. Rows left inconsistent are for the replay check to report.
///
/// Written here rather than taken from a linear-algebra crate: the systems are a few dozen
/// small integers, solved exactly in rationals, with a preference order no least-squares
/// solver offers.
fn solve(columns: &[Vec<i64>], rhs: &[i64]) -> (Vec<i64>, Vec<usize>) {
    let n = columns.len();
    let m = rhs.len();
    // Rows of [A | b] in rationals (numerator, denominator).
    let mut rows: Vec<Vec<Ratio>> = (0..m)
        .map(|i| {
            let mut row: Vec<Ratio> = (0..n).map(|j| Ratio::int(columns[j][i])).collect();
            row.push(Ratio::int(rhs[i]));
            row
        })
        .collect();
    let mut pivots: Vec<(usize, usize)> = Vec::new();
    let mut free = Vec::new();
    let mut next_row = 0;
    for col in 0..n {
        let Some(r) = (next_row..m).find(|&r| !rows[r][col].is_zero()) else {
            free.push(col);
            continue;
        };
        rows.swap(next_row, r);
        let pivot = rows[next_row][col];
        for value in &mut rows[next_row][col..] {
            *value = value.div(pivot);
        }
        let pivot_row = rows[next_row].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            let factor = row[col];
            if r != next_row && !factor.is_zero() {
                for (value, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *value = value.sub(p.mul(factor));
                }
            }
        }
        pivots.push((next_row, col));
        next_row += 1;
    }
    let mut x = vec![0i64; n];
    for (r, col) in pivots {
        x[col] = rows[r][n].round();
    }
    (x, free)
}

/// An exact fraction, kept reduced.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ratio(i128, i128);

impl Ratio {
    fn int(n: i64) -> Ratio {
        Ratio(i128::from(n), 1)
    }
    fn is_zero(self) -> bool {
        self.0 == 0
    }
    fn reduced(n: i128, d: i128) -> Ratio {
        let g = gcd(n.abs(), d.abs()).max(1);
        let s = if d < 0 { -1 } else { 1 };
        Ratio(s * n / g, s * d / g)
    }
    fn mul(self, o: Ratio) -> Ratio {
        Ratio::reduced(self.0 * o.0, self.1 * o.1)
    }
    fn div(self, o: Ratio) -> Ratio {
        Ratio::reduced(self.0 * o.1, self.1 * o.0)
    }
    fn sub(self, o: Ratio) -> Ratio {
        Ratio::reduced(self.0 * o.1 - o.0 * self.1, self.1 * o.1)
    }
    fn round(self) -> i64 {
        let q = (self.0 as f64 / self.1 as f64).round();
        q as i64
    }
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_sums_and_leaves_what_cannot_be_told_apart_to_the_earlier_unknown() {
        // t1 = a, t2 = a + b, t3 = a + b + c; and d only ever with a: d is free.
        let columns = vec![vec![1, 1, 1], vec![0, 1, 1], vec![0, 0, 1], vec![1, 1, 1]];
        let (x, free) = solve(&columns, &[5, 125, 4_325]);
        assert_eq!(x, [5, 120, 4_200, 0]);
        assert_eq!(free, [3]);
    }
}
