//! Span selectors, a small CSS-like language over the span tree:
//! `span[op="webhook_execution"]`, `span[op="booking_creation"] > span[status="error"]`.
//!
//! ```text
//! selector := compound (combinator compound)* position?
//! compound := "span" (filter | ":has(" selector ")")*
//! filter   := "[" name ("=" | "!=" | "^=" | "*=") value "]"
//! position := ":first" | ":last" | ":nth(" n ")"
//! ```
//! A space between compounds means "descendant of" and `>` means "child of". In a filter, `op`
//! is the operation, `status` is `ok` or `error`, any other name is a span field; `^=` tests a
//! prefix and `*=` a substring; a value is a double-quoted string or a bare word.
//! `:has(s)` keeps spans with a descendant matching `s` (an ancestor query). A position picks
//! one span of the result, in capture order (`:nth(1)` is `:first`).

use std::fmt;

use crate::trace::{Captured, SpanData, SpanStatus};

/// A parsed selector; `Display` gives back its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    text: String,
    /// Compounds left to right, each with the combinator that joins it to the previous one.
    steps: Vec<(Combinator, Compound)>,
    position: Option<Position>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    First,
    Last,
    /// 1-based.
    Nth(usize),
}

/// How deeply `:has(...)` may nest: a bound, so a hostile selector cannot exhaust the stack.
const MAX_NESTING: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combinator {
    Descendant,
    Child,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Compound {
    filters: Vec<Filter>,
    has: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Filter {
    name: String,
    test: Test,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    Equals,
    NotEquals,
    StartsWith,
    Contains,
}

/// A selector that does not parse: what was expected, and where (a byte offset into the text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    /// The byte offset into the selector's text.
    pub offset: usize,
    /// What was expected there.
    pub message: String,
}

impl Selector {
    /// Reads a selector, or says where and why it does not parse.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser { text, pos: 0 };
        let selector = parser.selector(0)?;
        if parser.pos < text.len() {
            return parser.error(parser.pos, "unexpected `)`");
        }
        Ok(selector)
    }

    /// Spans the selector matches, in capture order.
    pub fn select<'c>(&self, captured: &'c Captured) -> Vec<&'c SpanData> {
        let mut all = captured
            .spans
            .iter()
            .filter(|span| matches_from(captured, &self.steps, span));
        match self.position {
            None => all.collect(),
            Some(Position::First) => all.take(1).collect(),
            Some(Position::Last) => all.next_back().into_iter().collect(),
            Some(Position::Nth(n)) => all.skip(n - 1).take(1).collect(),
        }
    }

    /// Whether `span` is among the spans the selector selects.
    pub fn matches(&self, captured: &Captured, span: &SpanData) -> bool {
        match self.position {
            None => matches_from(captured, &self.steps, span),
            Some(_) => self
                .select(captured)
                .iter()
                .any(|s| s.span_id == span.span_id),
        }
    }

    /// What the selector asks of a span beyond its operation and position, which log lines
    /// cannot show: `None` when it only filters by `op`; otherwise nesting (more than one
    /// compound, `:has`) or the first other field it filters by.
    pub fn beyond_operations(&self) -> Option<String> {
        if self.steps.len() > 1 || self.steps.iter().any(|(_, c)| !c.has.is_empty()) {
            return Some("nesting".to_owned());
        }
        self.steps
            .iter()
            .flat_map(|(_, c)| &c.filters)
            .find(|f| f.name != "op")
            .map(|f| format!("`{}`", f.name))
    }

    /// Every field a filter names other than `op` and `status` (`:has` included), each with
    /// the operation its compound asks for, if it asks for one: for validation against the
    /// fields each operation records.
    pub fn field_filters(&self) -> Vec<(&str, Option<&str>)> {
        let mut found = Vec::new();
        for (_, compound) in &self.steps {
            let op = compound
                .filters
                .iter()
                .find(|f| f.name == "op" && f.test == Test::Equals)
                .map(|f| f.value.as_str());
            for filter in &compound.filters {
                if filter.name != "op" && filter.name != "status" {
                    found.push((filter.name.as_str(), op));
                }
            }
            for inner in &compound.has {
                found.extend(inner.field_filters());
            }
        }
        found
    }

    /// The operation the selected span itself must have (the last compound's `op="…"`), if any.
    pub fn selected_operation(&self) -> Option<&str> {
        self.steps.last().and_then(|(_, c)| {
            c.filters
                .iter()
                .find(|f| f.name == "op" && f.test == Test::Equals)
                .map(|f| f.value.as_str())
        })
    }

    /// The operation names the selector asks for (`op="…"` filters, `:has` included), for
    /// validation against the known operations.
    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flat_map(|(_, c)| {
                let own = c
                    .filters
                    .iter()
                    .filter(|f| f.name == "op" && f.test == Test::Equals)
                    .map(|f| f.value.as_str());
                let nested: Vec<&str> = c.has.iter().flat_map(Selector::operations).collect();
                own.chain(nested)
            })
            .collect::<Vec<_>>()
            .into_iter()
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
    if !last.matches(captured, span) {
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
    fn matches(&self, captured: &Captured, span: &SpanData) -> bool {
        self.filters.iter().all(|f| f.matches(span))
            && self.has.iter().all(|inner| {
                captured
                    .spans
                    .iter()
                    .any(|d| is_descendant(captured, d, span) && inner.matches(captured, d))
            })
    }
}

fn is_descendant(captured: &Captured, span: &SpanData, ancestor: &SpanData) -> bool {
    let mut current = parent(captured, span);
    while let Some(candidate) = current {
        if candidate.span_id == ancestor.span_id {
            return true;
        }
        current = parent(captured, candidate);
    }
    false
}

