//! Attempts die with the baton process that started them. Each attempt's first process gets
//! a parent-death signal (`PR_SET_PDEATHSIG`), set between `fork` and `exec`, which std allows
//! only through `pre_exec` — the one other `unsafe` in baton.
//!
//! Linux sends that signal when the *thread* that forked exits, not the process: a spawn on
//! one of tokio's blocking threads (which end after some idle time) would kill healthy tasks.
//! So every spawn happens on one dedicated thread that lives as long as the process.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock, mpsc};

use nix::sys::signal::Signal;

type Job = (Command, mpsc::SyncSender<io::Result<Child>>);

/// Starts `command` on the spawner thread, its process set to get SIGKILL when baton dies.
pub(super) fn spawn(mut command: Command) -> io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: the hook runs in the forked child before `exec`, where only async-signal-safe
    // calls are allowed: it makes two system calls (`prctl`, `getppid`) and builds an error
    // from a raw code, without allocating or taking locks.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // Baton may have died between `fork` and `prctl`, before the signal was armed:
            // the child then belongs to someone else already and must not run.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        // Never joined: it must outlive every attempt, so it lives as long as the process.
        let started = std::thread::Builder::new()
            .name("baton-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the spawner thread: {e}");
        }
        Mutex::new(tx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawns_from_threads_that_end_survive_them() {
        // The spawning thread ends at once; the child must not get the signal with it.
        let child = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("0.3");
            spawn(cmd).expect("spawn")
        })
        .join()
        .expect("thread");
        let mut child = child;
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "killed with the thread that asked: {status:?}"
        );
    }
}
