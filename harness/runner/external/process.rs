//! A service process the harness started: its environment, its readiness, what it wrote, and
//! how it ends. One per replay and per restart, so replays never share a process.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::spec::Readiness;

/// How much of a service's standard error a failure report shows.
const STDERR_TAIL_LINES: usize = 20;
/// How long a stopped service may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a request that got no answer waits for the service's exit, to report that instead.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long an exited process's pipes may stay open (held by a process it started).
const PIPE_DRAIN: Duration = Duration::from_secs(1);

/// When an exit happened: before the service was ready (it cannot start: bad input)…
pub const BEFORE_READY: &str = "before it was ready";
/// …or while the replay needed it (the replay fails).
pub const DURING_REPLAY: &str = "during the replay";

/// Why a service process did not start, or ended while it was needed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be run at all.
    #[error("cannot run the service `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It kept running but never showed it was ready.
    #[error("the service `{command}` was not ready after {waited:?} ({ready}){}", tail(.stderr))]
    NotReady {
        /// The command line.
        command: String,
        /// How long the harness waited.
        waited: Duration,
        /// What it waited for.
        ready: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// It exited: before it was ready, or in the middle of a replay.
    #[error("the service `{command}` exited {when} with {status}{}", tail(.stderr))]
    Exited {
        /// The command line.
        command: String,
        /// `before it was ready` or `during the replay`.
        when: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// The tail of its standard error.
        stderr: String,
    },
}

fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        "; it wrote nothing to standard error".to_owned()
    } else {
        format!("; the end of its standard error:\n{stderr}")
    }
}

/// What the process wrote, kept as it arrives.
#[derive(Default)]
struct Output {
    /// Every line of standard output (seed-format log lines, for a log-only service).
    stdout: Vec<String>,
    /// The last [`STDERR_TAIL_LINES`] lines of standard error.
    stderr: VecDeque<String>,
}

/// A running service process.
pub(crate) struct ServiceProcess {
    child: Child,
    command: String,
    output: Arc<Mutex<Output>>,
    /// Counts stdout lines as they arrive, for readiness.
    lines: watch::Receiver<usize>,
    /// The readers of its pipes, which end when the pipes close.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl ServiceProcess {
    /// Starts `argv` in `dir` with `env` on top of the harness's environment, and waits until
    /// it is ready on `addr` (at most `timeout`).
    pub(crate) async fn start(
        argv: &[String],
        dir: &std::path::Path,
        env: &[(String, String)],
        ready: &Readiness,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<ServiceProcess, ProcessError> {
        let command = argv.join(" ");
        let (program, args) = argv.split_first().unwrap_or((&command, &[]));
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                command: command.clone(),
                source,
            })?;
        let output = Arc::new(Mutex::new(Output::default()));
        let (counted, lines) = watch::channel(0);
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            readers.push(tokio::spawn(read_lines(stdout, move |line| {
                let mut output = lock(&output);
                output.stdout.push(line);
                counted.send_replace(output.stdout.len());
            })));
        }
        if let Some(stderr) = child.stderr.take() {
            let output = output.clone();
            readers.push(tokio::spawn(read_lines(stderr, move |line| {
                let mut output = lock(&output);
                if output.stderr.len() == STDERR_TAIL_LINES {
                    output.stderr.pop_front();
                }
                output.stderr.push_back(line);
            })));
        }
        let mut process = ServiceProcess {
            child,
            command,
            output,
            lines,
            readers,
        };
        let waited = tokio::time::timeout(timeout, process.ready(ready, addr)).await;
        match waited {
            Ok(Ok(())) => Ok(process),
            Ok(Err(status)) => {
                // It may have shown readiness just before exiting: then it was ready, and the
                // replay finds it gone.
                process.drain().await;
                if process.showed(ready) {
                    Ok(process)
                } else {
                    Err(process.exited_error(status, BEFORE_READY).await)
                }
            }
            Err(_) => Err(ProcessError::NotReady {
                command: process.command.clone(),
                waited: timeout,
                ready: match ready {
                    Readiness::Stdout(text) => format!("a line containing `{text}` on stdout"),
                    Readiness::Port => format!("a connection to {addr}"),
                },
                stderr: process.stderr_tail(),
            }),
        }
    }

    /// Its process id, until it has been reaped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until standard output has written no line for `quiet`, or has closed; `false`
    /// if it was still writing at `deadline`.
    pub(crate) async fn stdout_quiet(
        &self,
        quiet: Duration,
        deadline: tokio::time::Instant,
    ) -> bool {
        // As for spans: no quiet period is no wait, not one for the timer's next tick.
        if quiet.is_zero() {
            return true;
        }
        let mut lines = self.lines.clone();
        loop {
            lines.borrow_and_update();
            match tokio::time::timeout(quiet, lines.changed()).await {
                Err(_) | Ok(Err(_)) => return true,
                Ok(Ok(())) if tokio::time::Instant::now() >= deadline => return false,
                Ok(Ok(())) => {}
            }
        }
    }

    /// Whether its standard output so far shows `ready` (never, for a port).
    fn showed(&self, ready: &Readiness) -> bool {
        match ready {
            Readiness::Stdout(text) => lock(&self.output)
                .stdout
                .iter()
                .any(|l| l.contains(text.as_str())),
            Readiness::Port => false,
        }
    }

    /// Until the process is ready; `Err` with its status if it exits first.
    async fn ready(&mut self, ready: &Readiness, addr: SocketAddr) -> Result<(), ExitStatus> {
        let shown = async {
            match ready {
                Readiness::Stdout(text) => {
                    let mut lines = self.lines.clone();
                    loop {
                        if lock(&self.output)
                            .stdout
                            .iter()
                            .any(|l| l.contains(text.as_str()))
                        {
                            return;
                        }
                        if lines.changed().await.is_err() {
                            // Its stdout closed without the line: wait for the exit instead.
                            std::future::pending::<()>().await;
                        }
                    }
                }
                Readiness::Port => {
                    // A foreign process gives no signal but its port: probe it, backing off.
                    let mut backoff = Duration::from_millis(2);
                    while tokio::net::TcpStream::connect(addr).await.is_err() {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(50));
                    }
                }
            }
        };
        tokio::select! {
            biased;
            () = shown => Ok(()),
            status = self.child.wait() => Err(status.unwrap_or_else(|_| failed_status())),
        }
    }

    /// The error for a process that exited with `status`, its standard error read to the end.
    async fn exited_error(&mut self, status: ExitStatus, when: &'static str) -> ProcessError {
        self.drain().await;
        ProcessError::Exited {
            command: self.command.clone(),
            when,
            status,
            stderr: self.stderr_tail(),
        }
    }

    /// An error if the process has exited, or exits within `grace` (a request that got no
    /// answer may be its last moment: wait that long for the exit before blaming the network).
    pub(crate) async fn check_alive(&mut self, grace: Duration) -> Result<(), ProcessError> {
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Err(self.exited_error(status, DURING_REPLAY).await),
            _ => Ok(()),
        }
    }

    /// The last lines of its standard error.
    pub(crate) fn stderr_tail(&self) -> String {
        let output = lock(&self.output);
        output.stderr.iter().map(|l| format!("  {l}\n")).collect()
    }

    /// Every line it wrote to standard output so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        lock(&self.output).stdout.clone()
    }

    /// Asks it to stop (SIGTERM), kills it after a grace period, and waits for it.
    pub(crate) async fn stop(mut self) -> Vec<String> {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.drain().await;
        self.stdout_lines()
    }

    /// Lets the pipe readers take what the exited process left in its pipes. Bounded: a
    /// process it started itself may still hold them open.
    async fn drain(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(PIPE_DRAIN, reader).await;
        }
    }
}

