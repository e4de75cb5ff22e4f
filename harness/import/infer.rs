//! From what an incident shows to the scenario that makes the service do it again: each line
//! the service writes (CONTRACT.md §8.5) names the call or step behind it, so the import reads
//! the event types, every mock's answers in call order, and the timeline, with each time a
//! first guess the fit ([`super::fit`]) makes exact.

use std::collections::BTreeMap;
use std::time::Duration;

use super::draft::{Action, Answer, Draft, EventType, Expect, Mock, Step};
use super::read::{Incident, Line, Span, Trace};
use crate::contract::{
    BOOKING_CREATION, CALENDAR_EVENT_CREATION, HANDLE_SEATS, PAYMENT_FAILURE_PROCESSING,
    PAYMENT_PROCESSING, PAYMENT_SUCCESS_PROCESSING, SCHEDULE_MANDATORY_REMINDER, WEBHOOK_EXECUTION,
    WEBHOOK_SCHEDULING,
};
use crate::mocks::{google_error_body, MockKind};

/// The price written for a priced event type: a log says a payment was required, not how much.
const ASSUMED_PRICE: u64 = 5000;
/// Where a step goes when the input has no times and nothing says when.
const UNTIMED_GAP: Duration = Duration::from_secs(60);

/// A call to a mock, with where it happened (for call order) and how it was answered.
struct Call {
    order: (i64, usize, usize),
    answer: Answer,
    /// A delivery retried within its span: the same subscriber as the one before.
    retry: bool,
}

/// A step, with the time it was first seen at and its place in the input.
struct Guess {
    at: Option<i64>,
    /// The input line it was seen at: the order of steps when the input has no times.
    seen: usize,
    action: Action,
}

