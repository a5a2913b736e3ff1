//! Executors run attempts and report back by message. The dispatcher never touches a process;
//! an executor never touches run state.

mod callback;
mod docker;
pub mod exit_record;
mod http;
mod identity;
mod kubernetes;
mod leftovers;
mod local;
mod log_sink;
mod parent_death;
mod reaper;
mod set;
mod staged;
mod stopping;
mod wait;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use baton_core::ids::{ExecutorName, RunId, TaskKey};
use baton_store::{AttemptProcess, Rusage};
use tokio::sync::{mpsc, oneshot};

pub use callback::{CallbackError, Callbacks, Ticket};
pub use docker::{ContainerRun, DEFAULT_PIDS_LIMIT, DockerExecutor, DockerHost, DockerSettings};
pub use http::{HttpExecutor, HttpRequest, RequestBody, error_chain, read_ca_file, sign};
pub use identity::host as host_name;
pub use kubernetes::{KubeError, KubernetesExecutor, KubernetesSettings, OnFinish};
pub use leftovers::Leftover;
pub use local::LocalExecutor;
pub use log_sink::{LOG_BYTES_DROPPED_TOTAL, LogSink, Logs};
pub use reaper::become_subreaper;
pub use set::{ExecutorInstance, Executors, no_workers};

/// Between SIGTERM and SIGKILL when an attempt is stopped, unless configured.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Everything needed to run one attempt, already rendered.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    pub key: TaskKey,
    pub attempt: u32,
    /// What to run.
    pub work: Work,
    /// The `[executors.NAME]` the task names; none for the default of its kind of work.
    pub executor: Option<ExecutorName>,
    /// The labels of the workers that may run it (`runs_on`); none for this host.
    pub runs_on: Option<baton_core::model::RunsOn>,
    /// What it asks of the host that runs it (`resources`): a worker takes it only with that
    /// much room left.
    pub resources: baton_core::model::Resources,
    /// The whole environment: nothing of the executor's own process is inherited
    /// ([`crate::TaskEnvironment`] chose what of it the task gets).
    pub env: Vec<(String, String)>,
    /// How many of `env`'s first entries are this host's own (`PATH`, `HOME`, …): where the
    /// task runs on another host, that host's take their place.
    pub host_env: usize,
    pub cwd: PathBuf,
    /// Where stdout and stderr go.
    pub log: LogSink,
    /// Where the local executor has the task write its outputs (`$BATON_OUTPUTS`), read back
    /// into its [`Finished`]. Another executor keeps them where its tasks run.
    pub outputs_path: PathBuf,
    pub timeout: Option<Duration>,
    /// Told who runs the attempt as soon as its process exists, before its `Finished`.
    pub spawned: Option<mpsc::UnboundedSender<Spawned>>,
    /// Where to record how the process exited as soon as it is reaped, before reporting it
    /// (see [`exit_record`]).
    pub exit_path: Option<PathBuf>,
    /// Files to place in `cwd` before it starts, and patterns of those to keep after it
    /// succeeded.
    pub artifacts: crate::artifacts::ArtifactPlan,
}

/// What an attempt runs.
#[derive(Debug, Clone)]
pub enum Work {
    /// A process: program and arguments (`sh -c SCRIPT`).
    Process { argv: Vec<String> },
    /// An HTTP request (an `http:` step).
    Http(HttpRequest),
    /// A container (a `container:` task).
    Container(ContainerRun),
}

/// What an attempt reported as its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outputs {
    /// What it wrote to `$BATON_OUTPUTS` (`key=value` lines), parsed by the dispatcher
    /// against the task's declared names; empty when it wrote none.
    Text(String),
    /// Values it returned (the members of a JSON response), of which the dispatcher keeps
    /// the declared ones.
    Values(serde_json::Map<String, serde_json::Value>),
}

impl Default for Outputs {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

/// An executor's report that an attempt's process started, and who it is.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub key: TaskKey,
    pub attempt: u32,
    pub process: AttemptProcess,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited or was killed by a signal it did not get from us.
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    TimedOut,
    Cancelled,
    /// It could not be started (missing program, unreadable directory), or its output could
    /// not be kept (no space for the log): retried as the task's `retries` say.
    Error(String),
    /// It cannot run as written, and trying again cannot help (an image that is not there
    /// and may not be pulled, a reference the engine rejects): the task fails at once.
    Refused(String),
    /// It was lost, not failed: the worker running it stopped answering or was shut down.
    /// Like an attempt a crash of baton interrupted, the task runs again with the same
    /// idempotency key, without spending one of its `retries`, up to `[engine]
    /// interruption_limit` times.
    Interrupted(String),
}

/// An executor's report on an attempt.
#[derive(Debug)]
pub struct Finished {
    pub key: TaskKey,
    pub attempt: u32,
    pub outcome: Outcome,
    pub rusage: Option<Rusage>,
    pub outputs: Outputs,
    /// The files it uploaded (`artifacts.upload`), once stored; none for a task that keeps
    /// none, or an attempt that did not succeed.
    pub artifacts: Option<crate::artifacts::StoredArtifacts>,
}

impl Finished {
    /// The report on `spec`'s attempt, with no resource usage (a process baton did not
    /// reap).
    pub(crate) fn of(spec: &AttemptSpec, outcome: Outcome, outputs: Outputs) -> Self {
        Self {
            key: spec.key.clone(),
            attempt: spec.attempt,
            outcome,
            rusage: None,
            outputs,
            artifacts: None,
        }
    }
}

/// An attempt a process now gone started and did not see end, with where its executor was
/// told to keep its outputs and exit (the same paths as its [`AttemptSpec`]).
#[derive(Debug, Clone)]
pub struct Unseen {
    pub run: RunId,
    pub key: TaskKey,
    pub attempt: u32,
    pub outputs_path: PathBuf,
    pub exit_path: PathBuf,
    /// Whether it ran in a container: only then is a container engine asked about it.
    pub container: bool,
}

/// Stops a running attempt: terminate gracefully, then kill.
#[derive(Debug)]
pub struct CancelHandle(Option<oneshot::Sender<()>>);

impl CancelHandle {
    /// For executors: the attempt should stop when the receiver gets a message.
    pub fn new() -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Self(Some(tx)), rx)
    }

    pub fn cancel(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Something that can run attempts: local processes, requests, containers.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Starts an attempt; its outcome arrives on `done`.
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle;

    /// Stops what is left of attempts of `run` that a process now gone started and did not
    /// see end, and resolves once it is gone: the dispatcher awaits it before trying any of
    /// them again. An executor whose attempts cannot outlive their starter does nothing.
    fn stop_leftovers(
        &self,
        run: &RunId,
        attempts: Vec<Leftover>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let _ = (run, attempts);
        Box::pin(std::future::ready(()))
    }

    /// The reports of those of `attempts` (stopped by [`Executor::stop_leftovers`] first)
    /// that ended before their starter could commit it, in their order; `None` for one the
    /// executor knows nothing of, which counts as interrupted. The report is the one the
    /// executor would have sent, outputs included, so a task that had succeeded is not run
    /// again. An executor that keeps no such record knows nothing of any.
    fn recover(
        &self,
        attempts: Vec<Unseen>,
    ) -> Pin<Box<dyn Future<Output = Vec<Option<Finished>>> + Send + 'static>> {
        Box::pin(std::future::ready(attempts.iter().map(|_| None).collect()))
    }
}
