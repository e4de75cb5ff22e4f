//! The booking service's contract: the routes, headers, operation names, signing schemes,
//! event-type shape and default secrets that the service, the mocks, the runner and the
//! reports share.
//!
//! This module is the Rust side of a language-neutral service contract: a booking service
//! written in any language is replayable by the harness if it serves these routes, reads and
//! writes these headers, names its spans with these operations and signs with these schemes.
//! Nothing here knows about axum, the runner or scenario files; every value is plain data that
//! a document can state as is.

mod bugs;
mod event_type;
mod leases;
mod operations;
mod retry;
mod signing;

pub use bugs::PlantedBug;
pub use event_type::{EventType, DEFAULT_CURRENCY};
pub use leases::{
    abandoned_reason, lease_until_us, rerun_message, ArmedCrash, CrashPoint, Reclaim, JOB_LEASE,
    MAX_JOB_CLAIMS,
};
pub use operations::*;
pub use retry::{
    webhook_backoff, WEBHOOK_BACKOFF_BASE, WEBHOOK_BACKOFF_CAP, WEBHOOK_GONE, WEBHOOK_GONE_REASON,
    WEBHOOK_MAX_ATTEMPTS,
};
pub use signing::{
    cal_signature, cal_signature_matches, hmac_sha256, hmac_sha256_matches, stripe_signature,
    verify_stripe_signature, StripeSignatureError, STRIPE_TOLERANCE,
};

/// The routes the service serves. Every one takes `POST`.
pub mod routes {
    /// Creates a booking from a JSON `BookingRequest`; answers `201` with the booking.
    pub const BOOKINGS: &str = "/api/bookings";
    /// Delivers every due `BOOKING_CREATED` webhook job (Cal.com's scheduled webhook
    /// triggers cron). Authorised by [`CRON_API_KEY_PARAM`] or the `authorization` header.
    pub const WEBHOOK_CRON: &str = "/api/cron/webhookTriggers";
    /// Sends every due attendee reminder (Cal.com's workflow reminder cron). Authorised as
    /// [`WEBHOOK_CRON`] is.
    pub const REMINDER_CRON: &str = "/api/cron/workflows/scheduleEmailReminders";
    /// The query parameter a cron call may carry its key in (`?apiKey=…`), as Cal.com's cron
    /// routes read it when the `authorization` header is absent.
    pub const CRON_API_KEY_PARAM: &str = "apiKey";
    /// Where Stripe delivers its events, as Cal.com's Stripe app mounts it.
    pub const STRIPE_WEBHOOK: &str = "/api/integrations/stripepayment/webhook";
    /// The W3C Trace Context test-service endpoint; served only by `trace-harness serve`.
    pub const CONFORMANCE_TEST: &str = "/test";
}

/// The peers' API paths the service calls, which the mocks serve. Each peer's base URL is the
/// service's configuration; these are what follows it.
pub mod peers {
    /// Google Calendar API v3 `events.insert` on the primary calendar.
    pub const GOOGLE_EVENTS_INSERT: &str = "/calendar/v3/calendars/primary/events";
    /// Stripe: create a PaymentIntent.
    pub const STRIPE_PAYMENT_INTENTS: &str = "/v1/payment_intents";
    /// SendGrid v3: send one email.
    pub const SENDGRID_MAIL_SEND: &str = "/v3/mail/send";
    /// SendGrid v3: create a batch id for scheduled sends.
    pub const SENDGRID_MAIL_BATCH: &str = "/v3/mail/batch";
}

/// The Stripe event types the service handles at [`routes::STRIPE_WEBHOOK`]; any other is
/// acknowledged and ignored.
pub mod stripe_events {
    /// The payment went through: the booking is confirmed.
    pub const PAYMENT_INTENT_SUCCEEDED: &str = "payment_intent.succeeded";
    /// An attempt to pay failed (the card was declined): the booking stays unpaid. The
    /// PaymentIntent returns to `requires_payment_method`, so a later success still confirms.
    pub const PAYMENT_INTENT_PAYMENT_FAILED: &str = "payment_intent.payment_failed";
}

