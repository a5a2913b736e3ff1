//! One attempt as one container: image, create, start, logs, wait, inspect, remove.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_core::model::ContainerCall;
use baton_core::spec::{ContainerNetwork, PullPolicy};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::{ContainerRun, Inner, naming};
use crate::executor::log_sink::LogWriter;
use crate::executor::{AttemptSpec, Finished, Outcome, Outputs, Work, exit_record, local};

/// Where the attempt's own directory is mounted, and the outputs file in it.
const BATON_DIR: &str = "/baton";
const OUTPUTS_IN_CONTAINER: &str = "/baton/outputs";
/// The pause between two looks at a container whose wait was cut (the engine restarted).
const REWAIT: Duration = Duration::from_secs(1);
/// How long past its grace a stopped container may take to be seen gone.
const STOPPED_WAIT: Duration = Duration::from_secs(30);

/// Why the control plane stopped an attempt.
#[derive(Debug, Clone, Copy)]
enum Stop {
    TimedOut,
    Cancelled,
}

impl Stop {
    fn outcome(self) -> Outcome {
        match self {
            Self::TimedOut => Outcome::TimedOut,
            Self::Cancelled => Outcome::Cancelled,
        }
    }
}

pub(super) async fn run(
    inner: &Inner,
    spec: AttemptSpec,
    cancel: oneshot::Receiver<()>,
) -> Finished {
    let report = |outcome, outputs| Finished {
        key: spec.key.clone(),
        attempt: spec.attempt,
        outcome,
        rusage: None,
        outputs,
        artifacts: None,
    };
    let Work::Container(c) = &spec.work else {
        return report(
            Outcome::Refused("the container executor runs containers only".into()),
            Outputs::default(),
        );
    };
    let name = naming::container_name(&c.run, &spec.key, spec.attempt);
    let dir = attempt_dir(&spec.outputs_path);
    let timeout = spec.timeout;
    let stop = async move {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => Stop::TimedOut,
            _ = cancel => Stop::Cancelled,
        }
    };
    tokio::pin!(stop);
    let mut log = LogWriter::new(spec.log.clone());

    let prepared = tokio::select! {
        prepared = prepare(inner, &spec, c, &name, &dir, &mut log) => prepared,
        stop = &mut stop => Err(stop.outcome()),
    };
    let docker = match prepared {
        Ok(docker) => docker,
        Err(outcome) => {
            // Created and not started, or not created at all: nothing ran.
            if let Ok(docker) = inner.client.get().await {
                remove(docker, &name).await;
            }
            let _ = std::fs::remove_dir_all(&dir);
            let outcome = match (log.finish().await, outcome) {
                (Err(e), Outcome::Exited { .. }) => {
                    Outcome::Error(format!("cannot keep the attempt's log: {e}"))
                }
                (_, outcome) => outcome,
            };
            return report(outcome, Outputs::default());
        }
    };

    let logs = docker.logs(
        &name,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let pump = tokio::spawn(pump_logs(logs, log));
    let mut stopped = None;
    let exit_code = tokio::select! {
        code = wait_exit(docker, &name) => code,
        stop = &mut stop => {
            stopped = Some(stop);
            stop_container(docker, &name, inner.settings.stop_grace).await;
            // An engine that stopped answering must not hold the cancel forever.
            let limit = inner.settings.stop_grace + STOPPED_WAIT;
            tokio::time::timeout(limit, wait_exit(docker, &name))
                .await
                .unwrap_or_else(|_| Err(format!("container `{name}` did not stop within {limit:?}")))
        }
    };
    let oom_killed = ended(docker, &name).await.is_some_and(|(_, oom)| oom);
    let log_result = pump
        .await
        .unwrap_or_else(|e| Err(format!("the log copy failed: {e}")));

    let outcome = match (stopped, exit_code) {
        (Some(stop), _) => stop.outcome(),
        (None, Err(e)) => Outcome::Error(e),
        (None, Ok(code)) => end_outcome(code, oom_killed, c.resources.memory_bytes),
    };
    let outcome = match (log_result, outcome) {
        (Err(e), Outcome::Exited { .. }) => {
            Outcome::Error(format!("cannot keep the attempt's log: {e}"))
        }
        (_, outcome) => outcome,
    };
    // Kept where a baton resuming the run looks (as for a local process) before the container
    // that also holds the exit is removed.
    let outputs = keep_outputs(&dir, &spec.outputs_path);
    if let Some(exit_path) = &spec.exit_path {
        exit_record::write(exit_path, &outcome, None);
    }
    remove(docker, &name).await;
    let _ = std::fs::remove_dir_all(&dir);
    report(outcome, outputs)
}

