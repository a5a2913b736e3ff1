//! Attempts as local processes, each in its own process group so that timeouts and
//! cancellation reach every descendant.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use baton_core::ids::TaskKey;
use baton_store::Rusage;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use super::wait::{WaitStatus, wait4};
use super::{AttemptSpec, CancelHandle, Executor, Finished, Outcome};

#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self {
            kill_grace: Duration::from_secs(10),
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    // ESRCH (nothing left in the group) is the common, harmless case.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

fn spawn(spec: &AttemptSpec) -> Result<i32, String> {
    if let Some(dir) = spec.log_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create log directory `{}`: {e}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|e| format!("cannot create log file `{}`: {e}", spec.log_path.display()))?;
    let err_log = log
        .try_clone()
        .map_err(|e| format!("cannot open log file `{}`: {e}", spec.log_path.display()))?;
    match std::fs::metadata(&spec.cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "working directory `{}` is not a directory",
                spec.cwd.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot use working directory `{}`: {e}",
                spec.cwd.display()
            ));
        }
    }
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    let child = Command::new(program)
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    // Reaped by `wait4` below, not by `Child::wait`, to get its resource usage.
    i32::try_from(child.id()).map_err(|_| "process id out of range".to_owned())
}

impl Executor for LocalExecutor {
    fn start(
        &self,
        spec: AttemptSpec,
        started: mpsc::UnboundedSender<(TaskKey, u32, u32)>,
        done: mpsc::UnboundedSender<Finished>,
    ) -> CancelHandle {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let grace = self.kill_grace;
        tokio::spawn(async move {
            let report = |outcome, rusage| Finished {
                key: spec.key.clone(),
                attempt: spec.attempt,
                outcome,
                rusage,
            };
            let pid = match spawn(&spec) {
                Ok(pid) => pid,
                Err(e) => {
                    let _ = done.send(report(Outcome::StartFailed(e), None));
                    return;
                }
            };
            let _ = started.send((spec.key.clone(), spec.attempt, pid.unsigned_abs()));
            let mut waiter = tokio::task::spawn_blocking(move || wait4(pid));
            let timeout = async {
                match spec.timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut stopped = None;
            let status = tokio::select! {
                s = &mut waiter => s,
                () = timeout => {
                    stopped = Some(Outcome::TimedOut);
                    terminate(pid, grace, &mut waiter).await
                }
                Ok(()) = cancel_rx => {
                    stopped = Some(Outcome::Cancelled);
                    terminate(pid, grace, &mut waiter).await
                }
            };
            // Whatever the main process left running in its group (`sleep 100 &`) goes too.
            signal_group(pid, Signal::SIGKILL);
            let (outcome, rusage) = match status {
                Ok(Ok(WaitStatus {
                    exit_code,
                    signal,
                    cpu_user_ms,
                    cpu_sys_ms,
                    max_rss_kb,
                })) => (
                    stopped.unwrap_or(Outcome::Exited { exit_code, signal }),
                    Some(Rusage {
                        cpu_user_ms,
                        cpu_sys_ms,
                        max_rss_kb,
                    }),
                ),
                Ok(Err(e)) => (
                    Outcome::StartFailed(format!("cannot wait for process {pid}: {e}")),
                    None,
                ),
                Err(e) => (
                    Outcome::StartFailed(format!("waiting for process {pid} failed: {e}")),
                    None,
                ),
            };
            let _ = done.send(report(outcome, rusage));
        });
        CancelHandle(Some(cancel_tx))
    }
}

type Waiter = tokio::task::JoinHandle<std::io::Result<WaitStatus>>;

/// SIGTERM to the whole group, then SIGKILL if it is still there after the grace period.
async fn terminate(
    pid: i32,
    grace: Duration,
    waiter: &mut Waiter,
) -> Result<std::io::Result<WaitStatus>, tokio::task::JoinError> {
    signal_group(pid, Signal::SIGTERM);
    match tokio::time::timeout(grace, &mut *waiter).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pid, Signal::SIGKILL);
            waiter.await
        }
    }
}
