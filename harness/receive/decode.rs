//! OTLP/HTTP bodies: the encoding read from `Content-Type`, a gzip `Content-Encoding` undone
//! within a bound, the body decoded into `opentelemetry-proto`'s `ExportTraceServiceRequest`;
//! and the answers encoded back the way the request came.
//!
//! Both encodings come from the official definitions: protobuf through prost, OTLP/JSON through
//! the crate's serde support, which reads what SDKs send (hex ids in either case, 64-bit times as
//! decimal strings or as numbers, `intValue` as a string or a number, unknown fields ignored).
//! Enums must be integers, as OTLP/JSON requires; `"kind": "SPAN_KIND_SERVER"` is malformed.

use std::io::Read as _;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

/// `Content-Type` of OTLP/HTTP protobuf.
pub const PROTOBUF: &str = "application/x-protobuf";
/// `Content-Type` of OTLP/JSON.
pub const JSON: &str = "application/json";

/// How a request body is encoded, and so how its answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// OTLP/JSON, `application/json`.
    Json,
}

impl Encoding {
    /// The `Content-Type` this encoding is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }

    /// The encoding a `Content-Type` names; parameters (`; charset=utf-8`) and case are ignored.
    pub(crate) fn of_content_type(value: Option<&str>) -> Result<Self, DecodeError> {
        let value = value.ok_or(DecodeError::NoContentType)?;
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Ok(Encoding::Json)
        } else {
            Err(DecodeError::UnknownContentType(shown(value)))
        }
    }
}

/// What one receiver accepts: bounds on a request and on what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest body read, as sent (gzipped or not). The OpenTelemetry Collector's default
    /// is 20 MiB; an SDK's batch of 512 spans is well under one.
    pub max_body_bytes: usize,
    /// The most a gzipped body may inflate to: a small body must not become gigabytes.
    pub max_decompressed_bytes: usize,
    /// The most spans an inbox keeps between two `clear`s; later spans are rejected.
    pub max_spans: usize,
}

impl Limits {
    /// 8 MiB sent, 32 MiB inflated, 100 000 spans kept.
    pub const DEFAULT: Limits = Limits {
        max_body_bytes: 8 << 20,
        max_decompressed_bytes: 32 << 20,
        max_spans: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why a request body is no export request. Each maps to the HTTP status OTLP/HTTP answers it
/// with ([`DecodeError::http_status`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No `Content-Type` header.
    #[error("no Content-Type: OTLP/HTTP sends {PROTOBUF} or {JSON}")]
    NoContentType,
    /// A `Content-Type` that is neither protobuf nor JSON.
    #[error("Content-Type `{0}` is neither {PROTOBUF} nor {JSON}")]
    UnknownContentType(String),
    /// A `Content-Encoding` other than `gzip` or `identity`.
    #[error("Content-Encoding `{0}` is not supported: send the body as is or gzipped")]
    UnknownContentEncoding(String),
    /// The body as sent is over [`Limits::max_body_bytes`].
    #[error("the body is larger than the {limit} bytes accepted")]
    BodyTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The gzipped body inflates past [`Limits::max_decompressed_bytes`].
    #[error("the gzipped body inflates to more than the {limit} bytes accepted")]
    InflatesTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The body says it is gzipped and is not.
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
    /// Not a protobuf `ExportTraceServiceRequest`.
    #[error("not a protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(String),
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    #[error("not an OTLP/JSON ExportTraceServiceRequest: {0}")]
    Json(String),
    /// The body could not be read off the connection.
    #[error("the body could not be read: {0}")]
    Read(String),
}

impl DecodeError {
    /// 415 for what cannot be read at all, 413 for what is too large, 400 for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::NoContentType
            | DecodeError::UnknownContentType(_)
            | DecodeError::UnknownContentEncoding(_) => 415,
            DecodeError::BodyTooLarge { .. } | DecodeError::InflatesTooLarge { .. } => 413,
            DecodeError::Gzip(_)
            | DecodeError::Protobuf(_)
            | DecodeError::Json(_)
            | DecodeError::Read(_) => 400,
        }
    }

    /// The error's answer: OTLP/HTTP wants a `google.rpc.Status` in the request's encoding;
    /// when the encoding is unknown (415), plain text. `(content type, body)`.
    pub fn body(&self, encoding: Option<Encoding>) -> (&'static str, Vec<u8>) {
        let message = self.to_string();
        // The gRPC code closest to the HTTP status: INVALID_ARGUMENT, RESOURCE_EXHAUSTED.
        let code = if self.http_status() == 413 { 8 } else { 3 };
        match encoding {
            Some(Encoding::Protobuf) => (PROTOBUF, rpc_status(code, &message)),
            Some(Encoding::Json) => {
                let body = serde_json::json!({ "code": code, "message": message });
                (JSON, body.to_string().into_bytes())
            }
            None => ("text/plain; charset=utf-8", (message + "\n").into_bytes()),
        }
    }
}

