//! Planted tracing bugs: the classic ways trace context gets lost, and a failed request traced
//! as a healthy one, switchable per scenario, so the harness can show that its invariants and
//! assertions catch each one. A correct build of the service runs with none.

use crate::contract::PlantedBug;
use crate::trace::Relation;

/// The bugs one service instance runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs(pub Vec<PlantedBug>);

impl PlantedBugs {
    /// Whether this instance runs with `bug`.
    pub(crate) fn has(&self, bug: PlantedBug) -> bool {
        self.0.contains(&bug)
    }

    /// How async work relates to the span that caused it.
    pub(crate) fn job_relation(&self) -> Relation {
        if self.has(PlantedBug::UnlinkedJobs) {
            Relation::ChildOf
        } else {
            Relation::FollowsFrom
        }
    }

    /// The context to store with a job: the current span's, unless jobs are orphaned.
    pub(crate) fn job_context(&self) -> Option<crate::trace::TraceContext> {
        if self.has(PlantedBug::OrphanJobs) {
            None
        } else {
            crate::trace::current_context()
        }
    }

    /// Whether a request answered 5xx writes its reason, at ERROR, in the span that served it
    /// (OpenTelemetry's HTTP conventions: a server span of a 5xx answer is in error).
    pub(crate) fn marks_server_errors(&self) -> bool {
        !self.has(PlantedBug::UnmarkedServerErrors)
    }
}
