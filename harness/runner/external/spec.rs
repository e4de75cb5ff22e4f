//! `service.toml`: how the harness starts (or reaches) a service under test, how it knows the
//! service is ready, and how the service reports its telemetry. Read once, before any replay;
//! errors point at the file, line and column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::clock::parse_duration;
use crate::mocks::MockKind;
use crate::scenario::{locate, Located};

/// The variable the harness sets to its own executable, for `command = ["${TRACE_HARNESS_BIN}",
/// "serve", …]`.
pub const HARNESS_BIN_VAR: &str = "TRACE_HARNESS_BIN";

/// A service under test, as `service.toml` declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The file it was read from.
    pub path: PathBuf,
    /// The program and its arguments, `${VAR}` expanded when started.
    pub argv: Vec<String>,
    /// The working directory as written (`${VAR}` expanded when started), relative to
    /// [`ServiceSpec::base`] unless absolute.
    pub dir: String,
    /// The directory of the `service.toml`.
    pub base: PathBuf,
    /// Extra environment, on top of the harness's own; never one of the contract's.
    pub env: BTreeMap<String, String>,
    /// How readiness shows.
    pub ready: Readiness,
    /// How long to wait for it to be ready, from its start.
    pub ready_timeout: Duration,
    /// How it reports its spans.
    pub telemetry: Telemetry,
    /// Whether it stamps spans with the harness's virtual time or its own clock.
    pub clock: ServiceClock,
    /// `OTEL_SERVICE_NAME`: the resource whose spans are the service's.
    pub service_name: String,
    /// How long no new span may arrive before a step counts as settled, once every rule holds.
    pub quiet: Duration,
    /// The longest a step may take to settle; past it the replay fails, naming what is missing.
    pub deadline: Duration,
    /// With `url`: a service already running, which the harness reaches instead of starting
    /// one (then `argv` is empty).
    pub running: Option<RunningService>,
}

/// A service started by hand (`url = …`), to debug it while the harness replays against it.
/// The harness cannot tell it anything, so everything it must reach listens at fixed
/// addresses it was started with; `run --print-env` prints that environment.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningService {
    /// Its base URL, `http://host:port`.
    pub url: String,
    /// Where the harness's OTLP receiver listens, for the service's exporter.
    pub receiver: SocketAddr,
    /// Where each kind's mocks listen, in the order the scenario's mocks of that kind (by
    /// name) take them.
    pub mocks: BTreeMap<MockKindKey, Vec<SocketAddr>>,
}

/// A mock kind as a `[mocks]` key.
pub type MockKindKey = String;

impl RunningService {
    /// The address of each mock in `world` (name order, with their kinds): the next `[mocks]`
    /// address of its kind, `None` when the file gives no more for that kind.
    pub fn mock_addresses(&self, world: &[MockKind]) -> Vec<Option<SocketAddr>> {
        let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
        world
            .iter()
            .map(|kind| {
                let n = taken.entry(kind.name()).or_default();
                let addr = self.mocks.get(kind.name())?.get(*n).copied();
                *n += 1;
                addr
            })
            .collect()
    }
}

/// How the harness knows a started process is ready.
#[derive(Clone, Debug, PartialEq)]
pub enum Readiness {
    /// A line on its standard output contains this text (no waiting on a timer).
    Stdout(String),
    /// Its port accepts a TCP connection (probed with a short backoff).
    Port,
}

/// Where the service's telemetry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Telemetry {
    /// Spans over OTLP/HTTP, in this encoding.
    Otlp(Protocol),
    /// Seed-format log lines on standard output only (`OTEL_TRACES_EXPORTER=none`).
    Logs,
}

/// The OTLP/HTTP encoding the service is asked to use (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`.
    Protobuf,
    /// `http/json`.
    Json,
}

impl Protocol {
    /// The value of `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Protobuf => "http/protobuf",
            Protocol::Json => "http/json",
        }
    }
}

