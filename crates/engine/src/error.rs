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
    /// Not a failure of the run: another process took it over (this one stalled past its
    /// lease) and drives it now. Nothing more of this dispatcher's was written, and its
    /// attempts were stopped.
    #[error("lost ownership of run `{run}` to `{holder}` (epoch {epoch})")]
    LeaseLost {
        run: baton_core::ids::RunId,
        holder: String,
        epoch: baton_store::LeaseEpoch,
    },
    /// Not a failure of the run either: the database stayed out of reach until just before
    /// the lease would expire, after which another process may take the run over. Its
    /// attempts were stopped and nothing more was written.
    #[error(
        "gave up run `{run}`: its lease could not be renewed before it expired\n(hint: is the database reachable from this host?)"
    )]
    LeaseExpired { run: baton_core::ids::RunId },
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
