//! One assignment as the engine's executors take it, and how it ended as the worker API takes
//! that back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_api::worker as wire;
use baton_core::ids::WorkerId;
use baton_core::spec::{ContainerNetwork, PullPolicy};
use baton_engine::executor::{
    AttemptSpec, ContainerRun, Finished, LogSink, Outcome, Outputs, Work,
};
use baton_store::AttemptLog;

use crate::client::Client;
use crate::remote_log::RemoteLog;

/// An attempt ready to start, and where it keeps its files here.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) spec: AttemptSpec,
    /// Removed once the attempt ended: the worker holds no state between attempts.
    files: Vec<PathBuf>,
}

impl Prepared {
    pub(crate) fn clean_up(&self) {
        for path in &self.files {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

/// The attempt as the engine's executors run it, with its working directory made; or, when
/// it cannot run here, the report of that.
pub(crate) fn prepare(
    client: &Client,
    worker: &WorkerId,
    dir: &Path,
    a: wire::Assignment,
) -> Result<Prepared, Box<Finished>> {
    let refused = |outcome: Outcome| {
        Box::new(Finished {
            key: a.task.clone(),
            attempt: a.attempt,
            outcome,
            rusage: None,
            outputs: Outputs::default(),
            artifacts: None,
        })
    };
    let artifacts = baton_engine::artifacts::ArtifactPlan {
        download: a
            .artifacts
            .download
            .iter()
            .cloned()
            .map(Into::into)
            .collect(),
        upload: a.artifacts.upload.clone(),
    };
    let name = format!(
        "{}.{}.{}",
        baton_store::sanitize(a.task.as_str()),
        a.attempt,
        a.epoch
    );
    let cwd = dir.join("work").join(a.run.as_str()).join(&name);
    let outputs_path = dir.join("outputs").join(&name);
    for d in [&cwd, dir.join("outputs").as_path()] {
        std::fs::create_dir_all(d).map_err(|e| {
            refused(Outcome::Error(format!(
                "the worker cannot create `{}`: {e}",
                d.display()
            )))
        })?;
    }
    let mut env = Vec::new();
    let work = match a.work {
        wire::WorkerWork::Process { argv } => {
            env.extend(basics());
            Work::Process { argv }
        }
        wire::WorkerWork::Container {
            image,
            command,
            pull,
            user,
            network,
            resources,
        } => Work::Container(ContainerRun {
            run: a.run.clone(),
            epoch: None,
            image,
            command,
            pull: PullPolicy::from_name(&pull).ok_or_else(|| {
                refused(Outcome::Refused(format!(
                    "this worker does not know the pull policy `{pull}`"
                )))
            })?,
            user,
            network: ContainerNetwork::from_name(&network).ok_or_else(|| {
                refused(Outcome::Refused(format!(
                    "this worker does not know the container network `{network}`"
                )))
            })?,
            resources,
        }),
    };
    env.extend(a.env.into_iter().map(|v| (v.name, v.value)));
    let log = LogSink {
        store: Arc::new(RemoteLog {
            client: client.clone(),
            worker: worker.clone(),
            epoch: a.epoch,
        }),
        log: AttemptLog {
            run: a.run.clone(),
            key: a.task.clone(),
            attempt: a.attempt,
        },
        lease: None,
        max_bytes: a.max_log_bytes,
        pipeline: None,
    };
    Ok(Prepared {
        files: vec![cwd.clone(), outputs_path.clone()],
        spec: AttemptSpec {
            key: a.task,
            attempt: a.attempt,
            work,
            executor: None,
            runs_on: None,
            resources: baton_core::model::Resources::default(),
            env,
            host_env: 0,
            cwd,
            log,
            outputs_path,
            // The control plane enforces it, and asks for the stop.
            timeout: None,
            spawned: None,
            exit_path: None,
            artifacts,
        },
    })
}

/// What of this host's environment a task on it starts with, before its own variables (what a
/// server's clean environment keeps of its own).
fn basics() -> Vec<(String, String)> {
    use baton_engine::environment::{BASIC_PREFIX, BASICS};
    std::env::vars()
        .filter(|(k, _)| BASICS.contains(&k.as_str()) || k.starts_with(BASIC_PREFIX))
        .collect()
}

/// Whether, and why, the worker stopped the attempt.
#[derive(Debug, Clone)]
pub(crate) enum Stopped {
    No,
    /// The control plane asked.
    Asked,
    /// The worker, named so, is shutting down.
    Drain(String),
}

/// The final report of an attempt.
pub(crate) fn report(f: Finished, stopped: Stopped) -> wire::FinishReport {
    let outcome = match (f.outcome, stopped) {
        (_, Stopped::Drain(name)) => wire::WorkerOutcome::Interrupted {
            message: format!("worker `{name}` was shut down while the attempt ran"),
        },
        (Outcome::Cancelled | Outcome::TimedOut, Stopped::Asked) => wire::WorkerOutcome::Stopped,
        (Outcome::Exited { exit_code, signal }, _) => {
            wire::WorkerOutcome::Exited { exit_code, signal }
        }
        (Outcome::Cancelled | Outcome::TimedOut, _) => wire::WorkerOutcome::Interrupted {
            message: "the worker stopped the attempt".into(),
        },
        (Outcome::Error(message), _) => wire::WorkerOutcome::Error { message },
        (Outcome::Refused(message), _) => wire::WorkerOutcome::Refused { message },
        (Outcome::Interrupted(message), _) => wire::WorkerOutcome::Interrupted { message },
    };
    let outputs = match f.outputs {
        Outputs::Text(t) => t,
        Outputs::Values(v) => v
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}\n",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect(),
    };
    wire::FinishReport {
        outcome,
        outputs,
        artifacts: f
            .artifacts
            .map(|a| a.files.into_iter().map(Into::into).collect())
            .unwrap_or_default(),
        rusage: f.rusage.map(|r| baton_api::Rusage {
            cpu_user_ms: r.cpu_user_ms,
            cpu_sys_ms: r.cpu_sys_ms,
            max_rss_kb: r.max_rss_kb,
        }),
    }
}
