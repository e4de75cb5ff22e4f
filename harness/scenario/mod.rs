//! Scenario files: the TOML schema, parsing with `file:line:col` errors, and validation.
//! Nothing here runs a replay.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::clock;
use crate::contract::OPERATIONS;
use crate::expect::{
    Assertion, DurationTest, EventCount, ExpectedStatus, Ordering, Selector, Target, ValueTest,
};
use crate::mocks::{MockBehaviour, MockKind};

/// Upper bounds on what one scenario may ask for, so a typo cannot ask for a billion steps.
pub const MAX_STEPS: usize = 1_000;
pub const MAX_MOCKS: usize = 32;
pub const MAX_BEHAVIOURS: usize = 100;
pub const MAX_ASSERTIONS: usize = 200;
pub const MAX_SEATS: u32 = 100;

/// A validated scenario, ready to replay.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file's stem: `calendar_failure` for `scenarios/calendar_failure.toml`.
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub seed: u64,
    pub service: ServiceSpec,
    pub event_types: Vec<EventTypeSpec>,
    pub mocks: BTreeMap<String, MockSpec>,
    pub timeline: Vec<Step>,
    pub expect: Vec<Assertion>,
}

/// How the booking service under test is configured (`[service]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Declared cost of one database transaction on the virtual clock.
    #[serde(default, deserialize_with = "clock::deserialize_duration")]
    pub store_latency: Duration,
    /// Propagation bugs the service should reproduce, to prove the harness catches them.
    #[serde(default)]
    pub bugs: Vec<crate::booking::PlantedBug>,
}

/// An event type the service knows (`[[event_types]]`): the contract's one type.
pub use crate::contract::EventType as EventTypeSpec;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    pub kind: MockKind,
    /// Behaviours of the kind's main route.
    #[serde(default)]
    pub respond: Vec<Spanned<MockBehaviour>>,
    /// Behaviours of its other routes, by route name (`mail_batch = [ … ]`).
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<Vec<Spanned<MockBehaviour>>>>,
    /// A webhook subscriber's shared secret for `X-Cal-Signature-256`; the service's own when
    /// absent. Another value makes the subscriber refuse every delivery with 401.
    #[serde(default)]
    pub secret: Option<String>,
}

impl MockSpec {
    /// Behaviours of the main route (`respond`).
    pub fn behaviours(&self) -> Vec<MockBehaviour> {
        self.respond.iter().map(|b| b.get_ref().clone()).collect()
    }

    /// Behaviours by route name, the main route included.
    pub fn route_behaviours(&self) -> BTreeMap<String, Vec<MockBehaviour>> {
        let plain = |list: &[Spanned<MockBehaviour>]| -> Vec<MockBehaviour> {
            list.iter().map(|b| b.get_ref().clone()).collect()
        };
        let mut routes: BTreeMap<String, Vec<MockBehaviour>> = self
            .routes
            .iter()
            .map(|(name, list)| (name.clone(), plain(list.get_ref())))
            .collect();
        if let Some(main) = self.kind.routes().first() {
            routes.insert((*main).to_owned(), plain(&self.respond));
        }
        routes
    }
}

/// One step on the timeline, at a virtual offset from the scenario's start.
#[derive(Clone, Debug)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub enum Action {
    Book(BookStep),
    Cron(CronJob),
    /// Stripe delivers an event to the service's webhook endpoint.
    Stripe(StripeStep),
    /// The service process stops (all in-memory state dropped) and a new one starts on the same
    /// database.
    Restart,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeStep {
    pub event: StripeEvent,
    /// Which PaymentIntent (1-based, in creation order) the event is about.
    #[serde(default = "first")]
    pub payment_intent: usize,
    #[serde(default)]
    pub signature: SignatureKind,
}