/// The scenario the incident implies, times guessed.
pub(crate) fn draft(incident: &Incident) -> Draft {
    let mut d = Draft::default();
    let mut event_types: BTreeMap<u64, EventType> = BTreeMap::new();
    let mut steps: Vec<Guess> = Vec::new();
    let mut google: Vec<Call> = Vec::new();
    let mut stripe: Vec<Call> = Vec::new();
    let mut batch: Vec<Call> = Vec::new();
    let mut sends: Vec<Call> = Vec::new();
    // Each subscriber's deliveries, in order.
    let mut subscribers = 0usize;
    let mut deliveries: Vec<Call> = Vec::new();
    let mut payments = 0usize;

    for (t, trace) in incident.traces.iter().enumerate() {
        let Some(booking) = trace.of(BOOKING_CREATION).next() else {
            d.unmapped.push(format!(
                "trace {} has no booking_creation span ({}): a job that lost its booking's context cannot be replayed on its own",
                trace.id,
                ops_of(trace)
            ));
            continue;
        };
        let first = booking.lines.first();
        let text = first.map_or("", |l| l.message.as_str());
        let event_type_id = number_after(text, "eventTypeId: ").unwrap_or_else(|| {
            d.todos.push(format!(
                "trace {}: no `eventTypeId:` in the booking's first line: event type 1 assumed",
                trace.id
            ));
            1
        });
        let et = event_types
            .entry(event_type_id)
            .or_insert_with(|| EventType {
                id: event_type_id,
                ..EventType::default()
            });
        if text.contains("payment required") || trace.of(PAYMENT_PROCESSING).next().is_some() {
            if et.price.is_none() {
                d.todos.push(format!(
                    "event type {event_type_id} takes a payment; the log does not say how much: {ASSUMED_PRICE} cents assumed"
                ));
            }
            et.price = Some(ASSUMED_PRICE);
        }
        if let Some(refused) = booking.line_starting("Booking refused: ") {
            d.unmapped.push(format!(
                "trace {}: the booking was refused (`{}`); which request fields caused it is not in the log",
                trace.id, refused.message
            ));
        }
        let mut attendees: Option<u32> = None;
        for seats in trace.of(HANDLE_SEATS) {
            for line in &seats.lines {
                if let Some((requested, of)) = seated(&line.message) {
                    et.seats = Some(of);
                    attendees = Some(requested);
                }
            }
        }
        if et.seats.is_none() && trace.of(HANDLE_SEATS).next().is_some() {
            d.todos.push(format!(
                "trace {}: handle_seats names no seat count: 1 seat assumed",
                trace.id
            ));
            et.seats = Some(1);
        }

        google.extend(api_calls(
            trace,
            t,
            CALENDAR_EVENT_CREATION,
            ("Google Calendar API error: ", "calendar error", "Google"),
            calendar_answer,
            &mut d.unmapped,
        ));
        let paid = api_calls(
            trace,
            t,
            PAYMENT_PROCESSING,
            ("Stripe API error: ", "Stripe error", "Stripe"),
            stripe_answer,
            &mut d.unmapped,
        );
        payments += paid.len();
        stripe.extend(paid);

        for span in trace.of(WEBHOOK_SCHEDULING) {
            for line in &span.lines {
                if line.message.starts_with("Scheduling") && line.message.contains("webhook") {
                    let n = number_after(&line.message, "for ").map_or(1, |n| n as usize);
                    subscribers = subscribers.max(n);
                }
            }
        }

        let mut invalid_email: Vec<u32> = Vec::new();
        for span in trace.of(SCHEDULE_MANDATORY_REMINDER) {
            if let Some(line) = span.line_starting("Scheduling reminders for ") {
                et.reminders = true;
                let n = number_after(&line.message, "for ").unwrap_or(1) as u32;
                if n > 1 {
                    attendees = Some(attendees.unwrap_or(n).max(n));
                }
                let answer = match span.line_starting("Email batch not created: ") {
                    None => Answer::status(201),
                    Some(failed) => {
                        status_answer(after(&failed.message, "Email batch not created: "))
                            .unwrap_or_else(|| Answer::status(500))
                    }
                };
                batch.push(Call {
                    order: order(span, t, 0),
                    answer,
                    retry: false,
                });
            }
            for (i, line) in span.lines.iter().enumerate() {
                let Some(rest) = line.message.strip_prefix("Email sent to attendee ") else {
                    continue;
                };
                let seat = number_after(rest, "").unwrap_or(1) as u32;
                let answer = if rest.contains(": success") {
                    Answer::status(202)
                } else if rest.contains("(invalid email)") {
                    // The provider refuses the address itself, whatever it would answer.
                    invalid_email.push(seat);
                    Answer::status(202)
                } else {
                    let reason = rest
                        .split_once("failed (")
                        .map_or("", |(_, r)| r.trim_end_matches(')'));
                    email_answer(
                        reason,
                        line.fields.get("provider_message").map(String::as_str),
                    )
                    .unwrap_or_else(|| {
                        d.unmapped.push(format!(
                            "e-mail failure `{}` is not one the email mock sends; answered 500",
                            line.message
                        ));
                        Answer::status(500)
                    })
                };
                sends.push(Call {
                    order: (line.at.unwrap_or(0), t, i),
                    answer,
                    retry: false,
                });
            }
        }
        if et.reminders && attendees.is_some_and(|n| n > 1) && et.seats.is_none() {
            d.todos.push(format!(
                "event type {event_type_id}: several attendees but no handle_seats line: seated with as many seats assumed"
            ));
            et.seats = attendees;
        }
        invalid_email.sort_unstable();
        invalid_email.dedup();

        steps.push(Guess {
            at: first.and_then(|l| l.at),
            seen: first.map_or(0, |l| l.line),
            action: Action::Book {
                event_type_id,
                attendees,
                invalid_email,
                traceparent: None,
            },
        });

        // Each Stripe event that reached the service is one span, its first line saying what
        // it did (`Payment success after 28 minutes`, `Payment failed after 3 minutes: …`,
        // `Payment already processed` for a repeat).
        let intent = payments.max(1);
        for span in &trace.spans {
            let event = match span.op.as_str() {
                PAYMENT_SUCCESS_PROCESSING => "payment_intent.succeeded",
                PAYMENT_FAILURE_PROCESSING => "payment_intent.payment_failed",
                _ => continue,
            };
            let Some(line) = span.lines.first() else {
                continue;
            };
            let at = line.at.or_else(|| {
                spoken(&line.message).map(|d| {
                    first.and_then(|l| l.at).unwrap_or(0)
                        + i64::try_from(d.as_micros()).unwrap_or(0)
                })
            });
            steps.push(Guess {
                at,
                seen: line.line,
                action: Action::Stripe {
                    event: event.to_owned(),
                    payment_intent: intent,
                    signature: None,
                },
            });
        }

        for span in trace
            .of(WEBHOOK_EXECUTION)
            .chain(trace.of(SCHEDULE_MANDATORY_REMINDER))
        {
            if let Some(rerun) = span.line_starting("Re-run after ") {
                d.unmapped.push(format!(
                    "{} span {} says `{}`: a process died holding the job, but a log does not show where in it (its span was never exported); add `crash = \"after_claim\" | \"after_send\" | \"before_commit\"` to the cron step that claimed it",
                    span.op, span.id, rerun.message
                ));
            }
        }
        for span in trace.of(WEBHOOK_EXECUTION) {
            for line in &span.lines {
                if let Some((answer, retry)) = delivery_answer(line) {
                    // Untimed, attempts keep the input's order.
                    deliveries.push(Call {
                        order: (line.at.unwrap_or(0), t, deliveries.len()),
                        answer,
                        retry,
                    });
                }
            }
        }
    }

    // Cron runs and refused Stripe events, from the lines outside every span.
    let mut crons_seen = false;
    for line in &incident.untraced {
        let seen = line.line;
        if line.message.starts_with("Cron webhookTriggers") {
            crons_seen = true;
            steps.push(Guess {
                at: line.at,
                seen,
                action: Action::Cron("webhooks"),
            });
        } else if line.message.starts_with("Cron scheduleEmailReminders") {
            crons_seen = true;
            steps.push(Guess {
                at: line.at,
                seen,
                action: Action::Cron("reminders"),
            });
        } else if let Some(reason) = line.message.strip_prefix("Stripe webhook rejected: ") {
            let signature = if reason.contains("tolerance") || reason.contains("timestamp") {
                "stale"
            } else {
                "forged"
            };
            steps.push(Guess {
                at: line.at,
                seen,
                action: Action::Stripe {
                    event: "payment_intent.succeeded".to_owned(),
                    payment_intent: 1,
                    signature: Some(signature),
                },
            });
        }
    }
    if !crons_seen {
        guess_crons(incident, &mut steps, &mut d);
    }

    // Mocks, in name order, each with its answers in call order.
    let mut mocks: Vec<Mock> = Vec::new();
    let mut mock =
        |name: &str, kind: MockKind, calls: Vec<Call>, routes: Vec<(&'static str, Vec<Call>)>| {
            let sorted = |mut calls: Vec<Call>| {
                calls.sort_by_key(|c| c.order);
                calls.into_iter().map(|c| c.answer).collect::<Vec<_>>()
            };
            mocks.push(Mock {
                name: name.to_owned(),
                kind: kind.name(),
                respond: sorted(calls),
                routes: routes
                    .into_iter()
                    .filter(|(_, calls)| !calls.is_empty())
                    .map(|(route, calls)| (route, sorted(calls)))
                    .collect(),
            });
        };
    if !google.is_empty() {
        mock("google", MockKind::GoogleCalendar, google, Vec::new());
    }
    if !stripe.is_empty() {
        mock("stripe", MockKind::Stripe, stripe, Vec::new());
    }
    if !sends.is_empty() || !batch.is_empty() {
        mock(
            "email",
            MockKind::EmailProvider,
            sends,
            vec![("mail_batch", batch)],
        );
    }
    if subscribers == 0 && !deliveries.is_empty() {
        subscribers = 1;
    }
    // A cron run delivers due jobs in id order: each booking's, one per subscriber in name order.
    deliveries.sort_by_key(|c| c.order);
    let mut per_subscriber: Vec<Vec<Call>> = (0..subscribers).map(|_| Vec::new()).collect();
    let mut job = 0;
    let mut last_trace = None;
    for call in deliveries {
        if call.retry {
            let s = job.max(1) - 1;
            per_subscriber[s % subscribers].push(call);
            continue;
        }
        if last_trace != Some(call.order.1) {
            last_trace = Some(call.order.1);
            job = 0;
        }
        per_subscriber[job % subscribers].push(call);
        job += 1;
    }
    // The service sends to subscribers in name order: numbers padded so that it is theirs.
    let width = subscribers.to_string().len();
    for (i, calls) in per_subscriber.into_iter().enumerate() {
        let name = if subscribers == 1 {
            "subscriber".to_owned()
        } else {
            format!("subscriber_{:0width$}", i + 1)
        };
        mock(&name, MockKind::WebhookSubscriber, calls, Vec::new());
    }
    mocks.sort_by(|a, b| a.name.cmp(&b.name));
    d.mocks = mocks;
    d.event_types = event_types.into_values().collect();
    place_steps(incident, steps, &mut d);
    d.expect = expectations(incident);
    if !incident.timed {
        d.todos.push(
            "the log lines carry no timestamps: every latency and step time below is a guess"
                .to_owned(),
        );
    }
    d
}