/// The attempt's own directory (mounted at `/baton`), beside its outputs file.
pub(super) fn attempt_dir(outputs_path: &Path) -> PathBuf {
    let mut dir = outputs_path.as_os_str().to_owned();
    dir.push(".container");
    PathBuf::from(dir)
}

/// Moves what the container wrote to `$BATON_OUTPUTS` to the attempt's outputs path, and
/// reads it.
pub(super) fn keep_outputs(dir: &Path, outputs_path: &Path) -> Outputs {
    let written = dir.join("outputs");
    if std::fs::rename(&written, outputs_path).is_err() {
        return local::read_outputs(&written);
    }
    local::read_outputs(outputs_path)
}

/// Connects, gets the image, creates the container and starts it.
async fn prepare<'a>(
    inner: &'a Inner,
    spec: &AttemptSpec,
    c: &ContainerRun,
    name: &str,
    dir: &Path,
    log: &mut LogWriter,
) -> Result<&'a Docker, Outcome> {
    let docker = inner.client.get().await.map_err(Outcome::Error)?;
    baton_core::model::check_image_reference(&c.image).map_err(Outcome::Refused)?;
    local::check_working_dir(&spec.cwd).map_err(Outcome::Error)?;
    ensure_image(inner, docker, c, log).await?;
    make_attempt_dir(dir).map_err(|e| {
        Outcome::Error(format!(
            "cannot make the attempt's directory `{}`: {e}",
            dir.display()
        ))
    })?;
    let body = create_body(inner, spec, c, dir);
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    match docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        Ok(_) => {}
        // A container of this very attempt, from a baton that died before it could record
        // the start: it never ran on our watch, so it goes.
        Err(e) if status(&e) == Some(409) => {
            remove(docker, name).await;
            docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| create_failed(&c.image, &e))?;
        }
        Err(e) => return Err(create_failed(&c.image, &e)),
    }
    docker
        .start_container(name, None)
        .await
        .map_err(|e| start_failed(&c.image, &e))?;
    Ok(docker)
}

