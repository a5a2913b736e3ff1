//! Runs started by the server execute in the background, each driven by its own dispatcher.
//!
//! A run in an admission group (a pipeline with `concurrency`, a backfill) first waits, queued,
//! until the store admits it. Waiting runs are kept in one list per group, and one admitter
//! asks the store for the oldest of each group whenever a run of this server finishes, a run
//! joins the list, or every [`ADMISSION_POLL`] (for runs that finished on another server).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_core::ids::RunId;
use baton_engine::executor::Executor;
use baton_engine::{Engine, Options, Stop};
use baton_store::{Admitted, Store};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Runner {
    /// What drives each run, with the options every run gets (its observers, where
    /// sub-pipeline tasks find their pipelines, the tasks' environment, where logs go, how
    /// leases are held); each run adds this runner as its child runner and a lease owner of
    /// its own.
    engine: Engine,
    store: Arc<dyn Store>,
    /// Tells every run this server drives to stop (drain on shutdown).
    stop: watch::Sender<Option<Stop>>,
    /// Counts runs being driven, so a drain can wait for them.
    active: Arc<tokio::sync::Semaphore>,
    /// Announces every run that reaches a final state (upstream triggers listen).
    finished: tokio::sync::broadcast::Sender<(RunId, baton_core::state::RunState)>,
    /// Set when the server starts to stop: open log streams end, or they would hold the
    /// graceful shutdown until their attempts end.
    closing: watch::Sender<bool>,
    /// Runs waiting for admission, by group, oldest first.
    waiting: Arc<std::sync::Mutex<BTreeMap<String, BTreeSet<RunId>>>>,
    /// Tells the admitter that a run joined the waiting list.
    wake: Arc<tokio::sync::Notify>,
    /// Whether the admitter runs (it starts with the first waiting run).
    admitting: Arc<AtomicBool>,
    /// Runs this runner drives now: asked to drive one again (a cancel request for a run that
    /// was waiting, say), it does not start a second dispatcher that would only wait out the
    /// first one's lease.
    driving: Arc<std::sync::Mutex<std::collections::HashSet<RunId>>>,
}

/// How a runner's dispatchers hold their runs (`[engine] lease_ttl`, `lease_renew_interval`,
/// `control_interval`; see [`Options`]).
#[derive(Debug, Clone, Copy)]
pub struct Leases {
    pub ttl: std::time::Duration,
    pub renew_interval: std::time::Duration,
    pub control_interval: std::time::Duration,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            ttl: baton_engine::DEFAULT_LEASE_TTL,
            renew_interval: baton_engine::DEFAULT_LEASE_RENEW_INTERVAL,
            control_interval: baton_engine::DEFAULT_CONTROL_INTERVAL,
        }
    }
}

/// How often waiting runs are offered to the store even when no run of this server finished:
/// slots freed by another server are noticed this late at most.
pub(crate) const ADMISSION_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Upper bound of runs one server drives at once (a semaphore needs one).
const MAX_ACTIVE_RUNS: u32 = 100_000;

impl Runner {
    /// A server's runner: tasks get a clean environment (the server's holds its secrets),
    /// logs go under `home`, drains wait 30 s.
    pub fn new(
        store: Arc<dyn Store>,
        executor: Arc<dyn Executor>,
        home: std::path::PathBuf,
    ) -> Self {
        let mut opts = Options::new(home);
        opts.environment = baton_engine::TaskEnvironment::Clean {
            allow: Vec::new(),
            except: baton_engine::environment::Withheld::default(),
        };
        Self::from_engine(Engine::new(store, executor, opts))
    }

    /// A runner driving runs with `engine`, as it is set up.
    pub fn from_engine(engine: Engine) -> Self {
        Self {
            store: Arc::clone(engine.store()),
            engine,
            stop: watch::channel(None).0,
            active: Arc::new(tokio::sync::Semaphore::new(MAX_ACTIVE_RUNS as usize)),
            finished: tokio::sync::broadcast::channel(1024).0,
            closing: watch::channel(false).0,
            waiting: Arc::default(),
            wake: Arc::default(),
            admitting: Arc::default(),
            driving: Arc::default(),
        }
    }

    #[must_use]
    fn with(mut self, set: impl FnOnce(&mut Options)) -> Self {
        let mut opts = self.engine.options().clone();
        set(&mut opts);
        self.engine = self.engine.with_options(opts);
        self
    }

    /// Sets where attempts' logs go (files under the home unless told otherwise).
    #[must_use]
    pub fn with_logs(self, logs: baton_engine::executor::Logs) -> Self {
        self.with(|o| o.logs = logs)
    }

    /// Where attempts' logs are.
    pub fn logs(&self) -> &baton_engine::executor::Logs {
        &self.engine.options().logs
    }

    /// Sets where the environment of the tasks this runner starts comes from.
    #[must_use]
    pub fn with_environment(self, environment: baton_engine::TaskEnvironment) -> Self {
        self.with(|o| o.environment = environment)
    }

