//! Fault plans: arbitrary combinations of mock behaviours (errors, timeouts, declared
//! latencies, refused connections, malformed bodies), Stripe callbacks signed validly, forged
//! or stale, service restarts at any step, and crashes inside jobs (cron steps that kill the
//! service after a claim, after a send or before a commit, of any of their first jobs), over a
//! few booking flows. For every plan the built-in invariants hold and every job is accounted
//! for: after a final cron each one is `delivered`/`sent` or `failed` with a reason, none is
//! still `running`, and nothing is lost or delivered twice, unless a crash fell between its
//! send and its commit (a delivery sent by a span the crash lost may come again).
//!
//! A plan is rendered as scenario TOML and loaded with `Scenario::parse`, so what runs is
//! exactly what a scenario file says. A failing plan shrinks (fewer steps, fewer and plainer
//! behaviours) and the minimal one is written to `target/proptest-failures/fault_plan.toml`,
//! ready to be replayed with `trace-harness run` or copied into `scenarios/`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use trace_harness::expect;
use trace_harness::mocks::{MockKind, ReceivedRequest};
use trace_harness::outcome::{ReplayOutcome, StepKind};
use trace_harness::runner::{self, ReplayOptions};
use trace_harness::scenario::Scenario;
use trace_harness::trace::{SpanId, TraceContext};

/// Every client timeout in the service; a declared latency above it is a timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The event type whose bookings schedule reminders.
const REMINDED_EVENT_TYPE: u64 = 7;
/// The event type whose bookings pay through Stripe.
const PAID_EVENT_TYPE: u64 = 9;

/// Plans `cargo test` runs, from a fixed seed so that it is reproducible;
/// `FAULT_PLAN_CASES=10000 FAULT_PLAN_SEED=7` searches further (at most 100 000).
const CASES: u64 = 1_000;

/// The plans are split into this many shards, each a proptest run of its own seeded from the
/// run's seed and its number, run side by side: the same plans whatever the machine's cores.
const SHARDS: u64 = 4;

