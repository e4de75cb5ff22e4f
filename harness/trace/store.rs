//! `TraceStore`: every captured span and log line of one replay, in the order they happened.

use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use thin_vec::ThinVec;
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

/// A span's or line's fields, in the order they were recorded. A `ThinVec`: 8 bytes when
/// empty, as the stored form of most spans' and lines' is (their fields live in the store's
/// chunks until a snapshot), where a `Vec` would be 24.
pub type Fields = ThinVec<(&'static str, FieldValue)>;

/// Fields on their way into the store: a reused per-thread buffer while a span's or an event's
/// values are visited, then moved into the store's chunks with one copy (`Vec::append`).
pub(crate) type FieldBuf = Vec<(&'static str, FieldValue)>;

/// A field slot reserved for a declared field not recorded yet (`field::Empty`). Its name is a
/// lone NUL, which no field name written as an identifier or a sane string literal is.
const UNSET: (&str, FieldValue) = ("\0", FieldValue::Bool(false));

fn is_unset(name: &str) -> bool {
    name == UNSET.0
}

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
    pub links: ThinVec<SpanId>,
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
    /// `parking_lot`'s lock, not std's: uncontended they cost the same, but with two threads
    /// capturing at once std's made a span lifecycle ~1.7× slower (BENCHMARKS.md, two threads).
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The next creation number, shared by spans and log lines so that both sort together.
    next_seq: Seq,
    spans: Chunked<StoredSpan>,
    logs: Chunked<StoredLine>,
    /// Every span's and line's fields, side by side, for the same reason as `text`. A span
    /// reserves one slot per declared field when it opens, so recording a value later fills a
    /// slot in place.
    fields: Chunked<(&'static str, FieldValue), 64, 4096>,
    /// Spans closed since the last [`TraceStore::clear`].
    closed: usize,
    /// Spans open now: their fields must outlive [`TraceStore::clear`].
    live: usize,
    /// The lines' message text, side by side: one allocation per chunk rather than one per
    /// message. The store keeps everything it captures, so a message allocated on its own
    /// would never be freed before the next one and always took the allocator's slow path.
    text: Chunked<u8, 1024, 65536>,
    /// Spans not closed yet, by slot: the slot says where the span's record is in `spans`
    /// (written there in place from open to close) and holds what the subscriber needs to
    /// manage its lifetime. A closing span frees its slot in O(1) however many flows are in
    /// flight, and freed slots are reused.
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

/// A span between open and close.
#[derive(Debug)]
struct Live {
    /// Where its record is in `spans`.
    at: At,
    metadata: &'static Metadata<'static>,
    /// Handles still alive: the span's own, its clones, and one per open child (a child keeps
    /// its parent open, as `tracing_subscriber::Registry` does, so a parent never closes
    /// before its children).
    refs: u32,
    /// The open parent this span holds a handle to.
    parent: Option<LiveId>,
}

/// A log line as the store keeps it: its message lives in the store's text chunks.
#[derive(Debug)]
struct StoredLine {
    /// `message` and `fields` are empty here.
    line: LogLine,
    message: Stretch,
    fields: Stretch,
}

/// A span as the store keeps it, open or closed: its fields live in the store's field chunks,
/// one reserved per declared field.
#[derive(Debug)]
struct StoredSpan {
    /// `fields` holds only what did not fit the reserved ones (normally nothing).
    data: SpanData,
    fields: Stretch,
    /// The slot of a span still open; [`StoredSpan::CLOSED`] once it closed.
    open_slot: u32,
}

impl StoredSpan {
    const CLOSED: u32 = u32::MAX;
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
    fn live_in(slots: &mut [Slot], id: LiveId) -> Option<&mut Live> {
        let index = ((id & 0xFFFF_FFFF) as usize).checked_sub(1)?;
        let slot = slots.get_mut(index)?;
        if u64::from(slot.generation) != id >> 32 {
            return None;
        }
        slot.live.as_mut()
    }

    /// A live span's record.
    #[inline]
    fn span_mut(&mut self, id: LiveId) -> Option<&mut StoredSpan> {
        let at = Self::live_in(&mut self.slots, id)?.at;
        self.spans.get_mut(at)
    }

    /// Frees a live span's slot and hands back what it held.
    fn take(&mut self, id: LiveId) -> Option<Live> {
        Self::live_in(&mut self.slots, id)?;
        let index = (id & 0xFFFF_FFFF) as u32 - 1;
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(index);
        self.live -= 1;
        slot.live.take()
    }
}

/// What a new log line starts with; the store fills in its creation number and span.
pub(crate) struct NewLine {
    pub at: VirtualTime,
    pub level: tracing::Level,
    pub target: &'static str,
    pub request_id: Option<Arc<str>>,
}

/// What a new span starts with; the store fills in its ids, parent and creation number.
pub(crate) struct NewSpan {
    pub metadata: &'static Metadata<'static>,
    pub start: VirtualTime,
    pub request_id: Option<Arc<str>>,
}

/// Items in chunks that never move once allocated: pushing never copies what is already
/// stored (no reallocation of one large `Vec` mid-replay). Chunks double from `FIRST` items up
/// to `MAX`, so a short replay stays small and a long one wastes at most one partly filled
/// chunk (and, with [`Chunked::push_slice`], the tail of a chunk a slice did not fit in).
#[derive(Debug)]
struct Chunked<T, const FIRST: usize = 16, const MAX: usize = 1024> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// Emptied chunks kept by [`Chunked::clear`] for reuse, as `Vec::clear` keeps capacity.
    spare: Vec<Vec<T>>,
}

impl<T, const FIRST: usize, const MAX: usize> Default for Chunked<T, FIRST, MAX> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
            spare: Vec::new(),
        }
    }
}

