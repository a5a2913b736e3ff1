//! What the store keeps, as plain records.

use baton_core::ids::{BackfillId, RunId, TaskKey};
use baton_core::spec::Overlap;
use baton_core::state::{AttemptState, RunState, TaskState};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The store never reads a clock: callers pass times in,
/// which keeps tests deterministic.
pub type Millis = i64;

/// A stored version of a pipeline definition, without its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRecord {
    pub hash: String,
    pub path: Option<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefinitionRecord {
    pub hash: String,
    pub namespace: String,
    pub name: String,
    pub source: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    /// The pipeline's namespace.
    pub namespace: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Content hash of the pipeline version the run is pinned to.
    pub version: String,
    pub state: RunState,
    /// The run's params by name, defaults filled in.
    pub params: serde_json::Value,
    /// `manual`, `schedule`, `webhook`, `pipeline` (an upstream run's success) or `parent` (a
    /// sub-pipeline task of [`RunRecord::parent`]).
    pub trigger: String,
    pub logical_date: Option<String>,
    /// Directory relative `working_dir`s and commands resolve against.
    pub base_dir: String,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Millis>,
    /// How many times the lease went to a new holder (see [`crate::Lease`]).
    #[serde(default)]
    pub lease_epoch: crate::LeaseEpoch,
    /// The runs this one shares a concurrency limit with (`pipeline:ns/name`,
    /// `backfill:<id>`); none means it is never held back.
    pub admission_group: Option<String>,
    pub admission_limit: Option<u32>,
    /// When it was let start; a queued run with a group and no `admitted_at` is waiting.
    pub admitted_at: Option<Millis>,
    pub backfill_id: Option<BackfillId>,
    /// Started with `--no-cache` (or the trigger's `no_cache`): tasks with `cache:` run
    /// without looking up an earlier result (and store their new one).
    #[serde(default)]
    pub no_cache: bool,
    /// The sub-pipeline task attempt that started this run, if one did.
    #[serde(default)]
    pub parent: Option<ParentRef>,
}

/// The attempt of a sub-pipeline task that started a run (its child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent run.
    pub run: RunId,
    /// The task instance of the parent run.
    pub task: TaskKey,
    /// Its attempt: each attempt starts its own child run.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub key: TaskKey,
    pub task_id: String,
    /// Order of creation, so listings follow the pipeline.
    pub position: i64,
    /// The fan-out item of this instance.
    pub item: Option<serde_json::Value>,
    pub state: TaskState,
    /// Attempts started, interrupted ones included.
    pub attempts: u32,
    /// Attempts lost to a crash of baton itself or with their worker; they do not use up the
    /// retry budget.
    pub interruptions: u32,
    /// Attempts made before the run was retried; they do not use up the retry budget either.
    pub retry_base: u32,
    pub next_attempt_at: Option<Millis>,
    pub outputs: Option<serde_json::Map<String, serde_json::Value>>,
    pub error: Option<String>,
    /// What the gate asks (its `approval.message`, rendered), once it has waited.
    pub approval_message: Option<String>,
    /// The earlier result this task reused instead of running (its `cache:` key matched).
    #[serde(default)]
    pub cached_from: Option<CacheSource>,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// The task instance whose stored result a cached task reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSource {
    pub run: RunId,
    pub task: TaskKey,
}

/// A successful result stored under a task's cache key.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// Where it was made.
    pub source: CacheSource,
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// When it was made (the success's commit); `cache.ttl` counts from here.
    pub created_at: Millis,
}

/// CPU and memory used by one attempt, from the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rusage {
    pub cpu_user_ms: i64,
    pub cpu_sys_ms: i64,
    pub max_rss_kb: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub key: TaskKey,
    pub attempt: u32,
    pub state: AttemptState,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub rusage: Option<Rusage>,
    pub log_path: String,
    pub error: Option<String>,
    /// The process group leader's pid (the group's id), once the attempt's process started.
    pub pid: Option<u32>,
    pub owner: Option<String>,
    /// Who runs it, once its process started (see [`AttemptProcess`]).
    #[serde(default)]
    pub process: Option<AttemptProcess>,
}

/// The identity of an attempt's process, precise enough to find it again after the process
/// that started it died: its group, when it started, and on which boot of which host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptProcess {
    /// The process group (its leader's pid).
    pub pgid: i32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22): a
    /// pid reused by another process has another.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` of the host that started it.
    pub boot_id: String,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub seq: i64,
    pub at: Millis,
    pub kind: String,
    pub task_key: Option<TaskKey>,
    pub attempt: Option<u32>,
    pub data: serde_json::Value,
    /// The lease epoch of the owner whose commit wrote it; none for writes no owner makes.
    pub epoch: Option<crate::LeaseEpoch>,
}

