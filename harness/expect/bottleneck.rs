//! The performance analysis: per booking, the slowest direct step of its creation.

use std::time::Duration;

use crate::contract::BOOKING_CREATION;
use crate::trace::{Captured, SpanData, TraceId};

/// The slowest direct step of a booking's creation and its share of the whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    /// The booking's trace.
    pub trace_id: TraceId,
    /// The slowest step's operation.
    pub op: &'static str,
    /// How long it took.
    pub duration: Duration,
    /// The `booking_creation` span's duration.
    pub total: Duration,
}

impl Bottleneck {
    /// `duration / total`, in tenths of a percent (923 = 92.3 %).
    pub fn share_permille(&self) -> u64 {
        let total = self.total.as_micros().max(1);
        u64::try_from(self.duration.as_micros() * 1000 / total).unwrap_or(1000)
    }
}

/// For every `booking_creation` span, its slowest child (the first of equals) that is not
/// linked work.
pub fn bottlenecks(captured: &Captured) -> Vec<Bottleneck> {
    captured
        .spans
        .iter()
        .filter(|s| s.op == BOOKING_CREATION && !s.duration().is_zero())
        .filter_map(|root| {
            let slowest = captured
                .children(root.span_id)
                .filter(|s| s.links.is_empty())
                .fold(None::<&SpanData>, |best, s| match best {
                    Some(b) if b.duration() >= s.duration() => Some(b),
                    _ => Some(s),
                })?;
            Some(Bottleneck {
                trace_id: root.trace_id,
                op: slowest.op,
                duration: slowest.duration(),
                total: root.duration(),
            })
        })
        .collect()
}
