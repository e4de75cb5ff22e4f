//! Booking creation, `POST /api/bookings`: the request's shape and checks, then Cal.com's
//! flow in one `booking_creation` span — seats, the Google Calendar event, the Stripe payment,
//! the booking stored with its webhook jobs, the mandatory reminders.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::http::{
    client_error, internal_error_body, rejected, set_header, Inbound, TRACE_ID_NAME,
};
use super::store::{NewBooking, NewPayment, NewReminder, NewWebhookJob, StoreError};
use super::{jobs, App};
use crate::clock;
use crate::contract::{
    peers, EventType, BOOKING_CREATION, CALENDAR_EVENT_CREATION, HANDLE_SEATS, PAYMENT_PROCESSING,
    SCHEDULE_MANDATORY_REMINDER, WEBHOOK_SCHEDULING,
};
use crate::trace::{self, Relation};

/// Seat holders one request may book.
pub(crate) const MAX_ATTENDEES: usize = 100;

/// The body of `POST /api/bookings`, in Cal.com's camelCase.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BookingRequest {
    /// The event type booked; see [`ServiceConfig::event_type`](super::ServiceConfig::event_type).
    pub event_type_id: u64,
    /// The booking's title; `Meeting with <booker>` if absent.
    #[serde(default)]
    pub title: Option<String>,
    /// The slot's start, as the booker's client sends it (ISO 8601).
    pub start: String,
    /// The slot's end.
    pub end: String,
    /// The booker: the first seat holder.
    pub responses: AttendeeResponses,
    /// Further seat holders booking together (seated event types only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<AttendeeResponses>,
}

/// One seat holder, as the booking form's `responses` carry them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttendeeResponses {
    /// The attendee's name.
    pub name: String,
    /// The attendee's email address; checked loosely (it contains `@`).
    pub email: String,
}

impl BookingRequest {
    /// What the service checks before it starts anything. It checks emails only loosely, as
    /// the booking form does; the email provider is stricter.
    fn validate(&self) -> Result<(), String> {
        if self.start.trim().is_empty() || self.end.trim().is_empty() {
            return Err("`start` and `end` must not be empty".into());
        }
        if self.guests.len() + 1 > MAX_ATTENDEES {
            return Err(format!("at most {MAX_ATTENDEES} attendees per booking"));
        }
        for (i, attendee) in self.attendees().enumerate() {
            if attendee.name.trim().is_empty() {
                return Err(format!("attendee {} has no name", i + 1));
            }
            if !attendee.email.contains('@') {
                return Err(format!(
                    "attendee {} has no valid email: {:?}",
                    i + 1,
                    attendee.email
                ));
            }
        }
        Ok(())
    }

    fn attendees(&self) -> impl Iterator<Item = &AttendeeResponses> {
        std::iter::once(&self.responses).chain(&self.guests)
    }
}