/// Sorts the steps by their time (untimed ones after what precedes them in the input) and
/// groups those at the same instant, which the fit moves together.
fn place_steps(incident: &Incident, mut steps: Vec<Guess>, d: &mut Draft) {
    if !incident.timed {
        // In the input's order: bookings at zero, each later step at the delay its line speaks
        // of, else a minute after the step before.
        steps.sort_by_key(|s| s.seen);
        let mut clock = 0i64;
        for s in &mut steps {
            let at = match (&s.action, s.at) {
                (Action::Book { .. }, _) => 0,
                (_, Some(at)) if at > clock => at,
                _ => clock + i64::try_from(UNTIMED_GAP.as_micros()).unwrap_or(0),
            };
            clock = at;
            s.at = Some(at);
        }
    }
    steps.sort_by_key(|s| (s.at.unwrap_or(0), s.seen));
    let mut group = 0;
    let mut last: Option<i64> = None;
    for s in steps {
        let at = s.at.unwrap_or(0).max(0);
        if last.is_some_and(|l| l != at) {
            group += 1;
        }
        last = Some(at);
        d.groups.push(group);
        d.timeline.push(Step {
            at: Duration::from_micros(u64::try_from(at).unwrap_or(0)),
            action: s.action,
        });
    }
}

/// Webhook and reminder cron runs when the input has no cron lines: one run per burst of
/// deliveries, at the burst's first line (or, without times, at the delay the line speaks of).
fn guess_crons(incident: &Incident, steps: &mut Vec<Guess>, d: &mut Draft) {
    for (op, job, line_start) in [
        (WEBHOOK_EXECUTION, "webhooks", ""),
        (
            SCHEDULE_MANDATORY_REMINDER,
            "reminders",
            "Email sent to attendee",
        ),
    ] {
        let mut firsts: Vec<(Option<i64>, Option<Duration>, usize)> = Vec::new();
        for trace in &incident.traces {
            for span in trace.of(op) {
                let Some(line) = span
                    .lines
                    .iter()
                    .find(|l| l.message.starts_with(line_start))
                else {
                    continue;
                };
                firsts.push((line.at, spoken(&line.message), line.line));
            }
        }
        if firsts.is_empty() {
            continue;
        }
        firsts.sort_by_key(|f| (f.0, f.2));
        let mut runs: Vec<(Option<i64>, usize)> = Vec::new();
        for (at, delay, seen) in firsts {
            let at = at.or_else(|| delay.map(|d| i64::try_from(d.as_micros()).unwrap_or(0)));
            // A burst: lines within ten minutes of the run's first one (one run delivers all
            // that is due; retries take at most 3m30s plus four timeouts).
            let same = runs.last().is_some_and(|(r, _)| match (r, at) {
                (Some(r), Some(at)) => at - r < 600_000_000,
                (None, None) => true,
                _ => false,
            });
            if !same {
                runs.push((at, seen));
            }
        }
        d.todos.push(format!(
            "the log shows no `Cron …` lines: {} `cron = \"{job}\"` run(s) placed at the first line of each burst of {op} lines",
            runs.len()
        ));
        for (at, seen) in runs {
            steps.push(Guess {
                at,
                seen,
                action: Action::Cron(job),
            });
        }
    }
}