fn first() -> usize {
    1
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum StripeEvent {
    #[serde(rename = "payment_intent.succeeded")]
    PaymentIntentSucceeded,
}

/// How the runner, acting as Stripe, signs the event.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// With the endpoint's secret, timestamped now.
    #[default]
    Valid,
    /// With another secret.
    Forged,
    /// With the right secret but a timestamp outside Stripe's 5-minute tolerance.
    Stale,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookStep {
    pub event_type_id: u64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "default_end")]
    pub end: String,
    /// The attendee; seeded fake data when absent.
    #[serde(default)]
    pub attendee: Option<Attendee>,
    /// How many seat holders book together (seeded fake names and emails); 1 when absent.
    #[serde(default)]
    pub attendees: Option<u32>,
    /// Seat holders (1-based) whose address the provider will refuse: the runner replaces its
    /// domain with one that has no dot.
    #[serde(default)]
    pub invalid_email: Vec<u32>,
    /// An inbound `traceparent` to continue, as if a caller had one.
    #[serde(default)]
    pub traceparent: Option<String>,
}

fn default_start() -> String {
    "2026-03-02T10:00:00Z".to_owned()
}

fn default_end() -> String {
    "2026-03-02T10:30:00Z".to_owned()
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    pub name: String,
    pub email: String,
}

/// The cron routes the service exposes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CronJob {
    /// `POST /api/cron/webhooks`: run due webhook jobs.
    Webhooks,
    /// `POST /api/cron/workflows/scheduleEmailReminders`: send due reminders.
    Reminders,
}

// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: String,
    seed: u64,
    #[serde(default)]
    service: ServiceSpec,
    #[serde(default)]
    event_types: Vec<Spanned<EventTypeSpec>>,
    #[serde(default)]
    mocks: BTreeMap<String, Spanned<MockSpec>>,
    timeline: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    expect: Vec<Spanned<RawAssertion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(deserialize_with = "clock::deserialize_duration")]
    at: Duration,
    #[serde(default)]
    book: Option<BookStep>,
    #[serde(default)]
    cron: Option<CronJob>,
    #[serde(default)]
    stripe: Option<StripeStep>,
    #[serde(default)]
    restart: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    select: Option<Spanned<String>>,
    #[serde(default)]
    mock: Option<Spanned<String>>,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    status: Option<ExpectedStatus>,
    #[serde(default)]
    child_of: Option<Spanned<String>>,
    #[serde(default)]
    follows_from: Option<Spanned<String>>,
    #[serde(default)]
    duration: Option<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    events: Option<RawEvents>,
    #[serde(default)]
    log: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    count: usize,
    #[serde(default)]
    matching: Option<Spanned<String>>,
}

/// Why a scenario could not be loaded. Every variant names the file; parse and validation
/// errors also give line and column and show the offending line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read the scenario: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Located>),
}