/// Where [`Chunked::push`] put an item: chunk, index in the chunk.
type At = (u32, u32);

/// Where [`Chunked::push_slice`] put a slice.
#[derive(Clone, Copy, Debug, Default)]
struct Stretch {
    chunk: u32,
    start: u32,
    len: u32,
}

impl<T, const FIRST: usize, const MAX: usize> Chunked<T, FIRST, MAX> {
    #[inline(always)]
    fn push(&mut self, item: T) -> At {
        self.len += 1;
        let room = (self.chunks.last()).is_some_and(|chunk| chunk.len() < chunk.capacity());
        if !room {
            self.new_chunk(1);
        }
        let at = self.chunks.len() - 1;
        let chunk = &mut self.chunks[at];
        chunk.push(item);
        (at as u32, (chunk.len() - 1) as u32)
    }

    #[inline]
    fn get_mut(&mut self, (chunk, index): At) -> Option<&mut T> {
        self.chunks.get_mut(chunk as usize)?.get_mut(index as usize)
    }

    /// Starts a chunk with room for at least `room` items.
    #[cold]
    fn new_chunk(&mut self, room: usize) -> &mut Vec<T> {
        let wanted = self.len.next_power_of_two().clamp(FIRST, MAX).max(room);
        let chunk = match self.spare.pop() {
            Some(chunk) if chunk.capacity() >= wanted => chunk,
            _ => Vec::with_capacity(wanted),
        };
        self.chunks.push(chunk);
        self.chunks.last_mut().expect("just pushed")
    }

    /// Copies `items` side by side into one chunk; see [`Chunked::push_n`].
    #[inline]
    fn push_slice(&mut self, items: &[T]) -> Stretch
    where
        T: Copy,
    {
        self.push_n(items.len(), |chunk| chunk.extend_from_slice(items))
    }

    /// Puts `n` items side by side into one chunk, so that [`Chunked::slice`] gives them back
    /// whole: `fill` appends them to the chunk, which has room for `n` more. More than `MAX`
    /// items get a chunk of their own size.
    #[inline]
    fn push_n(&mut self, n: usize, fill: impl FnOnce(&mut Vec<T>)) -> Stretch {
        if n == 0 {
            return Stretch::default();
        }
        let fits = (self.chunks.last()).is_some_and(|c| c.capacity() - c.len() >= n);
        if !fits {
            self.new_chunk(n);
        }
        let at = self.chunks.len() - 1;
        let chunk = &mut self.chunks[at];
        let start = chunk.len();
        fill(chunk);
        debug_assert_eq!(chunk.len() - start, n, "`fill` pushes exactly `n` items");
        self.len += n;
        Stretch {
            chunk: at as u32,
            start: start as u32,
            len: (chunk.len() - start) as u32,
        }
    }

    fn slice(&self, stretch: Stretch) -> &[T] {
        let Stretch { chunk, start, len } = stretch;
        let start = start as usize;
        (self.chunks.get(chunk as usize))
            .and_then(|chunk| chunk.get(start..start + len as usize))
            .unwrap_or_default()
    }

    fn slice_mut(&mut self, stretch: Stretch) -> &mut [T] {
        let Stretch { chunk, start, len } = stretch;
        let start = start as usize;
        (self.chunks.get_mut(chunk as usize))
            .and_then(|chunk| chunk.get_mut(start..start + len as usize))
            .unwrap_or_default()
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
        self.inner.lock()
    }

