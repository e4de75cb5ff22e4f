//! How the booking service is configured: where its peers live, its secrets, the event types
//! it knows, its store and its timeouts; and why it may fail to start.

use std::path::PathBuf;
use std::time::Duration;

use super::bugs::PlantedBugs;
use super::store::StoreError;
use crate::contract::{
    EventType, DEFAULT_CRON_API_KEY, DEFAULT_STRIPE_WEBHOOK_SECRET, DEFAULT_WEBHOOK_SECRET,
};

/// Where the service's peers live and how it behaves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Base URL of the Google Calendar API; empty: no calendar events are created.
    pub google_calendar_url: String,
    /// Base URL of Stripe's API.
    pub stripe_url: String,
    /// Base URL of the email provider; empty: reminders go out unbatched.
    pub email_url: String,
    /// Each subscriber's URL, one `BOOKING_CREATED` delivery each per booking.
    pub webhook_subscribers: Vec<String>,
    /// The secret webhook deliveries are signed with (`x-cal-signature-256`).
    pub webhook_secret: String,
    /// The signing secret of the Stripe webhook endpoint (`whsec_…`).
    pub stripe_webhook_secret: String,
    /// The key a cron call must present (`CRON_API_KEY`); a call without it is answered 401.
    pub cron_api_key: String,
    /// The event types the service knows; a booking for any other id gets a plain, free,
    /// single-attendee event type.
    pub event_types: Vec<EventType>,
    /// The SQLite file of the service's store; it outlives the process.
    pub database: PathBuf,
    /// Seeds request ids and booking uids.
    pub seed: u64,
    /// Which process this is on the same database (0 first, +1 per restart): keeps ids drawn
    /// after a restart from repeating those drawn before it.
    pub generation: u64,
    /// Declared cost of one store transaction on the virtual clock.
    pub store_latency: Duration,
    /// Virtual timeout of the Google Calendar call.
    pub calendar_timeout: Duration,
    /// Virtual timeout of the Stripe call.
    pub stripe_timeout: Duration,
    /// Virtual timeout of each email provider call.
    pub email_timeout: Duration,
    /// Virtual timeout of each webhook delivery attempt.
    pub webhook_timeout: Duration,
    /// Propagation bugs to reproduce; empty for a correct service.
    pub bugs: PlantedBugs,
    /// Whether the service mounts the W3C conformance route (`POST /test`), which POSTs to
    /// any URL it is given: only `trace-harness serve` turns it on, never a replay.
    pub conformance_endpoint: bool,
    /// How long a clean stop (SIGTERM, a restart) lets requests in flight finish before it
    /// abandons them, in real time; what they hold is then given back (`BookingService::stop`).
    pub in_flight_grace: Duration,
}

impl ServiceConfig {
    /// A service with no peers, default secrets and timeouts, storing into `database`.
    pub fn new(database: PathBuf, seed: u64) -> Self {
        ServiceConfig {
            google_calendar_url: String::new(),
            stripe_url: String::new(),
            email_url: String::new(),
            webhook_subscribers: Vec::new(),
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            stripe_webhook_secret: DEFAULT_STRIPE_WEBHOOK_SECRET.to_owned(),
            cron_api_key: DEFAULT_CRON_API_KEY.to_owned(),
            event_types: Vec::new(),
            database,
            seed,
            generation: 0,
            store_latency: Duration::ZERO,
            calendar_timeout: Duration::from_secs(10),
            stripe_timeout: Duration::from_secs(80),
            email_timeout: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            bugs: PlantedBugs::default(),
            conformance_endpoint: false,
            in_flight_grace: Duration::from_secs(10),
        }
    }

    /// The event type `id`: a configured one, or a plain, free, single-attendee one.
    pub(crate) fn event_type(&self, id: u64) -> EventType {
        self.event_types
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .unwrap_or(EventType {
                id,
                ..EventType::default()
            })
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Its store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// It could not bind its listener.
    #[error("cannot listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
    /// Its outbound HTTP client could not be built.
    #[error("cannot build the outbound HTTP client: {0}")]
    Client(String),
}
