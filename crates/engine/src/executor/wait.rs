//! Waiting for a child with its resource usage: `wait4(2)`, which neither std, tokio nor nix
//! exposes. This is the only `unsafe` in baton.
#![allow(unsafe_code)]

use std::io;

/// How a process ended, with what it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaitStatus {
    /// Exit code when it exited; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_user_ms: i64,
    pub cpu_sys_ms: i64,
    /// Peak resident set size in KiB (Linux reports `ru_maxrss` in KiB).
    pub max_rss_kb: i64,
}

/// Blocks until process `pid` (our child) ends and reaps it.
pub(super) fn wait4(pid: i32) -> io::Result<WaitStatus> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that `wait4` fills in; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types.
        let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let ms = |tv: libc::timeval| tv.tv_sec * 1000 + tv.tv_usec / 1000;
    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(WaitStatus {
        exit_code,
        signal,
        cpu_user_ms: ms(usage.ru_utime),
        cpu_sys_ms: ms(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
    })
}