/// Feeds every line `from` yields to `each`, until it closes.
async fn read_lines(from: impl AsyncRead + Unpin, mut each: impl FnMut(String)) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        each(line);
    }
}

fn lock(output: &Mutex<Output>) -> std::sync::MutexGuard<'_, Output> {
    output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A status for a wait that itself failed.
fn failed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(1 << 8)
}

/// Ports handed to services: below Linux's ephemeral range (32768–60999 by default), where
/// every `bind(…:0)` of the mocks and receivers takes its port. A port learnt from a bind to
/// port 0 and released could be handed to the next such bind (a mock's, in a replay beside
/// this one) before the service binds it; a port from here cannot.
const SERVICE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port to try, shared by every replay of this process, so none is handed out twice.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A free loopback port for a service to listen on: the next of [`SERVICE_PORTS`] that can be
/// bound now, starting from a place set by the process id so that two harness processes (test
/// binaries side by side) start far apart.
pub(crate) fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::Ordering;
    let span = u32::from(SERVICE_PORTS.end - SERVICE_PORTS.start);
    let _ = NEXT_PORT.compare_exchange(
        0,
        std::process::id().wrapping_mul(7_919) % span + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span;
        let port = SERVICE_PORTS.start + n as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "no free loopback port in {}..{}",
            SERVICE_PORTS.start, SERVICE_PORTS.end
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_are_outside_the_ephemeral_range_and_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        assert!(ports.iter().all(|p| SERVICE_PORTS.contains(p)), "{ports:?}");
        let distinct: std::collections::HashSet<&u16> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        // Each was free when handed out, and still is: nothing in this process took it since.
        assert!(std::net::TcpListener::bind(("127.0.0.1", ports[0])).is_ok());
        // A bind to port 0 (how mocks and receivers listen) never lands in the range.
        let ephemeral = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        assert!(!SERVICE_PORTS.contains(&ephemeral.local_addr().unwrap().port()));
    }
}