fn create_body(
    inner: &Inner,
    spec: &AttemptSpec,
    c: &ContainerRun,
    dir: &Path,
) -> ContainerCreateBody {
    let mut env: Vec<String> = spec
        .env
        .iter()
        .filter(|(k, _)| k != "BATON_OUTPUTS")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.push(format!("BATON_OUTPUTS={OUTPUTS_IN_CONTAINER}"));
    let memory = c.resources.memory_bytes.and_then(|m| i64::try_from(m).ok());
    let host_config = HostConfig {
        binds: Some(vec![
            format!("{}:{}", spec.cwd.display(), ContainerCall::WORKSPACE),
            format!("{}:{BATON_DIR}", dir.display()),
        ]),
        memory,
        // As much swap as memory means none: the limit is the limit.
        memory_swap: memory,
        #[expect(clippy::cast_possible_truncation, reason = "cores × 1e9 fits an i64")]
        nano_cpus: c.resources.cpu.map(|cpu| (cpu * 1e9) as i64),
        pids_limit: inner.settings.pids_limit,
        network_mode: Some(
            match c.network {
                ContainerNetwork::Bridge => "bridge",
                ContainerNetwork::Disabled => "none",
                ContainerNetwork::Host => "host",
            }
            .to_owned(),
        ),
        device_requests: c.resources.gpu.filter(|&n| n > 0).map(|n| {
            vec![DeviceRequest {
                count: Some(i64::from(n)),
                capabilities: Some(vec![vec!["gpu".to_owned()]]),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: c.command.clone(),
        env: Some(env),
        working_dir: Some(ContainerCall::WORKSPACE.to_owned()),
        user: c.user.clone(),
        labels: Some(naming::labels(
            &inner.settings.name,
            &c.run,
            &spec.key,
            spec.attempt,
            c.epoch,
        )),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// A directory any user of the container can write its outputs to (the image's user need not
/// be baton's); its parent keeps it private.
fn make_attempt_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// Makes sure the engine has the image, pulling it as `pull` allows.
async fn ensure_image(
    inner: &Inner,
    docker: &Docker,
    c: &ContainerRun,
    log: &mut LogWriter,
) -> Result<(), Outcome> {
    let host = inner.client.host();
    if c.pull != PullPolicy::Always {
        match docker.inspect_image(&c.image).await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => {
                return Err(Outcome::Error(format!(
                    "cannot look up image `{}` on the Docker engine at `{host}`: {}",
                    c.image,
                    message(&e)
                )));
            }
        }
        if c.pull == PullPolicy::Never {
            return Err(Outcome::Refused(format!(
                "image `{}` is not on the Docker engine at `{host}`, and `pull: never` forbids \
                 pulling it (build or load it there, or set `pull: missing`)",
                c.image
            )));
        }
    }
    log.write(format!("[baton] pulling image {}\n", c.image).as_bytes())
        .await;
    let (from_image, tag) = pull_reference(&c.image);
    let mut progress = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(item) = progress.next().await {
        let failure = match item {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(message(&e)),
        };
        if let Some(why) = failure {
            let text = format!("cannot pull image `{}`: {why}", c.image);
            log.write(format!("[baton] {text}\n").as_bytes()).await;
            // An image that does not exist, or that we may not have, stays so.
            let lower = why.to_ascii_lowercase();
            let permanent = [
                "not found",
                "manifest unknown",
                "pull access denied",
                "does not exist",
                "unauthorized",
            ]
            .iter()
            .any(|w| lower.contains(w));
            return Err(if permanent {
                Outcome::Refused(text)
            } else {
                Outcome::Error(text)
            });
        }
    }
    Ok(())
}

/// `fromImage` and `tag` of a pull: a reference without a tag or digest means `latest` (the
/// engine would pull every tag of the repository otherwise).
fn pull_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_owned(), None);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => (
            image[..image.len() - tag.len() - 1].to_owned(),
            Some(tag.to_owned()),
        ),
        None => (image.to_owned(), Some("latest".to_owned())),
    }
}

/// The container's exit code once it has stopped, however long that takes; a wait cut short
/// (the engine restarting) is started again.
async fn wait_exit(docker: &Docker, name: &str) -> Result<i64, String> {
    loop {
        let mut wait = docker.wait_container(name, None);
        match wait.next().await {
            Some(Ok(r)) => return Ok(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => return Ok(code),
            Some(Err(e)) if status(&e) == Some(404) => {
                return Err(format!("container `{name}` is gone: {}", message(&e)));
            }
            Some(Err(e)) => {
                tracing::warn!(container = name, error = %e, "waiting for a container failed; looking again");
            }
            None => {}
        }
        tokio::time::sleep(REWAIT).await;
        if let Some((code, _)) = ended(docker, name).await {
            return Ok(code);
        }
    }
}

/// How a container that ran and stopped ended: its exit code, and whether the kernel killed it
/// for its memory; none while it runs, or when it was created and never started.
pub(super) async fn ended(docker: &Docker, name: &str) -> Option<(i64, bool)> {
    let state = docker.inspect_container(name, None).await.ok()?.state?;
    // An engine writes `0001-01-01T00:00:00Z` for a container that never finished.
    let finished = state.running == Some(false)
        && state
            .finished_at
            .as_deref()
            .is_some_and(|f| !f.starts_with("0001"));
    finished.then(|| {
        (
            state.exit_code.unwrap_or(-1),
            state.oom_killed == Some(true),
        )
    })
}

/// What a container's end means for its attempt; `memory` is its limit, when known.
pub(super) fn end_outcome(code: i64, oom_killed: bool, memory: Option<u64>) -> Outcome {
    if oom_killed {
        return Outcome::Error(format!(
            "the container ran out of memory{} and was killed (exit code {code})",
            memory
                .map(|m| format!(" (limit {})", human_bytes(m)))
                .unwrap_or_default()
        ));
    }
    Outcome::Exited {
        exit_code: Some(i32::try_from(code).unwrap_or(i32::MAX)),
        signal: None,
    }
}

/// SIGTERM, `grace`, SIGKILL: the engine's own stop.
pub(super) async fn stop_container(docker: &Docker, name: &str, grace: Duration) {
    let options = StopContainerOptions {
        t: Some(i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX)),
        signal: None,
    };
    if let Err(e) = docker.stop_container(name, Some(options)).await
        && !matches!(status(&e), Some(304 | 404))
    {
        tracing::warn!(container = name, error = %e, "cannot stop a container");
    }
}

/// Removes a container and its anonymous volumes, whatever its state.
pub(super) async fn remove(docker: &Docker, name: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(name, Some(options)).await
        && status(&e) != Some(404)
    {
        tracing::warn!(container = name, error = %e, "cannot remove a container");
    }
}

/// Copies the container's output into its log as it comes.
async fn pump_logs<S>(mut logs: S, mut log: LogWriter) -> Result<(), String>
where
    S: futures_util::Stream<Item = Result<bollard::container::LogOutput, DockerError>> + Unpin,
{
    loop {
        let flush = log.flush_due();
        tokio::select! {
            item = logs.next() => match item {
                Some(Ok(chunk)) => log.write(&chunk.into_bytes()).await,
                Some(Err(e)) => {
                    let line = format!("[baton] the container's log stream broke: {}\n", message(&e));
                    log.write(line.as_bytes()).await;
                    break;
                }
                None => break,
            },
            () = flush => log.flush().await,
        }
    }
    log.finish().await
}

pub(super) fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own words, without bollard's wrapping.
pub(super) fn message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        e => e.to_string(),
    }
}