/// Which clock the service's timestamps are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceClock {
    /// It honours `x-virtual-now-us` and the mocks' declared latencies.
    Virtual,
    /// Its own: durations are real, and judged as such.
    Own,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    command: Option<toml::Spanned<Vec<String>>>,
    dir: Option<String>,
    #[serde(default)]
    env: BTreeMap<toml::Spanned<String>, String>,
    url: Option<toml::Spanned<String>>,
    receiver: Option<toml::Spanned<String>>,
    mocks: Option<toml::Spanned<BTreeMap<String, OneOrMany>>>,
    ready: Option<RawReady>,
    telemetry: Option<toml::Spanned<String>>,
    protocol: Option<toml::Spanned<String>>,
    clock: Option<toml::Spanned<String>>,
    service_name: Option<String>,
    quiet: Option<toml::Spanned<String>>,
    deadline: Option<toml::Spanned<String>>,
}

/// `"IP:port"` or `["IP:port", …]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    stdout: Option<String>,
    #[serde(default)]
    port: bool,
    timeout: Option<toml::Spanned<String>>,
}

/// Why a `service.toml` is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// It could not be read.
    #[error("{}: cannot read the service file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It breaks the format, at a place.
    #[error("{0}")]
    Invalid(Box<Located>),
}

impl ServiceSpec {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<ServiceSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        ServiceSpec::parse(path, &text)
    }

    /// Checks `text`, read from `path` (relative `dir`s are taken from its directory).
    pub fn parse(path: &Path, text: &str) -> Result<ServiceSpec, SpecError> {
        let at = |offset: usize, message: String| {
            SpecError::Invalid(Box::new(locate(path, text, offset, message)))
        };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(
                offset,
                crate::scenario::in_toml_terms(e.message().trim_end()),
            )
        })?;
        let duration = |value: &Option<toml::Spanned<String>>, default: Duration| match value {
            None => Ok(default),
            Some(v) => parse_duration(v.get_ref()).map_err(|e| at(v.span().start, e.to_string())),
        };
        let ready = raw.ready.as_ref();
        let ready_timeout = duration(
            &ready.and_then(|r| r.timeout.clone()),
            Duration::from_secs(30),
        )?;
        let running = match &raw.url {
            Some(url) => Some(running_service(&raw, url, text, &at)?),
            None => {
                for (key, present) in [
                    ("receiver", raw.receiver.as_ref().map(|r| r.span().start)),
                    ("mocks", raw.mocks.as_ref().map(|m| m.span().start)),
                ] {
                    if let Some(offset) = present {
                        return Err(at(
                            text[..offset].rfind(key).unwrap_or(offset),
                            format!("`{key}` is for a service already running (`url = …`); a service the harness starts gets its addresses per replay"),
                        ));
                    }
                }
                None
            }
        };
        if running.is_some() {
            return Ok(ServiceSpec {
                path: path.to_owned(),
                argv: Vec::new(),
                dir: ".".to_owned(),
                base: path.parent().unwrap_or(Path::new(".")).to_owned(),
                env: BTreeMap::new(),
                ready: Readiness::Port,
                ready_timeout,
                telemetry: match raw.protocol.as_ref().map(|p| p.get_ref().as_str()) {
                    Some("http/json") => Telemetry::Otlp(Protocol::Json),
                    _ => Telemetry::Otlp(Protocol::Protobuf),
                },
                clock: clock_of(&raw.clock, &at)?,
                service_name: raw
                    .service_name
                    .clone()
                    .unwrap_or_else(|| crate::contract::DEFAULT_SERVICE_NAME.to_owned()),
                quiet: duration(&raw.quiet, Duration::from_millis(20))?,
                deadline: duration(&raw.deadline, Duration::from_secs(10))?,
                running,
            });
        }
        let Some(command) = raw.command else {
            return Err(at(
                0,
                "a service file needs `command = [\"program\", …]`: how the harness starts it"
                    .to_owned(),
            ));
        };
        if command.get_ref().is_empty() {
            return Err(at(
                command.span().start,
                "`command` names no program: give [\"program\", \"arg\", …]".to_owned(),
            ));
        }
        let ready = match ready {
            Some(RawReady {
                stdout: Some(_),
                port: true,
                ..
            }) => {
                return Err(at(
                    text.find("ready").unwrap_or(0),
                    "`ready` takes `stdout = \"…\"` or `port = true`, not both".to_owned(),
                ))
            }
            Some(RawReady {
                stdout: Some(text), ..
            }) => Readiness::Stdout(text.clone()),
            _ => Readiness::Port,
        };
        let mut env = BTreeMap::new();
        for (name, value) in raw.env {
            if crate::contract::env::ALL.contains(&name.get_ref().as_str()) {
                return Err(at(
                    name.span().start,
                    format!(
                        "`{}` is the contract's to set (the harness gives every replay its own); \
                         leave it out of [env]",
                        name.get_ref()
                    ),
                ));
            }
            env.insert(name.into_inner(), value);
        }
        let protocol = match raw.protocol {
            None => Protocol::Protobuf,
            Some(p) => match p.get_ref().as_str() {
                "http/protobuf" => Protocol::Protobuf,
                "http/json" => Protocol::Json,
                other => {
                    return Err(at(
                        p.span().start,
                        format!("`protocol` is `http/protobuf` or `http/json`, not `{other}`"),
                    ))
                }
            },
        };
        let telemetry = match raw.telemetry {
            None => Telemetry::Otlp(protocol),
            Some(t) => match t.get_ref().as_str() {
                "otlp" => Telemetry::Otlp(protocol),
                "logs" => Telemetry::Logs,
                other => {
                    return Err(at(
                        t.span().start,
                        format!("`telemetry` is `otlp` or `logs`, not `{other}`"),
                    ))
                }
            },
        };
        let clock = clock_of(&raw.clock, &at)?;
        Ok(ServiceSpec {
            path: path.to_owned(),
            argv: command.into_inner(),
            dir: raw.dir.unwrap_or_else(|| ".".to_owned()),
            base: path.parent().unwrap_or(Path::new(".")).to_owned(),
            env,
            ready,
            ready_timeout,
            telemetry,
            clock,
            service_name: raw
                .service_name
                .unwrap_or_else(|| crate::contract::DEFAULT_SERVICE_NAME.to_owned()),
            quiet: duration(&raw.quiet, Duration::from_millis(20))?,
            deadline: duration(&raw.deadline, Duration::from_secs(10))?,
            running: None,
        })
    }
}

