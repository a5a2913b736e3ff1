//! Attempts as local processes, each in its own process group so that timeouts and
//! cancellation reach every descendant.

use std::pin::Pin;
use std::time::Duration;

use baton_store::{AttemptProcess, Rusage};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use baton_core::ids::RunId;

use super::log_sink::LogWriter;
use super::wait::{WaitStatus, pidfd_open, try_wait4, wait4, watch};
use super::{
    AttemptSpec, CancelHandle, Executor, Finished, Leftover, LogSink, Outcome, Outputs, Spawned,
    Unseen, Work, exit_record, identity, leftovers, parent_death, reaper,
};

#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self {
            kill_grace: super::DEFAULT_STOP_GRACE,
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    // ESRCH (nothing left in the group) is the common, harmless case.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// A started process, who it is when asked, and the copier moving its output into the log.
struct Started {
    pid: i32,
    identity: Option<std::io::Result<AttemptProcess>>,
    copier: tokio::task::JoinHandle<Result<(), String>>,
}

/// Blocks on the file system and on `fork`/`exec`, so it runs on a blocking thread (from which
/// the copier still goes onto the runtime).
fn spawn(spec: &AttemptSpec) -> Result<Started, String> {
    check_working_dir(&spec.cwd)?;
    let Work::Process { argv } = &spec.work else {
        return Err("the local executor runs processes, not this attempt's work".to_owned());
    };
    let (program, _) = argv
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    // Output goes through a pipe so the log file is created only when there is output: most
    // of the cost of starting a silent task would otherwise be creating its empty log.
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let err_writer = writer
        .try_clone()
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut env: std::collections::BTreeMap<std::ffi::OsString, std::ffi::OsString> =
        spec.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    env.insert(
        "BATON_OUTPUTS".into(),
        spec.outputs_path.clone().into_os_string(),
    );
    let pid = parent_death::spawn(parent_death::Spawn {
        argv: argv.iter().map(Into::into).collect(),
        env,
        cwd: spec.cwd.clone(),
        stdout: writer.into(),
        stderr: err_writer.into(),
    })
    .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let copier = tokio::spawn(copy_log(reader, spec.log.clone()));
    // Reaped by `wait4`, to get its resource usage.
    // Read before anything can reap it: until then even a zombie's stat names it.
    let identity = spec.spawned.is_some().then(|| identity::of_leader(pid));
    Ok(Started {
        pid,
        identity,
        copier,
    })
}

/// Copies everything the attempt writes into its log. Ends when every process holding the
/// pipe has exited.
async fn copy_log(reader: std::io::PipeReader, sink: LogSink) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut pipe =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
            .map_err(|e| format!("cannot read the attempt's output: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut log = LogWriter::new(sink);
    loop {
        let flush = log.flush_due();
        // Reading a pipe is cancel-safe: bytes are taken only when the read completes.
        let n = tokio::select! {
            read = pipe.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot read the attempt's output: {e}")),
            },
            () = flush => {
                log.flush().await;
                continue;
            }
        };
        log.write(&buf[..n]).await;
    }
    log.finish().await
}

/// What the attempt wrote to `$BATON_OUTPUTS` (empty when it wrote nothing), read only up to
/// just past the size [`crate::outputs::parse`] accepts.
/// Why an attempt cannot start in `cwd`, if it cannot: it must be a directory that exists (a
/// container's engine would make a missing one, empty, and run the task in it).
pub(super) fn check_working_dir(cwd: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "working directory `{}` is not a directory",
            cwd.display()
        )),
        Err(e) => Err(format!(
            "cannot use working directory `{}`: {e}",
            cwd.display()
        )),
    }
}

pub(super) fn read_outputs(path: &std::path::Path) -> Outputs {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return Outputs::default();
    };
    let mut bytes = Vec::new();
    let limit = crate::outputs::MAX_OUTPUTS_BYTES as u64 + 1;
    let _ = file.take(limit).read_to_end(&mut bytes);
    Outputs::Text(String::from_utf8_lossy(&bytes).into_owned())
}

