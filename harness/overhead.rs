//! `trace-harness overhead`: what tracing costs the booking flow on this machine, measured as
//! the ratio of the same flow traced and untraced, interleaved round by round so that drift in
//! the machine's load hits both sides alike.
//!
//! This is the one place that reads real clocks: it measures real cost, it replays nothing.
//! Two are read. Wall time is what a user waits; the process's CPU time (all its threads: the
//! caller, the service, the mocks) is what the flow costs, and unlike wall time it does not
//! move when other programs load the machine, so the ratio is taken on it.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::runner::load::{FlowRig, LoadError, LoadOptions, Transport};
use crate::runner::ServiceSpec;
use crate::scenario::Scenario;

/// Flows per round and side: long enough to dwarf the clock's resolution, short enough that
/// many rounds give the median something to choose from.
pub const ROUND_FLOWS: usize = 25;
/// A bound on one measurement: 2 × this many flows at most.
pub(crate) const MAX_FLOWS: usize = 1_000_000;
/// Rounds a pair of rigs runs before both are replaced by fresh ones (1 000 flows a side).
///
/// A rig that has served a few thousand flows can settle into a costlier state, on one side
/// only, and its heap keeps growing (wiremock, for one, keeps a copy of every request a mock
/// matched); a long run then measures that step instead of tracing. Fresh rigs every segment
/// keep every round in the state short runs measure (benches/NOTES.md, the rig drift).
pub const SEGMENT_ROUNDS: usize = 40;

/// What `overhead` measures.
#[derive(Clone, Debug)]
pub struct OverheadOptions {
    /// Flows per side (traced, untraced).
    pub flows: usize,
    /// How the flows reach the service.
    pub transport: Transport,
    /// Both sides untraced (an A/A run): the "overhead" it prints is this machine's noise floor.
    pub noise_floor: bool,
    /// Measure this service instead of the in-process one: a process per side (traced, and
    /// with `OTEL_SDK_DISABLED=true`), reached over HTTP, its own CPU time measured.
    pub service: Option<ServiceSpec>,
}

/// Why `overhead` could not measure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OverheadError {
    /// `--flows` out of range.
    #[error("--flows must be between {ROUND_FLOWS} and {MAX_FLOWS}, got {0}")]
    Flows(usize),
    /// A rig did not start or a batch did not run.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// Bookings failed, so the sides did not do the same work.
    #[error("{flows} of the {side} flows failed (the booking did not answer 201 Created)")]
    FailedFlows {
        /// `traced` or `untraced`.
        side: &'static str,
        /// How many failed.
        flows: usize,
    },
}

/// The median per-flow cost of each side, and what it says about tracing.
#[derive(Clone, Debug)]
pub(crate) struct OverheadReport {
    /// The scenario whose booking was repeated.
    pub scenario: String,
    /// How the flows reached the service.
    pub transport: Transport,
    /// The service file measured, when not the in-process service.
    pub service: Option<String>,
    /// Both sides ran untraced.
    pub noise_floor: bool,
    /// Rounds per side.
    pub rounds: usize,
    /// Flows per round and side.
    pub flows_per_round: usize,
    /// Per-flow CPU time of the whole process, in microseconds.
    pub untraced: Spread,
    /// Per-flow CPU time of the whole process, traced, in microseconds.
    pub traced: Spread,
    /// Round by round traced/untraced CPU time: its median is the overhead, its quartiles the
    /// noise.
    pub ratio: Spread,
    /// Per-flow wall time, in microseconds, for reference.
    pub untraced_wall: Spread,
    /// Per-flow wall time, traced, in microseconds.
    pub traced_wall: Spread,
}

/// Median and quartiles of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    /// The first quartile.
    pub p25: f64,
    /// The median.
    pub median: f64,
    /// The third quartile.
    pub p75: f64,
}

impl Spread {
    /// `None` for an empty sample.
    pub(crate) fn of(sample: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = sample.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            p25: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            p75: quantile(&sorted, 0.75),
        })
    }
}

/// Linear interpolation between closest ranks, on sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Runs `options.flows` flows of `scenario` on each side in rounds of [`ROUND_FLOWS`],
/// alternating which side goes first, on a fresh pair of rigs every [`SEGMENT_ROUNDS`] rounds,
/// the pair started in alternating order (see `start_pair`). `on_round(done, total)` reports
/// progress, from `(0, total)` once both sides are up and warm.
pub(crate) fn measure(
    scenario: &Scenario,
    options: &OverheadOptions,
    on_round: impl FnMut(usize, usize),
) -> Result<OverheadReport, OverheadError> {
    measure_in_segments(scenario, options, SEGMENT_ROUNDS, on_round)
}

