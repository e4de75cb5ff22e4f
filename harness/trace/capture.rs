//! The capture subscriber: gives every span W3C ids, times it on the flow's virtual clock and
//! writes spans and events into a [`TraceStore`]; and reading or continuing a live span's
//! context from outside (`context_of`, `continue_from`).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Span, Subscriber};
use tracing_core::span::Current;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;

use super::context::TraceContext;
use super::ids::IdGenerator;
use super::model::{FieldStr, FieldValue, ParentKind, SpanData, SpanRef};
use super::prefix::LinePrefix;
use super::stack::{self, next_stack_owner};
use super::store::{FieldBuf, LiveId, NewLine, NewSpan, TraceStore};
use crate::clock;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `fut` as part of the request with this legacy request id: every log line written inside
/// carries it, so `[Request ID: …]` logging keeps working whether tracing is on or off.
pub async fn with_request_id<F: Future>(request_id: Arc<str>, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

/// The request id of the request the caller runs in.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// A `tracing` subscriber that captures spans and events into a [`TraceStore`].
///
/// It is a whole subscriber, not a `Layer` on `tracing_subscriber::Registry`: it keeps each live
/// span in the store itself, written in place from open to close, where a layer would keep a
/// second record in the registry's extensions and copy it out at close. That is what makes
/// capture cost little more than the registry alone (BENCHMARKS.md). Filters still stack on
/// it (`capture.with(Targets::new()…)`), though [`CaptureSubscriber::with_targets`] filters
/// without a wrapper on every call; layers that need the registry's span data (`fmt`) do not,
/// and [`CaptureSubscriber::with_log_writer`] writes the seed-format log line instead.
///
/// With `tracing` off it still records log lines (with their request ids) but disables every
/// span, so instrumented code pays what a disabled span costs and propagates nothing.
pub struct CaptureSubscriber {
    store: Arc<TraceStore>,
    ids: IdGenerator,
    tracing: bool,
    log: Option<LogWriter>,
    /// What to capture, when not everything.
    targets: Option<Targets>,
    /// Tells this subscriber's entries in the threads' span stacks from other subscribers'.
    stack_owner: u64,
}

/// Writes one finished log line (newline included) somewhere: a file, stderr, a sink.
type LogWriter = Box<dyn Fn(&[u8]) + Send + Sync>;

impl CaptureSubscriber {
    /// Captures everything into `store`, with ids from `ids`.
    pub fn new(store: Arc<TraceStore>, ids: IdGenerator) -> Self {
        CaptureSubscriber {
            store,
            ids,
            tracing: true,
            log: None,
            targets: None,
            stack_owner: next_stack_owner(),
        }
    }

    /// Tracing opted out: log lines only, no spans, no context.
    pub fn without_tracing(store: Arc<TraceStore>) -> Self {
        CaptureSubscriber {
            tracing: false,
            ..CaptureSubscriber::new(store, IdGenerator::Random)
        }
    }

    /// Captures only what `targets` enables. The same as `capture.with(targets)`, decided once
    /// per callsite, but without a `Layered` wrapper that every span's enter, exit and close
    /// would pass through.
    pub fn with_targets(mut self, targets: Targets) -> Self {
        self.targets = Some(targets);
        self
    }

    /// Also writes every event as it happens, as one line in the seed's format:
    /// `[trace:<trace-id> span:<span-id> op:<op>] message`, or `[Request ID: …] message` outside
    /// a span. This is the line a service ships to its log store; the capture is unchanged.
    pub fn with_log_writer<W>(mut self, make_writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log = Some(Box::new(move |line: &[u8]| {
            // A log sink that fails must not take the service down with it.
            let _ = make_writer.make_writer().write_all(line);
        }));
        self
    }
}

/// Writes a line in the seed's format: `[trace:… span:… op:…] message` in a span,
/// `[Request ID: …] message` outside one.
fn write_log_line(
    write: &LogWriter,
    span: Option<&SpanRef>,
    request_id: Option<&str>,
    message: &str,
) {
    thread_local! {
        // Reused so that writing a line allocates nothing once the buffer has grown.
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    with_scratch(&LINE, |buf| {
        let _ = LinePrefix::of(span.copied(), request_id).write_before(buf);
        push_one_line(buf, message);
        buf.push('\n');
        write(buf.as_bytes());
    });
}

/// Appends `message` with control characters escaped, so a message cannot split or forge a line.
fn push_one_line(buf: &mut String, message: &str) {
    if !message.chars().any(char::is_control) {
        buf.push_str(message);
        return;
    }
    for c in message.chars() {
        if c.is_control() {
            buf.extend(c.escape_default());
        } else {
            buf.push(c);
        }
    }
}

impl CaptureSubscriber {
    /// The innermost span this thread has entered.
    fn current(&self) -> Option<LiveId> {
        stack::current(self.stack_owner)
    }

    /// The span a new span or event belongs to: none for a root, the explicit parent, or the
    /// current span.
    fn parent_of(&self, is_root: bool, explicit: Option<&Id>) -> Option<LiveId> {
        if is_root {
            None
        } else if let Some(parent) = explicit {
            Some(parent.into_u64())
        } else {
            self.current()
        }
    }
}

impl Subscriber for CaptureSubscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        (self.tracing || !metadata.is_span())
            && (self.targets.as_ref())
                .is_none_or(|targets| targets.would_enable(metadata.target(), metadata.level()))
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        thread_local! {
            static FIELDS: RefCell<FieldBuf> = const { RefCell::new(Vec::new()) };
        }
        with_scratch(&FIELDS, |fields| {
            let metadata = attrs.metadata();
            attrs.record(&mut FieldVisitor {
                fields,
                message: None,
            });
            let parent = self.parent_of(attrs.is_root(), attrs.parent());
            let span = NewSpan {
                metadata,
                start: clock::now(),
                request_id: current_request_id(),
            };
            Id::from_u64(self.store.open(&self.ids, parent, span, fields))
        })
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        // Values are formatted before the store is locked: a `Debug` impl may log.
        let mut recorded = FieldBuf::new();
        values.record(&mut FieldVisitor {
            fields: &mut recorded,
            message: None,
        });
        self.store.record(span.into_u64(), &mut recorded);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.store.link(span.into_u64(), follows.into_u64());
    }

    fn event(&self, event: &Event<'_>) {
        thread_local! {
            static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
            static FIELDS: RefCell<FieldBuf> = const { RefCell::new(Vec::new()) };
        }
        // The message is formatted into a reused buffer and copied into the store's text: a
        // message arrives as `fmt::Arguments`, whose size is unknown until written.
        with_scratch(&MESSAGE, |message| {
            with_scratch(&FIELDS, |fields| {
                let metadata = event.metadata();
                // The message is usually one of the declared fields and is kept apart from them.
                event.record(&mut FieldVisitor {
                    fields,
                    message: Some(message),
                });
                let span = self.parent_of(event.is_root(), event.parent());
                let line = NewLine {
                    at: clock::now(),
                    level: *metadata.level(),
                    target: metadata.target(),
                    request_id: current_request_id(),
                };
                if let Some(write) = &self.log {
                    let span = span.and_then(|id| self.store.span_ref(id));
                    write_log_line(write, span.as_ref(), line.request_id.as_deref(), message);
                }
                self.store.logged(span, line, message, fields);
            })
        })
    }

    fn enter(&self, span: &Id) {
        stack::enter(self.stack_owner, span.into_u64());
    }

    fn exit(&self, span: &Id) {
        stack::exit(self.stack_owner, span.into_u64());
    }

    fn clone_span(&self, span: &Id) -> Id {
        self.store.retain(span.into_u64());
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        self.store.release(span.into_u64(), clock::try_now())
    }

    fn current_span(&self) -> Current {
        self.current()
            .and_then(|id| Some(Current::new(Id::from_u64(id), self.store.metadata(id)?)))
            .unwrap_or_else(Current::none)
    }
}

