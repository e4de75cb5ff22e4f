//! Receiving spans over OTLP/HTTP from services the harness did not write (a Node service on
//! the OpenTelemetry JS SDK, the harness's own service as a separate process), into the same
//! trace model the in-process capture fills, so that `expect` and `report` cannot tell where
//! the spans came from.
//!
//! [`decode()`] reads a body (protobuf or OTLP/JSON, gzipped or not, bounded); an [`Inbox`]
//! keeps the valid spans by service, counts what was malformed, and builds [`Captured`]
//! snapshots on a chosen [`TimeBase`] in creation order; a [`Receiver`] serves `POST
//! /v1/traces` into an inbox. The mapping is the inverse of `report::otlp`'s export.
//!
//! Two things of a replay's capture do not travel over `/v1/traces` and so do not come back:
//! log lines written outside every span (OTLP carries them as log records, on `/v1/logs`),
//! and whether an integer field was a `u64` (OTLP has one integer type, signed: every integer
//! comes back `I64`, printed alike).
//!
//! [`from_lines`] reads a log-only service's seed-format output lines into the same model.
//!
//! Files import only those listed before them: `decode`, `intern`, `logs`, `convert`, `order`,
//! `inbox`, `server`.
//!
//! [`Captured`]: crate::trace::Captured

mod convert;
mod decode;
mod inbox;
mod intern;
mod logs;
mod order;
mod server;

pub use convert::SpanKind;
pub use decode::{decode, encode_response, DecodeError, Encoding, Limits, JSON, PROTOBUF};
pub use inbox::{Inbox, Ingested, Problems, SpanSummary, TimeBase};
pub(crate) use intern::intern;
pub use logs::{from_lines, FromLines};
pub use server::{Receiver, DEFAULT_ADDR};
