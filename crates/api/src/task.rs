//! A task instance as the API shows it.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::TaskState;
use baton_store::TaskRecord;

use super::Attempt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A task instance of a run: a task, or one fan-out item of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// The task id, or `id[item]` for a fan-out instance.
    pub key: TaskKey,
    pub task_id: String,
    /// Order of creation, so listings follow the pipeline.
    pub position: i64,
    /// The fan-out item of this instance.
    pub item: Option<serde_json::Value>,
    pub state: TaskState,
    /// Attempts started, interrupted ones included.
    pub attempts: u32,
    /// Attempts lost to a crash of baton itself or with their worker; they do not use up the
    /// retry budget.
    pub interruptions: u32,
    /// Attempts made before the run was retried; they do not use up the retry budget either.
    pub retry_base: u32,
    pub next_attempt_at: Option<i64>,
    pub outputs: Option<serde_json::Map<String, serde_json::Value>>,
    pub error: Option<String>,
    /// What the gate asks (its `approval.message`, rendered), once it has waited.
    pub approval_message: Option<String>,
    /// The earlier result this task reused instead of running (its `cache:` key matched).
    pub cached_from: Option<CacheSource>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Running, and no worker has taken its attempt yet: `waiting for a worker (labels …)`,
    /// and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// A task instance with its attempts, oldest first: one item of a page of a run's tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEntry {
    pub task: Task,
    pub attempts: Vec<Attempt>,
}

/// The task instance whose stored result a cached task reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CacheSource {
    pub run: RunId,
    pub task: TaskKey,
}

impl From<TaskRecord> for Task {
    fn from(t: TaskRecord) -> Self {
        Self {
            key: t.key,
            task_id: t.task_id,
            position: t.position,
            item: t.item,
            state: t.state,
            attempts: t.attempts,
            interruptions: t.interruptions,
            retry_base: t.retry_base,
            next_attempt_at: t.next_attempt_at,
            outputs: t.outputs,
            error: t.error,
            approval_message: t.approval_message,
            cached_from: t.cached_from.map(|c| CacheSource {
                run: c.run,
                task: c.task,
            }),
            started_at: t.started_at,
            finished_at: t.finished_at,
            waiting_for: None,
        }
    }
}