struct FieldVisitor<'a> {
    fields: &'a mut FieldBuf,
    /// Where an event's `message` is written, apart from its other fields.
    message: Option<&'a mut String>,
}

impl FieldVisitor<'_> {
    /// Where the event's `message` goes, if `field` is it and this visit keeps messages apart.
    fn message_slot(&mut self, field: &Field) -> Option<&mut String> {
        match &mut self.message {
            Some(message) if field.name() == "message" => Some(message),
            _ => None,
        }
    }

    #[inline(always)]
    fn put(&mut self, field: &Field, value: FieldValue) {
        if let Some(message) = self.message_slot(field) {
            let _ = write!(message, "{value}");
            return;
        }
        // Every field arrives at most once per visit, so it is pushed without a search.
        self.fields.push((field.name(), value));
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(message) = self.message_slot(field) {
            message.push_str(value);
            return;
        }
        self.put(field, FieldValue::Str(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(message) = self.message_slot(field) {
            let _ = write!(message, "{value:?}");
            return;
        }
        thread_local! {
            static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
        }
        // Formatted into a reused buffer, then copied: a short value stays inline in the field
        // (no allocation), a longer one gets one allocation of its exact size.
        let text = with_scratch(&TEXT, |text| {
            let _ = write!(text, "{value:?}");
            FieldStr::from(text.as_str())
        });
        self.put(field, FieldValue::Str(text));
    }
}

/// A per-thread buffer that [`with_scratch`] lends out.
trait Scratch: Default {
    /// Empties the buffer; one that grew huge is dropped rather than pinned for the thread's
    /// lifetime.
    fn reset(&mut self);
}

impl Scratch for String {
    #[inline]
    fn reset(&mut self) {
        if self.capacity() > 4096 {
            *self = String::new();
        }
        self.clear();
    }
}

impl Scratch for FieldBuf {
    #[inline]
    fn reset(&mut self) {
        if self.capacity() > 64 {
            *self = Vec::new();
        }
        self.clear();
    }
}

/// Runs `f` with this thread's `buffer`, emptied: reused so that capturing allocates nothing
/// once it has grown. A fresh buffer stands in when it is taken (a `Debug` impl that logs while
/// being formatted) or the thread is exiting.
fn with_scratch<B: Scratch, R>(
    buffer: &'static std::thread::LocalKey<RefCell<B>>,
    f: impl FnOnce(&mut B) -> R,
) -> R {
    let mut f = Some(f);
    let done = buffer.try_with(|buffer| {
        let mut buffer = buffer.try_borrow_mut().ok()?;
        buffer.reset();
        f.take().map(|f| f(&mut buffer))
    });
    match (done.ok().flatten(), f) {
        (Some(done), _) => done,
        (None, Some(f)) => f(&mut B::default()),
        (None, None) => unreachable!("`f` runs at most once and its result is returned"),
    }
}

/// How a span relates to a context that crossed a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The caller waits for us: an inbound HTTP request.
    ChildOf,
    /// The cause did not wait: a job scheduled earlier, a callback that arrives later. The span
    /// continues the cause's trace as its child and also links to it as follows-from.
    FollowsFrom,
}

