//! Receiving spans over OTLP/HTTP from services the harness did not write (a Node service on
//! the OpenTelemetry JS SDK, the harness's own service as a separate process), into the same
//! trace model the in-process capture fills, so that `expect` and `report` cannot tell where
//! the spans came from.
//!
//! [`decode`] reads a body (protobuf or OTLP/JSON, gzipped or not, bounded); an [`Inbox`]
//! keeps the valid spans by service, counts what was malformed, and builds [`Captured`]
//! snapshots on a chosen [`TimeBase`] in creation order. The mapping is the inverse of
//! `report::otlp`'s export.
//!
//! Files import only those listed before them: `decode`, `intern`, `convert`, `order`,
//! `inbox`.
//!
//! [`Captured`]: crate::trace::Captured

mod convert;
mod decode;
mod inbox;
mod intern;
mod order;

pub use convert::SpanKind;
pub use decode::{decode, encode_response, DecodeError, Encoding, Limits, JSON, PROTOBUF};
pub use inbox::{Inbox, Ingested, Problems, SpanSummary, TimeBase};