    /// Where the environment of the tasks this runner starts comes from.
    pub fn environment(&self) -> &baton_engine::TaskEnvironment {
        &self.engine.options().environment
    }

    /// Ends every open log stream (clients reconnect with `Last-Event-ID`).
    pub fn close_streams(&self) {
        let _ = self.closing.send(true);
    }

    /// Turns true when log streams must end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Runs this runner drove to a final state, as they finish.
    pub fn subscribe(
        &self,
    ) -> tokio::sync::broadcast::Receiver<(RunId, baton_core::state::RunState)> {
        self.finished.subscribe()
    }

    /// Adds an observer of every run this runner drives.
    #[must_use]
    pub fn with_observer(self, observer: Arc<dyn baton_engine::Observer>) -> Self {
        self.with(|o| o.observers.push(observer))
    }

    /// Lets sub-pipeline tasks start the pipelines `pipelines` finds; their child runs are
    /// started and driven here, as manual runs are.
    #[must_use]
    pub fn with_pipelines(self, pipelines: Arc<dyn baton_engine::Pipelines>) -> Self {
        self.with(|o| o.pipelines = Some(pipelines))
    }

    /// Sets how the runs this runner drives hold their leases.
    #[must_use]
    pub fn with_leases(self, leases: Leases) -> Self {
        self.with(|o| {
            o.lease_ttl = leases.ttl;
            o.lease_renew_interval = leases.renew_interval;
            o.control_interval = leases.control_interval;
        })
    }

    /// Sets how many times a task's attempts may be lost to baton stopping before it fails.
    #[must_use]
    pub fn with_interruption_limit(self, limit: u32) -> Self {
        self.with(|o| o.interruption_limit = limit)
    }

    /// Sets how long a drain waits for running attempts.
    #[must_use]
    pub fn with_drain_grace(self, grace: std::time::Duration) -> Self {
        self.with(|o| o.drain_grace = grace)
    }

    /// Hands every run back: nothing new starts, running attempts get `grace` to finish (set
    /// in `Options`), the rest are stopped and recorded interrupted. Returns when all runs
    /// have let go.
    pub async fn drain(&self) {
        self.stop_all(Stop::Drain).await;
    }

    /// Stops every run as `how` says (see [`Stop`]); waiting runs stay queued. Returns when
    /// all runs have let go.
    pub async fn stop_all(&self, how: Stop) {
        let _ = self.stop.send(Some(how));
        let _ = self.active.acquire_many(MAX_ACTIVE_RUNS).await;
    }

    /// Drives `run` to its end in the background, once the store admits it (at once for a run
    /// without an admission group). Failures are logged: the run's state is in the store either
    /// way, and a later `resume` (or restart) picks it up.
    pub fn start(&self, run: RunId) {
        let runner = self.clone();
        tokio::spawn(async move {
            match runner.store.admit(&run, baton_engine::now_ms()).await {
                Ok(admitted) if admitted.is_admitted() => runner.drive(run),
                Ok(_) => match runner.store.run(&run).await {
                    Ok(Some(record)) => runner.resume(&record),
                    Ok(None) => {}
                    Err(e) => tracing::error!(run = %run, error = %e, "cannot read run"),
                },
                Err(e) => tracing::error!(run = %run, error = %e, "cannot admit run"),
            }
        });
    }

    /// Picks up an unfinished run as its record stands: a run waiting for admission joins the
    /// waiting list (without asking the store first, which matters for thousands of backfill
    /// runs after a restart), anything else is driven.
    pub fn resume(&self, run: &baton_store::RunRecord) {
        if run.state.is_final() {
            return;
        }
        match &run.admission_group {
            // Asked to cancel while waiting: driving it ends it at once, with no task started.
            Some(group)
                if run.admitted_at.is_none()
                    && run.state == baton_core::state::RunState::Queued
                    && !run.cancel_requested =>
            {
                self.wait_for_admission(group, std::iter::once(run.id.clone()));
            }
            _ => self.drive(run.id.clone()),
        }
    }

