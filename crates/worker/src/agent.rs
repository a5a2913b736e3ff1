//! The agent's loops: one held claim at a time while slots are free, a heartbeat every few
//! seconds over the leases held, and a task per attempt that runs it with the engine's own
//! executors and reports how it ended. It keeps no durable state: whatever it loses (a crash,
//! a cut network) the control plane finds by the lease expiring, and runs elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_api::worker as wire;
use baton_core::ids::WorkerId;
use baton_engine::executor::{CancelHandle, Executors, Finished};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attempt::{self, Prepared};
use crate::client::{Client, ClientError};

/// The most a claim is held open for.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// Reconnect pauses: jittered, doubling from the first to the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub name: String,
    pub labels: Vec<String>,
    pub slots: u32,
    /// What its attempts may ask for in all (`resources`).
    pub cpu: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub gpu: u32,
    /// Where attempts' working directories and output files go while they run.
    pub dir: PathBuf,
    /// On shutdown, how long running attempts may take to finish before they are stopped.
    pub drain_grace: Duration,
    pub host: String,
}

/// Why the agent stopped other than by being told to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the control plane refused this worker: {0}")]
    Refused(ClientError),
    #[error("{0}")]
    Setup(String),
}

/// Why an attempt was stopped here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The control plane asked (cancel, timeout).
    Asked,
    /// The lease is not this worker's any more: report nothing.
    Lost,
    /// The worker is shutting down.
    Drain,
}

struct Running {
    cancel: CancelHandle,
    why: Option<Why>,
}

struct Shared {
    client: Client,
    settings: AgentSettings,
    executors: Executors,
    /// Who the worker is now (a new id after each registration), and its intervals.
    worker: watch::Sender<Option<Identity>>,
    running: Mutex<HashMap<u64, Running>>,
    /// A slot was freed.
    freed: Notify,
    /// Send a heartbeat now (the worker started draining).
    beat_now: Notify,
    draining: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct Identity {
    id: WorkerId,
    heartbeat: Duration,
    lease: Duration,
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stop(&self, epoch: u64, why: Why) {
        if let Some(r) = self.running().get_mut(&epoch) {
            // A loss outranks a stop asked for: nothing is reported of it either way after.
            if r.why.is_none() || why == Why::Lost {
                r.why = Some(why);
            }
            r.cancel.cancel();
        }
    }

    fn stop_all(&self, why: Why) {
        let epochs: Vec<u64> = self.running().keys().copied().collect();
        for epoch in epochs {
            self.stop(epoch, why);
        }
    }

    fn identity(&self) -> Option<Identity> {
        self.worker.borrow().clone()
    }

    fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs the agent until `shutdown` resolves, then drains: no more claims, running attempts get
/// `drain_grace` to finish, the rest are stopped and reported interrupted (to run elsewhere).
pub async fn run(
    client: Client,
    executors: Executors,
    settings: AgentSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&settings.dir).map_err(|e| {
        AgentError::Setup(format!(
            "cannot create the worker directory `{}`: {e}",
            settings.dir.display()
        ))
    })?;
    let (worker, _) = watch::channel(None);
    let shared = Arc::new(Shared {
        client,
        settings,
        executors,
        worker,
        running: Mutex::default(),
        freed: Notify::new(),
        beat_now: Notify::new(),
        draining: std::sync::atomic::AtomicBool::new(false),
    });
    tokio::pin!(shutdown);
    if !register(&shared, &mut shutdown).await? {
        return Ok(());
    }
    let heartbeats = tokio::spawn(heartbeat_loop(Arc::clone(&shared)));
    let mut attempts = JoinSet::new();
    let outcome = claim_loop(&shared, &mut attempts, &mut shutdown).await;
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    shared.beat_now.notify_one();
    drain(&shared, &mut attempts).await;
    heartbeats.abort();
    if let Some(me) = shared.identity()
        && let Err(e) = shared.client.deregister(&me.id).await
    {
        tracing::debug!(error = %e, "could not deregister");
    }
    tracing::info!("worker stopped");
    outcome
}

/// Registers (again), trying until the server answers; false when told to stop first.
async fn register(
    shared: &Arc<Shared>,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<bool, AgentError> {
    let s = &shared.settings;
    let hello = wire::WorkerHello {
        name: s.name.clone(),
        labels: s.labels.clone(),
        slots: s.slots,
        cpu: s.cpu,
        memory_bytes: s.memory_bytes,
        gpu: s.gpu,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        host: s.host.clone(),
    };
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            r = shared.client.register(&hello) => match r {
                Ok(r) => {
                    tracing::info!(worker = %r.id, server = shared.client.server(), "registered");
                    // What the old registration held is not this worker's any more.
                    shared.stop_all(Why::Lost);
                    shared.worker.send_replace(Some(Identity {
                        id: r.id,
                        heartbeat: Duration::from_millis(r.heartbeat_ms.max(100)),
                        lease: Duration::from_millis(r.lease_ms.max(500)),
                    }));
                    return Ok(true);
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "cannot register yet; trying again");
                }
                Err(e) => return Err(AgentError::Refused(e)),
            },
            () = shutdown.as_mut() => return Ok(false),
        }
        tokio::select! {
            () = backoff.pause() => {}
            () = shutdown.as_mut() => return Ok(false),
        }
    }
}

