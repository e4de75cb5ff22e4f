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
    let _ = writeln!(out, "\nTimeline (virtual time):");
    for step in &scenario.timeline {
        let what = match &step.action {
            Action::Book(b) => format!(
                "book event type {}{}",
                b.event_type_id,
                b.title
                    .as_deref()
                    .map_or(String::new(), |t| format!(" ({t:?})"))
            ),
            Action::Cron(CronJob::Webhooks) => "run the webhooks cron".to_owned(),
            Action::Cron(CronJob::Reminders) => "run the email reminders cron".to_owned(),
            Action::Stripe(stripe) => format!(
                "Stripe delivers {:?} for PaymentIntent #{} ({:?} signature)",
                stripe.event, stripe.payment_intent, stripe.signature
            ),
            Action::Restart => "restart the booking service on the same database".to_owned(),
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
            parts.push(format!("{} events", e.count));
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
        "\nEvery replay also checks the built-in invariants: one trace per booking flow, flows stay apart\n(no span of one booking request in another's trace), at most {MAX_SPANS_PER_TRACE} spans per trace, parents\nexist, no open spans, children within parents, async work linked to its cause, mock requests\ncarry the sender's traceparent, log prefixes match their spans."
    );
    out
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