/// How long to wait for output after the process group is gone: a process that left the group
/// (`setsid`) could hold the pipe open forever.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl Executor for LocalExecutor {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let grace = self.kill_grace;
        tokio::spawn(async move {
            let (key, attempt) = (spec.key.clone(), spec.attempt);
            let started = tokio::task::spawn_blocking(move || {
                let started = spawn(&spec);
                (spec, started)
            })
            .await;
            let (spec, started) = match started {
                Ok(done) => done,
                Err(e) => {
                    let _ = done.send(Finished {
                        key,
                        attempt,
                        outcome: Outcome::Error(format!("starting the attempt failed: {e}")),
                        rusage: None,
                        outputs: Outputs::default(),
                        artifacts: None,
                    });
                    return;
                }
            };
            let report = |outcome, rusage, outputs| Finished {
                key: spec.key.clone(),
                attempt: spec.attempt,
                outcome,
                rusage,
                outputs,
                artifacts: None,
            };
            let Started {
                pid,
                identity,
                copier,
            } = match started {
                Ok(started) => started,
                Err(e) => {
                    let _ = done.send(report(Outcome::Error(e), None, Outputs::default()));
                    return;
                }
            };
            if let (Some(spawned), Some(identity)) = (&spec.spawned, identity) {
                match identity {
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
            // One trip to a blocking thread for both: each is a hand-off between threads,
            // which costs more than the file work of a short task.
            let exit_path = spec.exit_path.clone();
            let outputs_path = spec.outputs_path.clone();
            let kept = outcome.clone();
            let files = tokio::task::spawn_blocking(move || {
                if let Some(path) = exit_path {
                    exit_record::write(&path, &kept, rusage);
                    crate::fault::after_exit_recorded();
                }
                match kept {
                    Outcome::Exited { .. } => read_outputs(&outputs_path),
                    _ => Outputs::default(),
                }
            })
            .await;
            let outputs = files.unwrap_or_else(|e| {
                tracing::warn!("recording the exit of process {pid} failed: {e}");
                Outputs::default()
            });
            let _ = done.send(report(outcome, rusage, outputs));
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

    /// Reads back what [`exit_record`] kept of each exit, and the outputs file beside it.
    fn recover(
        &self,
        attempts: Vec<Unseen>,
    ) -> Pin<Box<dyn std::future::Future<Output = Vec<Option<Finished>>> + Send + 'static>> {
        Box::pin(async move {
            let n = attempts.len();
            tokio::task::spawn_blocking(move || {
                // Each run's journal read once, however many of its attempts are unseen.
                let paths: Vec<_> = attempts.iter().map(|a| Some(a.exit_path.clone())).collect();
                attempts
                    .into_iter()
                    .zip(exit_record::read_all(&paths))
                    .map(|(a, exit)| {
                        let (outcome, rusage) = exit?;
                        Some(Finished {
                            outputs: read_outputs(&a.outputs_path),
                            key: a.key,
                            attempt: a.attempt,
                            outcome,
                            rusage,
                            artifacts: None,
                        })
                    })
                    .collect()
            })
            .await
            .unwrap_or_else(|_| (0..n).map(|_| None).collect())
        })
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
    use baton_core::ids::{RunId, TaskKey};
    use baton_store::AttemptLog;

    use super::*;
    use crate::executor::Logs;

    /// Runs an attempt whose log goes to files under `home`, keeping at most `max_bytes`.
    async fn run_capped(
        argv: &[&str],
        home: &std::path::Path,
        timeout: Option<Duration>,
        max_bytes: u64,
    ) -> Finished {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let logs = Logs {
            max_bytes_per_attempt: max_bytes,
            ..Logs::files(home)
        };
        let spec = AttemptSpec {
            key: TaskKey::from_string("t"),
            attempt: 1,
            work: Work::Process {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            },
            executor: None,
            runs_on: None,
            resources: baton_core::model::Resources::default(),
            env: vec![("BATON_TEST".into(), "yes".into())],
            host_env: 0,
            cwd: std::env::temp_dir(),
            log: logs.sink(
                AttemptLog {
                    run: RunId::from_string("r"),
                    key: TaskKey::from_string("t"),
                    attempt: 1,
                },
                None,
            ),
            outputs_path: home.join("outputs"),
            timeout,
            spawned: None,
            exit_path: None,
            artifacts: Default::default(),
        };
        let executor = LocalExecutor {
            kill_grace: Duration::from_millis(200),
        };
        let _handle = executor.start(spec, done_tx);
        done_rx.recv().await.expect("a report")
    }

    async fn run(argv: &[&str], home: &std::path::Path, timeout: Option<Duration>) -> Finished {
        run_capped(argv, home, timeout, u64::MAX).await
    }

    fn log_of(home: &std::path::Path) -> std::path::PathBuf {
        home.join("logs/r/t.1.log")
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_usage_is_measured() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = run(
            &[
                "sh",
                "-c",
                "echo out; echo err >&2; echo $BATON_TEST; exit 3",
            ],
            dir.path(),
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
            std::fs::read_to_string(log_of(dir.path())).expect("log"),
            "out\nerr\nyes\n"
        );
        assert!(f.rusage.expect("rusage").max_rss_kb > 0);
    }

    #[test]
    fn attempts_outlive_the_blocking_thread_that_started_them() {
        // Started from a blocking thread that ends 50 ms after, idle: a parent-death signal
        // tied to that thread would kill the attempt long before it is done.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_keep_alive(Duration::from_millis(50))
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let f = runtime.block_on(run(&["sleep", "0.5"], dir.path(), None));
        assert_eq!(
            f.outcome,
            Outcome::Exited {
                exit_code: Some(0),
                signal: None
            }
        );
    }

    #[tokio::test]
    async fn outputs_travel_in_the_report() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = run(
            &["sh", "-c", "echo rows=42 >> \"$BATON_OUTPUTS\""],
            dir.path(),
            None,
        )
        .await;
        assert_eq!(f.outputs, Outputs::Text("rows=42\n".into()));
        let silent = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            run(&["true"], silent.path(), None).await.outputs,
            Outputs::default()
        );
    }

    #[tokio::test]
    async fn a_chatty_task_keeps_only_the_cap_and_is_never_blocked() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Far more than a pipe holds: the task ends only if the pipe is drained past the cap.
        let f = run_capped(
            &[
                "sh",
                "-c",
                "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done",
            ],
            dir.path(),
            Some(Duration::from_secs(60)),
            1000,
        )
        .await;
        assert_eq!(
            f.outcome,
            Outcome::Exited {
                exit_code: Some(0),
                signal: None
            }
        );
        let log = std::fs::read_to_string(log_of(dir.path())).expect("log");
        assert_eq!(
            log,
            format!(
                "{}\n[baton: log truncated after 1000 bytes; 2999006 more bytes dropped]\n",
                "x".repeat(1000)
            )
        );
    }

    #[tokio::test]
    async fn silent_attempts_leave_no_log_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = run(&["true"], dir.path(), None).await;
        assert_eq!(
            f.outcome,
            Outcome::Exited {
                exit_code: Some(0),
                signal: None
            }
        );
        assert!(!log_of(dir.path()).exists());
        assert!(!dir.path().join("logs").exists());
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_attempt_with_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = log_of(dir.path());
        std::fs::create_dir_all(log.parent().expect("dir")).expect("log dir");
        std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");
        let f = run(&["sh", "-c", "echo some output"], dir.path(), None).await;
        assert_eq!(
            f.outcome,
            Outcome::Error(format!(
                "cannot write log file `{}`: No space left on device (os error 28)",
                log.display()
            ))
        );
    }

    #[tokio::test]
    async fn missing_programs_and_directories_fail_to_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = run(&["no-such-program-xyz"], dir.path(), None).await;
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
            dir.path(),
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
