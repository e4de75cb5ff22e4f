//! OTLP/HTTP sending: POSTs an export request to a collector's `/v1/traces` as protobuf or JSON,
//! optionally gzipped, retrying what the OTLP specification calls retryable (429, 502, 503, 504,
//! and an unreachable endpoint) with `Retry-After` honoured, and failing loudly otherwise: a
//! partial success that rejected spans is an error, never a silent drop.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest a `Retry-After` may ask us to wait; longer is reported instead of waited out.
pub(crate) const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// How long one attempt may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First backoff when the server names no wait; doubled per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The encodings OTLP/HTTP defines, named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`: binary protobuf, `Content-Type: application/x-protobuf`.
    Protobuf,
    /// `http/json`: OTLP/JSON, `Content-Type: application/json`.
    Json,
}

impl OtlpProtocol {
    fn content_type(self) -> &'static str {
        match self {
            OtlpProtocol::Protobuf => "application/x-protobuf",
            OtlpProtocol::Json => "application/json",
        }
    }
}

/// Why an OTLP/HTTP export did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The endpoint given to [`OtlpExporter::new`] does not parse as a URL or is not http(s),
    /// or no HTTP client could be built for it.
    #[error("`{url}` is not an http(s) URL: {reason}")]
    Endpoint {
        /// The endpoint as given.
        url: String,
        /// What the URL parser or HTTP client said, or the rejected scheme.
        reason: String,
    },
    /// Every one of [`MAX_ATTEMPTS`] attempts ended without a complete HTTP answer (connection
    /// refused, DNS failure, timeout, body cut off).
    #[error("cannot reach the OTLP endpoint {url} after {attempts} attempt(s): {reason}; is a collector (or Jaeger, or Tempo) listening there with OTLP/HTTP enabled?")]
    Unreachable {
        /// The traces URL posted to, `/v1/traces` included.
        url: String,
        /// Attempts made, the first included.
        attempts: u32,
        /// The last attempt's error with its chain of causes.
        reason: String,
    },
    /// The collector answered with a status that is neither success nor retryable (e.g. 400,
    /// 401, 404, 413); not retried.
    #[error("the OTLP endpoint {url} refused the export with HTTP {status}: {body}")]
    Refused {
        /// The traces URL posted to, `/v1/traces` included.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The response body's first 500 bytes, decoded lossily as UTF-8.
        body: String,
    },
    /// The collector still answered a retryable status (429, 502, 503, 504) on the last of
    /// [`MAX_ATTEMPTS`] attempts.
    #[error("the OTLP endpoint {url} still answered HTTP {status} after {attempts} attempts")]
    GaveUp {
        /// The traces URL posted to, `/v1/traces` included.
        url: String,
        /// The last attempt's HTTP status code.
        status: u16,
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// A `Retry-After` asked for a longer wait than the exporter is willing to block for (60 s).
    #[error("the OTLP endpoint {url} asked to retry after {wait:?}, more than the {MAX_RETRY_WAIT:?} we wait")]
    WaitTooLong {
        /// The traces URL posted to, `/v1/traces` included.
        url: String,
        /// The wait asked for.
        wait: Duration,
    },
    /// The collector accepted the request but its `partial_success` says it dropped spans.
    #[error("the OTLP endpoint {url} rejected {rejected} of {sent} span(s): {message}")]
    PartlyRejected {
        /// The traces URL posted to, `/v1/traces` included.
        url: String,
        /// The collector's `rejected_spans` count.
        rejected: i64,
        /// Spans in the request.
        sent: usize,
        /// The collector's `error_message`, possibly empty.
        message: String,
    },
    /// The request could not be serialised or gzipped, or the runtime to send it on could not
    /// be started.
    #[error("cannot encode the export: {0}")]
    Encode(std::io::Error),
}

/// What a successful export did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The URL the spans were posted to.
    pub url: String,
    /// Spans sent.
    pub spans: usize,
    /// The request body's size, as sent (gzipped when asked).
    pub bytes: usize,
    /// Attempts it took, retries included.
    pub attempts: u32,
    /// The collector's `partial_success.error_message` when it accepted everything but warned.
    pub warning: Option<String>,
}