/// `POST /api/bookings`: checks the request, then runs the booking's flow in its
/// `booking_creation` span (continuing the inbound context) and names the trace in
/// `x-trace-id`.
pub(super) async fn create_booking(
    State(app): State<Arc<App>>,
    Extension(inbound): Extension<Inbound>,
    request: Result<Json<BookingRequest>, JsonRejection>,
) -> Response {
    let request = match request {
        Ok(Json(request)) => request,
        Err(rejection) => return rejected(rejection),
    };
    let event_type = app.config.event_type(request.event_type_id);
    let refusal = request.validate().err().or_else(|| {
        (event_type.seats.is_none() && !request.guests.is_empty()).then(|| {
            format!(
                "event type {} is not seated: one attendee per booking",
                event_type.id
            )
        })
    });
    // A booking that will be made gets its uid first, so its span opens with every field
    // (recording one later costs a second visit). A refused booking is traced too, without a
    // uid: a caller holding its X-Trace-Id can find out why.
    let admitted = match refusal {
        None => Ok(app.ids.booking_uid()),
        Some(message) => Err(message),
    };
    let span = info_span!(
        BOOKING_CREATION,
        event_type_id = request.event_type_id,
        booking_uid = admitted.as_deref().ok(),
    );
    if let Some(parent) = &inbound.0 {
        trace::continue_from(&span, parent, Relation::ChildOf);
    }
    let trace_id = trace::context_of(&span).map(|c| c.trace_id);
    let mut response = match admitted {
        Err(message) => {
            span.in_scope(|| warn!("Booking refused: {message}"));
            client_error(StatusCode::BAD_REQUEST, message)
        }
        Ok(uid) => match app
            .create_booking(uid, request, &event_type)
            .instrument(span.clone())
            .await
        {
            Ok(booking) => (StatusCode::CREATED, Json(booking)).into_response(),
            Err(e) => {
                let response = e.response();
                // A server span whose answer is 5xx is in error, with the reason: the one
                // OpenTelemetry's HTTP conventions ask for, and what a caller holding the
                // X-Trace-Id looks for.
                if response.status().is_server_error() && app.config.bugs.marks_server_errors() {
                    span.in_scope(|| error!("{e}"));
                }
                response
            }
        },
    };
    if let Some(trace_id) = trace_id {
        if let Ok(hex) = std::str::from_utf8(&trace_id.to_hex()) {
            set_header(response.headers_mut(), &TRACE_ID_NAME, hex);
        }
    }
    response
}

/// Why a booking was not made. Each leaves no rows behind: the booking's single transaction
/// comes after every check and every call that can fail.
#[derive(Debug, thiserror::Error)]
enum BookingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Not enough seats: {available} available, {requested} requested")]
    NoSeats { available: u32, requested: usize },
    #[error("Payment could not be initiated: {0}")]
    Payment(String),
}

