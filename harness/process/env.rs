//! The contract environment ([`contract::env`](crate::contract::env)) read into what the
//! service process runs with: the port, the booking service's configuration (exactly what a
//! replay's in-process service of the same scenario gets), the id seed, and where spans and
//! log lines go. Every bad value is an error naming its variable and what was expected.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::booking::{PlantedBugs, ServiceConfig};
use crate::contract::{env, EventType, PlantedBug};
use crate::report::otlp::BOOKING_SERVICE;
use crate::report::otlp_http::OtlpProtocol;

/// What a service process reads from its environment.
#[derive(Clone, Debug)]
pub struct ContractEnv {
    /// `PORT`: where to listen on loopback; 0 for any free port.
    pub port: u16,
    /// The booking service's configuration: the peers, secrets, event types, store, seed,
    /// generation and planted bugs; never the W3C test endpoint, which no replay mounts.
    pub service: ServiceConfig,
    /// `TRACE_HARNESS_SEED`: trace and span ids drawn as a replay with this seed draws them;
    /// `None`: random ids (and a random seed for request ids and booking uids).
    pub seed: Option<u64>,
    /// Where spans and log lines go.
    pub telemetry: Telemetry,
}

/// What the service does with its spans and log lines, from the `OTEL_*` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Telemetry {
    /// `OTEL_SDK_DISABLED=true`: tracing off, as a `--no-tracing` replay runs: no spans, no
    /// `traceparent` sent; log lines, `[Request ID: …]` only, go to the log writer.
    Disabled,
    /// `OTEL_TRACES_EXPORTER=none`: traced (contexts propagate) but nothing exported; every log
    /// line goes to the log writer in the seed's format, as Cal.com's own tracing writes it.
    LogsOnly,
    /// Every span is exported over OTLP/HTTP as it closes, with its log lines as events.
    Otlp(OtlpTarget),
}

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpTarget {
    /// The traces URL, `/v1/traces` included: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given,
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended.
    pub url: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, `http/protobuf` unless `http/json`.
    pub protocol: OtlpProtocol,
    /// `OTEL_SERVICE_NAME`, `cal.com` unless set: the resource's `service.name`.
    pub service_name: String,
}

/// Why the environment does not configure a service.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// A variable the contract requires is unset or empty.
    #[error("{var} is not set: it is {what}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it should hold.
        what: &'static str,
    },
    /// A variable's value is not text.
    #[error("{var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: &'static str,
    },
    /// A variable's value does not parse as what it holds.
    #[error("{var} is not {expected}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What it should hold.
        expected: &'static str,
        /// What was wrong, the value or the parser's message included.
        reason: String,
    },
    /// `TRACE_HARNESS_BUGS` names a bug the service does not know.
    #[error(
        "{} names `{name}`, which is not a planted bug; the planted bugs are {}",
        env::BUGS,
        bug_names()
    )]
    UnknownBug {
        /// The unknown name.
        name: String,
    },
    /// A valid OpenTelemetry setting this service does not implement.
    #[error("{var}={value} is not supported: this service takes {supported}")]
    Unsupported {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it does take.
        supported: &'static str,
    },
    /// Spans are to be exported but no endpoint is given.
    #[error(
        "spans are exported ({exporter} is unset or `otlp`) but neither {traces} nor {base} is set; \
         set one, or {exporter}=none to write log lines to standard output instead",
        exporter = env::OTEL_TRACES_EXPORTER,
        traces = env::OTEL_TRACES_ENDPOINT,
        base = env::OTEL_ENDPOINT
    )]
    NoEndpoint,
}

fn bug_names() -> String {
    let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
    names.join(", ")
}

