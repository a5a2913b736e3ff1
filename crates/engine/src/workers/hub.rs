//! The hub: the control plane's side of `baton worker`. Attempts for workers wait in its
//! queue; a worker's held claim takes those its labels match, each under a lease with a fresh
//! epoch; heartbeats extend leases and carry back what to stop; a lease not extended in time
//! ends, and its attempt goes back to its dispatcher as interrupted, to run again elsewhere.
//!
//! The hub holds no durable state, and needs none: the store says which attempts run, and a
//! restarted server's dispatchers interrupt and re-queue them (their old epochs are unknown
//! to the new hub, so whatever the old workers still report is refused). The control plane,
//! not the worker, enforces timeouts: a worker that ignores a stop loses the lease all the
//! same.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use baton_core::ids::WorkerId;
use baton_core::model::check_worker_label;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::types::{
    Assignment, AttemptRef, Epoch, HeartbeatReply, HubCounts, HubError, Registration, Report,
    StopReason, Waiting, WorkerInfo, WorkerState, WorkerView,
};
use crate::clock::now_ms;
use crate::executor::{AttemptSpec, Finished, Outcome, Outputs};

/// How often a worker is asked to send a heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a lease lasts without being heard from: a worker cut off is given up within this
/// (and the hub's tick) of its last heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// The longest a claim is held open waiting for work.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(30);
/// How often leases, timeouts and waits are checked.
const TICK: Duration = Duration::from_millis(100);
/// How long a lost worker stays listed.
const FORGET_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    pub heartbeat: Duration,
    pub lease: Duration,
    /// After asking a worker to stop an attempt (cancel, timeout), how long it has to say it
    /// did before the hub ends the attempt without it.
    pub stop_grace: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            heartbeat: DEFAULT_HEARTBEAT,
            lease: DEFAULT_LEASE,
            stop_grace: crate::executor::DEFAULT_STOP_GRACE,
        }
    }
}

/// Shared by the executor that queues attempts and the API that workers call.
#[derive(Debug, Clone)]
pub struct WorkerHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Woken when work is queued or a worker's slots free up.
    work: Notify,
    settings: HubSettings,
    next_epoch: AtomicU64,
    stale_reports: AtomicU64,
    leases_expired: AtomicU64,
    /// Set when the server stops: held claims end at once, so they do not hold its shutdown.
    closed: std::sync::atomic::AtomicBool,
    /// Where workers' artifacts go and come from (`set_artifacts`).
    artifacts: std::sync::OnceLock<crate::artifacts::ArtifactStore>,
}

#[derive(Debug, Default)]
struct State {
    workers: HashMap<WorkerId, Worker>,
    /// In the order queued.
    queue: BTreeMap<u64, Queued>,
    next_seq: u64,
    leases: HashMap<Epoch, Leased>,
    /// Where each attempt the hub holds is: its queue entry or its lease.
    attempts: HashMap<AttemptRef, Place>,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Queued(u64),
    Leased(Epoch),
}

#[derive(Debug)]
struct Worker {
    info: WorkerInfo,
    registered_at: baton_store::Millis,
    seen: Instant,
    seen_at: baton_store::Millis,
    draining: bool,
    lost: bool,
    leases: BTreeSet<Epoch>,
    /// The newest claim's number: an older claim still held (its connection died unseen,
    /// and the worker claims again) takes nothing, since its answer would reach nobody.
    claim: u64,
}

impl Worker {
    /// A request of it arrived at `now`.
    fn heard(&mut self, now: Instant) {
        self.seen = now;
        self.seen_at = now_ms();
    }

    fn state(&self) -> WorkerState {
        if self.lost {
            WorkerState::Lost
        } else if self.draining {
            WorkerState::Draining
        } else {
            WorkerState::Live
        }
    }

    /// Whether it could take an attempt of `labels` asking for `ask`, were it idle.
    fn takes(&self, labels: &[String], ask: &baton_core::model::Resources) -> bool {
        !self.lost
            && !self.draining
            && labels
                .iter()
                .all(|l| self.info.labels.iter().any(|have| have == l))
            && self
                .info
                .capacity
                .fits(&baton_core::model::Resources::default(), ask)
    }
}

