//! What a dead baton left running. Before an interrupted attempt is tried again, whatever is
//! left of it on this host is stopped (SIGTERM, the kill grace, SIGKILL) and waited for, so
//! two copies of one attempt never run at once.
//!
//! Its processes are found two ways: by the identity recorded when it was spawned (process
//! group and start time, on this boot of this host), and by the variables every attempt's
//! environment carries (`BATON_RUN_ID`, `BATON_TASK_KEY`, `BATON_ATTEMPT`, read from
//! `/proc/<pid>/environ`). The second covers a crash between the spawn and the commit of its
//! identity, and descendants that left the group (`setsid`) but kept their environment.
//! Attempts started on another host (or before a reboot) cannot be reached from here: their
//! run's lease expired before it could be taken over, and fencing them is the remote side's.

use std::collections::BTreeSet;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_store::AttemptProcess;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::identity::{self, Stat};

/// An attempt recorded running by a process that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub key: TaskKey,
    pub attempt: u32,
    /// Who runs it, if its spawn was committed.
    pub process: Option<AttemptProcess>,
    /// Whether it ran in a container: only then is a container engine asked about it.
    pub container: bool,
}

/// How long SIGKILLed processes get to disappear before the next attempt starts anyway (only
/// a process stuck in the kernel takes this long, and it can do no more work).
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// Stops what is left of `attempts` of `run` on this host and returns once it is gone.
pub(super) async fn stop(run: RunId, attempts: Vec<Leftover>, grace: Duration) {
    let (local, remote): (Vec<Leftover>, Vec<Leftover>) = attempts
        .into_iter()
        .partition(|a| a.process.as_ref().is_none_or(identity::is_local));
    for a in &remote {
        let host = a.process.as_ref().map_or("", |p| p.host.as_str());
        tracing::info!(
            run = %run, task = %a.key, attempt = a.attempt, host,
            "an interrupted attempt ran on another host or boot; it cannot be stopped from here"
        );
    }
    if local.is_empty() {
        return;
    }
    let targets = std::sync::Arc::new((run.clone(), local));
    let found = scan(&targets).await;
    if found.is_empty() {
        return;
    }
    for (n, a) in targets.1.iter().enumerate() {
        let pids: Vec<i32> = found.iter().filter(|p| p.1 == n).map(|p| p.0.pid).collect();
        if !pids.is_empty() {
            tracing::warn!(
                run = %run, task = %a.key, attempt = a.attempt, ?pids,
                "stopping what is left of an interrupted attempt before trying it again"
            );
        }
    }
    signal(&targets.1, &found, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    let mut left = found;
    while !left.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        left = scan(&targets).await;
    }
    let deadline = tokio::time::Instant::now() + KILL_WAIT;
    while !left.is_empty() {
        signal(&targets.1, &left, Signal::SIGKILL);
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(
                run = %run, pids = ?left.iter().map(|p| p.0.pid).collect::<Vec<_>>(),
                "processes of an interrupted attempt survive SIGKILL"
            );
            return;
        }
        tokio::time::sleep(POLL).await;
        left = scan(&targets).await;
    }
}

/// Live processes of the attempts, each with the index of its attempt.
async fn scan(targets: &std::sync::Arc<(RunId, Vec<Leftover>)>) -> Vec<(Stat, usize)> {
    let targets = std::sync::Arc::clone(targets);
    tokio::task::spawn_blocking(move || find(&targets.0, &targets.1))
        .await
        .unwrap_or_default()
}