/// The headers the service reads and writes, lowercase as HTTP/2 sends them.
pub mod headers {
    pub use crate::trace::{TRACEPARENT, TRACESTATE};

    /// Request header: a cron call's key, the whole value compared with `CRON_API_KEY` (no
    /// `Bearer` scheme), as Cal.com's cron routes compare it.
    pub const AUTHORIZATION: &str = "authorization";
    /// Response header: the request's id, as the service logged it before tracing existed.
    pub const REQUEST_ID: &str = "x-request-id";
    /// Response header naming the booking's trace, for support staff and for the harness.
    pub const TRACE_ID: &str = "x-trace-id";
    /// Webhook delivery header: the payload's hex HMAC-SHA256, as Cal.com sends it.
    pub const CAL_SIGNATURE: &str = "x-cal-signature-256";
    /// Stripe's event header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`.
    pub const STRIPE_SIGNATURE: &str = "stripe-signature";
    /// Request header: the virtual instant at which the caller sends the request, in
    /// microseconds since the scenario's start. The receiver starts the request's flow there.
    pub const VIRTUAL_NOW_US: &str = "x-virtual-now-us";
    /// Response header: how long the responder declares it took, in microseconds.
    pub const VIRTUAL_LATENCY_US: &str = "x-virtual-latency-us";
    /// Response header: a fault the responder declares instead of acting it out on the socket
    /// (`connection-refused`); a loopback server cannot refuse one request of a sequence.
    pub const VIRTUAL_FAULT: &str = "x-virtual-fault";
    /// Request header, test-only like the virtual clock's: a crash armed on a cron call
    /// (`after_send`, or `after_send; job=2` for the call's second job;
    /// [`ArmedCrash`](super::ArmedCrash)). A service that honours it dies at that point of that
    /// job; one that does not answers as if it were absent.
    pub const CRASH: &str = "x-virtual-crash";
}

/// The secret the service signs webhook deliveries with unless configured otherwise; the
/// subscriber mocks verify with it unless a scenario gives them another (`secret = "…"`).
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_trace_harness";
/// The signing secret of the service's Stripe webhook endpoint unless configured otherwise.
pub const DEFAULT_STRIPE_WEBHOOK_SECRET: &str = "whsec_stripe_trace_harness";
/// The key the cron routes require unless configured otherwise (`CRON_API_KEY`).
pub const DEFAULT_CRON_API_KEY: &str = "cron_trace_harness";