/// The per-operation pattern the incident showed, as expectations its replay must meet.
fn expectations(incident: &Incident) -> Vec<Expect> {
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for span in incident.traces.iter().flat_map(|t| &t.spans) {
        let entry = per_op.entry(span.op.as_str()).or_default();
        entry.0 += 1;
        if span.failed() {
            entry.1 += 1;
        }
    }
    let mut out = Vec::new();
    if incident.traces.len() > 1 {
        out.push(Expect {
            name: format!("the log showed {} traces", incident.traces.len()),
            body: vec![
                format!("select = 'span[op=\"{BOOKING_CREATION}\"]'"),
                format!("count = {}", incident.traces.len()),
            ],
        });
    }
    for (op, (count, errors)) in per_op {
        if !crate::contract::OPERATIONS.contains(&op) {
            continue;
        }
        let mut body = vec![
            format!("select = 'span[op=\"{op}\"]'"),
            format!("count = {count}"),
        ];
        match errors {
            0 => body.push("status = \"ok\"".to_owned()),
            e if e == count => body.push("status = \"error\"".to_owned()),
            _ => {}
        }
        out.push(Expect {
            name: format!("the log showed {count} {op} span(s), {errors} failed"),
            body,
        });
    }
    out
}

/// One call per span of `op` (an API call's span): 2xx unless an error line names the answer,
/// read from the message after `prefix` by `answer_of`.
fn api_calls(
    trace: &Trace,
    t: usize,
    op: &str,
    (prefix, what, mock): (&str, &str, &str),
    answer_of: fn(&str) -> Option<Answer>,
    unmapped: &mut Vec<String>,
) -> Vec<Call> {
    trace
        .of(op)
        .map(|span| {
            let answer = match span.lines.iter().find(|l| l.is_error()) {
                None => Answer::status(200),
                Some(line) => {
                    let message = after(&line.message, prefix);
                    answer_of(message).unwrap_or_else(|| {
                        unmapped.push(format!(
                            "{what} `{message}` is not one the {mock} mock sends; answered 500"
                        ));
                        Answer::status(500)
                    })
                }
            };
            Call {
                order: order(span, t, 0),
                answer,
                retry: false,
            }
        })
        .collect()
}