async fn claim_loop(
    shared: &Arc<Shared>,
    attempts: &mut JoinSet<()>,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::default();
    loop {
        let Some(me) = shared.identity() else {
            return Ok(());
        };
        let free = shared
            .settings
            .slots
            .saturating_sub(u32::try_from(shared.running().len()).unwrap_or(u32::MAX));
        if free == 0 {
            tokio::select! {
                () = shared.freed.notified() => continue,
                () = shutdown.as_mut() => return Ok(()),
            }
        }
        let asked = Instant::now();
        let claim = shared.client.claim(&me.id, free, CLAIM_WAIT);
        tokio::pin!(claim);
        let (result, stop) = tokio::select! {
            r = &mut claim => (r, false),
            () = shutdown.as_mut() => {
                // The held claim ends as soon as the server hears the worker is draining;
                // what it hands out meanwhile is run within the grace, not dropped.
                shared.draining.store(true, std::sync::atomic::Ordering::SeqCst);
                shared.beat_now.notify_one();
                (claim.await, true)
            }
        };
        match result {
            Ok(assignments) => {
                // Nothing long before the wait was up: the server is stopping (or answers
                // early); asking again at once would only spin.
                if assignments.is_empty() && !stop && asked.elapsed() < Duration::from_secs(1) {
                    tokio::select! {
                        () = backoff.pause() => {}
                        () = shutdown.as_mut() => return Ok(()),
                    }
                } else {
                    backoff = Backoff::default();
                }
                for a in assignments {
                    start(shared, &me.id, a, attempts);
                }
            }
            Err(ClientError::UnknownWorker(_)) if !stop => {
                tracing::warn!("the server forgot this worker; registering again");
                if !register(shared, shutdown).await? {
                    return Ok(());
                }
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "claim failed; trying again");
                if !stop {
                    tokio::select! {
                        () = backoff.pause() => {}
                        () = shutdown.as_mut() => return Ok(()),
                    }
                }
            }
            Err(ClientError::UnknownWorker(_)) => {}
            Err(e) => return Err(AgentError::Refused(e)),
        }
        if stop {
            return Ok(());
        }
    }
}

/// Starts an attempt now (so its slot counts before the next claim), and follows it on a task
/// of its own.
fn start(shared: &Arc<Shared>, me: &WorkerId, a: wire::Assignment, attempts: &mut JoinSet<()>) {
    let epoch = a.epoch;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (prepared, handle) = match attempt::prepare(&shared.client, me, &shared.settings.dir, a) {
        Ok(p) => {
            let mover = Arc::new(crate::remote_artifacts::RemoteArtifacts {
                client: shared.client.clone(),
                worker: me.clone(),
                epoch,
            });
            let handle = shared
                .executors
                .start_moving(mover, p.spec.clone(), done_tx);
            (Some(p), handle)
        }
        Err(refused) => {
            let _ = done_tx.send(*refused);
            (None, CancelHandle::new().0)
        }
    };
    shared.running().insert(
        epoch,
        Running {
            cancel: handle,
            why: None,
        },
    );
    let shared = Arc::clone(shared);
    let me = me.clone();
    attempts.spawn(async move {
        follow(&shared, &me, epoch, prepared, done_rx).await;
    });
}

