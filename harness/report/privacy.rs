//! Personal data out of every rendering and export: attendee names and e-mail addresses are
//! replaced by `[redacted name]` / `[redacted email]` unless `run --show-personal-data` asks
//! for them.
//!
//! The service itself logs seat numbers, never an attendee's name or address; personal data
//! reaches the output through text it passes on (a third party's error message that echoes an
//! address) and through the bodies the mocks received. So redaction works on values, not on
//! field names: the runner records every name and address it sent in
//! ([`ReplayOutcome::personal_data`]) and those are replaced wherever they appear, and any
//! other text shaped like an e-mail address is replaced too. It runs on a copy after judging,
//! so assertions still see the real values.

use std::sync::LazyLock;

use regex::Regex;

use crate::expect::Verdict;
use crate::outcome::PersonalKind;
use crate::outcome::ReplayOutcome;
use crate::trace::{FieldValue, SpanStatus};

/// What an attendee's name is shown as.
pub(crate) const REDACTED_NAME: &str = "[redacted name]";
/// What an e-mail address is shown as.
pub(crate) const REDACTED_EMAIL: &str = "[redacted email]";

/// Anything shaped like an address, dotless domains included (`eve@invalid`): the fallback for
/// addresses the runner did not send itself.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
        .unwrap_or_else(|e| unreachable!("a literal regex: {e}"))
});

/// Replaces the personal values it knows, then anything shaped like an address.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    /// `(value, replacement)`, longest value first so a name inside an address goes with it.
    known: Vec<(String, &'static str)>,
}

impl Redactor {
    /// A redactor for the personal values the replay sent.
    pub(crate) fn for_outcome(outcome: &ReplayOutcome) -> Self {
        Self::new(&outcome.personal_data)
    }

    /// A redactor for these values, and for anything shaped like an address.
    pub(crate) fn new(values: &[(String, PersonalKind)]) -> Self {
        let mut known: Vec<(String, &'static str)> = values
            .iter()
            .filter(|(value, _)| !value.trim().is_empty())
            .map(|(value, kind)| {
                let replacement = match kind {
                    PersonalKind::Name => REDACTED_NAME,
                    PersonalKind::Email => REDACTED_EMAIL,
                };
                (value.clone(), replacement)
            })
            .collect();
        known.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        known.dedup();
        Redactor { known }
    }

    /// `text` with every known value and address replaced.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (value, replacement) in &self.known {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), replacement);
            }
        }
        EMAIL.replace_all(&out, REDACTED_EMAIL).into_owned()
    }

    fn field(&self, value: &mut FieldValue) {
        if let FieldValue::Str(s) = value {
            *s = self.text(s).into();
        }
    }
}

/// A copy of the outcome and verdict fit to show: every log line, span field, step body,
/// mock request and finding with personal data replaced.
pub(crate) fn redact(outcome: &ReplayOutcome, verdict: &Verdict) -> (ReplayOutcome, Verdict) {
    let redactor = Redactor::for_outcome(outcome);
    let mut outcome = outcome.clone();
    for span in &mut outcome.captured.spans {
        for (_, value) in &mut span.fields {
            redactor.field(value);
        }
        if let SpanStatus::Error(message) = &mut span.status {
            *message = redactor.text(message).into();
        }
    }
    for line in &mut outcome.captured.logs {
        line.message = redactor.text(&line.message);
        for (_, value) in &mut line.fields {
            redactor.field(value);
        }
    }
    for step in &mut outcome.steps {
        step.body = redactor.text(&step.body);
    }
    for request in &mut outcome.requests {
        request.body = redactor.text(&request.body);
        for (_, value) in &mut request.headers {
            *value = redactor.text(value);
        }
    }
    for (_, _, reason) in &mut outcome.failed_jobs {
        *reason = redactor.text(reason);
    }
    outcome.personal_data.clear();
    let mut verdict = verdict.clone();
    for violation in &mut verdict.violations {
        violation.message = redactor.text(&violation.message);
    }
    for failure in &mut verdict.failures {
        failure.expected = redactor.text(&failure.expected);
        failure.actual = redactor.text(&failure.actual);
    }
    (outcome, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(known: &[(&str, PersonalKind)], input: &str, expected: &str) {
        let known: Vec<(String, PersonalKind)> =
            known.iter().map(|(v, k)| (v.to_string(), *k)).collect();
        assert_eq!(Redactor::new(&known).text(input), expected);
    }

    #[test]
    fn known_names_and_any_address_are_replaced() {
        use PersonalKind::*;
        check(&[], "no personal data", "no personal data");
        check(
            &[("Eve Adams", Name), ("eve@example.com", Email)],
            "Invalid attendee email: eve@example.com (Eve Adams)",
            "Invalid attendee email: [redacted email] ([redacted name])",
        );
        check(
            &[],
            "to bob.smith+x@mail.example.org.",
            "to [redacted email].",
        );
        check(&[], "refused eve@invalid", "refused [redacted email]");
        check(
            &[],
            "no address here: a @ b, x@",
            "no address here: a @ b, x@",
        );
    }
}
