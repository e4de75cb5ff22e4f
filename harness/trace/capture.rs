//! The capture `Layer`: gives every span W3C ids, times it on the flow's virtual clock and
//! writes spans and events into a [`TraceStore`].

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Span, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use super::context::{TraceContext, TraceFlags};
use super::ids::IdGenerator;
use super::prefix::{RequestIdPrefix, SeedPrefix};
use super::store::{
    FieldStr, FieldValue, Fields, LogLine, ParentKind, SpanData, SpanRef, SpanStatus, TraceStore,
};
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

/// Captures spans and events into a [`TraceStore`].
///
/// With `tracing` off the layer still records log lines (with their request ids) but disables
/// every span, so instrumented code pays what a disabled span costs and propagates nothing.
pub struct CaptureLayer {
    store: Arc<TraceStore>,
    ids: IdGenerator,
    tracing: bool,
    log: Option<LogWriter>,
}

/// Writes one finished log line (newline included) somewhere: a file, stderr, a sink.
type LogWriter = Box<dyn Fn(&[u8]) + Send + Sync>;

impl CaptureLayer {
    pub fn new(store: Arc<TraceStore>, ids: IdGenerator) -> Self {
        CaptureLayer {
            store,
            ids,
            tracing: true,
            log: None,
        }
    }

    /// Tracing opted out: log lines only, no spans, no context.
    pub fn without_tracing(store: Arc<TraceStore>) -> Self {
        CaptureLayer {
            store,
            ids: IdGenerator::Random,
            tracing: false,
            log: None,
        }
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

    fn write_log_line(&self, line: &LogLine) {
        let Some(write) = &self.log else { return };
        thread_local! {
            // Reused so that writing a line allocates nothing once the buffer has grown.
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return;
            };
            buf.clear();
            let _ = match (&line.span, &line.request_id) {
                (Some(span), _) => write!(
                    buf,
                    "{} ",
                    SeedPrefix {
                        trace: span.trace_id,
                        span: span.span_id,
                        op: span.op,
                    }
                ),
                (None, Some(id)) => write!(buf, "{} ", RequestIdPrefix(id)),
                (None, None) => Ok(()),
            };
            push_one_line(&mut buf, &line.message);
            buf.push('\n');
            write(buf.as_bytes());
        });
    }
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

/// Per-span state, kept in the registry's extensions while the span lives.
struct LiveSpan {
    data: SpanData,
    /// Where the store keeps this span's entry in its list of open spans.
    open_slot: usize,
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() && !self.tracing {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.tracing || !metadata.is_span()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = span.parent().and_then(|parent| {
            let ext = parent.extensions();
            ext.get::<LiveSpan>().map(|live| {
                let p = &live.data;
                (p.trace_id, p.span_id, p.flags, p.tracestate.clone())
            })
        });
        let (trace_id, parent, flags, tracestate) = match inherited {
            Some((trace, parent, flags, state)) => {
                (trace, Some((parent, ParentKind::Local)), flags, state)
            }
            None => (self.ids.trace_id(), None, TraceFlags::NEW_TRACE, None),
        };
        // Sized once: every declared field (`Empty` ones included) may be recorded later.
        let mut fields = Fields::with_capacity(attrs.metadata().fields().len());
        attrs.record(&mut FieldVisitor {
            fields: &mut fields,
            message: None,
            fresh: true,
        });
        let span_id = self.ids.span_id();
        let op = attrs.metadata().name();
        // The store numbers the span under the lock it takes anyway, instead of an atomic.
        let (seq, open_slot) = self.store.opened(SpanRef {
            trace_id,
            span_id,
            op,
        });
        let now = clock::now();
        let data = SpanData {
            seq,
            trace_id,
            span_id,
            parent,
            links: Vec::new(),
            op,
            fields,
            status: SpanStatus::Ok,
            start: now,
            end: now,
            flags,
            tracestate,
            request_id: current_request_id(),
        };
        span.extensions_mut().insert(LiveSpan { data, open_slot });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(live) = ext.get_mut::<LiveSpan>() {
            values.record(&mut FieldVisitor {
                fields: &mut live.data.fields,
                message: None,
                fresh: false,
            });
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(cause) = ctx
            .span(follows)
            .and_then(|s| s.extensions().get::<LiveSpan>().map(|l| l.data.span_id))
        else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(live) = ext.get_mut::<LiveSpan>() {
                live.data.links.push(cause);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // The message is usually one of the declared fields and is kept apart from them.
        let mut fields = Fields::with_capacity(metadata.fields().len().saturating_sub(1));
        let mut message = None;
        event.record(&mut FieldVisitor {
            fields: &mut fields,
            message: Some(&mut message),
            fresh: true,
        });
        let message = message.unwrap_or_default();
        let level = *metadata.level();
        let span = ctx.event_span(event).and_then(|span| {
            if level != tracing::Level::ERROR {
                // Only an error changes the span: everything else only reads it.
                return span
                    .extensions()
                    .get::<LiveSpan>()
                    .map(|l| span_ref(&l.data));
            }
            let mut ext = span.extensions_mut();
            let live = &mut ext.get_mut::<LiveSpan>()?.data;
            if live.status == SpanStatus::Ok {
                live.status = SpanStatus::Error(message.as_str().into());
            }
            Some(span_ref(live))
        });
        let line = LogLine {
            // Numbered by the store when it takes the line.
            seq: 0,
            at: clock::now(),
            level,
            message,
            fields,
            target: metadata.target(),
            span,
            request_id: current_request_id(),
        };
        self.write_log_line(&line);
        self.store.logged(line);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(LiveSpan {
            mut data,
            open_slot,
        }) = span.extensions_mut().remove::<LiveSpan>()
        else {
            return;
        };
        data.end = clock::try_now().unwrap_or(data.start).max(data.start);
        self.store.closed(open_slot, data);
    }
}

fn span_ref(data: &SpanData) -> SpanRef {
    SpanRef {
        trace_id: data.trace_id,
        span_id: data.span_id,
        op: data.op,
    }
}

struct FieldVisitor<'a> {
    fields: &'a mut Fields,
    message: Option<&'a mut Option<String>>,
    /// Every field arrives at most once (a new span's or an event's values), so a value is
    /// pushed without looking for an earlier one to replace.
    fresh: bool,
}

impl FieldVisitor<'_> {
    /// Where the event's `message` goes, if `field` is it and this visit keeps messages apart.
    fn message_slot(&mut self, field: &Field) -> Option<&mut Option<String>> {
        if self.message.is_some() && field.name() == "message" {
            self.message.as_deref_mut()
        } else {
            None
        }
    }

