//! What a crashed baton left on the cluster. An interrupted attempt's Job is found by its
//! name (derived from the attempt; no label search): one still running is deleted before the
//! attempt is tried again, one that ended meanwhile is read (exit code, outputs from the
//! termination message) so a task that succeeded is not run twice. The sweep finds the Jobs
//! of runs that are over by their labels.

use std::collections::BTreeMap;

use baton_core::ids::RunId;
use kube::api::ListParams;

use super::KubeError;
use super::attempt::{delete, finished, keep_outputs, terminated_pod};
use super::client::Connected;
use super::{Inner, naming};
use crate::executor::{Finished, Leftover, Outputs, Unseen};

/// The cluster, when there are container attempts to look for; none (logged) otherwise.
async fn connection(inner: &Inner, any: bool) -> Option<&Connected> {
    // A run without container tasks never waits on a cluster (which may not answer).
    if !any {
        return None;
    }
    match inner.client.get().await {
        Ok(conn) => Some(conn),
        // Without a configuration there is no cluster any attempt could have run on.
        Err(e @ KubeError::NoConfig { .. }) => {
            tracing::debug!(executor = inner.settings.name, error = %e, "no cluster to look for an interrupted attempt's job on");
            None
        }
        Err(e) => {
            tracing::warn!(executor = inner.settings.name, error = %e, "cannot look for an interrupted attempt's job");
            None
        }
    }
}

/// Deletes the Jobs of `attempts` that still run, and waits until they are gone; ended ones
/// are left for [`settle`].
pub(super) async fn stop(inner: &Inner, run: &RunId, attempts: &[Leftover]) {
    let Some(conn) = connection(inner, attempts.iter().any(|a| a.container)).await else {
        return;
    };
    for a in attempts.iter().filter(|a| a.container) {
        let name = naming::job_name(run, &a.key, a.attempt);
        match conn.jobs().get_opt(&name).await {
            Ok(Some(job)) if !finished(&job) => {
                tracing::warn!(
                    run = %run, task = %a.key, attempt = a.attempt, job = name,
                    "deleting the job of an interrupted attempt before trying it again"
                );
                if let Err(e) = delete(conn, &name, Some(inner.settings.stop_grace), true).await {
                    tracing::warn!(job = name, error = %e, "cannot delete an interrupted attempt's job");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let e = conn.request("get", "jobs", &name).failed(&e);
                tracing::warn!(job = name, error = %e, "cannot look for an interrupted attempt's job");
            }
        }
    }
}

/// The ends of those of `attempts` whose Job ended before its starter could report it, where
/// `known` has none yet; `None` for one this executor knows nothing of. Their Jobs go.
pub(super) async fn settle(
    inner: &Inner,
    attempts: Vec<Unseen>,
    mut known: Vec<Option<Finished>>,
) -> Vec<Option<Finished>> {
    let Some(conn) = connection(inner, attempts.iter().any(|a| a.container)).await else {
        return known;
    };
    for (a, slot) in attempts.iter().zip(known.iter_mut()) {
        if !a.container {
            continue;
        }
        let name = naming::job_name(&a.run, &a.key, a.attempt);
        let Ok(Some(job)) = conn.jobs().get_opt(&name).await else {
            continue;
        };
        if slot.is_none()
            && finished(&job)
            && let Some((_, t)) = terminated_pod(conn, &name).await
        {
            tracing::info!(
                task = %a.key, attempt = a.attempt, job = name,
                "an interrupted attempt's job had ended; its end is kept"
            );
            let outputs = Outputs::Text(t.message.clone());
            keep_outputs(&a.outputs_path, &outputs);
            *slot = Some(Finished {
                key: a.key.clone(),
                attempt: a.attempt,
                outcome: t.outcome(None),
                rusage: None,
                outputs,
                artifacts: None,
            });
        }
        let succeeded = slot.as_ref().is_some_and(|f| {
            f.outcome
                == crate::executor::Outcome::Exited {
                    exit_code: Some(0),
                    signal: None,
                }
        });
        // One that still ran was stopped by `stop` already; one ended is read now.
        if inner.settings.on_finish.deletes(succeeded) || !finished(&job) {
            let _ = delete(conn, &name, Some(inner.settings.stop_grace), false).await;
        }
    }
    known
}

/// Deletes the Jobs of runs that are over; how many.
pub(super) async fn sweep(inner: &Inner, store: &dyn baton_store::Store) -> usize {
    let conn = match inner.client.get().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(executor = inner.settings.name, error = %e, "no cluster to sweep");
            return 0;
        }
    };
    let params = ListParams::default().labels(&naming::selector(&inner.settings.name));
    let list = match conn.jobs().list(&params).await {
        Ok(list) => list,
        Err(e) => {
            let e = conn.request("list", "jobs", "").failed(&e);
            tracing::warn!(error = %e, "cannot list baton's jobs");
            return 0;
        }
    };
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in list.items {
        let run = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(naming::RUN))
            .cloned();
        if let (Some(run), Some(name)) = (run, job.metadata.name) {
            by_run.entry(run).or_default().push(name);
        }
    }
    let mut removed = 0;
    for (run, names) in by_run {
        let run = RunId::from_string(run);
        // A run this store does not know may be another baton's on the same cluster: only
        // runs known to be over are swept.
        let over = matches!(store.run(&run).await, Ok(Some(r)) if r.state.is_final());
        if !over {
            continue;
        }
        for name in names {
            tracing::warn!(run = %run, job = name, "deleting a job of a run that is over");
            match delete(conn, &name, Some(inner.settings.stop_grace), false).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(job = name, error = %e, "cannot delete a job"),
            }
        }
    }
    removed
}
