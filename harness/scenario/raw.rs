//! The scenario file as written, before validation: what TOML deserialises into.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ExpectedStatus;
use super::{BookStep, CronJob, MockSpec, ServiceSpec, StripeStep};
use crate::clock;
use crate::contract::EventType;

/// The whole file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) description: String,
    pub(super) seed: u64,
    #[serde(default)]
    pub(super) service: ServiceSpec,
    #[serde(default)]
    pub(super) event_types: Vec<Spanned<EventType>>,
    #[serde(default)]
    pub(super) mocks: BTreeMap<String, Spanned<MockSpec>>,
    pub(super) timeline: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    pub(super) expect: Vec<Spanned<RawAssertion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(deserialize_with = "clock::deserialize_duration")]
    pub(super) at: Duration,
    #[serde(default)]
    pub(super) book: Option<BookStep>,
    #[serde(default)]
    pub(super) cron: Option<CronJob>,
    #[serde(default)]
    pub(super) stripe: Option<StripeStep>,
    #[serde(default)]
    pub(super) restart: Option<bool>,
    /// `crash = "after_send"` or `crash = { point = "after_send", job = 2 }`, on a cron step;
    /// read by hand (`validate::crash_of`) for errors in the scenario's words.
    #[serde(default)]
    pub(super) crash: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) select: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) mock: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) count: Option<usize>,
    #[serde(default)]
    pub(super) step: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) status: Option<Spanned<RawStatus>>,
    #[serde(default)]
    pub(super) child_of: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) follows_from: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) duration: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) events: Option<RawEvents>,
    #[serde(default)]
    pub(super) log: Option<Spanned<String>>,
}

impl RawAssertion {
    /// Whether it has a check only spans can pass (`status` aside, which steps take too).
    pub(super) fn has_span_checks(&self) -> bool {
        self.child_of.is_some()
            || self.follows_from.is_some()
            || self.duration.is_some()
            || !self.attributes.is_empty()
            || self.events.is_some()
            || self.log.is_some()
    }
}

/// `status = "ok" | "error"` for spans, `status = 402` for a step's HTTP answer.
#[derive(Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(super) enum RawStatus {
    Span(ExpectedStatus),
    Http(u16),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) count: usize,
    #[serde(default)]
    pub(super) matching: Option<Spanned<String>>,
}