#[derive(Debug)]
struct Queued {
    attempt: AttemptRef,
    spec: AttemptSpec,
    done: mpsc::UnboundedSender<Finished>,
    labels: Vec<String>,
    wait: Duration,
    since: baton_store::Millis,
    /// Since when no live worker could take it.
    unmatched_since: Option<Instant>,
}

#[derive(Debug)]
struct Leased {
    attempt: AttemptRef,
    worker: WorkerId,
    spec: AttemptSpec,
    done: mpsc::UnboundedSender<Finished>,
    expires: Instant,
    deadline: Option<Instant>,
    stop: Option<(StopReason, Instant)>,
}

impl Leased {
    fn finish(self, outcome: Outcome, report: Option<Report>) {
        let (outputs, rusage, artifacts) = report.map_or((Outputs::default(), None, None), |r| {
            (r.outputs, r.rusage, r.artifacts)
        });
        let _ = self.done.send(Finished {
            key: self.attempt.key,
            attempt: self.attempt.attempt,
            outcome,
            rusage,
            outputs,
            artifacts,
        });
    }
}

fn ended(done: &mpsc::UnboundedSender<Finished>, attempt: &AttemptRef, outcome: Outcome) {
    let _ = done.send(Finished {
        key: attempt.key.clone(),
        attempt: attempt.attempt,
        outcome,
        rusage: None,
        outputs: Outputs::default(),
        artifacts: None,
    });
}