/// `clock = "virtual" | "own"`.
fn clock_of(
    clock: &Option<toml::Spanned<String>>,
    at: &impl Fn(usize, String) -> SpecError,
) -> Result<ServiceClock, SpecError> {
    match clock {
        None => Ok(ServiceClock::Virtual),
        Some(c) => match c.get_ref().as_str() {
            "virtual" => Ok(ServiceClock::Virtual),
            "own" => Ok(ServiceClock::Own),
            other => Err(at(
                c.span().start,
                format!("`clock` is `virtual` or `own`, not `{other}`"),
            )),
        },
    }
}

/// `url`, `receiver` and `[mocks]` of a service already running; none of what only a started
/// process has (`command`, `dir`, `[env]`, `ready`, log-only telemetry).
fn running_service(
    raw: &RawSpec,
    url: &toml::Spanned<String>,
    text: &str,
    at: &impl Fn(usize, String) -> SpecError,
) -> Result<RunningService, SpecError> {
    let started_only = [
        ("command", raw.command.as_ref().map(|c| c.span().start)),
        (
            "dir",
            raw.dir.as_ref().map(|_| text.find("dir").unwrap_or(0)),
        ),
        (
            "env",
            (!raw.env.is_empty()).then(|| text.find("[env]").unwrap_or(0)),
        ),
        (
            "ready",
            raw.ready.as_ref().map(|_| text.find("ready").unwrap_or(0)),
        ),
    ];
    for (key, present) in started_only {
        if let Some(offset) = present {
            return Err(at(
                offset,
                format!("`{key}` is for a service the harness starts; with `url` the service is already running"),
            ));
        }
    }
    if let Some(t) = raw.telemetry.as_ref().filter(|t| t.get_ref() != "otlp") {
        return Err(at(
            t.span().start,
            "a service already running is judged by its spans (`telemetry = \"otlp\"`): the harness cannot read its standard output".to_owned(),
        ));
    }
    let parsed = reqwest::Url::parse(url.get_ref()).ok().filter(|u| {
        u.scheme() == "http" && u.host_str().is_some() && u.port_or_known_default().is_some()
    });
    if parsed.is_none() {
        return Err(at(
            url.span().start,
            format!(
                "`url` is the service's base URL, `http://host:port`, not `{}`",
                url.get_ref()
            ),
        ));
    }
    let address = |value: &str, offset: usize| {
        value.parse::<SocketAddr>().map_err(|_| {
            at(
                offset,
                format!("`{value}` is not an address `IP:port` (for example `127.0.0.1:4318`)"),
            )
        })
    };
    let Some(receiver) = &raw.receiver else {
        return Err(at(
            url.span().start,
            "with `url`, `receiver = \"IP:port\"` says where the harness's OTLP receiver listens: the address the running service exports to".to_owned(),
        ));
    };
    let receiver = address(receiver.get_ref(), receiver.span().start)?;
    let mut mocks = BTreeMap::new();
    if let Some(table) = &raw.mocks {
        let offset = table.span().start;
        for (kind, addrs) in table.get_ref() {
            if !MockKind::ALL.iter().any(|k| k.name() == kind) {
                return Err(at(
                    offset,
                    format!(
                        "[mocks] has `{kind}`, which is no mock kind; the kinds are {}",
                        MockKind::ALL
                            .iter()
                            .map(|k| format!("`{}`", k.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let list = match addrs {
                OneOrMany::One(one) => vec![one.clone()],
                OneOrMany::Many(many) => many.clone(),
            };
            let list = list
                .iter()
                .map(|a| address(a, offset))
                .collect::<Result<Vec<_>, _>>()?;
            mocks.insert(kind.clone(), list);
        }
    }
    Ok(RunningService {
        url: url.get_ref().trim_end_matches('/').to_owned(),
        receiver,
        mocks,
    })
}

/// `text` with every `${NAME}` replaced by that variable's value from `lookup`; an unknown
/// name is an error naming it.
pub(crate) fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}` opens `${{` without closing it"))?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| format!("`${{{name}}}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceSpec, String> {
        ServiceSpec::parse(Path::new("dir/service.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_command_service_reads_with_its_defaults() {
        let spec = parse("command = [\"node\", \"server.js\"]\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.argv, ["node", "server.js"]);
        assert_eq!(
            (spec.dir.as_str(), spec.base.as_path()),
            (".", Path::new("dir"))
        );
        assert!(spec.env.is_empty());
        assert_eq!(spec.ready, Readiness::Port);
        assert_eq!(spec.telemetry, Telemetry::Otlp(Protocol::Protobuf));
        assert_eq!(spec.clock, ServiceClock::Virtual);
        assert_eq!(spec.ready_timeout, Duration::from_secs(30));
        assert_eq!(spec.service_name, crate::contract::DEFAULT_SERVICE_NAME);
    }

    #[test]
    fn every_key_is_read() {
        let spec = parse(
            "command = [\"x\"]\ndir = \"svc\"\nready = { stdout = \"listening\", timeout = \"5s\" }\n\
             telemetry = \"otlp\"\nprotocol = \"http/json\"\nclock = \"own\"\nservice_name = \"booking\"\n\
             quiet = \"5ms\"\ndeadline = \"2s\"\n[env]\nNODE_ENV = \"test\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.dir, "svc");
        assert_eq!(spec.env.get("NODE_ENV").map(String::as_str), Some("test"));
        assert_eq!(spec.ready, Readiness::Stdout("listening".into()));
        assert_eq!(spec.telemetry, Telemetry::Otlp(Protocol::Json));
        assert_eq!(spec.clock, ServiceClock::Own);
        assert_eq!(spec.service_name, "booking");
        assert_eq!(
            (spec.quiet, spec.deadline),
            (Duration::from_millis(5), Duration::from_secs(2))
        );
        assert_eq!(spec.ready_timeout, Duration::from_secs(5));
        assert_eq!(
            parse("command = [\"x\"]\ntelemetry = \"logs\"\n").map(|s| s.telemetry),
            Ok(Telemetry::Logs)
        );
    }

    #[test]
    fn a_running_service_reads_with_its_fixed_addresses() {
        let spec = parse(
            "url = \"http://127.0.0.1:3000/\"\nreceiver = \"127.0.0.1:4318\"\n\
             [mocks]\ngoogle_calendar = \"127.0.0.1:4401\"\n\
             webhook_subscriber = [\"127.0.0.1:4402\", \"127.0.0.1:4403\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(spec.argv.is_empty());
        let running = spec.running.unwrap_or_else(|| panic!("no url"));
        assert_eq!(running.url, "http://127.0.0.1:3000");
        assert_eq!(running.receiver.to_string(), "127.0.0.1:4318");
        let addrs = |kind: &str| -> Vec<String> {
            running.mocks[kind]
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(addrs("google_calendar"), ["127.0.0.1:4401"]);
        assert_eq!(
            addrs("webhook_subscriber"),
            ["127.0.0.1:4402", "127.0.0.1:4403"]
        );
    }

    #[test]
    fn bad_files_say_where_and_what_was_expected() {
        let cases = [
            ("", "dir/service.toml:1:1: a service file needs `command"),
            (
                "command = []\n",
                "dir/service.toml:1:11: `command` names no program",
            ),
            (
                "command = [\"x\"]\ntelemetry = \"spans\"\n",
                "2:13: `telemetry` is `otlp` or `logs`, not `spans`",
            ),
            (
                "command = [\"x\"]\nprotocol = \"grpc\"\n",
                "2:12: `protocol` is `http/protobuf` or `http/json`",
            ),
            (
                "command = [\"x\"]\nclock = \"wall\"\n",
                "2:9: `clock` is `virtual` or `own`",
            ),
            ("command = [\"x\"]\nquiet = \"soon\"\n", "2:9:"),
            (
                "command = [\"x\"]\ncomand = 1\n",
                "2:1: unknown field `comand`",
            ),
            (
                "url = \"http://127.0.0.1:3000\"\n",
                "1:7: with `url`, `receiver = \"IP:port\"` says where",
            ),
            (
                "url = \"ftp://x\"\nreceiver = \"127.0.0.1:4318\"\n",
                "1:7: `url` is the service's base URL, `http://host:port`",
            ),
            (
                "url = \"http://127.0.0.1:3000\"\nreceiver = \"localhost\"\n",
                "2:12: `localhost` is not an address `IP:port`",
            ),
            (
                "url = \"http://127.0.0.1:3000\"\nreceiver = \"127.0.0.1:4318\"\ncommand = [\"x\"]\n",
                "3:11: `command` is for a service the harness starts",
            ),
            (
                "url = \"http://127.0.0.1:3000\"\nreceiver = \"127.0.0.1:4318\"\ntelemetry = \"logs\"\n",
                "3:13: a service already running is judged by its spans",
            ),
            (
                "url = \"http://127.0.0.1:3000\"\nreceiver = \"127.0.0.1:4318\"\n[mocks]\ngoogle = \"127.0.0.1:1\"\n",
                "[mocks] has `google`, which is no mock kind",
            ),
            (
                "command = [\"x\"]\nreceiver = \"127.0.0.1:4318\"\n",
                "2:1: `receiver` is for a service already running",
            ),
            (
                "command = [\"x\"]\nready = { stdout = \"a\", port = true }\n",
                "2:1: `ready` takes",
            ),
            (
                "command = [\"x\"]\n[env]\nPORT = \"80\"\n",
                "3:1: `PORT` is the contract's to set",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} was accepted"));
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn variables_expand_and_an_unset_one_is_named() {
        let lookup = |name: &str| (name == "BIN").then(|| "/usr/bin/th".to_owned());
        assert_eq!(expand("${BIN}", lookup).as_deref(), Ok("/usr/bin/th"));
        assert_eq!(
            expand("a${BIN}b${BIN}", lookup).as_deref(),
            Ok("a/usr/bin/thb/usr/bin/th")
        );
        assert_eq!(expand("plain", lookup).as_deref(), Ok("plain"));
        assert_eq!(
            expand("${NOPE}", lookup),
            Err("`${NOPE}` is not set".to_owned())
        );
        assert!(expand("${BIN", lookup).is_err());
    }
}