impl ContractEnv {
    /// Reads the contract variables through `lookup` (`std::env::var_os` for the process's
    /// own environment). An empty variable counts as unset, as OpenTelemetry's specification
    /// has it for its own; `PORT` and `DATABASE_PATH` are required, the rest have defaults.
    pub fn read(lookup: impl Fn(&str) -> Option<OsString>) -> Result<ContractEnv, EnvError> {
        let vars = Vars(lookup);
        let port = vars.required(env::PORT, "the port to listen on, on loopback")?;
        let port = parse(env::PORT, "a port number (0 to 65535)", &port)?;
        let database = vars.required(
            env::DATABASE_PATH,
            "the database file, kept across the replay's restarts",
        )?;
        let seed = vars.number(env::SEED)?;
        let mut service =
            ServiceConfig::new(PathBuf::from(database), seed.unwrap_or_else(rand::random));
        service.google_calendar_url = vars.url(env::GOOGLE_CALENDAR_URL)?;
        service.stripe_url = vars.url(env::STRIPE_URL)?;
        service.email_url = vars.url(env::EMAIL_URL)?;
        service.webhook_subscribers = vars.subscribers()?;
        if let Some(secret) = vars.get(env::WEBHOOK_SECRET)? {
            service.webhook_secret = secret;
        }
        if let Some(key) = vars.get(env::CRON_API_KEY)? {
            service.cron_api_key = key;
        }
        if let Some(secret) = vars.get(env::STRIPE_WEBHOOK_SECRET)? {
            service.stripe_webhook_secret = secret;
        }
        if let Some(text) = vars.get(env::EVENT_TYPES)? {
            service.event_types =
                serde_json::from_str::<Vec<EventType>>(&text).map_err(|e| EnvError::Invalid {
                    var: env::EVENT_TYPES,
                    expected:
                        "a JSON array of event types ({id, price?, currency?, seats?, reminders?})",
                    reason: e.to_string(),
                })?;
        }
        service.bugs = vars.bugs()?;
        service.generation = vars.number(env::GENERATION)?.unwrap_or(0);
        service.store_latency =
            Duration::from_micros(vars.number(env::STORE_LATENCY_US)?.unwrap_or(0));
        Ok(ContractEnv {
            port,
            service,
            seed,
            telemetry: vars.telemetry()?,
        })
    }
}

/// The environment, read through a lookup function.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<OsString>> Vars<F> {
    /// The variable's text; `None` when unset or empty.
    fn get(&self, var: &'static str) -> Result<Option<String>, EnvError> {
        match (self.0)(var) {
            None => Ok(None),
            Some(value) => match value.into_string() {
                Ok(text) if text.is_empty() => Ok(None),
                Ok(text) => Ok(Some(text)),
                Err(_) => Err(EnvError::NotUnicode { var }),
            },
        }
    }

    fn required(&self, var: &'static str, what: &'static str) -> Result<String, EnvError> {
        self.get(var)?.ok_or(EnvError::Missing { var, what })
    }

    fn number(&self, var: &'static str) -> Result<Option<u64>, EnvError> {
        self.get(var)?
            .map(|text| parse(var, "a whole number (0 to 2^64 - 1)", &text))
            .transpose()
    }

    /// A peer's base URL; empty when unset, as a replay's service has no such peer then.
    fn url(&self, var: &'static str) -> Result<String, EnvError> {
        let Some(text) = self.get(var)? else {
            return Ok(String::new());
        };
        check_url(var, "an http(s) base URL", &text)?;
        Ok(text)
    }

    fn subscribers(&self) -> Result<Vec<String>, EnvError> {
        let var = env::WEBHOOK_SUBSCRIBERS;
        let expected = "a JSON array of http(s) URLs";
        let Some(text) = self.get(var)? else {
            return Ok(Vec::new());
        };
        let urls: Vec<String> = serde_json::from_str(&text).map_err(|e| EnvError::Invalid {
            var,
            expected,
            reason: e.to_string(),
        })?;
        for url in &urls {
            check_url(var, expected, url)?;
        }
        Ok(urls)
    }

    fn bugs(&self) -> Result<PlantedBugs, EnvError> {
        let Some(text) = self.get(env::BUGS)? else {
            return Ok(PlantedBugs::default());
        };
        let mut bugs = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let bug = PlantedBug::from_name(name).ok_or_else(|| EnvError::UnknownBug {
                name: name.to_owned(),
            })?;
            bugs.push(bug);
        }
        Ok(PlantedBugs(bugs))
    }

    fn telemetry(&self) -> Result<Telemetry, EnvError> {
        match self.get(env::OTEL_TRACES_SAMPLER)?.as_deref() {
            None | Some("always_on" | "parentbased_always_on") => {}
            Some(other) => {
                return Err(EnvError::Unsupported {
                    var: env::OTEL_TRACES_SAMPLER,
                    value: other.to_owned(),
                    supported: "always_on or parentbased_always_on, as it records every span",
                })
            }
        }
        let disabled = match self.get(env::OTEL_SDK_DISABLED)? {
            None => false,
            Some(text) if text.eq_ignore_ascii_case("true") => true,
            Some(text) if text.eq_ignore_ascii_case("false") => false,
            Some(text) => {
                return Err(EnvError::Invalid {
                    var: env::OTEL_SDK_DISABLED,
                    expected: "`true` or `false`",
                    reason: format!("`{text}`"),
                })
            }
        };
        let exporter = self.get(env::OTEL_TRACES_EXPORTER)?;
        let exports = match exporter.as_deref().map(str::trim) {
            None | Some("otlp") => true,
            Some("none") => false,
            Some(other) => {
                return Err(EnvError::Unsupported {
                    var: env::OTEL_TRACES_EXPORTER,
                    value: other.to_owned(),
                    supported: "otlp (the default) or none",
                })
            }
        };
        let protocol = match self.get(env::OTEL_PROTOCOL)?.as_deref() {
            None | Some("http/protobuf") => OtlpProtocol::Protobuf,
            Some("http/json") => OtlpProtocol::Json,
            Some(other) => {
                return Err(EnvError::Unsupported {
                    var: env::OTEL_PROTOCOL,
                    value: other.to_owned(),
                    supported:
                        "http/protobuf (the default) or http/json, as it exports over OTLP/HTTP",
                })
            }
        };
        if disabled {
            return Ok(Telemetry::Disabled);
        }
        if !exports {
            return Ok(Telemetry::LogsOnly);
        }
        let url = match (
            self.get(env::OTEL_TRACES_ENDPOINT)?,
            self.get(env::OTEL_ENDPOINT)?,
        ) {
            (Some(url), _) => {
                check_url(env::OTEL_TRACES_ENDPOINT, "an http(s) URL", &url)?;
                url
            }
            (None, Some(base)) => {
                check_url(env::OTEL_ENDPOINT, "an http(s) base URL", &base)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None) => return Err(EnvError::NoEndpoint),
        };
        Ok(Telemetry::Otlp(OtlpTarget {
            url,
            protocol,
            service_name: self
                .get(env::OTEL_SERVICE_NAME)?
                .unwrap_or_else(|| BOOKING_SERVICE.to_owned()),
        }))
    }
}

