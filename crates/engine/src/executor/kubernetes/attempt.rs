//! One attempt as one Job: create, watch the Job and its pod until the container ends (or a
//! limit, the timeout or a cancel ends the attempt), follow the log, read the exit and the
//! outputs from the termination message, delete.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{oneshot, watch as signal};

use super::client::Connected;
use super::errors::{KubeError, PodFailure, status};
use super::logs::{self, Progress};
use super::watch::{Ended, Reconnect, Seen, Terminated, Tracker};
use super::{Inner, job, naming};
use crate::executor::log_sink::LogWriter;
use crate::executor::stopping::{Stop, container_of, stop_when};
use crate::executor::{AttemptSpec, ContainerRun, Finished, Outcome, Outputs, exit_record};

/// How long past its grace a deleted Job may take to be seen gone.
const DELETED_WAIT: Duration = Duration::from_secs(30);
/// How long the log may take to be read to its end once the container has ended.
const LOG_TAIL_WAIT: Duration = Duration::from_secs(30);
const GONE_POLL: Duration = Duration::from_millis(200);

/// How the watch of an attempt ended.
enum Watched {
    Ended(Ended),
    Stopped(Stop),
    Failed(KubeError),
}

pub(super) async fn run(
    inner: &Inner,
    spec: AttemptSpec,
    cancel: oneshot::Receiver<()>,
) -> Finished {
    let c = match container_of(&spec, "kubernetes") {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let report = |outcome, outputs| Finished::of(&spec, outcome, outputs);
    let name = naming::job_name(&c.run, &spec.key, spec.attempt);
    let stop = stop_when(spec.timeout, cancel);
    tokio::pin!(stop);

    let created = tokio::select! {
        created = create(inner, &spec, c, &name) => created,
        stop = &mut stop => Err(stop.outcome()),
    };
    let conn = match created {
        Ok(conn) => conn,
        Err(outcome) => {
            // Created and stopped at once, or not created at all.
            if let Ok(conn) = inner.client.get().await {
                let _ = delete(conn, &name, Some(inner.settings.stop_grace), false).await;
            }
            return report(outcome, Outputs::default());
        }
    };

    let (progress, progress_rx) = signal::channel(Progress::default());
    let mut pump = tokio::spawn(logs::pump(
        conn.pods(),
        progress_rx,
        LogWriter::new(spec.log.clone()),
    ));
    let mut tracker = Tracker::new(&name, &c.image, &inner.settings);
    let watched = tokio::select! {
        watched = follow(conn, &name, &mut tracker, &progress) => watched,
        stop = &mut stop => Watched::Stopped(stop),
    };

    // A pod stuck pulling or unscheduled would hold its Job (and its node's quota) until
    // the TTL: it goes whatever `on_finish` says.
    let stuck = matches!(
        &watched,
        Watched::Ended(Ended::Failed(
            PodFailure::ImagePull { .. }
                | PodFailure::ContainerConfig { .. }
                | PodFailure::Unschedulable { .. }
        )) | Watched::Failed(_)
    );
    let (outcome, outputs, succeeded) = match watched {
        Watched::Ended(Ended::Terminated(t)) => {
            let outcome = t.outcome(c.resources.memory_bytes);
            let succeeded = outcome
                == Outcome::Exited {
                    exit_code: Some(0),
                    signal: None,
                };
            (outcome, Outputs::Text(t.message), succeeded)
        }
        Watched::Ended(Ended::DeadlineExceeded) => (Outcome::TimedOut, Outputs::default(), false),
        Watched::Ended(Ended::Failed(f)) => (f.outcome(), Outputs::default(), false),
        Watched::Failed(e) => (e.outcome(), Outputs::default(), false),
        Watched::Stopped(stop) => (stop.outcome(), Outputs::default(), false),
    };
    let stopped = matches!(outcome, Outcome::Cancelled | Outcome::TimedOut);
    // Read to its end while the pod is there: a stopped one goes with its log.
    progress.send_modify(|p| p.ended = true);
    let log_result = match tokio::time::timeout(LOG_TAIL_WAIT, &mut pump).await {
        Ok(joined) => joined.unwrap_or_else(|e| Err(format!("the log copy failed: {e}"))),
        Err(_) => {
            // A follow the server never ends must not outlive its attempt.
            pump.abort();
            Err(format!(
                "the log of job `{name}` did not end within {LOG_TAIL_WAIT:?}"
            ))
        }
    };
    // Gone before the next attempt may start: two copies of one attempt never run.
    if stopped && let Err(e) = delete(conn, &name, Some(inner.settings.stop_grace), true).await {
        tracing::warn!(job = name, error = %e, "cannot delete a stopped attempt's job");
    }
    let outcome = match (log_result, outcome) {
        (Err(e), Outcome::Exited { .. }) => {
            Outcome::Error(format!("cannot keep the attempt's log: {e}"))
        }
        (_, outcome) => outcome,
    };
    // Kept where a baton resuming the run looks, before the Job that also holds them goes.
    keep_outputs(&spec.outputs_path, &outputs);
    if let Some(exit_path) = &spec.exit_path {
        exit_record::write(exit_path, &outcome, None);
    }
    if (stuck || inner.settings.on_finish.deletes(succeeded))
        && let Err(e) = delete(conn, &name, None, false).await
    {
        tracing::warn!(job = name, error = %e, "cannot delete a finished attempt's job");
    }
    report(outcome, outputs)
}

/// Writes what a task returned where its attempt's outputs are kept.
pub(super) fn keep_outputs(path: &Path, outputs: &Outputs) {
    if let Outputs::Text(text) = outputs
        && !text.is_empty()
        && let Err(e) = std::fs::write(path, text)
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep an attempt's outputs");
    }
}

