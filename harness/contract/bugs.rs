//! The planted propagation bugs a service under test can be switched into, so the harness can
//! prove its checks catch each one: the names scenarios use (`[service] bugs = […]`), part of
//! the service contract.

use serde::Deserialize;

/// A propagation bug the service can be built with (`[service] bugs = ["…"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
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
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 3] = [
        PlantedBug::DropTraceparent,
        PlantedBug::OrphanJobs,
        PlantedBug::UnlinkedJobs,
    ];
}
