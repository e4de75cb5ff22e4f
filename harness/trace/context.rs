//! `TraceContext` and the W3C Trace Context Level 2 `traceparent` codec; `tracestate` is
//! [`TraceState`](super::tracestate::TraceState).
//!
//! Written by hand rather than taken from `opentelemetry`'s propagator: the harness must judge
//! other code's headers strictly (the propagator accepts uppercase hex, for instance) and the
//! codec sits on every simulated request, so it must not allocate.

use std::fmt;

use super::hex::{decode_hex, encode_hex};
use super::ids::{SpanId, TraceId};
use super::tracestate::TraceState;

/// The `traceparent` header's name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header's name.
pub const TRACESTATE: &str = "tracestate";
/// A `traceparent` longer than this is not parsed. Versions above `00` may grow ("Pass-through
/// services ... should expect that headers may have larger size limits in the future and only
/// disallow prohibitively large headers"); this is our "prohibitively large".
pub const MAX_TRACEPARENT_CHARS: usize = 512;

/// The `trace-flags` byte. Only `sampled` (bit 0) and Level 2's `random` (bit 1) are defined;
/// the spec says the other bits MUST be set to zero when a context is propagated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// `sampled`: the caller may have recorded the trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// Level 2's `random-trace-id`: the trace id's right-most 7 bytes are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    /// The flags of a trace we start: `sampled` and Level 2's `random-trace-id`. Setting the
    /// latter promises that "at least the right-most 7 bytes of the `trace-id` MUST be selected
    /// randomly (or pseudo-randomly) with uniform distribution over the interval
    /// [0..2^56-1]"; both id generators keep it (the seeded one is SplitMix64, a PRNG), and
    /// Level 2 asks a participant that generates ids that way to set the flag.
    pub const NEW_TRACE: TraceFlags = TraceFlags(0x03);
    const KNOWN: u8 = 0x03;

    /// The flags as they arrived, unknown bits included.
    pub fn from_byte(byte: u8) -> Self {
        TraceFlags(byte)
    }
    /// The byte as it is written, unknown bits included.
    pub fn to_byte(self) -> u8 {
        self.0
    }
    /// Whether `sampled` is set.
    pub fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }
    /// Whether `random-trace-id` is set.
    pub fn is_random(self) -> bool {
        self.0 & Self::RANDOM.0 != 0
    }
    /// The flags a vendor may pass on: unknown bits cleared.
    pub fn propagated(self) -> Self {
        TraceFlags(self.0 & Self::KNOWN)
    }
}

/// The context that crosses a boundary: which trace, which span is the parent, how it is sampled,
/// and the vendors' `tracestate` (validated; `None` when absent, empty or discarded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The parent span (`parent-id` on the wire).
    pub span_id: SpanId,
    /// The `trace-flags`.
    pub flags: TraceFlags,
    /// The vendors' list.
    pub tracestate: Option<TraceState>,
}

/// Why a `traceparent` value was rejected. A rejected header means: start a new trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    /// A version `00` value is not exactly 55 characters long; holds its length in bytes.
    #[error("traceparent is {0} characters; version 00 needs exactly 55")]
    Length(usize),
    /// Shorter than the 55 characters every version starts with (including an empty value).
    #[error("traceparent is shorter than the 55 characters every version starts with")]
    TooShort,
    /// A field is not lowercase hex; holds its name: `version`, `trace-id`, `parent-id` or
    /// `trace-flags`.
    #[error("traceparent field `{0}` is not lowercase hex of the right length")]
    Hex(&'static str),
    /// A character other than `-` at one of the separator positions (0-based 2, 35 and 52).
    #[error("traceparent fields must be separated by `-` at positions 2, 35 and 52")]
    Separator,
    /// The version is `ff`, which the spec reserves as invalid.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// The `trace-id` is all zeros, which the spec forbids.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// The `parent-id` is all zeros, which the spec forbids.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
    /// A version above `00` is longer than 55 characters and the 56th is not `-`.
    #[error("traceparent of a future version continues with something other than `-`")]
    FutureVersionTail,
    /// Longer than [`MAX_TRACEPARENT_CHARS`], so not parsed at all; holds its length in bytes.
    #[error("traceparent is {0} characters; more than {MAX_TRACEPARENT_CHARS} are not read")]
    TooLong(usize),
}

