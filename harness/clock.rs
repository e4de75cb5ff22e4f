//! Virtual time: a cursor that travels with each flow (request, job); nothing here sleeps.
//!
//! A replay never waits. Each flow carries a `FlowClock`; a mock *declares* its latency in the
//! [`VIRTUAL_LATENCY_US`](crate::contract::headers::VIRTUAL_LATENCY_US) header of its response and the caller's cursor advances by it when the response
//! arrives. A 28-minute payment delay therefore replays in microseconds, and every timestamp is
//! a pure function of the scenario. Outside a flow (benchmarks) the time reads as zero.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The scenario's virtual zero as a Unix timestamp (2026-03-02T09:00:00Z): where wire formats
/// that carry wall-clock seconds (Stripe's `created`, its signature's `t=`) anchor virtual time.
pub(crate) const EPOCH_UNIX_S: u64 = 1_772_442_000;

/// An instant on the replay's virtual time line, in microseconds since the scenario's start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtualTime(u64);

impl VirtualTime {
    /// The scenario's start.
    pub const ZERO: VirtualTime = VirtualTime(0);

    /// The instant `us` microseconds after the scenario's start.
    pub fn from_micros(us: u64) -> Self {
        VirtualTime(us)
    }
    /// Microseconds since the scenario's start.
    pub fn as_micros(self) -> u64 {
        self.0
    }
    /// This instant moved `d` later; the last instant if that is beyond the time line.
    pub fn saturating_add(self, d: Duration) -> Self {
        VirtualTime(self.0.saturating_add(duration_us(d)))
    }
    /// This instant as Unix seconds, virtual zero being 2026-03-02T09:00:00Z (`EPOCH_UNIX_S`).
    pub fn unix_seconds(self) -> u64 {
        EPOCH_UNIX_S + self.0 / 1_000_000
    }
    /// Time elapsed since `earlier`; zero if `earlier` is later.
    pub fn since(self, earlier: VirtualTime) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for VirtualTime {
    /// `+5m`, `+4.2s`: an offset from the scenario's start.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", Compact(Duration::from_micros(self.0)))
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The cursor of one flow. Clones share the cursor. It saturates at the end of the time line,
/// as [`VirtualTime`] does: a flow that starts near `u64::MAX` µs ends there, never before it
/// started.
#[derive(Clone, Debug)]
pub(crate) struct FlowClock(Arc<AtomicU64>);

tokio::task_local! {
    static CURRENT: FlowClock;
}

impl FlowClock {
    /// A cursor at `at`.
    pub(crate) fn starting_at(at: VirtualTime) -> Self {
        FlowClock(Arc::new(AtomicU64::new(at.0)))
    }

    /// Where the cursor is.
    pub(crate) fn now(&self) -> VirtualTime {
        VirtualTime(self.0.load(Ordering::Relaxed))
    }

    /// Moves the cursor `by` later, saturating at the end of the time line.
    pub(crate) fn advance(&self, by: Duration) {
        let by = duration_us(by);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |us| {
                Some(us.saturating_add(by))
            });
    }

    /// Runs `fut` with this clock as the current flow's clock.
    pub(crate) async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

/// The current flow's virtual time; zero outside a flow.
pub(crate) fn now() -> VirtualTime {
    try_now().unwrap_or(VirtualTime::ZERO)
}

/// The current flow's virtual time, if the caller runs inside a flow.
pub(crate) fn try_now() -> Option<VirtualTime> {
    CURRENT.try_with(FlowClock::now).ok()
}

/// Advances the current flow's clock; does nothing outside a flow.
pub(crate) fn advance(by: Duration) {
    let _ = CURRENT.try_with(|clock| clock.advance(by));
}

/// A duration the way a person says it in a log line: `5 minutes`, `28 minutes`, `2 hours`,
/// `4.2s`, `200ms`.
pub(crate) struct Spoken(pub Duration);

impl fmt::Display for Spoken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = duration_us(self.0);
        let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        const MINUTE: u64 = 60_000_000;
        const HOUR: u64 = 60 * MINUTE;
        if us >= HOUR && us % HOUR == 0 {
            f.write_str(&plural(us / HOUR, "hour"))
        } else if us >= MINUTE {
            // Rounded to the nearest minute: a log line says "28 minutes", not "28m 3.1s".
            f.write_str(&plural((us + MINUTE / 2) / MINUTE, "minute"))
        } else {
            write!(f, "{}", Compact(self.0))
        }
    }
}

/// A duration in the scenario files' own notation: `200ms`, `4.2s`, `5m`, `2h`, `1h30m`.
pub(crate) struct Compact(pub Duration);

