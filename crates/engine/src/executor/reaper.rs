//! Grandchildren that outlive their parent. With baton as child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), a task's orphaned descendants are reparented to baton instead
//! of PID 1; the executor kills an attempt's group when it ends and reaps what of it became
//! baton's, so nothing is left as a zombie.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Makes this process the reaper of its descendants' orphans. For the commands that run
/// attempts (`baton run`, `resume`, `server`); a library user may prefer not to.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// How long to wait for a killed group's members to become reapable.
const REAP_LIMIT: Duration = Duration::from_secs(2);

/// Reaps every child of ours left in process group `pgid` (already sent SIGKILL), until none
/// is left or [`REAP_LIMIT`] passes. Only members of that group: other attempts' processes,
/// and their statuses, are not touched.
pub(super) async fn reap_group(pgid: i32) {
    let deadline = tokio::time::Instant::now() + REAP_LIMIT;
    loop {
        match waitpid(Pid::from_raw(-pgid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) | Err(Errno::EINTR) => {}
            // ECHILD: no child of ours is in the group (the usual case without a subreaper).
            Err(_) => return,
        }
    }
}