/// Sends export requests to one endpoint.
pub struct OtlpExporter {
    url: String,
    protocol: OtlpProtocol,
    gzip: bool,
    client: reqwest::Client,
    /// How the exporter waits between attempts; tests record the waits instead.
    wait: Box<dyn Fn(Duration) + Send + Sync>,
}

impl OtlpExporter {
    /// `endpoint` is either the full traces URL (ending in `/v1/traces`) or a collector's base
    /// URL such as `http://localhost:4318`, to which `/v1/traces` is appended, as the OTLP
    /// exporter specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn new(endpoint: &str, protocol: OtlpProtocol, gzip: bool) -> Result<Self, ExportError> {
        let mut url = http_url(endpoint)?;
        if !url.path().ends_with("/v1/traces") {
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        Self::posting_to(endpoint, url, protocol, gzip)
    }

    /// Posts to `url` exactly as given, as the OTLP exporter specification uses
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: nothing is appended to its path.
    pub fn to_traces_url(
        url: &str,
        protocol: OtlpProtocol,
        gzip: bool,
    ) -> Result<Self, ExportError> {
        Self::posting_to(url, http_url(url)?, protocol, gzip)
    }

    fn posting_to(
        endpoint: &str,
        url: reqwest::Url,
        protocol: OtlpProtocol,
        gzip: bool,
    ) -> Result<Self, ExportError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ExportError::Endpoint {
                url: endpoint.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(OtlpExporter {
            url: url.to_string(),
            protocol,
            gzip,
            client,
            wait: Box::new(std::thread::sleep),
        })
    }

    /// The URL export requests are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces how the exporter waits between attempts (for tests: record, don't sleep).
    pub fn with_wait(mut self, wait: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.wait = Box::new(wait);
        self
    }

    /// The request body as it goes on the wire, and its content encoding.
    pub(crate) fn encode(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<Vec<u8>, ExportError> {
        let body = match self.protocol {
            OtlpProtocol::Protobuf => request.encode_to_vec(),
            OtlpProtocol::Json => serde_json::to_vec(request)
                .map_err(|e| ExportError::Encode(std::io::Error::other(e)))?,
        };
        if !self.gzip {
            return Ok(body);
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).map_err(ExportError::Encode)?;
        encoder.finish().map_err(ExportError::Encode)
    }

    /// Sends one export request, blocking the calling thread until it is delivered or failed.
    /// Not from inside a tokio runtime: it runs one of its own (see [`OtlpExporter::deliver`]).
    pub fn send(&self, request: &ExportTraceServiceRequest) -> Result<Delivered, ExportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ExportError::Encode)?;
        runtime.block_on(self.deliver(request))
    }

    /// [`OtlpExporter::send`] on the caller's runtime, for a sender that keeps one runtime (and
    /// the client's connections on it) across many requests. The waits between attempts
    /// block the thread, so that runtime should be the sender's own.
    pub async fn deliver(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<Delivered, ExportError> {
        let body = self.encode(request)?;
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let backoff = FIRST_BACKOFF.saturating_mul(1 << (attempt - 1).min(8));
            let result = self.attempt(&body).await;
            let wait = match result {
                Ok(Answer::Accepted(response)) => {
                    return self.accepted(response, spans, body.len(), attempt)
                }
                Ok(Answer::Retry { status, after }) => {
                    if attempt == MAX_ATTEMPTS {
                        return Err(ExportError::GaveUp {
                            url: self.url.clone(),
                            status,
                            attempts: attempt,
                        });
                    }
                    after.unwrap_or(backoff)
                }
                Ok(Answer::Refused { status, body }) => {
                    return Err(ExportError::Refused {
                        url: self.url.clone(),
                        status,
                        body,
                    })
                }
                Err(e) => {
                    if attempt == MAX_ATTEMPTS {
                        return Err(ExportError::Unreachable {
                            url: self.url.clone(),
                            attempts: attempt,
                            reason: error_chain(&e),
                        });
                    }
                    backoff
                }
            };
            if wait > MAX_RETRY_WAIT {
                return Err(ExportError::WaitTooLong {
                    url: self.url.clone(),
                    wait,
                });
            }
            (self.wait)(wait);
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, self.protocol.content_type())
            .body(body.to_vec());
        if self.gzip {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await?;
        Ok(match status {
            200..=299 => Answer::Accepted(decode_response(&content_type, &bytes)),
            429 | 502 | 503 | 504 => Answer::Retry { status, after },
            _ => Answer::Refused {
                status,
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            },
        })
    }

    fn accepted(
        &self,
        response: Result<Partial, String>,
        spans: usize,
        bytes: usize,
        attempts: u32,
    ) -> Result<Delivered, ExportError> {
        let warning = match response {
            Ok(partial) if partial.rejected > 0 => {
                return Err(ExportError::PartlyRejected {
                    url: self.url.clone(),
                    rejected: partial.rejected,
                    sent: spans,
                    message: partial.message,
                })
            }
            Ok(partial) => Some(partial.message).filter(|m| !m.is_empty()),
            Err(reason) => Some(format!(
                "the success response could not be read ({reason}); rejected spans, if any, are unknown"
            )),
        };
        Ok(Delivered {
            url: self.url.clone(),
            spans,
            bytes,
            attempts,
            warning,
        })
    }
}