fn measure_in_segments(
    scenario: &Scenario,
    options: &OverheadOptions,
    segment_rounds: usize,
    mut on_round: impl FnMut(usize, usize),
) -> Result<OverheadReport, OverheadError> {
    if !(ROUND_FLOWS..=MAX_FLOWS).contains(&options.flows) {
        return Err(OverheadError::Flows(options.flows));
    }
    let rig = |tracing| {
        FlowRig::start_against(
            scenario,
            LoadOptions {
                tracing,
                transport: options.transport,
                // Nothing here reads what the mocks received.
                record_mock_requests: false,
            },
            options.service.as_ref(),
        )
    };
    let rounds = options.flows / ROUND_FLOWS;
    let mut per_flow_us = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut wall_us = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut round = 0;
    let mut segment = 0;
    while round < rounds {
        let mut sides = start_pair(segment, !options.noise_floor, rig)?;
        segment += 1;
        // One round each, unmeasured: connection pools, SQLite's cache and the allocator warm up.
        for side in &mut sides {
            run_round(side, "warm-up")?;
        }
        if round == 0 {
            on_round(0, rounds);
        }
        for _ in 0..segment_rounds.min(rounds - round) {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let cost = run_round(&mut sides[i], if i == 0 { "untraced" } else { "traced" })?;
                per_flow_us[i].push(cost.cpu.as_secs_f64() * 1e6 / ROUND_FLOWS as f64);
                wall_us[i].push(cost.wall.as_secs_f64() * 1e6 / ROUND_FLOWS as f64);
            }
            round += 1;
            on_round(round, rounds);
        }
        let [untraced_rig, traced_rig] = sides;
        untraced_rig.stop();
        traced_rig.stop();
    }
    let ratios: Vec<f64> = per_flow_us[1]
        .iter()
        .zip(&per_flow_us[0])
        .map(|(traced, untraced)| traced / untraced)
        .collect();
    let spread = |sample: &[f64]| {
        Spread::of(sample).unwrap_or(Spread {
            p25: f64::NAN,
            median: f64::NAN,
            p75: f64::NAN,
        })
    };
    Ok(OverheadReport {
        scenario: scenario.name.clone(),
        transport: options.transport,
        service: options
            .service
            .as_ref()
            .map(|spec| spec.path.display().to_string()),
        noise_floor: options.noise_floor,
        rounds,
        flows_per_round: ROUND_FLOWS,
        untraced: spread(&per_flow_us[0]),
        traced: spread(&per_flow_us[1]),
        ratio: spread(&ratios),
        untraced_wall: spread(&wall_us[0]),
        traced_wall: spread(&wall_us[1]),
    })
}

/// Starts a segment's two rigs, `[untraced, traced]` (`traced`: whether the second side
/// traces), the untraced one first in even segments and second in odd ones.
///
/// The rig started second costs a little more, whatever it runs (A/A runs show it; figures in
/// benches/NOTES.md). Starting the untraced rig first every time charged that bias to tracing;
/// alternating cancels it over an even number of segments (the default 4 000 flows are four).
fn start_pair<R, E>(
    segment: usize,
    traced: bool,
    mut start: impl FnMut(bool) -> Result<R, E>,
) -> Result<[R; 2], E> {
    if segment % 2 == 0 {
        let untraced = start(false)?;
        Ok([untraced, start(traced)?])
    } else {
        let traced = start(traced)?;
        Ok([start(false)?, traced])
    }
}

/// What one round cost.
struct Cost {
    wall: Duration,
    cpu: Duration,
}

/// CPU time consumed so far by every thread of this process.
#[cfg(unix)]
fn process_cpu_time() -> Duration {
    // An unreadable clock reads zero, and so does the CPU cost of the round that asked.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or(Duration::ZERO)
}

