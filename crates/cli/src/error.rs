//! Errors the CLI expects, each mapped to an exit code.

use std::process::ExitCode;

/// What a command reports as its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// The command ran and found problems (invalid pipelines, a failed run).
    Failure,
    /// Bad arguments or environment: nothing was done.
    Usage,
    /// The run was cancelled (Ctrl-C, `baton cancel`).
    Cancelled,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Usage => ExitCode::from(2),
            ExitStatus::Cancelled => ExitCode::from(130),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectedError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not valid")]
    Invalid { path: String },
    #[error(
        "no pipeline files found in `{path}`\n(hint: baton reads files ending in `.yaml` or `.yml`)"
    )]
    NoPipelines { path: String },
    #[error("no baton home at `{home}`\n(hint: run a pipeline first, or pass --home)")]
    NoHome { home: String },
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] baton_store::Error),
    #[error("{0}")]
    Engine(#[from] baton_engine::Error),
    #[error("{0}")]
    Usage(String),
    /// Understood, but the run's state refuses it (a decided gate, a run that cannot be
    /// retried) or what it names does not exist.
    #[error("{0}")]
    Refused(String),
    /// An error the server answered with, and the exit code the same request gets locally.
    #[error("{message}")]
    Api { message: String, status: ExitStatus },
    #[error(
        "cannot reach the server at `{url}`: {detail}\n(hint: is `baton server` running there? --server and BATON_SERVER say where to look)"
    )]
    Unreachable { url: String, detail: String },
}

/// The engine refusing a retry or requeue: a store failure stays one, anything else is a
/// refusal (exit 1), as the server's 409 is.
impl From<baton_engine::control::RetryError> for ExpectedError {
    fn from(e: baton_engine::control::RetryError) -> Self {
        match e {
            baton_engine::control::RetryError::Store(e) => e.into(),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<baton_engine::control::DecideError> for ExpectedError {
    fn from(e: baton_engine::control::DecideError) -> Self {
        match e {
            baton_engine::control::DecideError::Store(e) => e.into(),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl ExpectedError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            // The database as configured cannot be used: nothing was done.
            Self::Store(e) if e.is_setup() => ExitStatus::Usage,
            Self::Read { .. }
            | Self::Invalid { .. }
            | Self::Write(_)
            | Self::Store(_)
            | Self::Refused(_)
            | Self::Unreachable { .. } => ExitStatus::Failure,
            Self::Api { status, .. } => *status,
            // Not a mistake of the caller: another process drives the run now.
            Self::Engine(
                baton_engine::Error::LeaseLost { .. } | baton_engine::Error::LeaseExpired { .. },
            ) => ExitStatus::Failure,
            Self::Engine(_) | Self::NoPipelines { .. } | Self::NoHome { .. } | Self::Usage(_) => {
                ExitStatus::Usage
            }
        }
    }
}
