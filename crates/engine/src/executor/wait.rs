//! Waiting for a child with its resource usage: `wait4(2)`, which neither std, tokio nor nix
//! exposes. With `parent_death.rs`, the only `unsafe` in baton.
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
    loop {
        match reap(pid, 0) {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reaps process `pid` if it has ended, without blocking.
pub(super) fn try_wait4(pid: i32) -> io::Result<Option<WaitStatus>> {
    reap(pid, libc::WNOHANG)
}

/// A file descriptor that becomes readable when process `pid` ends (Linux 5.3+), so that an
/// async task can wait for it without holding a thread.
pub(super) fn pidfd_open(pid: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `pidfd_open` takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the descriptor was just created for us and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Registers a pidfd with the runtime so a task can await the process's end.
pub(super) fn watch(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the `AsyncFd` owns the descriptor, which stays open and unchanged until the
    // `AsyncFd` is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}

fn reap(pid: i32, flags: libc::c_int) -> io::Result<Option<WaitStatus>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that `wait4` fills in; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live, writable locals of the right types.
    let rc = unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut usage) };
    if rc == 0 {
        return Ok(None);
    }
    if rc != pid {
        return Err(io::Error::last_os_error());
    }
    let ms = |tv: libc::timeval| tv.tv_sec * 1000 + tv.tv_usec / 1000;
    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(Some(WaitStatus {
        exit_code,
        signal,
        cpu_user_ms: ms(usage.ru_utime),
        cpu_sys_ms: ms(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
    }))
}
