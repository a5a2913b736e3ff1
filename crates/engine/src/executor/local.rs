//! Attempts as local processes, each in its own process group so that timeouts and
//! cancellation reach every descendant.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use baton_store::Rusage;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use baton_core::ids::RunId;

use super::wait::{WaitStatus, pidfd_open, try_wait4, wait4, watch};
use super::{
    AttemptSpec, CancelHandle, Executor, Finished, Leftover, Outcome, Spawned, exit_record,
    identity, leftovers, parent_death, reaper,
};

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

/// A started process and the copier moving its output into the log.
struct Started {
    pid: i32,
    copier: tokio::task::JoinHandle<Result<(), String>>,
}

fn spawn(spec: &AttemptSpec) -> Result<Started, String> {
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
    // Output goes through a pipe so the log file is created only when there is output: most
    // of the cost of starting a silent task would otherwise be creating its empty log.
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let err_writer = writer
        .try_clone()
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(err_writer)
        .process_group(0);
    let child =
        parent_death::spawn(command).map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let copier = tokio::spawn(copy_log(reader, spec.log_path.clone()));
    // Reaped by `wait4`, not by `Child::wait`, to get its resource usage.
    let pid = i32::try_from(child.id()).map_err(|_| "process id out of range".to_owned())?;
    Ok(Started { pid, copier })
}

/// Copies everything the attempt writes into its log, creating the file on the first byte.
/// Ends when every process holding the pipe has exited.
async fn copy_log(reader: std::io::PipeReader, path: std::path::PathBuf) -> Result<(), String> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    let mut pipe =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
            .map_err(|e| format!("cannot read the attempt's output: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut file: Option<std::fs::File> = None;
    let mut failure = None;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the attempt's output: {e}")),
        };
        // Keep draining after a write error so the process is never blocked on a full pipe.
        if failure.is_some() {
            continue;
        }
        if file.is_none() {
            match open_log(&path) {
                Ok(f) => file = Some(f),
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            }
        }
        if let Some(f) = file.as_mut()
            && let Err(e) = f.write_all(&buf[..n])
        {
            failure = Some(format!("cannot write log file `{}`: {e}", path.display()));
        }
    }
    failure.map_or(Ok(()), Err)
}

fn open_log(path: &std::path::Path) -> Result<std::fs::File, String> {
    let open = || OpenOptions::new().create(true).append(true).open(path);
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create log directory `{}`: {e}", dir.display()))?;
            }
            open()
        }
        other => other,
    }
    .map_err(|e| format!("cannot create log file `{}`: {e}", path.display()))
}

/// How long to wait for output after the process group is gone: a process that left the group
/// (`setsid`) could hold the pipe open forever.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl Executor for LocalExecutor {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let grace = self.kill_grace;
        tokio::spawn(async move {
            let report = |outcome, rusage| Finished {
                key: spec.key.clone(),
                attempt: spec.attempt,
                outcome,
                rusage,
            };
            let Started { pid, copier } = match spawn(&spec) {
                Ok(started) => started,
                Err(e) => {
                    let _ = done.send(report(Outcome::Error(e), None));
                    return;
                }
            };
            if let Some(spawned) = &spec.spawned {
                // Read before anything can reap it: until then even a zombie's stat names it.
                match identity::of_leader(pid) {
                    Ok(process) => {
                        let _ = spawned.send(Spawned {
                            key: spec.key.clone(),
                            attempt: spec.attempt,
                            process,
                        });
                    }
                    Err(e) => tracing::warn!("cannot read the identity of process {pid}: {e}"),
                }
            }
            let mut waiter = wait_for(pid);
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
            // Whatever the main process left running in its group (`sleep 100 &`) goes too,
            // and what of it became ours (as subreaper) is reaped.
            signal_group(pid, Signal::SIGKILL);
            reaper::reap_group(pid).await;
            let log = match tokio::time::timeout(LOG_DRAIN_LIMIT, copier).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(format!("log copier failed: {e}")),
                Err(_) => Ok(()),
            };
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
                    Outcome::Error(format!("cannot wait for process {pid}: {e}")),
                    None,
                ),
                Err(e) => (
                    Outcome::Error(format!("waiting for process {pid} failed: {e}")),
                    None,
                ),
            };
            // Output that could not be kept fails the attempt: a result without its log is
            // not one an operator can trust.
            let outcome = match (outcome, log) {
                (Outcome::Exited { .. }, Err(e)) => Outcome::Error(e),
                (outcome, _) => outcome,
            };
            if let Some(path) = &spec.exit_path {
                exit_record::write(path, &outcome, rusage);
                crate::fault::after_exit_recorded();
            }
            let _ = done.send(report(outcome, rusage));
        });
        CancelHandle(Some(cancel_tx))
    }

    fn stop_leftovers(
        &self,
        run: &RunId,
        attempts: Vec<Leftover>,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(leftovers::stop(run.clone(), attempts, self.kill_grace))
    }
}