/// A run to create, with its first task instances.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: RunId,
    pub definition: DefinitionRecord,
    pub params: serde_json::Value,
    pub trigger: String,
    pub logical_date: Option<String>,
    pub base_dir: String,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub tasks: Vec<NewTask>,
    /// Holds the run back while its group is at its limit; `None` starts it at once.
    pub admission: Option<Admission>,
    pub backfill_id: Option<BackfillId>,
    /// Tasks with `cache:` neither look up nor reuse earlier results.
    pub no_cache: bool,
    /// The sub-pipeline task attempt starting it.
    pub parent: Option<ParentRef>,
}

/// How a new run joins its admission group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Runs sharing the limit: `pipeline:ns/name` or `backfill:<id>`.
    pub group: String,
    /// At most this many of the group's runs are admitted and unfinished at once.
    pub limit: u32,
    /// What creating a run does when the group is at its limit.
    pub overlap: Overlap,
}

/// A backfill: one run per schedule tick of `[start, end]`, at most `parallelism` at once.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BackfillRecord {
    pub id: BackfillId,
    pub namespace: String,
    pub pipeline: String,
    /// The definition every run of the backfill is pinned to.
    pub version: String,
    /// Index of the schedule whose ticks were enumerated.
    pub schedule: u32,
    /// The range as given (RFC 3339 or a date).
    pub start: String,
    pub end: String,
    pub parallelism: u32,
    /// The params every run gets, by name.
    pub params: serde_json::Value,
    /// How many runs it created.
    pub runs: u64,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
}

/// Which backfills to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct BackfillFilter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub limit: u32,
    /// Only backfills created before this one: the cursor of the next page.
    pub before: Option<String>,
}

impl BackfillFilter {
    /// Sets the pipeline from `name` (any namespace) or `namespace/name`.
    #[must_use]
    pub fn for_pipeline(mut self, pipeline: Option<&str>) -> Self {
        set_pipeline(&mut self.namespace, &mut self.pipeline, pipeline);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub key: TaskKey,
    pub task_id: String,
    pub position: i64,
    pub item: Option<serde_json::Value>,
    pub state: TaskState,
}

/// One state change. [`crate::Store::apply`] writes a batch of them, and one event each, in a
/// single transaction: the current-state tables and the event log never disagree.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Run {
        state: RunState,
        at: Millis,
        error: Option<String>,
    },
    /// New task instances (fan-out expansion).
    AddTasks(Vec<NewTask>),
    Task {
        key: TaskKey,
        state: TaskState,
        at: Millis,
        next_attempt_at: Option<Millis>,
        outputs: Option<serde_json::Map<String, serde_json::Value>>,
        error: Option<String>,
    },
    AttemptStarted {
        key: TaskKey,
        attempt: u32,
        at: Millis,
        log_path: String,
        owner: String,
        /// It follows an attempt lost to a crash (which `AttemptFinished` counted in
        /// `interruptions`).
        after_interruption: bool,
    },
    /// An attempt's process was started: who it is (after `AttemptStarted`, which is
    /// committed before the process exists).
    AttemptSpawned {
        key: TaskKey,
        attempt: u32,
        process: AttemptProcess,
        at: Millis,
    },
    /// A finished task made runnable again by retrying its run.
    Reopen {
        key: TaskKey,
        state: TaskState,
        at: Millis,
    },
    AttemptFinished {
        key: TaskKey,
        attempt: u32,
        state: AttemptState,
        /// When the attempt started (its `AttemptStarted`'s `at`), so whoever hears only the
        /// finish (a process resuming the run, another replica) can still time it.
        started_at: Millis,
        at: Millis,
        exit_code: Option<i32>,
        signal: Option<i32>,
        rusage: Option<Rusage>,
        error: Option<String>,
    },
    /// What a gate asks its approvers, rendered when the task starts waiting; in the commit
    /// that sets it waiting.
    Asked {
        key: TaskKey,
        message: String,
        at: Millis,
    },
    /// A person's decision on an approval gate, as the dispatcher acts on it. The decision
    /// itself was recorded by [`crate::Store::decide`]; this carries who made it into the
    /// commit that approves or fails the task, for the event log and observers.
    Decided {
        key: TaskKey,
        approved: bool,
        by: String,
        comment: Option<String>,
        /// When the person decided.
        at: Millis,
    },
    /// A task with `cache:` looked its rendered key up before running: `hit` names the earlier
    /// result it reuses (in the commit that succeeds it with that result's outputs, and recorded
    /// as its `cached_from`); none is a miss, and the task runs.
    CacheChecked {
        key: TaskKey,
        cache_key: String,
        hit: Option<CacheSource>,
        at: Millis,
    },
    /// A successful result stored under the task's cache key for later runs, in the commit
    /// that records the success (so a success and its cache entry exist together or not at
    /// all). Replaces an earlier entry of the same task and key.
    CacheSaved {
        key: TaskKey,
        cache_key: String,
        outputs: serde_json::Map<String, serde_json::Value>,
        at: Millis,
    },
    /// The files a successful attempt uploaded (`artifacts.upload`), already in the artifact
    /// store `store`: in the commit that records the success, so a task downstream never sees
    /// an upstream success without its files.
    ArtifactsStored {
        key: TaskKey,
        attempt: u32,
        store: String,
        files: Vec<ArtifactFile>,
        at: Millis,
    },
}

