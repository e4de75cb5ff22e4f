//! Receiving spans over OTLP/HTTP from services the harness did not write (a Node service on
//! the OpenTelemetry JS SDK, the harness's own service as a separate process), into the same
//! trace model the in-process capture fills, so that `expect` and `report` cannot tell where
//! the spans came from.
//!
//! [`decode`] reads a body (protobuf or OTLP/JSON, gzipped or not, bounded).

mod decode;

pub use decode::{decode, encode_response, DecodeError, Encoding, Limits, JSON, PROTOBUF};