/// Decodes one request body. `content_type` and `content_encoding` are the headers' values.
/// Nothing is kept of a body that fails: the caller stores all of a request or none of it.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    limits: Limits,
) -> Result<(ExportTraceServiceRequest, Encoding), DecodeError> {
    let encoding = Encoding::of_content_type(content_type)?;
    if body.len() > limits.max_body_bytes {
        return Err(DecodeError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let inflated;
    let bytes = match content_encoding.map(str::trim) {
        None | Some("") => body,
        Some(e) if e.eq_ignore_ascii_case("identity") => body,
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            inflated = gunzip(body, limits.max_decompressed_bytes)?;
            &inflated[..]
        }
        Some(other) => return Err(DecodeError::UnknownContentEncoding(shown(other))),
    };
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes)
            .map_err(|e| DecodeError::Protobuf(e.to_string()))?,
        Encoding::Json => {
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?
        }
    };
    Ok((request, encoding))
}

/// Inflates at most `limit` bytes: reading one byte past the bound is how a bomb is told apart
/// from a body of exactly `limit` bytes, without inflating the rest of it.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read = flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Ok(_) if out.len() > limit => Err(DecodeError::InflatesTooLarge { limit }),
        Ok(_) => Ok(out),
        Err(e) => Err(DecodeError::Gzip(e.to_string())),
    }
}

/// The success answer in `encoding`. In JSON by hand: OTLP/JSON sends `rejectedSpans`, an
/// int64, as a decimal string, which the generated serde code does not.
pub fn encode_response(response: &ExportTraceServiceResponse, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            let body = match &response.partial_success {
                Some(partial) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": partial.rejected_spans.to_string(),
                        "errorMessage": partial.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status { code = 1; message = 2; }`, encoded by hand: two fields do not warrant
/// generated code.
fn rpc_status(code: u32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    out.push(0x08); // field 1, varint
    varint(u64::from(code), &mut out);
    out.push(0x12); // field 2, length-delimited
    varint(message.len() as u64, &mut out);
    out.extend_from_slice(message.as_bytes());
    out
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A header value from outside, short enough to quote in a message.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut text: String = value.chars().take(MAX_CHARS).collect();
    if value.chars().count() > MAX_CHARS {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_by_their_essence() {
        let of = |v| Encoding::of_content_type(Some(v));
        assert_eq!(of("application/x-protobuf"), Ok(Encoding::Protobuf));
        assert_eq!(of("Application/JSON; charset=utf-8"), Ok(Encoding::Json));
        assert_eq!(
            of("text/plain"),
            Err(DecodeError::UnknownContentType("text/plain".into()))
        );
        assert_eq!(
            Encoding::of_content_type(None),
            Err(DecodeError::NoContentType)
        );
    }

    #[test]
    fn a_status_body_is_the_protobuf_google_rpc_status() {
        // code 3, message "hi": 08 03 12 02 'h' 'i'
        assert_eq!(rpc_status(3, "hi"), [0x08, 0x03, 0x12, 0x02, b'h', b'i']);
        let long = "x".repeat(300);
        let encoded = rpc_status(8, &long);
        assert_eq!(&encoded[..5], &[0x08, 0x08, 0x12, 0xac, 0x02]);
        assert_eq!(encoded.len(), 5 + 300);
    }

    #[test]
    fn a_body_of_exactly_the_bound_inflates_and_one_byte_more_does_not() {
        use std::io::Write as _;
        let gzip = |n: usize| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&vec![b'a'; n]).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(gunzip(&gzip(1000), 1000).map(|v| v.len()), Ok(1000));
        assert_eq!(
            gunzip(&gzip(1001), 1000),
            Err(DecodeError::InflatesTooLarge { limit: 1000 })
        );
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(DecodeError::Gzip(_))
        ));
    }
}