impl BookingError {
    /// The answer, in Cal.com's error shape; a store failure's details stay out of it.
    fn response(&self) -> Response {
        match self {
            BookingError::Store(_) => internal_error_body(),
            e @ BookingError::NoSeats { .. } => client_error(StatusCode::CONFLICT, e.to_string()),
            e @ BookingError::Payment(_) => client_error(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Booking {
    id: i64,
    uid: String,
    status: &'static str,
    event_type_id: u64,
    title: String,
    start_time: String,
    end_time: String,
    attendees: Vec<AttendeeResponses>,
    calendar_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentSummary {
    payment_intent: String,
    client_secret: String,
    amount: u64,
    currency: String,
}

impl App {
    /// Cal.com's booking flow for an admitted request, inside its `booking_creation` span.
    async fn create_booking(
        &self,
        uid: String,
        request: BookingRequest,
        event_type: &EventType,
    ) -> Result<Booking, BookingError> {
        info!(
            "Booking creation started for eventTypeId: {}{}",
            request.event_type_id,
            if event_type.price.is_some() {
                ", payment required"
            } else {
                ""
            }
        );
        let attendees: Vec<AttendeeResponses> = request.attendees().cloned().collect();
        if let Some(seats) = event_type.seats {
            self.handle_seats(seats, attendees.len())
                .instrument(info_span!(HANDLE_SEATS, seats, requested = attendees.len()))
                .await?;
        }
        let title = request
            .title
            .clone()
            .unwrap_or_else(|| format!("Meeting with {}", request.responses.name));
        let calendar_event = if self.config.google_calendar_url.is_empty() {
            None
        } else {
            self.create_calendar_event(&uid, &title, &request)
                .instrument(info_span!(CALENDAR_EVENT_CREATION, calendar = "google"))
                .await
        };
        let payment = match event_type.price {
            Some(amount) => Some(
                self.create_payment(&uid, amount, &event_type.currency)
                    .instrument(info_span!(PAYMENT_PROCESSING, provider = "stripe"))
                    .await?,
            ),
            None => None,
        };
        let mut booking = Booking {
            id: 0,
            uid,
            status: if payment.is_some() {
                "PENDING"
            } else {
                "ACCEPTED"
            },
            event_type_id: request.event_type_id,
            title,
            start_time: request.start,
            end_time: request.end,
            attendees,
            calendar_event_id: calendar_event,
            payment: payment.as_ref().map(|(summary, _)| summary.clone()),
        };
        booking.id = self
            .store_booking_with_webhooks(&booking, payment.map(|(_, record)| record))
            .instrument(info_span!(
                WEBHOOK_SCHEDULING,
                trigger_event = "BOOKING_CREATED",
                subscribers = self.config.webhook_subscribers.len(),
            ))
            .await?;
        if event_type.reminders {
            self.schedule_reminders(&booking)
                .instrument(info_span!(
                    SCHEDULE_MANDATORY_REMINDER,
                    attendees = booking.attendees.len()
                ))
                .await?;
        }
        Ok(booking)
    }

    /// `handleSeats`: a seated event type takes the booking only if every seat holder fits.
    async fn handle_seats(&self, seats: u32, requested: usize) -> Result<(), BookingError> {
        info!("Processing seated booking: {requested} of {seats} seats");
        if requested > seats as usize {
            let e = BookingError::NoSeats {
                available: seats,
                requested,
            };
            error!("{e}");
            return Err(e);
        }
        Ok(())
    }

    /// `EventManager.create`: inserts the Google Calendar event. A failure is logged on the
    /// span and the booking goes on without the event.
    async fn create_calendar_event(
        &self,
        uid: &str,
        title: &str,
        request: &BookingRequest,
    ) -> Option<String> {
        info!("EventManager.create started");
        let url = format!(
            "{}{}",
            self.config.google_calendar_url,
            peers::GOOGLE_EVENTS_INSERT
        );
        let attendees: Vec<serde_json::Value> = request
            .attendees()
            .map(|a| serde_json::json!({ "email": a.email, "displayName": a.name }))
            .collect();
        let body = serde_json::json!({
            "summary": title,
            "description": format!("Booking {uid}"),
            "start": { "dateTime": request.start },
            "end": { "dateTime": request.end },
            "attendees": attendees,
        });
        let reply = self
            .outbound
            .post(
                &url,
                "application/json",
                body.to_string(),
                &[],
                self.config.calendar_timeout,
            )
            .await;
        match reply {
            Ok(reply) if (200..300).contains(&reply.status) => {
                debug!("Google Calendar event created");
                let event: serde_json::Value =
                    serde_json::from_str(&reply.body).unwrap_or_default();
                event
                    .get("id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned)
            }
            Ok(reply) => {
                error!(
                    "Google Calendar API error: {}",
                    google_error_message(reply.status, &reply.body)
                );
                None
            }
            Err(e) => {
                error!("Google Calendar API error: {e}");
                None
            }
        }
    }

    /// Creates the booking's PaymentIntent at Stripe, carrying this span's context in its
    /// metadata: Stripe hands the metadata back with the event it sends when the payment
    /// succeeds, however much later that is.
    async fn create_payment(
        &self,
        uid: &str,
        amount: u64,
        currency: &str,
    ) -> Result<(PaymentSummary, NewPayment), BookingError> {
        let context = trace::current_context();
        // Stripe's API takes form-encoded bodies, nested keys in brackets.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("amount", &amount.to_string())
                .append_pair("currency", currency)
                .append_pair("payment_method_types[]", "card")
                .append_pair("metadata[bookingUid]", uid);
            if let Some(context) = &context {
                form.append_pair("metadata[traceparent]", context.traceparent().as_str());
            }
            form.finish()
        };
        let url = format!(
            "{}{}",
            self.config.stripe_url,
            peers::STRIPE_PAYMENT_INTENTS
        );
        let reply = self
            .outbound
            .post(
                &url,
                "application/x-www-form-urlencoded",
                form,
                &[("idempotency-key", format!("booking-{uid}-payment"))],
                self.config.stripe_timeout,
            )
            .await;
        let created_at = clock::now();
        let failure = |reason: String| {
            error!("Stripe API error: {reason}");
            BookingError::Payment(reason)
        };
        let reply = reply.map_err(|e| failure(e.to_string()))?;
        if !(200..300).contains(&reply.status) {
            return Err(failure(stripe_error_message(reply.status, &reply.body)));
        }
        let intent: serde_json::Value = serde_json::from_str(&reply.body)
            .map_err(|_| failure("malformed PaymentIntent in Stripe's response".into()))?;
        let (Some(id), Some(secret)) = (intent["id"].as_str(), intent["client_secret"].as_str())
        else {
            return Err(failure("PaymentIntent without id or client_secret".into()));
        };
        info!(payment_intent = id, "Payment initiated with Stripe");
        Ok((
            PaymentSummary {
                payment_intent: id.to_owned(),
                client_secret: secret.to_owned(),
                amount,
                currency: currency.to_owned(),
            },
            NewPayment {
                external_id: id.to_owned(),
                amount,
                currency: currency.to_owned(),
                created_at,
                context,
            },
        ))
    }

    /// Stores the booking (attendees, payment) and one `BOOKING_CREATED` job per subscriber,
    /// each job carrying this span's context so that its execution continues the booking's
    /// trace.
    async fn store_booking_with_webhooks(
        &self,
        booking: &Booking,
        payment: Option<NewPayment>,
    ) -> Result<i64, StoreError> {
        let subscribers = &self.config.webhook_subscribers;
        match subscribers.len() {
            0 => {}
            1 => info!("Scheduling BOOKING_CREATED webhook"),
            n => info!("Scheduling BOOKING_CREATED webhook for {n} subscribers"),
        }
        let now = clock::now();
        let context = self.config.bugs.job_context();
        let record = NewBooking {
            uid: booking.uid.clone(),
            event_type_id: booking.event_type_id,
            title: booking.title.clone(),
            start_time: booking.start_time.clone(),
            attendees: booking
                .attendees
                .iter()
                .map(|a| (a.name.clone(), a.email.clone()))
                .collect(),
            status: booking.status,
            calendar_event: booking.calendar_event_id.clone(),
            payment,
            request_id: trace::current_request_id()
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            created_at: now,
        };
        self.store.insert_booking(&record, |booking_id| {
            let payload = serde_json::json!({
                "triggerEvent": "BOOKING_CREATED",
                "payload": {
                    "bookingId": booking_id,
                    "uid": booking.uid,
                    "eventTypeId": booking.event_type_id,
                    "title": booking.title,
                    "startTime": booking.start_time,
                    "endTime": booking.end_time,
                    "attendees": booking.attendees,
                    "status": booking.status,
                }
            })
            .to_string();
            subscribers
                .iter()
                .map(|url| NewWebhookJob {
                    trigger_event: "BOOKING_CREATED",
                    subscriber_url: url.clone(),
                    payload: payload.clone(),
                    scheduled_at: now,
                    context: context.clone(),
                })
                .collect()
        })
    }

    /// `scheduleMandatoryReminder`: one reminder per attendee, sent later by the reminders cron
    /// in the booking's trace. Scheduled sends share a SendGrid batch, so they can be cancelled
    /// together.
    async fn schedule_reminders(&self, booking: &Booking) -> Result<(), StoreError> {
        let n = booking.attendees.len();
        info!(
            "Scheduling reminders for {n} attendee{}",
            if n == 1 { "" } else { "s" }
        );
        let batch_id = if self.config.email_url.is_empty() {
            None
        } else {
            jobs::create_batch(self).await
        };
        let context = self.config.bugs.job_context();
        let now = clock::now();
        let reminders: Vec<NewReminder> = booking
            .attendees
            .iter()
            .enumerate()
            .map(|(i, a)| NewReminder {
                seat: i as u32 + 1,
                name: a.name.clone(),
                email: a.email.clone(),
                batch_id: batch_id.clone(),
                scheduled_at: now,
                context: context.clone(),
            })
            .collect();
        self.store.insert_reminders(booking.id, &reminders, now)
    }
}

/// The human message of a Google API error body (`error.message`), or the status.
fn google_error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// `error.message` (with `error.code`) of a Stripe error body, or the status.
fn stripe_error_message(status: u16, body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match error.and_then(|e| e["message"].as_str()) {
        Some(message) => match error.and_then(|e| e["code"].as_str()) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_owned(),
        },
        None => format!("HTTP {status}"),
    }
}