enum Answer {
    Accepted(Result<Partial, String>),
    Retry {
        status: u16,
        after: Option<Duration>,
    },
    Refused {
        status: u16,
        body: String,
    },
}

/// What a success response said about partial success: `(rejected spans, message)`.
#[derive(Debug, Default)]
struct Partial {
    rejected: i64,
    message: String,
}

/// Reads the response body in whichever encoding the server chose. An empty body means full
/// success; one we cannot read is reported as a warning rather than assumed fine.
fn decode_response(content_type: &str, bytes: &[u8]) -> Result<Partial, String> {
    if bytes.is_empty() {
        return Ok(Partial::default());
    }
    if content_type.starts_with("application/json") {
        // By hand: OTLP/JSON sends `rejectedSpans` (an int64) as a string, and receivers must
        // accept a number too.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let partial = &value["partialSuccess"];
        let rejected = match &partial["rejectedSpans"] {
            serde_json::Value::String(s) => {
                s.parse().map_err(|_| format!("rejectedSpans `{s}`"))?
            }
            serde_json::Value::Number(n) => n.as_i64().unwrap_or(i64::MAX),
            _ => 0,
        };
        let message = partial["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Ok(Partial { rejected, message });
    }
    let response = ExportTraceServiceResponse::decode(bytes).map_err(|e| e.to_string())?;
    Ok(response
        .partial_success
        .map(|p| Partial {
            rejected: p.rejected_spans,
            message: p.error_message,
        })
        .unwrap_or_default())
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(date.timestamp()).ok()?))?;
    // A date in the past means "now".
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// `endpoint` as an http(s) URL.
fn http_url(endpoint: &str) -> Result<reqwest::Url, ExportError> {
    let invalid = |reason: String| ExportError::Endpoint {
        url: endpoint.to_owned(),
        reason,
    };
    let url = reqwest::Url::parse(endpoint).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme `{}`", url.scheme())));
    }
    Ok(url)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_traces_path_once() {
        let url = |e: &str| {
            OtlpExporter::new(e, OtlpProtocol::Protobuf, false)
                .map(|x| x.url.clone())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            url("http://localhost:4318").unwrap(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            url("http://c:4318/otlp/").unwrap(),
            "http://c:4318/otlp/v1/traces"
        );
        assert_eq!(url("https://c/v1/traces").unwrap(), "https://c/v1/traces");
        assert!(url("localhost:4318").unwrap_err().contains("scheme"));
        assert!(url("not a url").is_err());
        let as_given = |e: &str| {
            OtlpExporter::to_traces_url(e, OtlpProtocol::Json, false)
                .map(|x| x.url().to_owned())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            as_given("http://c:4318/custom").unwrap(),
            "http://c:4318/custom"
        );
        assert!(as_given("ftp://c/v1/traces")
            .unwrap_err()
            .contains("scheme"));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
