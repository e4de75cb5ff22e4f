//! `TraceStore`: every captured span and log line of one replay, in the order they happened.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::Metadata;

use super::context::TraceFlags;
use super::ids::{IdGenerator, SpanId, TraceId};
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

/// What a [`super::CaptureSubscriber`] writes into. Cheap to share; snapshot it after the replay.
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
    /// Spans not closed yet, each written in place in its slot from open to close. A closing
    /// span frees its slot in O(1) however many flows are in flight, and freed slots are reused.
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
}

/// One place for a live span. `generation` counts the slot's reuses, so an id held past its
/// span's close (a bug in the caller, or a stale stack entry) finds nothing rather than the
/// slot's next span.
#[derive(Debug)]
struct Slot {
    generation: u32,
    live: Option<Live>,
}

/// A span between open and close: its record, and what the subscriber needs to manage its
/// lifetime.
#[derive(Debug)]
struct Live {
    data: SpanData,
    metadata: &'static Metadata<'static>,
    /// Handles still alive: the span's own, its clones, and one per open child (a child keeps
    /// its parent open, as `tracing_subscriber::Registry` does, so a parent never closes
    /// before its children).
    refs: u32,
    /// The open parent this span holds a handle to.
    parent: Option<LiveId>,
}

/// A live span's id, as the subscriber hands it to `tracing`: slot index + 1 in the low 32
/// bits (never zero), the slot's generation in the high 32.
pub(crate) type LiveId = u64;

fn live_id(index: u32, generation: u32) -> LiveId {
    (u64::from(generation) << 32) | (u64::from(index) + 1)
}

impl Inner {
    #[inline]
    fn next_seq(&mut self) -> Seq {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    #[inline]
    fn live_mut(&mut self, id: LiveId) -> Option<&mut Live> {
        let index = ((id & 0xFFFF_FFFF) as usize).checked_sub(1)?;
        let slot = self.slots.get_mut(index)?;
        if u64::from(slot.generation) != id >> 32 {
            return None;
        }
        slot.live.as_mut()
    }

    /// Frees a live span's slot and hands back what it held.
    fn take(&mut self, id: LiveId) -> Option<Live> {
        self.live_mut(id)?;
        let index = (id & 0xFFFF_FFFF) as u32 - 1;
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(index);
        slot.live.take()
    }
}

/// What a new span starts with; the store fills in its ids, parent and creation number.
pub(crate) struct NewSpan {
    pub metadata: &'static Metadata<'static>,
    pub fields: Fields,
    pub start: VirtualTime,
    pub request_id: Option<Arc<str>>,
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

    /// Opens a span as a child of `parent` (a live span's id), or as the root of a new trace
    /// when there is none, and returns its id. Ids are minted here, trace id first, so that a
    /// seeded generator gives the same ids in the same order on every run.
    #[inline]
    pub(crate) fn open(&self, ids: &IdGenerator, parent: Option<LiveId>, span: NewSpan) -> LiveId {
        let mut inner = self.lock();
        let inherited = parent.and_then(|id| {
            let parent = inner.live_mut(id)?;
            parent.refs += 1;
            let p = &parent.data;
            Some((id, p.trace_id, p.span_id, p.flags, p.tracestate.clone()))
        });
        let (trace_id, parent, flags, tracestate) = match inherited {
            Some((id, trace, parent, flags, state)) => (trace, Some((id, parent)), flags, state),
            None => (ids.trace_id(), None, TraceFlags::NEW_TRACE, None),
        };
        let data = SpanData {
            seq: inner.next_seq(),
            trace_id,
            span_id: ids.span_id(),
            parent: parent.map(|(_, span_id)| (span_id, ParentKind::Local)),
            links: Vec::new(),
            op: span.metadata.name(),
            fields: span.fields,
            status: SpanStatus::Ok,
            start: span.start,
            end: span.start,
            flags,
            tracestate,
            request_id: span.request_id,
        };
        let live = Live {
            data,
            metadata: span.metadata,
            refs: 1,
            parent: parent.map(|(id, _)| id),
        };
        let index = match inner.free_slots.pop() {
            Some(index) => {
                inner.slots[index as usize].live = Some(live);
                index
            }
            None => {
                let index = u32::try_from(inner.slots.len()).expect("fewer than 2^32 open spans");
                inner.slots.push(Slot {
                    generation: 0,
                    live: Some(live),
                });
                index
            }
        };
        live_id(index, inner.slots[index as usize].generation)
    }

    /// Runs `f` on a live span's record.
    pub(crate) fn with_live<R>(&self, id: LiveId, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        self.lock().live_mut(id).map(|live| f(&mut live.data))
    }

    /// A live span's callsite metadata.
    pub(crate) fn metadata(&self, id: LiveId) -> Option<&'static Metadata<'static>> {
        self.lock().live_mut(id).map(|live| live.metadata)
    }

