//! The Kubernetes executor: an attempt is a Job on a cluster, driven through the Kubernetes
//! API (`kube`). One Job per attempt, named after it (so a restarted baton finds it again
//! without a search, and the API refuses a second copy of one attempt) and labelled with run,
//! task, attempt and lease epoch. The Job and its pod are watched (bookmarks, a relist on 410
//! Gone, reconnects with backoff), the pod's log is followed into the attempt's log, and the
//! container's termination message carries its outputs back. Retries are baton's: a Job has
//! `backoffLimit: 0`.

mod attempt;
mod client;
mod errors;
mod job;
mod leftovers;
mod logs;
mod naming;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::RunId;
use tokio::sync::mpsc;

use super::{AttemptSpec, CancelHandle, Executor, Finished, Leftover, Unseen};

pub use errors::KubeError;

/// `[executors.NAME]` with `kind = "kubernetes"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The instance's name, on its Jobs' labels and in its errors.
    pub name: String,
    /// Where its Jobs go; none for the kubeconfig context's (or `default`).
    pub namespace: Option<String>,
    /// The service account its pods run as; none for the namespace's default.
    pub service_account: Option<String>,
    /// A kubeconfig file; none for `KUBECONFIG`, `~/.kube/config` or the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; none for its current one.
    pub context: Option<String>,
    /// How long the cluster keeps a finished Job baton did not delete (`on_finish`).
    pub ttl_seconds_after_finished: Option<i32>,
    pub on_finish: OnFinish,
    /// How long a pod may wait for a node before its attempt fails (retryably).
    pub unschedulable_limit: Duration,
    /// How long an image may fail to pull (or a container to be created) before its attempt is
    /// refused: a tag that does not exist stays so, a registry hiccup does not.
    pub image_pull_limit: Duration,
    /// The pod's grace between SIGTERM and SIGKILL when an attempt is stopped.
    pub stop_grace: Duration,
}

impl KubernetesSettings {
    pub const DEFAULT_TTL_SECONDS: i32 = 3600;
    pub const DEFAULT_UNSCHEDULABLE_LIMIT: Duration = Duration::from_secs(300);
    pub const DEFAULT_IMAGE_PULL_LIMIT: Duration = Duration::from_secs(60);

    /// An instance with every default, in-cluster or on the default kubeconfig.
    pub fn new(name: impl Into<String>, stop_grace: Duration) -> Self {
        Self {
            name: name.into(),
            namespace: None,
            service_account: None,
            kubeconfig: None,
            context: None,
            ttl_seconds_after_finished: Some(Self::DEFAULT_TTL_SECONDS),
            on_finish: OnFinish::Delete,
            unschedulable_limit: Self::DEFAULT_UNSCHEDULABLE_LIMIT,
            image_pull_limit: Self::DEFAULT_IMAGE_PULL_LIMIT,
            stop_grace,
        }
    }
}

/// What becomes of an attempt's Job once baton has read how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFinish {
    /// Deleted at once (its log is in baton's log store already).
    #[default]
    Delete,
    /// Deleted when it succeeded; a failed one stays for `kubectl describe` until its TTL.
    KeepFailed,
    /// Left to its TTL.
    Keep,
}

impl OnFinish {
    fn deletes(self, succeeded: bool) -> bool {
        match self {
            Self::Delete => true,
            Self::KeepFailed => succeeded,
            Self::Keep => false,
        }
    }
}

impl std::str::FromStr for OnFinish {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "delete" => Ok(Self::Delete),
            "keep_failed" => Ok(Self::KeepFailed),
            "keep" => Ok(Self::Keep),
            other => Err(format!(
                "`{other}` is not an `on_finish`: use `delete`, `keep_failed` or `keep`"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubernetesExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: KubernetesSettings,
    client: client::Client,
}

impl KubernetesExecutor {
    /// Connects at the first attempt: a baton that runs no Job never needs a cluster.
    pub fn new(settings: KubernetesSettings) -> Self {
        let client = client::Client::new(settings.clone());
        Self {
            inner: Arc::new(Inner { settings, client }),
        }
    }

    pub fn settings(&self) -> &KubernetesSettings {
        &self.inner.settings
    }

    /// Deletes the Jobs of runs that are over (cancelled or failed elsewhere while their baton
    /// was dead); those of unfinished runs are left to whoever resumes them, and those of runs
    /// the store does not know to another baton. Returns how many were deleted.
    pub async fn sweep(&self, store: &dyn baton_store::Store) -> usize {
        leftovers::sweep(&self.inner, store).await
    }

    /// [`Executor::recover`], for attempts of which `known` holds what another executor
    /// told already.
    pub(super) async fn settle(
        &self,
        attempts: Vec<Unseen>,
        known: Vec<Option<Finished>>,
    ) -> Vec<Option<Finished>> {
        leftovers::settle(&self.inner, attempts, known).await
    }
}

impl Executor for KubernetesExecutor {
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
        Box::pin(async move {
            let known = attempts.iter().map(|_| None).collect();
            leftovers::settle(&this.inner, attempts, known).await
        })
    }
}
