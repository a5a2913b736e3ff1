//! baton's durable state: runs, task instances, attempts, an append-only event log, and the
//! requests other processes make of a run's owner. One trait ([`Store`]), one sqlx
//! implementation for SQLite (the embedded default) and PostgreSQL.

mod changes;
mod database;
mod error;
mod lease;
mod logs;
mod records;
mod sql;
mod store;

pub use changes::Changes;
pub use database::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TRANSACTION_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Database,
    DatabaseSettings, masked,
};
pub use error::{Error, Result};
pub use lease::{CommitSeq, Fence, Lease, LeaseEpoch, TakenRun};
pub use logs::{
    AttemptLog, DEFAULT_MAX_BYTES_PER_ATTEMPT, FileLogStore, LayeredLogStore, LogError,
    LogSettings, LogStore, LogStoreKind, MAX_READ, sanitize,
};
pub use records::{
    Admission, Admitted, ApprovalRecord, ApprovalWait, ArtifactFile, ArtifactRecord,
    AttemptProcess, AttemptRecord, BackfillFilter, BackfillRecord, CacheEntry, CacheSource, Change,
    Control, DeadLetterCursor, DeadLetterFilter, DeadLetterRecord, DefinitionRecord, EventRecord,
    Millis, NewRun, NewTask, OrphanClaim, ParentRef, PipelineCount, PoolRecord, RunBrief,
    RunFilter, RunRecord, Rusage, SlotClaim, TaskCount, TaskCursor, TaskPageFilter, TaskRecord,
    VersionRecord,
};
pub use sql::{DatabaseLogStore, SqlStore};
pub use store::Store;
