//! `explain`: what a scenario does and what it asserts, in words.

use std::fmt::Write as _;

use crate::clock::Compact;
use crate::expect::MAX_SPANS_PER_TRACE;
use crate::mocks::MockBehaviour;

/// What a scenario does and asserts, in words.
pub fn explain(scenario: &crate::scenario::Scenario) -> String {
    use crate::scenario::Target;
    use crate::scenario::{Action, CronJob};
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", scenario.name, scenario.path.display());
    let _ = writeln!(out, "{}\n", scenario.description);
    let _ = writeln!(
        out,
        "seed {}: every id and fake attendee derives from it\n",
        scenario.seed
    );
    let service = &scenario.service;
    if !service.store_latency.is_zero() || !service.bugs.is_empty() {
        let _ = writeln!(out, "Service:");
        if !service.store_latency.is_zero() {
            let _ = writeln!(
                out,
                "  every store transaction takes {}",
                Compact(service.store_latency)
            );
        }
        if !service.bugs.is_empty() {
            let bugs: Vec<&str> = service.bugs.iter().map(|b| b.name()).collect();
            let _ = writeln!(out, "  planted bugs: {}", bugs.join(", "));
        }
        out.push('\n');
    }
    if !scenario.event_types.is_empty() {
        let _ = writeln!(out, "Event types:");
        for event_type in &scenario.event_types {
            let mut traits = Vec::new();
            if let Some(price) = event_type.price {
                traits.push(format!(
                    "price {price} {} (paid through Stripe)",
                    event_type.currency
                ));
            }
            if let Some(seats) = event_type.seats {
                traits.push(format!("{seats} seats"));
            }
            if event_type.reminders {
                traits.push("reminder e-mails".to_owned());
            }
            if traits.is_empty() {
                traits.push("free, unseated, no reminders".to_owned());
            }
            let _ = writeln!(out, "  {}: {}", event_type.id, traits.join(", "));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Mocks:");
    for (name, spec) in &scenario.mocks {
        let _ = write!(out, "  {name} ({})", spec.kind.name());
        let behaviours = spec.behaviours();
        if behaviours.is_empty() {
            out.push_str(": answers 200 at once");
        }
        write_behaviours(&mut out, &behaviours, "    ");
        for (route, list) in spec.route_behaviours() {
            if spec.kind.routes().first() == Some(&route.as_str()) {
                continue;
            }
            let _ = write!(out, "\n    route {route}");
            if list.is_empty() {
                out.push_str(": answers 200 at once");
            }
            write_behaviours(&mut out, &list, "      ");
        }
        out.push('\n');
    }
    if scenario
        .mocks
        .values()
        .any(|spec| spec.kind == crate::mocks::MockKind::WebhookSubscriber)
    {
        let _ = writeln!(out, "\n{}", webhook_retry_policy());
    }
    let _ = writeln!(out, "\nTimeline (virtual time):");
    for step in &scenario.timeline {
        let what = match &step.action {
            Action::Book(b) => {
                let mut what = format!("book event type {}", b.event_type_id);
                if let Some(title) = &b.title {
                    let _ = write!(what, " ({title:?})");
                }
                let _ = write!(what, ", {} to {}", b.start, b.end);
                match (&b.attendee, b.attendees) {
                    (Some(a), _) => {
                        let _ = write!(what, ", attendee {} <{}>", a.name, a.email);
                    }
                    (None, Some(n)) if n > 1 => {
                        let _ = write!(what, ", {n} attendees");
                    }
                    _ => {}
                }
                if !b.invalid_email.is_empty() {
                    let seats: Vec<String> = b.invalid_email.iter().map(u32::to_string).collect();
                    let _ = write!(
                        what,
                        ", the address of attendee {} refused",
                        seats.join(", ")
                    );
                }
                if let Some(traceparent) = &b.traceparent {
                    let _ = write!(what, ", continuing traceparent {traceparent}");
                }
                what
            }
            Action::Cron(CronJob::Webhooks) => "run the webhooks cron".to_owned(),
            Action::Cron(CronJob::Reminders) => "run the email reminders cron".to_owned(),
            Action::Stripe(stripe) => format!(
                "Stripe delivers {} for PaymentIntent #{} ({} signature)",
                stripe.event.name(),
                stripe.payment_intent,
                format!("{:?}", stripe.signature).to_lowercase()
            ),
            Action::Restart => "restart the booking service on the same database".to_owned(),
        };
        let what = match step.crash {
            Some(crash) => format!(
                "{what}; the service dies at {} in the call's job {} and restarts on the same database",
                crash.point.name(),
                crash.job
            ),
            None => what,
        };
        let _ = writeln!(out, "  {:>8}  {what}", format!("+{}", Compact(step.at)));
    }
    let _ = writeln!(out, "\nAsserts:");
    for (i, a) in scenario.expect.iter().enumerate() {
        let target = match &a.target {
            Target::Spans(s) => s.to_string(),
            Target::Mock(m) => format!("requests to mock `{m}`"),
            Target::Step { number, status, .. } => {
                format!("the answer to step {number}: HTTP {status}")
            }
        };
        let mut parts = Vec::new();
        if let Some(n) = a.count {
            parts.push(format!("exactly {n}"));
        }
        if let Some(s) = a.status {
            parts.push(format!("status {s:?}").to_lowercase());
        }
        if let Some(p) = &a.child_of {
            parts.push(format!("child of {p}"));
        }
        if let Some(c) = &a.follows_from {
            parts.push(format!("follows from {c}"));
        }
        if let Some(d) = &a.duration {
            parts.push(format!("duration {d}"));
        }
        for (name, test) in &a.attributes {
            parts.push(format!("{name} {test}"));
        }
        if let Some(e) = &a.events {
            parts.push(match &e.matching {
                Some(re) => format!("{} events matching /{re}/", e.count),
                None => format!("{} events", e.count),
            });
        }
        if let Some(l) = &a.log {
            parts.push(format!("a log line that {l}"));
        }
        let _ = writeln!(
            out,
            "  {}. {}\n     {target}: {}",
            i + 1,
            a.name,
            parts.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\nEvery replay also checks the built-in invariants: one trace per booking flow, flows stay apart\n(no span of one booking request in another's trace), at most {MAX_SPANS_PER_TRACE} spans per trace, parents\nexist, no open spans, children within parents, async work linked to its cause, mock requests\ncarry the sender's traceparent, a delivery comes again only after a crash and in its trace,\nlog prefixes match their spans, and a request answered 5xx leaves the span that served it in\nerror, with the reason."
    );
    out
}

/// The webhook retry policy (`contract::retry`), in words.
fn webhook_retry_policy() -> String {
    use crate::contract::{
        webhook_backoff, WEBHOOK_BACKOFF_CAP, WEBHOOK_GONE, WEBHOOK_MAX_ATTEMPTS,
    };
    let waits: Vec<String> = (1..WEBHOOK_MAX_ATTEMPTS)
        .map(|retry| Compact(webhook_backoff(retry)).to_string())
        .collect();
    format!(
        "Webhook deliveries (the webhooks cron): up to {WEBHOOK_MAX_ATTEMPTS} attempts per job in its one\n\
         webhook_execution span, retried {} apart (doubling, at most {}) on virtual time.\n\
         A 2xx answer is delivered. {WEBHOOK_GONE} Gone ends the delivery at once, failed and not retried.\n\
         Any other answer (another 4xx included), a timeout (10s) or a refused connection is a\n\
         failed attempt, retried; after the last, the job is failed with its reason.",
        waits.join(", "),
        Compact(WEBHOOK_BACKOFF_CAP),
    )
}

/// `request 1: 503 calendar_unavailable after 2s`, one line per behaviour, the last marked as
/// repeating.
fn write_behaviours(out: &mut String, behaviours: &[MockBehaviour], indent: &str) {
    for (i, b) in behaviours.iter().enumerate() {
        let what = b
            .error
            .as_deref()
            .map_or(String::new(), |e| format!(" {e}"));
        let then = if i + 1 == behaviours.len() && i > 0 {
            " (repeats)"
        } else {
            ""
        };
        let _ = write!(
            out,
            "\n{indent}request {}: {}{what} after {}{then}",
            i + 1,
            b.status,
            Compact(b.latency)
        );
    }
}
