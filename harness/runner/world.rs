//! The world a booking service runs in, for replays and load runs alike: the scenario's mocks
//! and the service's configuration pointing at them. Read from the scenario once, as plain
//! values, so starting it (and restarting the service) never goes back to the scenario.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;

use crate::booking::{PlantedBugs, ServiceConfig};
use crate::contract::DEFAULT_WEBHOOK_SECRET;
use crate::mocks::{MockBehaviour, MockKind, MockService, WEBHOOK_PATH};
use crate::scenario::Scenario;

/// One mock to start: its behaviours by route and, for a webhook subscriber, the secret it
/// verifies deliveries with.
struct MockPlan {
    name: String,
    kind: MockKind,
    routes: BTreeMap<String, Vec<MockBehaviour>>,
    secret: Option<String>,
}

/// The mocks to start and the service's configuration, everything but the addresses and the
/// database that only a started world has.
pub(crate) struct World {
    mocks: Vec<MockPlan>,
    service: ServiceConfig,
}

impl World {
    /// The world `scenario` describes.
    pub(crate) fn of(scenario: &Scenario) -> World {
        let mocks = scenario
            .mocks
            .iter()
            .map(|(name, spec)| MockPlan {
                name: name.clone(),
                kind: spec.kind,
                routes: spec.route_behaviours(),
                // Subscribers verify deliveries with the scenario's secret, by default the
                // service's.
                secret: (spec.kind == MockKind::WebhookSubscriber).then(|| {
                    spec.secret
                        .clone()
                        .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRET.to_owned())
                }),
            })
            .collect();
        let mut service = ServiceConfig::new(PathBuf::new(), scenario.seed);
        service.store_latency = scenario.service.store_latency;
        service.bugs = PlantedBugs(scenario.service.bugs.clone());
        service.event_types = scenario.event_types.clone();
        World { mocks, service }
    }

    /// Starts the mocks, recording what they receive if `record_mocks`, and returns them with
    /// the service's configuration pointing at them and at `database`.
    pub(crate) async fn start(
        &self,
        database: PathBuf,
        record_mocks: bool,
    ) -> (Vec<MockService>, ServiceConfig) {
        self.start_on(database, record_mocks, Vec::new()).await
    }

    /// [`start`](Self::start), the `i`-th mock (in name order) on `listeners[i]` when that is
    /// given: a fixed address a running service was told.
    pub(crate) async fn start_on(
        &self,
        database: PathBuf,
        record_mocks: bool,
        listeners: Vec<Option<TcpListener>>,
    ) -> (Vec<MockService>, ServiceConfig) {
        let mut listeners = listeners.into_iter();
        let mut mocks = Vec::with_capacity(self.mocks.len());
        for plan in &self.mocks {
            mocks.push(
                MockService::launch(
                    &plan.name,
                    plan.kind,
                    &plan.routes,
                    plan.secret.clone(),
                    record_mocks,
                    listeners.next().flatten(),
                )
                .await,
            );
        }
        let config = self.pointed_at(
            database,
            mocks.iter().map(|mock| (mock.kind, mock.base_url())),
        );
        (mocks, config)
    }

    /// The mocks' names and kinds, in the order they start.
    pub(crate) fn mock_kinds(&self) -> Vec<(&str, MockKind)> {
        self.mocks
            .iter()
            .map(|m| (m.name.as_str(), m.kind))
            .collect()
    }

    /// The service's configuration with `database` and the mocks at `base_urls` (each mock's
    /// kind and base URL, in start order).
    pub(crate) fn pointed_at(
        &self,
        database: PathBuf,
        base_urls: impl Iterator<Item = (MockKind, String)>,
    ) -> ServiceConfig {
        let mut config = self.service.clone();
        config.database = database;
        for (kind, url) in base_urls {
            match kind {
                MockKind::GoogleCalendar => config.google_calendar_url = url,
                MockKind::Stripe => config.stripe_url = url,
                MockKind::EmailProvider => config.email_url = url,
                MockKind::WebhookSubscriber => config
                    .webhook_subscribers
                    .push(format!("{url}{WEBHOOK_PATH}")),
            }
        }
        config
    }
}
