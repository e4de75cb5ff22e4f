//! Span selectors, a small CSS-like language over the span tree:
//! `span[op="webhook_execution"]`, `span[op="booking_creation"] > span[status="error"]`.
//!
//! Grammar: `selector := compound (combinator compound)*`, `compound := "span" filter*`,
//! `filter := "[" name ("=" | "!=") value "]"`, where `value` is a double-quoted string or a bare
//! word, a space between compounds means "descendant of" and `>` means "child of".
//! `op` is the operation, `status` is `ok` or `error`; any other name is a span field.

use std::fmt;

use crate::trace::{Captured, SpanData, SpanStatus};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    text: String,
    /// Compounds left to right, each with the combinator that joins it to the previous one.
    steps: Vec<(Combinator, Compound)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combinator {
    Descendant,
    Child,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Compound {
    filters: Vec<Filter>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Filter {
    name: String,
    negated: bool,
    value: String,
}

/// A selector that does not parse: what was expected, and where (a byte offset into the text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    pub offset: usize,
    pub message: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser { text, pos: 0 }.selector()
    }

    /// Spans the selector matches, in capture order.
    pub fn select<'c>(&self, captured: &'c Captured) -> Vec<&'c SpanData> {
        captured
            .spans
            .iter()
            .filter(|span| self.matches(captured, span))
            .collect()
    }

    pub fn matches(&self, captured: &Captured, span: &SpanData) -> bool {
        matches_from(captured, &self.steps, span)
    }

    /// The operation names the selector asks for, with their offsets, for validation.
    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flat_map(|(_, c)| &c.filters)
            .filter(|f| f.name == "op" && !f.negated)
            .map(|f| f.value.as_str())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Right-to-left matching, as CSS engines do: the last compound matches the span itself, the
/// ones before it match its ancestors.
fn matches_from(captured: &Captured, steps: &[(Combinator, Compound)], span: &SpanData) -> bool {
    let Some(((combinator, last), before)) = steps.split_last() else {
        return true;
    };
    if !last.matches(span) {
        return false;
    }
    if before.is_empty() {
        return true;
    }
    let mut ancestor = parent(captured, span);
    while let Some(candidate) = ancestor {
        if matches_from(captured, before, candidate) {
            return true;
        }
        if *combinator == Combinator::Child {
            return false;
        }
        ancestor = parent(captured, candidate);
    }
    false
}

fn parent<'c>(captured: &'c Captured, span: &SpanData) -> Option<&'c SpanData> {
    captured.span(span.parent_id()?)
}

impl Compound {
    fn matches(&self, span: &SpanData) -> bool {
        self.filters.iter().all(|f| f.matches(span) != f.negated)
    }
}

impl Filter {
    fn matches(&self, span: &SpanData) -> bool {
        match self.name.as_str() {
            "op" => span.op == self.value,
            "status" => match &span.status {
                SpanStatus::Ok => self.value == "ok",
                SpanStatus::Error(_) => self.value == "error",
            },
            field => span
                .field(field)
                .is_some_and(|v| v.to_string() == self.value),
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn error<T>(&self, at: usize, message: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError {
            offset: at,
            message: message.into(),
        })
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_spaces(&mut self) -> bool {
        let before = self.pos;
        self.pos += self.rest().len() - self.rest().trim_start().len();
        self.pos > before
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        self.skip_spaces();
        let mut steps = vec![(Combinator::Descendant, self.compound()?)];
        loop {
            let spaced = self.skip_spaces();
            if self.rest().is_empty() {
                break;
            }
            let combinator = if self.eat(">") {
                self.skip_spaces();
                Combinator::Child
            } else if spaced {
                Combinator::Descendant
            } else {
                return self.error(self.pos, "expected `[`, a space or `>` after a span");
            };
            steps.push((combinator, self.compound()?));
        }
        Ok(Selector {
            text: self.text.trim().to_owned(),
            steps,
        })
    }

    fn compound(&mut self) -> Result<Compound, SelectorError> {
        if !self.eat("span") {
            return self.error(self.pos, "expected `span`");
        }
        let mut compound = Compound::default();
        while self.eat("[") {
            compound.filters.push(self.filter()?);
        }
        Ok(compound)
    }

    fn filter(&mut self) -> Result<Filter, SelectorError> {
        self.skip_spaces();
        let start = self.pos;
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(self.rest().len());
        if name_len == 0 {
            return self.error(start, "expected an attribute name such as `op` or `status`");
        }
        let name = self.rest()[..name_len].to_owned();
        self.pos += name_len;
        self.skip_spaces();
        let negated = if self.eat("!=") {
            true
        } else if self.eat("=") {
            false
        } else {
            return self.error(self.pos, "expected `=` or `!=`");
        };
        self.skip_spaces();
        let value_at = self.pos;
        let value = if self.eat("\"") {
            let Some(end) = self.rest().find('"') else {
                return self.error(value_at, "unterminated string: expected a closing `\"`");
            };
            let value = self.rest()[..end].to_owned();
            self.pos += end + 1;
            value
        } else {
            let len = self
                .rest()
                .find(|c: char| c == ']' || c.is_whitespace())
                .unwrap_or(self.rest().len());
            if len == 0 {
                return self.error(value_at, "expected a value");
            }
            let value = self.rest()[..len].to_owned();
            self.pos += len;
            value
        };
        if name == "status" && !matches!(value.as_str(), "ok" | "error") {
            return self.error(value_at, "status is `ok` or `error`");
        }
        self.skip_spaces();
        if !self.eat("]") {
            return self.error(self.pos, "expected `]`");
        }
        Ok(Filter {
            name,
            negated,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_at(text: &str) -> (usize, String) {
        let e = Selector::parse(text).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn selectors_parse_and_print_back() {
        for text in [
            "span",
            r#"span[op="booking_creation"]"#,
            r#"span[op="booking_creation"] > span[status=error]"#,
            r#"span[op = "a"]  span[op!="b"][job_id="1"]"#,
        ] {
            assert_eq!(Selector::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn parse_errors_point_at_the_offending_column() {
        assert_eq!(error_at("spam").0, 0);
        assert_eq!(error_at(r#"span[op="x""#), (11, "expected `]`".to_owned()));
        assert_eq!(error_at(r#"span[op~"x"]"#).0, 7);
        assert_eq!(error_at(r#"span[status="broken"]"#).0, 12);
        assert_eq!(error_at(r#"span[op="x"]span"#).0, 12);
        assert_eq!(error_at(r#"span[op="x]"#).0, 8);
    }
}
