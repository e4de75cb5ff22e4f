//! Validating what TOML alone cannot check: bookings' attendees, mock behaviours, and
//! expectations (selectors, operations, mocks they name, value tests).

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::error::string_content_start;
use super::raw::{RawAssertion, RawStatus};
use super::{Action, BookStep, MockSpec, ScenarioError, Step, MAX_SEATS};
use super::{Assertion, CompareOp, DurationTest, EventCount, Selector, Target, ValueTest};
use crate::contract::{all_fields, fields_of, ArmedCrash, CrashPoint, OPERATIONS};
use crate::mocks::{MockBehaviour, MockKind};
use crate::trace::ID_FIELDS;

pub(super) fn validate_book(book: &BookStep) -> Result<(), String> {
    let attendees = book.attendees.unwrap_or(1);
    if attendees == 0 || attendees > MAX_SEATS {
        return Err(format!("`attendees` must be 1–{MAX_SEATS}"));
    }
    if book.attendee.is_some() && attendees > 1 {
        return Err("`attendee` names the only attendee; leave it out with `attendees`".into());
    }
    if let Some(n) = book
        .invalid_email
        .iter()
        .find(|n| **n == 0 || **n > attendees)
    {
        return Err(format!(
            "`invalid_email` names attendee {n}, but the booking has attendees 1–{attendees}"
        ));
    }
    Ok(())
}

/// The most jobs into a cron call a crash may be armed at.
pub(super) const MAX_CRASH_JOB: u32 = 1_000;

/// A cron step's `crash`: a point's name (the call's first job), or `{ point, job }`.
pub(super) fn crash_of(value: &toml::Value) -> Result<ArmedCrash, String> {
    let names: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
    let point = |name: &str| {
        CrashPoint::from_name(name).ok_or_else(|| {
            let suggestion = nearest(name, &names)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!(
                "unknown crash point `{name}`{suggestion}; expected one of {}",
                names.join(", ")
            )
        })
    };
    let shape = "`crash` is a crash point (`crash = \"after_send\"`) or `{ point = \"after_send\", job = 2 }`";
    match value {
        toml::Value::String(name) => Ok(ArmedCrash {
            point: point(name)?,
            job: 1,
        }),
        toml::Value::Table(table) => {
            if let Some(key) = table.keys().find(|k| *k != "point" && *k != "job") {
                return Err(format!("unknown key `{key}` in `crash`; {shape}"));
            }
            let point = match table.get("point") {
                Some(toml::Value::String(name)) => point(name)?,
                _ => return Err(format!("`crash` needs `point`; {shape}")),
            };
            let job = match table.get("job") {
                None => 1,
                Some(toml::Value::Integer(n)) if (1..=i64::from(MAX_CRASH_JOB)).contains(n) => {
                    *n as u32
                }
                Some(other) => {
                    return Err(format!(
                        "`job = {other}`: the crash's job is a number 1–{MAX_CRASH_JOB}, the call's n-th job in the order it runs them"
                    ))
                }
            };
            Ok(ArmedCrash { point, job })
        }
        _ => Err(shape.to_owned()),
    }
}

