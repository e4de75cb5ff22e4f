//! `receive`: a local trace viewer. An OTLP/HTTP receiver on an address; while it runs, each
//! batch of spans as a tree on standard error (on a terminal), every problem with what was
//! sent as a warning; on Ctrl-C the whole collection in the chosen format, to standard output
//! or a file.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::{fail, interactive, write_atomically, Exit};
use crate::outcome::ReplayOutcome;
use crate::receive::{Inbox, Receiver, TimeBase};
use crate::report::epoch::Epoch;
use crate::report::{self, html, one_line, otlp};
use crate::trace::Captured;

/// What `receive` prints of the collection on Ctrl-C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveFormat {
    /// The span tree.
    Tree,
    /// The seed-style log view of the spans' events.
    Logs,
    /// The HTML waterfall.
    Html,
    /// OTLP/JSON, one `ExportTraceServiceRequest`, a resource per service.
    OtlpJson,
}

/// Everything `receive` is asked to do.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// What to print on Ctrl-C.
    pub format: ReceiveFormat,
    /// Write it to this file (atomically) instead of standard output.
    pub out: Option<PathBuf>,
    /// Which received instant is shown as `+0s`.
    pub time_base: TimeBase,
}

/// `receive`: listens until Ctrl-C, then renders what arrived.
pub fn receive(options: &ReceiveOptions) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let inbox = Arc::new(Inbox::new());
    if let Err(e) = runtime.block_on(collect(options, &inbox)) {
        return fail(e);
    }
    eprintln!("{}", summary(&inbox));
    let text = render(options, &inbox);
    match &options.out {
        Some(path) => match write_atomically(path, &text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                Exit::Success
            }
            Err(e) => fail(format!("{}: cannot write: {e}", path.display())),
        },
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => Exit::Success,
                Err(e) => fail(format!("cannot write to standard output: {e}")),
            }
        }
    }
}

/// Receives until Ctrl-C, showing what arrives as it does.
async fn collect(options: &ReceiveOptions, inbox: &Arc<Inbox>) -> Result<(), String> {
    let receiver = Receiver::start(options.addr, Arc::clone(inbox))
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    eprintln!(
        "receiving OTLP/HTTP traces on {} (OTEL_EXPORTER_OTLP_ENDPOINT={}); Ctrl-C stops and prints them",
        receiver.traces_url(),
        receiver.url()
    );
    let live = interactive();
    let mut shown = Shown::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stopped = loop {
        // Read before looking, so a change while looking ends the wait at once.
        let version = inbox.version();
        shown.show_new(inbox, live, options.time_base);
        tokio::select! {
            stopped = &mut ctrl_c => break stopped,
            () = inbox.changed_since(version) => {}
        }
    };
    receiver.stop().await;
    // Both may have been ready, and `select!` picks either: show what the last wait missed.
    shown.show_new(inbox, live, options.time_base);
    stopped.map_err(|e| format!("cannot listen for Ctrl-C: {e}"))
}

/// How much of the inbox was already shown.
#[derive(Default)]
struct Shown {
    spans: usize,
    problems: usize,
}

impl Shown {
    fn show_new(&mut self, inbox: &Inbox, live: bool, base: TimeBase) {
        let problems = inbox.problems();
        for message in problems.messages.iter().skip(self.problems) {
            eprintln!(
                "warning: the sender sent malformed telemetry: {}",
                one_line(message)
            );
        }
        self.problems = problems.messages.len();
        if !live || inbox.len() <= self.spans {
            return;
        }
        let batch = inbox.snapshot_from(self.spans, base);
        self.spans += batch.spans.len();
        eprint!(
            "── {} span(s) received\n{}",
            batch.spans.len(),
            report::tree(&outcome_of(batch), &[])
        );
    }
}

/// `received 12 span(s) in 2 trace(s) from cal.com, google-calendar; nothing malformed`
fn summary(inbox: &Inbox) -> String {
    let services: Vec<String> = inbox.services().iter().map(|s| one_line(s)).collect();
    let problems = inbox.problems();
    let trouble = if problems.is_empty() {
        "nothing malformed".to_owned()
    } else {
        format!(
            "{} malformed request(s), {} span(s) rejected, {} received twice",
            problems.malformed_requests, problems.rejected_spans, problems.duplicate_spans
        )
    };
    format!(
        "received {} span(s) in {} trace(s) from {}; {trouble}",
        inbox.len(),
        inbox.trace_ids().len(),
        if services.is_empty() {
            "no service".to_owned()
        } else {
            services.join(", ")
        }
    )
}

/// The whole collection in the chosen format.
fn render(options: &ReceiveOptions, inbox: &Inbox) -> String {
    let base = options.time_base;
    // Exported times are the received ones: the anchor is the instant the time base made zero.
    let zero_us = inbox.zero_unix_nanos(base) / 1_000;
    let epoch = Epoch::at_unix_us(i64::try_from(zero_us).unwrap_or(i64::MAX));
    let outcome = outcome_of(inbox.snapshot(None, base));
    match options.format {
        ReceiveFormat::Tree if outcome.captured.spans.is_empty() => {
            "(no spans received)\n".to_owned()
        }
        ReceiveFormat::Tree => report::tree(&outcome, &[]),
        ReceiveFormat::Logs => report::seed_log_view(&outcome),
        ReceiveFormat::Html => html::waterfall(&outcome, epoch),
        ReceiveFormat::OtlpJson => {
            let mut request = ExportTraceServiceRequest::default();
            for service in inbox.services() {
                let outcome = outcome_of(inbox.snapshot(Some(&service), base));
                for mut resource in otlp::export_request(&outcome, epoch).resource_spans {
                    // The export names the harness's service; this is the sender's.
                    if let Some(resource) = &mut resource.resource {
                        resource.attributes = vec![KeyValue {
                            key: "service.name".to_owned(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(service.to_string())),
                            }),
                            ..Default::default()
                        }];
                    }
                    request.resource_spans.push(resource);
                }
            }
            // The generated types serialise infallibly: strings, numbers and lists only.
            serde_json::to_string(&request).unwrap_or_default() + "\n"
        }
    }
}

/// What the renderers read, around spans that no replay produced.
fn outcome_of(captured: Captured) -> ReplayOutcome {
    ReplayOutcome::of_spans("received", 0, captured)
}
