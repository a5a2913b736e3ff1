//! Pipeline `concurrency` after a launch: acting on the cancel requests `cancel_previous`
//! recorded.

use baton_core::ids::RunId;

use crate::Control;

/// After a `cancel_previous` run was created: the store flagged the runs it replaces; each is
/// stopped by its owner, and those nobody drives (waiting, or left by a dead process) are
/// driven here, which ends them at once.
pub(crate) async fn cancel_flagged(control: &Control, group: &str, new: &RunId) {
    use baton_engine::control::Cancel;
    let runs = match control.store.group_runs(group).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::error!(group, error = %e, "cannot list runs to cancel");
            return;
        }
    };
    for run in runs.iter().filter(|r| r.cancel_requested && &r.id != new) {
        match baton_engine::control::request_cancel(control.store.as_ref(), &run.id).await {
            Ok(Cancel::Orphaned) => control.runner.start(run.id.clone()),
            Ok(_) => {}
            Err(e) => tracing::error!(run = %run.id, error = %e, "cannot cancel run"),
        }
        tracing::info!(run = %run.id, replaced_by = %new, "cancelling the previous run (overlap: cancel_previous)");
    }
}