fn ops_of(trace: &Trace) -> String {
    let ops: Vec<&str> = trace.spans.iter().map(|s| s.op.as_str()).collect();
    ops.join(", ")
}

/// Where a span's call falls in call order: its first line's time, then the trace.
fn order(span: &Span, trace: usize, i: usize) -> (i64, usize, usize) {
    (span.first_at().unwrap_or(0), trace, i)
}

fn after<'a>(message: &'a str, prefix: &str) -> &'a str {
    message.strip_prefix(prefix).unwrap_or(message).trim()
}

/// The first number in `text` after `marker`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let rest = if marker.is_empty() {
        text
    } else {
        text.split_once(marker)?.1
    };
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `Processing seated booking: 3 of 3 seats` / `Not enough seats: 3 available, 4 requested`
/// → `(requested, seats)`.
fn seated(message: &str) -> Option<(u32, u32)> {
    if let Some(rest) = message.strip_prefix("Processing seated booking: ") {
        let (requested, rest) = rest.split_once(" of ")?;
        let seats = number_after(rest, "")?;
        return Some((requested.trim().parse().ok()?, seats as u32));
    }
    let rest = message.strip_prefix("Not enough seats: ")?;
    let seats = number_after(rest, "")?;
    let requested = number_after(rest, ", ")?;
    Some((requested as u32, seats as u32))
}

