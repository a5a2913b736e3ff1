//! Runs started by the server execute in the background, each driven by its own dispatcher.

use std::path::PathBuf;
use std::sync::Arc;

use baton_core::ids::RunId;
use baton_engine::executor::Executor;
use baton_engine::{Options, Stop};
use baton_store::Store;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Runner {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    home: PathBuf,
    drain_grace: std::time::Duration,
    /// Tells every run this server drives to stop (drain on shutdown).
    stop: watch::Sender<Option<Stop>>,
    /// Counts runs being driven, so a drain can wait for them.
    active: Arc<tokio::sync::Semaphore>,
    /// Announces every run that reaches a final state (upstream triggers listen).
    finished: tokio::sync::broadcast::Sender<(RunId, baton_core::state::RunState)>,
    /// Set when the server starts to stop: open log streams end, or they would hold the
    /// graceful shutdown until their attempts end.
    closing: watch::Sender<bool>,
}

/// Upper bound of runs one server drives at once (a semaphore needs one).
const MAX_ACTIVE_RUNS: u32 = 100_000;

impl Runner {
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, home: PathBuf) -> Self {
        Self {
            store,
            executor,
            home,
            drain_grace: std::time::Duration::from_secs(30),
            stop: watch::channel(None).0,
            active: Arc::new(tokio::sync::Semaphore::new(MAX_ACTIVE_RUNS as usize)),
            finished: tokio::sync::broadcast::channel(1024).0,
            closing: watch::channel(false).0,
        }
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

    /// Sets how long a drain waits for running attempts.
    #[must_use]
    pub fn with_drain_grace(mut self, grace: std::time::Duration) -> Self {
        self.drain_grace = grace;
        self
    }

    /// Hands every run back: nothing new starts, running attempts get `grace` to finish (set
    /// in `Options`), the rest are stopped and recorded interrupted. Returns when all runs
    /// have let go.
    pub async fn drain(&self) {
        let _ = self.stop.send(Some(Stop::Drain));
        let _ = self.active.acquire_many(MAX_ACTIVE_RUNS).await;
    }

    /// Drives `run` to its end in the background. Failures are logged: the run's state is in
    /// the store either way, and a later `resume` (or restart) picks it up.
    pub fn start(&self, run: RunId) {
        let store = Arc::clone(&self.store);
        let executor = Arc::clone(&self.executor);
        let mut opts = Options::new(self.home.clone());
        opts.drain_grace = self.drain_grace;
        let stop = self.stop.subscribe();
        let active = Arc::clone(&self.active);
        let finished = self.finished.clone();
        tokio::spawn(async move {
            let Ok(_driving) = active.acquire_owned().await else {
                return;
            };
            // A run whose owner looks alive may belong to a process that is about to lose its
            // lease (another replica, or one that died on another host): wait it out and retry.
            for _ in 0..10 {
                match baton_engine::execute(
                    Arc::clone(&store),
                    Arc::clone(&executor),
                    &run,
                    &opts,
                    None,
                    stop.clone(),
                )
                .await
                {
                    Ok(state) => {
                        tracing::info!(run = %run, %state, "run finished");
                        if state.is_final() {
                            let _ = finished.send((run.clone(), state));
                        }
                        return;
                    }
                    Err(baton_engine::Error::Leased { .. }) => {
                        let expires = store
                            .run(&run)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|r| r.lease_expires_at);
                        let wait = expires
                            .map_or(1_000, |t| (t - baton_engine::now_ms()).clamp(100, 60_000));
                        tokio::time::sleep(std::time::Duration::from_millis(
                            wait.unsigned_abs() + 100,
                        ))
                        .await;
                    }
                    Err(e) => {
                        tracing::error!(run = %run, error = %e, "run stopped");
                        return;
                    }
                }
            }
        });
    }
}
