//! Why files could not be moved. Every one fails the attempt with a retryable error: a store
//! that was unreachable may answer the next time, a file an upload missed may be made by the
//! next run of the command.

use std::path::PathBuf;

/// Which way the files were going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upload,
    Download,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact pattern `{pattern}` matched no file in `{}`", dir.display())]
    NoMatch { pattern: String, dir: PathBuf },
    #[error(
        "artifact `{path}` ({digest}) is not in the artifact store `{store}`: it was removed, or \
         the store is not the one it was uploaded to"
    )]
    Missing {
        path: String,
        digest: String,
        store: String,
    },
    #[error("artifact `{path}` is corrupt: its content hashes to {got}, not {expected}")]
    Corrupt {
        path: String,
        expected: String,
        got: String,
    },
    #[error("cannot {} artifact `{path}` in the artifact store `{store}`: {source}", op.as_str())]
    Store {
        op: Op,
        path: String,
        store: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("cannot {what} `{}`: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "artifacts of two upstream tasks would both be placed at `{path}`, with different \
         content ({a} and {b}): give them different paths"
    )]
    Conflict { path: String, a: String, b: String },
    #[error("cannot {} artifact `{path}` through the control plane: {reason}", op.as_str())]
    Transfer {
        op: Op,
        path: String,
        reason: String,
    },
    #[error("invalid artifact pattern `{pattern}`: {why}")]
    Pattern { pattern: String, why: String },
}

impl ArtifactError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
