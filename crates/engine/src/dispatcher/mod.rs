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
use baton_core::model::Pipeline;
use baton_core::state::{RunState, TaskState};
use baton_store::{CacheSource, Change, Lease, Millis, RunRecord, Store};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::executor::{CancelHandle, Executor, Finished, Outcome, Spawned};
use crate::observer::{Observer, Observers, RunScope};
use crate::render::{self, RunContext, Scope};
use crate::subpipeline::{ChildRunner, Pipelines};
use attempt::Running;
use schedule::{Ready, frees_slot};
use state::Inst;

mod artifacts;
mod attempt;
mod cache;
mod control;
mod lease;
mod outcome;
mod reconcile;
mod schedule;
mod state;

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
    /// Where attempts' logs go, and how much of each is kept (`[logs]`).
    pub logs: crate::executor::Logs,
}

impl Options {
    pub fn new(home: PathBuf) -> Self {
        Self {
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            logs: crate::executor::Logs::files(&home),
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

/// Drives a run to a final state (or until told to stop).
pub(crate) async fn execute(
    engine: &crate::Engine,
    run: &RunId,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    stop: watch::Receiver<Option<Stop>>,
) -> Result<RunState> {
    let (store, opts) = (engine.store(), engine.options());
    // Nothing is held yet: a lost connection is waited out as a commit's is.
    use crate::transient::retried as patiently;
    let record = patiently("reading the run", || store.run(run))
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(run.to_string()))?;
    if record.state.is_final() {
        return Ok(record.state);
    }
    let asked = tokio::time::Instant::now();
    let lease = lease::acquire(store.as_ref(), &record, opts).await?;
    let definition = patiently("reading the run's definition", || {
        store.definition(&record.version)
    })
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
    let tasks = patiently("reading the run's tasks", || store.tasks(run)).await?;
    let attempts = patiently("reading the run's attempts", || store.attempts(run)).await?;
    let mut d = Dispatcher::new(
        Arc::clone(store),
        Arc::clone(engine.executor()),
        record,
        lease,
        Arc::new(pipeline),
        opts,
        progress,
    );
    d.held_until = asked + opts.lease_ttl;
    d.load(tasks);
    // Only a run whose tasks download anything reads what its tasks uploaded.
    if d.pipeline
        .tasks
        .iter()
        .any(|t| !t.artifacts.download.is_empty())
    {
        let stored = patiently("reading the run's artifacts", || store.artifacts(run)).await?;
        d.load_artifacts(stored);
    }
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
    /// `AttemptSpawned` changes not yet committed: they ride along with the run's next commit,
    /// or are committed on their own at `identities_due` (see `attempt::IDENTITY_DELAY`).
    identities: Vec<Change>,
    identities_due: Option<tokio::time::Instant>,
    notes: Vec<Progress>,
    done_tx: mpsc::UnboundedSender<Finished>,
    done_rx: mpsc::UnboundedReceiver<Finished>,
    spawned_tx: mpsc::UnboundedSender<Spawned>,
    spawned_rx: mpsc::UnboundedReceiver<Spawned>,
    next_position: i64,
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
            identities: Vec::new(),
            identities_due: None,
            notes: Vec::new(),
            done_tx,
            done_rx,
            spawned_tx,
            spawned_rx,
            next_position: 0,
            env_errors,
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

    /// Commits pending changes, then tells watchers. Nothing is acted on before this returns.
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut changes = std::mem::take(&mut self.identities);
        // First: a batch may also end the attempt a process belongs to.
        changes.append(&mut self.pending);
        self.identities_due = None;
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
        // Without it every attempt would fail; say so once, plainly.
        let dir = &self.outputs_dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::Home {
                path: dir.display().to_string(),
                source: e,
            })?;
        let leftovers = self.leftovers(attempts);
        if !leftovers.is_empty() {
            self.executor.stop_leftovers(&self.run.id, leftovers).await;
        }
        let unseen = self.unseen(attempts);
        let exits = if unseen.is_empty() {
            Vec::new()
        } else {
            self.executor.recover(unseen).await
        };
        self.reconcile(attempts, exits);
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
                        outputs: crate::executor::Outputs::default(),
                        artifacts: None,
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
        // The first renewal one interval after the lease was taken (at once if setting up
        // took longer), not at once whatever the time: a round trip that extends nothing.
        let taken = self.held_until - self.opts.lease_ttl;
        let mut lease = tokio::time::interval_at(
            taken + self.opts.lease_renew_interval,
            self.opts.lease_renew_interval,
        );
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
            let identities_due = self.identities_due;
            let identities = async {
                match identities_due {
                    Some(at) => tokio::time::sleep_until(at).await,
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
                // Nothing else committed meanwhile: the identities go on their own.
                () = identities => {
                    self.identities_due = None;
                    let mut waiting = std::mem::take(&mut self.identities);
                    waiting.append(&mut self.pending);
                    self.pending = waiting;
                }
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
}