fn find(run: &RunId, attempts: &[Leftover]) -> Vec<(Stat, usize)> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let markers: Vec<[String; 3]> = attempts
        .iter()
        .map(|a| {
            [
                format!("BATON_RUN_ID={run}"),
                format!("BATON_TASK_KEY={}", a.key),
                format!("BATON_ATTEMPT={}", a.attempt),
            ]
        })
        .collect();
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Gone since the listing, or a zombie: nothing to stop.
        let Ok(stat) = Stat::read(pid) else { continue };
        if stat.zombie {
            continue;
        }
        let in_group = attempts.iter().position(|a| {
            a.process
                .as_ref()
                .is_some_and(|p| p.pgid == stat.pgrp && stat.start_time >= p.start_time)
        });
        let owner = in_group.or_else(|| {
            // Unreadable for other users' processes, which are not ours to stop anyway.
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let vars: BTreeSet<&[u8]> = environ.split(|&b| b == 0).collect();
            markers
                .iter()
                .position(|m| m.iter().all(|v| vars.contains(v.as_bytes())))
        });
        if let Some(n) = owner {
            found.push((stat, n));
        }
    }
    found
}

fn signal(attempts: &[Leftover], found: &[(Stat, usize)], signal: Signal) {
    let groups: BTreeSet<i32> = found
        .iter()
        .filter_map(|(s, n)| {
            attempts[*n]
                .process
                .as_ref()
                .filter(|p| p.pgid == s.pgrp)
                .map(|p| p.pgid)
        })
        .collect();
    // The group first, so that what it forks meanwhile goes too; then each process found,
    // which covers those that left it. ESRCH (already gone) is the harmless common case.
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
    for (s, _) in found {
        let _ = kill(Pid::from_raw(s.pid), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftover(key: &str, attempt: u32, process: Option<AttemptProcess>) -> Leftover {
        Leftover {
            key: TaskKey::from_string(key),
            attempt,
            process,
            container: false,
        }
    }

    #[tokio::test]
    async fn a_group_found_by_its_identity_is_stopped_even_when_it_ignores_sigterm() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30 & sleep 30; wait"])
            .process_group(0);
        use std::os::unix::process::CommandExt;
        let mut child = cmd.spawn().expect("spawn");
        let pid = i32::try_from(child.id()).expect("pid");
        let process = identity::of_leader(pid).expect("identity");
        let run = RunId::from_string("r1");
        let targets = std::sync::Arc::new((run.clone(), vec![leftover("t", 1, Some(process))]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            find(&targets.0, &targets.1).len() >= 2,
            "the shell and its sleeps"
        );
        let started = std::time::Instant::now();
        stop(run, targets.1.clone(), Duration::from_millis(200)).await;
        let _ = child.wait();
        assert!(find(&targets.0, &targets.1).is_empty(), "nothing is left");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn without_an_identity_the_environment_finds_them() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("BATON_RUN_ID", "r2")
            .env("BATON_TASK_KEY", "load[eu]")
            .env("BATON_ATTEMPT", "3")
            .spawn()
            .expect("spawn");
        let run = RunId::from_string("r2");
        // Another attempt of the same task is not this one.
        assert!(find(&run, &[leftover("load[eu]", 2, None)]).is_empty());
        let attempts = vec![leftover("load[eu]", 3, None)];
        assert_eq!(find(&run, &attempts).len(), 1);
        stop(run.clone(), attempts.clone(), Duration::from_secs(5)).await;
        assert!(!child.wait().expect("wait").success(), "it was stopped");
        assert!(find(&run, &attempts).is_empty());
    }

    #[tokio::test]
    async fn a_reused_pid_or_another_host_is_left_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        let pid = i32::try_from(child.id()).expect("pid");
        let mut process = identity::of_leader(pid).expect("identity");
        // Its own group is this test's; a recorded start after it means another process.
        process.pgid = Stat::read(pid).expect("stat").pgrp;
        process.start_time += 1_000_000;
        let run = RunId::from_string("r3");
        assert!(find(&run, &[leftover("t", 1, Some(process.clone()))]).is_empty());
        process.start_time -= 1_000_000;
        process.host = "elsewhere".into();
        stop(
            run,
            vec![leftover("t", 1, Some(process))],
            Duration::from_millis(10),
        )
        .await;
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "still running"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
