//! Trace core: W3C ids, `traceparent` and `tracestate`, the capture subscriber and its
//! `TraceStore`, and the seed's log prefix. Knows nothing about bookings or HTTP servers.
//!
//! Each module imports only modules listed before it, so none imports one that imports it
//! back: `hex`, `ids`, `tracestate`, `context`, `model`, `order`, `chunked`, `store`, `stack`,
//! `prefix`, `capture`.

mod capture;
mod chunked;
mod context;
mod hex;
mod ids;
mod model;
mod order;
mod prefix;
mod stack;
mod store;
pub mod tracestate;

pub use capture::{
    context_of, continue_from, current_context, current_request_id, open_spans,
    start_id_generation, with_request_id, CaptureSubscriber, Relation,
};
pub use context::{
    TraceContext, TraceFlags, Traceparent, TraceparentError, MAX_TRACEPARENT_CHARS, TRACEPARENT,
    TRACESTATE,
};
pub use ids::{splitmix64, IdGenerator, SpanId, TraceId, GENERATION_STRIDE};
pub use model::{
    Captured, FieldStr, FieldValue, Fields, LogLine, ParentKind, Seq, SpanData, SpanRef,
    SpanStatus, ID_FIELDS,
};
pub use prefix::{
    prefix_part, Alias, Aliases, LinePrefix, RequestIdPrefix, SeedLine, SeedLineError, SeedPrefix,
};
pub use store::TraceStore;
/// The vector [`Fields`] and [`SpanData::links`] are made of, so callers need not depend on it.
pub use thin_vec::ThinVec;
pub use tracestate::{TraceState, TraceStateError};