/// One file an attempt uploaded: where it was under the working directory, and its content's
/// address in the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// Relative to the working directory, `/`-separated.
    pub path: String,
    /// `sha256:` and the hex SHA-256 of the content.
    pub digest: String,
    pub size: u64,
    /// Whether it is placed downstream with the execute bit.
    pub executable: bool,
}

/// A file of [`ArtifactFile`] as recorded for an attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactRecord {
    pub key: TaskKey,
    pub attempt: u32,
    /// The artifact store holding it (`dir:PATH`, `s3://BUCKET/PREFIX`).
    pub store: String,
    pub file: ArtifactFile,
    pub stored_at: Millis,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub state: Option<RunState>,
    pub limit: u32,
    /// Only runs created before this one (ids sort by creation): the cursor of the next page.
    pub before: Option<String>,
    /// Only runs created at or after this time.
    pub created_after: Option<Millis>,
    /// Only runs created before this time.
    pub created_before: Option<Millis>,
    /// Only finished runs whose `(finished_at, id)` comes after this pair, listed oldest finish
    /// first (whatever `order` says): the way to follow completions. `(t, "")` starts at `t`
    /// inclusive; the last run of a page is the cursor of the next one.
    pub finished_after: Option<(Millis, String)>,
}

/// Sets a filter's pipeline from `name` (any namespace) or `namespace/name`; `None` leaves
/// the filter as it is.
fn set_pipeline(namespace: &mut Option<String>, name: &mut Option<String>, given: Option<&str>) {
    let Some(given) = given else { return };
    match given.split_once('/') {
        Some((ns, n)) => {
            *namespace = Some(ns.to_owned());
            *name = Some(n.to_owned());
        }
        None => *name = Some(given.to_owned()),
    }
}

impl RunFilter {
    /// Sets the pipeline from `name` (any namespace) or `namespace/name`.
    #[must_use]
    pub fn for_pipeline(mut self, pipeline: Option<&str>) -> Self {
        set_pipeline(&mut self.namespace, &mut self.pipeline, pipeline);
        self
    }
}

/// Which dead letters to list, newest failure first.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub limit: u32,
    /// Only dead letters after this one in the listing: the cursor of the next page.
    pub before: Option<DeadLetterCursor>,
}

impl DeadLetterFilter {
    /// Sets the pipeline from `name` (any namespace) or `namespace/name`.
    #[must_use]
    pub fn for_pipeline(mut self, pipeline: Option<&str>) -> Self {
        set_pipeline(&mut self.namespace, &mut self.pipeline, pipeline);
        self
    }
}

/// Which of a run's task instances a page holds: in pipeline order (position, then key),
/// after [`TaskPageFilter::after`], at most `limit`, optionally only those in one state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPageFilter {
    pub after: Option<TaskCursor>,
    pub state: Option<TaskState>,
    pub limit: u32,
}

/// A place in a run's task listing, which is ordered by position then key: unique, and stable
/// while a fan-out adds instances (they sort after the task that made them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCursor {
    pub position: i64,
    pub key: TaskKey,
}

impl TaskCursor {
    /// The cursor just after `task`.
    pub fn after(task: &TaskRecord) -> Self {
        Self {
            position: task.position,
            key: task.key.clone(),
        }
    }

    /// `position.key`: a position holds no `.`, task keys may, so the key comes last.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.position, self.key)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (position, key) = text.split_once('.')?;
        Some(Self {
            position: position.parse().ok()?,
            key: TaskKey::from_string(Some(key).filter(|k| !k.is_empty())?),
        })
    }
}

/// A position in the dead-letter listing, which is ordered by the task's finish time, then
/// run id, then task key (all descending): unique and stable while failures are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCursor {
    pub finished_at: Millis,
    pub run: RunId,
    pub key: TaskKey,
}

