//! Creating runs: checking params, pinning the definition, laying out the task records.

use baton_core::ids::{RunId, TaskKey};
use baton_core::model::{Pipeline, resolve_params};
use baton_core::state::TaskState;
use baton_store::{DefinitionRecord, NewRun, NewTask, Store};
use serde_json::{Map, Value};

use crate::clock::now_ms;
use crate::error::{Error, Result};

/// A request to run a pipeline.
#[derive(Debug)]
pub struct RunRequest<'a> {
    pub pipeline: &'a Pipeline,
    /// The definition's source text, stored so the run can always be resumed with it.
    pub source: &'a str,
    pub path: Option<String>,
    /// Directory commands and relative `working_dir`s resolve against.
    pub base_dir: String,
    pub params: Map<String, Value>,
    pub trigger: &'a str,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
}

/// A run that `create_run` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: RunId,
    /// False when an idempotency key matched an existing run, which is returned instead.
    pub new: bool,
}

/// Creates a run (queued); the same idempotency key returns the same run.
pub async fn create_run(store: &dyn Store, req: RunRequest<'_>) -> Result<Created> {
    let params = resolve_params(&req.pipeline.params, req.params)
        .map_err(|p| Error::Params(p.join("\n")))?;
    let p = req.pipeline;
    let tasks = p
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| NewTask {
            key: TaskKey::task(&t.id),
            task_id: t.id.to_string(),
            position: i64::try_from(i).unwrap_or(i64::MAX),
            item: None,
            state: TaskState::Pending,
        })
        .collect();
    let id = RunId::from_string(ulid::Ulid::new().to_string().to_lowercase());
    let run = NewRun {
        id,
        definition: DefinitionRecord {
            hash: p.version.to_string(),
            namespace: p.id.namespace.to_string(),
            name: p.id.name.to_string(),
            source: req.source.to_owned(),
            path: req.path,
        },
        params: Value::Object(params),
        trigger: req.trigger.to_owned(),
        logical_date: req.logical_date,
        base_dir: req.base_dir,
        idempotency_key: req.idempotency_key,
        created_at: now_ms(),
        tasks,
    };
    let stored = store.create_run(&run).await?;
    Ok(Created {
        new: stored == run.id,
        id: stored,
    })
}
