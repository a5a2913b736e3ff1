//! The dispatcher: the one owner of a run's state while it executes.
//!
//! It decides what runs next, persists every transition before acting on it, and talks to the
//! executor only by messages. Everything it knows is rebuilt from the store on start, so a
//! crashed run resumes where its last committed transition left it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{LeaseOwner, PipelineId, RunId, TaskKey};
use baton_core::model::{Action, ForEach, Pipeline, Task};
use baton_core::rules::{Decision, decide};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_store::{CacheSource, Change, Lease, Millis, NewTask, RunRecord, Store, TaskRecord};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::executor::{
    AttemptSpec, CancelHandle, Executor, Finished, Leftover, Outcome, Spawned, exit_record,
};
use crate::observer::{Observer, Observers, RunScope};
use crate::render::{self, RunContext, Scope};
use crate::subpipeline::{self, ChildRunner, Pipelines};

mod lease;

/// Attempts a task may lose to baton stopping before it fails (`[engine] interruption_limit`).
pub const DEFAULT_INTERRUPTION_LIMIT: u32 = 5;

/// How long a run's lease lasts unless configured.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a run's lease is renewed unless configured: a third of its life, so two renewals
/// can fail (a slow database) before it runs out.
pub const DEFAULT_LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often a run's control rows are read unless configured (see `Options::control_interval`).
pub const DEFAULT_CONTROL_INTERVAL: Duration = Duration::from_millis(200);

/// How a dispatcher runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Attempts running at once.
    pub parallelism: usize,
    /// Where logs and output files go.
    pub home: PathBuf,
    /// Who holds the run's lease: `host:pid:nonce`.
    pub owner: LeaseOwner,
    /// Attempts lost to crashes of baton itself that a task survives; they do not use its
    /// retry budget, but a task that keeps taking baton down must stop somewhere.
    pub interruption_limit: u32,
    /// How often to look for cancel requests and approvals that the store's change feed
    /// cannot announce: those of other processes on SQLite (or while PostgreSQL's listener is
    /// down). With the listener connected, at least every second. A request the feed
    /// announces is read at once.
    pub control_interval: Duration,
    /// How long the run's lease lasts without a renewal (`[engine] lease_ttl`): a replica
    /// takes over a run whose owner stalls longer.
    pub lease_ttl: Duration,
    /// How often the lease is renewed (`[engine] lease_renew_interval`); below `lease_ttl`.
    pub lease_renew_interval: Duration,
    /// How long a drain waits for running attempts before stopping them.
    pub drain_grace: Duration,
    /// Told of every committed change (metrics, traces, lineage, notifications).
    pub observers: Observers,
    /// Where sub-pipeline tasks find the pipelines they start; without it they fail.
    pub pipelines: Option<Arc<dyn Pipelines>>,
    /// Who drives the child runs of sub-pipeline tasks (a server's runner);
    /// [`crate::execute_with_children`] sets its own.
    pub child_runner: Option<Arc<dyn ChildRunner>>,
    /// Which of this process's environment variables tasks start with (and `{{ env.X }}`
    /// sees).
    pub environment: crate::TaskEnvironment,
}

impl Options {
    pub fn new(home: PathBuf) -> Self {
        Self {
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            home,
            owner: crate::owner_id(),
            interruption_limit: DEFAULT_INTERRUPTION_LIMIT,
            control_interval: DEFAULT_CONTROL_INTERVAL,
            lease_ttl: DEFAULT_LEASE_TTL,
            lease_renew_interval: DEFAULT_LEASE_RENEW_INTERVAL,
            drain_grace: Duration::from_secs(30),
            observers: Observers::default(),
            pipelines: None,
            child_runner: None,
            environment: crate::TaskEnvironment::default(),
        }
    }
}

/// The fallback read of a run's control rows while the store hears every process's commits:
/// only a lost notification waits for it, and approval timeouts are noticed on these reads.
const HEARD_CONTROL_INTERVAL: Duration = Duration::from_secs(1);

/// What the owner of a run asks its dispatcher to do, through the `stop` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancel the run: terminate running attempts, record everything unfinished `cancelled`.
    Cancel,
    /// Hand the run back (a server shutting down): start nothing new, let running attempts
    /// finish within `Options::drain_grace`, stop the rest and record them interrupted, and
    /// return with the run still running so the next owner resumes it.
    Drain,
}

/// A state change worth showing to a person watching the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Task {
        key: TaskKey,
        state: TaskState,
        attempt: u32,
        at: Millis,
        error: Option<String>,
    },
    Run {
        state: RunState,
        at: Millis,
    },
    /// A task reuses an earlier result (its `cache.key` matched) instead of running; its
    /// success follows.
    Cached {
        key: TaskKey,
        from: CacheSource,
        at: Millis,
    },
    /// A sub-pipeline task's child run, when the attempt takes it up (started, or found again
    /// after a resume) and when it ends.
    Child {
        key: TaskKey,
        run: RunId,
        pipeline: PipelineId,
        state: RunState,
        at: Millis,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskRef {
    Dag(usize),
    Hook { success: bool },
}

#[derive(Debug)]
struct Inst {
    key: TaskKey,
    task: TaskRef,
    /// The record of a fan-out task as a whole; its instances are its children.
    group: bool,
    parent: Option<usize>,
    item: Option<Json>,
    state: TaskState,
    attempts: u32,
    interruptions: u32,
    /// Attempts made before the run was retried.
    retry_base: u32,
    /// The next attempt follows one lost to a crash.
    after_interruption: bool,
    outputs: Map<String, Json>,
    /// Retry time, or approval deadline while waiting for one.
    next_at: Option<Millis>,
    position: i64,
    /// The rendered `cache.key`, once looked up: a success is stored under it.
    cache_key: Option<String>,
    /// Since when it waits for a slot of its pool, as the store records it.
    waiting_since: Option<Millis>,
}

/// A ready task's place: priority, then since when it waits for a slot, then position, so a
/// run asks for slots in the order the store hands them out (see `Store::claim_slot`).
type Ready = (i32, Reverse<Millis>, Reverse<i64>, Reverse<usize>);

/// An attempt this dispatcher started and has not heard the end of.
#[derive(Debug)]
struct Running {
    handle: CancelHandle,
    /// The `at` of its `AttemptStarted`, repeated in its `AttemptFinished`.
    started_at: Millis,
    /// A sub-pipeline attempt's watch of its child run, which a drain drops: the child is
    /// not this run's to stop, and the next owner watches it again.
    detach: Option<tokio::task::AbortHandle>,
}

impl Inst {
    /// A record created during the run, before any attempt.
    fn new(key: TaskKey, task: TaskRef, state: TaskState, position: i64) -> Self {
        Self {
            key,
            task,
            group: false,
            parent: None,
            item: None,
            state,
            attempts: 0,
            interruptions: 0,
            retry_base: 0,
            after_interruption: false,
            outputs: Map::new(),
            next_at: None,
            position,
            cache_key: None,
            waiting_since: None,
        }
    }
}

/// Drives a run to a final state (or until told to stop).
pub async fn execute(
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    run: &RunId,
    opts: &Options,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    stop: watch::Receiver<Option<Stop>>,
) -> Result<RunState> {
    let record = store
        .run(run)
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(run.to_string()))?;
    if record.state.is_final() {
        return Ok(record.state);
    }
    let asked = tokio::time::Instant::now();
    let lease = lease::acquire(store.as_ref(), &record, opts).await?;
    let definition = store
        .definition(&record.version)
        .await?
        .ok_or_else(|| Error::Definition {
            run: run.to_string(),
            detail: format!("definition `{}` is missing", record.version),
        })?;
    let loaded = baton_core::load(&definition.source);
    let pipeline = loaded.pipeline.ok_or_else(|| Error::Definition {
        run: run.to_string(),
        detail: loaded
            .diagnostics
            .first()
            .map_or_else(String::new, |d| d.message.clone()),
    })?;
    let tasks = store.tasks(run).await?;
    let attempts = store.attempts(run).await?;
    let mut d = Dispatcher::new(
        store.clone(),
        executor,
        record,
        lease,
        Arc::new(pipeline),
        opts,
        progress,
    );
    d.held_until = asked + opts.lease_ttl;
    d.load(tasks);
    let result = d.drive(&attempts, stop).await;
    match result {
        // Someone else drives the run now: stop what still runs here and write nothing more,
        // not even the release (the lease is not ours to give back).
        Err(Error::Store(baton_store::Error::LeaseLost { run, holder, epoch })) => {
            d.abandon().await;
            d.opts.observers.lease_lost(d.scope(), &holder);
            Err(Error::LeaseLost { run, holder, epoch })
        }
        // Unrenewable until just before it expires: another process may take the run over
        // once it does, so nothing of this one's may still run then.
        Err(e @ Error::LeaseExpired { .. }) => {
            d.abandon().await;
            d.opts.observers.lease_lost(d.scope(), "");
            Err(e)
        }
        result => {
            let _ = store.release_lease(run, &d.lease).await;
            result
        }
    }
}

