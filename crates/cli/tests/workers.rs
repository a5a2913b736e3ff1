//! `baton worker` end to end: real agents (processes) working for a real `baton server` over
//! HTTP, with the shared secret; a worker killed with `kill -9` is found by its lease ending
//! and its task runs on another; cancel and drain stop what a worker runs; a task no worker can
//! take says so while it waits, then fails.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Server, Test, alive, http, server_args, wait_until, wait_until_for};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

/// A worker process, killed when the test ends.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Worker {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid"))
    }
}

fn with_secret(t: Test) -> Test {
    t.file("secret", SECRET)
}

/// The worker API on, with leases of 2 s and heartbeats every 300 ms.
const WORKER_API: &[&str] = &[
    "--worker-secret-file",
    "secret",
    "--worker-lease",
    "2s",
    "--worker-heartbeat",
    "300ms",
];

/// A server with [`WORKER_API`] and short graces.
fn server(t: &Test) -> Server {
    let mut args = vec!["--shutdown-grace", "1s", "--kill-grace", "500ms"];
    args.extend_from_slice(WORKER_API);
    Server::ready(t.spawn(&server_args(&args)))
}

/// `baton ARGS` in the background, its output dropped, killed when the test ends.
fn quiet(t: &Test, args: &[&str]) -> Worker {
    Worker(
        t.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn baton"),
    )
}

