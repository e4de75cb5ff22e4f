//! Comparisons written in scenario assertions: `< 300ms`, `== 4.2s` for durations;
//! `== BOOKING_CREATED`, `>= 2`, `contains google`, `matches ^evt_` for attributes.

use std::fmt;
use std::time::Duration;

use regex::Regex;

use crate::clock::{parse_duration, Compact};

/// A comparison operator of scenario notation: `==`, `!=`, `<`, `<=`, `>`, `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    const TOKENS: [(&'static str, CompareOp); 6] = [
        ("==", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("<=", CompareOp::Le),
        (">=", CompareOp::Ge),
        ("<", CompareOp::Lt),
        (">", CompareOp::Gt),
    ];

    /// Splits a leading operator off `text`.
    fn split(text: &str) -> Option<(CompareOp, &str)> {
        let text = text.trim_start();
        Self::TOKENS
            .iter()
            .find_map(|(token, op)| text.strip_prefix(token).map(|rest| (*op, rest.trim())))
    }

    fn holds<T: PartialOrd>(self, actual: &T, expected: &T) -> bool {
        match self {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            CompareOp::Lt => actual < expected,
            CompareOp::Le => actual <= expected,
            CompareOp::Gt => actual > expected,
            CompareOp::Ge => actual >= expected,
        }
    }

    fn token(self) -> &'static str {
        Self::TOKENS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("==", |(token, _)| token)
    }
}

/// A comparison against a duration: `< 300ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationTest {
    /// The operator.
    pub op: CompareOp,
    /// The duration compared against.
    pub value: Duration,
}

impl DurationTest {
    /// Reads `< 300ms`, `== 4.2s`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (op, rest) = CompareOp::split(text).ok_or_else(|| {
            format!("expected a comparison such as `< 300ms` or `== 4.2s`, found `{text}`")
        })?;
        let value = parse_duration(rest).map_err(|e| e.to_string())?;
        Ok(DurationTest { op, value })
    }

    /// Whether `actual` passes.
    pub fn holds(&self, actual: Duration) -> bool {
        self.op.holds(&actual, &self.value)
    }
}

impl fmt::Display for DurationTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.token(), Compact(self.value))
    }
}

/// A test on an attribute's value.
#[derive(Clone, Debug)]
pub enum ValueTest {
    /// `== v`, `!= v`, and on numbers `<`, `<=`, `>`, `>=`. A bare value means `==`.
    Compare(CompareOp, String),
    /// `contains v`: a substring.
    Contains(String),
    /// `matches re`: a regex match anywhere in the value.
    Matches(Regex),
}

impl ValueTest {
    /// Reads `== v`, `>= 2`, `contains v`, `matches re`, or a bare value.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("contains ") {
            return Ok(ValueTest::Contains(rest.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("matches ") {
            return Regex::new(rest)
                .map(ValueTest::Matches)
                .map_err(|e| format!("invalid regular expression: {e}"));
        }
        match CompareOp::split(text) {
            Some((op, rest)) => {
                if !matches!(op, CompareOp::Eq | CompareOp::Ne) && rest.parse::<f64>().is_err() {
                    return Err(format!(
                        "`{}` compares numbers; `{rest}` is not one",
                        op.token()
                    ));
                }
                Ok(ValueTest::Compare(op, rest.to_owned()))
            }
            None => Ok(ValueTest::Compare(CompareOp::Eq, text.to_owned())),
        }
    }

    /// Whether `actual` passes.
    pub fn holds(&self, actual: &str) -> bool {
        match self {
            ValueTest::Contains(part) => actual.contains(part.as_str()),
            ValueTest::Matches(re) => re.is_match(actual),
            ValueTest::Compare(op @ (CompareOp::Eq | CompareOp::Ne), expected) => {
                op.holds(&actual, &expected.as_str())
            }
            ValueTest::Compare(op, expected) => {
                match (actual.parse::<f64>(), expected.parse::<f64>()) {
                    (Ok(a), Ok(e)) => op.holds(&a, &e),
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for ValueTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueTest::Compare(op, v) => write!(f, "{} {v}", op.token()),
            ValueTest::Contains(v) => write!(f, "contains {v}"),
            ValueTest::Matches(re) => write!(f, "matches {re}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_tests_parse_and_hold() {
        let t = DurationTest::parse("< 300ms").unwrap();
        assert!(t.holds(Duration::from_millis(299)));
        assert!(!t.holds(Duration::from_millis(300)));
        assert_eq!(t.to_string(), "< 300ms");
        assert!(DurationTest::parse("== 4.2s")
            .unwrap()
            .holds(Duration::from_millis(4_200)));
        assert!(DurationTest::parse("300ms").is_err());
        assert!(DurationTest::parse("< 3 parsecs").is_err());
    }

    #[test]
    fn value_tests_parse_and_hold() {
        let holds = |test: &str, actual: &str| ValueTest::parse(test).unwrap().holds(actual);
        assert!(holds("BOOKING_CREATED", "BOOKING_CREATED"));
        assert!(holds("!= x", "y"));
        assert!(holds(">= 2", "3"));
        assert!(!holds("< 2", "10"));
        assert!(holds("contains goo", "google"));
        assert!(holds("matches ^evt_[0-9]+$", "evt_12"));
        assert!(ValueTest::parse("< many").is_err());
        assert!(ValueTest::parse("matches (").is_err());
    }
}
