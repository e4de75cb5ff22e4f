//! Scenario files: the TOML schema, parsing with `file:line:col` errors, validation and
//! loading from disk. Nothing here runs a replay.

mod assertion;
mod compare;
mod error;
mod load;
mod parse;
mod raw;
mod schema;
mod selector;
mod validate;

pub use assertion::{Assertion, EventCount, ExpectedStatus, Target};
pub use compare::{CompareOp, DurationTest, ValueTest};
pub(crate) use error::{in_toml_terms, locate};
pub use error::{Located, ScenarioError};
pub(crate) use load::load_all;
pub use schema::{
    Action, Attendee, BookStep, CronJob, MockSpec, Scenario, ServiceSpec, SignatureKind, Step,
    StripeEvent, StripeStep,
};
pub use selector::{Selector, SelectorError};

/// Upper bounds on what one scenario may ask for, so a typo cannot ask for a billion steps.
pub(crate) const MAX_STEPS: usize = 1_000;
/// Mocks one scenario may define.
pub(crate) const MAX_MOCKS: usize = 32;
/// Responses one mock route may list.
pub(crate) const MAX_BEHAVIOURS: usize = 100;
/// `[[expect]]` entries one scenario may hold.
pub(crate) const MAX_ASSERTIONS: usize = 200;
/// Seats per slot, and attendees per booking.
pub(crate) const MAX_SEATS: u32 = 100;

#[cfg(test)]
mod tests;
