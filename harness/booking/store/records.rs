//! The rows the store takes and gives back: what a booking, payment, webhook job or reminder
//! is made of on its way in, and what the crons and the Stripe route read back.

use crate::clock::VirtualTime;
use crate::contract::{Reclaim, MAX_JOB_CLAIMS};
use crate::trace::TraceContext;

/// A booking to store, with everything its single transaction writes.
#[derive(Debug, Clone)]
pub(crate) struct NewBooking {
    /// The booking's public uid.
    pub uid: String,
    /// The event type booked.
    pub event_type_id: u64,
    /// The booking's title.
    pub title: String,
    /// The slot's start, as requested.
    pub start_time: String,
    /// Seat holders in seat order; the first is the booker.
    pub attendees: Vec<(String, String)>,
    /// `ACCEPTED`, or `PENDING` until its payment succeeds.
    pub status: &'static str,
    /// The Google Calendar event's id, if one was created.
    pub calendar_event: Option<String>,
    /// The payment the booking waits for, if its event type has a price.
    pub payment: Option<NewPayment>,
    /// The request id of the request that made it.
    pub request_id: String,
    /// When it was made, on the virtual clock.
    pub created_at: VirtualTime,
}

/// A PaymentIntent created for a booking.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    /// Stripe's PaymentIntent id.
    pub external_id: String,
    /// Amount in the currency's smallest unit.
    pub amount: u64,
    /// ISO currency code, lowercase.
    pub currency: String,
    /// When the PaymentIntent was created.
    pub created_at: VirtualTime,
    /// The span that created the PaymentIntent.
    pub context: Option<TraceContext>,
}

/// A webhook delivery to schedule with a booking.
#[derive(Debug, Clone)]
pub(crate) struct NewWebhookJob {
    /// The event delivered (`BOOKING_CREATED`).
    pub trigger_event: &'static str,
    /// Where to deliver it.
    pub subscriber_url: String,
    /// The JSON body to deliver, signed when sent.
    pub payload: String,
    /// When it becomes due.
    pub scheduled_at: VirtualTime,
    /// The scheduling span's context, for the delivery to continue.
    pub context: Option<TraceContext>,
}

/// An attendee reminder to schedule.
#[derive(Debug, Clone)]
pub(crate) struct NewReminder {
    /// The attendee's seat, 1 for the booker.
    pub seat: u32,
    /// The attendee's name.
    pub name: String,
    /// The attendee's email address.
    pub email: String,
    /// The email provider's batch the send belongs to, if one was created.
    pub batch_id: Option<String>,
    /// When it becomes due.
    pub scheduled_at: VirtualTime,
    /// The scheduling span's context, for the send to continue.
    pub context: Option<TraceContext>,
}

/// A webhook job the cron picked up.
#[derive(Debug, Clone)]
pub(crate) struct DueWebhookJob {
    /// The job's row id.
    pub id: i64,
    /// The event delivered.
    pub trigger_event: String,
    /// Where to deliver it.
    pub subscriber_url: String,
    /// The JSON body to deliver.
    pub payload: String,
    /// When the job was scheduled.
    pub created_at: VirtualTime,
    /// The scheduling span's context, if it was stored.
    pub context: Option<TraceContext>,
    /// This claim of it.
    pub claim: Claim,
}

/// A reminder the cron picked up.
#[derive(Debug, Clone)]
pub(crate) struct DueReminder {
    /// The reminder's row id.
    pub id: i64,
    /// The booking it reminds of.
    pub booking_id: i64,
    /// That booking's uid.
    pub booking_uid: String,
    /// That booking's title.
    pub title: String,
    /// The attendee's seat.
    pub seat: u32,
    /// The attendee's name.
    pub name: String,
    /// The attendee's email address.
    pub email: String,
    /// The email provider's batch, if any.
    pub batch_id: Option<String>,
    /// The scheduling span's context, if it was stored.
    pub context: Option<TraceContext>,
    /// This claim of it.
    pub claim: Claim,
}

/// One claim of a job by a cron call: which claim it is and, for a re-claim, how the job came
/// back and from which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// 1 for the job's first claim, 2 for its first re-claim, …
    pub attempt: u32,
    /// For a re-claim: how the previous holder lost it, and that holder's process generation.
    pub previous: Option<(Reclaim, u64)>,
}

impl Claim {
    /// Whether the job has been claimed too often to run again: its lease expired after its
    /// last allowed claim, and this call ends it failed instead.
    pub(crate) fn exhausted(&self) -> bool {
        self.attempt > MAX_JOB_CLAIMS
    }
}

/// A payment looked up by its PaymentIntent id.
#[derive(Debug, Clone)]
pub(crate) struct StoredPayment {
    /// The booking it pays for.
    pub booking_id: i64,
    /// Whether Stripe reported it succeeded.
    pub success: bool,
    /// When the PaymentIntent was created.
    pub created_at: VirtualTime,
    /// The span that created the PaymentIntent, if it was stored.
    pub context: Option<TraceContext>,
}