async fn follow(
    shared: &Arc<Shared>,
    me: &WorkerId,
    epoch: u64,
    prepared: Option<Prepared>,
    mut done: mpsc::UnboundedReceiver<Finished>,
) {
    let finished = done.recv().await;
    let why = shared.running().remove(&epoch).and_then(|r| r.why);
    shared.freed.notify_one();
    if let Some(p) = &prepared {
        p.clean_up();
    }
    if why == Some(Why::Lost) {
        tracing::info!(epoch, "stopped an attempt whose lease ended");
        return;
    }
    let Some(finished) = finished else {
        return;
    };
    let report = attempt::report(
        finished,
        match why {
            Some(Why::Asked) => attempt::Stopped::Asked,
            Some(Why::Drain) => attempt::Stopped::Drain(shared.settings.name.clone()),
            _ => attempt::Stopped::No,
        },
    );
    let lease = shared
        .identity()
        .map_or(Duration::from_secs(10), |i| i.lease);
    let until = Instant::now() + lease.max(Duration::from_secs(5)) * 3;
    let mut backoff = Backoff::default();
    loop {
        match shared.client.finish(me, epoch, &report).await {
            Ok(()) => return,
            Err(e @ (ClientError::Stale(_) | ClientError::UnknownWorker(_))) => {
                tracing::warn!(epoch, error = %e, "the report came too late: the attempt runs elsewhere");
                return;
            }
            Err(e) if e.is_transient() && Instant::now() < until => {
                tracing::warn!(epoch, error = %e, "cannot report yet; trying again");
                backoff.pause().await;
            }
            Err(e) => {
                tracing::error!(epoch, error = %e, "cannot report how an attempt ended");
                return;
            }
        }
    }
}

/// Every heartbeat interval (or at once when draining starts), the leases held; stops what
/// the answer says to stop. A worker that cannot reach the server for a whole lease stops
/// everything it runs: the server has given those attempts to others by then.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut heard = Instant::now();
    loop {
        let Some(me) = shared.identity() else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(me.heartbeat) => {}
            () = shared.beat_now.notified() => {}
        }
        let beat = wire::Heartbeat {
            held: shared.running().keys().copied().collect(),
            draining: shared.draining(),
        };
        match shared.client.heartbeat(&me.id, &beat).await {
            Ok(reply) => {
                heard = Instant::now();
                for s in reply.stop {
                    shared.stop(s.epoch, Why::Asked);
                }
                for epoch in reply.lost {
                    shared.stop(epoch, Why::Lost);
                }
            }
            Err(ClientError::UnknownWorker(_)) => {
                heard = Instant::now();
                // The claim loop registers again; nothing held is ours any more.
                for epoch in beat.held {
                    shared.stop(epoch, Why::Lost);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                if heard.elapsed() >= me.lease {
                    tracing::warn!("no answer for a whole lease: stopping every attempt held");
                    for epoch in beat.held {
                        shared.stop(epoch, Why::Lost);
                    }
                }
            }
        }
    }
}

/// Lets running attempts finish within the grace, then stops the rest and waits for their
/// reports.
async fn drain(shared: &Arc<Shared>, attempts: &mut JoinSet<()>) {
    let n = shared.running().len();
    if n > 0 {
        tracing::info!(running = n, grace = ?shared.settings.drain_grace, "draining");
    }
    let grace = tokio::time::sleep(shared.settings.drain_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = attempts.join_next() => if r.is_none() { return },
            () = &mut grace => break,
        }
    }
    shared.stop_all(Why::Drain);
    while attempts.join_next().await.is_some() {}
}

/// Jittered exponential pauses between tries, so workers cut off together do not all come
/// back at the same instant.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(BACKOFF_FIRST)
    }
}

impl Backoff {
    async fn pause(&mut self) {
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(self.0.mul_f64(jitter)).await;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
}
