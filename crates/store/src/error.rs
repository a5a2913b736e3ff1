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
    Database(sqlx::Error),
    /// The connection broke under a statement (the server restarted, the network dropped):
    /// nothing of the transaction was kept, and doing it again on a new connection may work.
    #[error(
        "lost the connection to the database: {0}\n(hint: baton retries for a while; is the database up?)"
    )]
    ConnectionLost(sqlx::Error),
    /// `--database`, `BATON_DATABASE_URL` or `[database] url` is not a URL baton can use.
    #[error(
        "invalid database url `{url}`: {detail}\n(hint: use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`)"
    )]
    BadUrl { url: String, detail: String },
    /// Nothing answered at the database's address in the connect timeout.
    #[error(
        "cannot connect to the database at `{url}`: {detail}\n(hint: is PostgreSQL running and listening there? `[database] connect_timeout` says how long to wait)"
    )]
    Unreachable { url: String, detail: String },
    /// The server answered and said no: an unknown database, user or password.
    #[error(
        "the database at `{url}` refused the connection: {detail}\n(hint: check the user, the password and the database name in the url)"
    )]
    Refused { url: String, detail: String },
    /// The database has a migration this baton does not know: a newer baton migrated it.
    #[error(
        "the database at `{url}` was migrated by a newer baton (migration {version} is unknown to this one)\n(hint: upgrade this baton, or point it at another database)"
    )]
    NewerSchema { url: String, version: i64 },
    /// A SQLite database that had to exist does not.
    #[error("no database at `{}`\n(hint: run a pipeline with it first)", .0.display())]
    NoDatabase(std::path::PathBuf),
    /// A `[database]` setting out of range.
    #[error("invalid database setting: {0}")]
    Setting(String),
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
    /// An owner's commit whose number does not follow the run's last one: the owner lost
    /// count of its commits.
    #[error(
        "commit {commit} of run `{run}` does not follow its last one ({last})\n(hint: this is a bug in baton; the commit was not written)"
    )]
    CommitGap {
        run: baton_core::ids::RunId,
        last: crate::CommitSeq,
        commit: crate::CommitSeq,
    },
    #[error("backfill `{0}` not found")]
    BackfillNotFound(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if crate::sql::connection_lost(&e) {
            Self::ConnectionLost(e)
        } else {
            Self::Database(e)
        }
    }
}

impl Error {
    /// Whether trying again later may succeed: the connection broke and nothing was kept.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ConnectionLost(_))
    }

    /// Whether the database could not be used as configured (its url, its server, its
    /// schema): a problem of the setup, not of a command's work.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            Self::BadUrl { .. }
                | Self::Unreachable { .. }
                | Self::Refused { .. }
                | Self::NewerSchema { .. }
                | Self::NoDatabase(_)
                | Self::Setting(_)
        )
    }

    /// Whether the disk is full, so callers can say so plainly.
    pub fn is_disk_full(&self) -> bool {
        self.to_string().contains("database or disk is full")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