type Waiter = tokio::task::JoinHandle<std::io::Result<WaitStatus>>;

/// Waits for the process to end: on its pidfd where the kernel has them, so no thread sits
/// blocked per running task; in a blocking `wait4` otherwise.
fn wait_for(pid: i32) -> Waiter {
    match pidfd_open(pid).and_then(watch) {
        Ok(fd) => tokio::spawn(async move {
            loop {
                let mut ready = fd.readable().await?;
                if let Some(status) = try_wait4(pid)? {
                    return Ok(status);
                }
                ready.clear_ready();
            }
        }),
        Err(_) => tokio::task::spawn_blocking(move || wait4(pid)),
    }
}

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

#[cfg(test)]
mod tests {
    use baton_core::ids::TaskKey;

    use super::*;

    async fn run(
        argv: &[&str],
        log_path: std::path::PathBuf,
        timeout: Option<Duration>,
    ) -> Finished {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let spec = AttemptSpec {
            key: TaskKey::from_string("t"),
            attempt: 1,
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: vec![("BATON_TEST".into(), "yes".into())],
            cwd: std::env::temp_dir(),
            log_path,
            timeout,
            spawned: None,
            exit_path: None,
        };
        let executor = LocalExecutor {
            kill_grace: Duration::from_millis(200),
        };
        let _handle = executor.start(spec, done_tx);
        done_rx.recv().await.expect("a report")
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_usage_is_measured() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("a/b/1.log");
        let f = run(
            &[
                "sh",
                "-c",
                "echo out; echo err >&2; echo $BATON_TEST; exit 3",
            ],
            log.clone(),
            None,
        )
        .await;
        assert_eq!(
            f.outcome,
            Outcome::Exited {
                exit_code: Some(3),
                signal: None
            }
        );
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "out\nerr\nyes\n"
        );
        assert!(f.rusage.expect("rusage").max_rss_kb > 0);
    }

    #[tokio::test]
    async fn silent_attempts_leave_no_log_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("1.log");
        let f = run(&["true"], log.clone(), None).await;
        assert_eq!(
            f.outcome,
            Outcome::Exited {
                exit_code: Some(0),
                signal: None
            }
        );
        assert!(!log.exists());
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_attempt_with_a_clear_error() {
        let f = run(&["sh", "-c", "echo some output"], "/dev/full".into(), None).await;
        assert_eq!(
            f.outcome,
            Outcome::Error(
                "cannot write log file `/dev/full`: No space left on device (os error 28)".into()
            )
        );
    }

    #[tokio::test]
    async fn missing_programs_and_directories_fail_to_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = run(&["no-such-program-xyz"], dir.path().join("1.log"), None).await;
        assert_eq!(
            f.outcome,
            Outcome::Error(
                "cannot start `no-such-program-xyz`: No such file or directory (os error 2)".into()
            )
        );
    }

    #[tokio::test]
    async fn timeouts_stop_the_group_even_when_it_ignores_sigterm() {
        let dir = tempfile::tempdir().expect("temp dir");
        let started = std::time::Instant::now();
        let f = run(
            &["sh", "-c", "trap '' TERM; sleep 30"],
            dir.path().join("1.log"),
            Some(Duration::from_millis(100)),
        )
        .await;
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGKILL did not follow the grace period"
        );
    }
}
