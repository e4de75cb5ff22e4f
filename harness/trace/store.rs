//! `TraceStore`: every captured span and log line of one replay, in the order they happened.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::context::TraceFlags;
use super::ids::{SpanId, TraceId};
use super::tracestate::TraceState;
use crate::clock::VirtualTime;

/// A recorded field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Str(FieldStr),
    I64(i64),
    U64(u64),
    F64(f64),
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

pub type Fields = Vec<(&'static str, FieldValue)>;

/// Creation number of a span or log line within one replay. 32 bits, so a stored span is
/// 8 bytes smaller than with a `u64` (4, and 4 of padding): numbers are kept in order for
/// `u32::MAX` items, spans and log lines together, per store (a 10 000-flow load run numbers
/// 90 000; [`TraceStore::clear`] does not restart them), and wrap after that.
pub type Seq = u32;

/// A field's text: up to [`FieldStr::INLINE_LEN`] bytes are kept inline, so the short values
/// spans mostly carry (`google`, a status, an id) cost no allocation, and a longer one costs
/// one exact-size box. 24 bytes, and [`FieldValue`] stays 24 bytes with it (its tag fits in
/// this one's spare values).
#[derive(Clone)]
pub enum FieldStr {
    Inline {
        len: u8,
        bytes: [u8; FieldStr::INLINE_LEN],
    },
    Heap(Box<str>),
}

impl FieldStr {
    pub const INLINE_LEN: usize = 22;

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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SpanStatus {
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

/// One finished (or, in [`Captured::open`], unfinished) span.
#[derive(Clone, Debug)]
pub struct SpanData {
    /// Creation order within the replay; stable, so renderers can alias ids by it.
    pub seq: Seq,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<(SpanId, ParentKind)>,
    /// Follows-from links: spans that caused this one without waiting for it.
    pub links: Vec<SpanId>,
    pub op: &'static str,
    pub fields: Fields,
    pub status: SpanStatus,
    pub start: VirtualTime,
    pub end: VirtualTime,
    pub flags: TraceFlags,
    pub tracestate: Option<TraceState>,
    /// The legacy request id of the request the span ran in, if any.
    pub request_id: Option<Arc<str>>,
}

impl SpanData {
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent.map(|(id, _)| id)
    }
    pub fn duration(&self) -> std::time::Duration {
        self.end.since(self.start)
    }
}

/// Which span a log line was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub op: &'static str,
}

/// One event, as a log line: the seed's log store holds exactly these.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub seq: Seq,
    pub at: VirtualTime,
    pub level: tracing::Level,
    pub message: String,
    pub fields: Fields,
    pub target: &'static str,
    pub span: Option<SpanRef>,
    pub request_id: Option<Arc<str>>,
}

/// What a [`super::CaptureLayer`] writes into. Cheap to share; snapshot it after the replay.
#[derive(Debug, Default)]
pub struct TraceStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The next creation number, shared by spans and log lines so that both sort together.
    next_seq: Seq,
    spans: Chunked<SpanData>,
    logs: Chunked<LogLine>,
    /// Spans not closed yet, by slot: a closing span frees its slot in O(1) however many flows
    /// are in flight, and freed slots are reused.
    open: Vec<Option<(Seq, SpanRef)>>,
    free_slots: Vec<usize>,
}

/// Items in chunks that never move once allocated: pushing never copies what is already
/// stored (no reallocation of one large `Vec` mid-replay). Chunks double from a small first one
/// up to [`Chunked::MAX_CHUNK_LEN`], so a short replay stays small and a long one wastes at
/// most one partly filled chunk.
#[derive(Debug)]
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// Emptied chunks kept by [`Chunked::clear`] for reuse, as `Vec::clear` keeps capacity.
    spare: Vec<Vec<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
            spare: Vec::new(),
        }
    }
}

impl<T> Chunked<T> {
    const FIRST_CHUNK_LEN: usize = 16;
    const MAX_CHUNK_LEN: usize = 1024;

    #[inline]
    fn push(&mut self, item: T) {
        self.len += 1;
        if let Some(chunk) = self.chunks.last_mut() {
            if chunk.len() < chunk.capacity() {
                chunk.push(item);
                return;
            }
        }
        let wanted = self
            .len
            .next_power_of_two()
            .clamp(Self::FIRST_CHUNK_LEN, Self::MAX_CHUNK_LEN);
        let mut chunk = match self.spare.pop() {
            Some(chunk) if chunk.capacity() >= wanted => chunk,
            _ => Vec::with_capacity(wanted),
        };
        chunk.push(item);
        self.chunks.push(chunk);
    }

