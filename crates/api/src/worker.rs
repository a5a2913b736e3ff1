//! What `baton worker` agents and the server's worker API say to each other
//! (`/api/v1/workers/...`), and the worker list `baton workers` shows.

use baton_core::ids::{RunId, TaskKey, WorkerId};
use baton_core::model::Resources;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Rusage;

/// A worker registering: who it is and what it offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerHello {
    /// Its name (`--name`, the host name by default); need not be unique.
    pub name: String,
    /// What it offers: a task's `runs_on` labels must all be among them.
    pub labels: Vec<String>,
    /// How many attempts it runs at once.
    pub slots: u32,
    /// CPUs its attempts may ask for in all (`resources.cpu`); absent: not counted.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Bytes of memory its attempts may ask for in all; absent: not counted.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// GPUs it has (a task asking for one runs only where one is free).
    #[serde(default)]
    pub gpu: u32,
    /// The agent's version.
    pub version: String,
    /// The host it runs on.
    pub host: String,
}

/// The server's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerRegistered {
    /// The worker's id from now on, in the path of every further request.
    #[schema(value_type = String)]
    pub id: WorkerId,
    /// How often to send a heartbeat.
    pub heartbeat_ms: u64,
    /// How long a lease lasts unless extended: a worker not heard from this long loses what
    /// it runs.
    pub lease_ms: u64,
}

/// A held claim: free slots, and how long the server may hold the request open for work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// At most this many attempts are handed out.
    pub free: u32,
    /// Held at most this long (and at most 30 s) when no work is ready.
    pub wait_ms: u64,
}

/// Attempts handed to a worker; empty when the claim's wait ended without work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    pub assignments: Vec<Assignment>,
}

/// One attempt leased to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// The lease's epoch: every report about the attempt carries it, and one of a lease that
    /// ended is refused (409).
    pub epoch: u64,
    #[schema(value_type = String)]
    pub run: RunId,
    #[schema(value_type = String)]
    pub task: TaskKey,
    pub attempt: u32,
    /// `namespace/name` of the run's pipeline.
    pub pipeline: Option<String>,
    pub work: WorkerWork,
    /// The task's variables, in order (a later one wins); the worker adds its own host's
    /// `PATH`, `HOME`, `USER`, `LANG`, `TZ`, `TMPDIR` first.
    pub env: Vec<EnvVar>,
    /// The task's timeout, for information: the server enforces it.
    pub timeout_ms: Option<u64>,
    /// How much of the attempt's output is kept.
    pub max_log_bytes: u64,
    /// The lease ends this long after the last heartbeat naming it.
    pub lease_ms: u64,
    /// Files to fetch (`GET …/leases/{epoch}/artifacts/{digest}`) into the working directory
    /// before starting, and patterns of files to upload after it succeeded.
    #[serde(default)]
    pub artifacts: WorkerArtifacts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerArtifacts {
    #[serde(default)]
    pub download: Vec<crate::Artifact>,
    #[serde(default)]
    pub upload: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// What the attempt runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerWork {
    /// A process: program and arguments.
    Process { argv: Vec<String> },
    /// A container on the worker's Docker engine.
    Container {
        image: String,
        /// The command; none for the image's own.
        command: Option<Vec<String>>,
        /// `missing`, `always` or `never`.
        pull: String,
        user: Option<String>,
        /// `bridge`, `none` or `host`.
        network: String,
        resources: Resources,
    },
}

/// A heartbeat: the leases the worker holds, and whether it is shutting down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    pub held: Vec<u64>,
    #[serde(default)]
    pub draining: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// Leases whose attempts the server wants stopped (cancelled, or past their timeout).
    pub stop: Vec<StopRequest>,
    /// Leases that are not the worker's any more: stop their attempts and report nothing.
    pub lost: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StopRequest {
    pub epoch: u64,
    pub reason: StopReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Cancelled,
    TimedOut,
}

/// How an attempt ended on the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FinishReport {
    pub outcome: WorkerOutcome,
    /// What it wrote to `$BATON_OUTPUTS` (`key=value` lines).
    #[serde(default)]
    pub outputs: String,
    pub rusage: Option<Rusage>,
    /// The files it uploaded (each sent first with `PUT …/artifacts/{digest}`).
    #[serde(default)]
    pub artifacts: Vec<crate::Artifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerOutcome {
    /// The process exited, or a signal not sent by the worker killed it.
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    /// Stopped as the server asked.
    Stopped,
    /// It could not start or its output could not be kept: retried per `retries`.
    Error { message: String },
    /// It cannot run as written: the task fails without a retry.
    Refused { message: String },
    /// The worker stopped it as it shut down: the task runs again elsewhere.
    Interrupted { message: String },
}

/// A log chunk kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogAppended {
    /// The log's length now: where the next chunk starts.
    pub length: u64,
}

/// A worker's registration ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deregistered {
    /// Attempts it still held, given back to run elsewhere.
    pub released: u32,
}

/// A worker as the server sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    #[schema(value_type = String)]
    pub id: WorkerId,
    pub name: String,
    pub labels: Vec<String>,
    pub slots: u32,
    pub cpu: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub gpu: u32,
    /// `live`, `draining` (finishing, claiming nothing) or `lost` (not heard from within its
    /// lease; what it ran was given back).
    pub state: String,
    pub version: String,
    pub host: String,
    /// Milliseconds since the Unix epoch.
    pub registered_at: i64,
    pub last_heartbeat: i64,
    pub running: Vec<WorkerAttempt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerAttempt {
    #[schema(value_type = String)]
    pub run: RunId,
    #[schema(value_type = String)]
    pub task: TaskKey,
    pub attempt: u32,
}

/// The workers, and the attempts no worker has taken yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<Worker>,
    pub waiting: Vec<WaitingAttempt>,
}

/// An attempt waiting for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitingAttempt {
    #[schema(value_type = String)]
    pub run: RunId,
    #[schema(value_type = String)]
    pub task: TaskKey,
    pub attempt: u32,
    pub labels: Vec<String>,
    pub since: i64,
    /// `waiting for a worker (labels …)`, and why.
    pub reason: String,
}
