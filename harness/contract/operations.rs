//! The operations (span names) the service emits, and how its log lines name each one.

/// The root span of `POST /api/bookings`.
pub const BOOKING_CREATION: &str = "booking_creation";
/// The Google Calendar `events.insert` call (`EventManager.create`).
pub const CALENDAR_EVENT_CREATION: &str = "calendar_event_creation";
/// The Stripe PaymentIntent creation.
pub const PAYMENT_PROCESSING: &str = "payment_processing";
/// The seat check of a seated event type (`handleSeats`).
pub const HANDLE_SEATS: &str = "handle_seats";
/// Storing the booking with one `BOOKING_CREATED` job per subscriber.
pub const WEBHOOK_SCHEDULING: &str = "webhook_scheduling";
/// Scheduling attendee reminders, and later sending them (`scheduleMandatoryReminder`).
pub const SCHEDULE_MANDATORY_REMINDER: &str = "schedule_mandatory_reminder";
/// One webhook job's delivery, with its retries, run by the webhook cron.
pub const WEBHOOK_EXECUTION: &str = "webhook_execution";
/// Stripe's `payment_intent.succeeded` event handled by the Stripe webhook route.
pub const PAYMENT_SUCCESS_PROCESSING: &str = "payment_success_processing";
/// Stripe's `payment_intent.payment_failed` event handled by the Stripe webhook route.
pub const PAYMENT_FAILURE_PROCESSING: &str = "payment_failure_processing";
/// The booking's confirmation once its payment succeeded.
pub const BOOKING_CONFIRMATION: &str = "booking_confirmation";

/// Every operation (span name) the service emits.
pub const OPERATIONS: &[&str] = &[
    BOOKING_CREATION,
    CALENDAR_EVENT_CREATION,
    PAYMENT_PROCESSING,
    HANDLE_SEATS,
    WEBHOOK_SCHEDULING,
    SCHEDULE_MANDATORY_REMINDER,
    WEBHOOK_EXECUTION,
    PAYMENT_SUCCESS_PROCESSING,
    PAYMENT_FAILURE_PROCESSING,
    BOOKING_CONFIRMATION,
];

/// The fields (span attributes) the service records on each operation, as CONTRACT.md §8.1
/// lists them; empty for an operation not in [`OPERATIONS`]. `request.id` travels as the span's
/// request id, not as a field. A test replays every scenario and checks the service records
/// nothing else.
pub fn fields_of(op: &str) -> &'static [&'static str] {
    match op {
        BOOKING_CREATION => &["event_type_id", "booking_uid"],
        HANDLE_SEATS => &["seats", "requested"],
        CALENDAR_EVENT_CREATION => &["calendar"],
        PAYMENT_PROCESSING => &["provider"],
        WEBHOOK_SCHEDULING => &["trigger_event", "subscribers"],
        SCHEDULE_MANDATORY_REMINDER => &["attendees", "booking_uid", "reminders"],
        WEBHOOK_EXECUTION => &["job_id", "trigger_event"],
        PAYMENT_SUCCESS_PROCESSING | PAYMENT_FAILURE_PROCESSING => {
            &["payment_intent", "booking_id"]
        }
        BOOKING_CONFIRMATION => &["booking_id"],
        _ => &[],
    }
}

/// Every field any operation records, each once, in [`OPERATIONS`] order.
pub fn all_fields() -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = Vec::new();
    for op in OPERATIONS {
        for field in fields_of(op) {
            if !fields.contains(field) {
                fields.push(field);
            }
        }
    }
    fields
}

/// How each operation is named in a performance log line (`EventManager.create: 200ms`); an
/// operation not in [`OPERATIONS`] is named as is.
pub fn operation_label(op: &str) -> &str {
    match op {
        BOOKING_CREATION => "Booking creation",
        CALENDAR_EVENT_CREATION => "EventManager.create",
        PAYMENT_PROCESSING => "Payment processing",
        HANDLE_SEATS => "Seat handling",
        WEBHOOK_SCHEDULING => "Webhook scheduling",
        SCHEDULE_MANDATORY_REMINDER => "Reminder scheduling",
        WEBHOOK_EXECUTION => "Webhook execution",
        PAYMENT_SUCCESS_PROCESSING => "Payment success processing",
        PAYMENT_FAILURE_PROCESSING => "Payment failure processing",
        BOOKING_CONFIRMATION => "Booking confirmation",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_own_label() {
        let labels: std::collections::BTreeSet<&str> =
            OPERATIONS.iter().map(|op| operation_label(op)).collect();
        assert_eq!(labels.len(), OPERATIONS.len());
        assert!(OPERATIONS.iter().all(|op| operation_label(op) != *op));
        assert_eq!(operation_label("conformance_test"), "conformance_test");
    }
}
