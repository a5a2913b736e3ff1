//! Engine errors.

/// Why a run could not be started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot record state: {0}")]
    Store(#[from] baton_store::Error),
    #[error(
        "run `{run}` is being executed by `{owner}`\n(hint: wait for it, or `baton cancel {run}`)"
    )]
    Leased { run: String, owner: String },
    #[error("the stored definition of run `{run}` no longer loads: {detail}")]
    Definition { run: String, detail: String },
    #[error("{0}")]
    Params(String),
    #[error("cannot create `{path}`: {source}")]
    Home {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
