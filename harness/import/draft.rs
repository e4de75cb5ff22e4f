//! The scenario an import writes, before it is text: event types, mocks with one behaviour per
//! call the incident shows, timeline steps, expectations, and the notes. Every duration in it
//! is a [`Param`] the fit may set.

use std::fmt::Write as _;
use std::time::Duration;

use crate::clock::{parse_duration, Compact};

/// One answer of a mock route.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The API's error reason (`rateLimitExceeded`, `card_declined`, `unauthorized`).
    pub(crate) error: Option<String>,
    /// `timeout` or `connection_refused`.
    pub(crate) fault: Option<&'static str>,
    /// How long the answer takes.
    pub(crate) latency: Duration,
}

impl Answer {
    /// A 2xx answer, or `status`, that takes a time the fit will measure.
    pub(crate) fn status(status: u16) -> Answer {
        Answer {
            status,
            error: None,
            fault: None,
            latency: Duration::ZERO,
        }
    }

    /// No answer at all, as the caller saw it.
    pub(crate) fn fault(fault: &'static str) -> Answer {
        Answer {
            fault: Some(fault),
            ..Answer::status(200)
        }
    }

    /// Whether its latency is something the service waited for (a timeout waits the client's
    /// own time, whatever the latency).
    pub(crate) fn waits(&self) -> bool {
        self.fault != Some("timeout")
    }
}

/// One mock.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mock {
    /// Its name in `[mocks.NAME]`.
    pub(crate) name: String,
    /// Its `kind`.
    pub(crate) kind: &'static str,
    /// Its main route's answers, in call order.
    pub(crate) respond: Vec<Answer>,
    /// Its other routes' answers, by route name.
    pub(crate) routes: Vec<(&'static str, Vec<Answer>)>,
}

/// One event type.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct EventType {
    /// Its id.
    pub(crate) id: u64,
    /// Its price in cents, when it needs payment.
    pub(crate) price: Option<u64>,
    /// Its seats, when seated.
    pub(crate) seats: Option<u32>,
    /// Whether it has mandatory reminders.
    pub(crate) reminders: bool,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// `book = { … }`.
    Book {
        /// The event type.
        event_type_id: u64,
        /// Seat holders, when more than one.
        attendees: Option<u32>,
        /// Seat holders whose address the provider refuses.
        invalid_email: Vec<u32>,
        /// The caller's `traceparent`, when the incident's booking continued one.
        traceparent: Option<String>,
    },
    /// `cron = "webhooks"` or `"reminders"`.
    Cron(&'static str),
    /// `stripe = { … }`.
    Stripe {
        /// The event's type.
        event: String,
        /// Which PaymentIntent, 1-based in creation order.
        payment_intent: usize,
        /// `forged` or `stale`, when not validly signed.
        signature: Option<&'static str>,
    },
}

/// One timeline step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Step {
    /// When.
    pub(crate) at: Duration,
    /// What.
    pub(crate) action: Action,
}

/// One `[[expect]]`, as text lines after its `name`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expect {
    /// Its name.
    pub(crate) name: String,
    /// Its other keys, one `key = value` a line.
    pub(crate) body: Vec<String>,
}

/// A duration the fit may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Param {
    /// The `at` of every step in one group of simultaneous steps.
    At(usize),
    /// `[service] store_latency`.
    Store,
    /// The latency of answer `index` of `mock`'s route (`None`: the main route).
    Latency {
        /// Index in [`Draft::mocks`].
        mock: usize,
        /// Index in its `routes`, or `None` for `respond`.
        route: Option<usize>,
        /// Index in that list.
        index: usize,
    },
}

/// The scenario, before it is text.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Draft {
    /// `[service] store_latency`.
    pub(crate) store_latency: Duration,
    /// `[[event_types]]`.
    pub(crate) event_types: Vec<EventType>,
    /// `[mocks.*]`, in name order.
    pub(crate) mocks: Vec<Mock>,
    /// `[[timeline]]`, in time order.
    pub(crate) timeline: Vec<Step>,
    /// Which group of simultaneous steps each step is in (its [`Param::At`]).
    pub(crate) groups: Vec<usize>,
    /// `[[expect]]`.
    pub(crate) expect: Vec<Expect>,
    /// What the scenario does not reproduce: empty, its replay is the incident's.
    pub(crate) unmapped: Vec<String>,
    /// What the input lacked, and what was assumed.
    pub(crate) todos: Vec<String>,
}

