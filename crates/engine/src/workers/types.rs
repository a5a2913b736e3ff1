//! What the hub and its workers say to each other, as Rust values: the server turns them into
//! the API's wire types, and the agent back.

use std::time::Duration;

use baton_core::ids::{PipelineId, RunId, TaskKey, WorkerId};
use baton_core::model::Resources;
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

/// What a worker offers its attempts besides slots: an attempt is handed to it only while what
/// its running attempts asked for (`resources`) leaves room for the new one's request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    /// CPUs; `None`: not counted.
    pub cpu: Option<f64>,
    /// Bytes of memory; `None`: not counted.
    pub memory_bytes: Option<u64>,
    /// GPUs (a task asking for one runs only on a worker that has one).
    pub gpu: u32,
}

impl Capacity {
    /// Whether `ask` fits in what is left once `used` is taken out.
    pub(crate) fn fits(&self, used: &Resources, ask: &Resources) -> bool {
        let cpu = self
            .cpu
            .is_none_or(|c| ask.cpu.unwrap_or(0.0) <= c - used.cpu.unwrap_or(0.0) + 1e-9);
        let memory = self.memory_bytes.is_none_or(|m| {
            ask.memory_bytes.unwrap_or(0) <= m.saturating_sub(used.memory_bytes.unwrap_or(0))
        });
        let gpu = ask.gpu.unwrap_or(0) <= self.gpu.saturating_sub(used.gpu.unwrap_or(0));
        cpu && memory && gpu
    }
}

/// `ask` as people write it (`cpu 2, memory 4Gi, gpu 1`); empty when it asks for nothing.
pub(crate) fn describe(ask: &Resources) -> String {
    let mut parts = Vec::new();
    if let Some(c) = ask.cpu {
        parts.push(format!("cpu {c}"));
    }
    if let Some(m) = ask.memory_bytes {
        parts.push(if m % (1 << 20) == 0 {
            format!("memory {}Mi", m >> 20)
        } else {
            format!("memory {m}")
        });
    }
    if let Some(g) = ask.gpu {
        parts.push(format!("gpu {g}"));
    }
    parts.join(", ")
}

/// What `used` plus `ask` comes to.
pub(crate) fn add(used: &mut Resources, ask: &Resources) {
    if let Some(c) = ask.cpu {
        used.cpu = Some(used.cpu.unwrap_or(0.0) + c);
    }
    if let Some(m) = ask.memory_bytes {
        used.memory_bytes = Some(used.memory_bytes.unwrap_or(0).saturating_add(m));
    }
    if let Some(g) = ask.gpu {
        used.gpu = Some(used.gpu.unwrap_or(0).saturating_add(g));
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
    pub capacity: Capacity,
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
    /// Files the worker places before starting it, and patterns it uploads after.
    pub artifacts: crate::artifacts::ArtifactPlan,
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
    /// What it uploaded, already in the hub's artifact store.
    pub artifacts: Option<crate::artifacts::StoredArtifacts>,
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
    /// What it asks for (`resources`), as written.
    pub asks: String,
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
        let asks = if self.asks.is_empty() {
            String::new()
        } else {
            format!("; {}", self.asks)
        };
        if self.matched {
            format!("waiting for a worker (labels {labels}{asks}): every matching worker is busy")
        } else if asks.is_empty() {
            format!("waiting for a worker (labels {labels}): none is connected")
        } else {
            format!(
                "waiting for a worker (labels {labels}{asks}): none is connected that has that much"
            )
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
