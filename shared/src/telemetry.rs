//! Tracing initialisation for the binaries: one subscriber per process,
//! writing to stderr, filtered by `RUST_LOG`, plain or JSON.
//!
//! Stdout is deliberately left alone: it carries user-facing CLI output and
//! the one readiness line (`listening on ...`) that tests and supervisors
//! wait for, and a log line there would break both.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// The `[log]` section shared by node and hub configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"plain"` for people at a terminal, `"json"` for log collectors.
    #[serde(default)]
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default formatter).
    #[default]
    Plain,
    /// One JSON object per line, with span fields, for journald/Loki.
    Json,
}

/// Why tracing could not be initialised.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` is set but is not a valid filter.
    #[error("parse RUST_LOG={value:?}")]
    Filter {
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (init called twice).
    #[error("install the tracing subscriber")]
    Install(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Installs the global subscriber. `default_directive` applies when
/// `RUST_LOG` is unset (`"info"` for servers, quieter for one-shot commands).
///
/// # Errors
/// A malformed `RUST_LOG`, or a second call in the same process.
pub fn init(format: LogFormat, default_directive: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => {
            EnvFilter::try_new(&value).map_err(|source| TelemetryError::Filter { value, source })?
        }
        _ => EnvFilter::new(default_directive),
    };
    // Built once; only the formatter differs between the two formats.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    }
    .map_err(TelemetryError::Install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_reads_lowercase_names_and_refuses_others() {
        let json: LogConfig = serde_json::from_str(r#"{"format": "json"}"#).unwrap();
        assert_eq!(json.format, LogFormat::Json);
        let plain: LogConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(plain.format, LogFormat::Plain);
        assert!(serde_json::from_str::<LogConfig>(r#"{"format": "xml"}"#).is_err());
        assert!(serde_json::from_str::<LogConfig>(r#"{"colour": true}"#).is_err());
    }
}