fn worker(t: &Test, s: &Server, name: &str, labels: &str, extra: &[&str]) -> Worker {
    let dir = format!("w-{name}");
    let mut args = vec![
        "--server",
        &s.url,
        "worker",
        "--secret-file",
        "secret",
        "--labels",
        labels,
        "--name",
        name,
        "--dir",
        &dir,
    ];
    args.extend_from_slice(extra);
    let w = quiet(t, &args);
    wait_until("the worker registers", || {
        workers(t, s)["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().any(|w| w["name"] == name && w["state"] == "live"))
    });
    w
}

fn workers(t: &Test, s: &Server) -> serde_json::Value {
    let out = t.run(&["--server", &s.url, "workers", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("json")
}

fn trigger(t: &Test, s: &Server, pipeline: &str) -> String {
    let out = t.run(&["--server", &s.url, "trigger", pipeline]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.trim().to_owned()
}

fn show(t: &Test, s: &Server, run: &str) -> serde_json::Value {
    let out = t.run(&["--server", &s.url, "show", run, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("json")
}

fn run_state(t: &Test, s: &Server, run: &str) -> String {
    show(t, s, run)["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const PLACED: &str = r#"name: placed
tasks:
  remote:
    runs_on: [linux]
    outputs: [where]
    env: { GREETING: hello }
    run: |
      echo "$GREETING from $BATON_TASK_ID, home $HOME"
      echo "where=$PWD" >> "$BATON_OUTPUTS"
  local:
    needs: [remote]
    run: echo "remote ran in {{ tasks.remote.outputs.where }}" > local.txt
"#;

#[test]
fn a_task_runs_on_a_worker_with_its_log_outputs_and_the_worker_listed() {
    let t = with_secret(Test::new().file("pipelines/placed.yaml", PLACED));
    let s = server(&t);
    let _w = worker(&t, &s, "w1", "linux,eu", &["--slots", "2"]);
    let out = t.run(&["--server", &s.url, "trigger", "placed", "--wait"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let run = out.stdout.lines().next().expect("run id").trim().to_owned();
    let logs = t.run(&["--server", &s.url, "logs", &run, "remote"]);
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(
        logs.stdout
            .contains(&format!("hello from remote, home {home}")),
        "the task's env, and the worker's own HOME: {}",
        logs.stdout
    );
    // The worker ran it in a directory of its own, and the value came back.
    let local = t.read("pipelines/local.txt");
    assert!(local.contains("/w-w1/work/"), "{local}");
    let list = workers(&t, &s);
    let w = &list["workers"][0];
    assert_eq!(w["name"], "w1");
    assert_eq!(w["labels"], serde_json::json!(["linux", "eu"]));
    assert_eq!(w["slots"], 2);
    let text = t.run(&["--server", &s.url, "workers"]);
    assert!(
        text.stdout.contains("w1") && text.stdout.contains("live"),
        "{}",
        text.stdout
    );
    let metrics = support::http_text(&s.addr, "/metrics");
    assert!(
        metrics.contains("baton_workers{state=\"live\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("baton_worker_slots{state=\"free\"} 2"),
        "{metrics}"
    );
}

const LONG: &str = r#"name: long
tasks:
  long:
    runs_on: [linux]
    run: |
      echo $$ > "$OLDPWD_MARK"
      echo "$PWD" >> ran.txt
      sleep 3
"#;

#[test]
fn a_worker_killed_mid_task_is_given_up_within_its_lease_and_the_task_runs_on_another() {
    // The task says where it runs (its worker's directory) and its pid, in the test's dir.
    let pipeline = LONG.replace("\"$OLDPWD_MARK\"", "\"$MARK/pid.$BATON_ATTEMPT\"");
    let pipeline = pipeline.replace("ran.txt", "\"$MARK/ran.txt\"");
    let t = with_secret(Test::new().file("pipelines/long.yaml", &pipeline));
    let mark = t.path().display().to_string();
    let pipeline = pipeline.replace(
        "runs_on: [linux]",
        &format!("runs_on: [linux]\n    env: {{ MARK: \"{mark}\" }}"),
    );
    let t = t.file("pipelines/long.yaml", &pipeline);
    let s = server(&t);
    let doomed = worker(&t, &s, "doomed", "linux", &[]);
    let run = trigger(&t, &s, "long");
    wait_until("the first attempt runs", || !t.read("pid.1").is_empty());
    let pid: i32 = t.read("pid.1").trim().parse().expect("pid");
    nix::sys::signal::kill(doomed.pid(), nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let killed = Instant::now();
    // The task's process dies with its worker.
    wait_until("the task dies with its worker", || !alive(pid));
    let _other = worker(&t, &s, "other", "linux", &[]);
    wait_until_for("the run ends", Duration::from_secs(30), || {
        run_state(&t, &s, &run) == "succeeded"
    });
    let detected = killed.elapsed();
    eprintln!("worker loss to the task's success elsewhere: {detected:?}");
    let view = show(&t, &s, &run);
    let attempts = view["tasks"][0]["attempt_records"]
        .as_array()
        .expect("attempts");
    let states: Vec<&str> = attempts
        .iter()
        .map(|a| a["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, vec!["interrupted", "succeeded"], "{view}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("worker `doomed` was not heard from")),
        "{view}"
    );
    let ran = t.read("ran.txt");
    assert!(
        ran.lines().next().is_some_and(|l| l.contains("/w-doomed/")),
        "{ran}"
    );
    assert!(
        ran.lines().nth(1).is_some_and(|l| l.contains("/w-other/")),
        "{ran}"
    );
    assert!(
        detected < Duration::from_secs(15),
        "found lost in {detected:?}"
    );
    let listed = workers(&t, &s);
    let doomed_state = listed["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .find(|w| w["name"] == "doomed")
        .map(|w| w["state"].clone());
    assert_eq!(doomed_state, Some(serde_json::json!("lost")));
}

const SLEEPER: &str = r#"name: sleeper
tasks:
  sleeper:
    runs_on: [linux]
    run: |
      echo $$ > "$MARK/pid"
      exec sleep 60
"#;

fn sleeper(t: Test) -> Test {
    let mark = t.path().display().to_string();
    let p = SLEEPER.replace(
        "runs_on: [linux]",
        &format!("runs_on: [linux]\n    env: {{ MARK: \"{mark}\" }}"),
    );
    t.file("pipelines/sleeper.yaml", &p)
}

#[test]
fn cancelling_a_run_stops_its_task_on_the_worker() {
    let t = sleeper(with_secret(Test::new()));
    let s = server(&t);
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let run = trigger(&t, &s, "sleeper");
    wait_until("the task runs", || !t.read("pid").is_empty());
    let pid: i32 = t.read("pid").trim().parse().expect("pid");
    let out = t.run(&["--server", &s.url, "cancel", &run]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    wait_until("the task's process stops", || !alive(pid));
    wait_until("the run is cancelled", || {
        run_state(&t, &s, &run) == "cancelled"
    });
    let view = show(&t, &s, &run);
    assert_eq!(
        view["tasks"][0]["attempt_records"][0]["state"], "cancelled",
        "{view}"
    );
}

#[test]
fn a_drained_worker_lets_short_work_finish_and_gives_long_work_back() {
    let t = sleeper(with_secret(Test::new()));
    let s = server(&t);
    let w1 = worker(&t, &s, "w1", "linux", &["--drain-grace", "300ms"]);
    let run = trigger(&t, &s, "sleeper");
    wait_until("the task runs", || !t.read("pid").is_empty());
    let pid: i32 = t.read("pid").trim().parse().expect("pid");
    std::fs::remove_file(t.path().join("pid")).expect("rm");
    nix::sys::signal::kill(w1.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    wait_until("the task is stopped after the grace", || !alive(pid));
    let mut w1 = w1;
    let status = w1.0.wait().expect("wait");
    assert!(status.success(), "a drained worker exits 0: {status}");
    // Interrupted, not failed: the next worker runs it.
    let _w2 = worker(&t, &s, "w2", "linux", &[]);
    wait_until("it runs again", || !t.read("pid").is_empty());
    let view = show(&t, &s, &run);
    let attempts = view["tasks"][0]["attempt_records"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts[0]["state"], "interrupted", "{view}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("worker `w1` was shut down")),
        "{view}"
    );
    assert!(
        workers(&t, &s)["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .all(|w| w["name"] != "w1"),
        "a drained worker leaves the list"
    );
}

#[test]
fn a_task_no_worker_can_take_shows_what_it_waits_for_then_fails() {
    let t = with_secret(Test::new().file(
        "pipelines/gpu.yaml",
        "name: gpu\ntasks:\n  train:\n    runs_on: { labels: [gpu], wait: 3s }\n    run: train\n",
    ));
    let s = server(&t);
    let _cpu = worker(&t, &s, "cpu", "cpu", &[]);
    let run = trigger(&t, &s, "gpu");
    let waiting = "waiting for a worker (labels gpu): none is connected";
    wait_until("the task waits", || {
        show(&t, &s, &run)["tasks"][0]["waiting_for"] == waiting
    });
    let text = t.run(&["--server", &s.url, "show", &run]);
    assert!(text.stdout.contains(waiting), "{}", text.stdout);
    let list = t.run(&["--server", &s.url, "workers"]);
    assert!(
        list.stdout.contains("1 task(s) waiting for a worker"),
        "{}",
        list.stdout
    );
    let page = support::http_text(&s.addr, "/workers");
    assert!(page.contains(waiting), "{page}");
    let page = support::http_text(&s.addr, &format!("/runs/{run}"));
    assert!(page.contains(waiting), "{page}");
    wait_until("the run fails", || run_state(&t, &s, &run) == "failed");
    let view = show(&t, &s, &run);
    assert!(
        view["tasks"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no worker with labels `gpu` was connected for 3s")),
        "{view}"
    );
}

#[test]
fn the_worker_api_takes_only_requests_with_the_secret() {
    let t = with_secret(Test::new().file("pipelines/placed.yaml", PLACED))
        .file("wrong", "a-wrong-secret-that-is-long-enough-to-pass");
    let s = server(&t);
    let hello = r#"{"name":"x","labels":[],"slots":1,"version":"0","host":"h"}"#;
    let (status, body) = http(&s.addr, "POST", "/api/v1/workers", hello);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("bad_worker_secret"))
    );
    let out = t.run(&[
        "--server",
        &s.url,
        "worker",
        "--secret-file",
        "wrong",
        "--labels",
        "linux",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the worker secret is wrong"),
        "{}",
        out.stderr
    );
    let out = t.run(&["--server", &s.url, "worker", "--labels", "linux"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--secret-file"), "{}", out.stderr);
    let out = t.run(&["worker", "--secret-file", "secret"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("pass --server URL"), "{}", out.stderr);
    let out = t.run(&[
        "--server",
        &s.url,
        "worker",
        "--secret-file",
        "secret",
        "--labels",
        "a b",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("invalid worker label `a b`"),
        "{}",
        out.stderr
    );
    // A server without a secret has no worker API at all.
    let plain = Server::ready(t.spawn(&server_args(&[])));
    let out = t.run(&[
        "--server",
        &plain.url,
        "worker",
        "--secret-file",
        "secret",
        "--labels",
        "linux",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("worker API is off"), "{}", out.stderr);
    let short = Test::new().file("secret", "short");
    let out = short.run(&server_args(&["--worker-secret-file", "secret"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("fewer than 32"), "{}", out.stderr);
}

#[test]
fn the_worker_example_runs_on_a_worker_and_baton_run_says_where_it_can_run() {
    let t = with_secret(Test::new());
    support::copy_tree(
        &support::repo().join("examples/workers"),
        &t.path().join("pipelines"),
    );
    let s = server(&t);
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let out = t.run(&["--server", &s.url, "trigger", "remote-build", "--wait"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = t.run(&["run", "pipelines/remote-build.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("task `compile`") && out.stderr.contains("`baton server`"),
        "{}",
        out.stderr
    );
}

/// The tasks record where they ran (`$MARK/ran.txt`) and the pid of a child they leave
/// running in their process group (`$MARK/child.pid`).
const SPREAD: &str = r#"name: spread
tasks:
  fan:
    for_each: [1, 2, 3, 4, 5, 6]
    runs_on: [linux]
    outputs: [square]
    run: |
      echo "$BATON_ITEM $PWD" >> "$MARK/ran.txt"
      echo "square=$(($BATON_ITEM * $BATON_ITEM))" >> "$BATON_OUTPUTS"
      sleep 0.5
  slow:
    runs_on: [linux]
    timeout: 1s
    run: |
      sleep 60 &
      echo $! > "$MARK/child.pid"
      wait
"#;

#[test]
fn a_fan_out_spreads_over_workers_and_a_timeout_stops_the_whole_group() {
    let t = with_secret(Test::new());
    let mark = t.path().display().to_string();
    let t = t.file(
        "pipelines/spread.yaml",
        &SPREAD.replace(
            "runs_on: [linux]",
            &format!("runs_on: [linux]\n    env: {{ MARK: \"{mark}\" }}"),
        ),
    );
    let s = server(&t);
    let _a = worker(&t, &s, "a", "linux", &["--slots", "2"]);
    let _b = worker(&t, &s, "b", "linux", &["--slots", "2"]);
    let run = trigger(&t, &s, "spread");
    wait_until_for("the run ends", Duration::from_secs(30), || {
        matches!(run_state(&t, &s, &run).as_str(), "failed" | "succeeded")
    });
    let view = show(&t, &s, &run);
    let tasks = view["tasks"].as_array().expect("tasks");
    let fan: Vec<&serde_json::Value> = tasks
        .iter()
        .filter(|t| t["task_id"] == "fan" && t["key"] != "fan")
        .collect();
    assert_eq!(fan.len(), 6, "{view}");
    for f in &fan {
        assert_eq!(f["state"], "succeeded", "{view}");
        let item: i64 = f["item"].as_i64().expect("item");
        assert_eq!(f["outputs"]["square"], (item * item).to_string(), "{view}");
    }
    let ran = t.read("ran.txt");
    assert!(
        ran.contains("/w-a/") && ran.contains("/w-b/"),
        "both workers took some: {ran}"
    );
    let slow = tasks.iter().find(|t| t["key"] == "slow").expect("slow");
    assert_eq!(slow["attempt_records"][0]["state"], "timed_out", "{view}");
    let child: i32 = t.read("child.pid").trim().parse().expect("pid");
    wait_until("the timed-out task's child is gone too", || !alive(child));
}

#[test]
fn a_server_killed_while_a_worker_runs_a_task_resumes_it_on_a_worker() {
    let t = sleeper(with_secret(Test::new()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        let mut args = vec!["server", "--pipelines", "pipelines", "--listen", &listen];
        args.extend_from_slice(WORKER_API);
        Server::ready(t.spawn(&args))
    };
    let s = start();
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let run = trigger(&t, &s, "sleeper");
    wait_until("the task runs", || !t.read("pid").is_empty());
    let first: i32 = t.read("pid").trim().parse().expect("pid");
    std::fs::remove_file(t.path().join("pid")).expect("rm");
    let mut s = s;
    nix::sys::signal::kill(s.pid(), nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let _ = s.child.wait();
    drop(s);
    let s = start();
    // The new server resumes the run; the worker learns it is unknown, stops what it held
    // and registers again, and the attempt after the interruption runs on it.
    wait_until("the old attempt's process stops", || !alive(first));
    wait_until("the task runs again", || !t.read("pid").is_empty());
    let view = show(&t, &s, &run);
    let attempts = view["tasks"][0]["attempt_records"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts[0]["state"], "interrupted", "{view}");
    assert_eq!(attempts[1]["state"], "running", "{view}");
    let out = t.run(&["--server", &s.url, "cancel", &run]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn baton_toml_sets_the_secret_and_a_named_pool_of_workers() {
    let t = with_secret(Test::new())
        .file(
            "baton.toml",
            "[workers]\nsecret_file = \"secret\"\nlease = \"2s\"\nheartbeat = \"300ms\"\n\n\
             [executors.gpus]\nkind = \"workers\"\nlabels = [\"gpu\"]\n",
        )
        .file(
            "pipelines/named.yaml",
            "name: named\ntasks:\n  train:\n    executor: gpus\n    run: echo trained on $BATON_TASK_ID\n",
        );
    let s = Server::ready(t.spawn(&server_args(&[])));
    // Neither is given the secret's file: both read it from baton.toml.
    let _g = quiet(
        &t,
        &[
            "--server", &s.url, "worker", "--labels", "gpu", "--name", "g1",
        ],
    );
    wait_until("the worker registers", || {
        workers(&t, &s)["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().any(|w| w["name"] == "g1"))
    });
    let out = t.run(&["--server", &s.url, "trigger", "named", "--wait"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let run = out.stdout.lines().next().expect("run id").trim().to_owned();
    let logs = t.run(&["--server", &s.url, "logs", &run, "train"]);
    assert!(logs.stdout.contains("trained on train"), "{}", logs.stdout);
    let out = t.run(&["run", "pipelines/named.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("workers labelled `gpu`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_worker_and_the_cli_reach_a_server_over_tls() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let t = with_secret(Test::new().file("pipelines/placed.yaml", PLACED))
        .file("tls/cert.pem", &key.cert.pem())
        .file("tls/key.pem", &key.signing_key.serialize_pem());
    let child = t.spawn(&server_args(&[
        "--worker-secret-file",
        "secret",
        "--tls-cert-file",
        "tls/cert.pem",
        "--tls-key-file",
        "tls/key.pem",
    ]));
    let mut child = child;
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("ready line");
    // Read to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("baton listening on ")
        .unwrap_or_else(|| panic!("not ready: {line}"))
        .to_owned();
    let _server = Worker(child);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // Without the CA, the certificate is refused.
    let out = t.run(&["--server", &url, "workers"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let ca = ["--ca-file", "tls/cert.pem", "--server", &url];
    let worker_args: Vec<&str> = ca
        .iter()
        .copied()
        .chain([
            "worker",
            "--secret-file",
            "secret",
            "--labels",
            "linux",
            "--name",
            "tls1",
        ])
        .collect();
    let _w = quiet(&t, &worker_args);
    wait_until("the worker registers over TLS", || {
        let args: Vec<&str> = ca.iter().copied().chain(["workers", "--json"]).collect();
        let out = t.run(&args);
        out.stdout.contains("\"tls1\"")
    });
    let args: Vec<&str> = ca
        .iter()
        .copied()
        .chain(["trigger", "placed", "--wait"])
        .collect();
    let out = t.run(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_server_that_drains_still_hears_its_workers_report() {
    let t = with_secret(Test::new());
    let mark = t.path().display().to_string();
    let t = t.file(
        "pipelines/short.yaml",
        &format!(
            "name: short\ntasks:\n  short:\n    runs_on: [linux]\n    env: {{ MARK: \"{mark}\" }}\n    run: |\n      touch \"$MARK/started\"\n      sleep 1\n      echo finished\n"
        ),
    );
    let mut s = Server::ready(t.spawn(&server_args(&[
        "--shutdown-grace",
        "10s",
        "--worker-secret-file",
        "secret",
    ])));
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let run = trigger(&t, &s, "short");
    wait_until("the task runs", || t.path().join("started").exists());
    nix::sys::signal::kill(s.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = s.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    // Read from the home the server left: the attempt ended within the grace, and counted.
    let view = t.show(&run);
    assert_eq!(
        view["tasks"][0]["attempt_records"][0]["state"], "succeeded",
        "{view}"
    );
    assert_eq!(view["state"], "succeeded", "{view}");
}

const SHIPPED: &str = r#"name: shipped
tasks:
  build:
    runs_on: [linux]
    outputs: [sum]
    artifacts: { upload: [dist] }
    run: |
      mkdir -p dist
      head -c 3145728 /dev/urandom > dist/big.bin
      printf '#!/bin/sh\necho deployed\n' > dist/deploy.sh && chmod +x dist/deploy.sh
      echo "sum=$(sha256sum dist/big.bin | cut -c1-64)" >> "$BATON_OUTPUTS"
  check:
    needs: [build]
    working_dir: here
    artifacts: { download: [build] }
    run: test "$(sha256sum dist/big.bin | cut -c1-64)" = "{{ tasks.build.outputs.sum }}"
  deploy:
    needs: [check]
    runs_on: [linux]
    artifacts: { download: [build] }
    run: test "$(sha256sum dist/big.bin | cut -c1-64)" = "{{ tasks.build.outputs.sum }}" && ./dist/deploy.sh
"#;

#[test]
fn artifacts_travel_from_a_worker_to_the_server_and_back_to_a_worker() {
    let t = with_secret(
        Test::new()
            .file("pipelines/shipped.yaml", SHIPPED)
            .file("pipelines/here/.keep", ""),
    );
    let s = server(&t);
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let out = t.run(&["--server", &s.url, "trigger", "shipped", "--wait"]);
    let run = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert_eq!(
        out.code,
        0,
        "{}{}\n{}",
        out.stdout,
        out.stderr,
        t.run(&["--server", &s.url, "show", &run]).stdout
    );
    let doc = show(&t, &s, &run);
    let build = doc["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "build")
        .expect("build")
        .clone();
    let files = build["attempt_records"][0]["artifacts"]
        .as_array()
        .expect("artifacts")
        .clone();
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, ["dist/big.bin", "dist/deploy.sh"]);
    assert_eq!(files[0]["size"], 3_145_728);
    // In the server's store, by digest.
    let hex = files[0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("digest")
        .to_owned();
    let object = t
        .path()
        .join(".baton/artifacts/sha256")
        .join(&hex[..2])
        .join(&hex);
    assert_eq!(std::fs::metadata(object).expect("stored").len(), 3_145_728);
    let logs = t.run(&["--server", &s.url, "logs", &run, "deploy"]);
    assert!(logs.stdout.contains("deployed"), "{}", logs.stdout);
}

#[test]
fn a_worker_may_fetch_only_what_its_lease_downloads() {
    let t = with_secret(Test::new().file("pipelines/placed.yaml", PLACED));
    let s = server(&t);
    // Register by hand, and claim the attempt, as a worker would.
    let auth = format!("Bearer {SECRET}");
    let hello = serde_json::json!({
        "name": "probe", "labels": ["linux"], "slots": 1, "version": "0", "host": "h"
    });
    let (status, reg) = support::http_with(
        &s.addr,
        "POST",
        "/api/v1/workers",
        &hello.to_string(),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 201, "{reg}");
    let id = reg["id"].as_str().expect("id").to_owned();
    let _run = trigger(&t, &s, "placed");
    let (status, claim) = support::http_with(
        &s.addr,
        "POST",
        &format!("/api/v1/workers/{id}/claim"),
        r#"{"free":1,"wait_ms":10000}"#,
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{claim}");
    let epoch = claim["assignments"][0]["epoch"]
        .as_u64()
        .expect("an assignment");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let (status, body) = support::http_with(
        &s.addr,
        "GET",
        &format!("/api/v1/workers/{id}/leases/{epoch}/artifacts/{digest}"),
        "",
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "artifact_not_leased");
    let (status, body) = support::http_with(
        &s.addr,
        "PUT",
        &format!("/api/v1/workers/{id}/leases/{epoch}/artifacts/{digest}?path=x"),
        "forged",
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 403, "{body}");
}

#[test]
fn baton_run_with_a_server_runs_the_file_there_on_its_workers() {
    let t = with_secret(Test::new().file("pipelines/placed.yaml", PLACED));
    // Here, it is refused, saying where it can run.
    let out = t.run(&["run", "pipelines/placed.yaml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`baton --server URL run FILE`"),
        "{}",
        out.stderr
    );
    let s = server(&t);
    let _w = worker(&t, &s, "w1", "linux", &[]);
    let out = t.run(&["--server", &s.url, "run", "pipelines/placed.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let run = out.stdout.lines().next().expect("run id").trim().to_owned();
    assert_eq!(run_state(&t, &s, &run), "succeeded");
    assert!(t.read("pipelines/local.txt").contains("/w-w1/work/"));
    // Another version of the file is not run under the server's name.
    let t = t.file(
        "other/placed.yaml",
        &PLACED.replace("echo \"$GREETING", "echo \"changed $GREETING"),
    );
    let out = t.run(&["--server", &s.url, "run", "other/placed.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the server's `default/placed` is another version than `other/placed.yaml`"),
        "{}",
        out.stderr
    );
    let t = t.file(
        "other/absent.yaml",
        "name: absent\ntasks:\n  a: { run: \"true\" }\n",
    );
    let out = t.run(&["--server", &s.url, "run", "other/absent.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("the server cannot run `default/absent`")
            && out
                .stderr
                .contains("put `other/absent.yaml` in the server's pipelines directory"),
        "{}",
        out.stderr
    );
}