/// A transport failure as the service words it.
fn fault_of(message: &str) -> Option<Answer> {
    match message {
        "Connection timeout" => Some(Answer::fault("timeout")),
        "Connection refused" => Some(Answer::fault("connection_refused")),
        _ => None,
    }
}

/// `HTTP 503` → a 503.
fn status_answer(message: &str) -> Option<Answer> {
    fault_of(message).or_else(|| {
        let status: u16 = message.strip_prefix("HTTP ")?.get(..3)?.parse().ok()?;
        Some(Answer::status(status))
    })
}

/// Google's answer for the message the service logged with its error.
fn calendar_answer(message: &str) -> Option<Answer> {
    if let Some(answer) = status_answer(message) {
        return Some(answer);
    }
    MockKind::GoogleCalendar
        .error_reasons()
        .into_iter()
        .map(|reason| {
            let status = match reason {
                "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded" => 403,
                "notFound" => 404,
                "authError" => 401,
                _ => 500,
            };
            (reason, status)
        })
        .find(|(reason, status)| {
            google_error_body(reason, *status)
                .and_then(|b| {
                    b["error"]["message"]
                        .as_str()
                        .map(|m| m.eq_ignore_ascii_case(message))
                })
                .unwrap_or(false)
        })
        .map(|(reason, status)| Answer {
            error: Some(reason.to_owned()),
            ..Answer::status(status)
        })
}

/// Stripe's answer for `Your card was declined. (card_declined)`.
fn stripe_answer(message: &str) -> Option<Answer> {
    if let Some(answer) = status_answer(message) {
        return Some(answer);
    }
    let code = message.rsplit_once(" (")?.1.strip_suffix(')')?;
    if !MockKind::Stripe.error_reasons().contains(&code) {
        return None;
    }
    // The statuses Stripe's API documents for these errors ("Errors": 402 a request failed,
    // 429 too many requests, 401 no valid key, 409 an idempotency conflict).
    let status = match code {
        "card_declined" => 402,
        "rate_limit" => 429,
        "api_key_expired" => 401,
        "idempotency_key_in_use" => 409,
        _ => 400,
    };
    Some(Answer {
        error: Some(code.to_owned()),
        ..Answer::status(status)
    })
}

/// The email provider's answer for `failed (HTTP 401)` with its message.
fn email_answer(reason: &str, provider_message: Option<&str>) -> Option<Answer> {
    let mut answer = status_answer(reason)?;
    if answer.fault.is_some() {
        return Some(answer);
    }
    if let Some(message) = provider_message {
        answer.error = MockKind::EmailProvider
            .error_reasons()
            .into_iter()
            .find(|r| {
                MockKind::EmailProvider
                    .error_body(r, answer.status)
                    .and_then(|b| b["errors"][0]["message"].as_str().map(|m| m == message))
                    .unwrap_or(false)
            })
            .map(str::to_owned);
    }
    Some(answer)
}

