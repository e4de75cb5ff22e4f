//! What the runner sends the booking service and reads back: a booking step's request with
//! seeded fake attendees, the route a cron step calls, and response headers as text.

use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::Name;
use fake::Fake;
use rand_chacha::ChaCha8Rng;

use crate::booking::{AttendeeResponses, BookingRequest};
use crate::contract::routes;
use crate::scenario::{Attendee, BookStep, CronJob};

/// The service route a cron step calls, as Cal.com's scheduler does.
pub(crate) fn cron_path(job: CronJob) -> &'static str {
    match job {
        CronJob::Webhooks => routes::WEBHOOK_CRON,
        CronJob::Reminders => routes::REMINDER_CRON,
    }
}

/// A response header's value as text, if it has one.
pub(crate) fn owned_header<K: axum::http::header::AsHeaderName>(
    headers: &axum::http::HeaderMap,
    name: K,
) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The request a booking step sends; attendees the step leaves out are seeded fake data.
pub(crate) fn booking_request(book: &BookStep, rng: &mut ChaCha8Rng) -> BookingRequest {
    let count = book.attendees.unwrap_or(1).max(1);
    let mut attendees: Vec<AttendeeResponses> = (1..=count)
        .map(|seat| {
            let attendee = match (&book.attendee, seat) {
                (Some(given), 1) => given.clone(),
                _ => Attendee {
                    name: Name().fake_with_rng(rng),
                    email: SafeEmail().fake_with_rng(rng),
                },
            };
            let email = if book.invalid_email.contains(&seat) {
                // A domain without a dot: the booking form lets it through, the provider won't.
                let local = attendee.email.split('@').next().unwrap_or_default();
                format!("{local}@invalid")
            } else {
                attendee.email
            };
            AttendeeResponses {
                name: attendee.name,
                email,
            }
        })
        .collect();
    let booker = attendees.remove(0);
    BookingRequest {
        event_type_id: book.event_type_id,
        title: book.title.clone(),
        start: book.start.clone(),
        end: book.end.clone(),
        responses: booker,
        guests: attendees,
    }
}
