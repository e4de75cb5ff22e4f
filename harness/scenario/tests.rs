//! Scenario parsing and validation, file:line:col errors included.

use std::path::Path;
use std::time::Duration;

use super::*;

fn error(text: &str) -> String {
    Scenario::parse(Path::new("s.toml"), text)
        .unwrap_err()
        .to_string()
}

const MINIMAL: &str =
    "description = \"d\"\nseed = 1\n[[timeline]]\nat = \"0s\"\nbook = { event_type_id = 1 }\n";

#[test]
fn a_minimal_scenario_parses() {
    let s = Scenario::parse(Path::new("dir/minimal.toml"), MINIMAL).unwrap();
    assert_eq!(s.name, "minimal");
    assert_eq!(s.timeline.len(), 1);
}

#[test]
fn errors_name_file_line_and_column_and_show_the_line() {
    let e = error(&MINIMAL.replace("seed = 1", "seed = \"one\""));
    assert!(
        e.starts_with(
            "s.toml:2:8: invalid type: string \"one\", expected a whole number, 0 or more"
        ),
        "{e}"
    );
    assert!(e.contains("2 | seed = \"one\"\n  |        ^"), "{e}");
    let e = error(&format!("{MINIMAL}colour = 1\n"));
    assert!(e.starts_with("s.toml:6:1: unknown field `colour`"), "{e}");
    let e = error(&MINIMAL.replace("\"0s\"", "\"5 minutes\""));
    assert!(e.starts_with("s.toml:4:6: expected a duration"), "{e}");
}

#[test]
fn selector_errors_point_into_the_string() {
    let text = format!("{MINIMAL}[[expect]]\nselect = 'span[op=\"booking_creatoin\"]'\n");
    let e = error(&text);
    assert!(
        e.starts_with(
            "s.toml:7:20: unknown operation `booking_creatoin`; did you mean `booking_creation`?"
        ),
        "{e}"
    );
    let e = error(&format!("{MINIMAL}[[expect]]\nselect = \"spam\"\n"));
    assert!(
        e.starts_with("s.toml:7:11: invalid selector: expected `span`"),
        "{e}"
    );
}

#[test]
fn the_new_step_kinds_and_keys_parse() {
    let text = "description = \"d\"\nseed = 1\n[service]\nstore_latency = \"50ms\"\n\
        [[event_types]]\nid = 7\nprice = 500\nseats = 4\nreminders = true\n\
        [mocks.mail]\nkind = \"email_provider\"\n[mocks.mail.routes]\nmail_batch = [{ latency = \"5ms\" }]\n\
        [[timeline]]\nat = \"0s\"\nbook = { event_type_id = 7, attendees = 3, invalid_email = [3] }\n\
        [[timeline]]\nat = \"1m\"\nrestart = true\n\
        [[timeline]]\nat = \"2m\"\nstripe = { event = \"payment_intent.succeeded\", signature = \"stale\" }\n\
        [[timeline]]\nat = \"3m\"\ncron = \"reminders\"\n";
    let s = Scenario::parse(Path::new("s.toml"), text).unwrap();
    assert_eq!(s.service.store_latency, Duration::from_millis(50));
    assert_eq!(s.event_types[0].seats, Some(4));
    assert_eq!(s.event_types[0].currency, "usd");
    assert!(matches!(s.timeline[1].action, Action::Restart));
    assert!(matches!(
        &s.timeline[2].action,
        Action::Stripe(StripeStep {
            signature: SignatureKind::Stale,
            payment_intent: 1,
            ..
        })
    ));
    assert!(matches!(
        s.timeline[3].action,
        Action::Cron(CronJob::Reminders)
    ));
    let routes = s.mocks["mail"].route_behaviours();
    assert_eq!(routes["mail_batch"][0].latency, Duration::from_millis(5));
    assert!(routes["mail_send"].is_empty());
}

