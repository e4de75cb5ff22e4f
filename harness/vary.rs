//! Repeated replays with seeded latency jitter (`run --repeat N --vary-latency`), so the seed's
//! queries have real distributions to summarise: every route of every mock varies. Works on a
//! copy of the public `Scenario`; the runner replays the copies like any other scenario.

use std::time::Duration;

use crate::mocks::MockBehaviour;
use crate::scenario::Scenario;
use crate::trace::splitmix64;

/// At most this many repetitions of one scenario in one run.
pub const MAX_REPEAT: usize = 100_000;
/// Jitter scales a mock's declared latency by a factor in this range, log-uniformly, so slow
/// outliers are as likely as fast ones in ratio terms (a latency is as likely to halve as to
/// double).
pub(crate) const JITTER_FACTOR_RANGE: (f64, f64) = (0.5, 4.0);

/// Repetition `index` (0-based) of `scenario`, for a run of `count` repetitions.
///
/// Repetition 0 keeps the scenario's seed, so `--repeat 1` replays the file as written; the
/// others get seeds derived from it, hence their own trace ids. With `vary_latency`, every mock
/// latency is scaled by a factor drawn from the repetition's seed, and the scenario's `duration`
/// tests are dropped: they pin the latencies as written, which jitter changes on purpose.
pub fn repetition(scenario: &Scenario, index: usize, count: usize, vary_latency: bool) -> Scenario {
    let mut copy = scenario.clone();
    if count > 1 {
        let width = count.to_string().len();
        copy.name = format!("{}-{:0width$}", scenario.name, index + 1);
    }
    if index > 0 {
        copy.seed = splitmix64(scenario.seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    }
    if vary_latency {
        // Main routes draw first, then the other routes: adding a route to one mock leaves
        // every main route's factor as it was.
        let seed = copy.seed;
        let mut draw = 0u64;
        let mut jitter = |behaviour: &mut MockBehaviour| {
            draw += 1;
            let factor = jitter_factor(seed, draw);
            let latency = &mut behaviour.latency;
            *latency = Duration::from_secs_f64(latency.as_secs_f64() * factor);
        };
        for spec in copy.mocks.values_mut() {
            spec.respond.iter_mut().for_each(|b| jitter(b.get_mut()));
        }
        for spec in copy.mocks.values_mut() {
            let routes = spec.routes.values_mut().flat_map(|list| list.get_mut());
            routes.for_each(|b| jitter(b.get_mut()));
        }
        for assertion in &mut copy.expect {
            assertion.duration = None;
        }
    }
    copy
}

/// A factor in [`JITTER_FACTOR_RANGE`], a pure function of the seed and the draw number.
fn jitter_factor(seed: u64, draw: u64) -> f64 {
    let bits = splitmix64(seed ^ splitmix64(draw));
    // The top 53 bits make a uniform double in [0, 1).
    let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
    let (low, high) = JITTER_FACTOR_RANGE;
    (low.ln() + unit * (high.ln() - low.ln())).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TEXT: &str = "description = \"d\"\nseed = 9\n[mocks.google]\nkind = \"google_calendar\"\nrespond = [{ status = 200, latency = \"100ms\" }]\n[[timeline]]\nat = \"0s\"\nbook = { event_type_id = 1 }\n";

    fn latency(s: &Scenario) -> Duration {
        s.mocks["google"].respond[0].get_ref().latency
    }

    #[test]
    fn repetitions_get_their_own_seeds_and_jittered_latencies_within_range() {
        let scenario = Scenario::parse(Path::new("s.toml"), TEXT).unwrap();
        let first = repetition(&scenario, 0, 1, false);
        assert_eq!((first.name.as_str(), first.seed), ("s", 9));
        assert_eq!(latency(&first), Duration::from_millis(100));
        let pinned = Scenario::parse(
            Path::new("s.toml"),
            &format!("{TEXT}[[expect]]\nselect = 'span[op=\"booking_creation\"]'\nduration = \"== 100ms\"\n"),
        )
        .unwrap();
        assert!(pinned.expect[0].duration.is_some());
        assert!(repetition(&pinned, 0, 1, false).expect[0]
            .duration
            .is_some());
        assert!(repetition(&pinned, 0, 1, true).expect[0].duration.is_none());

        let copies: Vec<Scenario> = (0..50)
            .map(|i| repetition(&scenario, i, 50, true))
            .collect();
        assert_eq!(copies[0].name, "s-01");
        assert_eq!(copies[49].name, "s-50");
        let seeds: std::collections::HashSet<u64> = copies.iter().map(|c| c.seed).collect();
        assert_eq!(seeds.len(), 50);
        let latencies: Vec<Duration> = copies.iter().map(latency).collect();
        assert!(latencies
            .iter()
            .all(|l| *l >= Duration::from_millis(50) && *l <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = latencies.iter().collect();
        assert!(distinct.len() > 40, "jitter barely varies: {latencies:?}");
        // Deterministic: the same repetition twice is the same scenario.
        assert_eq!(latency(&repetition(&scenario, 7, 50, true)), latencies[7]);
    }
}
