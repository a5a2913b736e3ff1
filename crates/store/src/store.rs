//! The storage trait: everything the engine persists goes through it.

use async_trait::async_trait;
use baton_core::ids::{RunId, TaskKey};

use crate::error::Result;
use crate::records::{
    AttemptRecord, Change, Control, DeadLetterFilter, DeadLetterRecord, DefinitionRecord,
    EventRecord, Millis, NewRun, RunFilter, RunRecord, TaskRecord, VersionRecord,
};

/// Durable state of runs. Implementations must make each call atomic; [`Store::apply`] in
/// particular commits its whole batch, with its events, or nothing.
///
/// Designed for more than one engine process: a run is owned through a lease
/// ([`Store::acquire_lease`]) rather than through anything held in memory, and requests from
/// other processes (cancel, approvals) are rows the owner reads ([`Store::control`]).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a run, its definition (if new) and its first task instances. With an
    /// idempotency key already used by the same pipeline, returns that run's id instead.
    async fn create_run(&self, run: &NewRun) -> Result<RunId>;
    async fn apply(&self, run: &RunId, changes: &[Change]) -> Result<()>;

    async fn definition(&self, hash: &str) -> Result<Option<DefinitionRecord>>;
    /// Records a version of a definition (a no-op when that version is known).
    async fn put_definition(&self, definition: &DefinitionRecord, at: Millis) -> Result<()>;
    /// Versions of `namespace/name`, newest first.
    async fn versions(&self, namespace: &str, name: &str) -> Result<Vec<VersionRecord>>;
    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>>;
    /// Resolves a full id or a unique prefix of one.
    async fn resolve_run(&self, prefix: &str) -> Result<RunId>;
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// Task instances that failed for good in runs that ended (failed or cancelled), newest
    /// failure first. Requeuing one reopens its run, which takes it off this list.
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRecord>>;
    async fn tasks(&self, run: &RunId) -> Result<Vec<TaskRecord>>;
    async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>>;
    async fn events(&self, run: &RunId, after_seq: i64) -> Result<Vec<EventRecord>>;

    /// Takes ownership of a run until `expires_at`, if nobody else holds a live lease (or the
    /// holder is `owner` already, or `steal_from` names the stale holder). Returns whether the
    /// lease is now `owner`'s.
    async fn acquire_lease(
        &self,
        run: &RunId,
        owner: &str,
        now: Millis,
        expires_at: Millis,
        steal_from: Option<&str>,
    ) -> Result<bool>;
    async fn release_lease(&self, run: &RunId, owner: &str) -> Result<()>;

    /// The last tick recorded for a schedule (`schedule` names it, e.g. its index and cron).
    async fn last_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
    ) -> Result<Option<Millis>>;
    /// Moves a schedule's last tick from `from` to `to`, only if it is still `from` (none when
    /// `from` is `None`): with several schedulers, one wins and the others see `false`.
    async fn advance_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
        from: Option<Millis>,
        to: Millis,
    ) -> Result<bool>;

    /// Pauses or unpauses a pipeline; returns whether anything changed.
    async fn set_paused(
        &self,
        namespace: &str,
        pipeline: &str,
        paused: bool,
        by: &str,
        at: Millis,
    ) -> Result<bool>;
    /// Whether a pipeline is paused.
    async fn is_paused(&self, namespace: &str, pipeline: &str) -> Result<bool>;

    async fn request_cancel(&self, run: &RunId) -> Result<()>;
    /// Records a person's decision on an approval gate; the first decision stands.
    async fn decide(
        &self,
        run: &RunId,
        key: &TaskKey,
        approved: bool,
        by: &str,
        at: Millis,
        comment: Option<&str>,
    ) -> Result<bool>;
    async fn control(&self, run: &RunId) -> Result<Control>;
}
