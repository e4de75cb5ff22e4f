//! Parsing a scenario file: TOML into the raw form, then limits and validation into a
//! [`Scenario`], every error located in the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::error::locate;
use super::raw::RawScenario;
use super::validate::{crash_of, validate_assertion, validate_behaviour, validate_book};
use super::{
    Action, Scenario, ScenarioError, Step, MAX_ASSERTIONS, MAX_BEHAVIOURS, MAX_MOCKS, MAX_SEATS,
    MAX_STEPS,
};
use crate::contract::EventType;
use crate::mocks::MockKind;

impl Scenario {
    /// Parses and validates `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let at = |span: Range<usize>, message: String| {
            ScenarioError::Invalid(Box::new(locate(path, text, span.start, message)))
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let message = super::error::in_toml_terms(e.message().trim_end());
            at(e.span().unwrap_or(0..0), message)
        })?;

        let steps = raw.timeline.get_ref();
        if steps.is_empty() {
            return Err(at(
                raw.timeline.span(),
                "the timeline is empty: add at least one `[[timeline]]` step".into(),
            ));
        }
        if steps.len() > MAX_STEPS {
            return Err(at(
                raw.timeline.span(),
                format!("{} steps; at most {MAX_STEPS} are allowed", steps.len()),
            ));
        }
        if raw.mocks.len() > MAX_MOCKS {
            return Err(at(0..0, format!("at most {MAX_MOCKS} mocks are allowed")));
        }
        if raw.expect.len() > MAX_ASSERTIONS {
            return Err(at(
                raw.expect[MAX_ASSERTIONS].span(),
                format!("at most {MAX_ASSERTIONS} `[[expect]]` entries are allowed"),
            ));
        }

        let mut mocks = BTreeMap::new();
        for (name, spec) in raw.mocks {
            let span = spec.span();
            let spec = spec.into_inner();
            if spec.respond.len() > MAX_BEHAVIOURS {
                return Err(at(
                    span,
                    format!("at most {MAX_BEHAVIOURS} responses per mock"),
                ));
            }
            for behaviour in &spec.respond {
                validate_behaviour(spec.kind, behaviour).map_err(|m| at(behaviour.span(), m))?;
            }
            if spec.secret.is_some() && spec.kind != MockKind::WebhookSubscriber {
                return Err(at(
                    span,
                    format!(
                        "`secret` is a webhook subscriber's signing secret; {} has none",
                        spec.kind.name()
                    ),
                ));
            }
            for (route, list) in &spec.routes {
                let known = &spec.kind.routes()[1..];
                if !known.contains(&route.as_str()) {
                    return Err(at(
                        list.span(),
                        format!(
                            "`{route}` is not a route of {} besides its main one (set by `respond`); expected one of: {}",
                            spec.kind.name(),
                            if known.is_empty() { "(none)".to_owned() } else { known.join(", ") }
                        ),
                    ));
                }
                if list.get_ref().len() > MAX_BEHAVIOURS {
                    return Err(at(
                        list.span(),
                        format!("at most {MAX_BEHAVIOURS} responses per route"),
                    ));
                }
                for behaviour in list.get_ref() {
                    validate_behaviour(spec.kind, behaviour)
                        .map_err(|m| at(behaviour.span(), m))?;
                }
            }
            mocks.insert(name, spec);
        }

        let mut timeline = Vec::with_capacity(steps.len());
        for step in steps {
            let raw_step = step.get_ref();
            let action = match (
                &raw_step.book,
                raw_step.cron,
                &raw_step.stripe,
                raw_step.restart,
            ) {
                (Some(book), None, None, None) => {
                    validate_book(book).map_err(|m| at(step.span(), m))?;
                    Action::Book(book.clone())
                }
                (None, Some(job), None, None) => Action::Cron(job),
                (None, None, Some(stripe), None) => Action::Stripe(stripe.clone()),
                (None, None, None, Some(true)) => Action::Restart,
                _ => return Err(at(
                    step.span(),
                    "a step needs exactly one action: `book = { … }`, `cron = \"webhooks\"` or `\"reminders\"`, `stripe = { event = … }` or `restart = true`"
                        .into(),
                )),
            };
            let crash = match &raw_step.crash {
                None => None,
                Some(value) if !matches!(action, Action::Cron(_)) => {
                    return Err(at(
                        value.span(),
                        "`crash` arms a crash inside a cron call's job: only a `cron = …` step takes it (a `restart = true` step stops the service between steps)".into(),
                    ))
                }
                Some(value) => Some(crash_of(value.get_ref()).map_err(|m| at(value.span(), m))?),
            };
            timeline.push(Step {
                at: raw_step.at,
                action,
                crash,
            });
        }
        // Steps run in time order; equal times keep file order.
        timeline.sort_by_key(|s| s.at);

        let mut event_types: Vec<EventType> = Vec::new();
        for event_type in raw.event_types {
            let span = event_type.span();
            let event_type = event_type.into_inner();
            if event_types.iter().any(|e| e.id == event_type.id) {
                return Err(at(
                    span,
                    format!("event type {} is defined twice", event_type.id),
                ));
            }
            if event_type.seats == Some(0) || event_type.seats.is_some_and(|n| n > MAX_SEATS) {
                return Err(at(span, format!("`seats` must be 1–{MAX_SEATS}")));
            }
            event_types.push(event_type);
        }

        let mut expect = Vec::with_capacity(raw.expect.len());
        for (i, assertion) in raw.expect.into_iter().enumerate() {
            let span = assertion.span();
            expect.push(validate_assertion(
                i,
                assertion.into_inner(),
                &mocks,
                &timeline,
                text,
                span,
                &at,
            )?);
        }

        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Scenario {
            name,
            path: path.to_owned(),
            description: raw.description.trim().to_owned(),
            seed: raw.seed,
            service: raw.service,
            event_types,
            mocks,
            timeline,
            expect,
        })
    }
}
