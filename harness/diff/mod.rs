//! What differs between two replays' traces, Jaeger's trace comparison for replays: spans are
//! matched by their place in the aliased tree (operation, parent, order among siblings of the
//! same operation), then each pair is compared (parent, status, attributes, events, duration
//! within a tolerance, links), and so is what the mocks received (the context each request
//! carried). What one side cannot show (a log-line export has no parents) is not compared and
//! is said so. `report::diff` renders the result; saved exports are read back by `saved`.
//!
//! Files import only those before them: `changes`, `tolerance`, `matching`, `compare`, `saved`.

mod changes;
mod compare;
mod matching;
mod saved;
mod tolerance;

pub use changes::{
    Carried, Change, Difference, Holds, NotCompared, Parent, Place, RequestKey, Side, Target,
    TraceDiff,
};
pub use compare::{diff, Compared};
pub use saved::{read_saved, Saved, SavedError, SavedFormat, MAX_SAVED_BYTES};
pub use tolerance::{Tolerance, ToleranceError};