/// Makes `span` continue `parent`'s trace. Call it right after creating the span, before any
/// child exists. Does nothing when the span is disabled (tracing off).
pub fn continue_from(span: &Span, parent: &TraceContext, relation: Relation) {
    with_live(span, |data| {
        data.trace_id = parent.trace_id;
        data.parent = Some((parent.span_id, ParentKind::Remote));
        data.flags = parent.flags.propagated();
        data.tracestate = parent.tracestate.clone();
        if relation == Relation::FollowsFrom {
            data.links.push(parent.span_id);
        }
    });
}

/// The context to propagate from `span`: its trace, itself as the parent, its flags and
/// `tracestate`. `None` when tracing is off.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    with_live(span, |data| context_from_data(data))
}

/// [`context_of`] the current span. Read straight from the thread's span stack and the store:
/// `Span::current()` would take a handle to the span and drop it again (two more trips to the
/// store) for a value read once per outbound call.
pub fn current_context() -> Option<TraceContext> {
    tracing::dispatcher::get_default(|dispatch| {
        let capture = dispatch.downcast_ref::<CaptureSubscriber>()?;
        let id = capture.current()?;
        capture.store.with_live(id, |data| context_from_data(data))
    })
}

/// Makes the current capture subscriber's seeded ids continue as a service process that is
/// `generation` on its database draws them ([`IdGenerator::seeded_generation`]): what the
/// harness calls when it restarts a service in-process, so the restarted service draws the
/// ids a separately started process with the same seed and generation would. Does nothing
/// under another subscriber or with random ids.
pub fn start_id_generation(generation: u64) {
    tracing::dispatcher::get_default(|dispatch| {
        if let Some(capture) = dispatch.downcast_ref::<CaptureSubscriber>() {
            capture.ids.start_generation(generation);
        }
    });
}

/// The spans open now in the current capture subscriber's store, in creation order: what the
/// harness's service would lose if its process died at this moment (the runner's in-process
/// crash). Empty under another subscriber.
pub fn open_spans() -> Vec<SpanRef> {
    tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<CaptureSubscriber>()
            .map(|capture| capture.store.open_spans())
            .unwrap_or_default()
    })
}

fn context_from_data(data: &SpanData) -> TraceContext {
    TraceContext {
        trace_id: data.trace_id,
        span_id: data.span_id,
        flags: data.flags,
        tracestate: data.tracestate.clone(),
    }
}

/// Reaches a live span's record in the store, the way `tracing-opentelemetry`'s `set_parent`
/// reaches its own: downcast the dispatcher to the subscriber underneath any filters.
fn with_live<R>(span: &Span, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let capture = dispatch.downcast_ref::<CaptureSubscriber>()?;
        capture.store.with_live(id.into_u64(), f)
    })
    .flatten()
}
