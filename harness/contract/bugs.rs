//! The planted tracing bugs a service under test can be switched into, so the harness can
//! prove its checks catch each one: the names scenarios use (`[service] bugs = […]`), part of
//! the service contract.

use serde::{Deserialize, Serialize};

/// A tracing bug the service can be built with (`[service] bugs = ["…"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlantedBug {
    /// Outbound HTTP calls carry no `traceparent` (a client built without the propagator).
    DropTraceparent,
    /// Scheduled jobs are stored without the scheduling span's context, so they start traces
    /// of their own.
    OrphanJobs,
    /// Jobs and callbacks continue their cause's trace as plain children, without the
    /// follows-from link.
    UnlinkedJobs,
    /// A request answered 5xx leaves the span that served it `ok`: the reason is not written
    /// in it.
    UnmarkedServerErrors,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 4] = [
        PlantedBug::DropTraceparent,
        PlantedBug::OrphanJobs,
        PlantedBug::UnlinkedJobs,
        PlantedBug::UnmarkedServerErrors,
    ];

    /// The bug's name, as scenarios and `TRACE_HARNESS_BUGS` write it.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::DropTraceparent => "drop_traceparent",
            PlantedBug::OrphanJobs => "orphan_jobs",
            PlantedBug::UnlinkedJobs => "unlinked_jobs",
            PlantedBug::UnmarkedServerErrors => "unmarked_server_errors",
        }
    }

    /// The bug called `name`, if any.
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_scenarios_deserialise() {
        for bug in PlantedBug::ALL {
            let read: PlantedBug = serde_json::from_value(bug.name().into()).unwrap();
            assert_eq!(read, bug);
            assert_eq!(PlantedBug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(PlantedBug::from_name("DropTraceparent"), None);
    }
}
