//! The cron-run jobs: webhook deliveries (signed, retried with bounded exponential backoff, but
//! never after `410 Gone`) and attendee reminder emails. Each job resumes the trace of the span
//! that scheduled it, read from its row, with a follows-from link to that span. A claim leases
//! its jobs; a job re-claimed after its holder died says so in its span, and one claimed too
//! often ends failed (`contract::leases`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::crash::{self, CronCrash};
use super::http::{client_error, header, internal_error};
use super::outbound::Reply;
use super::store::{Claim, DueReminder, DueWebhookJob};
use super::{App, StoreError};
use crate::clock::{self, Spoken};
use crate::contract::headers::{AUTHORIZATION, CAL_SIGNATURE};
use crate::contract::routes::CRON_API_KEY_PARAM;
use crate::contract::{
    abandoned_reason, cal_signature, peers, rerun_message, webhook_backoff, CrashPoint,
    SCHEDULE_MANDATORY_REMINDER, WEBHOOK_EXECUTION, WEBHOOK_GONE, WEBHOOK_GONE_REASON,
    WEBHOOK_MAX_ATTEMPTS,
};
use crate::trace;

/// Whether a cron call presents the service's key: the `authorization` header's whole value
/// or, without that header, the `apiKey` query parameter — Cal.com's cron routes read
/// `req.headers.authorization || req.query.apiKey` and compare it with `CRON_API_KEY`.
fn cron_authorised(app: &App, headers: &HeaderMap, query: Option<&str>) -> bool {
    let presented = header(headers, AUTHORIZATION)
        .map(str::to_owned)
        .or_else(|| {
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(name, _)| name == CRON_API_KEY_PARAM)
                .map(|(_, value)| value.into_owned())
        });
    presented.is_some_and(|key| key == app.config.cron_api_key)
}

/// `1 due job`, `2 due jobs`: what a cron run found to do, as its first line says.
fn due_count(n: usize, what: &str) -> String {
    format!("{n} due {what}{}", if n == 1 { "" } else { "s" })
}

/// Cal.com's answer to a cron call without the key.
fn not_authenticated() -> Response {
    client_error(StatusCode::UNAUTHORIZED, "Not authenticated".to_owned())
}

/// `POST /api/cron/webhookTriggers`: delivers every due webhook job.
pub(super) async fn run_webhook_cron(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !cron_authorised(&app, &headers, query.as_deref()) {
        return not_authenticated();
    }
    let crash = CronCrash::of(app.crash_hook.as_ref(), &headers);
    let jobs = match app
        .store
        .claim_due_webhook_jobs(clock::now(), app.config.generation)
    {
        Ok(jobs) => jobs,
        Err(e) => return internal_error(e),
    };
    debug!("Cron webhookTriggers: {}", due_count(jobs.len(), "job"));
    let mut delivered = 0;
    for (n, job) in (1..).zip(&jobs) {
        crash.job_starts(n).await;
        match crash.run(n, app.execute_webhook(job)).await {
            Ok(true) => delivered += 1,
            Ok(false) => {}
            Err(e) => return internal_error(e),
        }
    }
    let body = serde_json::json!({ "executed": jobs.len(), "delivered": delivered });
    Json(body).into_response()
}

/// `POST /api/cron/workflows/scheduleEmailReminders`: sends every due reminder, one span per
/// booking.
pub(super) async fn run_reminder_cron(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !cron_authorised(&app, &headers, query.as_deref()) {
        return not_authenticated();
    }
    let crash = CronCrash::of(app.crash_hook.as_ref(), &headers);
    let due = match app
        .store
        .claim_due_reminders(clock::now(), app.config.generation)
    {
        Ok(due) => due,
        Err(e) => return internal_error(e),
    };
    debug!(
        "Cron scheduleEmailReminders: {}",
        due_count(due.len(), "reminder")
    );
    let mut sent = 0;
    let mut first = 1;
    for booking in due.chunk_by(|a, b| a.booking_id == b.booking_id) {
        match app.send_reminders(booking, first, &crash).await {
            Ok(n) => sent += n,
            Err(e) => return internal_error(e),
        }
        first += booking.len() as u32;
    }
    let body = serde_json::json!({ "due": due.len(), "sent": sent });
    Json(body).into_response()
}

/// A batch id for scheduled sends (`POST /v3/mail/batch`); `None` if the provider will not
/// give one, and the reminders go out unbatched.
pub(super) async fn create_batch(app: &App) -> Option<String> {
    let reply = app
        .outbound
        .post(
            &format!("{}{}", app.config.email_url, peers::SENDGRID_MAIL_BATCH),
            "application/json",
            String::new(),
            &[("authorization", "Bearer SG.trace-harness".to_owned())],
            app.config.email_timeout,
        )
        .await;
    match reply {
        Ok(reply) if (200..300).contains(&reply.status) => {
            debug!("Email batch created");
            serde_json::from_str::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["batch_id"].as_str().map(str::to_owned))
        }
        Ok(reply) => {
            warn!("Email batch not created: HTTP {}", reply.status);
            None
        }
        Err(e) => {
            warn!("Email batch not created: {e}");
            None
        }
    }
}