struct Dispatcher {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    run: RunRecord,
    /// The run's lease, which every write names: the store refuses them once it is lost.
    lease: Lease,
    /// The run's last commit: the next names the number after it.
    commits: baton_store::CommitSeq,
    /// Until when the lease is surely held: its last successful renewal (or acquisition),
    /// as asked, plus its TTL.
    held_until: tokio::time::Instant,
    pipeline: Arc<Pipeline>,
    opts: Options,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    ctx: RunContext,
    insts: Vec<Inst>,
    by_key: HashMap<TaskKey, usize>,
    /// The record of each DAG task.
    primary: Vec<usize>,
    children: HashMap<usize, Vec<usize>>,
    /// Per fan-out group, how many instances have not finished; the group completes at zero.
    unfinished: HashMap<usize, usize>,
    /// `task id -> { outputs, state }` of finished tasks, for templates.
    finished: Map<String, Json>,
    ready: BinaryHeap<Ready>,
    /// Queued tasks with `cache:` whose key is still to be looked up (before they are ready).
    lookups: Vec<usize>,
    timers: BinaryHeap<Reverse<(Millis, usize)>>,
    running: HashMap<usize, Running>,
    cancelling: bool,
    /// When draining, the moment running attempts are stopped.
    drain_deadline: Option<tokio::time::Instant>,
    pending: Vec<Change>,
    notes: Vec<Progress>,
    done_tx: mpsc::UnboundedSender<Finished>,
    done_rx: mpsc::UnboundedReceiver<Finished>,
    spawned_tx: mpsc::UnboundedSender<Spawned>,
    spawned_rx: mpsc::UnboundedReceiver<Spawned>,
    next_position: i64,
    logs_dir: PathBuf,
    outputs_dir: PathBuf,
    /// Pipeline `env` values that failed to render.
    env_errors: Vec<String>,
    programs: std::cell::RefCell<crate::programs::Programs>,
    /// Some task names a pool.
    pooled: bool,
    /// Sub-pipeline attempts found running on start (attempt, started at), whose child runs
    /// are watched again.
    reattach: Vec<(usize, u32, Millis)>,
    /// Attempts found running on start whose process had exited and recorded how (see
    /// `exit_record`): their end is reported as if just heard.
    recovered: Vec<(usize, Finished, Millis)>,
    /// While tasks wait for a pool's slot: when to ask again (sooner if one comes free).
    pool_retry_at: Option<tokio::time::Instant>,
}

impl Dispatcher {
    fn new(
        store: Arc<dyn Store>,
        executor: Arc<dyn Executor>,
        run: RunRecord,
        lease: Lease,
        pipeline: Arc<Pipeline>,
        opts: &Options,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Self {
        let run_id = run.id.clone();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (spawned_tx, spawned_rx) = mpsc::unbounded_channel();
        let pipeline_pooled = pipeline
            .tasks
            .iter()
            .chain(&pipeline.on_success)
            .chain(&pipeline.on_failure)
            .any(|t| t.pool.is_some());
        let mut env: Map<String, Json> = opts
            .environment
            .base(&pipeline, std::env::vars())
            .into_iter()
            .map(|(k, v)| (k, Json::String(v)))
            .collect();
        let ctx = RunContext {
            params: run.params.clone(),
            run: json!({
                "id": run.id,
                "logical_date": run.logical_date,
                "trigger": run.trigger,
            }),
            pipeline: json!({
                "name": pipeline.id.name,
                "namespace": pipeline.id.namespace,
                "version": pipeline.version,
            }),
            env: Map::new(),
        };
        // The pipeline's own env may use params and run values; render it once. A value that
        // cannot render fails every task that would receive it (see `prepare`).
        let empty = Map::new();
        let mut env_errors = Vec::new();
        for (k, v) in &pipeline.env {
            let so_far = RunContext {
                env: env.clone(),
                ..ctx.clone()
            };
            let scope = Scope::new(&so_far, &empty, None);
            match render::render(&v.0, &scope) {
                Ok(value) => {
                    env.insert(k.clone(), Json::String(value));
                }
                Err(e) => env_errors.push(format!("cannot render pipeline env `{k}`: {e}")),
            }
        }
        Self {
            store,
            executor,
            run,
            commits: lease.commits,
            lease,
            held_until: tokio::time::Instant::now() + opts.lease_ttl,
            opts: opts.clone(),
            progress,
            ctx: RunContext { env, ..ctx },
            insts: Vec::new(),
            by_key: HashMap::new(),
            primary: vec![usize::MAX; pipeline.tasks.len()],
            pipeline,
            children: HashMap::new(),
            unfinished: HashMap::new(),
            finished: Map::new(),
            ready: BinaryHeap::new(),
            lookups: Vec::new(),
            timers: BinaryHeap::new(),
            running: HashMap::new(),
            cancelling: false,
            drain_deadline: None,
            pending: Vec::new(),
            notes: Vec::new(),
            done_tx,
            done_rx,
            spawned_tx,
            spawned_rx,
            next_position: 0,
            env_errors,
            logs_dir: opts.home.join("logs").join(run_id.as_str()),
            outputs_dir: opts.home.join("runs").join(run_id.as_str()).join("outputs"),
            programs: std::cell::RefCell::default(),
            pooled: pipeline_pooled,
            pool_retry_at: None,
            reattach: Vec::new(),
            recovered: Vec::new(),
        }
    }

    fn scope(&self) -> RunScope<'_> {
        RunScope {
            run: &self.run,
            pipeline: &self.pipeline,
            store: &self.store,
        }
    }

    fn task(&self, i: usize) -> &Task {
        task_of(&self.pipeline, self.insts[i].task)
    }

