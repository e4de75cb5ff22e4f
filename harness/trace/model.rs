//! The captured telemetry as callers read it: spans, log lines, their fields and status, and
//! [`Captured`], a replay's snapshot. Plain data; how the store keeps it lives in `store`.

use std::fmt;
use std::sync::Arc;

use thin_vec::ThinVec;

use super::context::TraceFlags;
use super::ids::{SpanId, TraceId};
use super::tracestate::TraceState;
use crate::clock::VirtualTime;

/// A recorded field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// Text, and any value recorded with `Debug` (`?value`) or `Display` (`%value`).
    Str(FieldStr),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Str(s) => f.write_str(s),
            FieldValue::I64(n) => write!(f, "{n}"),
            FieldValue::U64(n) => write!(f, "{n}"),
            FieldValue::F64(n) => write!(f, "{n}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A span's or line's fields, in the order they were recorded. A `ThinVec`: 8 bytes when
/// empty, as the stored form of most spans' and lines' is (their fields live in the store's
/// chunks until a snapshot), where a `Vec` would be 24.
pub type Fields = ThinVec<(&'static str, FieldValue)>;

/// Creation number of a span or log line within one replay. 32 bits, so a stored span is
/// 8 bytes smaller than with a `u64` (4, and 4 of padding): numbers are kept in order for
/// `u32::MAX` items, spans and log lines together, per store (a 10 000-flow load run numbers
/// 90 000; [`TraceStore::clear`](crate::trace::TraceStore::clear) does not restart them), and
/// wrap after that.
pub type Seq = u32;

/// A field's text: up to [`FieldStr::INLINE_LEN`] bytes are kept inline, so the short values
/// spans mostly carry (`google`, a status, an id) cost no allocation, and a longer one costs
/// one exact-size box. 24 bytes, and [`FieldValue`] stays 24 bytes with it (its tag fits in
/// this one's spare values).
#[derive(Clone)]
pub enum FieldStr {
    /// Short text, in place: the first `len` bytes of `bytes`.
    Inline {
        /// How many of `bytes` hold the text.
        len: u8,
        /// The text's bytes, then zeros.
        bytes: [u8; FieldStr::INLINE_LEN],
    },
    /// Text longer than [`FieldStr::INLINE_LEN`] bytes.
    Heap(Box<str>),
}

impl FieldStr {
    /// The longest text kept inline, in bytes.
    pub const INLINE_LEN: usize = 22;

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            // Only ever filled from a whole `&str`, so always valid UTF-8.
            FieldStr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            FieldStr::Heap(text) => text,
        }
    }
}

impl From<&str> for FieldStr {
    fn from(text: &str) -> Self {
        if text.len() <= Self::INLINE_LEN {
            let mut bytes = [0; Self::INLINE_LEN];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            FieldStr::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            FieldStr::Heap(text.into())
        }
    }
}

impl From<String> for FieldStr {
    fn from(text: String) -> Self {
        if text.len() <= Self::INLINE_LEN {
            FieldStr::from(text.as_str())
        } else {
            FieldStr::Heap(text.into_boxed_str())
        }
    }
}

impl std::ops::Deref for FieldStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for FieldStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for FieldStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FieldStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a span failed: the OTLP status it exports with.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SpanStatus {
    /// Nothing was logged at ERROR level inside the span.
    #[default]
    Ok,
    /// The first message logged at ERROR level inside the span.
    Error(Box<str>),
}

/// How a span came by its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentKind {
    /// A span that was open in the same process when this one started.
    Local,
    /// A context that crossed a boundary: an HTTP header or a stored job row.
    Remote,
}

/// The names under which [`SpanData::value_of`] reads a span's ids rather than a field: what
/// asserts that a trace continues a caller's `traceparent`.
pub const ID_FIELDS: &[&str] = &["trace_id", "span_id", "parent_id"];