    /// Which span a line written in the live span `id` belongs to.
    pub(crate) fn span_ref(&self, id: LiveId) -> Option<SpanRef> {
        self.lock().live_mut(id).map(|live| live.data.span_ref())
    }

    /// Records that `id` follows from `cause`: both live spans.
    pub(crate) fn link(&self, id: LiveId, cause: LiveId) {
        let mut inner = self.lock();
        let Some(cause) = inner.live_mut(cause).map(|live| live.data.span_id) else {
            return;
        };
        if let Some(live) = inner.live_mut(id) {
            live.data.links.push(cause);
        }
    }

    /// One more handle to a live span.
    #[inline]
    pub(crate) fn retain(&self, id: LiveId) {
        if let Some(live) = self.lock().live_mut(id) {
            live.refs += 1;
        }
    }

    /// Drops a handle to a live span. The last one closes it at `end` (its start, if no
    /// virtual time is known) and stores it, then drops its handle to its parent, which may
    /// close in turn. Returns whether the span itself closed.
    #[inline]
    pub(crate) fn release(&self, released: LiveId, end: Option<VirtualTime>) -> bool {
        let mut inner = self.lock();
        let mut next = Some(released);
        let mut closed = false;
        while let Some(id) = next.take() {
            let Some(live) = inner.live_mut(id) else {
                break;
            };
            live.refs -= 1;
            if live.refs > 0 {
                break;
            }
            let Some(Live {
                mut data, parent, ..
            }) = inner.take(id)
            else {
                break;
            };
            data.end = end.unwrap_or(data.start).max(data.start);
            inner.spans.push(data);
            closed |= id == released;
            next = parent;
        }
        closed
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

    /// Takes a log line written in the live span `span`, if any, giving it its creation number
    /// and its span. An error line marks its span as failed, with the first error's message.
    #[inline]
    pub(crate) fn logged(&self, span: Option<LiveId>, mut line: LogLine) {
        let mut inner = self.lock();
        line.span = span.and_then(|id| inner.live_mut(id)).map(|live| {
            if line.level == tracing::Level::ERROR && live.data.status == SpanStatus::Ok {
                live.data.status = SpanStatus::Error(line.message.as_str().into());
            }
            live.data.span_ref()
        });
        line.seq = inner.next_seq();
        inner.logs.push(line);
    }

    /// Everything captured so far, in creation order.
    pub fn snapshot(&self) -> Captured {
        let inner = self.lock();
        let mut spans: Vec<SpanData> = inner.spans.iter().cloned().collect();
        spans.sort_by_key(|s| s.seq);
        let mut logs: Vec<LogLine> = inner.logs.iter().cloned().collect();
        logs.sort_by_key(|l| l.seq);
        let mut open: Vec<(Seq, SpanRef)> = (inner.slots.iter())
            .filter_map(|slot| slot.live.as_ref())
            .map(|live| (live.data.seq, live.data.span_ref()))
            .collect();
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
    fn a_closing_span_frees_its_slot_and_a_stale_id_finds_nothing() {
        static CALLSITE: tracing::callsite::DefaultCallsite = {
            static META: Metadata<'static> = tracing::metadata!(
                name: "op",
                target: "test",
                level: tracing::Level::INFO,
                fields: &[],
                callsite: &CALLSITE,
                kind: tracing::metadata::Kind::SPAN,
            );
            tracing::callsite::DefaultCallsite::new(&META)
        };
        let store = TraceStore::new();
        let ids = IdGenerator::seeded(1);
        let new = || NewSpan {
            metadata: tracing::callsite::Callsite::metadata(&CALLSITE),
            fields: Fields::new(),
            start: VirtualTime::ZERO,
            request_id: None,
        };
        let a = store.open(&ids, None, new());
        let b = store.open(&ids, Some(a), new());
        let ref_of = |id| store.span_ref(id).unwrap();
        let (span_a, span_b) = (ref_of(a), ref_of(b));
        assert_eq!(
            span_a.trace_id, span_b.trace_id,
            "a child continues its parent's trace"
        );

        // The child holds its parent open: releasing the parent's own handle closes nothing.
        assert!(!store.release(a, None));
        assert_eq!(store.snapshot().open, vec![span_a, span_b]);
        // Closing the child closes the parent after it.
        assert!(store.release(b, None));
        assert_eq!(store.snapshot().open, vec![]);
        assert_eq!(store.span_count(), 2);

        let c = store.open(&ids, None, new());
        // The last slot freed (the parent's) is reused first.
        assert_eq!(c & 0xFFFF_FFFF, a & 0xFFFF_FFFF, "a freed slot is reused");
        assert_ne!(c, a, "with a new generation");
        assert!(store.span_ref(a).is_none(), "a stale id finds nothing");
        assert!(!store.release(a, None));
        assert_eq!(store.snapshot().open, vec![ref_of(c)]);
        assert_eq!(store.snapshot().spans[1].parent_id(), Some(span_a.span_id));
    }
}
