//! `container:` tasks through the binary: a `kill -9` of baton while a container runs (the
//! resume stops it and runs the task again) or after it exited (its end is kept and the task
//! not run again), and `[executors.NAME]` of `baton.toml`.

mod support;

use support::docker::{IMAGE, available, containers_of, running_containers_of};
use support::{Test, wait_until};

fn attempt_states(t: &Test, run: &str, key: &str) -> Vec<String> {
    let run = t.show(run);
    let task = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no task `{key}`: {run:#}"));
    task["attempt_records"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn kill_9_while_a_container_runs_then_resume_stops_it_and_runs_it_again() {
    if !available("a container outlives a killed baton") {
        return;
    }
    let t = Test::new().file(
        "p.yaml",
        &format!(
            "name: p\ntasks:\n  boxed:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      if [ ! -f once ]; then touch once; sleep 60; fi\n      echo boxed >> ran.txt\n"
        ),
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    wait_until("the container never started", || {
        !t.read("keys.txt").is_empty()
    });
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let id = t.last_run();
    assert_eq!(
        containers_of(&id).len(),
        1,
        "the container runs on without baton"
    );
    let out = t
        .command(&["resume", &id])
        .env("BATON_KILL_GRACE", "1s")
        .output()
        .expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.show(&id)["state"], "succeeded");
    assert_eq!(
        attempt_states(&t, &id, "boxed"),
        ["interrupted", "succeeded"]
    );
    let keys: Vec<String> = t.read("keys.txt").lines().map(str::to_owned).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the retry keeps the idempotency key");
    assert_eq!(t.read("ran.txt"), "boxed\n");
    assert!(containers_of(&id).is_empty(), "{:?}", containers_of(&id));
}

#[test]
fn a_container_that_ended_while_baton_was_dead_keeps_its_end() {
    if !available("a container's end outlives a killed baton") {
        return;
    }
    let t = Test::new().file(
        "p.yaml",
        &format!(
            "name: p\ntasks:\n  boxed:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    outputs: [rows]\n    run: |\n      touch started\n      sleep 2\n      echo rows=5 >> \"$BATON_OUTPUTS\"\n      echo boxed >> ran.txt\n  after:\n    needs: [boxed]\n    run: test \"{{{{ tasks.boxed.outputs.rows }}}}\" = 5\n"
        ),
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    wait_until("the container never started", || {
        t.path().join("started").exists()
    });
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let id = t.last_run();
    wait_until("the container never ended", || {
        !t.read("ran.txt").is_empty() && running_containers_of(&id).is_empty()
    });
    let out = t.run(&["resume", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(t.show(&id)["state"], "succeeded");
    assert_eq!(
        attempt_states(&t, &id, "boxed"),
        ["succeeded"],
        "the container's own end is the attempt's"
    );
    assert_eq!(
        t.read("ran.txt"),
        "boxed\n",
        "a task that succeeded ran again"
    );
    assert!(containers_of(&id).is_empty(), "{:?}", containers_of(&id));
}

#[test]
fn named_executors_come_from_baton_toml() {
    if !available("named executors run containers") {
        return;
    }
    let t = Test::new()
        .file(
            "baton.toml",
            "[executors.boxes]\nkind = \"docker\"\npids_limit = 64\n\n[executors.here]\nkind = \"local\"\n\n[executors.nowhere]\nkind = \"docker\"\nhost = \"tcp://127.0.0.1:1\"\n",
        )
        .file(
            "ok.yaml",
            &format!(
                "name: ok\ntasks:\n  boxed:\n    executor: boxes\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: echo in a box\n  plain:\n    executor: here\n    run: echo here\n"
            ),
        )
        .file(
            "remote.yaml",
            "name: remote\ntasks:\n  t:\n    runs_on: [gpu, eu]\n    run: \"true\"\n",
        )
        .file(
            "unknown.yaml",
            "name: unknown\ntasks:\n  t:\n    executor: gpu\n    run: \"true\"\n",
        )
        .file(
            "wrong.yaml",
            &format!(
                "name: wrong\ntasks:\n  boxed:\n    executor: here\n    container: {{ image: \"{IMAGE}\" }}\n    run: \"true\"\n  away:\n    executor: nowhere\n    container: {{ image: \"{IMAGE}\" }}\n    run: \"true\"\n"
            ),
        );
    // Checked against baton.toml when the file is loaded, with its position.
    let unknown = t.run(&["validate", "unknown.yaml"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stdout);
    assert!(
        unknown.stdout.contains(
            "unknown.yaml:4:15: error: no executor `gpu` is configured (configured: `boxes`, `here`, `nowhere`)"
        ),
        "{}",
        unknown.stdout
    );
    let unknown = t.run(&["run", "unknown.yaml"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no executor `gpu` is configured"),
        "{}",
        unknown.stderr
    );
    let remote = t.run(&["run", "remote.yaml"]);
    assert_eq!(remote.code, 2, "{}", remote.stderr);
    assert!(
        remote
            .stderr
            .contains("remote.yaml: task `t`: the task runs on workers labelled `gpu, eu`"),
        "{}",
        remote.stderr
    );
    let out = t.run(&["run", "ok.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = t.run(&["run", "wrong.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let id = t.last_run();
    let run = t.show(&id);
    let error = |key: &str| {
        run["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["error"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        error("boxed").contains("executor `here` runs local processes, not containers"),
        "{run:#}"
    );
    assert!(
        error("away").contains("cannot reach the Docker engine at `tcp://127.0.0.1:1`"),
        "{run:#}"
    );
}
