//! When and where traces go: the standard `OTEL_*` variables first, then `baton.toml`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The `[traces]` section of `baton.toml`. Each value is used only where its standard
/// variable is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSettings {
    /// Base URL of the collector, as `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is added for
    /// HTTP).
    pub otlp_endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    pub service_name: Option<String>,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "unsupported OTLP protocol `{other}`\n(hint: use `grpc` or `http/protobuf`)"
            )),
        }
    }
}

impl TryFrom<String> for Protocol {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("`{var}`: {message}")]
    Variable { var: &'static str, message: String },
    #[error("cannot set up the OTLP {protocol} trace exporter: {source}")]
    Exporter {
        protocol: Protocol,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Settings after the environment and the file had their say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// An endpoint to pass to the exporter; `None` when a variable names one, which the
    /// exporter then reads itself (with the per-signal rules of the specification).
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Protocol,
    pub(crate) service_name: String,
}

fn set(env: &impl Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    env(var).filter(|v| !v.trim().is_empty())
}

/// Whether traces are on and how, from `env` (the process environment, or a table in tests)
/// and the file. Off unless an endpoint is configured.
pub(crate) fn resolve(
    file: &TraceSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Resolved>, TraceError> {
    if set(&env, "OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if let Some(exporters) = set(&env, "OTEL_TRACES_EXPORTER") {
        let names: Vec<&str> = exporters.split(',').map(str::trim).collect();
        if names.contains(&"none") {
            return Ok(None);
        }
        if let Some(other) = names.iter().find(|n| **n != "otlp") {
            return Err(TraceError::Variable {
                var: "OTEL_TRACES_EXPORTER",
                message: format!(
                    "baton exports traces with `otlp` only, not `{other}`\n(hint: set it to `otlp` or `none`)"
                ),
            });
        }
    }
    let from_env = set(&env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| set(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    let file_endpoint = file
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if !from_env && file_endpoint.is_none() {
        return Ok(None);
    }
    let mut protocol = file.protocol.unwrap_or(Protocol::HttpProtobuf);
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(v) = set(&env, var) {
            protocol = v
                .parse()
                .map_err(|message| TraceError::Variable { var, message })?;
            break;
        }
    }
    let endpoint = match file_endpoint {
        Some(e) if !from_env => Some(match protocol {
            // As the specification appends it to `OTEL_EXPORTER_OTLP_ENDPOINT`.
            Protocol::HttpProtobuf => format!("{}/v1/traces", e.trim_end_matches('/')),
            Protocol::Grpc => e.to_owned(),
        }),
        _ => None,
    };
    let service_name = set(&env, "OTEL_SERVICE_NAME")
        .or_else(|| file.service_name.clone())
        .unwrap_or_else(|| "baton".to_owned());
    Ok(Some(Resolved {
        endpoint,
        protocol,
        service_name,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)], file: &TraceSettings) -> Result<Option<Resolved>, String> {
        let table: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(file, |k| {
            table.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())
    }

    fn file(endpoint: &str) -> TraceSettings {
        TraceSettings {
            otlp_endpoint: Some(endpoint.to_owned()),
            ..TraceSettings::default()
        }
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(with(&[], &TraceSettings::default()), Ok(None));
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(with(&on, &TraceSettings::default()).expect("ok").is_some());
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(with(&[on[0], off], &TraceSettings::default()), Ok(None));
        }
        assert_eq!(
            with(&[("OTEL_SDK_DISABLED", "true")], &file("http://x")),
            Ok(None)
        );
    }

    #[test]
    fn variables_come_before_the_file() {
        let mut f = file("http://file:4318/");
        f.protocol = Some(Protocol::Grpc);
        f.service_name = Some("from-file".into());
        let r = with(&[], &f).expect("ok").expect("on");
        assert_eq!(r.endpoint.as_deref(), Some("http://file:4318/"));
        assert_eq!(
            (r.protocol, r.service_name.as_str()),
            (Protocol::Grpc, "from-file")
        );

        let r = with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")], &f)
            .expect("ok")
            .expect("on");
        assert_eq!(r.endpoint.as_deref(), Some("http://file:4318/v1/traces"));

        let vars = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "etl"),
        ];
        let r = with(&vars, &f).expect("ok").expect("on");
        assert_eq!(r.endpoint, None, "the exporter reads the variable itself");
        assert_eq!(
            (r.protocol, r.service_name.as_str()),
            (Protocol::Grpc, "etl")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(
            with(&[on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")], &TraceSettings::default()),
            Err("`OTEL_EXPORTER_OTLP_PROTOCOL`: unsupported OTLP protocol `http/json`\n(hint: use `grpc` or `http/protobuf`)".into())
        );
        assert_eq!(
            with(&[on, ("OTEL_TRACES_EXPORTER", "zipkin")], &TraceSettings::default()),
            Err("`OTEL_TRACES_EXPORTER`: baton exports traces with `otlp` only, not `zipkin`\n(hint: set it to `otlp` or `none`)".into())
        );
    }
}
