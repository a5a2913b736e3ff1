//! baton's own log (not the tasks' logs): `tracing` events on stderr, for people on a terminal
//! and as JSON lines for log shippers.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable, colored on a terminal.
    Text,
    /// One JSON object per line, with the event's fields (run and task ids) as keys.
    Json,
}

/// Installs the subscriber. `BATON_LOG` filters in `RUST_LOG` syntax (`info`,
/// `baton_server=debug`); without it, `default_level` applies.
pub(crate) fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second install (tests calling `run` twice) keeps the first; that is fine.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
