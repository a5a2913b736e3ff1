//! A run as the API shows it.

use baton_core::ids::{BackfillId, RunId, TaskKey};
use baton_core::state::RunState;
use baton_store::RunRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A run of a pipeline version. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: RunId,
    /// The pipeline's namespace.
    pub namespace: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Content hash of the pipeline version the run is pinned to.
    pub version: String,
    pub state: RunState,
    /// The run's params by name, defaults filled in.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `manual`, `schedule`, `webhook`, `pipeline` (an upstream run's success), `backfill` or
    /// `parent` (a sub-pipeline task of [`Run::parent`]).
    pub trigger: String,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    /// Queued and held back by its pipeline's (or backfill's) concurrency limit: it starts
    /// when a run of its group ends.
    pub waiting_for_admission: bool,
    pub backfill_id: Option<BackfillId>,
    /// Started with `--no-cache` (or the trigger's `no_cache`): tasks with `cache:` run
    /// without looking up an earlier result (and store their new one).
    pub no_cache: bool,
    /// The sub-pipeline task attempt that started this run, if one did.
    pub parent: Option<ParentRef>,
}

/// The attempt of a sub-pipeline task that started a run (its child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParentRef {
    /// The parent run.
    pub run: RunId,
    /// The task instance of the parent run.
    pub task: TaskKey,
    /// Its attempt: each attempt starts its own child run.
    pub attempt: u32,
}

impl From<RunRecord> for Run {
    fn from(r: RunRecord) -> Self {
        let waiting_for_admission =
            r.state == RunState::Queued && r.admission_group.is_some() && r.admitted_at.is_none();
        Self {
            id: r.id,
            namespace: r.namespace,
            pipeline: r.pipeline,
            version: r.version,
            state: r.state,
            params: r.params,
            trigger: r.trigger,
            logical_date: r.logical_date,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            cancel_requested: r.cancel_requested,
            waiting_for_admission,
            backfill_id: r.backfill_id,
            no_cache: r.no_cache,
            parent: r.parent.map(|p| ParentRef {
                run: p.run,
                task: p.task,
                attempt: p.attempt,
            }),
        }
    }
}
