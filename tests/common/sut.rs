//! The booking service on loopback with a wiremock target, driven over raw HTTP/1.1 so that a
//! test controls every byte of a request: header-name case, repeated fields, whitespace around
//! values, bytes that are not text, oversized heads and bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use trace_harness::booking::{conformance, BookingService};
use trace_harness::trace::{CaptureSubscriber, IdGenerator, TraceContext, TraceStore};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A real-time guard on reading a reply; a correct service answers in milliseconds.
const READ_GUARD: Duration = Duration::from_secs(20);

/// One request the target received from the service.
#[derive(Debug, Clone)]
pub struct Callback {
    pub path: String,
    /// Header fields as received, one entry per field (names are lowercase on the wire).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Callback {
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one `traceparent` the call carried, parsed; panics unless there is exactly one
    /// valid field.
    pub fn traceparent(&self) -> TraceContext {
        let values = self.values("traceparent");
        assert_eq!(values.len(), 1, "one traceparent field: {:?}", self.headers);
        TraceContext::parse_traceparent(values[0])
            .unwrap_or_else(|e| panic!("outbound traceparent {:?}: {e}", values[0]))
    }

    /// The raw `traceparent` value.
    pub fn traceparent_text(&self) -> String {
        self.values("traceparent").join(",")
    }

    /// The `tracestate` fields the call carried, joined as RFC 7230 combines them; `None`
    /// when it carried none.
    pub fn tracestate(&self) -> Option<String> {
        let values = self.values("tracestate");
        (!values.is_empty()).then(|| values.join(","))
    }

    pub fn tracestate_fields(&self) -> usize {
        self.values("tracestate").len()
    }
}

/// What one request to the service produced.
#[derive(Debug)]
pub struct Exchange {
    /// The service's status, or 0 if it closed the connection without answering.
    pub status: u16,
    pub response: String,
    /// What the target received, in arrival order.
    pub callbacks: Vec<Callback>,
    /// The target's base URL, as the request saw it.
    pub target: String,
}

impl Exchange {
    /// The single callback of a one-call `/test`.
    pub fn only(&self) -> &Callback {
        assert_eq!(self.callbacks.len(), 1, "{self:?}");
        &self.callbacks[0]
    }
}

/// `POST /test` with these header fields, asking for `calls` callbacks to the target
/// (`/0`, `/1`, …, each with `arguments` `[]`).
pub fn post_test(headers: &[(&str, &str)], calls: usize) -> Exchange {
    let head: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    exchange("/test", &head, |target| test_body(target, calls))
}

/// The `/test` body for `calls` callbacks to `target`.
pub fn test_body(target: &str, calls: usize) -> Vec<u8> {
    let calls: Vec<_> = (0..calls)
        .map(|i| serde_json::json!({ "url": format!("{target}/{i}"), "arguments": [] }))
        .collect();
    serde_json::to_vec(&calls).unwrap()
}

/// Starts a target and the service (tracing on), sends one raw request to `path` with these
/// header fields and the body `body(target_url)`, and collects what the target received.
pub fn exchange(
    path: &str,
    headers: &[(&str, &[u8])],
    body: impl FnOnce(&str) -> Vec<u8>,
) -> Exchange {
    let store = TraceStore::new();
    let dispatch = tracing::Dispatch::new(CaptureSubscriber::new(store, IdGenerator::seeded(7)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = tempfile::tempdir().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            let target = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200))
                .mount(&target)
                .await;
            // As `serve` configures it: the only service with the `/test` route.
            let config = conformance::serve_config(database.path().join("booking.sqlite3"), 7);
            let service = BookingService::start(config).await.unwrap();
            let host = service.url().trim_start_matches("http://").to_owned();
            let request = raw_request(path, &host, headers, &body(&target.uri()));
            // The service runs on this thread; the blocking client on another.
            let (status, response) = tokio::task::spawn_blocking(move || send_raw(&host, &request))
                .await
                .unwrap();
            let callbacks = target
                .received_requests()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|r| Callback {
                    path: r.url.path().to_owned(),
                    headers: r
                        .headers
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: String::from_utf8_lossy(&r.body).into_owned(),
                })
                .collect();
            service.stop().await;
            Exchange {
                status,
                response,
                callbacks,
                target: target.uri(),
            }
        })
    })
}

fn raw_request(path: &str, host: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    request
}

/// Sends `request` and reads the reply to the end: `(status, reply text)`.
fn send_raw(host: &str, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(READ_GUARD)).unwrap();
    // A server may answer (413, 431) and close before reading everything: that is fine.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, reply)
}
