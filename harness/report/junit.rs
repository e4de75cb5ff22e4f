//! The JUnit XML format: one test case per scenario, failures carrying the diagnostic text.

use super::diagnostics;
use super::pieces::{Judged, Piece, RenderOptions};
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;

/// The run's report, on standard output or in `junit.xml`.
pub(super) fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    let cases: Vec<JunitCase<'_>> = judged
        .iter()
        .map(|replay| match &replay.result {
            Ok(r) => JunitCase::Judged(&r.outcome, &r.verdict),
            Err(e) => JunitCase::Broken(&replay.scenario.name, e.clone()),
        })
        .collect();
    let xml = junit(&cases);
    if options.to_files {
        vec![Piece::File {
            name: "junit.xml".to_owned(),
            text: xml,
        }]
    } else {
        vec![Piece::Stdout(format!("{}\n", xml.trim_end()))]
    }
}

/// A scenario's replay result, for a JUnit report.
pub(crate) enum JunitCase<'a> {
    Judged(&'a ReplayOutcome, &'a Verdict),
    /// The replay itself could not run.
    Broken(&'a str, String),
}

/// A JUnit XML report: one test case per scenario, failures carrying the diagnostic text.
pub(crate) fn junit(cases: &[JunitCase<'_>]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("scenarios");
    for case in cases {
        let (name, status) = match case {
            JunitCase::Judged(outcome, verdict) if verdict.passed() => {
                (outcome.scenario.as_str(), TestCaseStatus::success())
            }
            JunitCase::Judged(outcome, verdict) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let count = verdict.violations.len() + verdict.failures.len();
                status
                    .set_message(format!("{count} expectation(s) failed"))
                    .set_type("trace assertion")
                    .set_description(diagnostics(outcome, verdict));
                (outcome.scenario.as_str(), status)
            }
            JunitCase::Broken(name, error) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(error.clone()).set_type("replay error");
                (*name, status)
            }
        };
        let mut test = TestCase::new(name, status);
        test.set_classname("trace-harness");
        suite.add_test_case(test);
    }
    let mut report = Report::new("trace-harness");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}
