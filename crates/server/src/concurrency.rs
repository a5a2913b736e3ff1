//! Pipeline `concurrency` at launch: wording a refused (`skip`) run, and acting on the cancel
//! requests `cancel_previous` recorded.

use axum::http::StatusCode;
use baton_core::ids::RunId;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// The error code of a run `overlap: skip` refused.
pub(crate) const CONCURRENCY_LIMIT: &str = "concurrency_limit";

/// Turns the store's refusal into 409 `concurrency_limit`, naming the runs in the way.
pub(crate) fn skipped(e: baton_engine::Error) -> ApiError {
    match e {
        baton_engine::Error::Store(baton_store::Error::Skipped { group, active }) => {
            let pipeline = group.strip_prefix("pipeline:").unwrap_or(&group);
            ApiError::new(
                StatusCode::CONFLICT,
                CONCURRENCY_LIMIT,
                format!(
                    "pipeline `{pipeline}` already has {} active run(s), its `max_active_runs`, and its `overlap` is `skip`",
                    active.len()
                ),
            )
            .with_details(json!({ "group": group, "active_runs": active }))
        }
        other => other.into(),
    }
}

/// After a `cancel_previous` run was created: the store flagged the runs it replaces; each is
/// stopped by its owner, and those nobody drives (waiting, or left by a dead process) are
/// driven here, which ends them at once.
pub(crate) async fn cancel_flagged(state: &AppState, group: &str, new: &RunId) {
    use baton_engine::control::Cancel;
    let runs = match state.store.group_runs(group).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::error!(group, error = %e, "cannot list runs to cancel");
            return;
        }
    };
    for run in runs.iter().filter(|r| r.cancel_requested && &r.id != new) {
        match baton_engine::control::request_cancel(state.store.as_ref(), &run.id).await {
            Ok(Cancel::Orphaned) => state.runner.start(run.id.clone()),
            Ok(_) => {}
            Err(e) => tracing::error!(run = %run.id, error = %e, "cannot cancel run"),
        }
        tracing::info!(run = %run.id, replaced_by = %new, "cancelling the previous run (overlap: cancel_previous)");
    }
}
