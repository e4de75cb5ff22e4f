//! The W3C `tracestate` list (Trace Context Level 2): the exact key and value grammar,
//! several header fields combined, the 32-member limit, a repeated key collapsed to its first
//! entry, empty members and optional
//! whitespace, truncation to what we propagate, and mutation that moves the changed entry to
//! the front.
//!
//! Level 2 unified the key grammar: Level 1's separate `multi-tenant-key = tenant-id "@"
//! system-id` (241 + 14 characters) is gone, and `@` is an ordinary key character, so
//! `tenant@system` keys are simply keys of up to 256 characters.
//!
//! A [`TraceState`] is kept as its canonical header text (members joined by `,`, no optional
//! whitespace, no empty members) behind an `Arc`: it is cloned onto every span, so a clone must
//! be a reference-count bump, and formatting it for the wire must not allocate.
//!
//! A header that breaks the grammar anywhere is discarded whole, not repaired member by member:
//! the spec allows either ("If the `tracestate` header cannot be parsed the vendor MAY discard
//! the entire header. Invalid `tracestate` entries MAY also be discarded."), and the W3C test
//! suite expects the former.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// "There can be a maximum of 32 `list-member`s in a `list`." Empty members are not counted:
/// the spec allows them precisely because combining several header fields produces them.
pub const MAX_MEMBERS: usize = 32;
/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`
pub const MAX_KEY_CHARS: usize = 256;
/// `value = 0*255(chr) nblk-chr`
pub const MAX_VALUE_CHARS: usize = 256;
/// The longest combined header we propagate. "Vendors SHOULD propagate at least 512 characters
/// of a combined header" and "the maximum size of the propagated `tracestate` header SHOULD be
/// documented": this is that documentation. Longer lists are truncated by whole entries.
pub const MAX_PROPAGATED_CHARS: usize = 512;
/// "Entries larger than `128` characters long SHOULD be removed first."
const LARGE_ENTRY_CHARS: usize = 128;
/// Inbound text longer than this is not read at all. The longest valid list is 32 members of
/// 513 characters plus separators (about 16.5 KiB); this leaves room for optional whitespace
/// and empty members and bounds the work a hostile header can cause.
pub const MAX_INBOUND_CHARS: usize = 32 * 1024;
/// At most this many `tracestate` header fields are combined; more is not a real sender.
pub const MAX_HEADER_FIELDS: usize = 64;

/// Optional whitespace (RFC 7230 `OWS`): spaces and horizontal tabs.
const OWS: &[char] = &[' ', '\t'];
/// How much of an offending member an error quotes: errors stay one short line.
const EXCERPT_CHARS: usize = 40;

/// Why a `tracestate` was discarded (or an entry could not be set).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// Reading stopped at the bound, so the count is where it stopped, not the full length.
    #[error("tracestate is over {MAX_INBOUND_CHARS} characters (at least {0}); it is not read")]
    Oversize(usize),
    /// More than [`MAX_HEADER_FIELDS`] `tracestate` header fields were given to combine.
    #[error("tracestate came in more than {MAX_HEADER_FIELDS} header fields")]
    TooManyFields,
    /// More than [`MAX_MEMBERS`] non-empty list members, counted across all fields.
    #[error("tracestate has more than {MAX_MEMBERS} list members")]
    TooManyMembers,
    /// A non-empty list member has no `=`.
    #[error("tracestate list member {index} `{member}` is not `key=value`")]
    NotKeyValue {
        /// 1-based position among the non-empty members, counted across all fields.
        index: usize,
        /// The member, escaped and cut to its first 40 characters.
        member: String,
    },
    /// A key breaks the grammar: empty, not starting with a lowercase letter or digit, holding
    /// a character outside `a-z0-9_-*/@`, or longer than [`MAX_KEY_CHARS`].
    #[error("tracestate list member {index}: `{key}` is not a valid key")]
    Key {
        /// 1-based position among the non-empty members; always 1 from
        /// [`TraceState::with_entry`].
        index: usize,
        /// The key, escaped and cut to its first 40 characters.
        key: String,
    },
    /// A value breaks the grammar: empty, holding `,`, `=` or a character outside printable
    /// ASCII, or longer than [`MAX_VALUE_CHARS`].
    #[error("tracestate list member {index}: the value of `{key}` is not a valid value")]
    Value {
        /// 1-based position among the non-empty members; always 1 from
        /// [`TraceState::with_entry`].
        index: usize,
        /// The key whose value is invalid, escaped and cut to its first 40 characters.
        key: String,
    },
}

/// A valid `tracestate` list in canonical form; possibly empty.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct TraceState(Arc<str>);

impl TraceState {
    /// Parses one `tracestate` header value.
    pub fn parse(value: &str) -> Result<Self, TraceStateError> {
        Self::combine([value])
    }

    /// Parses several `tracestate` header fields as one list, "combined into a single header
    /// according to RFC7230" (joined by commas, in order). The result is truncated to
    /// [`MAX_PROPAGATED_CHARS`].
    pub fn combine<'a>(fields: impl IntoIterator<Item = &'a str>) -> Result<Self, TraceStateError> {
        let mut members: Vec<(&str, &str)> = Vec::new();
        let mut total_chars = 0usize;
        let mut index = 0usize;
        for (n, field) in fields.into_iter().enumerate() {
            if n == MAX_HEADER_FIELDS {
                return Err(TraceStateError::TooManyFields);
            }
            total_chars = total_chars.saturating_add(field.len() + usize::from(n > 0));
            if total_chars > MAX_INBOUND_CHARS {
                return Err(TraceStateError::Oversize(total_chars));
            }
            for raw in field.split(',') {
                // "Spaces and horizontal tabs surrounding `list-member`s are ignored", and
                // trailing spaces are optional whitespace, not part of the value.
                let member = raw.trim_matches(OWS);
                if member.is_empty() {
                    continue;
                }
                index += 1;
                let (key, value) = split_member(member, index)?;
                // "Only one entry per key is allowed", and a list that repeats one is still
                // inherited: the W3C test suite accepts the duplicates kept or all but one
                // discarded. The first is kept: the leftmost entry is the latest position.
                if members.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                if members.len() == MAX_MEMBERS {
                    return Err(TraceStateError::TooManyMembers);
                }
                members.push((key, value));
            }
        }
        Ok(Self::from_members(truncated(members)))
    }

    /// This list with `key` set to `value` and moved to the front: "Modified keys MUST be moved
    /// to the beginning (left) of the list", and "the new key-value pair SHOULD be added to
    /// the beginning of the list". Other members keep their order; the rightmost are dropped
    /// if the list would exceed [`MAX_MEMBERS`] or [`MAX_PROPAGATED_CHARS`].
    pub fn with_entry(&self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        let value = value.trim_end_matches(OWS);
        if !is_key(key) {
            return Err(TraceStateError::Key {
                index: 1,
                key: excerpt(key),
            });
        }
        if !is_value(value) {
            return Err(TraceStateError::Value {
                index: 1,
                key: excerpt(key),
            });
        }
        let mut members = vec![(key, value)];
        members.extend(self.entries().filter(|(k, _)| *k != key));
        members.truncate(MAX_MEMBERS);
        Ok(Self::from_members(truncated(members)))
    }

    /// The value `tracestate` gets on the wire: members joined by `,`, no whitespace.
    pub fn header(&self) -> &str {
        &self.0
    }

    /// `(key, value)` pairs, leftmost first.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        // Canonical text: keys and values contain neither `,` nor `=`.
        self.0
            .split(',')
            .filter_map(|member| member.split_once('='))
    }

    /// The value of `key`, if the list has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// How many members the list has.
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    /// Whether the list has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn from_members(members: Vec<(&str, &str)>) -> Self {
        let mut text =
            String::with_capacity(members.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
        TraceState(text.into())
    }
}

/// Splits `key=value` at the first `=` and checks both sides.
fn split_member(member: &str, index: usize) -> Result<(&str, &str), TraceStateError> {
    let Some((key, value)) = member.split_once('=') else {
        return Err(TraceStateError::NotKeyValue {
            index,
            member: excerpt(member),
        });
    };
    if !is_key(key) {
        return Err(TraceStateError::Key {
            index,
            key: excerpt(key),
        });
    }
    if !is_value(value) {
        return Err(TraceStateError::Value {
            index,
            key: excerpt(key),
        });
    }
    Ok((key, value))
}

/// Drops whole entries until the list fits [`MAX_PROPAGATED_CHARS`]: "Entries larger than
/// `128` characters long SHOULD be removed first. Then entries SHOULD be removed starting from
/// the end of `tracestate`." Large entries also go rightmost first.
fn truncated<'a>(mut members: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    let entry_chars = |(k, v): &(&str, &str)| k.len() + 1 + v.len();
    let header_chars = |members: &[(&str, &str)]| {
        members.iter().map(entry_chars).sum::<usize>() + members.len().saturating_sub(1)
    };
    let mut i = members.len();
    while i > 0 && header_chars(&members) > MAX_PROPAGATED_CHARS {
        i -= 1;
        if entry_chars(&members[i]) > LARGE_ENTRY_CHARS {
            members.remove(i);
        }
    }
    while header_chars(&members) > MAX_PROPAGATED_CHARS {
        members.pop();
    }
    members
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`,
/// `keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"`.
fn is_key(key: &str) -> bool {
    let keychar =
        |c: &u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@');
    match key.as_bytes().split_first() {
        Some((first, rest)) => {
            key.len() <= MAX_KEY_CHARS
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(keychar)
        }
        None => false,
    }
}