/// The environment a service started by the harness reads (CONTRACT.md states each). The
/// harness sets all of them; a service may ignore those marked optional. An empty variable
/// counts as unset, as OpenTelemetry's specification has it for its own.
///
/// The service is ready when its port accepts connections. It stops on SIGTERM: in-flight
/// requests finish, every span not yet exported is, and it exits 0.
pub mod env {
    /// The port to listen on, on loopback. `trace-harness serve --contract` also takes 0 (any
    /// free port) and, whatever the port, prints `listening on http://127.0.0.1:<port>` as its
    /// first line on standard output once the port accepts connections.
    pub const PORT: &str = "PORT";
    /// Base URL of the Google Calendar API mock (`…/calendar/v3/…` follows it).
    pub const GOOGLE_CALENDAR_URL: &str = "GOOGLE_CALENDAR_API_URL";
    /// Base URL of the Stripe API mock (`…/v1/payment_intents` follows it).
    pub const STRIPE_URL: &str = "STRIPE_API_URL";
    /// Base URL of the e-mail provider mock, SendGrid's v3 API (`…/v3/mail/send` follows it).
    pub const EMAIL_URL: &str = "EMAIL_API_URL";
    /// The webhook subscribers' URLs, a JSON array of strings, one `BOOKING_CREATED` delivery
    /// to each per booking.
    pub const WEBHOOK_SUBSCRIBERS: &str = "WEBHOOK_SUBSCRIBER_URLS";
    /// The secret webhook deliveries are signed with (`X-Cal-Signature-256`).
    pub const WEBHOOK_SECRET: &str = "WEBHOOK_SECRET";
    /// The key the cron routes require.
    pub const CRON_API_KEY: &str = "CRON_API_KEY";
    /// The Stripe webhook endpoint's signing secret (`whsec_…`).
    pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
    /// Where the service keeps its database: a file path in a directory fresh for each replay,
    /// the same across the replay's restarts.
    pub const DATABASE_PATH: &str = "DATABASE_PATH";
    /// The scenario's event types, a JSON array of `{id, price?, currency, seats?, reminders}`.
    pub const EVENT_TYPES: &str = "EVENT_TYPES";
    /// Planted bugs to reproduce, comma-separated [`PlantedBug`](super::PlantedBug) names;
    /// empty for a correct service.
    pub const BUGS: &str = "TRACE_HARNESS_BUGS";
    /// Optional: a seed for the service's ids (request ids, booking uids, span ids), so replays
    /// repeat byte for byte.
    pub const SEED: &str = "TRACE_HARNESS_SEED";
    /// Optional: which process this is on the same database, 0 first and +1 per restart, so ids
    /// drawn after a restart differ from those drawn before it (span ids too: ours draw from
    /// `generation × 2^40` on the seeded counter, as an in-process restart does).
    pub const GENERATION: &str = "TRACE_HARNESS_GENERATION";
    /// Optional: the declared cost of one store transaction, in virtual microseconds.
    pub const STORE_LATENCY_US: &str = "TRACE_HARNESS_STORE_LATENCY_US";
    /// OpenTelemetry's: the receiver's base URL (`/v1/traces` follows it). Spans are exported
    /// over OTLP/HTTP as they close, each with its log lines as events.
    pub const OTEL_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// OpenTelemetry's: the receiver's traces URL, `/v1/traces` included.
    pub const OTEL_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// OpenTelemetry's: `http/protobuf` (the default) or `http/json`.
    pub const OTEL_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// OpenTelemetry's: the service's name on its resource (`service.name`), `cal.com` unless
    /// set.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// OpenTelemetry's: the harness sets `always_on`.
    pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
    /// OpenTelemetry's: `true` for `--no-tracing`: no spans, no `traceparent` sent.
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// OpenTelemetry's: `none` for a service judged by its log lines alone (spans are still
    /// made, so contexts propagate, but not exported): it writes every log line to standard
    /// output in the seed's format, `[trace:<trace-id> span:<span-id> op:<op>] message`.
    pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

    /// Every variable the harness sets.
    pub const ALL: &[&str] = &[
        PORT,
        GOOGLE_CALENDAR_URL,
        STRIPE_URL,
        EMAIL_URL,
        WEBHOOK_SUBSCRIBERS,
        WEBHOOK_SECRET,
        CRON_API_KEY,
        STRIPE_WEBHOOK_SECRET,
        DATABASE_PATH,
        EVENT_TYPES,
        BUGS,
        SEED,
        GENERATION,
        STORE_LATENCY_US,
        OTEL_ENDPOINT,
        OTEL_TRACES_ENDPOINT,
        OTEL_PROTOCOL,
        OTEL_SERVICE_NAME,
        OTEL_TRACES_SAMPLER,
        OTEL_SDK_DISABLED,
        OTEL_TRACES_EXPORTER,
    ];
}

/// Virtual time's zero as a service that honours virtual time stamps it: span and event times
/// are `EPOCH_UNIX_NANOS + virtual microseconds × 1000` nanoseconds since the Unix epoch.
pub const EPOCH_UNIX_NANOS: u64 = crate::clock::EPOCH_UNIX_S * 1_000_000_000;

/// The service's name on its telemetry's resource (`service.name`) unless `OTEL_SERVICE_NAME`
/// says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "cal.com";
