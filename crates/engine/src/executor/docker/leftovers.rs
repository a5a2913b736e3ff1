//! What a dead baton left on the engine. Before an interrupted attempt is tried again, its
//! container, if it still runs, is stopped (SIGTERM, the grace, SIGKILL) and removed: two
//! copies of one attempt never run at once. A container that had exited on its own is the
//! attempt's true end: its exit code and outputs are read back ([`recover`]) and the task is
//! not run again. Containers are found by the labels of their run, one list per run.

use std::collections::HashMap;

use baton_core::ids::RunId;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptions;

use super::attempt::{
    attempt_dir, end_outcome, ended, keep_outputs, message, remove, stop_container,
};
use super::{Inner, naming};
use crate::executor::{Finished, Leftover, Unseen};

/// A container of one run: its name, keyed by task key and attempt.
type Found = HashMap<(String, u32), (String, bool)>;

/// The containers of `run` this executor made: (task, attempt) → (name, still running).
async fn containers_of(inner: &Inner, run: &RunId) -> Option<Found> {
    let list = list(inner, Some(run)).await?;
    let mut found = Found::new();
    for c in list {
        let labels = c.labels.unwrap_or_default();
        let (Some(task), Some(attempt), Some(name)) = (
            labels.get(naming::TASK),
            labels.get(naming::ATTEMPT).and_then(|a| a.parse().ok()),
            c.names.and_then(|n| n.into_iter().next()),
        ) else {
            continue;
        };
        let running = matches!(
            c.state,
            Some(
                ContainerSummaryStateEnum::RUNNING
                    | ContainerSummaryStateEnum::PAUSED
                    | ContainerSummaryStateEnum::RESTARTING
            )
        );
        found.insert(
            (task.clone(), attempt),
            (name.trim_start_matches('/').to_owned(), running),
        );
    }
    Some(found)
}

/// The containers this executor made (of `run` only, when given), stopped ones too; none
/// when the engine cannot be reached or listed.
async fn list(inner: &Inner, run: Option<&RunId>) -> Option<Vec<ContainerSummary>> {
    let docker = match inner.client.get().await {
        Ok(docker) => docker,
        Err(e) => {
            tracing::debug!(error = %e, "no Docker engine to look for baton's containers on");
            return None;
        }
    };
    let mut labels = vec![format!("{}={}", naming::EXECUTOR, inner.settings.name)];
    labels.extend(run.map(|run| format!("{}={run}", naming::RUN)));
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), labels)])),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .map_err(|e| tracing::warn!(error = %message(&e), "cannot list baton's containers"))
        .ok()
}

/// Stops and removes the running containers of `attempts`; exited ones are left for
/// [`recover`].
pub(super) async fn stop(inner: &Inner, run: &RunId, attempts: &[Leftover]) {
    // A run without container tasks never waits on an engine (which may not answer).
    if !attempts.iter().any(|a| a.container) {
        return;
    }
    let Some(found) = containers_of(inner, run).await else {
        return;
    };
    let Ok(docker) = inner.client.get().await else {
        return;
    };
    for a in attempts.iter().filter(|a| a.container) {
        let Some((name, true)) = found.get(&(a.key.to_string(), a.attempt)) else {
            continue;
        };
        tracing::warn!(
            run = %run, task = %a.key, attempt = a.attempt, container = name,
            "stopping the container of an interrupted attempt before trying it again"
        );
        stop_container(docker, name, inner.settings.stop_grace).await;
        remove(docker, name).await;
    }
}

/// The ends of those of `attempts` whose container exited before its starter could report
/// it; `None` for one this executor knows nothing of.
pub(super) async fn recover(inner: &Inner, attempts: Vec<Unseen>) -> Vec<Option<Finished>> {
    let known = attempts.iter().map(|_| None).collect();
    settle(inner, attempts, known).await
}

/// As [`recover`], for attempts of which `known` already holds what another record told
/// (an exit record written before the container could be removed): their containers are
/// removed all the same.
pub(super) async fn settle(
    inner: &Inner,
    attempts: Vec<Unseen>,
    mut known: Vec<Option<Finished>>,
) -> Vec<Option<Finished>> {
    if !attempts.iter().any(|a| a.container) {
        return known;
    }
    let mut runs: HashMap<RunId, Option<Found>> = HashMap::new();
    for a in attempts.iter().filter(|a| a.container) {
        if !runs.contains_key(&a.run) {
            let found = containers_of(inner, &a.run).await;
            runs.insert(a.run.clone(), found);
        }
    }
    let Ok(docker) = inner.client.get().await else {
        return known;
    };
    for (a, slot) in attempts.iter().zip(known.iter_mut()) {
        if !a.container {
            continue;
        }
        let Some(Some(found)) = runs.get(&a.run) else {
            continue;
        };
        let Some((name, _)) = found.get(&(a.key.to_string(), a.attempt)) else {
            continue;
        };
        let dir = attempt_dir(&a.outputs_path);
        if slot.is_none()
            && let Some((code, oom_killed)) = ended(docker, name).await
        {
            let outcome = end_outcome(code, oom_killed, None);
            tracing::info!(
                task = %a.key, attempt = a.attempt, container = name.as_str(),
                "an interrupted attempt's container had exited; its end is kept"
            );
            *slot = Some(Finished {
                key: a.key.clone(),
                attempt: a.attempt,
                outcome,
                rusage: None,
                outputs: keep_outputs(&dir, &a.outputs_path),
                artifacts: None,
            });
        }
        remove(docker, name).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    known
}

/// The runs with containers of this executor on its engine, each with its containers'
/// names; none when the engine cannot be reached.
pub(super) async fn runs(inner: &Inner) -> Vec<(RunId, Vec<String>)> {
    let Some(list) = list(inner, None).await else {
        return Vec::new();
    };
    let mut by_run: HashMap<String, Vec<String>> = HashMap::new();
    for c in list {
        let run = c.labels.as_ref().and_then(|l| l.get(naming::RUN)).cloned();
        let name = c.names.and_then(|n| n.into_iter().next());
        if let (Some(run), Some(name)) = (run, name) {
            by_run
                .entry(run)
                .or_default()
                .push(name.trim_start_matches('/').to_owned());
        }
    }
    by_run
        .into_iter()
        .map(|(run, names)| (RunId::from_string(run), names))
        .collect()
}

/// Stops and removes `names`, containers of a run that is over.
pub(super) async fn remove_all(inner: &Inner, run: &RunId, names: &[String]) {
    let Ok(docker) = inner.client.get().await else {
        return;
    };
    for name in names {
        tracing::warn!(run = %run, container = name.as_str(), "removing a container of a run that is over");
        stop_container(docker, name, inner.settings.stop_grace).await;
        remove(docker, name).await;
    }
}
