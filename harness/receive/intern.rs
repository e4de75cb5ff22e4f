//! Names that arrive from outside (span names, attribute keys, event targets) as the
//! `&'static str` the trace model holds. A contract operation is the contract's own constant;
//! any other name is leaked once, the first time it is seen, into one table for the process.
//!
//! Leaking is bounded by the number of *distinct* names, not by traffic: a service names its
//! operations and fields from a small vocabulary, so the table stays small however many spans
//! arrive. A hostile sender could invent names without end, so a name is at most
//! [`MAX_NAME_BYTES`] long and the table holds at most [`MAX_NAMES`]; past either, the span is
//! rejected as malformed, and memory stays bounded at about `MAX_NAMES × MAX_NAME_BYTES`.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::RwLock;

use crate::contract::OPERATIONS;

/// The longest name accepted, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;
/// The most distinct names the process keeps.
pub(crate) const MAX_NAMES: usize = 10_000;

/// Why a name cannot be interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InternError {
    /// Over [`MAX_NAME_BYTES`].
    #[error("a name of {len} bytes, more than the {MAX_NAME_BYTES} accepted")]
    TooLong {
        /// The name's length, in bytes.
        len: usize,
    },
    /// The table is full.
    #[error("more than {cap} distinct names received: no more are kept")]
    Full {
        /// How many the table holds.
        cap: usize,
    },
}

/// A table of leaked names, at most `cap` of them.
pub(crate) struct Interner {
    names: RwLock<HashSet<&'static str>>,
    cap: usize,
}

impl Interner {
    /// An empty table that keeps at most `cap` names.
    pub(crate) fn new(cap: usize) -> Self {
        Interner {
            names: RwLock::new(HashSet::new()),
            cap,
        }
    }

    /// `name` as a `&'static str`: the table's copy, made on first sight.
    pub(crate) fn intern(&self, name: &str) -> Result<&'static str, InternError> {
        if name.len() > MAX_NAME_BYTES {
            return Err(InternError::TooLong { len: name.len() });
        }
        if let Some(known) = self.names.read().get(name) {
            return Ok(known);
        }
        let mut names = self.names.write();
        // Another thread may have added it between the two locks.
        if let Some(known) = names.get(name) {
            return Ok(known);
        }
        if names.len() >= self.cap {
            return Err(InternError::Full { cap: self.cap });
        }
        let leaked: &'static str = Box::leak(name.into());
        names.insert(leaked);
        Ok(leaked)
    }

    /// How many names the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.read().len()
    }
}

static NAMES: LazyLock<Interner> = LazyLock::new(|| Interner::new(MAX_NAMES));

/// `name` as a `&'static str`: a contract operation as its constant (so `op ==
/// BOOKING_CREATION` compares as it does for captured spans), anything else from the process's
/// one table.
pub(crate) fn intern(name: &str) -> Result<&'static str, InternError> {
    if name.is_empty() {
        return Ok("");
    }
    if let Some(op) = OPERATIONS.iter().find(|op| **op == name) {
        return Ok(op);
    }
    NAMES.intern(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::BOOKING_CREATION;

    #[test]
    fn a_contract_operation_is_the_contracts_own_constant_and_leaks_nothing() {
        for op in OPERATIONS {
            // A copy, as a decoded request holds it.
            let copy = String::from(*op);
            assert_eq!(intern(&copy), Ok(*op));
            assert!(!NAMES.names.read().contains(op), "{op} was leaked");
        }
        assert_eq!(
            intern(&String::from("booking_creation")),
            Ok(BOOKING_CREATION)
        );
    }

    #[test]
    fn each_distinct_name_is_leaked_once() {
        let table = Interner::new(10);
        let first = table.intern(&String::from("GET /api/bookings")).unwrap();
        let again = table.intern(&String::from("GET /api/bookings")).unwrap();
        assert!(std::ptr::eq(first, again));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn long_names_and_names_past_the_cap_are_refused() {
        let table = Interner::new(2);
        assert_eq!(
            table.intern(&"x".repeat(MAX_NAME_BYTES + 1)),
            Err(InternError::TooLong {
                len: MAX_NAME_BYTES + 1
            })
        );
        assert!(table.intern(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(table.intern("b").is_ok());
        assert_eq!(table.intern("c"), Err(InternError::Full { cap: 2 }));
        // Names already kept are still found once the table is full.
        assert_eq!(table.intern("b"), Ok("b"));
        assert_eq!(table.len(), 2);
    }
}
