//! How much a span's duration may change before a diff reports it: a share of A's duration
//! (`5%`) or an absolute duration (`10ms`). Replays run on virtual time, so the default is
//! none at all.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::clock::{parse_duration, Compact};

/// The change in duration a diff lets pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// At most this many percent of A's duration (`5%`).
    Percent(f64),
    /// At most this much (`10ms`; `0s` is exact).
    Absolute(Duration),
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::Absolute(Duration::ZERO)
    }
}

/// The largest percentage accepted: past it, any change passes and the check means nothing.
const MAX_PERCENT: f64 = 1_000.0;

/// A tolerance that does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected a share of A's duration such as `5%` (0 to 1000) or a duration such as `10ms`, `1.5s`; found `{0}`")]
pub struct ToleranceError(pub String);

impl FromStr for Tolerance {
    type Err = ToleranceError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ToleranceError(text.to_owned());
        let trimmed = text.trim();
        if let Some(number) = trimmed.strip_suffix('%') {
            let percent: f64 = number.trim().parse().map_err(|_| err())?;
            if !(0.0..=MAX_PERCENT).contains(&percent) {
                return Err(err());
            }
            return Ok(Tolerance::Percent(percent));
        }
        parse_duration(trimmed)
            .map(Tolerance::Absolute)
            .map_err(|_| err())
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Percent(p) => write!(f, "{p}%"),
            Tolerance::Absolute(d) => write!(f, "{}", Compact(*d)),
        }
    }
}

impl Tolerance {
    /// Whether a span that took `a` in A and `b` in B changed by more than this allows.
    pub fn exceeded(self, a: Duration, b: Duration) -> bool {
        let change = a.abs_diff(b);
        match self {
            Tolerance::Absolute(allowed) => change > allowed,
            Tolerance::Percent(p) => change.as_secs_f64() > a.as_secs_f64() * p / 100.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_percentages_and_durations_and_says_what_it_expected() {
        assert_eq!("5%".parse(), Ok(Tolerance::Percent(5.0)));
        assert_eq!(" 2.5 % ".parse(), Ok(Tolerance::Percent(2.5)));
        assert_eq!("10ms".parse(), Ok(Tolerance::Absolute(ms(10))));
        assert_eq!("1.5s".parse(), Ok(Tolerance::Absolute(ms(1_500))));
        for bad in ["", "%", "-1%", "5 percent", "1001%", "ten ms", "5"] {
            let e = bad.parse::<Tolerance>().unwrap_err();
            assert!(e.to_string().contains("such as `5%`"), "{bad}: {e}");
        }
        assert_eq!(Tolerance::Percent(5.0).to_string(), "5%");
        assert_eq!(Tolerance::Absolute(ms(10)).to_string(), "10ms");
        assert_eq!(Tolerance::default().to_string(), "0s");
    }

    #[test]
    fn a_change_passes_up_to_the_tolerance_and_not_past_it() {
        let five = Tolerance::Percent(5.0);
        assert!(!five.exceeded(ms(200), ms(210)));
        assert!(!five.exceeded(ms(200), ms(190)));
        assert!(five.exceeded(ms(200), ms(211)));
        assert!(
            five.exceeded(ms(0), ms(1)),
            "any change of an instant span is over a share"
        );
        let ten = Tolerance::Absolute(ms(10));
        assert!(!ten.exceeded(ms(200), ms(210)));
        assert!(ten.exceeded(ms(200), ms(189)));
        assert!(!Tolerance::default().exceeded(ms(5), ms(5)));
        assert!(Tolerance::default().exceeded(ms(5), Duration::from_micros(5_001)));
    }
}
