//! The container executor: an attempt is a container on a Docker engine, driven through the
//! Engine API (bollard), never the `docker` command. Create, start, follow its logs, wait,
//! inspect (exit code, out-of-memory kill), remove. The run's working directory is mounted at
//! `/workspace` and a directory of the attempt's own at `/baton`, where `$BATON_OUTPUTS`
//! points. Every container is named after its attempt and labelled with run, task, attempt
//! and lease epoch, so what a crashed baton left is found again (see [`leftovers`]).

mod attempt;
mod client;
mod leftovers;
mod naming;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::RunId;
use baton_core::model::Resources;
use baton_core::spec::{ContainerNetwork, PullPolicy};
use baton_store::LeaseEpoch;
use tokio::sync::mpsc;

use super::{AttemptSpec, CancelHandle, Executor, Finished, Leftover, Unseen};

/// How a container's exit reads as an outcome, for every container executor.
pub(super) use attempt::end_outcome;
pub use client::DockerHost;

/// What a `container:` attempt runs, rendered.
#[derive(Debug, Clone)]
pub struct ContainerRun {
    pub run: RunId,
    /// The epoch of the lease of the run's owner that started it, for the labels.
    pub epoch: Option<LeaseEpoch>,
    pub image: String,
    /// The command (the shell and the script); none runs the image's own.
    pub command: Option<Vec<String>>,
    pub pull: PullPolicy,
    pub user: Option<String>,
    pub network: ContainerNetwork,
    pub resources: Resources,
}

/// `[executors.NAME]` with `kind = "docker"`.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// The instance's name, on its containers' labels and in its errors.
    pub name: String,
    pub host: DockerHost,
    /// Between SIGTERM and SIGKILL when an attempt times out or is cancelled.
    pub stop_grace: Duration,
    /// The most processes a container may have (a fork bomb stays in its box).
    pub pids_limit: Option<i64>,
}

impl DockerSettings {
    /// The default instance: `DOCKER_HOST` or the engine's local socket.
    pub fn default_instance(stop_grace: Duration) -> Self {
        Self {
            name: "docker".into(),
            host: DockerHost::from_env(),
            stop_grace,
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
        }
    }
}

/// Processes per container unless `[executors.NAME] pids_limit` says otherwise.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

#[derive(Debug, Clone)]
pub struct DockerExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: DockerSettings,
    client: client::Client,
}

impl DockerExecutor {
    /// Connects at the first attempt: a baton that runs no container never needs an engine.
    pub fn new(settings: DockerSettings) -> Self {
        let client = client::Client::new(settings.host.clone());
        Self {
            inner: Arc::new(Inner { settings, client }),
        }
    }

    pub fn settings(&self) -> &DockerSettings {
        &self.inner.settings
    }

    /// Removes the containers of runs that are over (a run cancelled or failed elsewhere
    /// while its baton was dead); those of runs still unfinished are left to whoever resumes
    /// them, and those of runs the store does not know to another baton. Returns how many
    /// were removed.
    pub async fn sweep(&self, store: &dyn baton_store::Store) -> usize {
        let mut removed = 0;
        for (run, names) in leftovers::runs(&self.inner).await {
            // A run this store does not know may be another baton's on the same engine:
            // only runs known to be over are swept.
            let over = matches!(store.run(&run).await, Ok(Some(r)) if r.state.is_final());
            if over {
                leftovers::remove_all(&self.inner, &run, &names).await;
                removed += names.len();
            }
        }
        removed
    }

    /// [`Executor::recover`], for attempts of which `known` holds what another record told
    /// already: their containers are removed all the same.
    pub(super) async fn settle(
        &self,
        attempts: Vec<Unseen>,
        known: Vec<Option<Finished>>,
    ) -> Vec<Option<Finished>> {
        leftovers::settle(&self.inner, attempts, known).await
    }
}

impl Executor for DockerExecutor {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        let this = self.clone();
        super::stopping::spawn_attempt(done, |cancel| async move {
            attempt::run(&this.inner, spec, cancel).await
        })
    }

    fn stop_leftovers(
        &self,
        run: &RunId,
        attempts: Vec<Leftover>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let this = self.clone();
        let run = run.clone();
        Box::pin(async move { leftovers::stop(&this.inner, &run, &attempts).await })
    }

    fn recover(
        &self,
        attempts: Vec<Unseen>,
    ) -> Pin<Box<dyn Future<Output = Vec<Option<Finished>>> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move { leftovers::recover(&this.inner, attempts).await })
    }
}