/// One finished (or, in [`Captured::open`], unfinished) span.
#[derive(Clone, Debug)]
pub struct SpanData {
    /// Creation order within the replay; stable, so renderers can alias ids by it.
    pub seq: Seq,
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent span, local or remote; `None` for a trace's root.
    pub parent: Option<(SpanId, ParentKind)>,
    /// Follows-from links: spans that caused this one without waiting for it.
    pub links: ThinVec<SpanId>,
    /// The operation: the span's name (`booking_creation`).
    pub op: &'static str,
    /// Its fields, in the order they were recorded.
    pub fields: Fields,
    /// Whether it failed.
    pub status: SpanStatus,
    /// When it opened, on the flow's virtual clock.
    pub start: VirtualTime,
    /// When it closed; never before `start`.
    pub end: VirtualTime,
    /// Its trace flags, as it propagates them.
    pub flags: TraceFlags,
    /// The vendors' `tracestate` it carries, inherited from its parent.
    pub tracestate: Option<TraceState>,
    /// The legacy request id of the request the span ran in, if any.
    pub request_id: Option<Arc<str>>,
}

impl SpanData {
    /// A span that only log lines show: its ids and operation, opened and closed at `at`, no
    /// parent, link, field, status or request yet (the reader fills in what its lines say).
    pub fn seen_in_logs(
        seq: Seq,
        trace_id: TraceId,
        span_id: SpanId,
        op: &'static str,
        at: VirtualTime,
    ) -> SpanData {
        SpanData {
            seq,
            trace_id,
            span_id,
            parent: None,
            links: ThinVec::new(),
            op,
            fields: Fields::new(),
            status: SpanStatus::Ok,
            start: at,
            end: at,
            flags: TraceFlags::SAMPLED,
            tracestate: None,
            request_id: None,
        }
    }

    /// The value of the field `name`, if recorded.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// What a selector filter or an `attributes` check reads under `name`, as text: the
    /// span's own ids under [`ID_FIELDS`] (`trace_id`, `span_id`, `parent_id`, in hex), else
    /// the field of that name.
    pub fn value_of(&self, name: &str) -> Option<String> {
        match name {
            "trace_id" => Some(self.trace_id.to_string()),
            "span_id" => Some(self.span_id.to_string()),
            "parent_id" => self.parent_id().map(|p| p.to_string()),
            field => self.field(field).map(ToString::to_string),
        }
    }
    /// The parent span's id, local or remote.
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent.map(|(id, _)| id)
    }
    /// How long the span was open, in virtual time.
    pub fn duration(&self) -> std::time::Duration {
        self.end.since(self.start)
    }
    /// Which span this is, as a log line refers to it.
    #[inline]
    pub fn span_ref(&self) -> SpanRef {
        SpanRef {
            trace_id: self.trace_id,
            span_id: self.span_id,
            op: self.op,
        }
    }
}

/// Which span a log line was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    /// The span's trace.
    pub trace_id: TraceId,
    /// The span's id.
    pub span_id: SpanId,
    /// The span's operation.
    pub op: &'static str,
}

/// One event, as a log line: the seed's log store holds exactly these.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Creation order within the replay, shared with spans.
    pub seq: Seq,
    /// When it was written, on the flow's virtual clock.
    pub at: VirtualTime,
    /// The event's level.
    pub level: tracing::Level,
    /// The event's message, unescaped.
    pub message: String,
    /// The event's other fields, in the order they were recorded.
    pub fields: Fields,
    /// The event's target (its module path, unless set).
    pub target: &'static str,
    /// The span it was written in, if any.
    pub span: Option<SpanRef>,
    /// The legacy request id of the request it was written in, if any.
    pub request_id: Option<Arc<str>>,
}

/// A replay's captured telemetry, ordered by when each item began.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Closed spans, in creation order.
    pub spans: Vec<SpanData>,
    /// Log lines, in creation order.
    pub logs: Vec<LogLine>,
    /// Spans that never closed: always a bug in the code under test.
    pub open: Vec<SpanRef>,
}

impl Captured {
    /// The closed span with this id.
    pub fn span(&self, id: SpanId) -> Option<&SpanData> {
        self.spans.iter().find(|s| s.span_id == id)
    }

    /// Distinct trace ids in order of first appearance.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        let mut ids: Vec<TraceId> = Vec::new();
        for span in &self.spans {
            if !ids.contains(&span.trace_id) {
                ids.push(span.trace_id);
            }
        }
        ids
    }

    /// The closed spans whose parent is `id`, in creation order.
    pub fn children(&self, id: SpanId) -> impl Iterator<Item = &SpanData> {
        self.spans.iter().filter(move |s| s.parent_id() == Some(id))
    }
}