impl Filter {
    fn matches(&self, span: &SpanData) -> bool {
        let actual = match self.name.as_str() {
            "op" => Some(span.op.to_owned()),
            "status" => Some(
                match &span.status {
                    SpanStatus::Ok => "ok",
                    SpanStatus::Error(_) => "error",
                }
                .to_owned(),
            ),
            other => span.value_of(other),
        };
        match (self.test, actual) {
            (Test::Equals, Some(a)) => a == self.value,
            (Test::NotEquals, a) => a.as_deref() != Some(self.value.as_str()),
            (Test::StartsWith, Some(a)) => a.starts_with(&self.value),
            (Test::Contains, Some(a)) => a.contains(&self.value),
            (_, None) => false,
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

    fn selector(&mut self, depth: usize) -> Result<Selector, SelectorError> {
        let start = self.pos;
        self.skip_spaces();
        let mut steps = vec![(Combinator::Descendant, self.compound(depth)?)];
        let mut position = None;
        loop {
            let spaced = self.skip_spaces();
            if self.rest().is_empty() || self.rest().starts_with(')') {
                break;
            }
            if position.is_some() {
                return self.error(
                    self.pos,
                    "a position (`:first`, `:last`, `:nth(n)`) ends the selector",
                );
            }
            if !spaced && self.eat(":") {
                position = Some(self.position()?);
                continue;
            }
            let combinator = if self.eat(">") {
                self.skip_spaces();
                Combinator::Child
            } else if spaced {
                Combinator::Descendant
            } else {
                return self.error(self.pos, "expected `[`, `:`, a space or `>` after a span");
            };
            steps.push((combinator, self.compound(depth)?));
        }
        Ok(Selector {
            text: self.text[start..self.pos].trim().to_owned(),
            steps,
            position,
        })
    }

    fn position(&mut self) -> Result<Position, SelectorError> {
        let at = self.pos;
        if self.eat("first") {
            return Ok(Position::First);
        }
        if self.eat("last") {
            return Ok(Position::Last);
        }
        if self.eat("nth(") {
            let digits = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
            let n: usize = self.rest()[..digits].parse().unwrap_or(0);
            if n == 0 {
                return self.error(self.pos, "`:nth(n)` takes a whole number from 1");
            }
            self.pos += digits;
            if !self.eat(")") {
                return self.error(self.pos, "expected `)`");
            }
            return Ok(Position::Nth(n));
        }
        self.error(
            at,
            "expected `first`, `last`, `nth(n)` or `has(…)` after `:`",
        )
    }

    fn compound(&mut self, depth: usize) -> Result<Compound, SelectorError> {
        if !self.eat("span") {
            return self.error(self.pos, "expected `span`");
        }
        let mut compound = Compound::default();
        loop {
            if self.eat("[") {
                compound.filters.push(self.filter()?);
            } else if self.rest().starts_with(":has(") {
                if depth >= MAX_NESTING {
                    return self
                        .error(self.pos, format!("`:has` nests at most {MAX_NESTING} deep"));
                }
                self.pos += ":has(".len();
                compound.has.push(self.selector(depth + 1)?);
                if !self.eat(")") {
                    return self.error(self.pos, "expected `)` to close `:has(`");
                }
            } else {
                return Ok(compound);
            }
        }
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
        let test = if self.eat("!=") {
            Test::NotEquals
        } else if self.eat("^=") {
            Test::StartsWith
        } else if self.eat("*=") {
            Test::Contains
        } else if self.eat("=") {
            Test::Equals
        } else {
            return self.error(self.pos, "expected `=`, `!=`, `^=` or `*=`");
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
                .find(|c: char| c == ']' || c == '"' || c.is_whitespace())
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
        Ok(Filter { name, test, value })
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
    fn what_a_selector_needs_beyond_operations_is_named() {
        let needs = |text: &str| Selector::parse(text).unwrap().beyond_operations();
        assert_eq!(needs(r#"span[op="webhook_execution"]"#), None);
        assert_eq!(needs(r#"span[op^="webhook"]:last"#), None);
        assert_eq!(needs("span"), None);
        let nesting = Some("nesting".to_owned());
        assert_eq!(needs(r#"span[op="a"] span[op="b"]"#), nesting);
        assert_eq!(needs(r#"span[op="a"] > span"#), nesting);
        assert_eq!(needs("span:has(span[status=error])"), nesting);
        assert_eq!(needs("span[status=error]"), Some("`status`".to_owned()));
        assert_eq!(
            needs(r#"span[op="a"][job_id="1"]"#),
            Some("`job_id`".to_owned())
        );
    }

    #[test]
    fn selectors_parse_and_print_back() {
        for text in [
            "span",
            r#"span[op="booking_creation"]"#,
            r#"span[op="booking_creation"] > span[status=error]"#,
            r#"span[op = "a"]  span[op!="b"][job_id="1"]"#,
            r#"span:has(span[status=error])"#,
            r#"span[op^="webhook"]:last"#,
            r#"span[op*="creation"]:nth(2)"#,
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
        assert_eq!(error_at("span:nth(0)").0, 9);
        assert_eq!(error_at("span:first span").0, 11);
        assert_eq!(error_at("span:has(span").0, 13);
        assert_eq!(error_at("span:gone").0, 5);
        let deep = format!("span{}", ":has(span".repeat(MAX_NESTING + 1));
        assert!(error_at(&deep).1.contains("nests at most"));
    }
}