impl fmt::Display for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = duration_us(self.0);
        const MS: u64 = 1_000;
        const S: u64 = 1_000_000;
        const M: u64 = 60 * S;
        const H: u64 = 60 * M;
        match us {
            0 => f.write_str("0s"),
            _ if us % H == 0 => write!(f, "{}h", us / H),
            _ if us > H && us % M == 0 => write!(f, "{}h{}m", us / H, us % H / M),
            _ if us % M == 0 => write!(f, "{}m", us / M),
            _ if us > H => write!(f, "{}h{}", us / H, Compact(Duration::from_micros(us % H))),
            _ if us > M => write!(f, "{}m{}", us / M, Compact(Duration::from_micros(us % M))),
            _ if us >= S && us % (100 * MS) == 0 => {
                write!(f, "{}", trim_zeros(format!("{:.1}", us as f64 / S as f64)))?;
                f.write_str("s")
            }
            _ if us >= S => write!(f, "{}s", trim_zeros(format!("{:.3}", us as f64 / S as f64))),
            _ if us % MS == 0 => write!(f, "{}ms", us / MS),
            _ => write!(f, "{us}us"),
        }
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Error from [`parse_duration`], phrased for a scenario author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a duration such as `200ms`, `4.2s`, `5m`, `2h` or `1h30m`, found `{0}`")]
pub struct DurationError(pub String);

/// Parses `200ms`, `4.2s`, `5m`, `2h`, `1h30m`, `0s`. Written by hand because the usual crate
/// (`humantime`) rejects decimal values such as `4.2s`, which the seed's figures use.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total_us: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale_us: u128 = match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            _ => return Err(err()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.contains('.') || fraction.len() > 6 {
            return Err(err());
        }
        let whole: u128 = whole.parse().map_err(|_| err())?;
        let fraction_us = if fraction.is_empty() {
            0
        } else {
            let digits: u128 = fraction.parse().map_err(|_| err())?;
            digits * scale_us / 10u128.pow(fraction.len() as u32)
        };
        total_us = total_us
            .checked_add(whole.checked_mul(scale_us).ok_or_else(err)? + fraction_us)
            .ok_or_else(err)?;
        rest = tail;
    }
    u64::try_from(total_us)
        .map(Duration::from_micros)
        .map_err(|_| err())
}

/// Serde adapter: a duration written as a string in scenario notation.
pub(crate) fn deserialize_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_parse_in_scenario_notation() {
        for (text, expected) in [
            ("200ms", ms(200)),
            ("4.2s", ms(4_200)),
            ("5m", ms(300_000)),
            ("2h", ms(7_200_000)),
            ("1h30m", ms(5_400_000)),
            ("0s", ms(0)),
            ("1.5ms", Duration::from_micros(1_500)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "5",
            "5 minutes",
            "m5",
            "1.2.3s",
            "-1s",
            "5d",
            "1.0000001s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations_print_back_in_the_same_notation() {
        for text in [
            "200ms", "4.2s", "5m", "2h", "1h30m", "0s", "1.25s", "5m80ms", "2h5m3s",
        ] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(Compact(parsed).to_string(), text);
        }
    }

    #[test]
    fn spoken_durations_read_like_the_seed() {
        assert_eq!(Spoken(ms(300_000)).to_string(), "5 minutes");
        assert_eq!(Spoken(ms(60_000)).to_string(), "1 minute");
        assert_eq!(Spoken(ms(28 * 60_000 + 10_000)).to_string(), "28 minutes");
        assert_eq!(Spoken(ms(3 * 3_600_000)).to_string(), "3 hours");
        assert_eq!(Spoken(ms(4_200)).to_string(), "4.2s");
        assert_eq!(Spoken(ms(200)).to_string(), "200ms");
    }

    #[tokio::test]
    async fn a_flow_clock_advances_only_inside_its_scope_and_clones_share_it() {
        assert_eq!(now(), VirtualTime::ZERO);
        let clock = FlowClock::starting_at(VirtualTime::from_micros(10));
        let inner = clock.clone();
        clock
            .clone()
            .scope(async move {
                advance(ms(2));
                assert_eq!(now(), VirtualTime::from_micros(2_010));
                inner.advance(ms(5));
                assert_eq!(now(), VirtualTime::from_micros(7_010));
            })
            .await;
        assert_eq!(clock.now(), VirtualTime::from_micros(7_010));
        advance(ms(1));
        assert_eq!(now(), VirtualTime::ZERO);
    }

    #[test]
    fn a_flow_clock_saturates_at_the_end_of_time_as_virtual_time_does() {
        let start = VirtualTime::from_micros(u64::MAX - 1_000);
        let clock = FlowClock::starting_at(start);
        clock.advance(ms(50));
        assert_eq!(clock.now(), start.saturating_add(ms(50)));
        assert_eq!(clock.now(), VirtualTime::from_micros(u64::MAX));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), VirtualTime::from_micros(u64::MAX));
    }
}
