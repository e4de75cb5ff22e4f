//! Setup the benchmarks share: the peer subscribers (`fmt`, `tracing-opentelemetry`), the
//! Registry-plus-trivial-layer floor, and the scoped-dispatcher helper that keeps tracing's
//! per-callsite interest cache honest between cases.
#![allow(dead_code)] // Each bench target uses a different subset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use trace_harness::trace::{CaptureSubscriber, IdGenerator, TraceStore};
use tracing::span::{Attributes, Id};
use tracing::{info, info_span, Dispatch, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The span lifecycle benches' unit, the shape of the booking service's spans: one span with
/// three fields and one event, created, entered, exited, closed.
#[inline(never)]
pub fn span_with_event(event_type_id: u64) {
    let span = info_span!(
        "booking_creation",
        event_type_id,
        calendar = "google",
        paid = false
    );
    let entered = span.enter();
    info!(
        "Booking creation started for eventTypeId: {}",
        event_type_id
    );
    drop(entered);
    drop(span);
}

/// The subscribers a span lifecycle is measured under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// No dispatcher at all: what an uninstrumented build of the same code pays.
    NoSubscriber,
    /// `Registry` with a `LevelFilter::OFF`: tracing's own disabled span.
    FilteredOff,
    /// Our opt-out: `CaptureSubscriber::without_tracing` (spans disabled, log lines still kept).
    CaptureDisabled,
    /// `Registry` plus a layer that stores one small struct in each span's extensions: the
    /// floor for any layer that keeps per-span state.
    TrivialLayer,
    /// Our capture subscriber: ids, fields, events, virtual timestamps, links.
    Capture,
    /// Our capture subscriber also writing each event as a seed-format line to a sink.
    CaptureSeedLog,
    /// `tracing_subscriber::fmt` writing to a sink.
    Fmt,
    /// `tracing-opentelemetry` with the OpenTelemetry SDK and an exporter that drops spans.
    OtelNoop,
    /// `tracing-opentelemetry` with the SDK's in-memory exporter.
    OtelInMemory,
}

impl Setup {
    pub const ALL: [Setup; 9] = [
        Setup::NoSubscriber,
        Setup::FilteredOff,
        Setup::CaptureDisabled,
        Setup::TrivialLayer,
        Setup::Capture,
        Setup::CaptureSeedLog,
        Setup::Fmt,
        Setup::OtelNoop,
        Setup::OtelInMemory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Setup::NoSubscriber => "no_subscriber",
            Setup::FilteredOff => "tracing_disabled_by_filter",
            Setup::CaptureDisabled => "capture_opt_out",
            Setup::TrivialLayer => "registry_trivial_layer",
            Setup::Capture => "capture",
            Setup::CaptureSeedLog => "capture_seed_log",
            Setup::Fmt => "fmt_sink",
            Setup::OtelNoop => "otel_noop_exporter",
            Setup::OtelInMemory => "otel_in_memory_exporter",
        }
    }
}

/// A built subscriber and whatever must be emptied between samples so memory stays flat.
pub struct Built {
    pub dispatch: Option<Dispatch>,
    store: Option<Arc<TraceStore>>,
    exporter: Option<InMemorySpanExporter>,
    provider: Option<SdkTracerProvider>,
}

impl Built {
    pub fn new(setup: Setup) -> Built {
        let mut built = Built {
            dispatch: None,
            store: None,
            exporter: None,
            provider: None,
        };
        let dispatch = match setup {
            Setup::NoSubscriber => return built,
            Setup::FilteredOff => Dispatch::new(Registry::default().with(LevelFilter::OFF)),
            Setup::CaptureDisabled => {
                let store = TraceStore::new();
                built.store = Some(store.clone());
                Dispatch::new(CaptureSubscriber::without_tracing(store))
            }
            Setup::TrivialLayer => Dispatch::new(Registry::default().with(TrivialLayer)),
            Setup::Capture => {
                let store = TraceStore::new();
                built.store = Some(store.clone());
                Dispatch::new(CaptureSubscriber::new(store, IdGenerator::seeded(1)))
            }
            Setup::CaptureSeedLog => {
                let store = TraceStore::new();
                built.store = Some(store.clone());
                let capture = CaptureSubscriber::new(store, IdGenerator::seeded(1))
                    .with_log_writer(std::io::sink);
                Dispatch::new(capture)
            }
            Setup::Fmt => Dispatch::new(
                Registry::default()
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
            ),
            Setup::OtelNoop => {
                let provider = SdkTracerProvider::builder()
                    .with_simple_exporter(NoopExporter)
                    .build();
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
                built.provider = Some(provider);
                Dispatch::new(Registry::default().with(layer))
            }
            Setup::OtelInMemory => {
                let exporter = InMemorySpanExporter::default();
                let provider = SdkTracerProvider::builder()
                    .with_simple_exporter(exporter.clone())
                    .build();
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
                built.exporter = Some(exporter);
                built.provider = Some(provider);
                Dispatch::new(Registry::default().with(layer))
            }
        };
        built.dispatch = Some(dispatch);
        built
    }

    /// Runs `f` with this subscriber as the thread's default, and the callsite interest cache
    /// rebuilt for it: the cache is global, so a case must not inherit the previous one's.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, || {
                tracing::callsite::rebuild_interest_cache();
                f()
            }),
            None => {
                tracing::callsite::rebuild_interest_cache();
                f()
            }
        }
    }

    /// Times `iters` runs of `body` under this subscriber, then empties what it captured.
    pub fn time(&self, iters: u64, mut body: impl FnMut()) -> Duration {
        let elapsed = self.run(|| {
            let start = Instant::now();
            for _ in 0..iters {
                body();
            }
            start.elapsed()
        });
        self.clear();
        elapsed
    }

    pub fn clear(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.reset();
        }
        if let Some(store) = &self.store {
            store.clear();
        }
    }

    pub fn store(&self) -> Option<&Arc<TraceStore>> {
        self.store.as_ref()
    }
}

impl Drop for Built {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// The floor: one small struct in each span's extensions, nothing else.
pub struct TrivialLayer;

struct Marker {
    _id: u64,
}

impl<S> Layer<S> for TrivialLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Marker { _id: id.into_u64() });
        }
    }
}

/// An OpenTelemetry exporter that drops every batch: the SDK's own cost, no export.
#[derive(Debug)]
pub struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Criterion kept short: the benches share a 2-core machine with other work.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}
