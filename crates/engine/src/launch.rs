//! Creating runs: checking params, pinning the definition, laying out the task records.

use baton_core::ids::{BackfillId, RunId, TaskKey};
use baton_core::model::{Pipeline, resolve_params};
use baton_core::state::TaskState;
use baton_store::{Admission, DefinitionRecord, NewRun, NewTask, Store};
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
    pub trigger: baton_core::state::RunTrigger,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
    /// The concurrency group the run joins (see [`pipeline_admission`]); `None` for a run
    /// that starts at once whatever else is active (`baton run`).
    pub admission: Option<Admission>,
    pub backfill_id: Option<BackfillId>,
    /// Run every task with `cache:` instead of reusing an earlier result (`--no-cache`); new
    /// results are still stored.
    pub no_cache: bool,
}

impl<'a> RunRequest<'a> {
    /// A manual run of `pipeline` with no params, starting at once: the rest are set by
    /// struct update where they differ.
    pub fn new(pipeline: &'a Pipeline, source: &'a str, base_dir: impl Into<String>) -> Self {
        Self {
            pipeline,
            source,
            path: None,
            base_dir: base_dir.into(),
            params: Map::new(),
            trigger: baton_core::state::RunTrigger::Manual,
            logical_date: None,
            idempotency_key: None,
            admission: None,
            backfill_id: None,
            no_cache: false,
        }
    }
}

/// The admission group of a pipeline's runs under its `concurrency` settings; `None` when the
/// pipeline sets no limit.
pub fn pipeline_admission(pipeline: &Pipeline) -> Option<Admission> {
    let limit = pipeline.concurrency.max_active_runs?;
    Some(Admission {
        group: format!("pipeline:{}", pipeline.id),
        limit,
        overlap: pipeline.concurrency.overlap,
    })
}

/// A run that `create_run` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: RunId,
    /// False when an idempotency key matched an existing run, which is returned instead.
    pub new: bool,
}

/// Creates a run (queued); the same idempotency key returns the same run. With an admission
/// group at its limit, `overlap: skip` creates nothing: the store's
/// [`baton_store::Error::Skipped`] comes back as [`Error::Store`].
pub async fn create_run(store: &dyn Store, req: RunRequest<'_>) -> Result<Created> {
    let id = RunId::from_string(ulid::Ulid::new().to_string().to_lowercase());
    let run = new_run(req, id, now_ms())?;
    let stored = store.create_run(&run).await?;
    Ok(Created {
        new: stored == run.id,
        id: stored,
    })
}

/// The records of a new run: params checked and completed, tasks laid out.
pub(crate) fn new_run(req: RunRequest<'_>, id: RunId, created_at: i64) -> Result<NewRun> {
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
    Ok(NewRun {
        id,
        definition: DefinitionRecord {
            hash: p.version.to_string(),
            namespace: p.id.namespace.to_string(),
            name: p.id.name.to_string(),
            source: req.source.to_owned(),
            path: req.path,
        },
        params: Value::Object(params),
        trigger: req.trigger.as_str().to_owned(),
        logical_date: req.logical_date,
        base_dir: req.base_dir,
        idempotency_key: req.idempotency_key,
        created_at,
        tasks,
        admission: req.admission,
        backfill_id: req.backfill_id,
        no_cache: req.no_cache,
        parent: None,
    })
}
