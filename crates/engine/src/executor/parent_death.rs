//! Attempts die with the baton process that started them. Each attempt's first process gets
//! a parent-death signal (`PR_SET_PDEATHSIG`), set between the clone and `exec`, which no
//! safe API offers — the one other `unsafe` in baton.
//!
//! Linux sends that signal when the *thread* that forked exits, not the process: a spawn on
//! one of tokio's blocking threads (which end after some idle time) would kill healthy tasks.
//! So every spawn happens on one dedicated thread that lives as long as the process.
//!
//! The child is started as `posix_spawn` starts one, with `CLONE_VM | CLONE_VFORK`: it runs
//! on a stack of its own in baton's memory until it calls `exec`, while the spawning thread
//! waits. std's `Command` with a `pre_exec` hook (the only way to set the signal there) uses
//! `fork`, which copies baton's page tables and then makes every page baton writes until the
//! child's `exec` fault: measured at about 0.9 ms of CPU per attempt for a baton of 30 MB,
//! more than the whole of a short task. What the child does before `exec` is async-signal-safe
//! system calls on data prepared before the clone, as in a `pre_exec` hook.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock, mpsc};

/// What to start: the program and its arguments, the whole environment (nothing is
/// inherited), the working directory, and where its output goes. Its standard input is
/// `/dev/null`, and it leads a process group of its own.
#[derive(Debug)]
pub(super) struct Spawn {
    pub argv: Vec<OsString>,
    pub env: BTreeMap<OsString, OsString>,
    pub cwd: std::path::PathBuf,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// `Spawn` as the child needs it: C strings and pointer arrays built before the clone, since
/// the child may not allocate.
struct Prepared {
    /// Where to look for the program, in order (`execvp`'s search, done up front).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    parent: libc::pid_t,
    /// The error of the child's last failed step, written by the child (it shares our memory)
    /// before it exits instead of calling `exec`.
    errno: libc::c_int,
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

fn prepare(spawn: Spawn) -> io::Result<Prepared> {
    let program = spawn
        .argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    // As `execvp` with the child's environment: a name with a `/` is a path (relative to the
    // working directory), anything else is looked up in the child's `PATH`.
    let candidates = if program.as_bytes().contains(&b'/') {
        vec![c_string(program.as_bytes())?]
    } else {
        let path = spawn
            .env
            .get(OsStr::new("PATH"))
            .map_or(b"/bin:/usr/bin".as_slice(), |p| p.as_bytes());
        path.split(|&b| b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { b".".as_slice() } else { dir };
                let mut full = dir.to_vec();
                full.push(b'/');
                full.extend_from_slice(program.as_bytes());
                c_string(&full)
            })
            .collect::<io::Result<_>>()?
    };
    let argv = spawn
        .argv
        .iter()
        .map(|a| c_string(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let envp = spawn
        .env
        .into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            c_string(&kv)
        })
        .collect::<io::Result<_>>()?;
    Ok(Prepared {
        candidates,
        argv,
        envp,
        cwd: c_string(Path::new(&spawn.cwd).as_os_str().as_bytes())?,
        stdin: std::fs::File::open("/dev/null")?.into(),
        stdout: spawn.stdout,
        stderr: spawn.stderr,
        parent: nix::unistd::getpid().as_raw(),
        errno: 0,
    })
}

/// The child, between the clone and `exec`. Only async-signal-safe calls on `Prepared`.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the spawning thread keeps alive, and does not touch,
    // until this child has called `exec` or exited (`CLONE_VFORK`); so is what it points to.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: as above.
    let p = unsafe { &mut *args.prepared };
    // SAFETY: plain system calls on descriptors, strings and arrays that outlive the child's
    // use of them; nothing allocates, locks or unwinds.
    unsafe {
        let fail = |p: &mut Prepared| -> libc::c_int {
            p.errno = *libc::__errno_location();
            libc::_exit(127)
        };
        // The child has its own signal handlers (no `CLONE_SIGHAND`) but shares our memory:
        // a handler of baton's must not run in it. Defaults first, then the mask the
        // spawning thread blocked everything with is lifted, as std does for its children.
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
                && old.sa_sigaction != libc::SIG_IGN
                && old.sa_sigaction != libc::SIG_DFL
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
            }
        }
        // std ignores SIGPIPE in baton; its children start with the default, as here.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        for (fd, target) in [
            (p.stdin.as_raw_fd(), 0),
            (p.stdout.as_raw_fd(), 1),
            (p.stderr.as_raw_fd(), 2),
        ] {
            let done = if fd == target {
                // Already in place: only its close-on-exec flag must go.
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if done < 0 {
                return fail(p);
            }
        }
        if libc::setpgid(0, 0) < 0 || libc::chdir(p.cwd.as_ptr()) < 0 {
            return fail(p);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
            return fail(p);
        }
        // Baton may have died before the signal was armed: the child then belongs to someone
        // else already and must not run.
        if libc::getppid() != p.parent {
            *libc::__errno_location() = libc::ESRCH;
            return fail(p);
        }
        // `execvp`'s rules: a candidate that is missing or not searchable is skipped, the
        // error reported is "permission denied" if one was seen, else the last, and a file
        // the kernel cannot execute (a script without `#!`) is run by `sh`.
        let mut denied = false;
        for path in &args.candidates {
            libc::execve(path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
            match *libc::__errno_location() {
                libc::ENOEXEC => {
                    args.sh_argv[1] = path.as_ptr();
                    libc::execve(args.sh_argv[0], args.sh_argv.as_ptr(), args.envp.as_ptr());
                    return fail(p);
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP => {}
                _ => return fail(p),
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail(p)
    }
}

/// What the child reads: the prepared spawn and the NULL-terminated pointer arrays.
struct ChildArgs {
    prepared: *mut Prepared,
    candidates: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    /// `sh`, the program's path (set by the child), then the arguments after the program's.
    sh_argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

/// The child's stack. The child only makes system calls, in a few frames.
const STACK: usize = 64 * 1024;

/// Starts `spawn` with a parent-death signal; returns its pid. Must run on the spawner thread.
fn start(spawn: Spawn) -> io::Result<i32> {
    let mut prepared = prepare(spawn)?;
    let pointers = |v: &[CString]| {
        v.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let sh = c"/bin/sh";
    let argv = pointers(&prepared.argv);
    let sh_argv = [sh.as_ptr(), std::ptr::null()]
        .into_iter()
        .chain(argv.iter().skip(1).copied())
        .collect();
    let mut args = ChildArgs {
        argv,
        sh_argv,
        envp: pointers(&prepared.envp),
        candidates: std::mem::take(&mut prepared.candidates),
        prepared: &raw mut prepared,
    };
    let mut stack = vec![0u8; STACK];
    // SAFETY: the stack grows down from its end, 16-byte aligned; `args` and everything it
    // points to live until `clone` returns, which with `CLONE_VFORK` is after the child's
    // `exec` or exit. Every signal is blocked meanwhile so that no handler of baton's runs in
    // the child before it resets them; the mask is this thread's alone and restored below.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let top = stack.as_mut_ptr().add(STACK);
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw mut args).cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    drop(stack);
    // Written by the child through the pointer it was given.
    // SAFETY: a plain read of a live, initialised field.
    let errno = unsafe { std::ptr::read_volatile(&raw const prepared.errno) };
    if errno != 0 {
        // It exited without `exec`: reaped here, since nobody else knows of it.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

type Job = (Spawn, mpsc::SyncSender<io::Result<i32>>);

/// Starts `spawn` on the spawner thread, its process set to get SIGKILL when baton dies;
/// returns its pid. The caller reaps it.
pub(super) fn spawn(spawn: Spawn) -> io::Result<i32> {
    let (reply, answer) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
        .send((spawn, reply))
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
                for (spawn, reply) in rx {
                    let _ = reply.send(start(spawn));
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
    use std::io::Read as _;

    fn run(argv: &[&str], env: &[(&str, &str)], cwd: &Path) -> io::Result<(i32, String)> {
        let (mut reader, writer) = std::io::pipe()?;
        let spawn = Spawn {
            argv: argv.iter().map(OsString::from).collect(),
            env: env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
            cwd: cwd.to_path_buf(),
            stderr: writer.try_clone()?.into(),
            stdout: writer.into(),
        };
        let pid = super::spawn(spawn)?;
        let mut out = String::new();
        reader.read_to_string(&mut out)?;
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
            .map_err(io::Error::from)?;
        match status {
            nix::sys::wait::WaitStatus::Exited(_, code) => Ok((code, out)),
            other => Err(io::Error::other(format!("{other:?}"))),
        }
    }

    #[test]
    fn spawns_from_threads_that_end_survive_them() {
        // The spawning thread ends at once; the child must not get the signal with it.
        let got = std::thread::spawn(|| {
            run(
                &["sleep", "0.3"],
                &[("PATH", "/usr/bin:/bin")],
                Path::new("/"),
            )
        })
        .join()
        .expect("thread");
        assert_eq!(
            got.expect("spawn").0,
            0,
            "killed with the thread that asked"
        );
    }

    #[test]
    fn the_child_gets_exactly_its_environment_directory_and_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cwd = std::fs::canonicalize(dir.path()).expect("canonical");
        let (code, out) = run(
            &[
                "sh",
                "-c",
                "pwd; echo \"$A\"; env | wc -l; echo err >&2; read x; echo \"[$x]\"; exit 3",
            ],
            &[("PATH", "/usr/bin:/bin"), ("A", "b c")],
            &cwd,
        )
        .expect("spawn");
        assert_eq!(code, 3);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], cwd.display().to_string());
        assert_eq!(lines[1], "b c");
        // PATH, A, and what `sh` itself adds (PWD; some shells also SHLVL and `_`).
        assert!(lines[2].trim().parse::<u32>().expect("count") <= 5, "{out}");
        assert_eq!(&lines[3..], ["err", "[]"]);
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_with_its_reason() {
        let e = run(
            &["no-such-program-here"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        )
        .expect_err("missing program");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "true\n").expect("write");
        std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let e = run(&[plain.to_str().expect("utf-8")], &[], Path::new("/"))
            .expect_err("not executable");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        let e = run(
            &["true"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/no/such/dir"),
        )
        .expect_err("missing directory");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }

    #[test]
    fn a_script_without_an_interpreter_line_runs_with_sh() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("plain");
        std::fs::write(&script, "echo \"ran with $1\"\n").expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let (code, out) = run(
            &[script.to_str().expect("utf-8"), "x"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        )
        .expect("spawn");
        assert_eq!((code, out.as_str()), (0, "ran with x\n"));
    }

    #[test]
    fn the_child_leads_its_own_group_with_sigpipe_at_its_default() {
        let (code, out) = run(
            &[
                "sh",
                "-c",
                "read -r s < /proc/$$/stat; set -- $s; echo $5; echo $$; grep SigIgn /proc/$$/status",
            ],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        )
        .expect("spawn");
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines[0], lines[1], "group leader: {out}");
        let ignored = u64::from_str_radix(lines[2].rsplit('\t').next().unwrap_or("0").trim(), 16)
            .expect("mask");
        assert_eq!(
            ignored & (1 << (libc::SIGPIPE - 1)),
            0,
            "SIGPIPE ignored: {out}"
        );
    }
}