/// A message pinned to a place in a scenario file.
#[derive(Debug)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    source_line: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = " ".repeat(self.line.to_string().len());
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{gutter} | {}^",
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let at = |span: Range<usize>, message: String| {
            ScenarioError::Invalid(Box::new(locate(path, text, span.start, message)))
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            at(e.span().unwrap_or(0..0), message)
        })?;

        let steps = raw.timeline.get_ref();
        if steps.is_empty() {
            return Err(at(
                raw.timeline.span(),
                "the timeline is empty: add at least one `[[timeline]]` step".into(),
            ));
        }
        if steps.len() > MAX_STEPS {
            return Err(at(
                raw.timeline.span(),
                format!("{} steps; at most {MAX_STEPS} are allowed", steps.len()),
            ));
        }
        if raw.mocks.len() > MAX_MOCKS {
            return Err(at(0..0, format!("at most {MAX_MOCKS} mocks are allowed")));
        }
        if raw.expect.len() > MAX_ASSERTIONS {
            return Err(at(
                raw.expect[MAX_ASSERTIONS].span(),
                format!("at most {MAX_ASSERTIONS} `[[expect]]` entries are allowed"),
            ));
        }

        let mut mocks = BTreeMap::new();
        for (name, spec) in raw.mocks {
            let span = spec.span();
            let spec = spec.into_inner();
            if spec.respond.len() > MAX_BEHAVIOURS {
                return Err(at(
                    span,
                    format!("at most {MAX_BEHAVIOURS} responses per mock"),
                ));
            }
            for behaviour in &spec.respond {
                validate_behaviour(spec.kind, behaviour).map_err(|m| at(behaviour.span(), m))?;
            }
            if spec.secret.is_some() && spec.kind != MockKind::WebhookSubscriber {
                return Err(at(
                    span,
                    format!(
                        "`secret` is a webhook subscriber's signing secret; {} has none",
                        spec.kind.name()
                    ),
                ));
            }
            for (route, list) in &spec.routes {
                let known = &spec.kind.routes()[1..];
                if !known.contains(&route.as_str()) {
                    return Err(at(
                        list.span(),
                        format!(
                            "`{route}` is not a route of {} besides its main one (set by `respond`); expected one of: {}",
                            spec.kind.name(),
                            if known.is_empty() { "(none)".to_owned() } else { known.join(", ") }
                        ),
                    ));
                }
                if list.get_ref().len() > MAX_BEHAVIOURS {
                    return Err(at(
                        list.span(),
                        format!("at most {MAX_BEHAVIOURS} responses per route"),
                    ));
                }
                for behaviour in list.get_ref() {
                    validate_behaviour(spec.kind, behaviour)
                        .map_err(|m| at(behaviour.span(), m))?;
                }
            }
            mocks.insert(name, spec);
        }

        let mut timeline = Vec::with_capacity(steps.len());
        for step in steps {
            let raw_step = step.get_ref();
            let action = match (
                &raw_step.book,
                raw_step.cron,
                &raw_step.stripe,
                raw_step.restart,
            ) {
                (Some(book), None, None, None) => {
                    validate_book(book).map_err(|m| at(step.span(), m))?;
                    Action::Book(book.clone())
                }
                (None, Some(job), None, None) => Action::Cron(job),
                (None, None, Some(stripe), None) => Action::Stripe(stripe.clone()),
                (None, None, None, Some(true)) => Action::Restart,
                _ => return Err(at(
                    step.span(),
                    "a step needs exactly one action: `book = { … }`, `cron = \"webhooks\"` or `\"reminders\"`, `stripe = { event = … }` or `restart = true`"
                        .into(),
                )),
            };
            timeline.push(Step {
                at: raw_step.at,
                action,
            });
        }
        // Steps run in time order; equal times keep file order.
        timeline.sort_by_key(|s| s.at);

        let mut event_types: Vec<EventTypeSpec> = Vec::new();
        for event_type in raw.event_types {
            let span = event_type.span();
            let event_type = event_type.into_inner();
            if event_types.iter().any(|e| e.id == event_type.id) {
                return Err(at(
                    span,
                    format!("event type {} is defined twice", event_type.id),
                ));
            }
            if event_type.seats == Some(0) || event_type.seats.is_some_and(|n| n > MAX_SEATS) {
                return Err(at(span, format!("`seats` must be 1–{MAX_SEATS}")));
            }
            event_types.push(event_type);
        }

        let mut expect = Vec::with_capacity(raw.expect.len());
        for (i, assertion) in raw.expect.into_iter().enumerate() {
            let span = assertion.span();
            expect.push(validate_assertion(
                i,
                assertion.into_inner(),
                &mocks,
                text,
                span,
                &at,
            )?);
        }

        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Scenario {
            name,
            path: path.to_owned(),
            description: raw.description.trim().to_owned(),
            seed: raw.seed,
            service: raw.service,
            event_types,
            mocks,
            timeline,
            expect,
        })
    }

    /// Names of the mocks of one kind, in name order.
    pub fn mocks_of(&self, kind: MockKind) -> impl Iterator<Item = (&String, &MockSpec)> {
        self.mocks.iter().filter(move |(_, m)| m.kind == kind)
    }
}

