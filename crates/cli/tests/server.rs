//! `baton server` as a process: HTTP over loopback, and crash recovery across a `kill -9`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;

use support::{Test, task_states, wait_until};

/// A server process, killed when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on a free port and returns it with its address.
fn start(t: &Test) -> (Server, String) {
    let mut child = t.spawn(&[
        "server",
        "--pipelines",
        "pipelines",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-grace",
        "1s",
    ]);
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("baton listening on http://")
        .expect("address")
        .to_owned();
    (Server(child), addr)
}

/// A minimal HTTP/1.1 client, enough for these tests.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

#[test]
fn refuses_non_loopback_addresses_without_the_flag() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  a:\n    run: \"true\"\n",
    );
    let out = t.run(&[
        "server",
        "--pipelines",
        "pipelines",
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: refusing to listen on `0.0.0.0:0`"),
        "{}",
        out.stderr
    );
}

#[test]
fn runs_survive_a_kill_9_of_the_server() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  first:\n    run: echo first >> ran.txt\n  slow:\n    needs: [first]\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      sleep 1\n      echo slow >> ran.txt\n",
    );
    let (server, addr) = start(&t);
    assert_eq!(http(&addr, "GET", "/healthz", "").0, 200);
    let (status, run) = http(
        &addr,
        "POST",
        "/api/v1/pipelines/default/p/runs",
        r#"{"params": {}}"#,
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    // Tasks run in the pipeline file's directory.
    wait_until("slow started", || !t.read("pipelines/keys.txt").is_empty());
    drop(server); // kill -9

    let (_server, addr) = start(&t);
    wait_until("run finished after restart", || {
        let (_, doc) = http(&addr, "GET", &format!("/api/v1/runs/{id}"), "");
        doc["state"] == "succeeded"
    });
    let run = t.show(&id);
    assert_eq!(task_states(&run)["slow"], "succeeded");
    let keys: Vec<String> = t
        .read("pipelines/keys.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 2, "the cut-short attempt ran again");
    assert_eq!(keys[0], keys[1], "with the same idempotency key");
    assert_eq!(
        t.read("pipelines/ran.txt").matches("first").count(),
        1,
        "a succeeded task ran again"
    );
}

#[test]
fn sigterm_drains_and_the_next_start_resumes() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  short:\n    run: sleep 0.3; echo short >> ran.txt\n  long:\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      if [ -f once ]; then exit 0; fi\n      touch once\n      sleep 300\n",
    );
    let (mut server, addr) = start(&t);
    let (status, run) = http(&addr, "POST", "/api/v1/pipelines/default/p/runs", "{}");
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    wait_until("long started", || !t.read("pipelines/keys.txt").is_empty());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
    let status = server.0.wait().expect("exit");
    assert_eq!(status.code(), Some(0), "a drained server exits cleanly");
    // The short task finished within the grace period; the long one was stopped and recorded.
    let run = t.show(&id);
    assert_eq!(run["state"], "running");
    let states = task_states(&run);
    assert_eq!(states["short"], "succeeded");
    let long = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "long")
        .cloned()
        .expect("long");
    assert_eq!(long["attempt_records"][0]["state"], "interrupted");

    let (_server, addr) = start(&t);
    wait_until("resumed run finished", || {
        let (_, doc) = http(&addr, "GET", &format!("/api/v1/runs/{id}"), "");
        doc["state"] == "succeeded"
    });
    assert_eq!(
        t.read("pipelines/ran.txt"),
        "short\n",
        "the finished task did not run again"
    );
    let keys: Vec<String> = t
        .read("pipelines/keys.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    let run = t.show(&id);
    let long = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "long")
        .cloned()
        .expect("long");
    assert_eq!(
        long["interruptions"], 1,
        "the drain did not use up the retry budget"
    );
}