impl WorkerHub {
    /// A hub whose leases, timeouts and waits are checked on a task of the current runtime,
    /// for as long as the hub is held.
    pub fn new(settings: HubSettings) -> Self {
        let start = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000);
        let inner = Arc::new(Inner {
            state: Mutex::default(),
            work: Notify::new(),
            settings,
            next_epoch: AtomicU64::new(start),
            stale_reports: AtomicU64::new(0),
            leases_expired: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            artifacts: std::sync::OnceLock::new(),
        });
        tokio::spawn(tick(Arc::downgrade(&inner)));
        Self { inner }
    }

    pub fn settings(&self) -> HubSettings {
        self.inner.settings
    }

    /// Ends every held claim now, and answers later ones at once with nothing: the server is
    /// stopping, and a long poll would hold its shutdown for up to [`MAX_CLAIM_WAIT`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.work.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an attempt for a worker carrying every one of `labels`; it fails after `wait`
    /// during which no live worker could take it.
    pub(crate) fn enqueue(
        &self,
        spec: AttemptSpec,
        done: mpsc::UnboundedSender<Finished>,
        labels: Vec<String>,
        wait: Duration,
    ) -> AttemptRef {
        let attempt = AttemptRef {
            run: spec.log.log.run.clone(),
            key: spec.key.clone(),
            attempt: spec.attempt,
        };
        {
            let mut state = self.lock();
            let seq = state.next_seq;
            state.next_seq += 1;
            state.attempts.insert(attempt.clone(), Place::Queued(seq));
            state.queue.insert(
                seq,
                Queued {
                    attempt: attempt.clone(),
                    spec,
                    done,
                    labels,
                    wait,
                    since: now_ms(),
                    unmatched_since: None,
                },
            );
        }
        self.inner.work.notify_waiters();
        attempt
    }

    /// Stops an attempt the hub holds: one still queued ends at once, a running one is asked to
    /// stop at its worker's next heartbeat.
    pub(crate) fn cancel(&self, attempt: &AttemptRef) {
        let mut state = self.lock();
        match state.attempts.get(attempt).copied() {
            Some(Place::Queued(seq)) => {
                state.attempts.remove(attempt);
                if let Some(q) = state.queue.remove(&seq) {
                    ended(&q.done, &q.attempt, Outcome::Cancelled);
                }
            }
            Some(Place::Leased(epoch)) => {
                if let Some(l) = state.leases.get_mut(&epoch)
                    && l.stop.is_none()
                {
                    l.stop = Some((StopReason::Cancelled, Instant::now()));
                }
            }
            None => {}
        }
    }

    /// Registers a worker, under a new id each time.
    pub fn register(&self, info: WorkerInfo) -> Result<Registration, HubError> {
        if info.name.is_empty() || info.name.len() > 200 {
            return Err(HubError::InvalidWorker(
                "a worker's name must have 1 to 200 characters".into(),
            ));
        }
        if info.slots == 0 {
            return Err(HubError::InvalidWorker(format!(
                "worker `{}` has no slots: it could run nothing",
                info.name
            )));
        }
        for label in &info.labels {
            check_worker_label(label).map_err(HubError::InvalidWorker)?;
        }
        let id = WorkerId::from_string(format!("{}-{:08x}", info.name, rand::random::<u32>()));
        let now = now_ms();
        self.lock().workers.insert(
            id.clone(),
            Worker {
                info,
                registered_at: now,
                seen: Instant::now(),
                seen_at: now,
                draining: false,
                lost: false,
                leases: BTreeSet::new(),
                claim: 0,
            },
        );
        // Work that waited for a worker like this one may go now.
        self.inner.work.notify_waiters();
        Ok(Registration {
            id,
            heartbeat: self.inner.settings.heartbeat,
            lease: self.inner.settings.lease,
        })
    }

    /// Ends a worker's registration: what it still holds goes back as interrupted; how many.
    pub fn deregister(&self, worker: &WorkerId) -> Result<u32, HubError> {
        let mut state = self.lock();
        let w = state
            .workers
            .remove(worker)
            .ok_or_else(|| HubError::UnknownWorker(worker.clone()))?;
        let mut released = 0;
        for epoch in w.leases {
            if let Some(l) = state.leases.remove(&epoch) {
                released += 1;
                state.attempts.remove(&l.attempt);
                let outcome = l.stop.map_or_else(
                    || Outcome::Interrupted(format!("worker `{}` left", w.info.name)),
                    |(why, _)| why.outcome(),
                );
                l.finish(outcome, None);
            }
        }
        Ok(released)
    }

    /// Up to `free` attempts for `worker`, waiting up to `wait` (at most [`MAX_CLAIM_WAIT`])
    /// for the first; none when the wait ends without work.
    pub async fn claim(
        &self,
        worker: &WorkerId,
        free: u32,
        wait: Duration,
    ) -> Result<Vec<Assignment>, HubError> {
        let until = Instant::now() + wait.min(MAX_CLAIM_WAIT);
        // The request is the worker's sign of life; a claim waking up later is not (its
        // worker may have been cut off meanwhile: then its heartbeats stop, it is marked
        // lost, and its held claim takes nothing).
        let claim = self.touch(worker)?;
        loop {
            // Registered before looking, so work queued in between wakes this claim.
            let woken = self.inner.work.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.inner.closed.load(Ordering::SeqCst) {
                return Ok(Vec::new());
            }
            // A draining worker's claim ends at once: it is waiting to stop.
            let Some(taken) = self.take(worker, free, claim)? else {
                return Ok(Vec::new());
            };
            if !taken.is_empty() {
                return Ok(taken);
            }
            if tokio::time::timeout_at(until, woken).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// Records a new claim of `worker`, and returns its number.
    fn touch(&self, worker: &WorkerId) -> Result<u64, HubError> {
        let mut state = self.lock();
        let w = registered(&mut state.workers, worker)?;
        w.heard(Instant::now());
        w.lost = false;
        w.claim += 1;
        Ok(w.claim)
    }

    /// What `worker`'s claim number `claim` may take now; `None` when it is draining, or a
    /// newer claim replaced it.
    fn take(
        &self,
        worker: &WorkerId,
        free: u32,
        claim: u64,
    ) -> Result<Option<Vec<Assignment>>, HubError> {
        let settings = self.inner.settings;
        let mut state = self.lock();
        let state = &mut *state;
        let w = registered(&mut state.workers, worker)?;
        let now = Instant::now();
        let room = w
            .info
            .slots
            .saturating_sub(u32::try_from(w.leases.len()).unwrap_or(u32::MAX))
            .min(free);
        if w.draining || w.claim != claim {
            return Ok(None);
        }
        if room == 0 || w.lost {
            return Ok(Some(Vec::new()));
        }
        // What its running attempts asked for; each attempt handed out now adds its own.
        let mut used = baton_core::model::Resources::default();
        for e in &w.leases {
            if let Some(l) = state.leases.get(e) {
                super::types::add(&mut used, &l.spec.resources);
            }
        }
        let mut chosen: Vec<u64> = Vec::new();
        for (seq, q) in &state.queue {
            if chosen.len() >= room as usize {
                break;
            }
            if w.takes(&q.labels, &q.spec.resources)
                && w.info.capacity.fits(&used, &q.spec.resources)
            {
                super::types::add(&mut used, &q.spec.resources);
                chosen.push(*seq);
            }
        }
        let mut out = Vec::with_capacity(chosen.len());
        for seq in chosen {
            let Some(q) = state.queue.remove(&seq) else {
                continue;
            };
            let epoch = Epoch(self.inner.next_epoch.fetch_add(1, Ordering::Relaxed));
            out.push(Assignment {
                epoch,
                attempt: q.attempt.clone(),
                pipeline: q.spec.log.pipeline.clone(),
                work: q.spec.work.clone(),
                env: q.spec.env[q.spec.host_env.min(q.spec.env.len())..].to_vec(),
                timeout: q.spec.timeout,
                max_log_bytes: q.spec.log.max_bytes,
                lease: settings.lease,
                artifacts: q.spec.artifacts.clone(),
            });
            w.leases.insert(epoch);
            state
                .attempts
                .insert(q.attempt.clone(), Place::Leased(epoch));
            state.leases.insert(
                epoch,
                Leased {
                    deadline: q.spec.timeout.map(|t| now + t),
                    attempt: q.attempt,
                    worker: worker.clone(),
                    spec: q.spec,
                    done: q.done,
                    expires: now + settings.lease,
                    stop: None,
                },
            );
        }
        Ok(Some(out))
    }

    /// A worker's heartbeat over the leases it holds (and whether it is draining): each of its
    /// own is extended; the reply says which to stop and which are not its own any more.
    pub fn heartbeat(
        &self,
        worker: &WorkerId,
        held: &[Epoch],
        draining: bool,
    ) -> Result<HeartbeatReply, HubError> {
        let lease = self.inner.settings.lease;
        let mut state = self.lock();
        let state = &mut *state;
        let w = registered(&mut state.workers, worker)?;
        let now = Instant::now();
        w.heard(now);
        w.lost = false;
        if draining && !w.draining {
            // Its held claim ends now rather than at the end of its wait.
            self.inner.work.notify_waiters();
        }
        w.draining = draining;
        let mut reply = HeartbeatReply::default();
        for epoch in held {
            match state.leases.get_mut(epoch) {
                Some(l) if &l.worker == worker => {
                    l.expires = now + lease;
                    if let Some((why, _)) = l.stop {
                        reply.stop.push((*epoch, why));
                    }
                }
                _ => {
                    self.inner.stale_reports.fetch_add(1, Ordering::Relaxed);
                    reply.lost.push(*epoch);
                }
            }
        }
        Ok(reply)
    }

    /// The lease `epoch` if `worker` holds it, extended: its attempt and where its log goes.
    fn held(&self, worker: &WorkerId, epoch: Epoch) -> Result<Held, HubError> {
        let lease = self.inner.settings.lease;
        let mut state = self.lock();
        let state = &mut *state;
        registered(&mut state.workers, worker)?.heard(Instant::now());
        match state.leases.get_mut(&epoch) {
            Some(l) if &l.worker == worker => {
                l.expires = Instant::now() + lease;
                Ok(Held {
                    attempt: l.attempt.clone(),
                    sink: l.spec.log.clone(),
                    artifacts: l.spec.artifacts.clone(),
                })
            }
            _ => {
                self.inner.stale_reports.fetch_add(1, Ordering::Relaxed);
                Err(HubError::Stale {
                    epoch,
                    worker: worker.clone(),
                })
            }
        }
    }

    /// Workers' artifacts go to and come from `store` (once; later calls change nothing).
    pub fn set_artifacts(&self, store: crate::artifacts::ArtifactStore) {
        let _ = self.inner.artifacts.set(store);
    }

    pub fn artifact_store(&self) -> Option<&crate::artifacts::ArtifactStore> {
        self.inner.artifacts.get()
    }

    /// What the attempt under lease `epoch` moves, for the worker holding it (which is heard
    /// from: a long transfer keeps the lease).
    pub fn lease_artifacts(
        &self,
        worker: &WorkerId,
        epoch: Epoch,
    ) -> Result<crate::artifacts::ArtifactPlan, HubError> {
        self.held(worker, epoch).map(|h| h.artifacts)
    }

    /// Appends output of the attempt under lease `epoch` to its log, whose length before it
    /// is `at` (an append tried again after a lost answer is recognised by its offset); the
    /// log's length after it.
    pub async fn append_log(
        &self,
        worker: &WorkerId,
        epoch: Epoch,
        at: u64,
        bytes: &[u8],
    ) -> Result<u64, HubError> {
        let held = self.held(worker, epoch)?;
        let end = at.saturating_add(bytes.len() as u64);
        // The worker caps its output; one that does not is not trusted to.
        if end > held.sink.max_bytes.saturating_add(4096) {
            return Err(HubError::LogTooLarge {
                attempt: held.attempt,
                max: held.sink.max_bytes,
            });
        }
        held.sink
            .store
            .append(&held.sink.log, held.sink.lease.as_ref(), at, bytes)
            .await
            .map_err(|source| HubError::Log {
                attempt: held.attempt,
                source: Box::new(source),
            })?;
        Ok(end)
    }

    /// How the attempt under lease `epoch` ended, as its worker saw it. A stop the control
    /// plane asked for decides the outcome (a cancelled attempt that exited 0 was still
    /// cancelled).
    pub fn finish(
        &self,
        worker: &WorkerId,
        epoch: Epoch,
        report: Report,
    ) -> Result<AttemptRef, HubError> {
        let leased = {
            let mut state = self.lock();
            let state = &mut *state;
            match state.leases.get(&epoch) {
                Some(l) if &l.worker == worker => {}
                _ => {
                    self.inner.stale_reports.fetch_add(1, Ordering::Relaxed);
                    return Err(HubError::Stale {
                        epoch,
                        worker: worker.clone(),
                    });
                }
            }
            let l = state.leases.remove(&epoch).expect("checked above");
            state.attempts.remove(&l.attempt);
            if let Some(w) = state.workers.get_mut(worker) {
                w.leases.remove(&epoch);
                w.heard(Instant::now());
            }
            l
        };
        // A freed slot may take queued work.
        self.inner.work.notify_waiters();
        let outcome = match leased.stop {
            Some((why, _)) => why.outcome(),
            None => report.outcome.clone(),
        };
        let attempt = leased.attempt.clone();
        leased.finish(outcome, Some(report));
        Ok(attempt)
    }

    /// The workers, by name.
    pub fn workers(&self) -> Vec<WorkerView> {
        let state = self.lock();
        let mut out: Vec<WorkerView> = state
            .workers
            .iter()
            .map(|(id, w)| WorkerView {
                id: id.clone(),
                info: w.info.clone(),
                state: w.state(),
                registered_at: w.registered_at,
                last_heartbeat: w.seen_at,
                running: w
                    .leases
                    .iter()
                    .filter_map(|e| state.leases.get(e).map(|l| l.attempt.clone()))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| (&a.info.name, &a.id).cmp(&(&b.info.name, &b.id)));
        out
    }

    /// The attempts no worker has taken yet, in the order queued.
    pub fn waiting(&self) -> Vec<Waiting> {
        let state = self.lock();
        state
            .queue
            .values()
            .map(|q| Waiting {
                attempt: q.attempt.clone(),
                labels: q.labels.clone(),
                asks: super::types::describe(&q.spec.resources),
                since: q.since,
                matched: state
                    .workers
                    .values()
                    .any(|w| w.takes(&q.labels, &q.spec.resources)),
            })
            .collect()
    }

    pub fn counts(&self) -> HubCounts {
        let state = self.lock();
        let mut c = HubCounts {
            waiting: state.queue.len() as u64,
            stale_reports: self.inner.stale_reports.load(Ordering::Relaxed),
            leases_expired: self.inner.leases_expired.load(Ordering::Relaxed),
            ..HubCounts::default()
        };
        for w in state.workers.values() {
            match w.state() {
                WorkerState::Live => c.live += 1,
                WorkerState::Draining => c.draining += 1,
                WorkerState::Lost => {
                    c.lost += 1;
                    continue;
                }
            }
            c.slots += u64::from(w.info.slots);
            c.busy += w.leases.len() as u64;
        }
        c
    }
}

/// The registered worker `id`.
fn registered<'a>(
    workers: &'a mut HashMap<WorkerId, Worker>,
    id: &WorkerId,
) -> Result<&'a mut Worker, HubError> {
    workers
        .get_mut(id)
        .ok_or_else(|| HubError::UnknownWorker(id.clone()))
}