impl App {
    /// Delivers one scheduled webhook in its own span, continuing the trace of the span that
    /// scheduled it, retrying within the span. Returns whether the subscriber accepted it.
    async fn execute_webhook(&self, job: &DueWebhookJob) -> Result<bool, StoreError> {
        let span = info_span!(
            parent: None,
            WEBHOOK_EXECUTION,
            job_id = job.id,
            trigger_event = job.trigger_event.as_str(),
        );
        if let Some(cause) = &job.context {
            trace::continue_from(&span, cause, self.config.bugs.job_relation());
        }
        async {
            if let Err(reason) = resumed(&job.claim) {
                error!("Giving up: {reason}");
                self.finish_webhook(job, Err(&reason), 0).await?;
                return Ok(false);
            }
            let delay = clock::now().since(job.created_at);
            let signature = cal_signature(&self.config.webhook_secret, job.payload.as_bytes());
            let mut attempt = 1;
            let outcome: Result<(), String> = loop {
                let reply = self
                    .outbound
                    .post(
                        &job.subscriber_url,
                        "application/json",
                        job.payload.clone(),
                        &[(CAL_SIGNATURE, signature.clone())],
                        self.config.webhook_timeout,
                    )
                    .await;
                let retry = attempt - 1;
                let failed = || match retry {
                    0 => "Webhook execution failed".to_owned(),
                    n => format!("Retry attempt {n} failed"),
                };
                let reason = match reply {
                    Ok(Reply { status, .. }) if (200..300).contains(&status) => {
                        match retry {
                            0 => info!(attempt, "Webhook executed {} later", Spoken(delay)),
                            n => info!(attempt, "Retry attempt {n} succeeded"),
                        }
                        break Ok(());
                    }
                    Ok(Reply {
                        status: WEBHOOK_GONE,
                        ..
                    }) => {
                        error!(attempt, "{}: {WEBHOOK_GONE_REASON}", failed());
                        break Err(WEBHOOK_GONE_REASON.to_owned());
                    }
                    Ok(Reply { status, .. }) => format!("HTTP {status}"),
                    Err(e) => e.to_string(),
                };
                if attempt == WEBHOOK_MAX_ATTEMPTS {
                    error!(
                        attempt,
                        "Retry attempt {retry} failed: {reason}; giving up after {attempt} attempts"
                    );
                    break Err(reason);
                }
                warn!(attempt, "{}: {reason}", failed());
                clock::advance(webhook_backoff(attempt));
                attempt += 1;
            };
            self.finish_webhook(
                job,
                outcome.as_ref().map(|_| ()).map_err(String::as_str),
                attempt,
            )
            .await?;
            Ok(outcome.is_ok())
        }
        .instrument(span)
        .await
    }

    /// Records a webhook job's outcome, where a crash armed `before_commit` happens first.
    async fn finish_webhook(
        &self,
        job: &DueWebhookJob,
        outcome: Result<(), &str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        crash::reached(CrashPoint::BeforeCommit).await;
        let recorded =
            self.store
                .finish_webhook_job(job.id, &job.claim, outcome, attempts, clock::now())?;
        if !recorded {
            warn!("{LEASE_LOST}");
        }
        Ok(())
    }

    /// Sends one booking's due reminders in one span that continues the booking's trace; each
    /// attendee's result is logged and stored on its own, so one bad address affects no other.
    /// The reminders are the cron call's jobs `first_job`, `first_job + 1`, …, for `crash`.
    async fn send_reminders(
        &self,
        reminders: &[DueReminder],
        first_job: u32,
        crash: &CronCrash,
    ) -> Result<usize, StoreError> {
        let Some(first) = reminders.first() else {
            return Ok(0);
        };
        crash.job_starts(first_job).await;
        let span = info_span!(
            parent: None,
            SCHEDULE_MANDATORY_REMINDER,
            booking_uid = first.booking_uid.as_str(),
            reminders = reminders.len(),
        );
        if let Some(cause) = &first.context {
            trace::continue_from(&span, cause, self.config.bugs.job_relation());
        }
        async {
            // One claim took the booking's reminders together: one line says it is a re-run.
            if let Some(again) = reminders.iter().find(|r| r.claim.previous.is_some()) {
                announce_rerun(&again.claim);
            }
            let mut sent = 0;
            for (n, reminder) in (first_job..).zip(reminders) {
                if n > first_job {
                    crash.job_starts(n).await;
                }
                sent += usize::from(crash.run(n, self.send_reminder(reminder)).await?);
            }
            Ok(sent)
        }
        .instrument(span)
        .await
    }