/// `value = 0*255(chr) nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`,
/// `chr = %x20 / nblk-chr`.
fn is_value(value: &str) -> bool {
    let b = value.as_bytes();
    let nblk = |c: &u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    let chr = |c: &u8| *c == 0x20 || nblk(c);
    match b.split_last() {
        Some((last, rest)) => b.len() <= MAX_VALUE_CHARS && nblk(last) && rest.iter().all(chr),
        None => false,
    }
}

/// The start of `text`, for an error message that must stay short whatever the input.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", text[..end].escape_debug()),
        None => text.escape_debug().to_string(),
    }
}

impl Deref for TraceState {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TraceState {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", &*self.0)
    }
}

impl std::str::FromStr for TraceState {
    type Err = TraceStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` parsed, as its canonical header, or the error's message.
    fn check(input: &str, expected: &str) {
        let got = match TraceState::parse(input) {
            Ok(state) => state.header().to_owned(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parse_canonicalises_or_explains() {
        check("", "");
        check(" , ,\t", "");
        check(
            "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        );
        check("a=1,a=2", "a=1");
        check(
            "a=1,Bad=2",
            "error: tracestate list member 2: `Bad` is not a valid key",
        );
        check(
            "a=1,b",
            "error: tracestate list member 2 `b` is not `key=value`",
        );
        check(
            "a=x\ty",
            "error: tracestate list member 1: the value of `a` is not a valid value",
        );
    }

    #[test]
    fn error_messages_quote_only_the_start_of_a_long_member() {
        let long = format!("{}=1", "K".repeat(10_000));
        let message = TraceState::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 120, "{message}");
    }

    #[test]
    fn a_single_entry_longer_than_what_we_propagate_is_dropped() {
        // The longest valid entry is 256 + 1 + 256 = 513 characters, one over the bound.
        let entry = format!("{}={}", "k".repeat(256), "v".repeat(256));
        check(&entry, "");
        check(&format!("a=1,{entry}"), "a=1");
    }

    #[test]
    fn an_oversized_header_is_not_read() {
        let huge = " ".repeat(MAX_INBOUND_CHARS + 1);
        assert!(matches!(
            TraceState::parse(&huge),
            Err(TraceStateError::Oversize(_))
        ));
        let fields = vec![""; MAX_HEADER_FIELDS + 1];
        assert_eq!(
            TraceState::combine(fields),
            Err(TraceStateError::TooManyFields)
        );
    }
}
