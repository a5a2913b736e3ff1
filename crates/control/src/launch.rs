//! Starting a run of a catalog pipeline, and why one may not start.

use baton_core::ids::RunId;
use baton_core::spec::Overlap;

use crate::Control;
use crate::catalog;

/// How a run of a catalog pipeline starts; the rest comes from the version.
#[derive(Debug)]
pub struct Launch {
    pub params: serde_json::Map<String, serde_json::Value>,
    pub trigger: baton_core::state::RunTrigger,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
    /// Tasks with `cache:` run instead of reusing earlier results (the run keeps the choice).
    pub no_cache: bool,
}

/// Why a run was not started. Callers decide by the variant: the scheduler consumes a tick
/// refused by `overlap: skip`, the API answers each with its status.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("pipeline `{0}` not found")]
    UnknownPipeline(String),
    #[error("pipeline `{0}` has no valid version")]
    NoValidVersion(String),
    /// `overlap: skip` at the pipeline's `max_active_runs`: nothing was created.
    #[error(
        "pipeline `{}` already has {} active run(s), its `max_active_runs`, and its `overlap` is `skip`",
        group.strip_prefix("pipeline:").unwrap_or(group),
        active.len()
    )]
    ConcurrencyLimit { group: String, active: Vec<RunId> },
    /// The params, the idempotency key, or the store refused the run.
    #[error(transparent)]
    Engine(baton_engine::Error),
}

impl From<baton_engine::Error> for LaunchError {
    fn from(e: baton_engine::Error) -> Self {
        match e {
            baton_engine::Error::Store(baton_store::Error::Skipped { group, active }) => {
                Self::ConcurrencyLimit { group, active }
            }
            other => Self::Engine(other),
        }
    }
}

impl From<baton_store::Error> for LaunchError {
    fn from(e: baton_store::Error) -> Self {
        baton_engine::Error::Store(e).into()
    }
}

impl Control {
    /// Creates a run of `version` and starts driving it (once admitted, under the pipeline's
    /// `concurrency`). When the idempotency key matches an earlier run, that run is returned as
    /// it is (`new: false`) and not started again. `overlap: skip` at the limit fails with
    /// [`LaunchError::ConcurrencyLimit`].
    pub async fn launch(
        &self,
        version: &catalog::Version,
        launch: Launch,
    ) -> Result<baton_engine::Created, LaunchError> {
        let admission = baton_engine::pipeline_admission(&version.pipeline);
        let created = baton_engine::create_run(
            self.store.as_ref(),
            baton_engine::RunRequest {
                pipeline: &version.pipeline,
                source: &version.source,
                path: Some(version.file.display().to_string()),
                base_dir: version.base_dir(),
                params: launch.params,
                trigger: launch.trigger,
                logical_date: launch.logical_date,
                idempotency_key: launch.idempotency_key,
                admission: admission.clone(),
                backfill_id: None,
                no_cache: launch.no_cache,
            },
        )
        .await
        .map_err(LaunchError::from)
        .inspect_err(|e| {
            if matches!(e, LaunchError::ConcurrencyLimit { .. }) {
                self.metrics.denied("concurrency_skip");
            }
        })?;
        if created.new {
            if let Some(a) = admission.filter(|a| a.overlap == Overlap::CancelPrevious) {
                crate::admission::cancel_flagged(self, &a.group, &created.id).await;
            }
            self.runner.start(created.id.clone());
        }
        Ok(created)
    }
}
