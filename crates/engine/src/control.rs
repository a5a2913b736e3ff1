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

/// Why a run could not be retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    #[error("run {run} is {state}; only failed or cancelled runs can be retried")]
    NotFinished { run: RunId, state: RunState },
    #[error("run {run} succeeded; there is nothing to retry")]
    Succeeded { run: RunId },
    #[error("the stored definition of run {run} no longer loads")]
    Definition { run: RunId },
    #[error("run {run} has no task `{key}`\n(hint: its tasks are {known})")]
    NoTask {
        run: RunId,
        key: TaskKey,
        known: String,
    },
    #[error("task `{key}` of run {run} is not a dead letter: {why}")]
    NotDeadLetter {
        run: RunId,
        key: TaskKey,
        why: String,
    },
    #[error("{0}")]
    Store(#[from] baton_store::Error),
}

/// Which tasks a retry reopens, besides what did not succeed downstream of them.
#[derive(Debug, Clone, Copy)]
pub enum Only<'a> {
    /// Every failed, cancelled or upstream-failed task.
    All,
    /// These task instances (plain tasks or fan-out instances) only.
    Tasks(&'a [TaskKey]),
}

/// Makes a failed or cancelled run runnable again from where it failed: failed, cancelled and
/// upstream-failed tasks, and anything downstream of them that did not succeed, are reopened
/// with a fresh retry budget; succeeded tasks keep their results. The run is queued; the
/// caller drives it (`execute`). Returns the reopened task keys.
pub async fn retry(store: &dyn Store, run: &RunId) -> Result<Vec<TaskKey>, RetryError> {
    retry_only(store, run, Only::All).await
}

/// Requeues dead letters: each of `keys` must be a task instance that failed for good in a
/// failed or cancelled run (see `Store::dead_letters`). They, and what did not succeed
/// downstream of them, run again with a fresh retry budget; the run's other failures stay
/// as they are. The run is queued; the caller drives it. Returns the reopened task keys.
pub async fn requeue(
    store: &dyn Store,
    run: &RunId,
    keys: &[TaskKey],
) -> Result<Vec<TaskKey>, RetryError> {
    let record = store
        .run(run)
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(run.to_string()))?;
    let tasks = store.tasks(run).await?;
    for key in keys {
        let not = |why: String| RetryError::NotDeadLetter {
            run: run.clone(),
            key: key.clone(),
            why,
        };
        let Some(task) = tasks.iter().find(|t| &t.key == key) else {
            let known: Vec<String> = tasks.iter().map(|t| format!("`{}`", t.key)).collect();
            return Err(RetryError::NoTask {
                run: run.clone(),
                key: key.clone(),
                known: known.join(", "),
            });
        };
        if !matches!(record.state, RunState::Failed | RunState::Cancelled) {
            return Err(not(format!("the run is {}", record.state)));
        }
        if task.state != TaskState::Failed {
            return Err(not(format!("it is {}", task.state)));
        }
        let instances: Vec<String> = tasks
            .iter()
            .filter(|t| t.task_id == task.task_id && t.key != task.key)
            .filter(|t| t.state == TaskState::Failed)
            .map(|t| format!("`{}`", t.key))
            .collect();
        if task.key.as_str() == task.task_id
            && tasks
                .iter()
                .any(|t| t.task_id == task.task_id && t.key != task.key)
        {
            return Err(not(format!(
                "it is a fan-out\n(hint: requeue its failed instances: {})",
                instances.join(", ")
            )));
        }
        if matches!(key.as_str(), "on_success" | "on_failure") {
            return Err(not(
                "it is a hook, which runs again whenever the run ends".into()
            ));
        }
    }
    retry_only(store, run, Only::Tasks(keys)).await
}

/// `retry`, for every broken task or only chosen ones.
pub async fn retry_only(
    store: &dyn Store,
    run: &RunId,
    only: Only<'_>,
) -> Result<Vec<TaskKey>, RetryError> {
    use baton_store::Change;
    let record = store
        .run(run)
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(run.to_string()))?;
    match record.state {
        RunState::Failed | RunState::Cancelled => {}
        RunState::Succeeded => return Err(RetryError::Succeeded { run: run.clone() }),
        state => {
            return Err(RetryError::NotFinished {
                run: run.clone(),
                state,
            });
        }
    }
    let definition = store
        .definition(&record.version)
        .await?
        .and_then(|d| baton_core::load(&d.source).pipeline)
        .ok_or_else(|| RetryError::Definition { run: run.clone() })?;
    let tasks = store.tasks(run).await?;
    let broken_state = |s: TaskState| {
        matches!(
            s,
            TaskState::Failed | TaskState::UpstreamFailed | TaskState::Cancelled
        )
    };
    // A task instance to rerun for its own sake (rather than for an upstream's).
    let chosen = |r: &baton_store::TaskRecord| match only {
        Only::All => broken_state(r.state),
        Only::Tasks(keys) => keys.contains(&r.key),
    };
    // Which DAG tasks reopen: the chosen ones (a fan-out when one of its instances is), then
    // whatever did not succeed downstream.
    let n = definition.tasks.len();
    let mut reopen = vec![false; n];
    let state_of = |id: &str| tasks.iter().find(|t| t.key.as_str() == id).map(|t| t.state);
    let root = |id: &str| tasks.iter().any(|r| r.task_id == id && chosen(r));
    for &t in &definition.dag.order {
        let id = definition.tasks[t].id.as_str();
        let Some(state) = state_of(id) else { continue };
        let upstream_reopened = definition.dag.upstream[t].iter().any(|&u| reopen[u]);
        reopen[t] = root(id) || (upstream_reopened && state != TaskState::Succeeded);
    }
    let at = now_ms();
    let mut changes = Vec::new();
    let mut keys = Vec::new();
    for (t, task) in definition.tasks.iter().enumerate() {
        if !reopen[t] {
            continue;
        }
        let id = task.id.as_str();
        let instances: Vec<&baton_store::TaskRecord> = tasks
            .iter()
            .filter(|r| r.task_id == id && r.key.as_str() != id)
            .collect();
        // A fan-out whose instances exist reruns only the broken ones; otherwise it is decided
        // and expanded afresh.
        let keep_instances = !instances.is_empty()
            && state_of(id).is_some_and(broken_state)
            && !definition.dag.upstream[t].iter().any(|&u| reopen[u]);
        if keep_instances {
            for r in instances.into_iter().filter(|r| chosen(r)) {
                changes.push(Change::Reopen {
                    key: r.key.clone(),
                    state: TaskState::Queued,
                    at,
                });
                keys.push(r.key.clone());
            }
            changes.push(Change::Reopen {
                key: TaskKey::from_string(id),
                state: TaskState::Running,
                at,
            });
        } else if instances.is_empty() {
            changes.push(Change::Reopen {
                key: TaskKey::from_string(id),
                state: TaskState::Pending,
                at,
            });
        } else {
            // Upstream reruns: its items may change, so old instances cannot be reused.
            continue;
        }
        keys.push(TaskKey::from_string(id));
    }
    changes.push(Change::Run {
        state: RunState::Queued,
        at,
        error: None,
    });
    store
        .apply(run, baton_store::Fence::Unfenced, &changes)
        .await?;
    Ok(keys)
}