pub(super) fn validate_behaviour(
    kind: MockKind,
    behaviour: &Spanned<MockBehaviour>,
) -> Result<(), String> {
    let b = behaviour.get_ref();
    if !(100..=599).contains(&b.status) {
        return Err(format!(
            "status {} is not an HTTP status (100–599)",
            b.status
        ));
    }
    if let Some(reason) = &b.error {
        let known = kind.error_reasons();
        if !known.contains(&reason.as_str()) {
            return Err(format!(
                "`{reason}` is not an error {} answers with; expected one of: {}",
                kind.name(),
                if known.is_empty() {
                    "(none: use `body`)".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_assertion(
    index: usize,
    raw: RawAssertion,
    mocks: &BTreeMap<String, MockSpec>,
    timeline: &[Step],
    text: &str,
    span: Range<usize>,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Assertion, ScenarioError> {
    if let Some(step) = &raw.step {
        return step_assertion(index, &raw, step, timeline, span, at);
    }
    let status = match raw.status.as_ref().map(|s| (*s.get_ref(), s.span())) {
        None => None,
        Some((RawStatus::Span(status), _)) => Some(status),
        Some((RawStatus::Http(code), place)) => {
            return Err(at(
                place,
                format!("`status = {code}` is a step's HTTP status: it goes with `step = N`; a span's is \"ok\" or \"error\""),
            ))
        }
    };
    let selector = |field: &Spanned<String>| -> Result<Selector, ScenarioError> {
        let selector = Selector::parse(field.get_ref()).map_err(|e| {
            let offset = string_content_start(text, field.span()) + e.offset;
            at(offset..offset, format!("invalid selector: {}", e.message))
        })?;
        if let Some(op) = selector.operations().find(|op| !OPERATIONS.contains(op)) {
            let offset = string_content_start(text, field.span())
                + field.get_ref().find(op).unwrap_or_default();
            let suggestion = nearest(op, OPERATIONS)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(at(
                offset..offset,
                format!("unknown operation `{op}`{suggestion}"),
            ));
        }
        // A typo in a field must not pass as "no span has it" (`count = 0` would hold).
        for (name, op) in selector.field_filters() {
            if let Err(message) = known_field(name, op, &["op", "status"]) {
                let offset = string_content_start(text, field.span())
                    + field.get_ref().find(name).unwrap_or_default();
                return Err(at(offset..offset, message));
            }
        }
        Ok(selector)
    };
    let target =
        match (&raw.select, &raw.mock) {
            (Some(select), None) => Target::Spans(selector(select)?),
            (None, Some(mock)) => {
                if !mocks.contains_key(mock.get_ref()) {
                    let known: Vec<&str> = mocks.keys().map(String::as_str).collect();
                    return Err(at(
                        mock.span(),
                        format!(
                            "no mock named `{}`; the scenario defines: {}",
                            mock.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
                if status.is_some() || raw.has_span_checks() {
                    return Err(at(span, "a `mock` expectation takes only `count`".into()));
                }
                Target::Mock(mock.get_ref().clone())
            }
            _ => return Err(at(
                span,
                "an expectation needs exactly one of `select = \"span[…]\"`, `mock = \"name\"` or `step = N`"
                    .into(),
            )),
        };
    // The operation the assertion's spans have, for checking its `attributes` names.
    let selected_op = match &target {
        Target::Spans(selector) => selector.selected_operation().map(str::to_owned),
        Target::Mock(_) | Target::Step { .. } => None,
    };
    Ok(Assertion {
        name: raw.name.unwrap_or_else(|| format!("expect #{}", index + 1)),
        target,
        count: raw.count,
        status,
        child_of: raw.child_of.as_ref().map(selector).transpose()?,
        follows_from: raw.follows_from.as_ref().map(selector).transpose()?,
        duration: raw
            .duration
            .as_ref()
            .map(|d| DurationTest::parse(d.get_ref()).map_err(|m| at(d.span(), m)))
            .transpose()?,
        attributes: raw
            .attributes
            .iter()
            .map(|(name, value)| {
                known_field(name, selected_op.as_deref(), &[])
                    .map_err(|m| at(attribute_key_span(text, value.span(), name), m))?;
                let test = match value.get_ref() {
                    toml::Value::String(text) => ValueTest::parse(text),
                    toml::Value::Integer(n) => Ok(ValueTest::Compare(CompareOp::Eq, n.to_string())),
                    toml::Value::Boolean(b) => Ok(ValueTest::Compare(CompareOp::Eq, b.to_string())),
                    other => Err(format!(
                        "expected a string test such as \"== x\" or a number, found a {}",
                        other.type_str()
                    )),
                };
                test.map(|t| (name.clone(), t))
                    .map_err(|m| at(value.span(), m))
            })
            .collect::<Result<_, _>>()?,
        events: raw
            .events
            .as_ref()
            .map(|e| {
                let matching = e
                    .matching
                    .as_ref()
                    .map(|re| {
                        regex::Regex::new(re.get_ref()).map_err(|err| {
                            at(re.span(), format!("invalid regular expression: {err}"))
                        })
                    })
                    .transpose()?;
                Ok(EventCount {
                    count: e.count,
                    matching,
                })
            })
            .transpose()?,
        log: raw
            .log
            .as_ref()
            .map(|text| log_test(text.get_ref()).map_err(|m| at(text.span(), m)))
            .transpose()?,
    })
}

/// `step = N` with `status = CODE`: the N-th timeline step (in the order steps run) answers
/// with that HTTP status. It takes nothing else.
fn step_assertion(
    index: usize,
    raw: &RawAssertion,
    step: &Spanned<usize>,
    timeline: &[Step],
    span: Range<usize>,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Assertion, ScenarioError> {
    let number = *step.get_ref();
    if number == 0 || number > timeline.len() {
        return Err(at(
            step.span(),
            format!(
                "`step = {number}`: the timeline has steps 1–{}",
                timeline.len()
            ),
        ));
    }
    if matches!(timeline[number - 1].action, Action::Restart) {
        return Err(at(
            step.span(),
            format!("step {number} is a restart, which sends no request and has no answer"),
        ));
    }
    if raw.select.is_some() || raw.mock.is_some() || raw.count.is_some() || raw.has_span_checks() {
        return Err(at(
            span,
            "a `step` expectation takes only `status = CODE`".into(),
        ));
    }
    let status = match raw.status.as_ref().map(|s| *s.get_ref()) {
        Some(RawStatus::Http(code)) if (100..=599).contains(&code) => code,
        Some(RawStatus::Http(code)) => {
            return Err(at(
                span,
                format!("status {code} is not an HTTP status (100–599)"),
            ))
        }
        _ => {
            return Err(at(
                span,
                "a `step` expectation needs `status = CODE`, the HTTP status it answers with"
                    .into(),
            ))
        }
    };
    let exchange = timeline[..number - 1]
        .iter()
        .filter(|s| !matches!(s.action, Action::Restart))
        .count();
    Ok(Assertion {
        name: raw
            .name
            .clone()
            .unwrap_or_else(|| format!("expect #{}", index + 1)),
        target: Target::Step {
            number,
            exchange,
            status,
        },
        count: None,
        status: None,
        child_of: None,
        follows_from: None,
        duration: None,
        attributes: Vec::new(),
        events: None,
        log: None,
    })
}

/// `log = "…"`: a bare text means "contains"; `matches …` and `== …` work as for attributes.
fn log_test(text: &str) -> Result<ValueTest, String> {
    if text.starts_with("matches ") || text.starts_with("== ") {
        ValueTest::parse(text)
    } else {
        let part = text.strip_prefix("contains ").unwrap_or(text);
        Ok(ValueTest::Contains(part.to_owned()))
    }
}

/// Whether spans of `op` (of any operation when `None`) record the field `name`; otherwise
/// what is wrong, with the nearest name (among the fields and `also`, the names a filter
/// takes besides fields) and the fields there are.
fn known_field(name: &str, op: Option<&str>, also: &[&'static str]) -> Result<(), String> {
    let fields: Vec<&str> = match op {
        Some(op) => fields_of(op).to_vec(),
        None => all_fields(),
    };
    if fields.contains(&name) || ID_FIELDS.contains(&name) {
        return Ok(());
    }
    let candidates: Vec<&str> = also.iter().copied().chain(fields.iter().copied()).collect();
    let suggestion = nearest(name, &candidates)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let whose = match op {
        Some(op) => format!("`{op}` spans record"),
        None => "spans record".to_owned(),
    };
    Err(format!(
        "no span field `{name}`: {suggestion}{whose} {}",
        fields
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Where the key `name` of an `attributes = { … }` table stands, found backwards from its
/// value's span (the table keeps no span for its keys).
fn attribute_key_span(text: &str, value: Range<usize>, name: &str) -> Range<usize> {
    let start = text[..value.start].rfind(name).unwrap_or(value.start);
    start..start
}

/// The closest known name, if it is close enough to be a likely typo.
fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    // A word that begins a known name (`trigger` for `trigger_event`) is a likely short form.
    let short_form = |k: &str| word.len() >= 4 && k.starts_with(word);
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= k.len() / 3 + 1 || short_form(k))
        .min()
        .map(|(_, k)| k)
}