    fn load(&mut self, records: Vec<TaskRecord>) {
        for r in records {
            let task = match r.task_id.as_str() {
                "on_success" if self.pipeline.task_index("on_success").is_none() => {
                    TaskRef::Hook { success: true }
                }
                "on_failure" if self.pipeline.task_index("on_failure").is_none() => {
                    TaskRef::Hook { success: false }
                }
                id => match self.pipeline.task_index(id) {
                    Some(t) => TaskRef::Dag(t),
                    None => continue,
                },
            };
            let is_child = r.key.as_str() != r.task_id;
            let i = self.insts.len();
            let group = !is_child
                && matches!(task, TaskRef::Dag(t) if self.pipeline.tasks[t].for_each.is_some());
            let parent = if is_child {
                if let TaskRef::Dag(t) = task {
                    let p = self.primary[t];
                    self.children.entry(p).or_default().push(i);
                    Some(p)
                } else {
                    None
                }
            } else {
                if let TaskRef::Dag(t) = task {
                    self.primary[t] = i;
                }
                None
            };
            self.next_position = self.next_position.max(r.position + 1);
            self.by_key.insert(r.key.clone(), i);
            self.insts.push(Inst {
                key: r.key,
                task,
                group,
                parent,
                item: r.item,
                state: r.state,
                attempts: r.attempts,
                interruptions: r.interruptions,
                retry_base: r.retry_base,
                after_interruption: false,
                outputs: r.outputs.unwrap_or_default(),
                next_at: r.next_attempt_at,
                position: r.position,
                cache_key: None,
                waiting_since: None,
            });
        }
        // A hook record means the outcome was decided before a crash; hooks read it as `run.state`.
        if let Some(success) = self.insts.iter().find_map(|i| match i.task {
            TaskRef::Hook { success } => Some(success),
            TaskRef::Dag(_) => None,
        }) {
            let state = if success {
                RunState::Succeeded
            } else {
                RunState::Failed
            };
            self.ctx.run["state"] = json!(state);
        }
        for (&group, children) in &self.children {
            let open = children
                .iter()
                .filter(|&&c| !self.insts[c].state.is_final())
                .count();
            self.unfinished.insert(group, open);
        }
    }

    fn set(&mut self, i: usize, state: TaskState, error: Option<String>) {
        let now = now_ms();
        let inst = &mut self.insts[i];
        if let Some(p) = inst.parent
            && !inst.state.is_final()
            && state.is_final()
            && let Some(n) = self.unfinished.get_mut(&p)
        {
            *n = n.saturating_sub(1);
        }
        inst.state = state;
        let outputs = (state == TaskState::Succeeded && !inst.outputs.is_empty())
            .then(|| inst.outputs.clone());
        self.pending.push(Change::Task {
            key: inst.key.clone(),
            state,
            at: now,
            next_attempt_at: inst
                .next_at
                .filter(|_| matches!(state, TaskState::Retrying | TaskState::WaitingApproval)),
            outputs,
            error: error.clone(),
        });
        self.notes.push(Progress::Task {
            key: inst.key.clone(),
            state,
            attempt: inst.attempts,
            at: now,
            error,
        });
    }

