//! A harness over the built `baton` binary, in the style of `just`'s: files in a temp dir,
//! one invocation at a time, output and exit code captured.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../store/tests/support/docker.rs"]
pub mod docker;
#[path = "../../../store/tests/support/skip.rs"]
pub mod skip;

pub mod ledger;
pub mod moto;
pub mod netns;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Test {
    pub dir: tempfile::TempDir,
    /// Leave `BATON_HOME` unset, as a user does: baton picks its default home.
    pub default_home: bool,
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            default_home: false,
        }
    }

    /// A copy of what a fresh clone holds at its root for a user's first commands (the README,
    /// `baton.toml`, `examples/`, `schema/`; no build output), used with no `--home` and no
    /// `BATON_HOME`, from that root.
    pub fn fresh_clone() -> Self {
        let t = Self {
            default_home: true,
            ..Self::new()
        };
        for entry in ["README.md", "baton.toml", "examples", "schema"] {
            copy_tree(&repo().join(entry), &t.path().join(entry));
        }
        t
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(self, name: &str, contents: &str) -> Self {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
        self
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args);
        self.prepare(&mut cmd);
        cmd
    }

    /// `baton` run on `host` of `net`, with `host`'s name as its host name, so that baton
    /// tells the processes it started from other hosts' as it would on separate machines.
    /// Its pid is baton's own (each step execs the next).
    pub fn command_on(&self, net: &netns::Network, host: &netns::Host, args: &[&str]) -> Command {
        let mut cmd = net.command(host, Path::new("unshare"));
        cmd.args(["--uts", "--", "sh", "-c", "hostname \"$0\" && exec \"$@\""])
            .arg(&host.name)
            .arg(env!("CARGO_BIN_EXE_baton"))
            .args(args);
        self.prepare(&mut cmd);
        cmd
    }

    fn prepare(&self, cmd: &mut Command) {
        cmd.current_dir(self.dir.path())
            .env("BATON_HOME", self.dir.path().join(".baton"))
            .env_remove("BATON_FAULT_CRASH_AFTER_COMMITS")
            .env_remove("BATON_FAULT_CRASH_AFTER_EXIT_RECORD")
            .env_remove("BATON_SERVER");
        if self.default_home {
            cmd.env_remove("BATON_HOME").env_remove("BATON_CONFIG");
        }
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        let out = self.command(args).output().expect("run baton");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton")
    }

    /// The run record as `baton show --json` prints it.
    pub fn show(&self, run: &str) -> serde_json::Value {
        let out = self.run(&["show", run, "--json"]);
        assert_eq!(out.code, 0, "show failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).expect("json")
    }

    /// The id of the newest run.
    pub fn last_run(&self) -> String {
        let out = self.run(&["runs", "--json", "--limit", "1"]);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        runs[0]["id"].as_str().expect("a run").to_owned()
    }
}

/// A `baton server` process, killed when the test ends, however it ends.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits for a started server's ready line, which names its address.
    pub fn ready(child: Child) -> Self {
        Self::ready_logging_to(child, None)
    }

    /// [`Self::ready`] for a server whose stderr goes to `log`, shown if it does not start.
    pub fn ready_logging_to(mut child: Child, log: Option<&Path>) -> Self {
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("ready line");
        // Read what it writes from now on: a server blocked on a full pipe (a slow statement
        // logged whole, say) stops answering and hangs the test.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        if let Some(mut stderr) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        }
        let Some(url) = line.trim().strip_prefix("baton listening on ") else {
            let status = child.wait().expect("wait");
            let log = log.map(std::fs::read_to_string).and_then(Result::ok);
            panic!(
                "the server did not start ({status}): {line}{}",
                log.unwrap_or_default()
            );
        };
        let url = url.to_owned();
        let addr = url.strip_prefix("http://").expect("http URL").to_owned();
        Self { child, addr, url }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }
}

impl Test {
    /// Starts `baton server` on a free loopback port over `pipelines/`, with a short grace.
    pub fn server(&self) -> Server {
        Server::ready(self.spawn(&server_args(&["--shutdown-grace", "1s"])))
    }
}

impl Test {
    /// A `baton server` replica that looks for runs nobody drives every 200 ms.
    pub fn replica(&self) -> Server {
        Server::ready(self.spawn(&server_args(&["--takeover-interval", "200ms"])))
    }
}

/// Server flags for failover tests: a 2 s lease renewed every 300 ms, orphans looked for every
/// 200 ms, and short kill and shutdown graces.
pub const QUICK_LEASES: &[&str] = &[
    "--lease-ttl",
    "2s",
    "--lease-renew-interval",
    "300ms",
    "--takeover-interval",
    "200ms",
    "--kill-grace",
    "500ms",
    "--shutdown-grace",
    "1s",
];

/// `baton server` over `pipelines/` on a free loopback port, then `extra`.
pub fn server_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "server",
        "--pipelines",
        "pipelines",
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    args
}

/// `task key -> state` of a run record.
pub fn task_states(run: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["key"].as_str().expect("key").to_owned(),
                t["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies a file, or a directory with everything under it.
pub fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        // `copy` keeps the mode: the examples' scripts stay executable.
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy `{}`: {e}", from.display()));
    }
}

/// Whether a process exists and is not a zombie (a killed orphan may linger as a zombie when
/// the sandbox's init does not reap).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Polls `done` every 20 ms until it holds; fails the test with `what` after 20 s.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_for(what, std::time::Duration::from_secs(20), done);
}

/// Polls `done` every 20 ms until it holds; fails the test with `what` after `limit`.
pub fn wait_until_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 client, enough for these tests.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    http_with(addr, method, path, body, &[])
}

/// [`http`], with `headers`.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp[9..12].parse().expect("status");
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// The body of a `GET` as text (`/metrics`).
pub fn http_text(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    resp.split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, b)| b.to_owned())
}

/// A run's event log, from its (ended) event stream. HTTP/1.0, so the body is not chunked.
pub fn run_events(addr: &str, id: &str) -> Vec<serde_json::Value> {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /api/v1/runs/{id}/events HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    let mut found = Vec::new();
    let mut end = false;
    for line in body.lines() {
        if line == "event: end" {
            end = true;
        }
        if let Some(data) = line.strip_prefix("data: ")
            && !end
        {
            found.push(serde_json::from_str(data).expect("event data"));
        }
    }
    assert!(end, "the stream of an ended run ends: {body}");
    found
}

/// Events of `events` (a run's, in order) that an owner wrote under an older lease epoch than
/// one before it: writes of an owner that had lost the run, which fencing must refuse.
pub fn stale_writes(events: &[serde_json::Value]) -> Vec<String> {
    let mut newest = 0;
    let mut stale = Vec::new();
    for e in events {
        let Some(epoch) = e["epoch"].as_i64() else {
            continue;
        };
        if epoch < newest {
            stale.push(format!(
                "event {} under epoch {epoch} after {newest}: {e}",
                e["seq"]
            ));
        }
        newest = newest.max(epoch);
    }
    stale
}

/// How many times each task instance was recorded succeeded, for those recorded so more
/// than once.
pub fn succeeded_twice(events: &[serde_json::Value]) -> Vec<(String, usize)> {
    let mut per_task: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["kind"] == "task_state" && e["data"]["state"] == "succeeded")
    {
        *per_task
            .entry(e["task"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    per_task.into_iter().filter(|(_, n)| *n > 1).collect()
}
