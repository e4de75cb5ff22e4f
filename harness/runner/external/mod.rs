//! Replays against a service the harness did not write: started from a `service.toml` as a
//! process per replay, configured through the contract's environment, its spans received over
//! OTLP/HTTP (or, from a log-only service, its seed-format lines read from its stdout). The
//! timeline is the same as in-process; what differs is where spans come from and how the
//! runner knows a step's spans have all arrived.

pub mod process;
mod service;
mod settle;
pub mod spec;

pub use process::{ProcessError, BEFORE_READY, DURING_REPLAY};
pub use spec::{
    Protocol, Readiness, RunningService, ServiceClock, ServiceSpec, SpecError, Telemetry,
};

pub(crate) use service::{bind_fixed_mocks, running_env, ExternalService, Received};
pub(crate) use settle::{named_senders, Caused};
