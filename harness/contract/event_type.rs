//! The event type: what the service knows about a bookable kind of meeting, and the shape a
//! scenario's `[[event_types]]` table has.

use serde::{Deserialize, Serialize};

/// The currency of an event type that names none.
pub const DEFAULT_CURRENCY: &str = "usd";

/// An event type the service knows; ids it does not know are plain, free, single-attendee.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventType {
    /// The `eventTypeId` bookings name it by.
    pub id: u64,
    /// Price in the currency's smallest unit: the booking then requires payment via Stripe.
    #[serde(default)]
    pub price: Option<u64>,
    /// ISO currency code, lowercase, as Stripe takes it.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Seats per slot: a seated event type, booked by up to this many attendees at once.
    #[serde(default)]
    pub seats: Option<u32>,
    /// Mandatory email reminders to every attendee.
    #[serde(default)]
    pub reminders: bool,
}

impl Default for EventType {
    /// Id 0, free, unseated, no reminders, in [`DEFAULT_CURRENCY`].
    fn default() -> Self {
        EventType {
            id: 0,
            price: None,
            currency: default_currency(),
            seats: None,
            reminders: false,
        }
    }
}

fn default_currency() -> String {
    DEFAULT_CURRENCY.to_owned()
}