impl Draft {
    /// Every parameter, in the order the fit prefers to explain a time by: step times first
    /// (but the first, at zero), then each answer's latency, then the store's (a time that a
    /// store write and an answer share is the answer's).
    pub(crate) fn params(&self) -> Vec<Param> {
        let mut params: Vec<Param> = Vec::new();
        // The first steps' time is the incident's zero: every other time is measured from it.
        let first = self.groups.first().copied();
        for &g in &self.groups {
            if Some(g) != first && !params.contains(&Param::At(g)) {
                params.push(Param::At(g));
            }
        }
        for (m, mock) in self.mocks.iter().enumerate() {
            let main = mock.respond.iter().enumerate().map(|(i, a)| (None, i, a));
            let routes = mock.routes.iter().enumerate().flat_map(|(r, (_, list))| {
                list.iter().enumerate().map(move |(i, a)| (Some(r), i, a))
            });
            for (route, index, answer) in main.chain(routes) {
                if answer.waits() {
                    params.push(Param::Latency {
                        mock: m,
                        route,
                        index,
                    });
                }
            }
        }
        params.push(Param::Store);
        params
    }

    /// A parameter's value.
    pub(crate) fn get(&self, param: Param) -> Duration {
        match param {
            Param::At(g) => self
                .groups
                .iter()
                .position(|&x| x == g)
                .map_or(Duration::ZERO, |i| self.timeline[i].at),
            Param::Store => self.store_latency,
            Param::Latency { mock, route, index } => self.answer(mock, route, index).latency,
        }
    }

    /// Sets a parameter.
    pub(crate) fn set(&mut self, param: Param, value: Duration) {
        match param {
            Param::At(g) => {
                for (step, &group) in self.timeline.iter_mut().zip(&self.groups) {
                    if group == g {
                        step.at = value;
                    }
                }
            }
            Param::Store => self.store_latency = value,
            Param::Latency { mock, route, index } => {
                let mock = &mut self.mocks[mock];
                let list = match route {
                    None => &mut mock.respond,
                    Some(r) => &mut mock.routes[r].1,
                };
                list[index].latency = value;
            }
        }
    }

    fn answer(&self, mock: usize, route: Option<usize>, index: usize) -> &Answer {
        let mock = &self.mocks[mock];
        match route {
            None => &mock.respond[index],
            Some(r) => &mock.routes[r].1[index],
        }
    }

    /// What a parameter is, in words, for a TODO.
    pub(crate) fn describe(&self, param: Param) -> String {
        match param {
            Param::At(g) => {
                let i = self.groups.iter().position(|&x| x == g).unwrap_or(0);
                format!("the time of timeline step {}", i + 1)
            }
            Param::Store => "the store's latency".to_owned(),
            Param::Latency { mock, route, index } => {
                let m = &self.mocks[mock];
                let route = route.map_or("", |r| m.routes[r].0);
                let route = if route.is_empty() {
                    String::new()
                } else {
                    format!(" {route}")
                };
                format!("the latency of `{}`{route}'s answer {}", m.name, index + 1)
            }
        }
    }

