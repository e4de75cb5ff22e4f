//! Live export: a thread of its own that, each time a local root span closes (one with no
//! parent in this process: a request's, or a cron job's), drains the capture store and posts
//! what closed to an OTLP/HTTP endpoint, in creation order and in bounded requests; with
//! nothing to export it drains and drops, so the store holds only what is still open.
//!
//! The thread is woken by [`Doorbell`], a layer on the capture subscriber: no polling, no
//! timer. A ring while the thread is busy (posting, or draining) is kept as one pending ring,
//! whose drain takes everything that closed meanwhile. The service's runtime never waits for
//! an export: posting, retries and their waits happen on this thread.
//!
//! Why roots, not every span: the spans of one request close children first, and a ring per
//! close posted the first child alone and the rest a moment later, two requests where one
//! does (`benches/NOTES.md`). A span that closes after its root (nothing in this service does)
//! goes with the next root's export, a flush at a crash point, or the last one at exit.

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::booking::guard::panic_message;
use crate::report::epoch::DEFAULT_EPOCH;
use crate::report::otlp::{service_request, service_spans};
use crate::report::otlp_http::{ExportError, OtlpExporter};
use crate::trace::TraceStore;

/// Most spans in one export request, OpenTelemetry's default batch size
/// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`); a drain that took more is sent in several.
pub(crate) const MAX_EXPORT_SPANS: usize = 512;

/// What wakes the export thread.
enum Ring {
    /// Something closed: drain.
    Closed,
    /// Drain and post now, then say so: the process is about to exit without closing what is
    /// still open (a crash point).
    Flush(SyncSender<()>),
    /// Every span has closed: drain one last time and stop.
    Last,
}

/// Rings the export thread when a local root span closes, and, with tracing off (no span ever
/// closes), when a log line is written, so that lines are drained too. Layered on the capture
/// subscriber, it runs after the span or line is in the store.
pub(crate) struct Doorbell {
    ring: SyncSender<Ring>,
    on_events: bool,
    /// The open spans that have no parent in this process.
    roots: Mutex<HashSet<u64>>,
}

impl Doorbell {
    fn ring(&self) {
        // Full: a ring is pending, and its drain takes this too. Disconnected: the thread is
        // gone, and `LiveExport::finish` reports why.
        let _ = self.ring.try_send(Ring::Closed);
    }

    fn roots(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.roots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Subscriber> Layer<S> for Doorbell {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let local_root =
            attrs.is_root() || (attrs.is_contextual() && ctx.current_span().id().is_none());
        if local_root {
            self.roots().insert(id.into_u64());
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if self.roots().remove(&id.into_u64()) {
            self.ring();
        }
    }

    fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
        if self.on_events {
            self.ring();
        }
    }
}

/// Where drained spans go.
pub(crate) struct Sink {
    /// The endpoint's client.
    pub exporter: OtlpExporter,
    /// The resource's `service.name`.
    pub service_name: String,
}

/// What the export thread did, reported when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Spans the endpoint accepted.
    pub spans: usize,
    /// Spans in requests that failed (each failure was reported as it happened).
    pub lost_spans: usize,
}

/// The running export thread.
pub(crate) struct LiveExport {
    last: SyncSender<Ring>,
    thread: JoinHandle<Exported>,
}

impl LiveExport {
    /// Starts the thread draining `store` into `sink` (or nowhere), and the doorbell that
    /// wakes it; `on_events` rings on every log line too. `on_error` hears of every failed
    /// request, on the export thread.
    pub(crate) fn start(
        store: Arc<TraceStore>,
        sink: Option<Sink>,
        on_events: bool,
        on_error: impl Fn(&ExportError) + Send + 'static,
    ) -> std::io::Result<(LiveExport, Doorbell)> {
        // One runtime for the thread's life, so the client's connections outlive a request.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (ring, rung) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || drain_until_last(&store, sink.as_ref(), &runtime, &rung, &on_error))?;
        let doorbell = Doorbell {
            ring: ring.clone(),
            on_events,
            roots: Mutex::new(HashSet::new()),
        };
        Ok((LiveExport { last: ring, thread }, doorbell))
    }

    /// A handle that makes the thread export what has closed, and waits until it has.
    pub(crate) fn flusher(&self) -> Flusher {
        Flusher {
            ring: self.last.clone(),
        }
    }

