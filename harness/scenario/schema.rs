//! The validated scenario: what a replay reads (mocks, timeline steps, expectations).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Assertion;
use crate::clock;
use crate::contract::{ArmedCrash, EventType};
use crate::mocks::{MockBehaviour, MockKind};

/// A validated scenario, ready to replay.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file's stem: `calendar_failure` for `scenarios/calendar_failure.toml`.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// What it shows, in words.
    pub description: String,
    /// Every id and fake attendee derives from it.
    pub seed: u64,
    /// How the booking service is configured.
    pub service: ServiceSpec,
    /// The event types the service knows.
    pub event_types: Vec<EventType>,
    /// The third parties, by name.
    pub mocks: BTreeMap<String, MockSpec>,
    /// The steps, in time order.
    pub timeline: Vec<Step>,
    /// What the replay's traces must show.
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
    pub bugs: Vec<crate::contract::PlantedBug>,
}

/// A third party the service calls (`[mocks.NAME]`): its API and how it answers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    /// Which API it serves.
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

    /// Every behaviour of every route: the main route's, then the other routes' in name order.
    pub fn behaviours_mut(&mut self) -> impl Iterator<Item = &mut MockBehaviour> {
        let routes = self.routes.values_mut().flat_map(|list| list.get_mut());
        self.respond.iter_mut().chain(routes).map(Spanned::get_mut)
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
    /// When, from the scenario's start.
    pub at: Duration,
    /// What happens then.
    pub action: Action,
    /// On a cron step: the service dies at this point of one of the call's jobs, and a new
    /// process starts on the same database, as at a restart (`crash = "after_send"`).
    pub crash: Option<ArmedCrash>,
}

/// What a timeline step does.
#[derive(Clone, Debug)]
pub enum Action {
    /// A booking request reaches the service.
    Book(BookStep),
    /// A cron route is called.
    Cron(CronJob),
    /// Stripe delivers an event to the service's webhook endpoint.
    Stripe(StripeStep),
    /// The service process stops (all in-memory state dropped) and a new one starts on the same
    /// database.
    Restart,
}

/// A Stripe event delivered to the service (`stripe = { … }`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeStep {
    /// Which event.
    pub event: StripeEvent,
    /// Which PaymentIntent (1-based, in creation order) the event is about.
    #[serde(default = "first")]
    pub payment_intent: usize,
    /// How it is signed.
    #[serde(default)]
    pub signature: SignatureKind,
}

fn first() -> usize {
    1
}

/// The Stripe events a scenario can deliver.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum StripeEvent {
    /// `payment_intent.succeeded`: the payment went through.
    #[serde(rename = "payment_intent.succeeded")]
    PaymentIntentSucceeded,
    /// `payment_intent.payment_failed`: the card was declined; the booking stays unpaid.
    #[serde(rename = "payment_intent.payment_failed")]
    PaymentIntentPaymentFailed,
}

impl StripeEvent {
    /// The event's type, as Stripe and scenario files name it.
    pub fn name(self) -> &'static str {
        use crate::contract::stripe_events::*;
        match self {
            StripeEvent::PaymentIntentSucceeded => PAYMENT_INTENT_SUCCEEDED,
            StripeEvent::PaymentIntentPaymentFailed => PAYMENT_INTENT_PAYMENT_FAILED,
        }
    }
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

/// A booking request (`book = { … }`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookStep {
    /// The event type booked.
    pub event_type_id: u64,
    /// The booking's title.
    #[serde(default)]
    pub title: Option<String>,
    /// The slot's start, RFC 3339.
    #[serde(default = "default_start")]
    pub start: String,
    /// The slot's end, RFC 3339.
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

/// An attendee named in the scenario.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    /// Their name.
    pub name: String,
    /// Their e-mail address.
    pub email: String,
}

/// The cron routes the service exposes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CronJob {
    /// `POST /api/cron/webhookTriggers`: run due webhook jobs.
    Webhooks,
    /// `POST /api/cron/workflows/scheduleEmailReminders`: send due reminders.
    Reminders,
}