/// CPU time consumed so far by every thread of process `pid`, from Linux's per-thread
/// `schedstat` (nanoseconds on the CPU; `/proc/PID/stat`'s clock ticks are too coarse for a
/// round of a few tens of milliseconds). Threads that have exited are not counted: a service's
/// threads live as long as it does. Unreadable, it reads zero (see [`run_round`]).
fn service_cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| {
            let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// Without a process CPU clock the wall clock stands in (see [`run_round`]).
#[cfg(not(unix))]
fn process_cpu_time() -> Duration {
    Duration::ZERO
}

/// One round of [`ROUND_FLOWS`] flows, one after another; the store is emptied afterwards,
/// outside the timing, so memory stays flat over long runs.
fn run_round(rig: &mut FlowRig, side: &'static str) -> Result<Cost, OverheadError> {
    // The CPU a round costs the service: this process's when it runs in-process, the service
    // process's own (every thread) when it is external.
    let service = rig.service_pid();
    let cpu_time = || match service {
        Some(pid) => service_cpu_time(pid),
        None => process_cpu_time(),
    };
    let (start, cpu_start) = (Instant::now(), cpu_time());
    let mut failed = 0;
    for _ in 0..ROUND_FLOWS {
        failed += rig.run(1)?.failed_flows;
    }
    let wall = start.elapsed();
    let cpu = match cpu_time().saturating_sub(cpu_start) {
        Duration::ZERO => wall,
        cpu => cpu,
    };
    rig.store().clear();
    if failed > 0 {
        return Err(OverheadError::FailedFlows {
            side,
            flows: failed,
        });
    }
    Ok(Cost { wall, cpu })
}

/// The default scenario: the seed's first, whose flow crosses every boundary the service has.
pub fn default_scenario() -> PathBuf {
    PathBuf::from("scenarios/calendar_failure.toml")
}

impl fmt::Display for OverheadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match (&self.service, self.transport) {
            (Some(file), _) => format!("against {file} (its own CPU time)"),
            (None, Transport::Http) => "over loopback HTTP".to_owned(),
            (None, Transport::InProcess) => "in-process".to_owned(),
        };
        writeln!(
            f,
            "{} flow {transport}: {} flows per side in {} interleaved rounds of {}",
            self.scenario,
            self.rounds * self.flows_per_round,
            self.rounds,
            self.flows_per_round
        )?;
        if self.noise_floor {
            writeln!(
                f,
                "  A/A run: both sides untraced, so the overhead below is noise, not tracing"
            )?;
        }
        // In an A/A run the second side is untraced too: named for what it is.
        let (first, second) = if self.noise_floor {
            ("untraced A", "untraced B")
        } else {
            ("untraced", "traced")
        };
        for (name, cpu, wall) in [
            (first, self.untraced, self.untraced_wall),
            (second, self.traced, self.traced_wall),
        ] {
            writeln!(
                f,
                "  {name:<10} {:>8.1} µs/flow CPU  (median; quartiles {:.1}–{:.1}); wall {:.1} µs/flow",
                cpu.median, cpu.p25, cpu.p75, wall.median
            )?;
        }
        let pct = |r: f64| (r - 1.0) * 100.0;
        writeln!(
            f,
            "  overhead  {:>+8.1} %        (median of the per-round traced/untraced ratios {:.3}; their quartiles {:+.1} % to {:+.1} %)",
            pct(self.ratio.median),
            self.ratio.median,
            pct(self.ratio.p25),
            pct(self.ratio.p75)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sample: &[f64], expected: Option<(f64, f64, f64)>) {
        let got = Spread::of(sample).map(|s| (s.p25, s.median, s.p75));
        assert_eq!(got, expected, "sample {sample:?}");
    }

    fn the_default_scenario() -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(default_scenario());
        Scenario::load(&path).unwrap()
    }

    #[test]
    fn spreads_are_interpolated_quartiles() {
        check(&[], None);
        check(&[3.0], Some((3.0, 3.0, 3.0)));
        check(&[4.0, 1.0, 3.0, 2.0, 5.0], Some((2.0, 3.0, 4.0)));
        check(&[1.0, 2.0], Some((1.25, 1.5, 1.75)));
        check(&[f64::NAN, 2.0], Some((2.0, 2.0, 2.0)));
    }

    #[test]
    fn a_short_measurement_reports_both_sides_and_a_ratio() {
        let scenario = the_default_scenario();
        let options = OverheadOptions {
            flows: ROUND_FLOWS * 2,
            transport: Transport::InProcess,
            noise_floor: false,
            service: None,
        };
        let mut seen = Vec::new();
        let report = measure(&scenario, &options, |done, total| seen.push((done, total))).unwrap();
        assert_eq!(seen, vec![(0, 2), (1, 2), (2, 2)]);
        assert!(report.untraced.median > 0.0 && report.traced.median > 0.0);
        assert!(report.ratio.median.is_finite());
        let text = report.to_string();
        assert!(
            text.contains("µs/flow") && text.contains("overhead"),
            "{text}"
        );
    }

    #[test]
    fn a_measurement_longer_than_a_segment_counts_every_round_once() {
        let scenario = the_default_scenario();
        let options = OverheadOptions {
            flows: ROUND_FLOWS * 3,
            transport: Transport::InProcess,
            noise_floor: true,
            service: None,
        };
        let mut seen = Vec::new();
        let report = measure_in_segments(&scenario, &options, 2, |done, total| {
            seen.push((done, total))
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 3), (1, 3), (2, 3), (3, 3)]);
        assert_eq!(report.rounds, 3);
        assert!(report.ratio.median.is_finite());
    }

    #[test]
    fn segments_alternate_which_rig_starts_first_and_keep_the_sides_in_place() {
        let mut started = Vec::new();
        let pairs: Vec<[bool; 2]> = (0..4)
            .map(|segment| {
                start_pair(segment, true, |tracing| {
                    started.push(tracing);
                    Ok::<_, ()>(tracing)
                })
                .unwrap()
            })
            .collect();
        assert_eq!(
            started,
            [false, true, true, false, false, true, true, false],
            "the untraced rig starts first in even segments, second in odd ones"
        );
        assert!(
            pairs.iter().all(|&pair| pair == [false, true]),
            "sides stay [untraced, traced]: {pairs:?}"
        );
    }

    #[test]
    fn too_few_flows_are_refused_with_the_range() {
        let scenario = the_default_scenario();
        let options = OverheadOptions {
            flows: 3,
            transport: Transport::Http,
            noise_floor: false,
            service: None,
        };
        let err = measure(&scenario, &options, |_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("--flows must be between {ROUND_FLOWS} and {MAX_FLOWS}, got 3")
        );
    }
}