    /// Exports what is left and stops the thread. Call it once every span has closed (the
    /// service's runtime is gone); a panic on the thread comes back as its message.
    pub(crate) fn finish(self) -> Result<Exported, String> {
        // Blocks only while a pending ring is taken; fails only if the thread is gone.
        let _ = self.last.send(Ring::Last);
        self.thread.join().map_err(|panic| panic_message(&*panic))
    }
}

/// Makes the export thread export everything closed so far, from any thread.
#[derive(Clone)]
pub(crate) struct Flusher {
    ring: SyncSender<Ring>,
}

impl Flusher {
    /// Returns once everything closed before the call has been posted (or its post failed);
    /// at once if the thread is gone.
    pub(crate) fn flush(&self) {
        let (done, flushed) = mpsc::sync_channel(1);
        if self.ring.send(Ring::Flush(done)).is_ok() {
            let _ = flushed.recv();
        }
    }
}

/// The export thread: one drain per ring, until the last.
fn drain_until_last(
    store: &TraceStore,
    sink: Option<&Sink>,
    runtime: &tokio::runtime::Runtime,
    rung: &Receiver<Ring>,
    on_error: &dyn Fn(&ExportError),
) -> Exported {
    let mut exported = Exported::default();
    loop {
        let (last, flushed) = match rung.recv() {
            Ok(Ring::Closed) => (false, None),
            Ok(Ring::Flush(done)) => (false, Some(done)),
            Ok(Ring::Last) | Err(_) => (true, None),
        };
        let drained = store.drain();
        if let Some(sink) = sink.filter(|_| !drained.spans.is_empty()) {
            let mut spans = service_spans(&drained, DEFAULT_EPOCH);
            while !spans.is_empty() {
                let rest = spans.split_off(spans.len().min(MAX_EXPORT_SPANS));
                let batch = std::mem::replace(&mut spans, rest);
                let count = batch.len();
                let request = service_request(&sink.service_name, batch);
                match runtime.block_on(sink.exporter.deliver(&request)) {
                    Ok(_) => exported.spans += count,
                    Err(e) => {
                        exported.lost_spans += count;
                        on_error(&e);
                    }
                }
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if last {
            return exported;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::TryRecvError;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::trace::{CaptureSubscriber, IdGenerator};

    /// A doorbell on a capture subscriber, and the channel it rings.
    fn rung_doorbell() -> (tracing::Dispatch, Receiver<Ring>) {
        let (ring, rung) = mpsc::sync_channel(8);
        let doorbell = Doorbell {
            ring,
            on_events: false,
            roots: Mutex::new(HashSet::new()),
        };
        let capture = CaptureSubscriber::new(TraceStore::new(), IdGenerator::seeded(1));
        (tracing::Dispatch::new(capture.with(doorbell)), rung)
    }

    fn rings(rung: &Receiver<Ring>) -> usize {
        let mut n = 0;
        loop {
            match rung.try_recv() {
                Ok(Ring::Closed) => n += 1,
                Ok(_) => panic!("only closes ring here"),
                Err(TryRecvError::Empty) => return n,
                Err(TryRecvError::Disconnected) => panic!("the doorbell is gone"),
            }
        }
    }

    #[test]
    fn a_request_rings_once_when_its_root_closes_not_for_each_child() {
        let (dispatch, rung) = rung_doorbell();
        tracing::dispatcher::with_default(&dispatch, || {
            let root = tracing::info_span!("booking_creation");
            root.in_scope(|| {
                tracing::info_span!("calendar_call").in_scope(|| {});
                tracing::info_span!("payment_call").in_scope(|| {});
                // An explicit parent is a local parent too.
                drop(tracing::info_span!(parent: &root, "email_call"));
            });
            assert_eq!(rings(&rung), 0, "children closed, the root is open");
            drop(root);
            assert_eq!(rings(&rung), 1, "the root closed");
            // A span made a root explicitly, inside another, rings when it closes.
            let outer = tracing::info_span!("cron_call");
            outer.in_scope(|| drop(tracing::info_span!(parent: None, "webhook_execution")));
            assert_eq!(rings(&rung), 1, "the explicit root closed");
            drop(outer);
            assert_eq!(rings(&rung), 1, "the outer root closed");
        });
    }
}
