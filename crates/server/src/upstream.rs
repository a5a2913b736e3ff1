//! Upstream-pipeline triggers: when a run succeeds, pipelines with `triggers: - pipeline: it`
//! start. Each downstream run's idempotency key names the upstream run, so an announcement
//! seen twice never starts a second run.

use baton_core::ids::RunId;
use baton_core::model::Trigger;
use baton_core::state::RunState;

use crate::{AppState, Launch};

/// Starts downstream runs for every run the runner finishes, until the runner goes away.
pub fn watch(state: AppState) {
    let mut finished = state.runner.subscribe();
    tokio::spawn(async move {
        loop {
            match finished.recv().await {
                Ok((run, RunState::Succeeded)) => {
                    if let Err(e) = fire(&state, &run).await {
                        tracing::error!(run = %run, error = ?e, "upstream trigger failed");
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "upstream triggers fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Starts the runs that `upstream`'s success triggers; returns them.
pub async fn fire(state: &AppState, upstream: &RunId) -> Result<Vec<RunId>, crate::ApiError> {
    let Some(run) = state.store.run(upstream).await? else {
        return Ok(Vec::new());
    };
    let upstream_id = format!("{}/{}", run.namespace, run.pipeline);
    let catalog = state.catalog.read().await;
    let mut started = Vec::new();
    for entry in catalog.entries() {
        let Some(version) = &entry.active else {
            continue;
        };
        let p = &version.pipeline;
        let triggered = p.triggers.iter().any(
            |t| matches!(t, Trigger::Pipeline { pipeline } if pipeline.to_string() == upstream_id),
        );
        if !triggered
            || state
                .store
                .is_paused(p.id.namespace.as_str(), p.id.name.as_str())
                .await?
        {
            continue;
        }
        let launch = Launch {
            params: serde_json::Map::new(),
            trigger: "pipeline",
            logical_date: run.logical_date.clone(),
            idempotency_key: Some(format!("upstream:{upstream}:{}", p.id)),
        };
        match state.launch(version, launch).await {
            Ok(created) if created.new => started.push(created.id),
            Ok(_) => {}
            Err(e) if e.code == crate::concurrency::CONCURRENCY_LIMIT => {
                tracing::info!(pipeline = %p.id, upstream = %upstream, "not started: the pipeline is at its max_active_runs (overlap: skip)");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(started)
}