    /// The scenario file: `header` comment lines, then the TOML.
    pub(crate) fn render(&self, header: &str, description: &str) -> String {
        let mut out = String::new();
        out.push_str(header);
        for todo in &self.unmapped {
            let _ = writeln!(out, "# TODO (not reproduced): {todo}");
        }
        for todo in &self.todos {
            let _ = writeln!(out, "# TODO: {todo}");
        }
        let _ = writeln!(
            out,
            "description = \"\"\"\n{}\"\"\"",
            description.replace('\\', "/").replace('"', "'")
        );
        let _ = writeln!(
            out,
            "# The incident's own ids cannot be replayed; any seed reproduces the pattern."
        );
        let _ = writeln!(out, "seed = 1\n");
        if !self.store_latency.is_zero() {
            let _ = writeln!(
                out,
                "[service]\nstore_latency = \"{}\"\n",
                Exact(self.store_latency)
            );
        }
        for et in &self.event_types {
            let _ = writeln!(out, "[[event_types]]\nid = {}", et.id);
            if let Some(price) = et.price {
                let _ = writeln!(out, "price = {price}");
            }
            if let Some(seats) = et.seats {
                let _ = writeln!(out, "seats = {seats}");
            }
            if et.reminders {
                let _ = writeln!(out, "reminders = true");
            }
            out.push('\n');
        }
        for mock in &self.mocks {
            let _ = writeln!(out, "[mocks.{}]\nkind = \"{}\"", mock.name, mock.kind);
            if !mock.respond.is_empty() {
                let _ = writeln!(out, "respond = {}", answers(&mock.respond));
            }
            out.push('\n');
            if !mock.routes.is_empty() {
                let _ = writeln!(out, "[mocks.{}.routes]", mock.name);
                for (route, list) in &mock.routes {
                    let _ = writeln!(out, "{route} = {}", answers(list));
                }
                out.push('\n');
            }
        }
        for step in &self.timeline {
            let _ = writeln!(out, "[[timeline]]\nat = \"{}\"", Exact(step.at));
            match &step.action {
                Action::Book {
                    event_type_id,
                    attendees,
                    invalid_email,
                    traceparent,
                } => {
                    let mut parts = vec![format!("event_type_id = {event_type_id}")];
                    if let Some(n) = attendees {
                        parts.push(format!("attendees = {n}"));
                    }
                    if !invalid_email.is_empty() {
                        let list: Vec<String> =
                            invalid_email.iter().map(ToString::to_string).collect();
                        parts.push(format!("invalid_email = [{}]", list.join(", ")));
                    }
                    if let Some(tp) = traceparent {
                        parts.push(format!("traceparent = \"{tp}\""));
                    }
                    let _ = writeln!(out, "book = {{ {} }}", parts.join(", "));
                }
                Action::Cron(job) => {
                    let _ = writeln!(out, "cron = \"{job}\"");
                }
                Action::Stripe {
                    event,
                    payment_intent,
                    signature,
                } => {
                    let mut parts = vec![format!("event = \"{event}\"")];
                    if *payment_intent != 1 {
                        parts.push(format!("payment_intent = {payment_intent}"));
                    }
                    if let Some(s) = signature {
                        parts.push(format!("signature = \"{s}\""));
                    }
                    let _ = writeln!(out, "stripe = {{ {} }}", parts.join(", "));
                }
            }
            out.push('\n');
        }
        for expect in &self.expect {
            let _ = writeln!(out, "[[expect]]\nname = \"{}\"", expect.name);
            for line in &expect.body {
                let _ = writeln!(out, "{line}");
            }
            out.push('\n');
        }
        out
    }
}

fn answers(list: &[Answer]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|a| {
            let mut parts = Vec::new();
            if a.fault.is_none() || a.status != 200 {
                parts.push(format!("status = {}", a.status));
            }
            if let Some(e) = &a.error {
                parts.push(format!("error = \"{e}\""));
            }
            if let Some(f) = a.fault {
                parts.push(format!("fault = \"{f}\""));
            }
            if a.waits() {
                parts.push(format!("latency = \"{}\"", Exact(a.latency)));
            }
            format!("{{ {} }}", parts.join(", "))
        })
        .collect();
    if items.len() > 2 {
        format!("[\n    {},\n]", items.join(",\n    "))
    } else {
        format!("[{}]", items.join(", "))
    }
}

/// A duration as the scenario language writes it, exactly: the compact form where it reads
/// back the same, else whole microseconds.
struct Exact(Duration);

impl std::fmt::Display for Exact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let compact = Compact(self.0).to_string();
        if parse_duration(&compact).ok() == Some(self.0) {
            f.write_str(&compact)
        } else {
            write!(f, "{}us", self.0.as_micros())
        }
    }
}