    /// Opens a span as a child of `parent` (a live span's id), or as the root of a new trace
    /// when there is none, and returns its id. Ids are minted here, trace id first, so that a
    /// seeded generator gives the same ids in the same order on every run.
    #[inline]
    pub(crate) fn open(
        &self,
        ids: &IdGenerator,
        parent: Option<LiveId>,
        span: NewSpan,
        fields: &mut FieldBuf,
    ) -> LiveId {
        let mut inner = self.lock();
        let inherited = parent.and_then(|id| {
            let parent = Inner::live_in(&mut inner.slots, id)?;
            parent.refs += 1;
            let at = parent.at;
            let p = &inner.spans.get_mut(at)?.data;
            Some((id, p.trace_id, p.span_id, p.flags, p.tracestate.clone()))
        });
        let (new_trace, span_id) = ids.mint_serially(inherited.is_none());
        let (trace_id, parent, flags, tracestate) = match (inherited, new_trace) {
            (Some((id, trace, parent, flags, state)), _) => {
                (trace, Some((id, parent)), flags, state)
            }
            (None, new_trace) => {
                let trace = new_trace.expect("a trace id is minted for a span without a parent");
                (trace, None, TraceFlags::NEW_TRACE, None)
            }
        };
        let declared = span.metadata.fields().len().max(fields.len());
        let reserved = inner.fields.push_n(declared, |chunk| {
            let end = chunk.len() + declared;
            chunk.append(fields);
            if chunk.len() < end {
                chunk.resize(end, UNSET);
            }
        });
        let index = match inner.free_slots.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(inner.slots.len()).expect("fewer than 2^32 open spans");
                inner.slots.push(Slot {
                    generation: 0,
                    live: None,
                });
                index
            }
        };
        let seq = inner.next_seq();
        let at = inner.spans.push(StoredSpan {
            data: SpanData {
                seq,
                trace_id,
                span_id,
                parent: parent.map(|(_, span_id)| (span_id, ParentKind::Local)),
                links: ThinVec::new(),
                op: span.metadata.name(),
                fields: Fields::new(),
                status: SpanStatus::Ok,
                start: span.start,
                end: span.start,
                flags,
                tracestate,
                request_id: span.request_id,
            },
            fields: reserved,
            open_slot: index,
        });
        inner.live += 1;
        let slot = &mut inner.slots[index as usize];
        slot.live = Some(Live {
            at,
            metadata: span.metadata,
            refs: 1,
            parent: parent.map(|(id, _)| id),
        });
        live_id(index, slot.generation)
    }

    /// Runs `f` on a live span's record.
    pub(crate) fn with_live<R>(&self, id: LiveId, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        self.lock().span_mut(id).map(|span| f(&mut span.data))
    }

    /// A live span's callsite metadata.
    pub(crate) fn metadata(&self, id: LiveId) -> Option<&'static Metadata<'static>> {
        Inner::live_in(&mut self.lock().slots, id).map(|live| live.metadata)
    }

    /// Which span a line written in the live span `id` belongs to.
    pub(crate) fn span_ref(&self, id: LiveId) -> Option<SpanRef> {
        self.lock().span_mut(id).map(|span| span.data.span_ref())
    }

    /// Records values of a live span's declared fields: each replaces the field's earlier
    /// value or fills its reserved slot.
    pub(crate) fn record(&self, id: LiveId, values: &mut FieldBuf) {
        let mut inner = self.lock();
        let Some(at) = Inner::live_in(&mut inner.slots, id).map(|live| live.at) else {
            return;
        };
        let Inner { spans, fields, .. } = &mut *inner;
        let Some(span) = spans.get_mut(at) else {
            return;
        };
        let reserved = fields.slice_mut(span.fields);
        for (name, value) in values.drain(..) {
            // Names come from the callsite's static field set: equal pointers are the same name.
            let same = |k: &&str| std::ptr::eq(*k, name) || *k == name;
            if let Some((_, slot)) = reserved.iter_mut().find(|(k, _)| same(k)) {
                *slot = value;
            } else if let Some(slot) = reserved.iter_mut().find(|(k, _)| is_unset(k)) {
                *slot = (name, value);
            } else if let Some((_, slot)) = span.data.fields.iter_mut().find(|(k, _)| same(k)) {
                *slot = value;
            } else {
                span.data.fields.push((name, value));
            }
        }
    }

    /// Records that `id` follows from `cause`: both live spans.
    pub(crate) fn link(&self, id: LiveId, cause: LiveId) {
        let mut inner = self.lock();
        let Some(cause) = inner.span_mut(cause).map(|span| span.data.span_id) else {
            return;
        };
        if let Some(span) = inner.span_mut(id) {
            span.data.links.push(cause);
        }
    }

    /// One more handle to a live span.
    #[inline]
    pub(crate) fn retain(&self, id: LiveId) {
        if let Some(live) = Inner::live_in(&mut self.lock().slots, id) {
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
            let Some(live) = Inner::live_in(&mut inner.slots, id) else {
                break;
            };
            live.refs -= 1;
            if live.refs > 0 {
                break;
            }
            let Some(Live { at, parent, .. }) = inner.take(id) else {
                break;
            };
            if let Some(span) = inner.spans.get_mut(at) {
                span.data.end = end.unwrap_or(span.data.start).max(span.data.start);
                span.open_slot = StoredSpan::CLOSED;
            }
            inner.closed += 1;
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
        let inner = &mut *inner;
        // Open spans' records move to the front of the emptied chunks.
        let open: Vec<StoredSpan> = match inner.live {
            0 => Vec::new(),
            _ => (inner.spans.chunks.iter_mut())
                .flat_map(|chunk| chunk.drain(..))
                .filter(|span| span.open_slot != StoredSpan::CLOSED)
                .collect(),
        };
        inner.spans.clear();
        for span in open {
            let slot = span.open_slot as usize;
            let at = inner.spans.push(span);
            if let Some(live) = inner.slots.get_mut(slot).and_then(|s| s.live.as_mut()) {
                live.at = at;
            }
        }
        inner.closed = 0;
        inner.logs.clear();
        inner.text.clear();
        if inner.live == 0 {
            inner.fields.clear();
        }
    }

    /// How many spans have closed so far.
    pub fn span_count(&self) -> usize {
        self.lock().closed
    }

    /// How many log lines have been captured so far.
    pub fn log_count(&self) -> usize {
        self.lock().logs.len()
    }

    /// Takes a log line written in the live span `span`, if any, giving it its creation number
    /// and its span. An error line marks its span as failed, with the first error's message.
    #[inline]
    pub(crate) fn logged(
        &self,
        span: Option<LiveId>,
        line: NewLine,
        message: &str,
        fields: &mut FieldBuf,
    ) {
        let mut inner = self.lock();
        let span = span.and_then(|id| inner.span_mut(id)).map(|span| {
            let data = &mut span.data;
            if line.level == tracing::Level::ERROR && data.status == SpanStatus::Ok {
                data.status = SpanStatus::Error(message.into());
            }
            data.span_ref()
        });
        let seq = inner.next_seq();
        let message = inner.text.push_slice(message.as_bytes());
        let fields = (inner.fields).push_n(fields.len(), |chunk| chunk.append(fields));
        inner.logs.push(StoredLine {
            line: LogLine {
                seq,
                at: line.at,
                level: line.level,
                message: String::new(),
                fields: Fields::new(),
                target: line.target,
                span,
                request_id: line.request_id,
            },
            message,
            fields,
        });
    }

    /// Everything captured so far, in creation order.
    pub fn snapshot(&self) -> Captured {
        let inner = self.lock();
        let fields_of = |stretch: Stretch, overflow: &Fields| -> Fields {
            let reserved = inner.fields.slice(stretch).iter();
            (reserved.filter(|(name, _)| !is_unset(name)))
                .chain(overflow)
                .cloned()
                .collect()
        };
        let mut spans: Vec<SpanData> = (inner.spans.iter())
            .filter(|stored| stored.open_slot == StoredSpan::CLOSED)
            .map(|stored| SpanData {
                fields: fields_of(stored.fields, &stored.data.fields),
                ..stored.data.clone()
            })
            .collect();
        spans.sort_by_key(|s| s.seq);
        let mut logs: Vec<LogLine> = (inner.logs.iter())
            .map(|stored| LogLine {
                // Always whole `&str`s side by side, so always valid UTF-8.
                message: String::from_utf8_lossy(inner.text.slice(stored.message)).into_owned(),
                fields: fields_of(stored.fields, &stored.line.fields),
                ..stored.line.clone()
            })
            .collect();
        logs.sort_by_key(|l| l.seq);
        let mut open: Vec<(Seq, SpanRef)> = (inner.spans.iter())
            .filter(|stored| stored.open_slot != StoredSpan::CLOSED)
            .map(|stored| (stored.data.seq, stored.data.span_ref()))
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
        let mut items: Chunked<i32> = Chunked::default();
        for i in 0..3_000 {
            items.push(i);
        }
        assert_eq!(items.len(), 3_000);
        assert!(items.iter().copied().eq(0..3_000));
        // Chunks double from the first one, then stay at the maximum.
        let lens: Vec<usize> = items.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(lens[..3], [16, 32, 64]);
        assert!(lens.iter().all(|&n| n <= 1024));

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

    /// A span from a callsite that declares no fields.
    fn new_span() -> NewSpan {
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
        NewSpan {
            metadata: tracing::callsite::Callsite::metadata(&CALLSITE),
            start: VirtualTime::ZERO,
            request_id: None,
        }
    }

    #[test]
    fn fields_and_messages_come_back_whole_through_record_clear_and_snapshot() {
        let store = TraceStore::new();
        let ids = IdGenerator::seeded(1);
        let text = |s: &str| FieldValue::Str(s.into());
        // This callsite declares no fields, so every recorded value beyond the ones the span
        // opened with goes past its reserved slots: kept, in order.
        let mut opened = vec![("a", FieldValue::U64(1)), ("b", text("x"))];
        let closed = store.open(&ids, None, new_span(), &mut opened);
        assert!(opened.is_empty(), "the buffer is moved into the store");
        store.record(
            closed,
            &mut vec![("b", text("y")), ("c", FieldValue::Bool(true))],
        );
        store.record(closed, &mut vec![("c", FieldValue::Bool(false))]);
        let line = || NewLine {
            at: VirtualTime::ZERO,
            level: tracing::Level::ERROR,
            target: "test",
            request_id: None,
        };
        let long = "é".repeat(40_000);
        store.logged(
            Some(closed),
            line(),
            "first error",
            &mut vec![("n", FieldValue::I64(-1))],
        );
        store.logged(None, line(), &long, &mut Vec::new());
        store.release(closed, None);

        let open = store.open(
            &ids,
            None,
            new_span(),
            &mut vec![("kept", text("across clear"))],
        );
        store.clear();
        assert_eq!(store.span_count(), 0);
        store.record(open, &mut vec![("later", FieldValue::F64(0.5))]);
        store.logged(Some(open), line(), "after clear", &mut Vec::new());
        store.release(open, None);

        let captured = store.snapshot();
        assert_eq!(
            captured.spans.len(),
            1,
            "the span closed before the clear is gone"
        );
        let span = &captured.spans[0];
        let names: Vec<&str> = span.fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["kept", "later"]);
        assert_eq!(span.field("kept"), Some(&text("across clear")));
        assert_eq!(captured.logs.len(), 1);
        assert_eq!(captured.logs[0].message, "after clear");
        assert_eq!(captured.logs[0].span, Some(span.span_ref()));

        // Before a clear, everything is there: values replaced in place, the error status, a
        // message longer than a text chunk.
        let store = TraceStore::new();
        let id = store.open(
            &ids,
            None,
            new_span(),
            &mut vec![("a", FieldValue::U64(1)), ("b", text("x"))],
        );
        store.record(
            id,
            &mut vec![("b", text("y")), ("c", FieldValue::Bool(true))],
        );
        store.logged(
            Some(id),
            line(),
            "first error",
            &mut vec![("n", FieldValue::I64(-1))],
        );
        store.logged(Some(id), line(), "second error", &mut Vec::new());
        store.logged(None, line(), &long, &mut Vec::new());
        store.release(id, None);
        let captured = store.snapshot();
        let span = &captured.spans[0];
        assert_eq!(
            span.fields,
            Fields::from(vec![
                ("a", FieldValue::U64(1)),
                ("b", text("y")),
                ("c", FieldValue::Bool(true))
            ])
        );
        assert_eq!(span.status, SpanStatus::Error("first error".into()));
        assert_eq!(
            captured.logs[0].fields,
            Fields::from(vec![("n", FieldValue::I64(-1))])
        );
        assert_eq!(captured.logs[2].message, long);
    }

    #[test]
    fn a_closing_span_frees_its_slot_and_a_stale_id_finds_nothing() {
        let store = TraceStore::new();
        let ids = IdGenerator::seeded(1);
        let a = store.open(&ids, None, new_span(), &mut FieldBuf::new());
        let b = store.open(&ids, Some(a), new_span(), &mut FieldBuf::new());
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

        let c = store.open(&ids, None, new_span(), &mut FieldBuf::new());
        // The last slot freed (the parent's) is reused first.
        assert_eq!(c & 0xFFFF_FFFF, a & 0xFFFF_FFFF, "a freed slot is reused");
        assert_ne!(c, a, "with a new generation");
        assert!(store.span_ref(a).is_none(), "a stale id finds nothing");
        assert!(!store.release(a, None));
        assert_eq!(store.snapshot().open, vec![ref_of(c)]);
        assert_eq!(store.snapshot().spans[1].parent_id(), Some(span_a.span_id));
    }
}