    #[inline]
    fn put(&mut self, field: &Field, value: FieldValue) {
        if let Some(message) = self.message_slot(field) {
            *message = Some(value.to_string());
            return;
        }
        let name = field.name();
        if !self.fresh {
            // Names come from the callsite's static field set: equal pointers are the same name.
            if let Some((_, slot)) = self
                .fields
                .iter_mut()
                .find(|(k, _)| std::ptr::eq(*k, name) || *k == name)
            {
                *slot = value;
                return;
            }
        }
        self.fields.push((name, value));
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(message) = self.message_slot(field) {
            *message = Some(value.to_owned());
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
            *message = Some(with_formatted(value, str::to_owned));
            return;
        }
        // A short value stays inline in the field: formatted, copied, no allocation.
        let text = with_formatted(value, |text: &str| FieldStr::from(text));
        self.put(field, FieldValue::Str(text));
    }
}

/// Formats `value` (`{value:?}`) and hands the text to `keep`, which copies what it keeps: a
/// message arrives as `fmt::Arguments`, whose size is unknown until written, and formatting into
/// an empty `String` grows it several times. It is written into a reused per-thread buffer
/// instead, so `keep` makes one allocation of the exact size, or none for a short field value.
fn with_formatted<R>(value: &dyn fmt::Debug, keep: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let mut keep = Some(keep);
    let kept = SCRATCH
        .try_with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            scratch.clear();
            write!(scratch, "{value:?}").ok()?;
            let kept = keep.take().map(|keep| keep(scratch.as_str()));
            // A huge message must not pin its buffer for the thread's lifetime.
            if scratch.capacity() > 4096 {
                *scratch = String::new();
            }
            kept
        })
        .ok()
        .flatten();
    match (kept, keep) {
        (Some(kept), _) => kept,
        // Re-entered while formatting (a `Debug` impl that logs), or the thread is exiting.
        (None, Some(keep)) => keep(&format!("{value:?}")),
        (None, None) => unreachable!("`keep` runs at most once and its result is returned"),
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
    with_live(span, |data| TraceContext {
        trace_id: data.trace_id,
        span_id: data.span_id,
        flags: data.flags,
        tracestate: data.tracestate.clone(),
    })
}

/// [`context_of`] the current span.
pub fn current_context() -> Option<TraceContext> {
    context_of(&Span::current())
}

/// Reaches a live span's record through the registry, the way `tracing-opentelemetry`'s
/// `set_parent` does: downcast the dispatcher to the `Registry` underneath the layers.
fn with_live<R>(span: &Span, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut ext = span.extensions_mut();
        ext.get_mut::<LiveSpan>().map(|live| f(&mut live.data))
    })
    .flatten()
}
