//! The README's commands as a user types them on a fresh clone: from the repository root, with
//! no `--home` and no `BATON_HOME`, so baton picks its default home `./.baton`.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::{Server, Test, http, task_states, wait_until};

/// The README's opening block, which must stay these two commands.
const OPENING: [&str; 2] = [
    "cargo run --release -- run examples/hello.yaml",
    "cargo test --workspace",
];

/// The first fenced block of the README, line by line.
fn opening_commands(readme: &str) -> Vec<String> {
    readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block in the README")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readmes_first_command_runs_hello_from_a_fresh_clone() {
    let t = Test::fresh_clone();
    let commands = opening_commands(&t.read("README.md"));
    assert_eq!(commands, OPENING, "the README's opening commands changed");
    // `cargo run --release --` is the built binary.
    let args: Vec<&str> = commands[0]
        .strip_prefix("cargo run --release -- ")
        .expect("a cargo run")
        .split(' ')
        .collect();
    let out = t.run(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    assert!(
        t.path().join(".baton/baton.db").is_file(),
        "the default home is `./.baton`"
    );
    let logs = t.run(&["logs", &t.last_run()]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("Hello, world!"), "{}", logs.stdout);
    assert!(logs.stdout.contains("HELLO, WORLD!"), "{}", logs.stdout);
}

#[test]
fn a_relative_home_flag_is_the_directory_baton_was_started_in() {
    let t = Test::fresh_clone();
    let out = t.run(&["--home", "state", "run", "examples/hello.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(t.path().join("state/baton.db").is_file());
    assert!(
        !t.path().join("examples/state").exists(),
        "outputs went beside the pipeline file"
    );
}

/// Every example runs to success from the repository root, the way `baton run` runs hello:
/// none needs an outside system (the `kubectl`, registry and warehouse steps only echo; the
/// notifications of `lineage-notify.yaml` are logged as not sent without `ALERTS_URL`), and
/// the pools they name come from the root's `baton.toml`. Approval gates are approved from
/// another terminal, as a person would. `http.yaml` calls a `baton server`, started here as
/// its comment says, and `container.yaml` runs on the Docker engine with the image its comment
/// builds.
#[test]
fn every_example_runs_from_the_repository_root() {
    let t = Test::fresh_clone();
    let validate = t.run(&["validate", "examples"]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);
    let mut examples: Vec<String> = std::fs::read_dir(t.path().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 8, "{examples:?}");
    // An approval is a request the running `baton run` takes up on its next turn, so a gate
    // can still read `waiting_approval` just after it was approved: approve each gate once.
    let mut approved = HashSet::new();
    let service = Server::ready(t.spawn(&[
        "--home",
        "service-home",
        "server",
        "--pipelines",
        "examples",
        "--listen",
        "127.0.0.1:0",
    ]));
    let base = format!("base={}", service.url);
    for name in &examples {
        let path = format!("examples/{name}");
        let runs_before = run_count(&t);
        let mut args = vec!["run", path.as_str()];
        if name == "http.yaml" {
            args.extend(["--param", &base]);
        }
        // Its comment says to build the image first; without an engine it cannot run.
        if name == "container.yaml" && !support::docker::available("examples/container.yaml runs") {
            continue;
        }
        let mut child = t.spawn(&args);
        let deadline = Instant::now() + Duration::from_secs(180);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`baton run {path}` did not finish"
            );
            if run_count(&t) > runs_before {
                approve_waiting_gates(&t, &mut approved);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = child.wait_with_output().expect("output");
        assert!(
            status.success(),
            "`baton run {path}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn run_count(t: &Test) -> usize {
    let out = t.run(&["runs", "--json", "--limit", "1000"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|runs| runs.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn approve_waiting_gates(t: &Test, approved: &mut HashSet<(String, String)>) {
    let run = t.last_run();
    for (task, state) in task_states(&t.show(&run)) {
        if state == "waiting_approval" && approved.insert((run.clone(), task.clone())) {
            let out = t.run(&["approve", &run, &task, "--comment", "from the readme test"]);
            assert_eq!(out.code, 0, "approve {task}: {}", out.stderr);
        }
    }
}

#[test]
fn the_server_runs_pipelines_with_its_default_home() {
    let t = Test::fresh_clone();
    let server = support::Server::ready(t.spawn(&[
        "server",
        "--pipelines",
        "examples",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-grace",
        "1s",
    ]));
    let (status, run) = http(
        &server.addr,
        "POST",
        "/api/v1/pipelines/default/hello/runs",
        "{}",
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let mut state = serde_json::Value::Null;
    wait_until("the hello run ended", || {
        let (_, doc) = http(&server.addr, "GET", &format!("/api/v1/runs/{id}"), "");
        state = doc["state"].clone();
        ["succeeded", "failed", "cancelled"].contains(&state.as_str().unwrap_or(""))
    });
    assert_eq!(state, "succeeded", "{}", t.run(&["show", &id]).stdout);
}

/// Commands that only read (or act on what is recorded) find no home in a fresh directory:
/// they say so, exit 2, and leave no `.baton` behind.
#[test]
fn read_only_commands_do_not_create_a_home() {
    let t = Test {
        default_home: true,
        ..Test::new()
    };
    let home = std::path::absolute(t.path().join(".baton")).expect("absolute");
    let expected = format!(
        "error: no baton home at `{}`\n(hint: run a pipeline first, or pass --home)\n",
        home.display()
    );
    for args in [
        &["runs"][..],
        &["show", "01abc"],
        &["logs", "01abc"],
        &["dead-letters"],
        &["pool", "list"],
        &["pool", "delete", "gpu"],
        &["cancel", "01abc"],
        &["retry", "01abc"],
        &["resume", "01abc"],
        &["approve", "01abc", "release"],
        &["reject", "01abc", "release"],
        &["trigger", "default/hello"],
    ] {
        let out = t.run(args);
        assert_eq!(out.code, 2, "baton {args:?}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stderr, expected, "baton {args:?}");
        assert!(!home.exists(), "baton {args:?} created the home");
    }
}