/// Connects and creates the attempt's Job.
async fn create<'a>(
    inner: &'a Inner,
    spec: &AttemptSpec,
    c: &ContainerRun,
    name: &str,
) -> Result<&'a Connected, Outcome> {
    let conn = inner.client.get().await.map_err(|e| e.outcome())?;
    baton_core::model::check_image_reference(&c.image).map_err(Outcome::Refused)?;
    let body = job::build(&inner.settings, spec, c, name).map_err(Outcome::Refused)?;
    let jobs = conn.jobs();
    let failed = |e: &kube::Error| conn.request("create", "jobs", name).failed(e).outcome();
    match jobs.create(&PostParams::default(), &body).await {
        Ok(_) => Ok(conn),
        // A Job of this very attempt, from a baton that died before it could record the
        // start: it never ran on our watch, so it goes.
        Err(e) if status(&e) == Some(409) => {
            delete(conn, name, Some(inner.settings.stop_grace), true)
                .await
                .map_err(|e| e.outcome())?;
            jobs.create(&PostParams::default(), &body)
                .await
                .map_err(|e| failed(&e))?;
            Ok(conn)
        }
        Err(e) => Err(failed(&e)),
    }
}

/// Watches the Job and its pod until the attempt ends; tells `progress` of the pod.
async fn follow(
    conn: &Connected,
    name: &str,
    tracker: &mut Tracker,
    progress: &signal::Sender<Progress>,
) -> Watched {
    // The watcher relists on 410 Gone and, after the backoff, starts a cut stream again from
    // its last resourceVersion; bookmarks keep that fresh, so a reconnect rarely needs the
    // relist.
    let jobs = watcher::watcher(
        conn.jobs(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .backoff(Reconnect::default());
    let pods = watcher::watcher(
        conn.pods(),
        watcher::Config::default().labels(&format!("{}={name}", naming::JOB_NAME)),
    )
    .backoff(Reconnect::default());
    let mut jobs = std::pin::pin!(jobs);
    let mut pods = std::pin::pin!(pods);
    loop {
        let check = tracker.next_check();
        tokio::select! {
            event = jobs.next() => match event {
                Some(Ok(Event::Apply(j) | Event::InitApply(j))) => {
                    // A Job that ended is read from its pod at once: a pod watch that fell
                    // behind must not keep it waiting.
                    let failed = tracker.job(&j);
                    if (failed.is_some() || finished(&j))
                        && let Some(watched) = settle_job(conn, name, failed, progress).await
                    {
                        return watched;
                    }
                }
                Some(Ok(Event::Delete(_))) => {
                    return Watched::Ended(Ended::Failed(PodFailure::Vanished { job: name.to_owned() }));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => if let Some(fatal) = fatal(conn, "jobs", name, &e) {
                    return Watched::Failed(fatal);
                },
                None => return Watched::Failed(gone_stream(conn, name)),
            },
            event = pods.next() => match event {
                Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                    match tracker.pod(&p, tokio::time::Instant::now()) {
                        Seen::Waiting => tell(progress, &p, false),
                        Seen::Started => tell(progress, &p, true),
                        Seen::Ended(ended) => {
                            tell(progress, &p, true);
                            return Watched::Ended(ended);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => if let Some(fatal) = fatal(conn, "pods", name, &e) {
                    return Watched::Failed(fatal);
                },
                None => return Watched::Failed(gone_stream(conn, name)),
            },
            () = sleep_until(check) => {
                if let Some(ended) = tracker.check(tokio::time::Instant::now()) {
                    return Watched::Ended(ended);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn tell(progress: &signal::Sender<Progress>, pod: &Pod, started: bool) {
    let name = pod.metadata.name.clone();
    progress.send_if_modified(|p| {
        let changed = p.pod != name || (started && !p.started);
        p.pod = name;
        p.started |= started;
        changed
    });
}

/// A watch error that retrying cannot mend: baton may not watch.
fn fatal(
    conn: &Connected,
    resource: &'static str,
    name: &str,
    e: &watcher::Error,
) -> Option<KubeError> {
    let api = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        other => {
            tracing::debug!(job = name, error = %other, "a watch ended; the watcher starts it again");
            return None;
        }
    };
    match status(api) {
        Some(401 | 403) => Some(conn.request("watch", resource, name).failed(api)),
        _ => {
            tracing::debug!(job = name, error = %crate::executor::error_chain(api), "a watch failed; the watcher tries again");
            None
        }
    }
}

fn gone_stream(conn: &Connected, name: &str) -> KubeError {
    KubeError::Unreachable {
        server: conn.server.clone(),
        why: format!("the watch of job `{name}` ended"),
    }
}

/// A Job that ended: its pod's exit, when the pod holds one, says more than the Job (and
/// the log's follower is told of the pod); else how it `failed`, if it did.
async fn settle_job(
    conn: &Connected,
    name: &str,
    failed: Option<Ended>,
    progress: &signal::Sender<Progress>,
) -> Option<Watched> {
    if let Some(Ended::DeadlineExceeded) = failed {
        return Some(Watched::Ended(Ended::DeadlineExceeded));
    }
    if let Some((pod, t)) = terminated_pod(conn, name).await {
        progress.send_modify(|p| {
            p.pod = Some(pod);
            p.started = true;
        });
        return Some(Watched::Ended(Ended::Terminated(t)));
    }
    failed.map(Watched::Ended)
}

/// The pod of `job` whose container has ended, and how.
pub(super) async fn terminated_pod(conn: &Connected, job: &str) -> Option<(String, Terminated)> {
    let pods = conn
        .pods()
        .list(&ListParams::default().labels(&format!("{}={job}", naming::JOB_NAME)))
        .await
        .ok()?;
    let mut tracker = Tracker::new(job, "", &super::KubernetesSettings::new("", Duration::ZERO));
    pods.items
        .iter()
        .find_map(|p| match tracker.pod(p, tokio::time::Instant::now()) {
            Seen::Ended(Ended::Terminated(t)) => Some((p.metadata.name.clone()?, t)),
            _ => None,
        })
}

/// Deletes `name` and its pods (SIGTERM, `grace`, SIGKILL); with `wait`, returns once the Job
/// is gone. A Job already gone is no error.
pub(super) async fn delete(
    conn: &Connected,
    name: &str,
    grace: Option<Duration>,
    wait: bool,
) -> Result<(), KubeError> {
    let params = DeleteParams {
        // Foreground: the Job stays (with a deletion timestamp) until its pods are gone, so
        // "gone" means the process too.
        propagation_policy: Some(PropagationPolicy::Foreground),
        grace_period_seconds: grace.map(|g| u32::try_from(g.as_secs()).unwrap_or(u32::MAX)),
        ..Default::default()
    };
    let jobs = conn.jobs();
    match jobs.delete(name, &params).await {
        Ok(_) => {}
        Err(e) if status(&e) == Some(404) => return Ok(()),
        Err(e) => return Err(conn.request("delete", "jobs", name).failed(&e)),
    }
    if !wait {
        return Ok(());
    }
    let limit = grace.unwrap_or_default() + DELETED_WAIT;
    let gone = async {
        loop {
            match jobs.get_opt(name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => {}
                Err(e) => return Err(conn.request("get", "jobs", name).failed(&e)),
            }
            tokio::time::sleep(GONE_POLL).await;
        }
    };
    tokio::time::timeout(limit, gone).await.unwrap_or_else(|_| {
        Err(KubeError::Api {
            verb: "delete",
            resource: "jobs",
            name: name.to_owned(),
            why: format!("still there {limit:?} after its deletion"),
        })
    })
}

/// Whether `job` has ended, as its conditions say.
pub(super) fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}
