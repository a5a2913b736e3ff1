//! What the hub and its workers say to each other, as Rust values: the server turns them into
//! the API's wire types, and the agent back.

use std::time::Duration;

use baton_core::ids::{PipelineId, RunId, TaskKey, WorkerId};
use baton_store::{LogError, Millis, Rusage};

use crate::executor::{Outcome, Outputs, Work};

/// Which attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptRef {
    pub run: RunId,
    pub key: TaskKey,
    pub attempt: u32,
}

impl std::fmt::Display for AttemptRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attempt {} of `{}` in run `{}`",
            self.attempt, self.key, self.run
        )
    }
}

/// One lease of one attempt to one worker. Epochs only grow, and never repeat across
/// restarts of the hub (they start from the clock), so a report of a lease that ended (it
/// expired, the attempt was given to another worker, the server restarted) names an epoch no
/// live lease has, and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a worker says of itself when it registers.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Chosen by whoever runs it (`--name`, the host name by default); need not be unique.
    pub name: String,
    pub labels: Vec<String>,
    /// How many attempts it runs at once.
    pub slots: u32,
    pub version: String,
    pub host: String,
}

/// The hub's answer to a registration: who the worker is now, and how often it must be heard.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: WorkerId,
    pub heartbeat: Duration,
    pub lease: Duration,
}

/// An attempt handed to a worker.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub epoch: Epoch,
    pub attempt: AttemptRef,
    pub pipeline: Option<PipelineId>,
    pub work: Work,
    /// The task's variables: the worker adds its own host's basics (`PATH`, `HOME`, …).
    pub env: Vec<(String, String)>,
    /// For the worker's information: the control plane enforces it.
    pub timeout: Option<Duration>,
    /// How much of its output is kept.
    pub max_log_bytes: u64,
    /// Unless heard from sooner, the lease ends this long from now.
    pub lease: Duration,
}

/// Why the control plane wants a running attempt stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    TimedOut,
}

impl StopReason {
    pub(crate) fn outcome(self) -> Outcome {
        match self {
            Self::Cancelled => Outcome::Cancelled,
            Self::TimedOut => Outcome::TimedOut,
        }
    }
}

/// The answer to a heartbeat: of the leases the worker holds, which to stop and which are no
/// longer its own (stop them too, and report nothing more of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub stop: Vec<(Epoch, StopReason)>,
    pub lost: Vec<Epoch>,
}

/// How a worker's attempt ended.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub outputs: Outputs,
    pub rusage: Option<Rusage>,
}

/// Whether a worker is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Heard from within its lease, and claiming work.
    Live,
    /// Shutting down: finishing what it runs, claiming nothing.
    Draining,
    /// Not heard from within its lease: what it ran was given back.
    Lost,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Draining => "draining",
            Self::Lost => "lost",
        }
    }
}

/// A worker as `baton workers` shows it.
#[derive(Debug, Clone)]
pub struct WorkerView {
    pub id: WorkerId,
    pub info: WorkerInfo,
    pub state: WorkerState,
    pub registered_at: Millis,
    pub last_heartbeat: Millis,
    pub running: Vec<AttemptRef>,
}

/// An attempt no worker has taken yet.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub attempt: AttemptRef,
    pub labels: Vec<String>,
    pub since: Millis,
    /// Whether a live worker could take it (all of them are busy) or none matches.
    pub matched: bool,
}

impl Waiting {
    /// What the CLI, API and UI say of it.
    pub fn reason(&self) -> String {
        let labels = if self.labels.is_empty() {
            "any".to_owned()
        } else {
            self.labels.join(", ")
        };
        if self.matched {
            format!("waiting for a worker (labels {labels}): every matching worker is busy")
        } else {
            format!("waiting for a worker (labels {labels}): none is connected")
        }
    }
}

/// How many workers and slots there are now, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubCounts {
    pub live: u64,
    pub draining: u64,
    pub lost: u64,
    pub slots: u64,
    pub busy: u64,
    pub waiting: u64,
    /// Since the hub started: reports of leases that had ended, refused.
    pub stale_reports: u64,
    /// Since the hub started: leases that ended because their worker was not heard from.
    pub leases_expired: u64,
}

/// Why the hub refuses a worker's request.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "no worker `{0}` is registered\n(hint: the server restarted or gave the worker up: register again)"
    )]
    UnknownWorker(WorkerId),
    /// The lease ended: the report is of an attempt that is no longer this worker's.
    #[error(
        "lease {epoch} is not held by worker `{worker}`: its attempt ended, was given up, or went to another worker"
    )]
    Stale { epoch: Epoch, worker: WorkerId },
    #[error("invalid worker: {0}")]
    InvalidWorker(String),
    #[error("the log of {attempt} would pass its cap of {max} bytes")]
    LogTooLarge { attempt: AttemptRef, max: u64 },
    #[error("cannot keep the log of {attempt}: {source}")]
    Log {
        attempt: AttemptRef,
        #[source]
        source: Box<LogError>,
    },
}