    /// Puts runs of `group` on the waiting list; the admitter starts each once admitted.
    pub fn wait_for_admission(&self, group: &str, runs: impl IntoIterator<Item = RunId>) {
        if self.stop.borrow().is_some() {
            return;
        }
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(group.to_owned())
            .or_default()
            .extend(runs);
        if !self.admitting.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().admit_loop());
        }
        self.wake.notify_one();
    }

    /// Offers waiting runs to the store until the runner drains.
    async fn admit_loop(self) {
        let mut finished = self.finished.subscribe();
        let mut stop = self.stop.subscribe();
        loop {
            self.admit_waiting().await;
            tokio::select! {
                () = self.wake.notified() => {}
                r = finished.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
                () = tokio::time::sleep(ADMISSION_POLL) => {}
                r = stop.changed() => {
                    // Draining: waiting runs stay queued in the store for the next start.
                    if r.is_err() || stop.borrow().is_some() {
                        return;
                    }
                }
            }
        }
    }

    /// One pass: per group, admits waiting runs oldest first until the store says no.
    async fn admit_waiting(&self) {
        let groups: Vec<(String, Vec<RunId>)> = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(g, runs)| (g.clone(), runs.iter().cloned().collect()))
            .collect();
        for (group, runs) in groups {
            for run in runs {
                let admitted = match self.store.admit(&run, baton_engine::now_ms()).await {
                    Ok(admitted) => admitted,
                    Err(e) => {
                        tracing::error!(run = %run, error = %e, "cannot admit run");
                        break;
                    }
                };
                match admitted {
                    Admitted::Now => {
                        self.unlist(&group, &run);
                        self.drive(run);
                        continue;
                    }
                    // Another server listed it too (a waiting run taken over) and admitted it
                    // first: that server drives it.
                    Admitted::Before => {
                        self.unlist(&group, &run);
                        continue;
                    }
                    Admitted::No => {}
                }
                // Refused: either it is out of line for good (it ended, or was asked to
                // cancel) and leaves the list, or the group is full and the rest wait too.
                match self.store.run(&run).await {
                    Ok(Some(r)) if r.state.is_final() => self.unlist(&group, &run),
                    Ok(Some(r)) if r.cancel_requested => {
                        self.unlist(&group, &run);
                        self.drive(run);
                    }
                    Ok(None) => self.unlist(&group, &run),
                    Ok(Some(_)) => break,
                    Err(e) => {
                        tracing::error!(run = %run, error = %e, "cannot read run");
                        break;
                    }
                }
            }
        }
    }

    fn unlist(&self, group: &str, run: &RunId) {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(runs) = waiting.get_mut(group) {
            runs.remove(run);
            if runs.is_empty() {
                waiting.remove(group);
            }
        }
    }

    /// How many runs of this server wait for admission.
    pub fn waiting(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(BTreeSet::len)
            .sum()
    }

    /// Drives a run whose `lease` this process has just taken over from a dead or expired
    /// holder ([`baton_store::Store::claim_orphans`]). Returns false, having handed the lease
    /// back, when this runner drives the run already (waiting out the old holder's lease), so
    /// that its dispatcher gets the lease at its next try.
    pub async fn take_over(&self, run: &RunId, lease: baton_store::Lease) -> bool {
        if self.is_driving(run) {
            let _ = self.store.release_lease(run, &lease).await;
            return false;
        }
        self.drive_as(run.clone(), Some(lease.owner));
        true
    }

    fn is_driving(&self, run: &RunId) -> bool {
        self.driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(run)
    }

    /// Whether the runner is draining: it takes nothing new.
    pub fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// How long the leases of the runs this runner drives last.
    pub fn lease_ttl(&self) -> std::time::Duration {
        self.engine.options().lease_ttl
    }

    /// Drives an admitted run (or one that is ending anyway) in the background.
    fn drive(&self, run: RunId) {
        self.drive_as(run, None);
    }

    /// [`Runner::drive`], with the lease taken as `owner` (one this process already holds).
    fn drive_as(&self, run: RunId, owner: Option<baton_core::ids::LeaseOwner>) {
        if !self
            .driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.clone())
        {
            return;
        }
        let driving = Arc::clone(&self.driving);
        let mut opts = self.engine.options().clone();
        opts.child_runner = Some(Arc::new(self.clone()));
        // A lease owner per run, so that two dispatchers of this process on one run (one
        // still winding down) are told apart.
        opts.owner = owner.unwrap_or_else(baton_engine::owner_id);
        let engine = self.engine.with_options(opts);
        let stop = self.stop.subscribe();
        let active = Arc::clone(&self.active);
        let finished = self.finished.clone();
        tokio::spawn(async move {
            let Ok(_permit) = active.acquire_owned().await else {
                return;
            };
            // A run whose owner looks alive may belong to a process that is about to lose its
            // lease (another replica, or one that died on another host): wait it out and retry.
            let ended = engine.execute_when_free(&run, stop).await;
            // The run's state is dropped by now: what it held goes back to the system rather
            // than staying with the server until the next large run.
            baton_engine::memory::give_back();
            match ended {
                Ok(state) => {
                    tracing::info!(run = %run, %state, "run finished");
                    if state.is_final() {
                        let _ = finished.send((run.clone(), state));
                    }
                }
                Err(baton_engine::Error::Leased { .. }) => {}
                // Another replica took the run over while this one stalled: it drives the
                // run now, and this server goes on serving the rest.
                Err(
                    e @ (baton_engine::Error::LeaseLost { .. }
                    | baton_engine::Error::LeaseExpired { .. }),
                ) => {
                    tracing::warn!(run = %run, "{e}");
                }
                Err(e) => tracing::error!(run = %run, error = %e, "run stopped"),
            }
            driving
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&run);
        });
    }
}

/// Child runs of sub-pipeline tasks start like manual runs: admitted under their pipeline's
/// `concurrency`, then driven (or, found again after a restart, driven if nobody does).
impl baton_engine::ChildRunner for Runner {
    fn drive(&self, run: &RunId) {
        self.start(run.clone());
    }

    fn admits(&self) -> bool {
        true
    }
}