impl DeadLetterCursor {
    /// `finished_at.run.key`: run ids hold no `.`, task keys may, so the key comes last.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.finished_at, self.run, self.key)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let finished_at = parts.next()?.parse().ok()?;
        let run = parts.next().filter(|r| !r.is_empty())?;
        let key = parts.next().filter(|k| !k.is_empty())?;
        Some(Self {
            finished_at,
            run: RunId::from_string(run),
            key: TaskKey::from_string(key),
        })
    }
}

/// How many task instances of one pipeline's unfinished runs are in one state: what the
/// server's `baton_tasks_running`, `baton_tasks_queued` and `baton_approvals_pending` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCount {
    pub namespace: String,
    pub pipeline: String,
    pub state: TaskState,
    pub count: u64,
}

/// How many of something one pipeline has (its dead letters, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineCount {
    pub namespace: String,
    pub pipeline: String,
    pub count: u64,
}

/// A task instance that failed for good (its retries used up) in a run that has ended: it
/// stays failed until someone requeues it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeadLetterRecord {
    pub run: RunId,
    pub namespace: String,
    pub pipeline: String,
    /// The run's state: failed or cancelled.
    pub run_state: RunState,
    pub key: TaskKey,
    pub task_id: String,
    /// Attempts started, interrupted ones and those before earlier retries included.
    pub attempts: u32,
    pub error: Option<String>,
    /// Of the last attempt (none when the task failed before starting one).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub log_path: Option<String>,
    pub finished_at: Millis,
}

impl DeadLetterRecord {
    pub fn cursor(&self) -> DeadLetterCursor {
        DeadLetterCursor {
            finished_at: self.finished_at,
            run: self.run.clone(),
            key: self.key.clone(),
        }
    }
}

/// Requests from other processes that the owner of a run must act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    pub cancel_requested: bool,
    pub approvals: Vec<ApprovalRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRecord {
    pub key: TaskKey,
    pub approved: bool,
    pub decided_by: String,
    pub decided_at: Millis,
    pub comment: Option<String>,
}

/// A run without its params and bookkeeping: what overviews (the UI's pipelines page) need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunBrief {
    pub id: RunId,
    pub namespace: String,
    pub pipeline: String,
    pub state: RunState,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// A task instance waiting for a person's approval, with its run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalWait {
    pub run: RunId,
    pub namespace: String,
    pub pipeline: String,
    pub key: TaskKey,
    pub task_id: String,
    /// When the task started waiting (its last state change), if known.
    pub since: Option<Millis>,
    /// What the gate asks.
    pub message: Option<String>,
}

/// A pool: a named number of slots that the tasks naming it share, across every run and
/// every process on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub name: String,
    /// Tasks of the pool running at once at most; 0 pauses the pool.
    pub slots: u32,
    pub description: Option<String>,
    /// Slots held now by running tasks (of runs whose owner is alive).
    pub used: u32,
    /// Tasks ready to run and waiting for a slot now.
    pub waiting: u32,
}

/// What asking a pool for a slot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotClaim {
    /// The task holds a slot (now, or already did).
    Held,
    /// Every slot is taken, or the free ones go to waiters ahead of the task; it is recorded
    /// waiting. `holders` are the owners holding the pool's slots, so the caller can look for
    /// dead ones among them.
    Full { holders: Vec<String> },
    /// No pool of that name.
    NoPool,
}

/// What [`crate::Store::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// This call admitted the run, so its caller is the one to drive it.
    Now,
    /// The run needs no admission, or was admitted before (by this process or another).
    Before,
    /// Not admitted: its group is full, runs wait ahead of it, or it has ended.
    No,
}

impl Admitted {
    /// Whether the run may start.
    pub fn is_admitted(self) -> bool {
        !matches!(self, Self::No)
    }
}

/// Asks [`crate::Store::claim_orphans`] for runs nobody drives.
#[derive(Debug, Clone, Copy)]
pub struct OrphanClaim<'a> {
    /// Who takes the runs' leases.
    pub owner: &'a baton_core::ids::LeaseOwner,
    pub now: Millis,
    /// Until when the taken leases hold (the new owner's dispatcher renews them).
    pub expires_at: Millis,
    /// Lease holders known to be dead (processes of this host that are gone): their leases
    /// are taken without waiting for them to expire.
    pub dead: &'a [String],
    /// Runs found without a lease by an earlier [`crate::Store::unowned_runs`]: taken if they
    /// still have none.
    pub unowned: &'a [RunId],
    /// At most this many runs.
    pub limit: u32,
}