/// One delivery attempt's answer from its line, and whether it was a retry (of the delivery
/// before it, to the same subscriber).
fn delivery_answer(line: &Line) -> Option<(Answer, bool)> {
    let message = line.message.as_str();
    let retry = message.starts_with("Retry attempt ");
    if message.starts_with("Webhook executed ") || message.ends_with(" succeeded") {
        return Some((Answer::status(200), retry));
    }
    let reason = message
        .split_once("failed: ")
        .map(|(_, r)| r.split(';').next().unwrap_or(r).trim())
        .or_else(|| {
            // The seed's own listing: `Retry attempt 1 failed`, no reason given.
            (retry && message.ends_with("failed")).then_some("HTTP 500")
        })?;
    Some((
        status_answer(reason).unwrap_or_else(|| Answer::status(500)),
        retry,
    ))
}

/// `Webhook executed 5 minutes later`, `Payment success after 28 minutes` → the delay.
fn spoken(message: &str) -> Option<Duration> {
    let words: Vec<&str> = message.split_whitespace().collect();
    let mut total = Duration::ZERO;
    let mut found = false;
    for (i, w) in words.iter().enumerate() {
        let unit = if w.starts_with("hour") {
            3600
        } else if w.starts_with("minute") {
            60
        } else if w.starts_with("second") {
            1
        } else {
            continue;
        };
        if let Some(n) = i.checked_sub(1).and_then(|j| words[j].parse::<u64>().ok()) {
            total += Duration::from_secs(n * unit);
            found = true;
        }
    }
    found.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_words_name_the_answer_behind_them() {
        assert_eq!(
            seated("Processing seated booking: 2 of 5 seats"),
            Some((2, 5))
        );
        assert_eq!(
            seated("Not enough seats: 3 available, 4 requested"),
            Some((4, 3))
        );
        let google = calendar_answer("Rate Limit Exceeded").unwrap();
        assert_eq!(
            (google.status, google.error.as_deref()),
            (403, Some("rateLimitExceeded"))
        );
        assert_eq!(
            calendar_answer("Connection timeout").unwrap().fault,
            Some("timeout")
        );
        assert!(calendar_answer("Something else entirely").is_none());
        let stripe = stripe_answer("Your card was declined. (card_declined)").unwrap();
        assert_eq!(
            (stripe.status, stripe.error.as_deref()),
            (402, Some("card_declined"))
        );
        assert!(stripe_answer("Your card was declined. (no_such_code)").is_none());
        let email = email_answer(
            "HTTP 401",
            Some("The provided authorization grant is invalid, expired, or revoked"),
        )
        .unwrap();
        assert_eq!(
            (email.status, email.error.as_deref()),
            (401, Some("unauthorized"))
        );
        assert_eq!(
            spoken("Payment success after 1 hour 28 minutes"),
            Some(Duration::from_secs(5280))
        );
        assert_eq!(spoken("Booking confirmed"), None);
    }

    #[test]
    fn each_attempt_keeps_its_own_outcome_and_retries_are_marked() {
        let line = |message: &str| Line {
            line: 1,
            at: None,
            level: crate::import::Level::Info,
            message: message.to_owned(),
            fields: BTreeMap::new(),
        };
        let first = delivery_answer(&line("Webhook execution failed: Connection timeout")).unwrap();
        assert_eq!((first.0.fault, first.1), (Some("timeout"), false));
        let retry = delivery_answer(&line("Retry attempt 1 failed: HTTP 503")).unwrap();
        assert_eq!((retry.0.status, retry.1), (503, true));
        let last = delivery_answer(&line(
            "Retry attempt 3 failed: HTTP 410; giving up after 4 attempts",
        ))
        .unwrap();
        assert_eq!((last.0.status, last.1), (410, true));
        let ok = delivery_answer(&line("Retry attempt 2 succeeded")).unwrap();
        assert_eq!((ok.0.status, ok.1), (200, true));
        assert!(delivery_answer(&line("Webhook executed 5 minutes later")).is_some_and(|a| !a.1));
    }
}