fn create_failed(image: &str, e: &DockerError) -> Outcome {
    let text = format!("cannot create a container of `{image}`: {}", message(e));
    match status(e) {
        // The engine refuses the settings themselves (a bad user, a bad mount).
        Some(400) => Outcome::Refused(text),
        _ => Outcome::Error(text),
    }
}

fn start_failed(image: &str, e: &DockerError) -> Outcome {
    let why = message(e);
    let text = format!("cannot start a container of `{image}`: {why}");
    if why.contains("executable file not found") || why.contains("no such file or directory") {
        Outcome::Refused(format!(
            "{text} (the image has no such program: `run` needs the task's `shell`, `sh` by \
             default, in the image)"
        ))
    } else {
        Outcome::Error(text)
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_names_a_tag() {
        assert_eq!(
            pull_reference("busybox"),
            ("busybox".into(), Some("latest".into()))
        );
        assert_eq!(
            pull_reference("localhost:5000/x/y:1.2"),
            ("localhost:5000/x/y".into(), Some("1.2".into()))
        );
        assert_eq!(
            pull_reference("localhost:5000/x"),
            ("localhost:5000/x".into(), Some("latest".into()))
        );
        assert_eq!(pull_reference("x@sha256:ab").1, None);
        assert_eq!(human_bytes(64 << 20), "64 MiB");
    }
}
