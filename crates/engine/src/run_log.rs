//! baton's own log of a run's committed transitions, with the run, pipeline and task as fields
//! (so JSON log lines can be filtered by run or task). Task logs are separate files.

use baton_core::state::TaskState;
use baton_store::Change;

use crate::observer::RunScope;

/// Logs one commit's changes: the run's and the tasks' outcomes at `info`, the steps between
/// them at `debug`.
pub(crate) fn committed(scope: RunScope<'_>, changes: &[Change]) {
    let run = scope.run.id.as_str();
    let pipeline = &scope.pipeline.id;
    for change in changes {
        match change {
            Change::Run { state, error, .. } => tracing::info!(
                run,
                %pipeline,
                %state,
                error = error.as_deref(),
                "run {state}"
            ),
            Change::Task {
                key, state, error, ..
            } => {
                let task = key.as_str();
                match state {
                    TaskState::Pending | TaskState::Queued | TaskState::Running => {
                        tracing::debug!(run, %pipeline, task, %state, "task {state}");
                    }
                    _ => tracing::info!(
                        run,
                        %pipeline,
                        task,
                        %state,
                        error = error.as_deref(),
                        "task {state}"
                    ),
                }
            }
            Change::AttemptStarted { key, attempt, .. } => {
                tracing::debug!(run, %pipeline, task = key.as_str(), attempt, "attempt started");
            }
            Change::AttemptFinished {
                key,
                attempt,
                state,
                started_at,
                at,
                exit_code,
                ..
            } => tracing::debug!(
                run,
                %pipeline,
                task = key.as_str(),
                attempt,
                %state,
                exit_code,
                duration_ms = at.saturating_sub(*started_at),
                "attempt {state}"
            ),
            Change::Asked { key, message, .. } => tracing::info!(
                run,
                %pipeline,
                task = key.as_str(),
                message = message.as_str(),
                "task asks for approval"
            ),
            Change::Decided {
                key,
                approved,
                by,
                comment,
                ..
            } => {
                let decision = if *approved { "approved" } else { "rejected" };
                tracing::info!(
                    run,
                    %pipeline,
                    task = key.as_str(),
                    by = by.as_str(),
                    comment = comment.as_deref(),
                    "task {decision} by {by}"
                );
            }
            Change::CacheChecked {
                key,
                cache_key,
                hit: Some(hit),
                ..
            } => tracing::info!(
                run,
                %pipeline,
                task = key.as_str(),
                cache_key = cache_key.as_str(),
                "task reuses the result of {} in run {}",
                hit.task,
                hit.run
            ),
            Change::CacheChecked { key, cache_key, .. } => tracing::debug!(
                run,
                %pipeline,
                task = key.as_str(),
                cache_key = cache_key.as_str(),
                "no cached result"
            ),
            Change::AttemptSpawned {
                key,
                attempt,
                process,
                ..
            } => tracing::debug!(
                task = %key, attempt, pgid = process.pgid, "attempt process started"
            ),
            Change::ArtifactsStored {
                key,
                attempt,
                store,
                files,
                ..
            } => tracing::info!(
                run,
                %pipeline,
                task = key.as_str(),
                attempt,
                store = store.as_str(),
                files = files.len(),
                bytes = files.iter().map(|f| f.size).sum::<u64>(),
                "artifacts stored"
            ),
            Change::AddTasks(_) | Change::Reopen { .. } | Change::CacheSaved { .. } => {}
        }
    }
}
