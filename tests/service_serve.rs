//! `trace-harness serve` as a user runs it: each run draws its own request ids, it serves the
//! W3C test endpoint, and Ctrl-C (SIGINT) or SIGTERM stops it, exiting 0 with its temporary
//! database removed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A real-time guard on the child; a correct `serve` starts and stops in well under a second.
const GUARD: Duration = Duration::from_secs(30);

/// `serve` on an ephemeral port with its temporary files under `tmp`, and its base URL.
fn start(tmp: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start serve: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") && !w.ends_with("/test);"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

/// `POST path` with an empty JSON array: `(status, the reply's x-request-id)`.
fn post(url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(GUARD))
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: 2\r\nconnection: close\r\n\r\n[]"
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let status = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let request_id = reply
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_default()
        .to_owned();
    (status, request_id)
}

/// Sends `signal` (`-INT` is Ctrl-C's) and waits for the child to end; its exit status.
fn stop(mut child: Child, signal: &str) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(killed.success());
    // Waited for on a thread of its own, so the guard needs no polling.
    let (sent, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sent.send(child.wait());
    });
    ended
        .recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("serve did not stop on {signal}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One run of `serve`, stopped by `signal`: the request id of its first answer.
fn one_run(signal: &str) -> String {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (child, url) = start(tmp.path());
    // Cal.com's cron routes want `CRON_API_KEY`, as the `apiKey` parameter or `authorization`.
    assert_eq!(post(&url, "/api/cron/webhookTriggers").0, 401);
    assert_eq!(
        post(
            &url,
            "/api/cron/workflows/scheduleEmailReminders?apiKey=wrong"
        )
        .0,
        401
    );
    let (status, request_id) = post(&url, "/api/cron/webhookTriggers?apiKey=cron_trace_harness");
    assert_eq!(status, 200);
    assert_eq!(request_id.len(), 10, "{request_id:?}");
    // The W3C test endpoint is there, as the conformance suite expects: `[]` is no calls.
    assert_eq!(post(&url, "/test").0, 200);
    let database_dir: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .collect();
    assert_eq!(database_dir.len(), 1, "serve's database directory exists");
    let status = stop(child, signal);
    assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.map(|e| e.path()))
        .collect();
    assert!(left.is_empty(), "{signal}: serve left {left:?} behind");
    request_id
}

#[test]
fn each_serve_run_draws_its_own_request_ids_and_removes_its_database_on_ctrl_c() {
    let first = one_run("-INT");
    let second = one_run("-INT");
    assert_ne!(
        first, second,
        "two runs of serve answered the same x-request-id"
    );
}

#[test]
fn sigterm_stops_serve_with_exit_status_0_and_its_temporary_database_removed() {
    one_run("-TERM");
}
