//! What people ask of a run from outside its owner: approve or reject a gate, cancel. The
//! rules live here once; the CLI and the API only word the outcome.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_store::Store;

use crate::clock::now_ms;

/// Why a decision on a gate was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    #[error("run {run} has no task `{key}`\n(hint: its tasks are {known})")]
    NoTask {
        run: RunId,
        key: TaskKey,
        known: String,
    },
    #[error("task `{key}` is already {state}")]
    Finished { key: TaskKey, state: TaskState },
    #[error("task `{key}` was already decided")]
    AlreadyDecided { key: TaskKey },
    #[error("{0}")]
    Store(#[from] baton_store::Error),
}

/// Records a person's decision on a task's approval gate; the first decision stands.
pub async fn decide(
    store: &dyn Store,
    run: &RunId,
    key: &TaskKey,
    approve: bool,
    by: &str,
    comment: Option<&str>,
) -> Result<(), DecideError> {
    let tasks = store.tasks(run).await?;
    let Some(task) = tasks.iter().find(|t| &t.key == key) else {
        let known: Vec<String> = tasks.iter().map(|t| format!("`{}`", t.key)).collect();
        return Err(DecideError::NoTask {
            run: run.clone(),
            key: key.clone(),
            known: known.join(", "),
        });
    };
    if task.state.is_final() {
        return Err(DecideError::Finished {
            key: key.clone(),
            state: task.state,
        });
    }
    if !store
        .decide(run, key, approve, by, now_ms(), comment)
        .await?
    {
        return Err(DecideError::AlreadyDecided { key: key.clone() });
    }
    Ok(())
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The run had already ended.
    Finished(RunState),
    /// Its owner will stop it at its next look at the store.
    Requested,
    /// Nobody drives it (its process died): the caller should drive it, and the request ends it.
    Orphaned,
}

/// Asks for a run to be cancelled.
pub async fn request_cancel(store: &dyn Store, run: &RunId) -> Result<Cancel, baton_store::Error> {
    let record = store
        .run(run)
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(run.to_string()))?;
    if record.state.is_final() {
        return Ok(Cancel::Finished(record.state));
    }
    store.request_cancel(run).await?;
    let owned = record
        .lease_owner
        .as_deref()
        .is_some_and(|o| !crate::owner_is_dead(o))
        && record.lease_expires_at.is_some_and(|t| t > now_ms());
    Ok(if owned {
        Cancel::Requested
    } else {
        Cancel::Orphaned
    })
}
