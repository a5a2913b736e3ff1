//! Storage errors.

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open the database at `{url}`: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A home that had to exist does not (no database in it).
    #[error("no baton home at `{}`", .0.display())]
    NoHome(std::path::PathBuf),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("corrupt value in column `{column}`: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
    #[error("run `{0}` not found")]
    RunNotFound(String),
    #[error("run id `{prefix}` is ambiguous: it matches {count} runs\n(hint: type more of the id)")]
    AmbiguousRun { prefix: String, count: usize },
    #[error("an idempotency key `{0}` is already used by another pipeline's run")]
    IdempotencyConflict(String),
    /// `overlap: skip` refused a run: its group already had `limit` runs active or waiting.
    #[error(
        "`{group}` already has {} active run(s), its limit\n(hint: `overlap: skip` drops runs while the limit is reached)",
        active.len()
    )]
    Skipped {
        group: String,
        active: Vec<baton_core::ids::RunId>,
    },
    /// A write of a run's owner, made after another process took the run over (or the lease
    /// was released): nothing of it was written.
    #[error("lost ownership of run `{run}` to `{holder}` (epoch {epoch})")]
    LeaseLost {
        run: baton_core::ids::RunId,
        /// The lease's holder now; `nobody` when it was released.
        holder: String,
        epoch: crate::LeaseEpoch,
    },
    #[error("backfill `{0}` not found")]
    BackfillNotFound(String),
}

impl Error {
    /// Whether the disk is full, so callers can say so plainly.
    pub fn is_disk_full(&self) -> bool {
        self.to_string().contains("database or disk is full")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