#[test]
fn bad_new_keys_are_located() {
    let e = error(&MINIMAL.replace(
        "event_type_id = 1 }",
        "event_type_id = 1, attendees = 2, invalid_email = [3] }",
    ));
    assert!(
        e.starts_with(
            "s.toml:3:1: `invalid_email` names attendee 3, but the booking has attendees 1–2"
        ),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}[mocks.g]\nkind = \"google_calendar\"\n[mocks.g.routes]\nmail_batch = []\n"
    ));
    assert!(
        e.starts_with("s.toml:9:14: `mail_batch` is not a route of google_calendar"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}[[timeline]]\nat = \"1m\"\nrestart = true\ncron = \"webhooks\"\n"
    ));
    assert!(
        e.starts_with("s.toml:6:1: a step needs exactly one action"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}[mocks.s]\nkind = \"stripe\"\nrespond = [{{ status = 402, error = \"rateLimitExceeded\" }}]\n"
    ));
    assert!(
        e.contains("`rateLimitExceeded` is not an error stripe answers with"),
        "{e}"
    );
    let e = error(&format!("{MINIMAL}[[event_types]]\nid = 1\nseats = 0\n"));
    assert!(e.contains("`seats` must be 1–100"), "{e}");
}

#[test]
fn references_to_undefined_mocks_are_rejected() {
    let e = error(&format!(
        "{MINIMAL}[[expect]]\nmock = \"nobody\"\ncount = 1\n"
    ));
    assert!(e.starts_with("s.toml:7:8: no mock named `nobody`"), "{e}");
}

#[test]
fn a_cron_step_arms_a_crash_by_point_or_by_point_and_job() {
    use crate::contract::{ArmedCrash, CrashPoint};
    let text = format!(
        "{MINIMAL}[[timeline]]\nat = \"5m\"\ncron = \"webhooks\"\ncrash = \"after_send\"\n\
         [[timeline]]\nat = \"6m\"\ncron = \"reminders\"\ncrash = {{ point = \"before_commit\", job = 3 }}\n\
         [[timeline]]\nat = \"7m\"\ncron = \"webhooks\"\n"
    );
    let s = Scenario::parse(Path::new("s.toml"), &text).unwrap();
    let crashes: Vec<Option<ArmedCrash>> = s.timeline.iter().map(|step| step.crash).collect();
    assert_eq!(
        crashes,
        [
            None,
            Some(ArmedCrash {
                point: CrashPoint::AfterSend,
                job: 1
            }),
            Some(ArmedCrash {
                point: CrashPoint::BeforeCommit,
                job: 3
            }),
            None,
        ]
    );
}

#[test]
fn a_crash_anywhere_but_on_a_cron_step_or_misspelt_is_located_with_what_was_meant() {
    let e = error(&MINIMAL.replace(
        "book = { event_type_id = 1 }",
        "book = { event_type_id = 1 }\ncrash = \"after_send\"",
    ));
    assert!(
        e.starts_with("s.toml:6:9: `crash` arms a crash inside a cron call's job: only a `cron = …` step takes it"),
        "{e}"
    );
    let cron = |crash: &str| {
        error(&format!(
            "{MINIMAL}[[timeline]]\nat = \"5m\"\ncron = \"webhooks\"\ncrash = {crash}\n"
        ))
    };
    let e = cron("\"after-send\"");
    assert!(
        e.starts_with("s.toml:9:9: unknown crash point `after-send` (did you mean `after_send`?); expected one of after_claim, after_send, before_commit"),
        "{e}"
    );
    let e = cron("{ point = \"after_claim\", job = 0 }");
    assert!(
        e.starts_with("s.toml:9:9: `job = 0`: the crash's job is a number 1–1000"),
        "{e}"
    );
    let e = cron("{ at = \"after_claim\" }");
    assert!(
        e.starts_with("s.toml:9:9: unknown key `at` in `crash`"),
        "{e}"
    );
    let e = cron("3");
    assert!(
        e.starts_with("s.toml:9:9: `crash` is a crash point (`crash = \"after_send\"`)"),
        "{e}"
    );
}