fn validate_book(book: &BookStep) -> Result<(), String> {
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

fn validate_behaviour(kind: MockKind, behaviour: &Spanned<MockBehaviour>) -> Result<(), String> {
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

fn validate_assertion(
    index: usize,
    raw: RawAssertion,
    mocks: &BTreeMap<String, MockSpec>,
    text: &str,
    span: Range<usize>,
    at: &impl Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Assertion, ScenarioError> {
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
                let span_only = raw.status.is_some()
                    || raw.child_of.is_some()
                    || raw.follows_from.is_some()
                    || raw.duration.is_some()
                    || !raw.attributes.is_empty()
                    || raw.events.is_some()
                    || raw.log.is_some();
                if span_only {
                    return Err(at(span, "a `mock` expectation takes only `count`".into()));
                }
                Target::Mock(mock.get_ref().clone())
            }
            _ => return Err(at(
                span,
                "an expectation needs exactly one of `select = \"span[…]\"` or `mock = \"name\"`"
                    .into(),
            )),
        };
    Ok(Assertion {
        name: raw.name.unwrap_or_else(|| format!("expect #{}", index + 1)),
        target,
        count: raw.count,
        status: raw.status,
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
                let test = match value.get_ref() {
                    toml::Value::String(text) => ValueTest::parse(text),
                    toml::Value::Integer(n) => Ok(ValueTest::Compare(Ordering::Eq, n.to_string())),
                    toml::Value::Boolean(b) => Ok(ValueTest::Compare(Ordering::Eq, b.to_string())),
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

/// `log = "…"`: a bare text means "contains"; `matches …` and `== …` work as for attributes.
fn log_test(text: &str) -> Result<ValueTest, String> {
    if text.starts_with("matches ") || text.starts_with("== ") {
        ValueTest::parse(text)
    } else {
        let part = text.strip_prefix("contains ").unwrap_or(text);
        Ok(ValueTest::Contains(part.to_owned()))
    }
}

/// Where a TOML string's content begins: past the opening quote(s).
fn string_content_start(text: &str, span: Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or_default();
    let quotes = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|q| raw.starts_with(q))
        .map_or(0, str::len);
    span.start + quotes
}

/// The closest known name, if it is close enough to be a likely typo.
fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= k.len() / 3 + 1)
        .min()
        .map(|(_, k)| k)
}

fn locate(path: &Path, text: &str, offset: usize, message: String) -> Located {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    let source_line = text[line_start..]
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    Located {
        path: path.to_owned(),
        line,
        column,
        message,
        source_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Scenario::parse(Path::new("s.toml"), text)
            .unwrap_err()
            .to_string()
    }

    const MINIMAL: &str =
        "description = \"d\"\nseed = 1\n[[timeline]]\nat = \"0s\"\nbook = { event_type_id = 1 }\n";

    #[test]
    fn a_minimal_scenario_parses() {
        let s = Scenario::parse(Path::new("dir/minimal.toml"), MINIMAL).unwrap();
        assert_eq!(s.name, "minimal");
        assert_eq!(s.timeline.len(), 1);
    }

    #[test]
    fn errors_name_file_line_and_column_and_show_the_line() {
        let e = error(&MINIMAL.replace("seed = 1", "seed = \"one\""));
        assert!(
            e.starts_with("s.toml:2:8: invalid type: string \"one\", expected u64"),
            "{e}"
        );
        assert!(e.contains("2 | seed = \"one\"\n  |        ^"), "{e}");
        let e = error(&format!("{MINIMAL}colour = 1\n"));
        assert!(e.starts_with("s.toml:6:1: unknown field `colour`"), "{e}");
        let e = error(&MINIMAL.replace("\"0s\"", "\"5 minutes\""));
        assert!(e.starts_with("s.toml:4:6: expected a duration"), "{e}");
    }

    #[test]
    fn selector_errors_point_into_the_string() {
        let text = format!("{MINIMAL}[[expect]]\nselect = 'span[op=\"booking_creatoin\"]'\n");
        let e = error(&text);
        assert!(
            e.starts_with("s.toml:7:20: unknown operation `booking_creatoin`; did you mean `booking_creation`?"),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}[[expect]]\nselect = \"spam\"\n"));
        assert!(
            e.starts_with("s.toml:7:11: invalid selector: expected `span`"),
            "{e}"
        );
    }

    #[test]
    fn the_new_step_kinds_and_keys_parse() {
        let text = "description = \"d\"\nseed = 1\n[service]\nstore_latency = \"50ms\"\n\
            [[event_types]]\nid = 7\nprice = 500\nseats = 4\nreminders = true\n\
            [mocks.mail]\nkind = \"email_provider\"\n[mocks.mail.routes]\nmail_batch = [{ latency = \"5ms\" }]\n\
            [[timeline]]\nat = \"0s\"\nbook = { event_type_id = 7, attendees = 3, invalid_email = [3] }\n\
            [[timeline]]\nat = \"1m\"\nrestart = true\n\
            [[timeline]]\nat = \"2m\"\nstripe = { event = \"payment_intent.succeeded\", signature = \"stale\" }\n\
            [[timeline]]\nat = \"3m\"\ncron = \"reminders\"\n";
        let s = Scenario::parse(Path::new("s.toml"), text).unwrap();
        assert_eq!(s.service.store_latency, Duration::from_millis(50));
        assert_eq!(s.event_types[0].seats, Some(4));
        assert_eq!(s.event_types[0].currency, "usd");
        assert!(matches!(s.timeline[1].action, Action::Restart));
        assert!(matches!(
            &s.timeline[2].action,
            Action::Stripe(StripeStep {
                signature: SignatureKind::Stale,
                payment_intent: 1,
                ..
            })
        ));
        assert!(matches!(
            s.timeline[3].action,
            Action::Cron(CronJob::Reminders)
        ));
        let routes = s.mocks["mail"].route_behaviours();
        assert_eq!(routes["mail_batch"][0].latency, Duration::from_millis(5));
        assert!(routes["mail_send"].is_empty());
    }

    #[test]
    fn bad_new_keys_are_located() {
        let e = error(&MINIMAL.replace(
            "event_type_id = 1 }",
            "event_type_id = 1, attendees = 2, invalid_email = [3] }",
        ));
        assert!(
            e.starts_with(
                "s.toml:3:1: `invalid_email` names attendee 3, but the booking has attendees 1–2"
            ),
            "{e}"
        );
        let e = error(&format!(
            "{MINIMAL}[mocks.g]\nkind = \"google_calendar\"\n[mocks.g.routes]\nmail_batch = []\n"
        ));
        assert!(
            e.starts_with("s.toml:9:14: `mail_batch` is not a route of google_calendar"),
            "{e}"
        );
        let e = error(&format!(
            "{MINIMAL}[[timeline]]\nat = \"1m\"\nrestart = true\ncron = \"webhooks\"\n"
        ));
        assert!(
            e.starts_with("s.toml:6:1: a step needs exactly one action"),
            "{e}"
        );
        let e = error(&format!(
            "{MINIMAL}[mocks.s]\nkind = \"stripe\"\nrespond = [{{ status = 402, error = \"rateLimitExceeded\" }}]\n"
        ));
        assert!(
            e.contains("`rateLimitExceeded` is not an error stripe answers with"),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}[[event_types]]\nid = 1\nseats = 0\n"));
        assert!(e.contains("`seats` must be 1–100"), "{e}");
    }

    #[test]
    fn references_to_undefined_mocks_are_rejected() {
        let e = error(&format!(
            "{MINIMAL}[[expect]]\nmock = \"nobody\"\ncount = 1\n"
        ));
        assert!(e.starts_with("s.toml:7:8: no mock named `nobody`"), "{e}");
    }
}
