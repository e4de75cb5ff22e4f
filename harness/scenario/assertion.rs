//! The validated form of a scenario's `[[expect]]` entries: what to select, and what must hold
//! of it. `expect` checks them against a replay's outcome.

use serde::Deserialize;

use super::compare::{DurationTest, ValueTest};
use super::selector::Selector;

/// One `[[expect]]` entry of a scenario, validated.
#[derive(Clone, Debug)]
pub struct Assertion {
    /// Its `name`, or `expect #N` by its position.
    pub name: String,
    /// What it is about: spans a selector picks, or a mock's requests.
    pub target: Target,
    /// How many spans (or mock requests) must match.
    pub count: Option<usize>,
    /// Every matched span has this status.
    pub status: Option<ExpectedStatus>,
    /// Every matched span's parent matches this selector.
    pub child_of: Option<Selector>,
    /// Every matched span links follows-from to a span matching this selector.
    pub follows_from: Option<Selector>,
    /// Every matched span's duration passes this test.
    pub duration: Option<DurationTest>,
    /// Every matched span has these fields, each passing its test.
    pub attributes: Vec<(String, ValueTest)>,
    /// Every matched span wrote this many events (log lines), counting only those whose
    /// message matches the regex when one is given.
    pub events: Option<EventCount>,
    /// Some log line written in the matched spans passes this test.
    pub log: Option<ValueTest>,
}

/// `events = { count, matching }`: how many log lines a span writes.
#[derive(Clone, Debug)]
pub struct EventCount {
    /// How many.
    pub count: usize,
    /// Only lines whose message matches count, when given.
    pub matching: Option<regex::Regex>,
}

/// What an assertion is about.
#[derive(Clone, Debug)]
pub enum Target {
    /// The spans the selector picks.
    Spans(Selector),
    /// The requests received by the named mock.
    Mock(String),
    /// A timeline step's HTTP answer: the step's number (1-based, in the order steps run) and
    /// its place among the steps that send a request (restarts send none).
    Step {
        /// As the scenario numbers it.
        number: usize,
        /// Its index in the outcome's exchanges.
        exchange: usize,
        /// The HTTP status it must answer with.
        status: u16,
    },
}

/// `status = "ok" | "error"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedStatus {
    /// The span ended without an error.
    Ok,
    /// The span logged at ERROR level.
    Error,
}