impl TraceContext {
    /// Parses a `traceparent` header value strictly, as W3C Trace Context specifies:
    /// version `00` is exactly 55 characters; a higher version (not `ff`) is parsed by its
    /// first 55 characters, which must be followed by the end of the value or a `-`.
    pub fn parse_traceparent(value: &str) -> Result<Self, TraceparentError> {
        let b = value.as_bytes();
        if b.len() > MAX_TRACEPARENT_CHARS {
            return Err(TraceparentError::TooLong(b.len()));
        }
        if b.len() < 2 {
            return Err(TraceparentError::TooShort);
        }
        let version = decode_hex::<1>(&b[0..2]).ok_or(TraceparentError::Hex("version"))?[0];
        if version == 0xff {
            return Err(TraceparentError::ForbiddenVersion);
        }
        if version == 0 && b.len() != 55 {
            return Err(TraceparentError::Length(b.len()));
        }
        if b.len() < 55 {
            return Err(TraceparentError::TooShort);
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceparentError::Separator);
        }
        if b.len() > 55 && b[55] != b'-' {
            return Err(TraceparentError::FutureVersionTail);
        }
        let trace = decode_hex::<16>(&b[3..35]).ok_or(TraceparentError::Hex("trace-id"))?;
        let parent = decode_hex::<8>(&b[36..52]).ok_or(TraceparentError::Hex("parent-id"))?;
        let flags = decode_hex::<1>(&b[53..55]).ok_or(TraceparentError::Hex("trace-flags"))?[0];
        Ok(TraceContext {
            trace_id: TraceId::from_bytes(trace).ok_or(TraceparentError::ZeroTraceId)?,
            span_id: SpanId::from_bytes(parent).ok_or(TraceparentError::ZeroParentId)?,
            flags: TraceFlags(flags),
            tracestate: None,
        })
    }

    /// The `traceparent` value for this context, always version `00`.
    pub fn traceparent(&self) -> Traceparent {
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        encode_hex(&self.trace_id.to_bytes(), &mut buf[3..35]);
        buf[35] = b'-';
        encode_hex(&self.span_id.to_bytes(), &mut buf[36..52]);
        buf[52] = b'-';
        encode_hex(&[self.flags.propagated().to_byte()], &mut buf[53..55]);
        Traceparent(buf)
    }

    /// Reads the context from a pair of header values; an invalid `traceparent` yields `None`
    /// (and its `tracestate` is dropped with it, as the spec requires).
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        Self::from_header_fields(traceparent?, tracestate)
    }

    /// Reads the context from one `traceparent` field value and every `tracestate` field, in
    /// the order they arrived. Surrounding optional whitespace is not part of a field value
    /// (RFC 7230), so it is trimmed here and not in the strict codec.
    ///
    /// "If the vendor failed to parse `traceparent`, it MUST NOT attempt to parse
    /// `tracestate`": an invalid `traceparent` yields `None`. "Failure to parse `tracestate`
    /// MUST NOT affect the parsing of `traceparent`": an invalid `tracestate` is dropped and
    /// the context kept.
    pub fn from_header_fields<'a>(
        traceparent: &str,
        tracestate: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let mut context = Self::parse_traceparent(traceparent.trim_matches([' ', '\t'])).ok()?;
        context.tracestate = TraceState::combine(tracestate)
            .ok()
            .filter(|state| !state.is_empty());
        Some(context)
    }
}

/// A formatted `traceparent`, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The header value.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII hex digits and dashes.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl AsRef<[u8]> for Traceparent {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Traceparent({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn check(header: &str, expected: Result<(), TraceparentError>) {
        let got = TraceContext::parse_traceparent(header).map(|_| ());
        assert_eq!(got, expected, "header {header:?}");
    }

    #[test]
    fn the_spec_example_round_trips() {
        let context = TraceContext::parse_traceparent(VALID).unwrap();
        assert_eq!(
            context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id.to_string(), "00f067aa0ba902b7");
        assert!(context.flags.is_sampled());
        assert_eq!(context.traceparent().as_str(), VALID);
    }

    #[test]
    fn malformed_headers_are_rejected_with_the_reason() {
        use TraceparentError::*;
        check(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            Err(Hex("trace-id")),
        );
        check(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            Err(ZeroTraceId),
        );
        check(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            Err(ZeroParentId),
        );
        check(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Err(ForbiddenVersion),
        );
        check(
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Err(Separator),
        );
        check(&VALID[..54], Err(Length(54)));
        check(&format!("{VALID}-extra"), Err(Length(61)));
        check(
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Err(Hex("version")),
        );
        check(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            Err(Hex("trace-flags")),
        );
        check("", Err(TooShort));
    }

    #[test]
    fn future_versions_parse_their_first_55_characters() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        check(future, Ok(()));
        check(&format!("{future}-what-the-future-holds"), Ok(()));
        check(
            &format!("{future}xyz"),
            Err(TraceparentError::FutureVersionTail),
        );
        check(&future[..50], Err(TraceparentError::TooShort));
    }

    #[test]
    fn unknown_flags_are_cleared_when_propagated() {
        let context = TraceContext::parse_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
        )
        .unwrap();
        assert!(context.traceparent().as_str().ends_with("-03"));
    }

    #[test]
    fn an_invalid_traceparent_drops_its_tracestate() {
        assert_eq!(TraceContext::from_headers(Some("junk"), Some("a=b")), None);
        let context = TraceContext::from_headers(Some(VALID), Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    }
}