    /// Sends one attendee's reminder and records its outcome; whether the provider took it.
    async fn send_reminder(&self, reminder: &DueReminder) -> Result<bool, StoreError> {
        let seat = reminder.seat;
        if reminder.claim.exhausted() {
            let reason = abandoned(&reminder.claim);
            error!(
                attendee = seat,
                "Email to attendee {seat} not sent: {reason}"
            );
            self.finish_reminder(reminder, Err(&reason)).await?;
            return Ok(false);
        }
        let outcome = self.send_email(reminder).await;
        match &outcome {
            Ok(()) => info!(attendee = seat, "Email sent to attendee {seat}: success"),
            Err(failure) => error!(
                attendee = seat,
                provider_message = failure.detail.as_str(),
                "Email sent to attendee {seat}: failed ({})",
                failure.reason
            ),
        }
        let stored = outcome
            .as_ref()
            .map(|_| ())
            .map_err(|f| format!("{}: {}", f.reason, f.detail));
        self.finish_reminder(
            reminder,
            stored.as_ref().map(|_| ()).map_err(String::as_str),
        )
        .await?;
        Ok(outcome.is_ok())
    }

    /// Records a reminder's outcome, where a crash armed `before_commit` happens first.
    async fn finish_reminder(
        &self,
        reminder: &DueReminder,
        outcome: Result<(), &str>,
    ) -> Result<(), StoreError> {
        crash::reached(CrashPoint::BeforeCommit).await;
        let recorded =
            self.store
                .finish_reminder(reminder.id, &reminder.claim, outcome, clock::now())?;
        if !recorded {
            warn!(attendee = reminder.seat, "{LEASE_LOST}");
        }
        Ok(())
    }

    async fn send_email(&self, reminder: &DueReminder) -> Result<(), EmailFailure> {
        let mut mail = serde_json::json!({
            "personalizations": [{ "to": [{ "email": reminder.email, "name": reminder.name }] }],
            "from": { "email": "notifications@cal.com", "name": "Cal.com" },
            "subject": format!("Reminder: {}", reminder.title),
            "content": [{
                "type": "text/plain",
                "value": format!("Hi {}, this is a reminder of {}.", reminder.name, reminder.title),
            }],
            "custom_args": { "bookingUid": reminder.booking_uid },
        });
        if let Some(batch) = &reminder.batch_id {
            mail["batch_id"] = batch.as_str().into();
        }
        let reply = self
            .outbound
            .post(
                &format!("{}{}", self.config.email_url, peers::SENDGRID_MAIL_SEND),
                "application/json",
                mail.to_string(),
                &[("authorization", "Bearer SG.trace-harness".to_owned())],
                self.config.email_timeout,
            )
            .await;
        match reply {
            Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
            Ok(reply) => Err(EmailFailure::from_sendgrid(reply.status, &reply.body)),
            Err(e) => Err(EmailFailure {
                reason: e.to_string(),
                detail: e.to_string(),
            }),
        }
    }
}

/// What a job's span says when its outcome was not recorded: its lease ran out while it ran,
/// and another claim holds the job now (which will run it again).
const LEASE_LOST: &str = "Outcome not recorded: the job's lease expired and another claim holds it";

/// The warning a re-claimed job's span opens with, if `claim` is a re-claim.
fn announce_rerun(claim: &Claim) {
    if let Some((how, holder)) = claim.previous {
        warn!(
            claim = claim.attempt,
            previous_holder = holder,
            "{}",
            rerun_message(how, claim.attempt, holder)
        );
    }
}

/// Why a job claimed too often ends failed; `claim` is its last claim.
fn abandoned(claim: &Claim) -> String {
    abandoned_reason(claim.previous.map_or(0, |(_, holder)| holder))
}

/// A job's span opening: says so if it is a re-run; `Err` with the reason it ends failed
/// instead if it has been claimed too often.
fn resumed(claim: &Claim) -> Result<(), String> {
    announce_rerun(claim);
    if claim.exhausted() {
        return Err(abandoned(claim));
    }
    Ok(())
}

/// Why an email was not accepted: a short reason for the log line and the provider's words.
struct EmailFailure {
    reason: String,
    detail: String,
}

impl EmailFailure {
    /// Reads SendGrid's `{"errors":[{"message","field"}]}`: an error on a recipient's `email`
    /// field is an invalid address.
    fn from_sendgrid(status: u16, body: &str) -> Self {
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let first = &parsed["errors"][0];
        let detail = first["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let on_email = first["field"]
            .as_str()
            .is_some_and(|f| f.ends_with(".email"));
        EmailFailure {
            reason: if on_email {
                "invalid email".to_owned()
            } else {
                format!("HTTP {status}")
            },
            detail,
        }
    }
}