fn parse<T: std::str::FromStr>(
    var: &'static str,
    expected: &'static str,
    text: &str,
) -> Result<T, EnvError>
where
    T::Err: std::fmt::Display,
{
    text.trim().parse().map_err(|e| EnvError::Invalid {
        var,
        expected,
        reason: format!("`{text}`: {e}"),
    })
}

fn check_url(var: &'static str, expected: &'static str, text: &str) -> Result<(), EnvError> {
    let invalid = |reason: String| EnvError::Invalid {
        var,
        expected,
        reason,
    };
    let url = reqwest::Url::parse(text).map_err(|e| invalid(format!("`{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "`{text}` has the scheme `{}`",
            url.scheme()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables to set (`Some`) or remove (`None`).
    type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

    /// The environment a harness gives a replay's service, with `changes` applied.
    fn read(changes: Changes<'_>) -> Result<ContractEnv, EnvError> {
        let mut vars: Vec<(String, String)> = [
            (env::PORT, "5000"),
            (env::DATABASE_PATH, "/tmp/replay/booking.sqlite3"),
            (env::GOOGLE_CALENDAR_URL, "http://127.0.0.1:7001"),
            (env::STRIPE_URL, "http://127.0.0.1:7002"),
            (env::EMAIL_URL, ""),
            (
                env::WEBHOOK_SUBSCRIBERS,
                r#"["http://127.0.0.1:7003/webhook"]"#,
            ),
            (env::WEBHOOK_SECRET, "whsec_a"),
            (env::CRON_API_KEY, "cron_b"),
            (env::STRIPE_WEBHOOK_SECRET, "whsec_c"),
            (
                env::EVENT_TYPES,
                r#"[{"id": 7, "price": 5000, "currency": "eur"}, {"id": 8, "seats": 3, "reminders": true}]"#,
            ),
            (env::BUGS, "orphan_jobs, drop_traceparent"),
            (env::SEED, "42"),
            (env::GENERATION, "2"),
            (env::STORE_LATENCY_US, "1500"),
            (env::OTEL_ENDPOINT, "http://127.0.0.1:4318"),
            (env::OTEL_TRACES_SAMPLER, "always_on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, value) in changes {
            vars.retain(|(k, _)| k != name);
            if let Some(value) = value {
                vars.push((name.to_string(), value.to_string()));
            }
        }
        ContractEnv::read(|name| {
            (vars.iter())
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    fn error(changes: Changes<'_>) -> String {
        match read(changes) {
            Ok(read) => panic!("{changes:?} read as {read:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_variable_lands_where_a_replay_puts_it() {
        let read = read(&[]).unwrap();
        assert_eq!(read.port, 5000);
        assert_eq!(read.seed, Some(42));
        let service = &read.service;
        assert_eq!(
            service.database,
            PathBuf::from("/tmp/replay/booking.sqlite3")
        );
        assert_eq!(service.google_calendar_url, "http://127.0.0.1:7001");
        assert_eq!(service.stripe_url, "http://127.0.0.1:7002");
        assert_eq!(service.email_url, "", "an empty variable is an unset one");
        assert_eq!(
            service.webhook_subscribers,
            ["http://127.0.0.1:7003/webhook"]
        );
        assert_eq!(
            (
                service.webhook_secret.as_str(),
                service.cron_api_key.as_str(),
                service.stripe_webhook_secret.as_str()
            ),
            ("whsec_a", "cron_b", "whsec_c")
        );
        assert_eq!(service.event_types.len(), 2);
        assert_eq!(service.event_types[0].price, Some(5000));
        assert_eq!(service.event_types[0].currency, "eur");
        assert_eq!(service.event_types[1].seats, Some(3));
        assert_eq!(service.event_types[1].currency, "usd");
        assert_eq!(
            service.bugs.0,
            [PlantedBug::OrphanJobs, PlantedBug::DropTraceparent]
        );
        assert_eq!((service.seed, service.generation), (42, 2));
        assert_eq!(service.store_latency, Duration::from_micros(1500));
        assert!(!service.conformance_endpoint, "no replay mounts /test");
        assert_eq!(
            read.telemetry,
            Telemetry::Otlp(OtlpTarget {
                url: "http://127.0.0.1:4318/v1/traces".into(),
                protocol: OtlpProtocol::Protobuf,
                service_name: "cal.com".into(),
            })
        );
    }

    #[test]
    fn optional_variables_default_to_a_plain_replay_service() {
        let unset = [
            env::GOOGLE_CALENDAR_URL,
            env::STRIPE_URL,
            env::WEBHOOK_SUBSCRIBERS,
            env::WEBHOOK_SECRET,
            env::CRON_API_KEY,
            env::STRIPE_WEBHOOK_SECRET,
            env::EVENT_TYPES,
            env::BUGS,
            env::SEED,
            env::GENERATION,
            env::STORE_LATENCY_US,
            env::OTEL_TRACES_SAMPLER,
        ];
        let changes: Vec<_> = unset.iter().map(|&v| (v, None)).collect();
        let read = read(&changes).unwrap();
        let plain = ServiceConfig::new(PathBuf::new(), 0);
        let service = &read.service;
        assert_eq!(read.seed, None);
        assert_eq!(service.google_calendar_url, "");
        assert!(service.webhook_subscribers.is_empty() && service.event_types.is_empty());
        assert_eq!(service.webhook_secret, plain.webhook_secret);
        assert_eq!(service.cron_api_key, plain.cron_api_key);
        assert_eq!(service.stripe_webhook_secret, plain.stripe_webhook_secret);
        assert!(service.bugs.0.is_empty());
        assert_eq!(
            (service.generation, service.store_latency),
            (0, Duration::ZERO)
        );
    }

    #[test]
    fn telemetry_follows_the_opentelemetry_variables() {
        let telemetry = |changes: Changes<'_>| read(changes).unwrap().telemetry;
        assert_eq!(
            telemetry(&[(env::OTEL_SDK_DISABLED, Some("TRUE"))]),
            Telemetry::Disabled
        );
        assert_eq!(
            telemetry(&[
                (env::OTEL_TRACES_EXPORTER, Some("none")),
                (env::OTEL_ENDPOINT, None)
            ]),
            Telemetry::LogsOnly,
            "no endpoint is needed for log lines"
        );
        assert_eq!(
            telemetry(&[
                (env::OTEL_SDK_DISABLED, Some("true")),
                (env::OTEL_TRACES_EXPORTER, Some("none"))
            ]),
            Telemetry::Disabled
        );
        let Telemetry::Otlp(target) = telemetry(&[
            (env::OTEL_TRACES_ENDPOINT, Some("http://c:4318/custom")),
            (env::OTEL_PROTOCOL, Some("http/json")),
            (env::OTEL_SERVICE_NAME, Some("booking")),
            (env::OTEL_SDK_DISABLED, Some("false")),
            (env::OTEL_TRACES_EXPORTER, Some("otlp")),
        ]) else {
            panic!("not exported")
        };
        assert_eq!(target.url, "http://c:4318/custom", "used as given");
        assert_eq!(target.protocol, OtlpProtocol::Json);
        assert_eq!(target.service_name, "booking");
        let Telemetry::Otlp(target) = telemetry(&[(env::OTEL_ENDPOINT, Some("http://c/otlp/"))])
        else {
            panic!("not exported")
        };
        assert_eq!(target.url, "http://c/otlp/v1/traces");
    }

    /// Each bad variable, and the words its error must contain.
    #[test]
    fn each_bad_variable_is_named_with_what_it_should_hold() {
        let cases: &[(Changes<'_>, &[&str])] = &[
            (
                &[(env::PORT, None)],
                &["PORT is not set", "port to listen on"],
            ),
            (&[(env::PORT, Some(""))], &["PORT is not set"]),
            (
                &[(env::PORT, Some("70000"))],
                &["PORT is not a port number", "`70000`"],
            ),
            (
                &[(env::DATABASE_PATH, None)],
                &["DATABASE_PATH is not set", "database file"],
            ),
            (
                &[(env::GOOGLE_CALENDAR_URL, Some("localhost:7001"))],
                &[
                    "GOOGLE_CALENDAR_API_URL is not an http(s) base URL",
                    "scheme `localhost`",
                ],
            ),
            (
                &[(env::STRIPE_URL, Some("not a url"))],
                &["STRIPE_API_URL is not an http(s) base URL", "`not a url`"],
            ),
            (
                &[(env::WEBHOOK_SUBSCRIBERS, Some("http://127.0.0.1:7003"))],
                &[
                    "WEBHOOK_SUBSCRIBER_URLS is not a JSON array of http(s) URLs",
                    "line 1",
                ],
            ),
            (
                &[(env::WEBHOOK_SUBSCRIBERS, Some(r#"["ftp://x"]"#))],
                &[
                    "WEBHOOK_SUBSCRIBER_URLS is not a JSON array of http(s) URLs",
                    "ftp",
                ],
            ),
            (
                &[(env::EVENT_TYPES, Some(r#"[{"id": 7, "prise": 5}]"#))],
                &[
                    "EVENT_TYPES is not a JSON array of event types",
                    "unknown field `prise`",
                ],
            ),
            (
                &[(env::EVENT_TYPES, Some(r#"{"id": 7}"#))],
                &[
                    "EVENT_TYPES is not a JSON array of event types",
                    "expected a sequence",
                ],
            ),
            (
                &[(env::BUGS, Some("orphan_jobs,lost_spans"))],
                &[
                    "TRACE_HARNESS_BUGS names `lost_spans`",
                    "drop_traceparent, orphan_jobs, unlinked_jobs",
                ],
            ),
            (
                &[(env::SEED, Some("-1"))],
                &["TRACE_HARNESS_SEED is not a whole number", "`-1`"],
            ),
            (
                &[(env::GENERATION, Some("one"))],
                &["TRACE_HARNESS_GENERATION is not a whole number"],
            ),
            (
                &[(env::STORE_LATENCY_US, Some("2ms"))],
                &[
                    "TRACE_HARNESS_STORE_LATENCY_US is not a whole number",
                    "`2ms`",
                ],
            ),
            (
                &[(env::OTEL_SDK_DISABLED, Some("yes"))],
                &["OTEL_SDK_DISABLED is not `true` or `false`", "`yes`"],
            ),
            (
                &[(env::OTEL_TRACES_EXPORTER, Some("zipkin"))],
                &[
                    "OTEL_TRACES_EXPORTER=zipkin is not supported",
                    "otlp (the default) or none",
                ],
            ),
            (
                &[(env::OTEL_PROTOCOL, Some("grpc"))],
                &[
                    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported",
                    "OTLP/HTTP",
                ],
            ),
            (
                &[(env::OTEL_TRACES_SAMPLER, Some("traceidratio"))],
                &[
                    "OTEL_TRACES_SAMPLER=traceidratio is not supported",
                    "always_on",
                ],
            ),
            (
                &[(env::OTEL_ENDPOINT, None)],
                &[
                    "neither OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT",
                    "OTEL_TRACES_EXPORTER=none",
                ],
            ),
            (
                &[(env::OTEL_TRACES_ENDPOINT, Some("collector:4318"))],
                &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not an http(s) URL"],
            ),
        ];
        for (changes, words) in cases {
            let message = error(changes);
            for word in *words {
                assert!(
                    message.contains(word),
                    "{changes:?}: {message:?} lacks {word:?}"
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_text_is_named() {
        use std::os::unix::ffi::OsStringExt;
        let read = ContractEnv::read(|name| match name {
            "PORT" => Some(OsString::from_vec(vec![0xff, 0x35])),
            _ => None,
        });
        assert_eq!(read.unwrap_err(), EnvError::NotUnicode { var: env::PORT });
    }
}