    fn clear(&mut self) {
        for mut chunk in self.chunks.drain(..) {
            chunk.clear();
            self.spare.push(chunk);
        }
        // Largest last, so the next pushes reuse the biggest chunks first.
        self.spare.sort_by_key(Vec::capacity);
        self.len = 0;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl TraceStore {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a span opened; returns its creation number and the slot to hand back to
    /// [`TraceStore::closed`].
    #[inline]
    pub(crate) fn opened(&self, span: SpanRef) -> (Seq, usize) {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq = seq.wrapping_add(1);
        let slot = match inner.free_slots.pop() {
            Some(slot) => {
                inner.open[slot] = Some((seq, span));
                slot
            }
            None => {
                inner.open.push(Some((seq, span)));
                inner.open.len() - 1
            }
        };
        (seq, slot)
    }

    #[inline]
    pub(crate) fn closed(&self, open_slot: usize, data: SpanData) {
        let mut inner = self.lock();
        if let Some(entry) = inner.open.get_mut(open_slot) {
            if entry.is_some_and(|(seq, _)| seq == data.seq) {
                *entry = None;
                inner.free_slots.push(open_slot);
            }
        }
        inner.spans.push(data);
    }

    /// Forgets every closed span and log line captured so far, keeping the memory for reuse as
    /// `Vec::clear` does; open spans stay open. For long runs (benchmarks, soak tests) that
    /// snapshot and drop as they go.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.spans.clear();
        inner.logs.clear();
    }

    /// How many spans have closed so far.
    pub fn span_count(&self) -> usize {
        self.lock().spans.len()
    }

    /// How many log lines have been captured so far.
    pub fn log_count(&self) -> usize {
        self.lock().logs.len()
    }

    /// Takes a log line, giving it its creation number.
    #[inline]
    pub(crate) fn logged(&self, mut line: LogLine) {
        let mut inner = self.lock();
        line.seq = inner.next_seq;
        inner.next_seq = line.seq.wrapping_add(1);
        inner.logs.push(line);
    }

    /// Everything captured so far, in creation order.
    pub fn snapshot(&self) -> Captured {
        let inner = self.lock();
        let mut spans: Vec<SpanData> = inner.spans.iter().cloned().collect();
        spans.sort_by_key(|s| s.seq);
        let mut logs: Vec<LogLine> = inner.logs.iter().cloned().collect();
        logs.sort_by_key(|l| l.seq);
        let mut open: Vec<(Seq, SpanRef)> = inner.open.iter().flatten().copied().collect();
        open.sort_by_key(|(seq, _)| *seq);
        Captured {
            spans,
            logs,
            open: open.into_iter().map(|(_, s)| s).collect(),
        }
    }
}

/// A replay's captured telemetry, ordered by when each item began.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    pub spans: Vec<SpanData>,
    pub logs: Vec<LogLine>,
    /// Spans that never closed: always a bug in the code under test.
    pub open: Vec<SpanRef>,
}

impl Captured {
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

    pub fn children(&self, id: SpanId) -> impl Iterator<Item = &SpanData> {
        self.spans.iter().filter(move |s| s.parent_id() == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_push_order_across_growth_and_clear() {
        let mut items = Chunked::default();
        for i in 0..3_000 {
            items.push(i);
        }
        assert_eq!(items.len(), 3_000);
        assert!(items.iter().copied().eq(0..3_000));
        // Chunks double from the first one, then stay at the maximum.
        let lens: Vec<usize> = items.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(lens[..3], [16, 32, 64]);
        assert!(lens.iter().all(|&n| n <= Chunked::<i32>::MAX_CHUNK_LEN));

        items.clear();
        assert_eq!(items.len(), 0);
        assert_eq!(items.iter().count(), 0);
        for i in 0..100 {
            items.push(i);
        }
        assert!(items.iter().copied().eq(0..100));
        // The largest spare chunk is reused first, so 100 items fit in one.
        assert_eq!(items.chunks.len(), 1);
    }

    #[test]
    fn a_closing_span_frees_its_open_slot_for_the_next_one() {
        let store = TraceStore::new();
        let span = |n: u8| SpanRef {
            trace_id: TraceId::from_bytes([n; 16]).unwrap(),
            span_id: SpanId::from_bytes([n; 8]).unwrap(),
            op: "op",
        };
        let (seq_a, a) = store.opened(span(1));
        let (seq_b, b) = store.opened(span(2));
        assert_eq!((seq_a, seq_b), (0, 1));
        assert_ne!(a, b);
        let data = |seq: Seq, n: u8| SpanData {
            seq,
            trace_id: span(n).trace_id,
            span_id: span(n).span_id,
            parent: None,
            links: Vec::new(),
            op: "op",
            fields: Fields::new(),
            status: SpanStatus::Ok,
            start: VirtualTime::ZERO,
            end: VirtualTime::ZERO,
            flags: TraceFlags::SAMPLED,
            tracestate: None,
            request_id: None,
        };
        store.closed(a, data(0, 1));
        assert_eq!(store.snapshot().open, vec![span(2)]);
        assert_eq!(store.opened(span(3)), (2, a), "the freed slot is reused");
        assert_eq!(store.snapshot().open, vec![span(2), span(3)]);
        assert_eq!(store.span_count(), 1);
    }
}
