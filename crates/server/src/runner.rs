//! Runs started by the server execute in the background, each driven by its own dispatcher.

use std::path::PathBuf;
use std::sync::Arc;

use baton_core::ids::RunId;
use baton_engine::Options;
use baton_engine::executor::Executor;
use baton_store::Store;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Runner {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    home: PathBuf,
    /// Set to stop every run this server drives.
    stop: watch::Sender<bool>,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, home: PathBuf) -> Self {
        Self {
            store,
            executor,
            home,
            stop: watch::channel(false).0,
        }
    }

    /// Drives `run` to its end in the background. Failures are logged: the run's state is in
    /// the store either way, and a later `resume` (or restart) picks it up.
    pub fn start(&self, run: RunId) {
        let store = Arc::clone(&self.store);
        let executor = Arc::clone(&self.executor);
        let opts = Options::new(self.home.clone());
        let stop = self.stop.subscribe();
        tokio::spawn(async move {
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
