//! The storage trait: everything the engine persists goes through it.

use async_trait::async_trait;
use baton_core::ids::{BackfillId, LeaseOwner, RunId, TaskKey};
use baton_core::state::{RunState, TaskState};

use crate::changes::Changes;
use crate::error::Result;
use crate::lease::{Fence, Lease, TakenRun};
use crate::records::{
    Admitted, ApprovalWait, ArtifactRecord, AttemptRecord, BackfillFilter, BackfillRecord,
    CacheEntry, Change, Control, DeadLetterFilter, DeadLetterRecord, DefinitionRecord, EventRecord,
    Millis, NewRun, OrphanClaim, PipelineCount, PoolRecord, RunBrief, RunFilter, RunRecord,
    SlotClaim, TaskCount, TaskPageFilter, TaskRecord, VersionRecord,
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
    ///
    /// With an [`crate::Admission`], decided atomically against the group's other runs: below
    /// the limit (and nobody waiting) the run is admitted at once; otherwise `queue` and
    /// `cancel_previous` create it waiting (`cancel_previous` also requests cancellation of
    /// the waiting runs and of the oldest active ones, to make room), and `skip` creates
    /// nothing and fails with [`crate::Error::Skipped`].
    async fn create_run(&self, run: &NewRun) -> Result<RunId>;
    /// Admits a queued run if its group is below the run's limit and it is the oldest run of
    /// the group waiting (and not asked to cancel): [`Admitted::Now`], to exactly one caller.
    /// Runs without a group, and runs admitted already, are [`Admitted::Before`]; a run that
    /// ended while waiting is not admitted.
    async fn admit(&self, run: &RunId, now: Millis) -> Result<Admitted>;
    /// The unfinished runs of an admission group, oldest first.
    async fn group_runs(&self, group: &str) -> Result<Vec<RunRecord>>;
    /// Cancels, at once, the runs of a group that wait for admission and that nobody drives
    /// (they never started a task). Returns them.
    async fn cancel_waiting(&self, group: &str, at: Millis) -> Result<Vec<RunId>>;

    /// Records a backfill and creates all its runs in one transaction. With an idempotency
    /// key already used, returns that backfill's id instead and creates nothing.
    async fn create_backfill(
        &self,
        backfill: &BackfillRecord,
        runs: &[NewRun],
    ) -> Result<BackfillId>;
    async fn backfill(&self, id: &BackfillId) -> Result<Option<BackfillRecord>>;
    async fn backfills(&self, filter: &BackfillFilter) -> Result<Vec<BackfillRecord>>;
    /// How many of a backfill's runs are in each state.
    async fn backfill_counts(&self, id: &BackfillId) -> Result<Vec<(RunState, u64)>>;
    /// Commits a batch of changes to a run, with their events. A run's owner names its lease
    /// ([`Fence::Lease`]): unless it is still the run's, nothing is written and the call fails
    /// with [`crate::Error::LeaseLost`], checked in the same transaction.
    async fn apply(&self, run: &RunId, fence: Fence<'_>, changes: &[Change]) -> Result<()>;

    async fn definition(&self, hash: &str) -> Result<Option<DefinitionRecord>>;
    /// Records a version of a definition (a no-op when that version is known).
    async fn put_definition(&self, definition: &DefinitionRecord, at: Millis) -> Result<()>;
    /// Versions of `namespace/name`, newest first.
    async fn versions(&self, namespace: &str, name: &str) -> Result<Vec<VersionRecord>>;
    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>>;
    /// Resolves a full id or a unique prefix of one.
    async fn resolve_run(&self, prefix: &str) -> Result<RunId>;
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// The runs sub-pipeline tasks of `parent` started, oldest first.
    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>>;
    /// Task instances that failed for good in runs that ended (failed or cancelled), newest
    /// failure first. Requeuing one reopens its run, which takes it off this list.
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRecord>>;
    /// The newest `per_pipeline` runs of every pipeline, newest first within each pipeline.
    async fn latest_runs(&self, per_pipeline: u32) -> Result<Vec<RunBrief>>;
    /// Runs that finished at or after `since` (for statistics), in no particular order.
    async fn finished_since(&self, since: Millis) -> Result<Vec<RunBrief>>;
    /// Task instances waiting for approval, oldest run first, at most `limit`.
    async fn awaiting_approval(&self, limit: u32) -> Result<Vec<ApprovalWait>>;
    /// Dead letters (as [`Store::dead_letters`] lists them) per pipeline, for pipelines that
    /// have any.
    async fn dead_letter_counts(&self) -> Result<Vec<PipelineCount>>;
    /// Task instances of queued and running runs that are queued, running, retrying or waiting
    /// for approval, per pipeline and state (fan-out rows that only sum up their instances are
    /// left out). One grouped query: cheap enough for every metrics scrape.
    async fn active_task_counts(&self) -> Result<Vec<TaskCount>>;
    async fn tasks(&self, run: &RunId) -> Result<Vec<TaskRecord>>;
    async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>>;
    /// The files every attempt of `run` uploaded, by task, attempt and path.
    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactRecord>>;
    /// What the attempts of just `tasks` of `run` uploaded, in the order of
    /// [`Store::artifacts`] (a page of a large run's tasks reads only its own).
    async fn artifacts_of(&self, run: &RunId, tasks: &[TaskKey]) -> Result<Vec<ArtifactRecord>>;
    /// One page of a run's task instances, in the order of [`Store::tasks`]: what a listing
    /// of a large run reads instead of all of them.
    async fn task_page(&self, run: &RunId, filter: &TaskPageFilter) -> Result<Vec<TaskRecord>>;
    /// The attempts of some of a run's tasks, ordered as [`Store::attempts`].
    async fn attempts_of(&self, run: &RunId, tasks: &[TaskKey]) -> Result<Vec<AttemptRecord>>;
    /// How many of a run's task instances are in each state (states with none left out).
    async fn task_counts(&self, run: &RunId) -> Result<Vec<(TaskState, u64)>>;
    async fn events(&self, run: &RunId, after_seq: i64) -> Result<Vec<EventRecord>>;

    /// Takes ownership of a run until `expires_at`, if nobody else holds a live lease (or the
    /// holder is `owner` already, or `steal_from` names the stale holder). Returns the lease
    /// now `owner`'s, or none. Its epoch grows unless `owner` held it already and it had not
    /// expired.
    async fn acquire_lease(
        &self,
        run: &RunId,
        owner: &LeaseOwner,
        now: Millis,
        expires_at: Millis,
        steal_from: Option<&str>,
    ) -> Result<Option<Lease>>;
    /// Extends `lease` to `expires_at` if it is still the run's (same owner and epoch), even
    /// if it expired meanwhile: nobody took it, so nobody else wrote. Otherwise
    /// [`crate::Error::LeaseLost`].
    async fn renew_lease(&self, run: &RunId, lease: &Lease, expires_at: Millis) -> Result<()>;
    /// Hands the run back (and its pool claims), if `lease` is still its lease; otherwise
    /// [`crate::Error::LeaseLost`] and nothing changes.
    async fn release_lease(&self, run: &RunId, lease: &Lease) -> Result<()>;
    /// The owners of unexpired leases on unfinished runs (for a caller to find dead ones).
    async fn lease_holders(&self, now: Millis) -> Result<Vec<String>>;
    /// Unfinished runs without a lease that do not wait for admission, oldest first: handed
    /// back by a draining server, or created and not yet picked up. Seen so twice, a while
    /// apart, they are orphans ([`OrphanClaim::unowned`]).
    async fn unowned_runs(&self, limit: u32) -> Result<Vec<RunId>>;
    /// Takes the lease of unfinished runs nobody drives for `claim.owner`, oldest first: runs
    /// whose lease expired or whose holder is in `claim.dead`, and `claim.unowned` runs that
    /// still have no lease. Atomic per run: of several claimers (replicas on one PostgreSQL,
    /// where rows being claimed are skipped, or processes on one SQLite file), each run goes
    /// to one. Returns the runs taken as they were before (`lease_owner` the previous holder),
    /// each with its new lease: a new epoch, which fences the previous holder out.
    async fn claim_orphans(&self, claim: &OrphanClaim<'_>) -> Result<Vec<TakenRun>>;
    /// The runs [`Store::admit`] would let in now: per admission group with room, its oldest
    /// waiting run. One that stays so is offered by nobody (its server died).
    async fn admissible_waiting(&self, limit: u32) -> Result<Vec<RunRecord>>;

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

    /// Every paused pipeline, as `(namespace, name)`: one query for a page of many.
    async fn paused_pipelines(&self) -> Result<Vec<(String, String)>>;
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
    /// Subscribes to this store's commits: the id of each run whose state, tasks, events,
    /// cancel request or approvals a commit changed (leases and pool claims are not
    /// announced). On PostgreSQL the commits of every process on the database, while its
    /// listener is connected ([`Changes::hears_others`]); on SQLite only this store's own.
    /// Readers keep a slower fallback poll for what the feed cannot hear.
    fn changes(&self) -> Changes;

    /// Records that a run's deadline (`key` none) or a task's was missed; the first record
    /// stands. Returns whether this call made it: of all the processes that notice the same
    /// miss (a resumed run's new owner, another replica), only the one that gets `true`
    /// reports it.
    async fn record_deadline_miss(
        &self,
        run: &RunId,
        key: Option<&TaskKey>,
        at: Millis,
    ) -> Result<bool>;

    /// The result stored under a task's cache key (by [`Change::CacheSaved`]) if it was made
    /// at or after `not_before` (a `cache.ttl` ago; `None` accepts any age).
    async fn cached_result(
        &self,
        namespace: &str,
        pipeline: &str,
        task_id: &str,
        cache_key: &str,
        not_before: Option<Millis>,
    ) -> Result<Option<CacheEntry>>;
    /// Every pool, by name, with its slots used and tasks waiting as they count at `now`
    /// (claims of runs whose lease has expired, or moved to another owner, do not).
    async fn pools(&self, now: Millis) -> Result<Vec<PoolRecord>>;
    async fn pool(&self, name: &str, now: Millis) -> Result<Option<PoolRecord>>;
    /// Creates a pool or changes its slots; `description` none keeps the current one. Returns
    /// the pool as set, with its counts at `at`.
    async fn put_pool(
        &self,
        name: &str,
        slots: u32,
        description: Option<&str>,
        at: Millis,
    ) -> Result<PoolRecord>;
    /// Deletes a pool; returns whether it existed. Claims on it stay until their tasks end,
    /// and tasks that ask it for a slot afterwards find no pool.
    async fn delete_pool(&self, name: &str) -> Result<bool>;
    /// Asks `pool` for a slot for task `key` of `run`, of `priority`, on behalf of the
    /// holder of `lease` (refused with [`crate::Error::LeaseLost`] unless it is still the
    /// run's): in one transaction (on PostgreSQL under a lock of the
    /// pool's row), the claims that count are compared with the pool's slots, and the task
    /// takes a slot or is recorded waiting. A free slot goes first to the waiters of other runs
    /// of higher priority, then to those waiting longer: the task takes one only if fewer of
    /// them than free slots are ahead of it. A waiter counts while its run's lease counts and
    /// it asked in the last few seconds, so the caller asks again, every few hundred
    /// milliseconds, while it waits. The claim is released by [`Store::apply`] in the commit
    /// that gives the task a state other than `running` (a waiter cancelled or skipped, say) or
    /// finishes its attempt, by the run's end, and by [`Store::release_lease`].
    async fn claim_slot(
        &self,
        pool: &str,
        run: &RunId,
        key: &TaskKey,
        priority: i32,
        lease: &Lease,
        now: Millis,
    ) -> Result<SlotClaim>;
    /// Drops every claim of `owner`, a process known to be dead; returns how many.
    async fn drop_claims(&self, owner: &str) -> Result<u64>;
}
