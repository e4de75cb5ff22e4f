//! The real instant a replay's virtual time is anchored at, so exported timestamps look real in
//! a log store or a tracing UI while staying deterministic: the anchor is stated, never read
//! from the wall clock.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::clock::{self, VirtualTime};

/// The anchor when none is given: virtual time's one zero, `clock::EPOCH_UNIX_S`
/// (2026-03-02T09:00:00Z), where Stripe's wall-clock seconds are anchored too. A fixed instant,
/// so output is byte-identical across runs.
pub const DEFAULT_EPOCH: Epoch = Epoch {
    unix_us: clock::EPOCH_UNIX_S as i64 * 1_000_000,
};

/// Anchors outside these years are almost certainly typos, and would not fit OTLP's unsigned
/// nanoseconds since 1970 anyway.
const EARLIEST_YEAR: i32 = 1970;
const LATEST_YEAR: i32 = 2200;

/// An instant, in microseconds since the Unix epoch, that virtual time zero maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch {
    unix_us: i64,
}

/// Why a `--epoch` text is no anchor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EpochError {
    /// Not RFC 3339.
    #[error("`{text}` is not an RFC 3339 instant such as {DEFAULT_EPOCH}: {reason}")]
    Syntax {
        /// The `--epoch` text as given, untrimmed.
        text: String,
        /// What the RFC 3339 parser said.
        reason: String,
    },
    /// A valid instant whose UTC year lies outside 1970–2200.
    #[error("`{text}` lies outside {EARLIEST_YEAR}–{LATEST_YEAR}")]
    OutOfRange {
        /// The `--epoch` text as given, untrimmed.
        text: String,
    },
}

impl Default for Epoch {
    fn default() -> Self {
        DEFAULT_EPOCH
    }
}

impl Epoch {
    /// Parses an RFC 3339 instant with any offset, such as `2026-03-02T10:00:00+01:00`.
    pub fn parse(text: &str) -> Result<Self, EpochError> {
        let parsed = DateTime::parse_from_rfc3339(text.trim()).map_err(|e| EpochError::Syntax {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        let utc = parsed.with_timezone(&Utc);
        let year = chrono::Datelike::year(&utc);
        if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
            return Err(EpochError::OutOfRange {
                text: text.to_owned(),
            });
        }
        Ok(Epoch {
            unix_us: utc.timestamp_micros(),
        })
    }

    /// The instant `unix_us` microseconds after the Unix epoch: an anchor read off data (the
    /// first span a service sent) rather than typed, so unchecked for typos.
    pub fn at_unix_us(unix_us: i64) -> Epoch {
        Epoch { unix_us }
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_us(self) -> i64 {
        self.unix_us
    }

    /// The anchor `by` later: where the next of several repeated replays starts.
    pub fn later_by(self, by: Duration) -> Epoch {
        let by_us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        Epoch {
            unix_us: self.unix_us.saturating_add(by_us),
        }
    }

    /// Microseconds since the Unix epoch of a virtual instant.
    pub(crate) fn unix_us_at(self, at: VirtualTime) -> i64 {
        let at_us = i64::try_from(at.as_micros()).unwrap_or(i64::MAX);
        self.unix_us.saturating_add(at_us)
    }

    /// Nanoseconds since the Unix epoch, as OTLP wants them.
    pub(crate) fn unix_nanos_at(self, at: VirtualTime) -> u64 {
        u64::try_from(self.unix_us_at(at))
            .unwrap_or(0)
            .saturating_mul(1_000)
    }

    /// `2026-03-02T09:05:00.080000Z`: RFC 3339, UTC, microsecond precision.
    pub fn rfc3339_at(self, at: VirtualTime) -> String {
        format_unix_us(self.unix_us_at(at))
    }
}

impl fmt::Display for Epoch {
    /// RFC 3339 in UTC, with as many fractional digits as the instant needs (none for whole
    /// seconds): `2026-03-02T09:00:00Z`, as `--epoch` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_micros(self.unix_us) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "{}", self.unix_us),
        }
    }
}

/// RFC 3339 in UTC with microseconds, the timestamp shape of the NDJSON export.
pub(crate) fn format_unix_us(unix_us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(unix_us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => unix_us.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into microseconds since the Unix epoch.
pub fn parse_unix_us(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_anchor_parses_and_formats_back() {
        let epoch = Epoch::default();
        assert_eq!(epoch, Epoch::parse("2026-03-02T09:00:00Z").unwrap());
        assert_eq!(epoch.to_string(), "2026-03-02T09:00:00Z");
        assert_eq!(Epoch::parse(&epoch.to_string()), Ok(epoch));
        assert_eq!(
            VirtualTime::ZERO.unix_seconds() as i64 * 1_000_000,
            epoch.unix_us()
        );
        let at = VirtualTime::from_micros(300_080_000);
        assert_eq!(epoch.rfc3339_at(at), "2026-03-02T09:05:00.080000Z");
        assert_eq!(
            epoch.unix_nanos_at(at),
            (epoch.unix_us() as u64 + 300_080_000) * 1_000
        );
        assert_eq!(
            parse_unix_us(&epoch.rfc3339_at(at)),
            Some(epoch.unix_us_at(at))
        );
    }

    #[test]
    fn offsets_convert_to_utc_and_nonsense_is_rejected() {
        let a = Epoch::parse("2026-03-02T10:00:00+01:00").unwrap();
        assert_eq!(a, Epoch::default());
        assert!(matches!(
            Epoch::parse("2026-03-02 nine o'clock"),
            Err(EpochError::Syntax { .. })
        ));
        assert!(matches!(
            Epoch::parse("1969-12-31T23:59:59Z"),
            Err(EpochError::OutOfRange { .. })
        ));
    }
}