    /// Commits pending changes, then tells watchers. Nothing is acted on before this returns.
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.pending);
        self.commit(&changes).await?;
        crate::fault::after_commit();
        if self.pooled && changes.iter().any(frees_slot) {
            // Tasks waiting here ask at once, and so do other runs of this process. A time, not
            // `None`: the loop must not sleep until some other event when this commit came
            // after this pass's tasks were told to wait.
            self.pool_retry_at = Some(tokio::time::Instant::now());
            crate::pools::released();
        }
        crate::run_log::committed(self.scope(), &changes);
        self.opts.observers.committed(self.scope(), &changes);
        if let Some(tx) = &self.progress {
            for note in self.notes.drain(..) {
                let _ = tx.send(note);
            }
        } else {
            self.notes.clear();
        }
        Ok(())
    }

    async fn drive(
        &mut self,
        attempts: &[baton_store::AttemptRecord],
        mut stop: watch::Receiver<Option<Stop>>,
    ) -> Result<RunState> {
        for dir in [&self.logs_dir, &self.outputs_dir] {
            // Without them every attempt would fail; say so once, plainly.
            std::fs::create_dir_all(dir).map_err(|e| Error::Home {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        let leftovers = self.leftovers(attempts);
        if !leftovers.is_empty() {
            self.executor.stop_leftovers(&self.run.id, leftovers).await;
        }
        self.reconcile(attempts);
        if self.run.state == RunState::Queued {
            self.pending.push(Change::Run {
                state: RunState::Running,
                at: now_ms(),
                error: None,
            });
            self.notes.push(Progress::Run {
                state: RunState::Running,
                at: now_ms(),
            });
        }
        let work: Vec<usize> = (0..self.insts.len()).collect();
        self.settle(work);
        for (i, attempt, started_at) in std::mem::take(&mut self.reattach) {
            match self.prepare_call(i, attempt, started_at) {
                Ok(call) => self.watch_child(i, call),
                // It rendered when the attempt started; it fails as any attempt would.
                Err(e) => {
                    self.running.insert(
                        i,
                        Running {
                            handle: CancelHandle::new().0,
                            started_at,
                            detach: None,
                        },
                    );
                    let _ = self.done_tx.send(Finished {
                        key: self.insts[i].key.clone(),
                        attempt,
                        outcome: Outcome::Error(e),
                        rusage: None,
                    });
                }
            }
        }
        for (i, finished, started_at) in std::mem::take(&mut self.recovered) {
            self.running.insert(
                i,
                Running {
                    handle: CancelHandle::new().0,
                    started_at,
                    detach: None,
                },
            );
            let _ = self.done_tx.send(finished);
        }
        // Asked to cancel before it started (say while waiting for admission): no task starts.
        if self.run.cancel_requested && !self.cancelling {
            self.cancel_all();
        }
        self.flush().await?;

        // Subscribed before the first read of control rows, so no request falls in between.
        let mut changes = self.store.changes();
        let mut next_control = tokio::time::Instant::now();
        let mut lease = tokio::time::interval(self.opts.lease_renew_interval);
        lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.start_ready().await?;
            if let Some(state) = self.finish_if_done().await? {
                return Ok(state);
            }
            if self.drain_deadline.is_some() && self.running.is_empty() {
                // Handed back: whatever is unfinished stays so in the store for the next owner.
                self.flush().await?;
                return Ok(RunState::Running);
            }
            let drain = async {
                match self.drain_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep = async {
                match next_timer {
                    Some(at) => {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let retry_at = self.pool_retry_at;
            let pool_retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Arms only record. The next `start_ready` commits the consequences together
                // with the attempts they start, in one transaction, before any process starts.
                Some(s) = self.spawned_rx.recv() => self.on_spawned(s),
                Some(f) = self.done_rx.recv() => {
                    // An executor reports the spawn before the end: take it first.
                    while let Ok(s) = self.spawned_rx.try_recv() {
                        self.on_spawned(s);
                    }
                    self.on_finished(f);
                    // Take every report that is already in, so they share one commit.
                    while let Ok(f) = self.done_rx.try_recv() {
                        self.on_finished(f);
                    }
                }
                () = sleep => self.fire_timers(),
                () = pool_retry => self.pool_retry_at = None,
                () = crate::pools::next_release(), if self.pool_retry_at.is_some() => {
                    self.pool_retry_at = None;
                }
                () = tokio::time::sleep_until(next_control) => {
                    // What is announced up to here, this read sees.
                    changes.clear();
                    self.poll_control().await?;
                    let fallback = if changes.hears_others() {
                        self.opts.control_interval.max(HEARD_CONTROL_INTERVAL)
                    } else {
                        self.opts.control_interval
                    };
                    next_control = tokio::time::Instant::now() + fallback;
                }
                // Only requests wake it, never its own commits.
                () = changes.requested(&self.run.id) => next_control = tokio::time::Instant::now(),
                _ = lease.tick() => self.renew().await?,
                () = drain => {
                    for running in self.running.values_mut() {
                        running.handle.cancel();
                    }
                    self.drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
                Ok(()) = stop.changed(), if !self.cancelling && self.drain_deadline.is_none() => {
                    match *stop.borrow() {
                        Some(Stop::Cancel) => self.cancel_all(),
                        Some(Stop::Drain) => {
                            self.detach_children();
                            self.ready.clear();
                            self.drain_deadline = Some(tokio::time::Instant::now() + self.opts.drain_grace);
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Turns what a crash left behind into states the loop can continue from.
    fn reconcile(&mut self, attempts: &[baton_store::AttemptRecord]) {
        let now = now_ms();
        for a in attempts.iter().filter(|a| a.state == AttemptState::Running) {
            let Some(&i) = self.by_key.get(&a.key) else {
                continue;
            };
            // Its child run went on without us: watch it again rather than start another.
            if self.insts[i].state == TaskState::Running
                && !self.insts[i].group
                && matches!(self.task(i).action, Action::Pipeline { .. })
            {
                self.reattach.push((i, a.attempt, a.started_at));
                continue;
            }
            // It ended before baton did, and said how: not an interruption.
            if self.insts[i].state == TaskState::Running
                && let Some((outcome, rusage)) = exit_record::read(&self.exit_path(i, a.attempt))
            {
                let finished = Finished {
                    key: a.key.clone(),
                    attempt: a.attempt,
                    outcome,
                    rusage,
                };
                self.recovered.push((i, finished, a.started_at));
                continue;
            }
            self.pending.push(Change::AttemptFinished {
                key: a.key.clone(),
                attempt: a.attempt,
                state: AttemptState::Interrupted,
                started_at: a.started_at,
                at: now,
                exit_code: None,
                signal: None,
                rusage: None,
                error: Some("baton stopped while this attempt ran".into()),
            });
            // The store counts it from this change: the same number.
            self.insts[i].interruptions += 1;
            if self.insts[i].state == TaskState::Running {
                let n = self.insts[i].interruptions;
                if n >= self.opts.interruption_limit {
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("interrupted {n} times by baton stopping")),
                    );
                } else {
                    self.insts[i].after_interruption = true;
                    self.set(i, TaskState::Queued, None);
                }
            }
        }
        for i in 0..self.insts.len() {
            match self.insts[i].state {
                TaskState::Running
                    if !self.insts[i].group
                        && !self.reattach.iter().any(|r| r.0 == i)
                        && !self.recovered.iter().any(|r| r.0 == i) =>
                {
                    self.insts[i].after_interruption = true;
                    self.set(i, TaskState::Queued, None);
                    self.push_ready(i);
                }
                // Not tried since it became runnable: its key may never have been looked up.
                TaskState::Queued if self.insts[i].attempts == self.insts[i].retry_base => {
                    self.push_runnable(i);
                }
                TaskState::Queued => self.push_ready(i),
                TaskState::Retrying => {
                    let at = self.insts[i].next_at.unwrap_or(now);
                    self.timers.push(Reverse((at, i)));
                }
                _ => {}
            }
        }
    }

    /// A queued task goes to the cache first when it has `cache:`, else straight to `ready`.
    fn push_runnable(&mut self, i: usize) {
        if self.task(i).cache.is_some() {
            self.lookups.push(i);
        } else {
            self.push_ready(i);
        }
    }

    fn push_ready(&mut self, i: usize) {
        let priority = self.task(i).priority;
        let inst = &self.insts[i];
        self.ready.push((
            priority,
            Reverse(inst.waiting_since.unwrap_or(Millis::MAX)),
            Reverse(inst.position),
            Reverse(i),
        ));
    }

    fn upstream_states(&self, t: usize) -> Vec<TaskState> {
        self.pipeline.dag.upstream[t]
            .iter()
            .map(|&u| {
                self.insts
                    .get(self.primary[u])
                    .map_or(TaskState::Pending, |i| i.state)
            })
            .collect()
    }

    /// Advances tasks whose situation changed: decides pending tasks, completes fan-out groups,
    /// and follows the consequences downstream. A work list, not recursion: a skip can cascade
    /// through thousands of tasks.
    fn settle(&mut self, mut work: Vec<usize>) {
        while let Some(i) = work.pop() {
            let inst = &self.insts[i];
            if let Some(p) = inst.parent {
                if inst.state.is_final() {
                    work.push(p);
                }
                continue;
            }
            let TaskRef::Dag(t) = inst.task else { continue };
            match inst.state {
                TaskState::Pending if !self.cancelling => self.decide_pending(i, t),
                TaskState::Running if inst.group => self.complete_group(i),
                _ => {}
            }
            if self.insts[i].state.is_final() {
                self.record_finished(i, t);
                for &down in &self.pipeline.dag.downstream[t] {
                    let di = self.primary[down];
                    if di != usize::MAX && self.insts[di].state == TaskState::Pending {
                        work.push(di);
                    }
                }
            }
        }
    }

    fn record_finished(&mut self, i: usize, t: usize) {
        let id = self.pipeline.tasks[t].id.to_string();
        if !self.finished.contains_key(&id) {
            let inst = &self.insts[i];
            self.finished
                .insert(id, json!({ "outputs": inst.outputs, "state": inst.state }));
        }
    }

    fn scope_item<'a>(&'a self, item: Option<&'a Json>) -> Scope<'a> {
        Scope::new(&self.ctx, &self.finished, item)
    }

    fn decide_pending(&mut self, i: usize, t: usize) {
        let task = &self.pipeline.tasks[t];
        match decide(task.trigger_rule, &self.upstream_states(t)) {
            Decision::Wait => {}
            Decision::Skip => self.set(i, TaskState::Skipped, None),
            Decision::UpstreamFailed => self.set(i, TaskState::UpstreamFailed, None),
            Decision::Run => {
                if task.for_each.is_none()
                    && let Some(cond) = &task.condition
                {
                    match render::condition(&cond.0, &self.scope_item(None)) {
                        Ok(true) => {}
                        Ok(false) => return self.set(i, TaskState::Skipped, None),
                        Err(e) => {
                            return self.set(
                                i,
                                TaskState::Failed,
                                Some(format!("cannot evaluate `if`: {e}")),
                            );
                        }
                    }
                }
                if let Some(approval) = &task.approval {
                    let timeout = approval
                        .timeout
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let message = approval.message.as_ref().map(|m| {
                        // A message that cannot be rendered still asks: the person sees why.
                        render::render(&m.0, &self.scope_item(None)).unwrap_or_else(|e| {
                            format!("{}\n(cannot render this message: {e})", m.0)
                        })
                    });
                    self.insts[i].next_at = timeout.map(|t| now_ms().saturating_add(t));
                    self.set(i, TaskState::WaitingApproval, None);
                    if let Some(message) = message {
                        self.pending.push(Change::Asked {
                            key: self.insts[i].key.clone(),
                            message,
                            at: now_ms(),
                        });
                    }
                    return;
                }
                self.activate(i, t);
            }
        }
    }

    /// Makes a task runnable: expands a fan-out, passes a gate, or queues it.
    fn activate(&mut self, i: usize, t: usize) {
        let task = &self.pipeline.tasks[t];
        if let Some(for_each) = &task.for_each {
            return self.expand(i, t, for_each.clone());
        }
        if matches!(task.action, Action::Gate) {
            return self.set(i, TaskState::Succeeded, None);
        }
        self.set(i, TaskState::Queued, None);
        self.push_runnable(i);
    }

    fn expand(&mut self, i: usize, t: usize, for_each: ForEach) {
        let items = match &for_each {
            ForEach::Items(items) => Ok(items.clone()),
            ForEach::Expression(e) => match render::evaluate(&e.0, &self.scope_item(None)) {
                Ok(Json::Array(items)) => Ok(items),
                Ok(other) => Err(format!(
                    "`for_each` must yield a list, got {}",
                    baton_core::model::json_kind(&other)
                )),
                Err(e) => Err(format!("cannot evaluate `for_each`: {e}")),
            },
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => return self.set(i, TaskState::Failed, Some(e)),
        };
        if items.is_empty() {
            return self.set(i, TaskState::Skipped, None);
        }
        let task = self.pipeline.tasks[t].clone();
        let labels = labels(&items);
        let mut new = Vec::with_capacity(items.len());
        let mut queued = Vec::new();
        for (item, label) in items.into_iter().zip(labels) {
            let key = TaskKey::instance(&task.id, &label);
            let state = match &task.condition {
                Some(cond) => match render::condition(&cond.0, &self.scope_item(Some(&item))) {
                    Ok(true) => TaskState::Queued,
                    Ok(false) => TaskState::Skipped,
                    Err(_) => TaskState::Queued,
                },
                None => TaskState::Queued,
            };
            let c = self.insts.len();
            let position = self.next_position;
            self.next_position += 1;
            new.push(NewTask {
                key: key.clone(),
                task_id: task.id.to_string(),
                position,
                item: Some(item.clone()),
                state,
            });
            self.by_key.insert(key.clone(), c);
            self.children.entry(i).or_default().push(c);
            self.insts.push(Inst {
                parent: Some(i),
                item: Some(item),
                ..Inst::new(key, TaskRef::Dag(t), state, position)
            });
            if state == TaskState::Queued {
                queued.push(c);
            }
        }
        self.unfinished.insert(i, queued.len());
        self.pending.push(Change::AddTasks(new));
        self.set(i, TaskState::Running, None);
        for c in queued {
            self.push_runnable(c);
        }
        // Every instance may have been skipped by `if`.
        self.complete_group(i);
    }

    fn complete_group(&mut self, i: usize) {
        if self.unfinished.get(&i).is_some_and(|&n| n > 0) {
            return;
        }
        let Some(children) = self.children.get(&i) else {
            return;
        };
        let states: Vec<TaskState> = children.iter().map(|&c| self.insts[c].state).collect();
        let failed = states.iter().filter(|s| s.is_failure()).count();
        let (state, error) = if failed > 0 {
            (
                TaskState::Failed,
                Some(format!("{failed} of {} instances failed", states.len())),
            )
        } else if states.contains(&TaskState::Cancelled) {
            (TaskState::Cancelled, None)
        } else if states.iter().all(|s| *s == TaskState::Skipped) {
            (TaskState::Skipped, None)
        } else {
            (TaskState::Succeeded, None)
        };
        // Downstream templates read a fan-out's outputs as lists, one value per instance.
        let mut outputs = Map::new();
        let TaskRef::Dag(t) = self.insts[i].task else {
            return;
        };
        for name in &self.pipeline.tasks[t].outputs {
            let values: Vec<Json> = children
                .iter()
                .map(|&c| {
                    self.insts[c]
                        .outputs
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Json::Null)
                })
                .collect();
            outputs.insert(name.to_string(), Json::Array(values));
        }
        self.insts[i].outputs = outputs;
        self.set(i, state, error);
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some(Reverse((at, i))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.insts[i].state == TaskState::Retrying && !self.cancelling {
                self.insts[i].next_at = None;
                self.set(i, TaskState::Queued, None);
                self.push_ready(i);
            }
        }
    }

    async fn poll_control(&mut self) -> Result<()> {
        let (store, run) = (&self.store, &self.run.id);
        let reading = crate::transient::retried("reading requests", || store.control(run));
        let deadline = self.deadline_from(tokio::time::Instant::now());
        let control = lease::within(deadline, run, reading).await??;
        if control.cancel_requested && !self.cancelling {
            self.cancel_all();
        }
        let now = now_ms();
        let mut work = Vec::new();
        for i in 0..self.insts.len() {
            if self.insts[i].state != TaskState::WaitingApproval {
                continue;
            }
            let TaskRef::Dag(t) = self.insts[i].task else {
                continue;
            };
            match control
                .approvals
                .iter()
                .find(|a| a.key == self.insts[i].key)
            {
                Some(a) => {
                    // Who decided travels with the commit that acts on it.
                    self.pending.push(Change::Decided {
                        key: a.key.clone(),
                        approved: a.approved,
                        by: a.decided_by.clone(),
                        comment: a.comment.clone(),
                        at: a.decided_at,
                    });
                    if a.approved {
                        self.insts[i].next_at = None;
                        self.activate(i, t);
                    } else {
                        let comment = a
                            .comment
                            .as_deref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default();
                        self.set(
                            i,
                            TaskState::Failed,
                            Some(format!("rejected by {}{comment}", a.decided_by)),
                        );
                    }
                }
                None if self.insts[i].next_at.is_some_and(|d| d <= now) => {
                    let timeout = self.pipeline.tasks[t]
                        .approval
                        .as_ref()
                        .and_then(|a| a.timeout);
                    let after = timeout.map(|d| format!(" after {d}")).unwrap_or_default();
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("approval timed out{after}")),
                    );
                }
                None => continue,
            }
            work.push(i);
        }
        self.settle(work);
        Ok(())
    }

    /// Drops the watches of sub-pipeline attempts, leaving them running in the store with
    /// their child runs, for the next owner of this run to watch again.
    fn detach_children(&mut self) {
        self.running.retain(|_, r| match &r.detach {
            Some(watch) => {
                watch.abort();
                false
            }
            None => true,
        });
    }

    /// Stops starting tasks, terminates running ones and marks everything else cancelled.
    fn cancel_all(&mut self) {
        self.cancelling = true;
        self.ready.clear();
        self.lookups.clear();
        self.timers.clear();
        for i in 0..self.insts.len() {
            let inst = &self.insts[i];
            // Running work stops through its executor; fan-out groups end with their instances.
            let running_group = inst.group && inst.state == TaskState::Running;
            let stops_itself = self.running.contains_key(&i) || running_group;
            if !inst.state.is_final() && !stops_itself {
                self.set(i, TaskState::Cancelled, None);
            }
        }
        for running in self.running.values_mut() {
            running.handle.cancel();
        }
        let groups: Vec<usize> = (0..self.insts.len())
            .filter(|&i| self.insts[i].group)
            .collect();
        for g in groups {
            if self.insts[g].state == TaskState::Running {
                self.complete_group(g);
            }
        }
    }

    async fn start_ready(&mut self) -> Result<()> {
        if self.drain_deadline.is_some() {
            self.ready.clear();
            self.lookups.clear();
            return self.flush().await;
        }
        self.check_cache().await?;
        let mut specs = Vec::new();
        let mut calls = Vec::new();
        // Tasks whose pool has no slot for them now, and the pools found full in this pass
        // (a lower-priority task of the same pool does not ask).
        let mut deferred: Vec<usize> = Vec::new();
        let mut full: Vec<baton_core::ids::PoolName> = Vec::new();
        let ask_pools = self
            .pool_retry_at
            .is_none_or(|at| at <= tokio::time::Instant::now());
        while self.running.len() + specs.len() + calls.len() < self.opts.parallelism.max(1) {
            let Some((_, _, _, Reverse(i))) = self.ready.pop() else {
                break;
            };
            if self.insts[i].state != TaskState::Queued {
                continue;
            }
            if let Some(pool) = self.task(i).pool.clone() {
                if !ask_pools || full.contains(&pool) {
                    deferred.push(i);
                    continue;
                }
                // Slots this run frees in its pending commit are given back first.
                if self.pending.iter().any(frees_slot) {
                    self.flush().await?;
                }
                let key = self.insts[i].key.clone();
                let now = now_ms();
                let slot = crate::pools::claim(
                    self.store.as_ref(),
                    pool.as_str(),
                    &self.run.id,
                    &key,
                    self.task(i).priority,
                    &self.lease,
                    now,
                )
                .await?;
                match slot {
                    crate::pools::Slot::Held => self.insts[i].waiting_since = None,
                    crate::pools::Slot::Full => {
                        self.insts[i].waiting_since.get_or_insert(now);
                        full.push(pool);
                        deferred.push(i);
                        continue;
                    }
                    crate::pools::Slot::Missing(why) => {
                        self.set(i, TaskState::Failed, Some(why));
                        self.settle(vec![i]);
                        continue;
                    }
                }
            }
            if matches!(self.task(i).action, Action::Pipeline { .. }) {
                let now = now_ms();
                let attempt = self.insts[i].attempts + 1;
                match self.prepare_call(i, attempt, now) {
                    Ok(call) => {
                        let inst = &mut self.insts[i];
                        inst.attempts = attempt;
                        self.pending.push(Change::AttemptStarted {
                            key: inst.key.clone(),
                            attempt,
                            at: now,
                            log_path: call.log_path.display().to_string(),
                            owner: self.opts.owner.to_string(),
                            after_interruption: std::mem::take(&mut inst.after_interruption),
                        });
                        self.set(i, TaskState::Running, None);
                        calls.push((i, call));
                    }
                    Err(e) => {
                        self.set(i, TaskState::Failed, Some(e));
                        self.settle(vec![i]);
                    }
                }
                continue;
            }
            match self.prepare(i) {
                Ok(spec) => {
                    let now = now_ms();
                    let inst = &mut self.insts[i];
                    inst.attempts += 1;
                    self.pending.push(Change::AttemptStarted {
                        key: inst.key.clone(),
                        attempt: inst.attempts,
                        at: now,
                        log_path: spec.log_path.display().to_string(),
                        owner: self.opts.owner.to_string(),
                        after_interruption: std::mem::take(&mut inst.after_interruption),
                    });
                    self.set(i, TaskState::Running, None);
                    specs.push((i, spec, now));
                }
                Err(e) => {
                    self.set(i, TaskState::Failed, Some(e));
                    self.settle(vec![i]);
                }
            }
        }
        for i in deferred {
            self.push_ready(i);
        }
        if !full.is_empty() {
            self.pool_retry_at = Some(tokio::time::Instant::now() + crate::pools::RETRY);
        } else if ask_pools {
            self.pool_retry_at = None;
        }
        self.flush().await?;
        for (i, spec, started_at) in specs {
            let handle = self.executor.start(spec, self.done_tx.clone());
            self.running.insert(
                i,
                Running {
                    handle,
                    started_at,
                    detach: None,
                },
            );
        }
        for (i, call) in calls {
            self.watch_child(i, call);
        }
        Ok(())
    }

    fn watch_child(&mut self, i: usize, call: subpipeline::Call) {
        let ctx = subpipeline::Context {
            store: Arc::clone(&self.store),
            pipelines: self.opts.pipelines.clone(),
            runner: self.opts.child_runner.clone(),
            poll: self.opts.control_interval,
            progress: self.progress.clone(),
        };
        let started_at = call.started_at;
        let (handle, abort) = subpipeline::start(ctx, call, self.done_tx.clone());
        self.running.insert(
            i,
            Running {
                handle,
                started_at,
                detach: Some(abort),
            },
        );
    }

    /// Renders a sub-pipeline task's attempt: the pipeline it starts and its params (string
    /// values are templates). An error fails the task before any child run exists.
    fn prepare_call(
        &self,
        i: usize,
        attempt: u32,
        started_at: Millis,
    ) -> std::result::Result<subpipeline::Call, String> {
        if let Some(e) = self.env_errors.first() {
            return Err(e.clone());
        }
        let inst = &self.insts[i];
        let task = self.task(i);
        let Action::Pipeline { pipeline, params } = &task.action else {
            return Err("not a sub-pipeline task".into());
        };
        let scope = self.scope_item(inst.item.as_ref());
        let mut rendered = Map::new();
        for (name, value) in params {
            let value = match value {
                Json::String(text) => Json::String(
                    render::render(text, &scope)
                        .map_err(|e| format!("cannot render param `{name}`: {e}"))?,
                ),
                other => other.clone(),
            };
            rendered.insert(name.clone(), value);
        }
        Ok(subpipeline::Call {
            parent: self.run.id.clone(),
            parent_logical_date: self.run.logical_date.clone(),
            no_cache: self.run.no_cache,
            key: inst.key.clone(),
            attempt,
            started_at,
            pipeline: pipeline.clone(),
            params: rendered,
            log_path: self
                .logs_dir
                .join(format!("{}.{attempt}.log", sanitize(inst.key.as_str()))),
            timeout: task.timeout.map(baton_core::duration::Duration::as_std),
            outputs: task.outputs.clone(),
            outputs_path: self.outputs_path(i, attempt),
        })
    }

    /// Looks up the cache keys of tasks that became runnable: a hit succeeds the task with the
    /// stored outputs and no attempt, a miss makes it ready. A success settles what follows,
    /// which may queue more tasks to look up.
    async fn check_cache(&mut self) -> Result<()> {
        while let Some(i) = self.lookups.pop() {
            if self.insts[i].state != TaskState::Queued {
                continue;
            }
            let Some(cache) = self.task(i).cache.clone() else {
                self.push_ready(i);
                continue;
            };
            if !self.env_errors.is_empty() {
                // `prepare` fails it, saying why.
                self.push_ready(i);
                continue;
            }
            let rendered =
                render::render(&cache.key.0, &self.scope_item(self.insts[i].item.as_ref()));
            let cache_key = match rendered {
                Ok(k) => k,
                Err(e) => {
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("cannot render `cache.key`: {e}")),
                    );
                    self.settle(vec![i]);
                    continue;
                }
            };
            self.insts[i].cache_key = Some(cache_key.clone());
            if self.run.no_cache {
                self.push_ready(i);
                continue;
            }
            let now = now_ms();
            let not_before = cache.ttl.map(|ttl| {
                now.saturating_sub(i64::try_from(ttl.as_std().as_millis()).unwrap_or(i64::MAX))
            });
            let key = self.insts[i].key.clone();
            let entry = self
                .store
                .cached_result(
                    self.pipeline.id.namespace.as_str(),
                    self.pipeline.id.name.as_str(),
                    key.task_id(),
                    &cache_key,
                    not_before,
                )
                .await?;
            let hit = entry.as_ref().map(|e| e.source.clone());
            if let Some(from) = &hit {
                self.notes.push(Progress::Cached {
                    key: key.clone(),
                    from: from.clone(),
                    at: now,
                });
            }
            self.pending.push(Change::CacheChecked {
                key,
                cache_key,
                hit,
                at: now,
            });
            match entry {
                Some(entry) => {
                    self.insts[i].outputs = entry.outputs;
                    self.set(i, TaskState::Succeeded, None);
                    self.settle(vec![i]);
                }
                None => self.push_ready(i),
            }
        }
        Ok(())
    }

    /// Renders everything an attempt needs. An error fails the task before any process starts.
    fn prepare(&self, i: usize) -> std::result::Result<AttemptSpec, String> {
        if let Some(e) = self.env_errors.first() {
            return Err(e.clone());
        }
        let inst = &self.insts[i];
        let task = self.task(i);
        let scope = self.scope_item(inst.item.as_ref());
        let argv = match &task.action {
            Action::Command { run, shell } => {
                let script = render::render_script(&run.0, &scope, shell)
                    .map_err(|e| format!("cannot render `run`: {e}"))?;
                let default_shell = *shell == baton_core::model::default_shell();
                let mut programs = self.programs.borrow_mut();
                match crate::direct::simple_command(&script).filter(|_| default_shell) {
                    // Only when the program is really there; otherwise `sh` reports it.
                    Some(mut words) if programs.find(&words[0]).is_some() => {
                        words[0] = programs.resolve(&words[0]);
                        words
                    }
                    _ => {
                        let mut argv = shell.clone();
                        if let Some(program) = argv.first_mut() {
                            *program = programs.resolve(program);
                        }
                        argv.push(script);
                        argv
                    }
                }
            }
            Action::Pipeline { .. } => return Err("a sub-pipeline task has no command".into()),
            Action::Gate => return Err("a gate has no command".into()),
        };
        let attempt = inst.attempts + 1;
        let log_path = self
            .logs_dir
            .join(format!("{}.{attempt}.log", sanitize(inst.key.as_str())));
        let outputs_path = self.outputs_path(i, attempt);
        // The whole environment: the executor passes nothing of baton's own.
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.ctx.env {
            env.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
        }
        for (k, v) in &task.env {
            let value = render::render(&v.0, &scope)
                .map_err(|e| format!("cannot render env `{k}`: {e}"))?;
            env.push((k.clone(), value));
        }
        if let Json::Object(params) = &self.ctx.params {
            for (k, v) in params {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                env.push((baton_core::shell::env::param_var(k), text));
            }
        }
        let upstream_of = match inst.task {
            TaskRef::Dag(t) => Some(t),
            TaskRef::Hook { .. } => None,
        };
        env.extend(crate::value_env::outputs(
            &self.pipeline,
            upstream_of,
            &self.finished,
        ));
        if let Some(item) = &inst.item {
            env.push((
                "BATON_ITEM".into(),
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned),
            ));
        }
        env.extend([
            ("BATON_RUN_ID".into(), self.run.id.to_string()),
            ("BATON_TASK_ID".into(), inst.key.task_id().to_owned()),
            ("BATON_TASK_KEY".into(), inst.key.to_string()),
            ("BATON_ATTEMPT".into(), attempt.to_string()),
            ("BATON_PIPELINE".into(), self.pipeline.id.to_string()),
            (
                "BATON_IDEMPOTENCY_KEY".into(),
                format!("{}:{}", self.run.id, inst.key),
            ),
            ("BATON_OUTPUTS".into(), outputs_path.display().to_string()),
        ]);
        env.extend(
            self.opts
                .observers
                .attempt_env(self.scope(), &inst.key, attempt),
        );
        // A file left by an interrupted attempt must not count for this one.
        if inst.after_interruption {
            let _ = std::fs::remove_file(&outputs_path);
        }
        let base = PathBuf::from(&self.run.base_dir);
        let cwd = match &task.working_dir {
            Some(w) => base.join(
                render::render(&w.0, &scope)
                    .map_err(|e| format!("cannot render `working_dir`: {e}"))?,
            ),
            None => base,
        };
        Ok(AttemptSpec {
            key: inst.key.clone(),
            attempt,
            argv,
            env,
            cwd,
            log_path,
            timeout: task.timeout.map(baton_core::duration::Duration::as_std),
            spawned: Some(self.spawned_tx.clone()),
            exit_path: Some(self.exit_path(i, attempt)),
        })
    }

    fn outputs_path(&self, i: usize, attempt: u32) -> PathBuf {
        self.outputs_dir.join(format!(
            "{}.{attempt}",
            sanitize(self.insts[i].key.as_str())
        ))
    }

    /// Where the executor records how attempt `attempt` exited (beside its outputs).
    fn exit_path(&self, i: usize, attempt: u32) -> PathBuf {
        let mut path = self.outputs_path(i, attempt).into_os_string();
        path.push(".exit");
        PathBuf::from(path)
    }

    /// Commits who runs an attempt, while it still runs (a later report is of one that ended,
    /// whose identity no longer matters).
    fn on_spawned(&mut self, s: Spawned) {
        let Some(&i) = self.by_key.get(&s.key) else {
            return;
        };
        if self.running.contains_key(&i) && self.insts[i].attempts == s.attempt {
            self.pending.push(Change::AttemptSpawned {
                key: s.key,
                attempt: s.attempt,
                process: s.process,
                at: now_ms(),
            });
        }
    }

    /// Attempts a dead process left running, whose processes must go before anything is
    /// tried again (sub-pipeline attempts have none: their child runs are watched again).
    fn leftovers(&self, attempts: &[baton_store::AttemptRecord]) -> Vec<Leftover> {
        attempts
            .iter()
            .filter(|a| a.state == AttemptState::Running)
            .filter(|a| {
                self.by_key.get(&a.key).is_none_or(|&i| {
                    self.insts[i].group || !matches!(self.task(i).action, Action::Pipeline { .. })
                })
            })
            .map(|a| Leftover {
                key: a.key.clone(),
                attempt: a.attempt,
                process: a.process.clone(),
            })
            .collect()
    }

    fn on_finished(&mut self, f: Finished) {
        let Some(&i) = self.by_key.get(&f.key) else {
            return;
        };
        // Every report is of an attempt started here, and so in `running`.
        let started_at = self
            .running
            .remove(&i)
            .map_or_else(now_ms, |r| r.started_at);
        if self.drain_deadline.is_some() && f.outcome == Outcome::Cancelled {
            // Stopped by the drain, not by a person: the next owner finds the task running
            // without a live attempt and runs it again, as after a crash.
            self.insts[i].interruptions += 1;
            self.pending.push(Change::AttemptFinished {
                key: f.key,
                attempt: f.attempt,
                state: AttemptState::Interrupted,
                started_at,
                at: now_ms(),
                exit_code: None,
                signal: None,
                rusage: f.rusage,
                error: Some("baton was shut down while this attempt ran".into()),
            });
            return;
        }
        let now = now_ms();
        // Through its own `Arc`, so the task is not copied (a fan-out's item list can be big).
        let pipeline = Arc::clone(&self.pipeline);
        let task = task_of(&pipeline, self.insts[i].task);
        let (attempt_state, failure, exit_code, signal) = match &f.outcome {
            Outcome::Exited {
                exit_code: Some(0),
                signal: None,
            } => {
                let text =
                    std::fs::read_to_string(self.outputs_path(i, f.attempt)).unwrap_or_default();
                match crate::outputs::parse(&text, &task.outputs) {
                    Ok(outputs) => {
                        self.insts[i].outputs = outputs;
                        (AttemptState::Succeeded, None, Some(0), None)
                    }
                    Err(e) => (
                        AttemptState::Failed,
                        Some(format!("invalid outputs: {e}")),
                        Some(0),
                        None,
                    ),
                }
            }
            Outcome::Exited { exit_code, signal } => {
                let why = match (exit_code, signal) {
                    (Some(127), _) => "exited with code 127 (command not found)".to_owned(),
                    (Some(126), _) => "exited with code 126 (command not executable)".to_owned(),
                    (Some(c), _) => format!("exited with code {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    (None, None) => "ended for an unknown reason".to_owned(),
                };
                (AttemptState::Failed, Some(why), *exit_code, *signal)
            }
            Outcome::TimedOut => {
                let after = task
                    .timeout
                    .map(|d| format!(" after {d}"))
                    .unwrap_or_default();
                (
                    AttemptState::TimedOut,
                    Some(format!("timed out{after}")),
                    None,
                    None,
                )
            }
            Outcome::Cancelled => (AttemptState::Cancelled, None, None, None),
            Outcome::Error(e) => (AttemptState::Failed, Some(e.clone()), None, None),
        };
        self.pending.push(Change::AttemptFinished {
            key: f.key.clone(),
            attempt: f.attempt,
            state: attempt_state,
            started_at,
            at: now,
            exit_code,
            signal,
            rusage: f.rusage,
            error: failure.clone(),
        });
        match attempt_state {
            AttemptState::Succeeded => {
                self.set(i, TaskState::Succeeded, None);
                self.save_to_cache(i, now);
            }
            AttemptState::Cancelled => self.set(i, TaskState::Cancelled, None),
            _ => {
                let inst = &self.insts[i];
                let real_attempts = inst
                    .attempts
                    .saturating_sub(inst.interruptions)
                    .saturating_sub(inst.retry_base);
                let retryable = !matches!(
                    f.outcome,
                    Outcome::Exited {
                        exit_code: Some(0),
                        ..
                    }
                );
                if !self.cancelling
                    && retryable
                    && task.retry.should_retry(real_attempts, exit_code)
                {
                    let delay = task
                        .retry
                        .delay_before(real_attempts, rand::random::<f64>());
                    let at =
                        now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    self.insts[i].next_at = Some(at);
                    self.timers.push(Reverse((at, i)));
                    self.set(i, TaskState::Retrying, failure);
                } else {
                    let attempts = self.insts[i].attempts;
                    let error = failure.map(|f| {
                        if attempts > 1 {
                            format!("{f} (attempt {attempts})")
                        } else {
                            f
                        }
                    });
                    self.set(
                        i,
                        if self.cancelling {
                            TaskState::Cancelled
                        } else {
                            TaskState::Failed
                        },
                        error,
                    );
                }
            }
        }
        if self.insts[i].state.is_final() {
            self.settle(vec![i]);
        }
    }

    /// Stores a success under the task's cache key, in the commit of the success. After a
    /// resume the key is rendered again, from the same scope.
    fn save_to_cache(&mut self, i: usize, at: Millis) {
        let Some(cache) = &self.task(i).cache else {
            return;
        };
        let cache_key = match &self.insts[i].cache_key {
            Some(k) => k.clone(),
            None => {
                let scope = self.scope_item(self.insts[i].item.as_ref());
                match render::render(&cache.key.0, &scope) {
                    Ok(k) => k,
                    // It rendered before the attempt; nothing to store under if it no longer does.
                    Err(_) => return,
                }
            }
        };
        self.pending.push(Change::CacheSaved {
            key: self.insts[i].key.clone(),
            cache_key,
            outputs: self.insts[i].outputs.clone(),
            at,
        });
    }

    /// Ends the run once nothing is left to do, after running its hook.
    async fn finish_if_done(&mut self) -> Result<Option<RunState>> {
        if !self.running.is_empty()
            || !self.ready.is_empty()
            || !self.lookups.is_empty()
            || !self.timers.is_empty()
        {
            return Ok(None);
        }
        let dag_done = self
            .insts
            .iter()
            .filter(|i| matches!(i.task, TaskRef::Dag(_)))
            .all(|i| i.state.is_final());
        if !dag_done {
            return Ok(None);
        }
        let failed = self.insts.iter().any(|i| {
            matches!(i.task, TaskRef::Dag(_)) && i.parent.is_none() && i.state.is_failure()
        });
        let state = if self.cancelling
            || self.insts.iter().any(|i| {
                i.parent.is_none()
                    && i.state == TaskState::Cancelled
                    && matches!(i.task, TaskRef::Dag(_))
            }) {
            RunState::Cancelled
        } else if failed {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        if state != RunState::Cancelled {
            let success = state == RunState::Succeeded;
            let hook = if success {
                &self.pipeline.on_success
            } else {
                &self.pipeline.on_failure
            };
            let key = TaskKey::from_string(if success { "on_success" } else { "on_failure" });
            if hook.is_some() {
                match self.by_key.get(&key) {
                    None => {
                        let i = self.insts.len();
                        let position = self.next_position;
                        self.next_position += 1;
                        self.pending.push(Change::AddTasks(vec![NewTask {
                            key: key.clone(),
                            task_id: key.to_string(),
                            position,
                            item: None,
                            state: TaskState::Queued,
                        }]));
                        self.by_key.insert(key.clone(), i);
                        self.ctx.run["state"] = json!(state);
                        self.insts.push(Inst::new(
                            key,
                            TaskRef::Hook { success },
                            TaskState::Queued,
                            position,
                        ));
                        self.push_runnable(i);
                        self.flush().await?;
                        return Ok(None);
                    }
                    Some(&i) if !self.insts[i].state.is_final() => return Ok(None),
                    Some(_) => {}
                }
            }
        }
        let now = now_ms();
        let error = match state {
            RunState::Failed => {
                let failed: Vec<&str> = self
                    .insts
                    .iter()
                    .filter(|i| {
                        i.parent.is_none()
                            && i.state == TaskState::Failed
                            && matches!(i.task, TaskRef::Dag(_))
                    })
                    .map(|i| i.key.as_str())
                    .collect();
                Some(format!("failed tasks: {}", failed.join(", ")))
            }
            _ => None,
        };
        self.pending.push(Change::Run {
            state,
            at: now,
            error,
        });
        self.notes.push(Progress::Run { state, at: now });
        self.flush().await?;
        Ok(Some(state))
    }
}

/// Whether a change may give a pool slot back (the store releases it in the commit that
/// ends the attempt, or the run).
fn frees_slot(change: &Change) -> bool {
    match change {
        Change::AttemptFinished { .. } => true,
        Change::Run { state, .. } => state.is_final(),
        _ => false,
    }
}

fn task_of(pipeline: &Pipeline, task: TaskRef) -> &Task {
    match task {
        TaskRef::Dag(t) => &pipeline.tasks[t],
        // Hook records exist only when the pipeline has the hook.
        TaskRef::Hook { success: true } => {
            pipeline.on_success.as_ref().unwrap_or(&pipeline.tasks[0])
        }
        TaskRef::Hook { success: false } => {
            pipeline.on_failure.as_ref().unwrap_or(&pipeline.tasks[0])
        }
    }
}

/// Instance labels: the item itself when short and plain (`load[eu]`), else its index, so
/// keys stay readable and unique.
fn labels(items: &[Json]) -> Vec<String> {
    let plain = |j: &Json| -> Option<String> {
        let s = match j {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => return None,
        };
        (!s.is_empty()
            && s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        .then_some(s)
    };
    let mut labels: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, j)| plain(j).unwrap_or_else(|| n.to_string()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if !labels.iter().all(|l| seen.insert(l.clone())) {
        labels = (0..items.len()).map(|n| n.to_string()).collect();
    }
    labels
}

/// A task key as a file name.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
