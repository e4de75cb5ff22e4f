//! The JUnit XML format: one test case per scenario, failures carrying the diagnostic text.

use super::diagnostics;
use super::pieces::{Judged, Piece, RenderOptions};
use crate::expect::Verdict;
use crate::outcome::ReplayOutcome;

/// The run's report, on standard output or in `junit.xml`.
pub(super) fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<Piece> {
    let cases: Vec<JunitCase> = judged.iter().map(JunitCase::of).collect();
    report(&cases, options)
}

/// The report of `cases`, on standard output or in `junit.xml`.
pub(super) fn report(cases: &[JunitCase], options: RenderOptions) -> Vec<Piece> {
    let xml = junit(cases);
    if options.to_files {
        vec![Piece::File {
            name: "junit.xml".to_owned(),
            text: xml,
        }]
    } else {
        vec![Piece::Stdout(format!("{}\n", xml.trim_end()))]
    }
}

/// What a JUnit report keeps of one replay: its name and how it ended, so that a long run's
/// report need not hold the outcomes themselves.
#[derive(Clone, Debug)]
pub(crate) struct JunitCase {
    name: String,
    status: CaseStatus,
}

#[derive(Clone, Debug)]
enum CaseStatus {
    Passed,
    /// Expectations failed: how many, and the diagnostic text.
    Failed {
        count: usize,
        diagnostics: String,
    },
    /// The replay itself could not run.
    Broken(String),
}

impl JunitCase {
    /// The case of one judged replay.
    pub(crate) fn of(replay: &Judged<'_>) -> Self {
        match &replay.result {
            Ok(r) => JunitCase {
                name: r.outcome.scenario.clone(),
                status: Self::judged(&r.outcome, &r.verdict),
            },
            Err(e) => JunitCase {
                name: replay.scenario.name.clone(),
                status: CaseStatus::Broken(e.clone()),
            },
        }
    }

    fn judged(outcome: &ReplayOutcome, verdict: &Verdict) -> CaseStatus {
        if verdict.passed() {
            CaseStatus::Passed
        } else {
            CaseStatus::Failed {
                count: verdict.violations.len() + verdict.failures.len(),
                diagnostics: diagnostics(outcome, verdict),
            }
        }
    }
}

/// A JUnit XML report: one test case per scenario, failures carrying the diagnostic text.
pub(crate) fn junit(cases: &[JunitCase]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("scenarios");
    for case in cases {
        let status = match &case.status {
            CaseStatus::Passed => TestCaseStatus::success(),
            CaseStatus::Failed { count, diagnostics } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(format!("{count} expectation(s) failed"))
                    .set_type("trace assertion")
                    .set_description(diagnostics.as_str());
                status
            }
            CaseStatus::Broken(error) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(error.as_str()).set_type("replay error");
                status
            }
        };
        let mut test = TestCase::new(case.name.as_str(), status);
        test.set_classname("trace-harness");
        suite.add_test_case(test);
    }
    let mut report = Report::new("trace-harness");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}