/// Shard `shard`'s configuration: its share of the cases and its seed.
fn config(shard: u64) -> ProptestConfig {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("FAULT_PLAN_CASES").map_or(CASES, |n| n.min(100_000));
    let seed = env("FAULT_PLAN_SEED").unwrap_or(1);
    // Shards 0.. take the remainder one each, so the shards add up to `cases`.
    let share = cases / SHARDS + u64::from(shard < cases % SHARDS);
    ProptestConfig {
        cases: share as u32,
        rng_seed: RngSeed::Fixed(if shard == 0 {
            seed
        } else {
            splitmix(seed ^ shard)
        }),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn splitmix(x: u64) -> u64 {
    let x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One response of a mock, as a plan declares it.
#[derive(Clone, Debug, PartialEq)]
enum Response {
    Ok { latency_ms: u64 },
    Status { status: u16, latency_ms: u64 },
    Error { reason: &'static str, status: u16 },
    Timeout,
    ConnectionRefused,
    MalformedBody,
}

impl Response {
    fn toml(&self) -> String {
        match self {
            Response::Ok { latency_ms } => {
                format!("{{ status = 200, latency = \"{latency_ms}ms\" }}")
            }
            Response::Status { status, latency_ms } => {
                format!("{{ status = {status}, latency = \"{latency_ms}ms\" }}")
            }
            Response::Error { reason, status } => {
                format!("{{ status = {status}, error = \"{reason}\" }}")
            }
            Response::Timeout => "{ fault = \"timeout\" }".to_owned(),
            Response::ConnectionRefused => "{ fault = \"connection_refused\" }".to_owned(),
            Response::MalformedBody => "{ fault = \"malformed_body\" }".to_owned(),
        }
    }

    /// Whether the subscriber took the delivery in (a 2xx it sent, however late it arrived).
    fn taken_in(&self) -> bool {
        matches!(self, Response::Ok { .. } | Response::MalformedBody)
    }

    /// Whether the caller sees this response as accepted (a 2xx in time, whatever the body).
    fn accepted(&self) -> bool {
        match self {
            Response::Ok { latency_ms } => Duration::from_millis(*latency_ms) <= CLIENT_TIMEOUT,
            Response::Status { .. } | Response::Error { .. } => false,
            Response::Timeout | Response::ConnectionRefused => false,
            Response::MalformedBody => true,
        }
    }
}

/// How the runner, acting as Stripe, signs a `payment_intent.succeeded` delivery.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signature {
    Valid,
    Forged,
    Stale,
}

/// A crash armed on a cron step: the point, and which of the call's jobs (1-based).
#[derive(Clone, Copy, Debug, PartialEq)]
struct PlanCrash {
    point: &'static str,
    job: u32,
}

impl PlanCrash {
    /// Whether a delivery the peer took in before the crash may be sent again: the crash fell
    /// between the send and the commit of its outcome.
    fn between_send_and_commit(point: &str) -> bool {
        point == "after_send" || point == "before_commit"
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PlanStep {
    Book {
        reminded: bool,
        attendees: u32,
    },
    /// A booking of the paid event type.
    BookPaid,
    /// Stripe's callback about the first PaymentIntent; only rendered after a paid booking.
    Pay(Signature),
    CronWebhooks(Option<PlanCrash>),
    CronReminders(Option<PlanCrash>),
    Restart,
}

#[derive(Clone, Debug)]
struct Plan {
    google: Vec<Response>,
    subscriber: Vec<Response>,
    email: Vec<Response>,
    steps: Vec<PlanStep>,
    /// A webhooks and a reminders cron after the steps, each with its crash when it has one,
    /// so that most plans die inside a job at least once with jobs still due.
    closing: [Option<PlanCrash>; 2],
}

/// Steps are ten virtual minutes apart; the final crons run three hours after the last.
const STEP_GAP_MIN: u64 = 10;

impl Plan {
    fn toml(&self) -> String {
        let list = |responses: &[Response]| {
            let items: Vec<String> = responses.iter().map(Response::toml).collect();
            format!("[{}]", items.join(", "))
        };
        let mut text = String::new();
        let _ = writeln!(text, "description = \"A generated fault plan\"\nseed = 1\n");
        let _ = writeln!(
            text,
            "[[event_types]]\nid = {REMINDED_EVENT_TYPE}\nseats = 100\nreminders = true\n"
        );
        let _ = writeln!(
            text,
            "[[event_types]]\nid = {PAID_EVENT_TYPE}\nprice = 5000\n\n[mocks.stripe]\nkind = \"stripe\"\n"
        );
        let mocks = [
            ("google", "google_calendar", &self.google),
            ("subscriber", "webhook_subscriber", &self.subscriber),
            ("email", "email_provider", &self.email),
        ];
        for (name, kind, responses) in mocks {
            let _ = writeln!(
                text,
                "[mocks.{name}]\nkind = \"{kind}\"\nrespond = {}\n",
                list(responses)
            );
        }
        let mut at_min = 0;
        let mut paid = false;
        for step in &self.steps {
            let action = match step {
                PlanStep::BookPaid => {
                    paid = true;
                    format!("book = {{ event_type_id = {PAID_EVENT_TYPE} }}")
                }
                // Stripe cannot call back about a PaymentIntent nobody created.
                PlanStep::Pay(_) if !paid => continue,
                PlanStep::Pay(signature) => {
                    let signature = match signature {
                        Signature::Valid => "valid",
                        Signature::Forged => "forged",
                        Signature::Stale => "stale",
                    };
                    format!("stripe = {{ event = \"payment_intent.succeeded\", signature = \"{signature}\" }}")
                }
                PlanStep::Book {
                    reminded,
                    attendees,
                } => {
                    // Only a seated event type takes several attendees in one booking.
                    let (id, attendees) = if *reminded {
                        (REMINDED_EVENT_TYPE, *attendees)
                    } else {
                        (1, 1)
                    };
                    format!("book = {{ event_type_id = {id}, attendees = {attendees} }}")
                }
                PlanStep::CronWebhooks(crash) => cron("webhooks", crash),
                PlanStep::CronReminders(crash) => cron("reminders", crash),
                PlanStep::Restart => "restart = true".to_owned(),
            };
            let _ = writeln!(text, "[[timeline]]\nat = \"{at_min}m\"\n{action}\n");
            at_min += STEP_GAP_MIN;
        }
        for (job, crash) in ["webhooks", "reminders"].into_iter().zip(&self.closing) {
            if crash.is_some() {
                let _ = writeln!(
                    text,
                    "[[timeline]]\nat = \"{at_min}m\"\n{}\n",
                    cron(job, crash)
                );
            }
        }
        // The final crons, after every lease a crash left has expired (a claim leases its n
        // jobs for n × 5 minutes; a plan claims at most 18 reminders at once): after them no
        // job may still be pending or running.
        let end_min = at_min + 180;
        let _ = writeln!(
            text,
            "[[timeline]]\nat = \"{end_min}m\"\ncron = \"webhooks\"\n\n[[timeline]]\nat = \"{end_min}m\"\ncron = \"reminders\""
        );
        text
    }
}

/// A cron step's TOML, with its crash if it arms one.
fn cron(job: &str, crash: &Option<PlanCrash>) -> String {
    match crash {
        None => format!("cron = \"{job}\""),
        Some(PlanCrash { point, job: 1 }) => format!("cron = \"{job}\"\ncrash = \"{point}\""),
        Some(PlanCrash { point, job: n }) => {
            format!("cron = \"{job}\"\ncrash = {{ point = \"{point}\", job = {n} }}")
        }
    }
}

/// Two crons in three arm a crash, at any point of one of their first jobs (the first most
/// often: a call often has only one).
fn crash() -> impl Strategy<Value = Option<PlanCrash>> {
    let point = proptest::sample::select(vec!["after_claim", "after_send", "before_commit"]);
    let job = prop_oneof![3 => Just(1u32), 1 => Just(2), 1 => Just(3)];
    prop_oneof![
        1 => Just(None),
        2 => (point, job).prop_map(|(point, job)| Some(PlanCrash { point, job })),
    ]
}

fn response(kind: MockKind) -> impl Strategy<Value = Response> {
    let reasons = kind.error_reasons();
    let error: BoxedStrategy<Response> = if reasons.is_empty() {
        Just(Response::Status {
            status: 500,
            latency_ms: 0,
        })
        .boxed()
    } else {
        (
            proptest::sample::select(reasons),
            prop_oneof![Just(400u16), Just(403), Just(429), Just(500)],
        )
            .prop_map(|(reason, status)| Response::Error { reason, status })
            .boxed()
    };
    // Simplest first, so shrinking moves towards plain successes.
    prop_oneof![
        3 => prop_oneof![Just(0u64), Just(80), Just(2_000), Just(30_000)]
            .prop_map(|latency_ms| Response::Ok { latency_ms }),
        1 => (prop_oneof![Just(404u16), Just(500), Just(503)], prop_oneof![Just(0u64), Just(120)])
            .prop_map(|(status, latency_ms)| Response::Status { status, latency_ms }),
        1 => error,
        1 => Just(Response::Timeout),
        1 => Just(Response::ConnectionRefused),
        1 => Just(Response::MalformedBody),
    ]
}

fn step() -> impl Strategy<Value = PlanStep> {
    prop_oneof![
        3 => (any::<bool>(), 1u32..=3).prop_map(|(reminded, attendees)| PlanStep::Book { reminded, attendees }),
        2 => crash().prop_map(PlanStep::CronWebhooks),
        2 => crash().prop_map(PlanStep::CronReminders),
        1 => Just(PlanStep::Restart),
        1 => Just(PlanStep::BookPaid),
        1 => prop_oneof![Just(Signature::Valid), Just(Signature::Forged), Just(Signature::Stale)]
            .prop_map(PlanStep::Pay),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(response(MockKind::GoogleCalendar), 1..4),
        proptest::collection::vec(response(MockKind::WebhookSubscriber), 1..6),
        proptest::collection::vec(response(MockKind::EmailProvider), 1..4),
        proptest::collection::vec(step(), 1..7),
        [crash(), crash()],
    )
        .prop_map(|(google, subscriber, email, steps, closing)| Plan {
            google,
            subscriber,
            email,
            steps,
            closing,
        })
}

/// The response a mock route gave its `n`th request: behaviours in order, the last repeating.
fn served(responses: &[Response], n: usize) -> &Response {
    &responses[n.min(responses.len() - 1)]
}

fn count(counts: &[(String, i64)], status: &str) -> i64 {
    counts
        .iter()
        .filter(|(s, _)| s == status)
        .map(|(_, n)| n)
        .sum()
}

fn total(counts: &[(String, i64)]) -> i64 {
    counts.iter().map(|(_, n)| n).sum()
}

fn requests<'a>(outcome: &'a ReplayOutcome, mock: &str, path: &str) -> Vec<&'a ReceivedRequest> {
    outcome
        .requests
        .iter()
        .filter(|r| r.mock == mock && r.path == path)
        .collect()
}

/// One e-mail sent for a reminder: whether the provider took it, and the crash point that
/// lost the span that sent it, if one did.
type Send<'a> = (bool, Option<&'a str>);

/// Everything a plan's replay must satisfy; the first broken rule, in words.
fn check(plan: &Plan, outcome: &ReplayOutcome) -> Result<(), String> {
    let violations = expect::check_invariants(outcome);
    if !violations.is_empty() {
        return Err(format!("invariants broken: {violations:#?}"));
    }
    // The field catalogue that selectors and `attributes` are validated against is complete.
    for span in &outcome.captured.spans {
        for (field, _) in span.fields.iter() {
            if !trace_harness::contract::fields_of(span.op).contains(field) {
                return Err(format!(
                    "`{}` recorded the field `{field}`, which contract::fields_of does not list",
                    span.op
                ));
            }
        }
    }
    for step in &outcome.steps {
        if step.status >= 500 {
            return Err(format!(
                "the {} step at {:?} answered {}: {}",
                step.action, step.at, step.status, step.body
            ));
        }
    }
    let booked: Vec<_> = outcome
        .steps
        .iter()
        .filter(|s| s.action == StepKind::Book)
        .collect();
    let accepted = booked
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .count();
    if accepted != booked.len() {
        return Err(format!(
            "{} of {} bookings were refused",
            booked.len() - accepted,
            booked.len()
        ));
    }

    // What each crash took with it: the spans open then, named by the requests they sent.
    // A send from such a span reached its peer, but its outcome may never have been
    // committed, so the job ran again: the one way a delivery may come twice.
    let lost: BTreeMap<SpanId, &str> = (outcome.crashes.iter())
        .flat_map(|c| c.lost.iter().map(move |(_, span)| (*span, c.point)))
        .collect();
    let sender = |request: &ReceivedRequest| {
        request
            .traceparent
            .as_deref()
            .and_then(|v| TraceContext::parse_traceparent(v).ok())
            .map(|c| c.span_id)
    };
    let lost_point =
        |request: &ReceivedRequest| sender(request).and_then(|s| lost.get(&s).copied());

    // Webhooks: one job per booking (one subscriber), none pending or running after the final
    // cron.
    let jobs = &outcome.webhook_jobs;
    let (delivered, failed) = (count(jobs, "delivered"), count(jobs, "failed"));
    if total(jobs) != accepted as i64 || delivered + failed != total(jobs) {
        return Err(format!("{accepted} bookings but webhook jobs {jobs:?}"));
    }
    // Each payload accepted at most once by a run that lived to commit it, and those are
    // exactly the delivered jobs; one accepted by a run that died did so between its send
    // and its commit.
    let mut accepted_by_uid: BTreeMap<String, usize> = BTreeMap::new();
    for (n, request) in requests(outcome, "subscriber", "/webhook")
        .into_iter()
        .enumerate()
    {
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
        let uid = body["payload"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !served(&plan.subscriber, n).accepted() {
            continue;
        }
        match lost_point(request) {
            None => *accepted_by_uid.entry(uid).or_default() += 1,
            Some(point) if PlanCrash::between_send_and_commit(point) => {}
            Some(point) => {
                return Err(format!(
                "booking {uid}'s webhook was sent by a run that died at {point}, before any send"
            ))
            }
        }
    }
    if let Some((uid, n)) = accepted_by_uid.iter().find(|(_, n)| **n > 1) {
        return Err(format!("booking {uid}'s webhook was delivered {n} times"));
    }
    // On the subscriber's side: a delivery it took in (even one answered after the caller
    // gave up, which the caller then retries, or one whose sender died before committing) is
    // processed once, its repeats acknowledged.
    let mut taken_in: BTreeMap<String, usize> = BTreeMap::new();
    for (n, request) in requests(outcome, "subscriber", "/webhook")
        .into_iter()
        .enumerate()
    {
        if served(&plan.subscriber, n).taken_in() {
            *taken_in.entry(request.body.clone()).or_default() += 1;
        }
    }
    let counts = outcome
        .deliveries
        .iter()
        .find(|(mock, _)| mock == "subscriber")
        .map(|(_, counts)| *counts)
        .unwrap_or_default();
    let repeats: usize = taken_in.values().map(|n| n - 1).sum();
    if counts.processed != taken_in.len() || counts.duplicates < repeats || counts.refused != 0 {
        return Err(format!(
            "the subscriber took in {} distinct deliveries ({repeats} repeats) but reports {counts:?}",
            taken_in.len()
        ));
    }
    if counts.processed as i64 > total(jobs) {
        return Err(format!(
            "{} deliveries processed for {} jobs",
            counts.processed,
            total(jobs)
        ));
    }
    if accepted_by_uid.len() as i64 != delivered {
        return Err(format!(
            "the subscriber accepted {} deliveries but {delivered} jobs are delivered",
            accepted_by_uid.len()
        ));
    }

    // Reminders: one per attendee of a reminded booking, none left pending or running.
    let expected_reminders: u32 = plan
        .steps
        .iter()
        .map(|s| match s {
            PlanStep::Book {
                reminded: true,
                attendees,
            } => *attendees,
            _ => 0,
        })
        .sum();
    let reminders = &outcome.reminders;
    let (sent, unsent) = (count(reminders, "sent"), count(reminders, "failed"));
    if total(reminders) != i64::from(expected_reminders) || sent + unsent != total(reminders) {
        return Err(format!(
            "{expected_reminders} reminders expected, store has {reminders:?}"
        ));
    }
    let mails = requests(outcome, "email", "/v3/mail/send");
    // Per reminder (booking and recipient): its sends, and whether the provider took each.
    let mut sends: BTreeMap<(String, String), Vec<Send<'_>>> = BTreeMap::new();
    for (n, mail) in mails.iter().enumerate() {
        let body: serde_json::Value = serde_json::from_str(&mail.body).unwrap_or_default();
        let key = (
            body["custom_args"]["bookingUid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["personalizations"][0]["to"][0].to_string(),
        );
        let taken = served(&plan.email, n).accepted();
        sends
            .entry(key)
            .or_default()
            .push((taken, lost_point(mail)));
    }
    let given_up = (outcome.failed_jobs.iter())
        .filter(|(table, _, reason)| table == "reminders" && reason.starts_with("claimed "))
        .count() as i64;
    if let Some((reminder, _)) = sends
        .iter()
        .find(|(_, sends)| sends.iter().filter(|(_, lost)| lost.is_none()).count() > 1)
    {
        return Err(format!(
            "the reminder {reminder:?} was sent twice without a crash"
        ));
    }
    if outcome.crashes.is_empty() {
        if mails.len() as i64 != total(reminders) {
            return Err(format!(
                "{} reminders but {} sends",
                total(reminders),
                mails.len()
            ));
        }
        let accepted_mails = sends.values().flatten().filter(|(taken, _)| *taken).count();
        if accepted_mails as i64 != sent {
            return Err(format!(
                "the provider accepted {accepted_mails} mails but {sent} reminders are sent"
            ));
        }
    } else {
        // A crash inside a booking's reminders loses its span, and with it which of its sends
        // were committed before: bounds, then, not counts.
        if (sends.len() as i64) < total(reminders) - given_up {
            return Err(format!(
                "{} reminders ({given_up} given up) but only {} were ever sent",
                total(reminders),
                sends.len()
            ));
        }
        let taken_ever = sends.values().filter(|s| s.iter().any(|(t, _)| *t)).count() as i64;
        let taken_live = (sends.values())
            .filter(|s| s.iter().any(|(t, lost)| *t && lost.is_none()))
            .count() as i64;
        if sent > taken_ever || sent < taken_live {
            return Err(format!(
                "{sent} reminders are sent; the provider took {taken_live} from runs that lived and {taken_ever} in all"
            ));
        }
    }

    // Stripe: only a genuine callback confirms, once however often it comes; forged and stale
    // ones are refused and confirm nothing.
    let mut paid = false;
    let mut genuine = 0;
    let stripe_steps: Vec<_> = outcome
        .steps
        .iter()
        .filter(|s| s.action == StepKind::Stripe)
        .collect();
    let mut rendered = Vec::new();
    for step in &plan.steps {
        match step {
            PlanStep::BookPaid => paid = true,
            PlanStep::Pay(signature) if paid => rendered.push(*signature),
            _ => {}
        }
    }
    for (step, signature) in stripe_steps.iter().zip(&rendered) {
        let expected = if *signature == Signature::Valid {
            200
        } else {
            400
        };
        if step.status != expected {
            return Err(format!(
                "a {signature:?} Stripe callback answered {}: {}",
                step.status, step.body
            ));
        }
        genuine += usize::from(*signature == Signature::Valid);
    }
    let confirmations = outcome
        .captured
        .spans
        .iter()
        .filter(|s| s.op == "booking_confirmation")
        .count();
    if confirmations != genuine.min(1) {
        return Err(format!(
            "{genuine} genuine Stripe callbacks, {confirmations} confirmations"
        ));
    }

    // Every failure says why.
    let failed_rows = outcome.failed_jobs.len() as i64;
    if failed_rows != failed + unsent {
        return Err(format!(
            "{} failed jobs listed, {} counted",
            failed_rows,
            failed + unsent
        ));
    }
    if let Some((table, id, _)) = outcome
        .failed_jobs
        .iter()
        .find(|(_, _, reason)| reason.trim().is_empty())
    {
        return Err(format!("{table} #{id} failed without a reason"));
    }
    Ok(())
}

/// Writes the (shrunk) plan where a person can replay it, and says where.
fn save_failure(text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/proptest-failures");
    let path = dir.join("fault_plan.toml");
    if std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, text))
        .is_err()
    {
        eprintln!("could not write {}", path.display());
    }
    path
}

/// One plan replayed and checked; a failing one is written out (by the first shard that
/// fails, so that its shrunk plan is the file's last word).
fn one_plan(
    plan: &Plan,
    shard: u64,
    first_failure: &std::sync::OnceLock<u64>,
) -> Result<(), TestCaseError> {
    let text = plan.toml();
    let scenario = Scenario::parse(Path::new("fault_plan.toml"), &text)
        .map_err(|e| TestCaseError::fail(format!("a generated plan did not parse: {e}\n{text}")))?;
    let outcome = runner::replay(&scenario, ReplayOptions::default())
        .map_err(|e| TestCaseError::fail(format!("the replay failed: {e}")))?;
    if let Err(reason) = check(plan, &outcome) {
        if *first_failure.get_or_init(|| shard) != shard {
            return Err(TestCaseError::fail(reason));
        }
        let path = save_failure(&text);
        return Err(TestCaseError::fail(format!(
            "{reason}\nscenario written to {}",
            path.display()
        )));
    }
    Ok(())
}

/// Plans replayed so far, out of how many, on a terminal: a long search
/// (`FAULT_PLAN_CASES=10000`) shows it is moving. Written to the process's standard error
/// directly, past the test harness's capture, and only when that is a terminal: CI logs get
/// nothing. A line per hundredth of the run, so that it reads no clock.
struct Progress {
    total: u64,
    done: std::sync::atomic::AtomicU64,
    terminal: bool,
}

impl Progress {
    fn new(total: u64) -> Self {
        use std::io::IsTerminal;
        Progress {
            total,
            done: Default::default(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// One more plan replayed; a failing plan's shrinking replays it again past the total,
    /// and those are not shown.
    fn plan_done(&self) {
        use std::io::Write;
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let step = (self.total / 100).max(1);
        if self.terminal && done <= self.total && (done % step == 0 || done == self.total) {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r[{done}/{}] fault plans replayed", self.total);
            if done == self.total {
                let _ = writeln!(stderr);
            }
        }
    }
}

#[test]
fn every_fault_plan_keeps_the_invariants_and_accounts_for_every_job() {
    let first_failure = std::sync::OnceLock::new();
    let progress = Progress::new(
        (0..SHARDS)
            .map(|shard| u64::from(config(shard).cases))
            .sum(),
    );
    // As many plans at once as `run` replays at once; the shards, not the threads, decide
    // which plans run.
    let threads = runner::default_jobs() as u64;
    let next = std::sync::atomic::AtomicU64::new(0);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(SHARDS))
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let shard = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if shard >= SHARDS {
                            return failures;
                        }
                        let mut runner = proptest::test_runner::TestRunner::new(config(shard));
                        if let Err(e) = runner.run(&plan(), |plan| {
                            let checked = one_plan(&plan, shard, &first_failure);
                            progress.plan_done();
                            checked
                        }) {
                            failures.push(format!("shard {shard} of {SHARDS}: {e}"));
                        }
                    }
                })
            })
            .collect();
        (workers.into_iter())
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec!["a shard panicked".to_owned()])
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The first plan the property shrank to (before plans kept to seated event types for
/// several attendees): a booking the service refused answered without a trace, so the flow
/// broke "one trace per flow" and nobody could look up why it was refused. Refusals are now
/// traced.
#[test]
fn a_refused_booking_is_traced_with_its_reason() {
    let text = r#"
description = "shrunk fault plan: two attendees on an event type that is not seated"
seed = 1

[mocks.subscriber]
kind = "webhook_subscriber"
respond = [{ status = 200, latency = "0ms" }]

[[timeline]]
at = "0m"
book = { event_type_id = 1, attendees = 2 }

[[timeline]]
at = "70m"
cron = "webhooks"
"#;
    let scenario = common::parse("refused.toml", text);
    let outcome = common::run(&scenario, true);
    let violations = expect::check_invariants(&outcome);
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(outcome.steps[0].status, 400);
    assert!(outcome.steps[0].trace_id.is_some());
    let refused: Vec<&str> = outcome
        .captured
        .logs
        .iter()
        .filter(|l| l.span.is_some())
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        refused,
        ["Booking refused: event type 1 is not seated: one attendee per booking"]
    );
    assert!(
        outcome.webhook_jobs.is_empty(),
        "a refused booking schedules nothing"
    );
}
