//! A dead letter as the API shows it.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_store::DeadLetterRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A task instance that failed for good (its retries used up) in a run that has ended: it
/// stays failed until someone requeues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub run: RunId,
    pub namespace: String,
    pub pipeline: String,
    /// The run's state: failed or cancelled.
    pub run_state: RunState,
    pub key: TaskKey,
    pub task_id: String,
    /// Attempts started, interrupted ones and those before earlier retries included.
    pub attempts: u32,
    pub error: Option<String>,
    /// Of the last attempt (none when the task failed before starting one).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub finished_at: i64,
}

impl From<DeadLetterRecord> for DeadLetter {
    fn from(d: DeadLetterRecord) -> Self {
        Self {
            run: d.run,
            namespace: d.namespace,
            pipeline: d.pipeline,
            run_state: d.run_state,
            key: d.key,
            task_id: d.task_id,
            attempts: d.attempts,
            error: d.error,
            exit_code: d.exit_code,
            signal: d.signal,
            finished_at: d.finished_at,
        }
    }
}
