//! `TraceStore`: every captured span and log line of one replay, in the order they happened,
//! and the live spans' slots between open and close, kept in one shard per capturing thread.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard};

use thin_vec::ThinVec;
use tracing::Metadata;

use super::chunked::{At, Chunked, Stretch};
use super::context::TraceFlags;
use super::ids::{IdBlock, IdGenerator, SpanId};
use super::model::{
    Captured, FieldValue, Fields, LogLine, ParentKind, Seq, SpanData, SpanRef, SpanStatus,
};
use super::order::{SeqMark, ShardClock};
use crate::clock::VirtualTime;

/// Fields on their way into the store: a reused per-thread buffer while a span's or an event's
/// values are visited, then moved into the store's chunks with one copy (`Vec::append`).
pub(crate) type FieldBuf = Vec<(&'static str, FieldValue)>;

/// A field slot reserved for a declared field not recorded yet (`field::Empty`). Its name is a
/// lone NUL, which no field name written as an identifier or a sane string literal is.
const UNSET: (&str, FieldValue) = ("\0", FieldValue::Bool(false));

fn is_unset(name: &str) -> bool {
    name == UNSET.0
}

/// What a [`CaptureSubscriber`](crate::trace::CaptureSubscriber) writes into. Cheap to share; snapshot
/// it after the replay.
///
/// Each thread writes its own shard, under a lock the other threads take only to reach a span
/// that thread opened (to record, close or log in it, or to open a child): threads capturing
/// side by side do not meet on every span. A snapshot merges the shards by creation number.
///
/// **Invariant:** no code holds two shard locks at once, except [`TraceStore::all`], which
/// takes them in shard order.
#[derive(Debug, Default)]
pub struct TraceStore {
    /// Made when a thread first writes to it.
    shards: [OnceLock<Box<Shard>>; SHARDS],
    /// Keeps the shards' creation numbers close: see [`ShardClock`].
    mark: SeqMark,
}

/// How many shards a store has. Each live thread that captures has a number ([`ThreadNumber`])
/// and thread `n` writes shard `n % SHARDS`: up to this many threads capture without sharing a
/// lock, and more share one (still correct, only contended).
const SHARDS: usize = 32;

/// One thread's part of a store. On a cache line of its own, so two threads writing next to
/// each other do not bounce a line between their cores.
///
/// `parking_lot`'s lock, not std's: uncontended they cost the same, but std's slowed capture
/// down when two threads shared one lock (`benches/NOTES.md`, two threads).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Inner>);

/// The shard this thread writes.
#[inline]
fn this_thread_shard() -> usize {
    thread_local! {
        static NUMBER: ThreadNumber = ThreadNumber::take();
    }
    // A thread that is exiting writes shard 0: correct, if shared.
    NUMBER.try_with(|n| n.0 % SHARDS).unwrap_or(0)
}

/// A number for each live thread that captures, the smallest free one, handed back when the
/// thread exits: a pool whose threads come and go (a bench's per-sample threads, tokio's
/// blocking pool) reuses the same few shards and their memory rather than cycling through all.
struct ThreadNumber(usize);

/// Numbers handed back by exited threads, and the next never used.
static FREE_NUMBERS: Mutex<(BTreeSet<usize>, usize)> = Mutex::new((BTreeSet::new(), 0));

impl ThreadNumber {
    fn take() -> Self {
        let mut free = FREE_NUMBERS.lock();
        let number = free.0.pop_first().unwrap_or_else(|| {
            free.1 += 1;
            free.1 - 1
        });
        ThreadNumber(number)
    }
}

impl Drop for ThreadNumber {
    fn drop(&mut self) {
        FREE_NUMBERS.lock().0.insert(self.0);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// The creation numbers of this shard's spans and log lines, one numbering for both so that
    /// they sort together.
    clock: ShardClock,
    /// The ids this shard mints next.
    ids: IdBlock,
    spans: Chunked<StoredSpan>,
    logs: Chunked<StoredLine>,
    /// Every span's and line's fields, side by side, for the same reason as `text`. A span
    /// reserves one slot per declared field when it opens, so recording a value later fills a
    /// slot in place.
    fields: Chunked<(&'static str, FieldValue), 64, 4096>,
    /// Spans closed since the last [`TraceStore::clear`] or [`TraceStore::drain`].
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
/// bits (never zero), the slot's shard in the next 8, the slot's generation (its low 24 bits)
/// in the high 24.
pub(crate) type LiveId = u64;

fn live_id(shard: usize, index: u32, generation: u32) -> LiveId {
    (u64::from(generation & GENERATION_MASK) << 40)
        | ((shard as u64) << 32)
        | (u64::from(index) + 1)
}

/// The bits of a slot's generation a [`LiveId`] carries.
const GENERATION_MASK: u32 = 0xFF_FFFF;

/// The shard a live span's slot is in.
#[inline]
fn shard_of(id: LiveId) -> usize {
    ((id >> 32) & 0xFF) as usize
}

impl Inner {
    /// The slot of the live span `id` and its index; `None` for an id whose slot was reused.
    #[inline]
    fn slot_of(slots: &mut [Slot], id: LiveId) -> Option<(usize, &mut Slot)> {
        let index = ((id & 0xFFFF_FFFF) as usize).checked_sub(1)?;
        let slot = slots.get_mut(index)?;
        if u64::from(slot.generation & GENERATION_MASK) != id >> 40 {
            return None;
        }
        Some((index, slot))
    }

    #[inline]
    fn live_in(slots: &mut [Slot], id: LiveId) -> Option<&mut Live> {
        Self::slot_of(slots, id)?.1.live.as_mut()
    }

    /// What a child of the live span `id` inherits, taking a handle to the parent for it.
    #[inline]
    fn adopt(&mut self, id: LiveId) -> Option<Inherited> {
        let parent = Self::live_in(&mut self.slots, id)?;
        parent.refs += 1;
        let at = parent.at;
        let p = &self.spans.get_mut(at)?.data;
        Some(Inherited {
            parent: id,
            seq: p.seq,
            trace_id: p.trace_id,
            span_id: p.span_id,
            flags: p.flags,
            tracestate: p.tracestate.clone(),
        })
    }

    /// Marks the live span `id` failed if `line` is its first error, and says which span the
    /// line belongs to.
    ///
    /// Always inlined: it runs for nearly every event, and out of line (as LLVM left it) the
    /// call and its returned `Option` cost about as much as the lookup itself.
    #[inline(always)]
    fn log_in(
        &mut self,
        id: LiveId,
        level: tracing::Level,
        message: &str,
    ) -> Option<(SpanRef, Seq)> {
        let data = &mut self.span_mut(id)?.data;
        if level == tracing::Level::ERROR && data.status == SpanStatus::Ok {
            fail(data, message);
        }
        Some((data.span_ref(), data.seq))
    }

    /// A live span's record.
    #[inline]
    fn span_mut(&mut self, id: LiveId) -> Option<&mut StoredSpan> {
        let at = Self::live_in(&mut self.slots, id)?.at;
        self.spans.get_mut(at)
    }

    /// Drops a handle to the live span `id`. The last one frees its slot and hands back what
    /// it held; `None` while handles remain (or for an id that finds nothing).
    #[inline]
    fn drop_handle(&mut self, id: LiveId) -> Option<Live> {
        let (index, slot) = Self::slot_of(&mut self.slots, id)?;
        let live = slot.live.as_mut()?;
        live.refs -= 1;
        if live.refs > 0 {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(index as u32);
        self.live -= 1;
        slot.live.take()
    }
}

/// Marks a span failed with its first error's message: rare, so kept out of [`Inner::log_in`].
#[cold]
#[inline(never)]
fn fail(data: &mut SpanData, message: &str) {
    data.status = SpanStatus::Error(message.into());
}

/// What a child span takes from its parent.
struct Inherited {
    parent: LiveId,
    seq: Seq,
    trace_id: super::ids::TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    tracestate: Option<super::tracestate::TraceState>,
}

/// What a new log line starts with; the store fills in its creation number and span.
pub(crate) struct NewLine {
    /// When the event happened, on the flow's virtual clock.
    pub at: VirtualTime,
    /// The event's level.
    pub level: tracing::Level,
    /// The event's target.
    pub target: &'static str,
    /// The legacy request id of the request it happened in.
    pub request_id: Option<Arc<str>>,
}

/// What a new span starts with; the store fills in its ids, parent and creation number.
pub(crate) struct NewSpan {
    /// The span's callsite: its name and declared fields.
    pub metadata: &'static Metadata<'static>,
    /// When it opened, on the flow's virtual clock.
    pub start: VirtualTime,
    /// The legacy request id of the request it opened in.
    pub request_id: Option<Arc<str>>,
}

impl TraceStore {
    /// An empty store, ready to share with a subscriber.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Shard `index`, locked; made if no thread wrote to it yet.
    #[inline]
    fn shard(&self, index: usize) -> MutexGuard<'_, Inner> {
        self.shards[index].get_or_init(Box::default).0.lock()
    }

    /// The shard a live span's slot is in, locked; `None` for an id no shard issued.
    #[inline]
    fn shard_holding(&self, id: LiveId) -> Option<MutexGuard<'_, Inner>> {
        Some(self.shards.get(shard_of(id))?.get()?.0.lock())
    }

    /// Every shard made so far, locked in shard order: the one place more than one shard lock
    /// is held, so that what is read across shards is read at one moment.
    fn all(&self) -> Vec<MutexGuard<'_, Inner>> {
        (self.shards.iter())
            .filter_map(|shard| Some(shard.get()?.0.lock()))
            .collect()
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
        let own = this_thread_shard();
        // A parent in another thread's shard is read under that shard's lock, released before
        // this thread's is taken; one in this thread's shard under the one lock.
        let foreign = parent.filter(|&id| shard_of(id) != own);
        let adopted = foreign.and_then(|id| self.adopt_from_other_shard(id));
        let mut inner = self.shard(own);
        let inherited = match parent {
            Some(id) if foreign.is_none() => inner.adopt(id),
            _ => adopted,
        };
        let (new_trace, span_id) = ids.mint(&mut inner.ids, inherited.is_none());
        let seq = (inner.clock).draw(&self.mark, inherited.as_ref().map(|p| p.seq));
        let (trace_id, parent, flags, tracestate) = match (inherited, new_trace) {
            (Some(p), _) => (
                p.trace_id,
                Some((p.parent, p.span_id)),
                p.flags,
                p.tracestate,
            ),
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
        live_id(own, index, slot.generation)
    }

    /// [`Inner::adopt`] for a parent in another thread's shard, under that shard's lock alone;
    /// out of line, so that the common case, a parent of this thread's, is inlined.
    #[cold]
    #[inline(never)]
    fn adopt_from_other_shard(&self, id: LiveId) -> Option<Inherited> {
        self.shard_holding(id)?.adopt(id)
    }

    /// Runs `f` on a live span's record.
    pub(crate) fn with_live<R>(&self, id: LiveId, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        (self.shard_holding(id)?)
            .span_mut(id)
            .map(|span| f(&mut span.data))
    }

    /// A live span's callsite metadata.
    pub(crate) fn metadata(&self, id: LiveId) -> Option<&'static Metadata<'static>> {
        Inner::live_in(&mut self.shard_holding(id)?.slots, id).map(|live| live.metadata)
    }

    /// Which span a line written in the live span `id` belongs to.
    pub(crate) fn span_ref(&self, id: LiveId) -> Option<SpanRef> {
        (self.shard_holding(id)?)
            .span_mut(id)
            .map(|span| span.data.span_ref())
    }

    /// Records values of a live span's declared fields: each replaces the field's earlier
    /// value or fills its reserved slot.
    pub(crate) fn record(&self, id: LiveId, values: &mut FieldBuf) {
        let Some(mut inner) = self.shard_holding(id) else {
            return;
        };
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
        let Some(cause) = self.span_ref(cause).map(|span| span.span_id) else {
            return;
        };
        self.with_live(id, |span| span.links.push(cause));
    }

    /// One more handle to a live span.
    #[inline]
    pub(crate) fn retain(&self, id: LiveId) {
        let Some(mut inner) = self.shard_holding(id) else {
            return;
        };
        if let Some(live) = Inner::live_in(&mut inner.slots, id) {
            live.refs += 1;
        }
    }

    /// Drops a handle to a live span. The last one closes it at `end` (its start, if no
    /// virtual time is known) and stores it, then drops its handle to its parent, which may
    /// close in turn. Returns whether the span itself closed.
    #[inline]
    pub(crate) fn release(&self, released: LiveId, end: Option<VirtualTime>) -> bool {
        let Some(mut inner) = self.shard_holding(released) else {
            return false;
        };
        let mut held = shard_of(released);
        let mut next = Some(released);
        let mut closed = false;
        while let Some(id) = next.take() {
            // A parent in another shard is released under that shard's lock alone.
            if shard_of(id) != held {
                drop(inner);
                let Some(other) = self.shard_holding(id) else {
                    break;
                };
                (inner, held) = (other, shard_of(id));
            }
            let Some(Live { at, parent, .. }) = inner.drop_handle(id) else {
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
        for mut inner in self.all() {
            inner.forget_closed(|_| false);
        }
    }

    /// Takes every span closed since the last drain or clear, with the lines written in them
    /// and the lines written outside any span, in creation order, and forgets them as
    /// [`TraceStore::clear`] does. Open spans stay, and so do the lines written in them: a span
    /// is taken once, whole, with every line it holds, by the first drain after it closes. Every
    /// shard locked for both halves, so nothing that closes meanwhile is forgotten untaken. What
    /// a live exporter sends as spans close; afterwards the store holds only open spans and
    /// their lines.
    pub fn drain(&self) -> Captured {
        let mut shards = self.all();
        let open: HashSet<SpanId> = (shards.iter())
            .flat_map(|inner| inner.spans.iter())
            .filter(|stored| stored.open_slot != StoredSpan::CLOSED)
            .map(|stored| stored.data.span_id)
            .collect();
        // Lines match their span by id alone, as OTLP's events do: a span that continued a
        // remote trace after a line was written keeps the line. The span may be another
        // thread's.
        let in_open_span =
            |line: &StoredLine| line.line.span.is_some_and(|s| open.contains(&s.span_id));
        let taken = merged(&shards, |line| !in_open_span(line));
        for inner in &mut shards {
            inner.forget_closed(in_open_span);
        }
        taken
    }

    /// How many spans have closed since the last clear or drain.
    pub fn span_count(&self) -> usize {
        self.all().iter().map(|inner| inner.closed).sum()
    }

    /// How many log lines have been captured so far.
    pub fn log_count(&self) -> usize {
        self.all().iter().map(|inner| inner.logs.len()).sum()
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
        let own = this_thread_shard();
        // As in `open`: a span in another shard is marked under that shard's lock alone, out
        // of line so that the common case, a span of this thread's, is marked inline.
        let (mut inner, span) = match span {
            Some(id) if shard_of(id) == own => {
                let mut inner = self.shard(own);
                let span = inner.log_in(id, line.level, message);
                (inner, span)
            }
            Some(id) => {
                let marked = self.log_in_other_shard(id, line.level, message);
                (self.shard(own), marked)
            }
            None => (self.shard(own), None),
        };
        let seq = (inner.clock).draw(&self.mark, span.map(|(_, seq)| seq));
        let span = span.map(|(span, _)| span);
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

    /// [`Inner::log_in`] for a span in another thread's shard, under that shard's lock alone.
    #[cold]
    #[inline(never)]
    fn log_in_other_shard(
        &self,
        id: LiveId,
        level: tracing::Level,
        message: &str,
    ) -> Option<(SpanRef, Seq)> {
        self.shard_holding(id)?.log_in(id, level, message)
    }

    /// The spans open now, in creation order: what a process dying at this moment would
    /// never export.
    pub fn open_spans(&self) -> Vec<SpanRef> {
        let mut open: Vec<(Seq, SpanRef)> = (self.all().iter())
            .flat_map(|inner| inner.open_spans())
            .collect();
        open.sort_by_key(|(seq, _)| *seq);
        open.into_iter().map(|(_, s)| s).collect()
    }

    /// Everything captured so far, in creation order.
    pub fn snapshot(&self) -> Captured {
        merged(&self.all(), |_| true)
    }
}

/// The closed spans and the lines `take_line` picks from every shard, and the spans still open,
/// each in creation order. Each shard's items are in creation order already, so sorting their
/// concatenation merges sorted runs (std's sort finds them), whatever the number of shards;
/// the sort is stable, so equal numbers from two shards sort by shard.
fn merged(shards: &[MutexGuard<'_, Inner>], take_line: impl Fn(&StoredLine) -> bool) -> Captured {
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    let mut open = Vec::new();
    for inner in shards {
        inner.captured(&take_line, &mut spans, &mut logs);
        open.extend(inner.open_spans());
    }
    spans.sort_by_key(|s: &SpanData| s.seq);
    logs.sort_by_key(|l: &LogLine| l.seq);
    open.sort_by_key(|(seq, _)| *seq);
    Captured {
        spans,
        logs,
        open: open.into_iter().map(|(_, s)| s).collect(),
    }
}

impl Inner {
    /// Appends this shard's closed spans and the lines `take_line` picks, in creation order.
    fn captured(
        &self,
        take_line: impl Fn(&StoredLine) -> bool,
        spans: &mut Vec<SpanData>,
        logs: &mut Vec<LogLine>,
    ) {
        let fields_of = |stretch: Stretch, overflow: &Fields| -> Fields {
            let reserved = self.fields.slice(stretch).iter();
            (reserved.filter(|(name, _)| !is_unset(name)))
                .chain(overflow)
                .cloned()
                .collect()
        };
        spans.extend(
            (self.spans.iter())
                .filter(|stored| stored.open_slot == StoredSpan::CLOSED)
                .map(|stored| SpanData {
                    fields: fields_of(stored.fields, &stored.data.fields),
                    ..stored.data.clone()
                }),
        );
        logs.extend(
            (self.logs.iter())
                .filter(|stored| take_line(stored))
                .map(|stored| LogLine {
                    // Always whole `&str`s side by side, so always valid UTF-8.
                    message: String::from_utf8_lossy(self.text.slice(stored.message)).into_owned(),
                    fields: fields_of(stored.fields, &stored.line.fields),
                    ..stored.line.clone()
                }),
        );
    }

    /// This shard's spans still open, with their creation numbers.
    fn open_spans(&self) -> impl Iterator<Item = (Seq, SpanRef)> + '_ {
        (self.spans.iter())
            .filter(|stored| stored.open_slot != StoredSpan::CLOSED)
            .map(|stored| (stored.data.seq, stored.data.span_ref()))
    }

    /// Empties every arena but for the open spans and the lines `keep_line` picks, which move
    /// to the front of the emptied chunks with their fields and text, so what stays allocated
    /// is what is still needed, however long spans keep opening while others close.
    fn forget_closed(&mut self, keep_line: impl Fn(&StoredLine) -> bool) {
        if self.live == 0 && !self.logs.iter().any(&keep_line) {
            self.spans.clear();
            self.logs.clear();
            self.text.clear();
            self.fields.clear();
            self.closed = 0;
            return;
        }
        let take_fields = |fields: &mut Chunked<_, 64, 4096>, stretch: Stretch| -> FieldBuf {
            (fields.slice_mut(stretch).iter_mut())
                .map(|slot| std::mem::replace(slot, UNSET))
                .collect()
        };
        let open = (self.spans).clear_keeping(|span| span.open_slot != StoredSpan::CLOSED);
        let open: Vec<(StoredSpan, FieldBuf)> = (open.into_iter())
            .map(|span| {
                let fields = take_fields(&mut self.fields, span.fields);
                (span, fields)
            })
            .collect();
        let lines = (self.logs).clear_keeping(&keep_line);
        let lines: Vec<(StoredLine, Vec<u8>, FieldBuf)> = (lines.into_iter())
            .map(|line| {
                let text = self.text.slice(line.message).to_vec();
                let fields = take_fields(&mut self.fields, line.fields);
                (line, text, fields)
            })
            .collect();
        self.text.clear();
        self.fields.clear();
        for (mut span, mut fields) in open {
            span.fields = self
                .fields
                .push_n(fields.len(), |chunk| chunk.append(&mut fields));
            let slot = span.open_slot as usize;
            let at = self.spans.push(span);
            if let Some(live) = self.slots.get_mut(slot).and_then(|s| s.live.as_mut()) {
                live.at = at;
            }
        }
        for (mut line, text, mut fields) in lines {
            line.message = self.text.push_slice(&text);
            line.fields = self
                .fields
                .push_n(fields.len(), |chunk| chunk.append(&mut fields));
            self.logs.push(line);
        }
        self.closed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_drain_takes_each_closed_span_once_with_its_lines_and_keeps_what_is_open() {
        let store = TraceStore::new();
        let ids = IdGenerator::seeded(1);
        let line = |at| NewLine {
            at: VirtualTime::from_micros(at),
            level: tracing::Level::INFO,
            target: "test",
            request_id: None,
        };
        let text = |s: &str| FieldValue::Str(s.into());
        let parent = store.open(&ids, None, new_span(), &mut vec![("a", text("kept"))]);
        let child = store.open(&ids, Some(parent), new_span(), &mut FieldBuf::new());
        store.logged(
            Some(parent),
            line(1),
            "in the parent, early",
            &mut Vec::new(),
        );
        store.logged(Some(child), line(2), "in the child", &mut Vec::new());
        store.logged(None, line(3), "outside any span", &mut Vec::new());
        store.release(child, None);

        let first = store.drain();
        let (parent_ref, child_ref) = (first.open[0], first.spans[0].span_ref());
        assert_eq!(first.spans.len(), 1, "only the child has closed");
        let messages = |c: &Captured| c.logs.iter().map(|l| l.message.clone()).collect::<Vec<_>>();
        assert_eq!(messages(&first), ["in the child", "outside any span"]);
        assert_eq!(first.open, vec![parent_ref]);
        assert_eq!(store.span_count(), 0);
        assert!(store.drain().spans.is_empty(), "nothing is taken twice");

        // The open parent keeps its fields and early line across drains.
        store.record(parent, &mut vec![("b", FieldValue::U64(2))]);
        store.logged(
            Some(parent),
            line(4),
            "in the parent, late",
            &mut vec![("n", FieldValue::I64(1))],
        );
        store.release(parent, Some(VirtualTime::from_micros(5)));
        let second = store.drain();
        assert_eq!(second.spans.len(), 1);
        let span = &second.spans[0];
        assert_eq!(span.span_ref(), parent_ref);
        assert_ne!(span.span_ref(), child_ref);
        assert_eq!(
            span.fields,
            Fields::from(vec![("a", text("kept")), ("b", FieldValue::U64(2))])
        );
        assert_eq!(
            messages(&second),
            ["in the parent, early", "in the parent, late"]
        );
        assert_eq!(
            second.logs[1].fields,
            Fields::from(vec![("n", FieldValue::I64(1))])
        );
        assert!(second.logs.iter().all(|l| l.span == Some(parent_ref)));
        let empty = store.snapshot();
        assert!(empty.spans.is_empty() && empty.logs.is_empty() && empty.open.is_empty());
    }

    #[test]
    fn drains_keep_memory_to_what_is_open_however_long_a_span_stays_open() {
        let store = TraceStore::new();
        let ids = IdGenerator::seeded(1);
        let line = || NewLine {
            at: VirtualTime::ZERO,
            level: tracing::Level::INFO,
            target: "test",
            request_id: None,
        };
        let long_lived = store.open(&ids, None, new_span(), &mut vec![("a", FieldValue::U64(1))]);
        store.logged(
            Some(long_lived),
            line(),
            "held",
            &mut vec![("n", FieldValue::U64(1))],
        );
        for round in 0..1_000 {
            let id = store.open(
                &ids,
                None,
                new_span(),
                &mut vec![("i", FieldValue::U64(round))],
            );
            store.logged(
                Some(id),
                line(),
                "a line",
                &mut vec![("j", FieldValue::U64(round))],
            );
            store.release(id, None);
            assert_eq!(store.drain().spans.len(), 1);
            let inner = store.shard(this_thread_shard());
            assert!(
                inner.spans.len() == 1 && inner.logs.len() == 1,
                "round {round}: only the open span and its line stay"
            );
            assert_eq!(inner.fields.len(), 2, "round {round}: their fields alone");
            assert_eq!(inner.text.len(), "held".len());
        }
        store.release(long_lived, None);
        let last = store.drain();
        assert_eq!(last.spans[0].field("a"), Some(&FieldValue::U64(1)));
        assert_eq!(last.logs[0].message, "held");
        assert_eq!(
            last.logs[0].fields,
            Fields::from(vec![("n", FieldValue::U64(1))])
        );
    }
}