struct Held {
    attempt: AttemptRef,
    sink: crate::executor::LogSink,
    artifacts: crate::artifacts::ArtifactPlan,
}

/// Checks leases, timeouts and waits every [`TICK`] until the hub is dropped.
async fn tick(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let freed = {
            let mut state = inner
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sweep(&mut state, &inner, Instant::now())
        };
        if freed {
            inner.work.notify_waiters();
        }
    }
}

/// Ends leases whose worker went silent or ignored a stop, asks for the stop of attempts past
/// their timeout, fails attempts that waited too long for any worker, and marks and later
/// forgets silent workers. Whether a slot was freed.
fn sweep(state: &mut State, inner: &Inner, now: Instant) -> bool {
    let settings = inner.settings;
    let mut ended_leases = Vec::new();
    for (epoch, l) in &mut state.leases {
        if let Some(deadline) = l.deadline
            && l.stop.is_none()
            && now >= deadline
        {
            l.stop = Some((StopReason::TimedOut, now));
        }
        let gave_up = l
            .stop
            .is_some_and(|(_, asked)| now >= asked + settings.stop_grace + settings.heartbeat);
        if now >= l.expires || gave_up {
            ended_leases.push(*epoch);
        }
    }
    let freed = !ended_leases.is_empty();
    for epoch in ended_leases {
        let Some(l) = state.leases.remove(&epoch) else {
            continue;
        };
        state.attempts.remove(&l.attempt);
        let name = state.workers.get_mut(&l.worker).map(|w| {
            w.leases.remove(&epoch);
            w.info.name.clone()
        });
        let outcome = match l.stop {
            Some((why, _)) => why.outcome(),
            None => {
                inner.leases_expired.fetch_add(1, Ordering::Relaxed);
                Outcome::Interrupted(format!(
                    "worker `{}` was not heard from for {} s",
                    name.unwrap_or_else(|| l.worker.to_string()),
                    settings.lease.as_secs_f64()
                ))
            }
        };
        l.finish(outcome, None);
    }
    for w in state.workers.values_mut() {
        if !w.lost && now >= w.seen + settings.lease {
            w.lost = true;
        }
    }
    state
        .workers
        .retain(|_, w| !(w.lost && w.leases.is_empty() && now >= w.seen + FORGET_AFTER));
    let mut too_long = Vec::new();
    for (seq, q) in &mut state.queue {
        if state
            .workers
            .values()
            .any(|w| w.takes(&q.labels, &q.spec.resources))
        {
            q.unmatched_since = None;
            continue;
        }
        let since = *q.unmatched_since.get_or_insert(now);
        if now >= since + q.wait {
            too_long.push(*seq);
        }
    }
    for seq in too_long {
        if let Some(q) = state.queue.remove(&seq) {
            state.attempts.remove(&q.attempt);
            let asks = super::types::describe(&q.spec.resources);
            let labels = match (q.labels.is_empty(), asks.is_empty()) {
                (true, true) => "any".to_owned(),
                (false, true) => format!("`{}`", q.labels.join(", ")),
                (true, false) => format!("any and room for {asks}"),
                (false, false) => format!("`{}` and room for {asks}", q.labels.join(", ")),
            };
            ended(
                &q.done,
                &q.attempt,
                Outcome::Refused(format!(
                    "no worker with labels {labels} was connected for {} (`runs_on.wait`)\n(hint: start one with `baton worker --server URL --labels {}`)",
                    baton_core::duration::Duration::from(q.wait),
                    q.labels.join(",")
                )),
            );
        }
    }
    freed
}
